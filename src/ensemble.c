/* ensemble.c: dense + K pathway-sampled members, combined; per-unit sums reduced in order. */
#include "ensemble.h"

#include "kernels.h"

#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

/* ---- small accumulators ------------------------------------------------------------------- */

static void paired_add(ens_paired *p, double d, double w) {
    p->sum_d += d;
    p->sum_d2 += d * d;
    p->sum_dw += d * w;
    p->sum_w += w;
    p->sum_w2 += w * w;
    p->units++;
}

double ens_paired_mean(const ens_paired *p) { return p->sum_w > 0 ? p->sum_d / p->sum_w : NAN; }

double ens_paired_stderr(const ens_paired *p) {
    if (p->units < 2 || p->sum_w <= 0) return NAN;
    double r = ens_paired_mean(p), n = (double)p->units;
    double ss = p->sum_d2 - 2.0 * r * p->sum_dw + r * r * p->sum_w2;
    if (ss < 0) ss = 0;
    return sqrt(n / (n - 1.0) * ss) / p->sum_w;
}

static void calib_add(ens_calib *c, double conf, int correct) {
    int b = (int)(conf * ENS_ECE_BINS);
    if (b >= ENS_ECE_BINS) b = ENS_ECE_BINS - 1;
    if (b < 0) b = 0;
    c->count[b]++;
    c->conf[b] += conf;
    c->correct[b] += correct ? 1.0 : 0.0;
}

double ens_calib_ece(const ens_calib *c) {
    int64_t n = 0;
    for (int b = 0; b < ENS_ECE_BINS; b++) n += c->count[b];
    if (n == 0) return NAN;
    double e = 0.0;
    for (int b = 0; b < ENS_ECE_BINS; b++)
        if (c->count[b]) e += fabs(c->correct[b] - c->conf[b]) / (double)n;
    return e;
}

const void *ens_per_example_data(const void *per_example, size_t *len) {
    const msgpack_sbuffer *sb = per_example;
    *len = sb ? sb->size : 0;
    return sb ? sb->data : NULL;
}

/* log((1/k) Σ_{m<k} exp(lp[m])) */
static double log_mean_exp(const double *lp, int k) {
    double mx = lp[0];
    for (int i = 1; i < k; i++) mx = lp[i] > mx ? lp[i] : mx;
    double s = 0.0;
    for (int i = 0; i < k; i++) s += exp(lp[i] - mx);
    return mx + log(s / k);
}

/* probabilities (NC) from logits, in double */
static void softmax_d(double *p, const float *x, int NC) {
    double mx = x[0];
    for (int i = 1; i < NC; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0.0;
    for (int i = 0; i < NC; i++) s += (p[i] = exp((double)x[i] - mx));
    for (int i = 0; i < NC; i++) p[i] /= s;
}

static int argmax_d(const double *p, int n) {
    int a = 0;
    for (int i = 1; i < n; i++)
        if (p[i] > p[a]) a = i;
    return a;
}

/* the mixture of members 0..k of one image, pe (NC) = (Σ_{j<=k} p_j) / (k + 1), summed in member
 * order; p_j[i] = p[j * member_stride + i * class_stride]. The worker (an unsplit block) and the
 * coordinator (staged split blocks) both call this, so the curve is the same bytes either way. */
static void mix_probs(double *pe, const double *p, size_t member_stride, size_t class_stride, int k, int NC) {
    for (int i = 0; i < NC; i++) {
        double s = 0.0;
        for (int j = 0; j <= k; j++) s += p[(size_t)j * member_stride + (size_t)i * class_stride];
        pe[i] = s / (k + 1);
    }
}

/* one image's NLL of label y under probabilities p (NC), and cc (2) = [confidence, correct] */
static void cls_point(double *nll, double *cc, const double *p, int NC, int y) {
    int a = argmax_d(p, NC);
    *nll  = -log(p[y]);
    cc[0] = p[a];
    cc[1] = a == y ? 1.0 : 0.0;
}

/* ---- importance collection ---------------------------------------------------------------- */

/* per-unit importance inputs, reduced in dataset order at the end */
typedef struct {
    int      on, abl, K, L, NH, NB, S, A; /* S = 3 + NB attention stats, A ablations: the first A components
                                          * of dsg (L*NH heads + L layers, abl 2: + the bands), 0 without */
    int      P;         /* drop-one importance passes (dsg.M_h + dsg.M_r; the block with the dense values) */
    imp_design dsg;     /* components and the drop-one design (importance.h) */
    imp_drop   drp;     /* pw_config.drop context of the pass being run */
    double  *u_prb;     /* (N, P) unit loss of each drop-one pass */
    int64_t *uid;       /* (batch) unit index of each batch row: the drop-one design's key */
    int      u0;        /* per-unit arrays hold units [u0, u0 + N) */
    double  *u_att;     /* (N, L, NH, S) dense attention statistics per unit */
    double  *u_xh;      /* (N, K, L, NH) kept fraction of each head */
    double  *u_xb;      /* (N, K, L, NB) kept fraction of each layer's band (NaN: band not allowed) */
    double  *u_abl;     /* (N, A) unit loss with one head, then one layer, dropped */
    int64_t *kept_bh;   /* (L, B, NH) batch buffer */
    int64_t *band_kept; /* (L, B, NH, NB) batch buffer */
    double  *att_stats; /* (L, B, NH, S) batch buffer */
    uint8_t *mask;      /* (L, NH) head_keep of ones: routes an ablation / drop-one pass through the sampler */
    double  *xs;        /* (K) scratch */
    double  *u_y;       /* (N, K) member loss per token (per image) of each unit */
} imp_collect;

static pe_status imp_collect_init(imp_collect *ic, const ens_options *o, int K, int L, int NH, int NB, int N, int batch,
                                  const imp_design *dsg, pe_err *err) {
    memset(ic, 0, sizeof *ic);
    ic->on  = o->importance;
    ic->abl = o->ablation;
    ic->K = K, ic->L = L, ic->NH = NH, ic->NB = NB, ic->S = 3 + NB;
    ic->dsg = *dsg;
    ic->A = !ic->abl ? 0 : ic->abl >= 2 ? imp_design_components(dsg) : L * NH + L;
    ic->P = ic->on ? dsg->M_h + dsg->M_r : 0;
    size_t Kc = K > 0 ? (size_t)K : 1, LBH = (size_t)L * batch * NH;
    ic->xs = pe_malloc(Kc * sizeof(double), err, "member scratch");
    if (!ic->xs) return PE_ERR_INTERNAL;
    if (ic->on) {
        ic->u_att     = pe_calloc((size_t)N * L * NH * ic->S, sizeof(double), err, "attention statistics");
        ic->u_xh      = pe_calloc((size_t)N * Kc * L * NH, sizeof(double), err, "head features");
        ic->u_xb      = pe_calloc((size_t)N * Kc * L * NB, sizeof(double), err, "band features");
        ic->kept_bh   = pe_calloc(LBH, sizeof(int64_t), err, "kept per head");
        ic->band_kept = pe_calloc(LBH * NB, sizeof(int64_t), err, "kept per band");
        ic->att_stats = pe_calloc(LBH * ic->S, sizeof(double), err, "attention statistics batch");
        ic->u_y       = pe_calloc((size_t)N * Kc, sizeof(double), err, "member losses");
        if (!ic->u_y || !ic->u_att || !ic->u_xh || !ic->u_xb || !ic->kept_bh || !ic->band_kept || !ic->att_stats)
            return PE_ERR_INTERNAL;
    }
    if (ic->abl || ic->P) {
        ic->u_abl = pe_calloc((size_t)N * ic->A + 1, sizeof(double), err, "ablation losses");
        ic->u_prb = pe_calloc((size_t)N * ic->P + 1, sizeof(double), err, "drop-one losses");
        ic->uid   = pe_calloc((size_t)batch, sizeof(int64_t), err, "batch unit indices");
        ic->mask  = pe_malloc((size_t)L * NH, err, "ablation mask");
        if (!ic->u_abl || !ic->u_prb || !ic->uid || !ic->mask) return PE_ERR_INTERNAL;
        memset(ic->mask, 1, (size_t)L * NH);
    }
    return PE_OK;
}

static void imp_collect_free(imp_collect *ic) {
    free(ic->u_att);
    free(ic->u_xh);
    free(ic->u_xb);
    free(ic->u_abl);
    free(ic->u_prb);
    free(ic->uid);
    free(ic->kept_bh);
    free(ic->band_kept);
    free(ic->att_stats);
    free(ic->mask);
    free(ic->xs);
    free(ic->u_y);
    memset(ic, 0, sizeof *ic);
}

/* after the dense pass of a batch: units[b] is the dataset index of batch row b */
static void imp_collect_dense(imp_collect *ic, int B, const int *units) {
    if (!ic->on) return;
    size_t per = (size_t)ic->NH * ic->S;
    for (int l = 0; l < ic->L; l++)
        for (int b = 0; b < B; b++)
            memcpy(ic->u_att + ((size_t)(units[b] - ic->u0) * ic->L + l) * per, ic->att_stats + ((size_t)l * B + b) * per,
                   per * sizeof(double));
}

/* after member k's pass of a batch: kept fractions per head and per (layer, band), over the
 * queries stat_rows[b] whose output reaches a scored prediction */
static void imp_collect_member(imp_collect *ic, int k, int B, const int *units, const int *rows, int causal) {
    if (!ic->on) return;
    int L = ic->L, NH = ic->NH, NB = ic->NB;
    size_t Kc = ic->K > 0 ? (size_t)ic->K : 1;
    for (int b = 0; b < B; b++) {
        int     n   = rows[b];
        double  all = causal ? (double)n * (n + 1) / 2.0 : (double)n * n;
        double *xh  = ic->u_xh + ((size_t)(units[b] - ic->u0) * Kc + k) * L * NH;
        double *xb  = ic->u_xb + ((size_t)(units[b] - ic->u0) * Kc + k) * L * NB;
        for (int l = 0; l < L; l++) {
            for (int h = 0; h < NH; h++) xh[l * NH + h] = (double)ic->kept_bh[((size_t)l * B + b) * NH + h] / all;
            for (int band = 0; band < NB; band++) {
                int64_t allowed = imp_band_allowed(n, band, causal), kept = 0;
                for (int h = 0; h < NH; h++) kept += ic->band_kept[(((size_t)l * B + b) * NH + h) * NB + band];
                xb[l * NB + band] = allowed > 0 ? (double)kept / ((double)allowed * NH) : NAN;
            }
        }
    }
}

/* the config of extra pass a: a < A the ablation of component a (heads 0 .. L*NH-1 one at a time,
 * then layers, then (abl 2) the (layer, band) pairs), then drop-one pass a - A; *member: its member index */
static pw_config imp_ablation_config(imp_collect *ic, int a, int *member) {
    ic->drp.d     = &ic->dsg;
    ic->drp.fixed = a < ic->A ? a : -1;
    *member       = a < ic->A ? 0 : a - ic->A;
    pw_config c = {0};
    c.drop     = imp_drop_draw;
    c.drop_ctx = &ic->drp;
    c.scheme = PW_SCHEME_DENSE;
    c.ratio = 1.0;
    c.lambda = INFINITY;
    c.members = 1;
    c.n_heads = ic->NH;
    c.head_keep = ic->mask;
    return c;
}

static pe_status imp_result_init(ens_importance *imp, const imp_collect *ic, pe_err *err) {
    memset(imp, 0, sizeof *imp);
    imp->L = ic->L, imp->NH = ic->NH, imp->NB = ic->NB;
    imp->has_sampled = ic->on && ic->K > 1;
    imp->has_attention = ic->on;
    imp->has_ablation = ic->abl;
    imp->has_band_ablation = ic->abl >= 2;
    imp->has_drop = ic->P > 0;
    imp->design = ic->dsg;
    size_t LH = (size_t)ic->L * ic->NH;
    imp->drop      = pe_calloc((size_t)imp_design_components(&ic->dsg) + 1, sizeof(ens_paired), err, "importance");
    imp->abl_band  = pe_calloc((size_t)ic->L * ic->NB, sizeof(ens_paired), err, "importance");
    if (!imp->drop || !imp->abl_band) return PE_ERR_INTERNAL;
    imp->head      = pe_calloc(LH, sizeof(imp_slope), err, "importance");
    imp->band_delta = pe_calloc((size_t)ic->L * ic->NB, sizeof(double), err, "importance");
    imp->band_se    = pe_calloc((size_t)ic->L * ic->NB, sizeof(double), err, "importance");
    imp->band_units = pe_calloc((size_t)ic->L * ic->NB, sizeof(int64_t), err, "importance");
    imp->abl_head  = pe_calloc(LH, sizeof(ens_paired), err, "importance");
    imp->abl_layer = pe_calloc((size_t)ic->L, sizeof(ens_paired), err, "importance");
    imp->att       = pe_calloc(LH * ic->S, sizeof(double), err, "importance");
    return imp->head && imp->band_delta && imp->band_se && imp->band_units && imp->abl_head && imp->abl_layer && imp->att ? PE_OK : PE_ERR_INTERNAL;
}

static void imp_result_free(ens_importance *imp) {
    free(imp->head);
    free(imp->band_delta);
    free(imp->band_se);
    free(imp->band_units);
    free(imp->abl_head);
    free(imp->abl_layer);
    free(imp->att);
    free(imp->drop);
    free(imp->abl_band);
    memset(imp, 0, sizeof *imp);
}

/* after every unit: the bands of each layer, fitted jointly (their kept fractions are correlated) */
static pe_status imp_finish(ens_importance *imp, const imp_collect *ic, int N, pe_err *err) {
    if (!(ic->on && ic->K > 1)) return PE_OK;
    int L = ic->L, NB = ic->NB, K = ic->K;
    for (int l = 0; l < L; l++)
        if (imp_joint_fit(imp->band_delta + (size_t)l * NB, imp->band_se + (size_t)l * NB, imp->band_units + (size_t)l * NB,
                          NB, N, K, ic->u_xb + (size_t)l * NB, (size_t)K * L * NB, (size_t)L * NB, ic->u_y))
            return pe_fail(err, PE_ERR_INTERNAL, "out of memory fitting band importance");
    return PE_OK;
}

/* unit u, in dataset order: y (K) member losses per token (image), dense loss y_dense, weight w */
static void imp_reduce_unit(ens_importance *imp, imp_collect *ic, int u, const double *y, double dense_total,
                            double w) {
    int    L = ic->L, NH = ic->NH, K = ic->K;
    size_t Kc = K > 0 ? (size_t)K : 1, LH = (size_t)L * NH;
    if (ic->on) {
        const double *a = ic->u_att + (size_t)u * LH * ic->S;
        for (size_t i = 0; i < LH * (size_t)ic->S; i++) imp->att[i] += a[i];
    }
    if (ic->on && K > 1) {
        double *xs = ic->xs;
        for (size_t c = 0; c < LH; c++) {
            for (int k = 0; k < K; k++) xs[k] = ic->u_xh[((size_t)u * Kc + k) * LH + c];
            imp_slope_add_unit(&imp->head[c], xs, y, K);
        }
        memcpy(ic->u_y + (size_t)u * Kc, y, (size_t)K * sizeof(double));
    }
    if (ic->abl) {
        const double *ab = ic->u_abl + (size_t)u * ic->A;
        for (size_t c = 0; c < LH; c++) paired_add(&imp->abl_head[c], ab[c] - dense_total, w);
        for (int l = 0; l < L; l++) paired_add(&imp->abl_layer[l], ab[LH + l] - dense_total, w);
        for (int a = (int)LH + L; a < ic->A; a++) { /* (layer, band) components */
            int j = a - (int)LH - L, nbl = ic->NB - ic->dsg.b0;
            paired_add(&imp->abl_band[(j / nbl) * ic->NB + ic->dsg.b0 + j % nbl], ab[a] - dense_total, w);
        }
    }
    for (int p = 0; p < ic->P; p++) { /* drop-one passes: each dropped one component on this unit */
        int c = imp_design_component(&ic->dsg, p, u);
        if (c >= 0) paired_add(&imp->drop[c], ic->u_prb[(size_t)u * ic->P + p] - dense_total, w);
    }
}

/* ---- language models ---------------------------------------------------------------------- */

void ens_free_lm(ens_lm_result *r) {
    imp_result_free(&r->imp);
    free(r->member);
    free(r->curve);
    free(r->kl);
    free(r->agree);
    free(r->kept);
    free(r->allowed);
    if (r->per_example) msgpack_sbuffer_free(r->per_example);
    memset(r, 0, sizeof *r);
}

/* per-unit results of the units [u0, u0 + n) of a dataset (text: documents or windows; images):
 * what a worker computes for one task, what the coordinator merges, journals and finally reduces
 * in dataset order. Text and images share the rows, the wire format and the merge; an image's
 * "positions" (for split member blocks) are its NC class probabilities. */
struct ens_rows {
    int         u0, n, N, K, L, NH, NB, Tmax; /* images: Tmax = tokens per image (patches + CLS) */
    int         k0;       /* first member of this block (members k0 .. k0 + K - 1; K = the block's size) */
    int         K_all;    /* members of the whole ensemble */
    int         split;    /* K < K_all: the curve needs every block; per-position log-probs travel in lp */
    int         has_dense; /* this block carries the dense values, attention statistics and ablations (k0 = 0) */
    int         images;   /* 1: units are images of an image_dataset */
    int         NC;       /* images: classes */
    int         head_rows, group, use_ref; /* text: ens_rows_set_head */
    const uint8_t *labels; /* images: the dataset's labels (N), indexed by unit */
    double     *lp;       /* split: (positions of the units, K) text: member log-prob of each scored target;
                           * images: member probability of each class */
    int64_t    *pos_off;  /* (n + 1) first position of each unit in lp */
    /* merge target only (rows of every unit): per-unit staging of split blocks */
    double    **lp_unit;  /* (N) (positions of u, K_all) or NULL */
    int        *members_in; /* (N) members merged so far */
    double     *dense;   /* (n) dense NLL of the unit (nats, summed over its scored targets; images: of its label) */
    double     *mem;     /* (n, K) member NLL */
    double     *curve;   /* (n, K) NLL of the ensemble of members 0..k */
    double     *kl;      /* (n, K) Σ KL(dense || member) over the unit's scored targets (images: over classes) */
    int64_t    *agree;   /* (n, K) scored positions where member and dense argmax agree */
    double     *dcc;     /* images: (n, 2) dense [confidence (max probability), correct (0 / 1)] */
    double     *mcc;     /* images: (n, K, 2) member [confidence, correct] */
    double     *ccc;     /* images: (n, K, 2) ensemble of members 0..k [confidence, correct] (unsplit blocks) */
    int64_t    *kept;    /* (K, L, NH) connections kept, summed over the units */
    int64_t    *allowed; /* (K, L, NH) */
    imp_collect ic;      /* importance inputs of the same units */
};

/* the rows of units [u0, u0 + n) of N, members [k0, k0 + kb): td or id says the dataset kind */
static ens_rows *rows_new(const model *m, const text_dataset *td, const image_dataset *id, const pw_config *c,
                          const ens_options *o, int N, int Tmax, int u0, int n, int k0, int kb, pe_err *err) {
    const model_config *mc = &m->cfg;
    if (u0 < 0 || n < 0 || u0 + n > N) {
        pe_fail(err, PE_ERR_INTERNAL, "unit range [%d, %d) outside the dataset's %d units", u0, u0 + n, N);
        return NULL;
    }
    int K_all = c ? c->members : 0;
    if (k0 < 0 || kb < 0 || k0 + kb > K_all || (K_all > 0 && kb == 0)) {
        pe_fail(err, PE_ERR_INTERNAL, "member block [%d, %d) outside the %d members", k0, k0 + kb, K_all);
        return NULL;
    }
    ens_rows *rw = pe_calloc(1, sizeof *rw, err, "rows");
    if (!rw) return NULL;
    int K = kb;
    rw->k0 = k0, rw->K_all = K_all, rw->split = kb < K_all, rw->has_dense = k0 == 0;
    rw->u0 = u0, rw->n = n, rw->N = N, rw->K = K, rw->L = mc->n_layers, rw->NH = mc->n_heads, rw->Tmax = Tmax;
    rw->NB = imp_n_bands(Tmax);
    rw->images = id != NULL;
    rw->NC     = id ? mc->n_classes : 0;
    rw->labels = id ? id->labels : NULL;
    size_t Kc = K > 0 ? (size_t)K : 1, LH = (size_t)rw->L * rw->NH;
    rw->dense   = pe_calloc((size_t)n + 1, sizeof(double), err, "dense rows");
    rw->mem     = pe_calloc((size_t)n * Kc + 1, sizeof(double), err, "member rows");
    rw->curve   = pe_calloc((size_t)n * Kc + 1, sizeof(double), err, "curve rows");
    rw->kl      = pe_calloc((size_t)n * Kc + 1, sizeof(double), err, "KL rows");
    rw->agree   = pe_calloc((size_t)n * Kc + 1, sizeof(int64_t), err, "agreement rows");
    rw->kept    = pe_calloc(Kc * LH, sizeof(int64_t), err, "kept");
    rw->allowed = pe_calloc(Kc * LH, sizeof(int64_t), err, "allowed");
    int img_ok = 1;
    if (rw->images) {
        rw->dcc = pe_calloc((size_t)n * 2 + 1, sizeof(double), err, "dense confidence rows");
        rw->mcc = pe_calloc((size_t)n * Kc * 2 + 1, sizeof(double), err, "member confidence rows");
        rw->ccc = pe_calloc((size_t)n * Kc * 2 + 1, sizeof(double), err, "curve confidence rows");
        img_ok  = rw->dcc && rw->mcc && rw->ccc;
    }
    int batch = o->batch < (n > 0 ? n : 1) ? o->batch : (n > 0 ? n : 1);
    ens_options ob = *o;
    if (!rw->has_dense) ob.ablation = 0, ob.imp_units = 0; /* ablations and drop-one passes belong to the block with
                                                           * the dense values */
    imp_design dsg; /* a function of the whole dataset: every block and rank agrees on it */
    imp_design_init(&dsg, rw->L, rw->NH, rw->NB, mc->causal, N, ob.importance ? ob.imp_units : 0, c ? c->seed : 0);
    rw->pos_off = pe_calloc((size_t)n + 1, sizeof(int64_t), err, "positions");
    if (rw->pos_off)
        for (int i = 0; i < n; i++) {
            int64_t np = rw->NC; /* an image: its class probabilities */
            if (td) {
                const text_seq *sq = &td->seqs[u0 + i];
                np = sq->len - 1 - sq->score_begin > 0 ? sq->len - 1 - sq->score_begin : 0;
            }
            rw->pos_off[i + 1] = rw->pos_off[i] + np;
        }
    if (rw->pos_off && rw->split) rw->lp = pe_calloc((size_t)rw->pos_off[n] * Kc + 1, sizeof(double), err, "log-probs");
    if (!rw->dense || !rw->mem || !rw->curve || !rw->kl || !rw->agree || !rw->kept || !rw->allowed || !rw->pos_off ||
        !img_ok || (rw->split && !rw->lp) ||
        imp_collect_init(&rw->ic, &ob, K, rw->L, rw->NH, rw->NB, n, batch, &dsg, err) != PE_OK) {
        ens_rows_free(rw);
        return NULL;
    }
    rw->ic.u0 = u0;
    return rw;
}

ens_rows *ens_rows_new(const model *m, const text_dataset *d, const pw_config *c, const ens_options *o, int u0, int n,
                       pe_err *err) {
    return ens_rows_new_block(m, d, c, o, u0, n, 0, c ? c->members : 0, err);
}

ens_rows *ens_rows_new_block(const model *m, const text_dataset *d, const pw_config *c, const ens_options *o, int u0,
                             int n, int k0, int kb, pe_err *err) {
    if (m->cfg.input != MODEL_INPUT_TOKENS) {
        pe_fail(err, PE_ERR_INPUT, "text data given to an image classifier; check [data] path/format");
        return NULL;
    }
    int Tmax = 0; /* over the whole dataset: every block of every task agrees on the distance bands */
    for (int s = 0; s < d->n_seqs; s++) Tmax = d->seqs[s].len > Tmax ? d->seqs[s].len : Tmax;
    return rows_new(m, d, NULL, c, o, d->n_seqs, Tmax, u0, n, k0, kb, err);
}

ens_rows *ens_rows_new_images(const model *m, const image_dataset *d, const pw_config *c, const ens_options *o, int u0,
                              int n, int k0, int kb, pe_err *err) {
    const model_config *mc = &m->cfg;
    if (mc->input != MODEL_INPUT_PATCHES) {
        pe_fail(err, PE_ERR_INPUT, "images given to a language model; check [data] path/format");
        return NULL;
    }
    if (d->rows != mc->image_size || d->cols != mc->image_size || mc->channels != 1) {
        pe_fail(err, PE_ERR_INPUT, "images are %dx%d grey but the model takes %dx%dx%d; wrong model or data", d->rows,
                d->cols, mc->channels, mc->image_size, mc->image_size);
        return NULL;
    }
    if (d->n_classes > mc->n_classes) {
        pe_fail(err, PE_ERR_INPUT, "labels go up to %d but the model has %d classes", d->n_classes - 1, mc->n_classes);
        return NULL;
    }
    if (d->n == 0) {
        pe_fail(err, PE_ERR_INPUT, "the image dataset is empty");
        return NULL;
    }
    return rows_new(m, NULL, d, c, o, d->n, model_image_seq_len(mc), u0, n, k0, kb, err);
}

void ens_rows_set_head(ens_rows *rw, int head_rows, int group, int use_ref) {
    rw->head_rows = head_rows;
    rw->group     = group;
    rw->use_ref   = use_ref;
}

void ens_rows_free(ens_rows *rw) {
    if (!rw) return;
    free(rw->dense); free(rw->mem); free(rw->curve); free(rw->kl); free(rw->agree); free(rw->kept); free(rw->allowed);
    free(rw->lp); free(rw->pos_off); free(rw->dcc); free(rw->mcc); free(rw->ccc);
    if (rw->lp_unit)
        for (int u = 0; u < rw->N; u++) free(rw->lp_unit[u]);
    free(rw->lp_unit); free(rw->members_in);
    imp_collect_free(&rw->ic);
    free(rw);
}


/* ---- the LM head over chunks of rows ------------------------------------------------------- */

/* ln Σ_v exp(x_v) of one row of logits (V) and its argmax (first maximum): exps in float
 * (kern_expf, in blocks that vectorise), summed in order in double */
static double row_lse(const float *x, int V, int *argmax) {
    double mx = x[0];
    int    am = 0;
    for (int v = 1; v < V; v++)
        if (x[v] > mx) {
            mx = x[v];
            am = v;
        }
    double s = 0.0;
    float mxf = (float)mx, e[256];
    for (int v0 = 0; v0 < V; v0 += 256) {
        int nv = V - v0 < 256 ? V - v0 : 256;
        for (int v = 0; v < nv; v++) e[v] = kern_expf(x[v0 + v] - mxf);
        for (int v = 0; v < nv; v++) s += (double)e[v];
    }
    if (argmax) *argmax = am;
    return mx + log(s);
}

/* naive twin: libm exp in double */
static double row_lse_ref(const float *x, int V, int *argmax) {
    int am = 0;
    for (int v = 1; v < V; v++)
        if (x[v] > x[am]) am = v;
    double s = 0.0;
    for (int v = 0; v < V; v++) s += exp((double)x[v] - (double)x[am]);
    if (argmax) *argmax = am;
    return (double)x[am] + log(s);
}

/* KL(dense || member) of one row, Σ_v p_d,v (log p_d,v - log p_m,v): dense logits xd with their
 * log-sum-exp lse_d and probabilities pd (V) = kern_expf(log p_d) (exact as floats), member
 * logits xm with lse_m */
static double row_kl(const float *xd, double lse_d, const float *pd, const float *xm, double lse_m, int V) {
    double kl = 0.0;
    for (int v = 0; v < V; v++) kl += (double)pd[v] * (((double)xd[v] - lse_d) - ((double)xm[v] - lse_m));
    return kl;
}

/* naive twin: p_d = exp(log p_d) in double */
static double row_kl_ref(const float *xd, double lse_d, const float *xm, double lse_m, int V) {
    double kl = 0.0;
    for (int v = 0; v < V; v++) {
        double ld = (double)xd[v] - lse_d;
        kl += exp(ld) * (ld - ((double)xm[v] - lse_m));
    }
    return kl;
}

/* Buffers of one text batch: the final hidden states of its passes, and per thread one chunk of
 * head rows (the head runs one task per sequence, each on its thread's chunk buffers). One
 * allocation, carved by the size table in head_bufs_init. */
typedef struct {
    float  *xd;    /* (R, V) dense logits of the chunk */
    float  *pd;    /* (R, V) dense probabilities (members > 0) */
    float  *xm;    /* (R, V) member (or ablation) logits of the chunk */
    float  *ls;    /* (R, V) running sum of member logits (combine = logit), else NULL */
    float  *lrow;  /* (V) mean logits */
    double *lse_d; /* (R) dense log-sum-exp per chunk row */
    int    *am_d;  /* (R) dense argmax per chunk row */
} head_chunk;

typedef struct {
    float      *block;
    float      *hd;  /* (B, T, C) dense final hidden states */
    float      *hm;  /* (G, B, T, C) hidden states of a group of G members */
    double     *dn;  /* (B) dense NLL of each sequence, summed over its chunks */
    int         nt;  /* threads: chunk buffers held */
    head_chunk *ch;  /* (nt) thread i's chunk buffers at i */
} head_bufs;

static pe_status head_bufs_init(head_bufs *h, int B, int T, int C, int V, int R, int G, int K, int logit, pe_err *err) {
    memset(h, 0, sizeof *h);
    size_t BTC = (size_t)B * T * C, RV = (size_t)R * V;
    int    nt = pe_threads_get();
    h->ch = pe_calloc((size_t)nt, sizeof(head_chunk), err, "LM head chunk buffers");
    if (!h->ch) return PE_ERR_INTERNAL;
    h->nt = nt;
    /* sizes in floats: the shared buffers, then one chunk's per thread; the doubles and ints each
     * rounded up to whole 8-byte units */
    size_t shared[3] = {BTC, (size_t)G * BTC, 2 * (size_t)B};
    size_t sizes[7]  = {RV, K > 0 ? RV : 0, RV, logit ? RV : 0, (size_t)V, 2 * (size_t)R, (size_t)R + (R & 1)};
    size_t total = 0;
    for (int i = 0; i < 3; i++) total += shared[i] + (shared[i] & 1); /* even: the doubles stay 8-byte aligned */
    for (int i = 0; i < 7; i++) total += (size_t)nt * (sizes[i] + (sizes[i] & 1));
    h->block = pe_malloc(total * sizeof(float), err, "LM head buffers");
    if (!h->block) {
        free(h->ch);
        h->ch = NULL;
        return PE_ERR_INTERNAL;
    }
    float *p = h->block;
    void  *sptrs[3] = {&h->hd, &h->hm, &h->dn};
    for (int i = 0; i < 3; i++) {
        *(void **)sptrs[i] = shared[i] ? (void *)p : NULL;
        p += shared[i] + (shared[i] & 1);
    }
    for (int t = 0; t < nt; t++) {
        head_chunk *c = &h->ch[t];
        void *ptrs[7] = {&c->xd, &c->pd, &c->xm, &c->ls, &c->lrow, &c->lse_d, &c->am_d};
        for (int i = 0; i < 7; i++) {
            *(void **)ptrs[i] = sizes[i] ? (void *)p : NULL;
            p += sizes[i] + (sizes[i] & 1);
        }
    }
    return PE_OK;
}

static void head_bufs_free(head_bufs *h) {
    free(h->block);
    free(h->ch);
    memset(h, 0, sizeof *h);
}

/* One text batch's head and per-token metrics: dense + members [g0, g1) of this block (hidden
 * states in h->hd and h->hm), over the chunk grid of every sequence; only chunks holding scored
 * positions run. Each per-(unit, member) sum still adds its positions in order, so the numbers
 * are those of the whole-sequence evaluation. first: this is the first group (dense NLL, logit
 * sums start here). One task per sequence: everything a task writes is that sequence's own
 * (rows of lpt / lpc, its unit's sums), computed in the serial order on its thread's chunk. */
static void text_head_group(ens_rows *rw, head_bufs *h, double *lpt, double *lpc, const model *m, const text_dataset *d,
                            const int *units, int B, int T, int g0, int g1, int R, int first, int use_ref) {
    int    C = m->cfg.dim, V = m->cfg.vocab_size, K = rw->K;
    size_t Kc = K > 0 ? (size_t)K : 1;
    double (*lse_of)(const float *, int, int *) = use_ref ? row_lse_ref : row_lse;
    PE_PARALLEL_FOR_N(h->nt)
    for (int b = 0; b < B; b++) {
        head_chunk     *hc = &h->ch[pe_thread_index()];
        const text_seq *sq = &d->seqs[units[b]];
        size_t          u  = (size_t)(units[b] - rw->u0);
        int             p_end = sq->len - 1; /* positions [score_begin, len - 1) are scored */
        if (first) h->dn[b] = 0.0;
        for (int r0 = sq->score_begin - sq->score_begin % R; r0 < p_end; r0 += R) {
            int n = sq->len - r0 < R ? sq->len - r0 : R; /* the chunk [r0, r0 + n) */
            int p0 = r0 > sq->score_begin ? r0 : sq->score_begin, p1 = r0 + n < p_end ? r0 + n : p_end;
            const float *hrow = h->hd + ((size_t)b * T + r0) * C;
            model_head_lm(hc->xd, m, hrow, n, use_ref); /* (n, V) */
            for (int p = p0; p < p1; p++) {
                const float *x = hc->xd + (size_t)(p - r0) * V;
                double lse = lse_of(x, V, &hc->am_d[p - r0]);
                hc->lse_d[p - r0] = lse;
                if (first) h->dn[b] -= (double)x[d->tokens[sq->start + p + 1]] - lse;
                if (hc->pd && !use_ref)
                    for (int v = 0; v < V; v++) hc->pd[(size_t)(p - r0) * V + v] = kern_expf((float)((double)x[v] - lse));
            }
            if (hc->ls && first) memset(hc->ls, 0, (size_t)n * V * sizeof(float));
            for (int k = g0; k < g1; k++) {
                model_head_lm(hc->xm, m, h->hm + (((size_t)(k - g0) * B + b) * T + r0) * C, n, use_ref);
                for (int p = p0; p < p1; p++) {
                    const float *x  = hc->xm + (size_t)(p - r0) * V, *xd = hc->xd + (size_t)(p - r0) * V;
                    int          am, tgt = d->tokens[sq->start + p + 1];
                    double       lse = lse_of(x, V, &am), lse_d = hc->lse_d[p - r0];
                    double       kl  = use_ref ? row_kl_ref(xd, lse_d, x, lse, V)
                                               : row_kl(xd, lse_d, hc->pd + (size_t)(p - r0) * V, x, lse, V);
                    lpt[((size_t)k * B + b) * T + p] = (double)x[tgt] - lse;
                    rw->kl[u * Kc + k] += kl;
                    rw->agree[u * Kc + k] += am == hc->am_d[p - r0];
                    if (hc->ls) { /* running mean of logits: curve point k, scored like a member */
                        float *sm = hc->ls + (size_t)(p - r0) * V;
                        for (int v = 0; v < V; v++) {
                            sm[v] += x[v];
                            hc->lrow[v] = sm[v] / (float)(k + 1);
                        }
                        lpc[((size_t)k * B + b) * T + p] = (double)hc->lrow[tgt] - lse_of(hc->lrow, V, NULL);
                    }
                }
            }
        }
        if (first) rw->dense[u] = h->dn[b];
    }
}

/* NLL of each sequence of a batch under the pass whose hidden states are hid (B, T, C), over
 * the chunk grid: nll (B) out; one task per sequence, on its thread's h->ch[].xm */
static void text_head_nll(double *nll, head_bufs *h, const float *hid, const model *m, const text_dataset *d,
                          const int *units, int B, int T, int R, int use_ref) {
    int C = m->cfg.dim, V = m->cfg.vocab_size;
    PE_PARALLEL_FOR_N(h->nt)
    for (int b = 0; b < B; b++) {
        float          *xbuf = h->ch[pe_thread_index()].xm; /* (R, V) */
        const text_seq *sq   = &d->seqs[units[b]];
        nll[b] = 0.0;
        for (int r0 = sq->score_begin - sq->score_begin % R; r0 < sq->len - 1; r0 += R) {
            int n = sq->len - r0 < R ? sq->len - r0 : R;
            int p0 = r0 > sq->score_begin ? r0 : sq->score_begin, p1 = r0 + n < sq->len - 1 ? r0 + n : sq->len - 1;
            model_head_lm(xbuf, m, hid + ((size_t)b * T + r0) * C, n, use_ref); /* (n, V) */
            for (int p = p0; p < p1; p++) {
                const float *x = xbuf + (size_t)(p - r0) * V;
                nll[b] -= (double)x[d->tokens[sq->start + p + 1]] - (use_ref ? row_lse_ref : row_lse)(x, V, NULL);
            }
        }
    }
}

pe_status ens_text_rows_run(ens_rows *rw, const model *m, const text_dataset *d, const pw_config *c,
                            const ens_options *o, pe_err *err) {
    const model_config *mc = &m->cfg;
    ens_combine combine = o->combine;
    int K = rw->K, L = rw->L, NH = rw->NH, NB = rw->NB, n = rw->n, u0 = rw->u0, Tmax = 0, use_ref = rw->use_ref;
    if (rw->images) return pe_fail(err, PE_ERR_INTERNAL, "rows of an image dataset given to the text evaluation");
    if (n == 0) return PE_OK;
    for (int s = u0; s < u0 + n; s++) Tmax = d->seqs[s].len > Tmax ? d->seqs[s].len : Tmax;
    if (rw->Tmax > mc->seq_len)
        return pe_fail(err, PE_ERR_INPUT, "data has sequences of %d tokens but the model's context is %d; set data.context",
                       rw->Tmax, mc->seq_len);
    int R = rw->head_rows > 0 ? rw->head_rows : model_head_rows_auto(m);
    if (R % MODEL_HEAD_ROW_ALIGN)
        return pe_fail(err, PE_ERR_INTERNAL, "LM head chunks of %d rows: not a multiple of %d", R, MODEL_HEAD_ROW_ALIGN);
    int batch = o->batch < n ? o->batch : n;
    size_t Kc = K > 0 ? (size_t)K : 1, BT = (size_t)batch * Tmax, LH = (size_t)L * NH;
    /* members whose hidden states are held at once; the logit rule sums every member's logits per row */
    int64_t G64 = rw->group > 0 ? rw->group : ENS_HIDDEN_BUDGET / ((int64_t)BT * mc->dim);
    int     G = K == 0 ? 0 : combine == ENS_COMBINE_LOGIT || G64 >= K ? K : G64 < 1 ? 1 : (int)G64;
    imp_collect *ic = &rw->ic;
    model_acts a;
    head_bufs  h;
    pe_status  st = model_acts_init(&a, m, batch, Tmax, err);
    if (st) return st;
    st = head_bufs_init(&h, batch, Tmax, mc->dim, mc->vocab_size, R, G, K, K > 0 && combine == ENS_COMBINE_LOGIT, err);
    if (st) {
        model_acts_free(&a);
        return st;
    }
    int     *units   = pe_malloc((size_t)batch * sizeof(int), err, "batch units");  /* (batch) */
    int     *srows   = pe_malloc((size_t)batch * sizeof(int), err, "batch rows");   /* (batch) */
    int     *tokens  = pe_malloc(BT * sizeof(int), err, "tokens");                  /* (batch, T) */
    int     *lens    = pe_malloc((size_t)batch * sizeof(int), err, "lens");         /* (batch) */
    int64_t *ids     = pe_malloc((size_t)batch * sizeof(int64_t), err, "ids");      /* (batch) */
    double  *lpt     = pe_malloc(Kc * BT * sizeof(double), err, "member target log-probs"); /* (K, batch, T) */
    double  *lpc     = pe_malloc(Kc * BT * sizeof(double), err, "curve target log-probs");  /* (K, batch, T) */
    double  *kbuf    = pe_malloc(Kc * sizeof(double), err, "member scratch");       /* (K) */
    double  *anll    = pe_malloc((size_t)batch * sizeof(double), err, "ablation NLL"); /* (batch) */
    int     *order   = pe_malloc((size_t)n * sizeof(int), err, "order");            /* (n) */
    if (!units || !srows || !tokens || !lens || !ids || !lpt || !lpc || !kbuf || !anll || !order) st = PE_ERR_INTERNAL;
    /* stable order of the range by length: batches pad little; rows are stored per unit */
    if (!st) {
        int *count = calloc((size_t)Tmax + 2, sizeof(int));
        if (!count) st = pe_fail(err, PE_ERR_INTERNAL, "out of memory sorting sequences");
        else {
            for (int s = 0; s < n; s++) count[d->seqs[u0 + s].len + 1]++;
            for (int l = 1; l <= Tmax + 1; l++) count[l] += count[l - 1];
            for (int s = 0; s < n; s++) order[count[d->seqs[u0 + s].len]++] = u0 + s;
            free(count);
        }
    }
    for (int s0 = 0; !st && s0 < n; s0 += batch) {
        int B = n - s0 < batch ? n - s0 : batch, T = 0;
        for (int b = 0; b < B; b++) T = d->seqs[order[s0 + b]].len > T ? d->seqs[order[s0 + b]].len : T;
        for (int b = 0; b < B; b++) {
            const text_seq *sq = &d->seqs[order[s0 + b]];
            units[b] = order[s0 + b];
            lens[b]  = sq->len;
            srows[b] = mc->causal ? sq->len - 1 : sq->len; /* the last causal query predicts nothing scored */
            ids[b]   = sq->doc_id;
            memcpy(tokens + (size_t)b * T, d->tokens + sq->start, (size_t)sq->len * sizeof(int));
            for (int t = sq->len; t < T; t++) tokens[(size_t)b * T + t] = 0;
        }
        /* dense: its final hidden states stay for the head of every member group */
        model_pathways dpw = {.cfg = NULL, .n_bands = NB, .att_stats = ic->on ? ic->att_stats : NULL};
        st = model_forward_hidden_pw(h.hd, &a, m, tokens, lens, B, T, &dpw, use_ref, err);
        if (!st) imp_collect_dense(ic, B, units);
        /* members, G at a time: hidden states of the group, then the head over chunks of rows */
        for (int g0 = 0; !st && (g0 < K || (K == 0 && g0 == 0)); g0 += G > 0 ? G : 1) {
            int g1 = g0 + G < K ? g0 + G : K;
            for (int k = g0; !st && k < g1; k++) { /* local member k is member rw->k0 + k of the ensemble */
                model_pathways pw = {.cfg = c, .member = rw->k0 + k, .seq_ids = ids, .kept = rw->kept + (size_t)k * LH,
                                     .allowed = rw->allowed + (size_t)k * LH, .n_bands = NB,
                                     .kept_bh = ic->on ? ic->kept_bh : NULL, .band_kept = ic->on ? ic->band_kept : NULL,
                                     .stat_rows = srows};
                st = model_forward_hidden_pw(h.hm + (size_t)(k - g0) * B * T * mc->dim, &a, m, tokens, lens, B, T, &pw,
                                             use_ref, err);
                if (!st) imp_collect_member(ic, k, B, units, srows, mc->causal);
            }
            if (!st) text_head_group(rw, &h, lpt, lpc, m, d, units, B, T, g0, g1, R, g0 == 0, use_ref);
        }
        /* explicit ablations (each head, then each layer, then each band, dropped alone); drop-one passes */
        for (int b = 0; b < B && ic->uid; b++) ic->uid[b] = units[b];
        for (int ai = 0; !st && ai < ic->A + ic->P; ai++) {
            int            am;
            pw_config      ac  = imp_ablation_config(ic, ai, &am);
            model_pathways apw = {.cfg = &ac, .member = am, .seq_ids = ic->uid};
            st = model_forward_hidden_pw(a.xn, &a, m, tokens, lens, B, T, &apw, use_ref, err);
            if (!st) text_head_nll(anll, &h, a.xn, m, d, units, B, T, R, use_ref);
            for (int b = 0; !st && b < B; b++) {
                if (ai < ic->A) ic->u_abl[(size_t)(units[b] - u0) * ic->A + ai] = anll[b];
                else ic->u_prb[(size_t)(units[b] - u0) * ic->P + (ai - ic->A)] = anll[b];
            }
        }
        /* per unit: members and the ensemble-size curve */
        for (int b = 0; !st && b < B; b++) {
            const text_seq *sq = &d->seqs[units[b]];
            size_t          u  = (size_t)(units[b] - u0);
            for (int k = 0; k < K; k++) {
                double mn = 0.0, cn = 0.0;
                for (int p = sq->score_begin; p < sq->len - 1; p++) {
                    mn -= lpt[((size_t)k * B + b) * T + p];
                    if (rw->split) {
                        /* the curve needs every block: the coordinator combines lp */
                    } else if (combine == ENS_COMBINE_LOGIT) {
                        cn -= lpc[((size_t)k * B + b) * T + p];
                    } else {
                        for (int j = 0; j <= k; j++) kbuf[j] = lpt[((size_t)j * B + b) * T + p];
                        cn -= log_mean_exp(kbuf, k + 1);
                    }
                }
                rw->mem[u * Kc + k]   = mn;
                rw->curve[u * Kc + k] = cn;
                if (rw->split) /* the coordinator combines the blocks: ship every target's log-prob */
                    for (int p = sq->score_begin; p < sq->len - 1; p++)
                        rw->lp[((size_t)rw->pos_off[u] + (p - sq->score_begin)) * Kc + k] = lpt[((size_t)k * B + b) * T + p];
            }
        }
    }
    free(units); free(srows); free(tokens); free(lens); free(ids); free(lpt); free(lpc); free(kbuf); free(anll); free(order);
    head_bufs_free(&h);
    model_acts_free(&a);
    return st;
}

pe_status ens_text_reduce(ens_lm_result *r, ens_rows *all, const text_dataset *d, const ens_options *o, pe_err *err) {
    memset(r, 0, sizeof *r);
    if (all->images) return pe_fail(err, PE_ERR_INTERNAL, "rows of an image dataset given to the text reduction");
    int K = all->K, L = all->L, NH = all->NH, N = d->n_seqs;
    if (all->u0 != 0 || all->n != N) return pe_fail(err, PE_ERR_INTERNAL, "reduce needs the rows of every unit");
    size_t Kc = K > 0 ? (size_t)K : 1, LH = (size_t)L * NH;
    r->K = K;
    r->L = L;
    r->NH = NH;
    imp_collect *ic = &all->ic;
    pe_status st = imp_result_init(&r->imp, ic, err);
    r->member  = pe_calloc(Kc, sizeof(eval_lm_acc), err, "member results");
    r->curve   = pe_calloc(Kc, sizeof(eval_lm_acc), err, "curve");
    r->kl      = pe_calloc(Kc, sizeof(double), err, "KL");
    r->agree   = pe_calloc(Kc, sizeof(int64_t), err, "agreement");
    r->kept    = pe_malloc(Kc * LH * sizeof(int64_t), err, "kept");
    r->allowed = pe_malloc(Kc * LH * sizeof(int64_t), err, "allowed");
    double *kbuf = pe_malloc(Kc * sizeof(double), err, "member scratch");
    if (!st && (!r->member || !r->curve || !r->kl || !r->agree || !r->kept || !r->allowed || !kbuf)) st = PE_ERR_INTERNAL;
    if (!st) {
        memcpy(r->kept, all->kept, Kc * LH * sizeof(int64_t));
        memcpy(r->allowed, all->allowed, Kc * LH * sizeof(int64_t));
    }
    msgpack_sbuffer *sb = NULL;
    msgpack_packer   pk;
    if (!st && o->per_example) {
        sb = msgpack_sbuffer_new();
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, (size_t)N);
        r->per_example = sb;
    }
    for (int u = 0; !st && u < N; u++) { /* canonical reduction in dataset order */
        const text_seq *sq = &d->seqs[u];
        int64_t         nt = sq->len - 1 - sq->score_begin, nb = 0;
        for (int p = sq->score_begin; p < sq->len - 1; p++) nb += d->tok_bytes[sq->start + p + 1];
        eval_lm_add_unit(&r->dense, all->dense[u], nt, nb);
        r->queries += sq->len;
        double mean_m = 0.0;
        for (int k = 0; k < K; k++) {
            eval_lm_add_unit(&r->member[k], all->mem[(size_t)u * Kc + k], nt, nb);
            eval_lm_add_unit(&r->curve[k], all->curve[(size_t)u * Kc + k], nt, nb);
            r->kl[k] += all->kl[(size_t)u * Kc + k];
            r->agree[k] += all->agree[(size_t)u * Kc + k];
            mean_m += all->mem[(size_t)u * Kc + k];
        }
        if (K > 0) {
            double ens = all->curve[(size_t)u * Kc + K - 1];
            eval_lm_add_unit(&r->ensemble, ens, nt, nb);
            eval_lm_add_unit(&r->member_mean, mean_m / K, nt, nb);
            if (nt > 0) paired_add(&r->diff, ens - all->dense[u], (double)nt);
        }
        if (nt > 0) {
            for (int k = 0; k < K; k++) kbuf[k] = all->mem[(size_t)u * Kc + k] / (double)nt; /* y: nats per token */
            imp_reduce_unit(&r->imp, ic, u, kbuf, all->dense[u], (double)nt);
        }
        if (sb) {
            msgpack_pack_map(&pk, 6);
            msgpack_pack_str_with_body(&pk, "unit", 4);
            msgpack_pack_int64(&pk, sq->doc_id);
            msgpack_pack_str_with_body(&pk, "tokens", 6);
            msgpack_pack_int64(&pk, nt);
            msgpack_pack_str_with_body(&pk, "bytes", 5);
            msgpack_pack_int64(&pk, nb);
            msgpack_pack_str_with_body(&pk, "dense_nll", 9);
            msgpack_pack_double(&pk, all->dense[u]);
            msgpack_pack_str_with_body(&pk, "member_nll", 10);
            msgpack_pack_array(&pk, (size_t)K);
            for (int k = 0; k < K; k++) msgpack_pack_double(&pk, all->mem[(size_t)u * Kc + k]);
            msgpack_pack_str_with_body(&pk, "ensemble_nll", 12);
            if (K > 0) msgpack_pack_double(&pk, all->curve[(size_t)u * Kc + K - 1]);
            else msgpack_pack_nil(&pk);
        }
    }
    if (!st) st = imp_finish(&r->imp, ic, N, err);
    free(kbuf);
    if (st) ens_free_lm(r);
    return st;
}

pe_status ens_eval_text(ens_lm_result *r, const model *m, const text_dataset *d, const pw_config *c,
                        const ens_options *o, pe_err *err) {
    memset(r, 0, sizeof *r);
    if (d->n_seqs == 0) return pe_fail(err, PE_ERR_INPUT, "the dataset has no sequence with a target to score");
    ens_rows *all = ens_rows_new(m, d, c, o, 0, d->n_seqs, err);
    if (!all) return err->code ? err->code : PE_ERR_INTERNAL;
    pe_status st = ens_text_rows_run(all, m, d, c, o, err);
    if (!st) st = ens_text_reduce(r, all, d, o, err);
    ens_rows_free(all);
    return st;
}

/* ---- rows on the wire and in the journal ---------------------------------------------------- */

static void pack_f64s(msgpack_packer *pk, const char *key, const double *x, size_t n) {
    msgpack_pack_str_with_body(pk, key, strlen(key));
    msgpack_pack_bin_with_body(pk, x, n * sizeof(double)); /* raw little-endian doubles: exact, compact */
}

static void pack_i64s(msgpack_packer *pk, const char *key, const int64_t *x, size_t n) {
    msgpack_pack_str_with_body(pk, key, strlen(key));
    msgpack_pack_bin_with_body(pk, x, n * sizeof(int64_t));
}

void ens_rows_pack(const ens_rows *rw, void *packer) {
    msgpack_packer *pk = packer;
    size_t Kc = rw->K > 0 ? (size_t)rw->K : 1, n = (size_t)rw->n, LH = (size_t)rw->L * rw->NH;
    const imp_collect *ic = &rw->ic;
    int fields = 10 + (ic->on ? 2 : 0) + (rw->has_dense ? 1 + (ic->on ? 1 : 0) + (ic->abl ? 1 : 0) + (ic->P ? 1 : 0) : 0) +
                 (rw->images ? 1 + !rw->split + rw->has_dense : 0);
    msgpack_pack_map(pk, (size_t)fields);
    msgpack_pack_str_with_body(pk, "u0", 2);
    msgpack_pack_int64(pk, rw->u0);
    msgpack_pack_str_with_body(pk, "n", 1);
    msgpack_pack_int64(pk, rw->n);
    msgpack_pack_str_with_body(pk, "k0", 2);
    msgpack_pack_int64(pk, rw->k0);
    msgpack_pack_str_with_body(pk, "kb", 2);
    msgpack_pack_int64(pk, rw->K);
    pack_f64s(pk, "mem", rw->mem, n * Kc);
    if (rw->split) pack_f64s(pk, "lp", rw->lp, (size_t)rw->pos_off[n] * Kc);
    else pack_f64s(pk, "curve", rw->curve, n * Kc);
    pack_f64s(pk, "kl", rw->kl, n * Kc);
    pack_i64s(pk, "agree", rw->agree, n * Kc);
    pack_i64s(pk, "kept", rw->kept, Kc * LH);
    pack_i64s(pk, "allowed", rw->allowed, Kc * LH);
    if (ic->on) {
        pack_f64s(pk, "xh", ic->u_xh, n * Kc * LH);
        pack_f64s(pk, "xb", ic->u_xb, n * Kc * rw->L * rw->NB);
    }
    if (rw->images) { /* confidence and correctness, for accuracy and calibration */
        pack_f64s(pk, "mcc", rw->mcc, n * Kc * 2);
        if (!rw->split) pack_f64s(pk, "ccc", rw->ccc, n * Kc * 2);
        if (rw->has_dense) pack_f64s(pk, "dcc", rw->dcc, n * 2);
    }
    if (rw->has_dense) {
        pack_f64s(pk, "dense", rw->dense, n);
        if (ic->on) pack_f64s(pk, "att", ic->u_att, n * LH * ic->S);
        if (ic->abl) pack_f64s(pk, "abl", ic->u_abl, n * ic->A);
        if (ic->P) pack_f64s(pk, "prb", ic->u_prb, n * ic->P);
    }
}

/* copy one bin field of exactly `bytes` bytes into dst (NULL dst: only check presence) */
static pe_status unpack_bin(const msgpack_object *map, const char *key, void *dst, size_t bytes, pe_err *err) {
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != strlen(key) ||
            memcmp(kv->key.via.str.ptr, key, strlen(key)) != 0)
            continue;
        if (kv->val.type != MSGPACK_OBJECT_BIN || kv->val.via.bin.size != bytes)
            return pe_fail(err, PE_ERR_INPUT, "result field \"%s\": expected %zu bytes, got %s of %u", key, bytes,
                           kv->val.type == MSGPACK_OBJECT_BIN ? "bin" : "another type",
                           kv->val.type == MSGPACK_OBJECT_BIN ? kv->val.via.bin.size : 0);
        if (dst && bytes) memcpy(dst, kv->val.via.bin.ptr, bytes);
        return PE_OK;
    }
    return pe_fail(err, PE_ERR_INPUT, "result field \"%s\" is missing", key);
}

static int64_t unpack_int(const msgpack_object *map, const char *key, int *ok) {
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0) {
            if (kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER) return (int64_t)kv->val.via.u64;
            if (kv->val.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) return kv->val.via.i64;
        }
    }
    *ok = 0;
    return 0;
}

/* the bytes of bin field `key` if it holds exactly `bytes` bytes, else NULL with a message */
static const void *bin_field(const msgpack_object *map, const char *key, size_t bytes, pe_err *err) {
    if (unpack_bin(map, key, NULL, bytes, err) != PE_OK) return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
            !memcmp(kv->key.via.str.ptr, key, strlen(key)))
            return bytes ? kv->val.via.bin.ptr : (const void *)"";
    }
    return NULL;
}

/* the ensemble-size curve of unit u from its staged log-probs (positions, K): as the unsplit path */
static void curve_from_lp(ens_rows *all, int u, const double *lp, int64_t npos, double *kbuf) {
    size_t K = (size_t)all->K;
    for (size_t k = 0; k < K; k++) {
        double cn = 0.0;
        for (int64_t p = 0; p < npos; p++) {
            for (size_t j = 0; j <= k; j++) kbuf[j] = lp[(size_t)p * K + j];
            cn -= log_mean_exp(kbuf, (int)k + 1);
        }
        all->curve[(size_t)u * K + k] = cn;
    }
}

/* the same for an image from its staged class probabilities p (NC, K); pe: scratch (NC) */
static void curve_from_probs(ens_rows *all, int u, const double *p, double *pe) {
    size_t K = (size_t)all->K;
    for (size_t k = 0; k < K; k++) {
        mix_probs(pe, p, 1, K, (int)k, all->NC);
        cls_point(&all->curve[(size_t)u * K + k], &all->ccc[((size_t)u * K + k) * 2], pe, all->NC, all->labels[u]);
    }
}

static int rows_key_is(const msgpack_object *k, const char *s) {
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(s) && !memcmp(k->via.str.ptr, s, strlen(s));
}

pe_status ens_rows_check(const void *object, const model *m, const text_dataset *td, int u0, int n, int finite,
                         pe_err *err) {
    const msgpack_object *o = object;
    int64_t bound = 0, tmax = 0; /* sum of T^2 over the units (connection counts), the longest T (agreement) */
    for (int u = u0; u < u0 + n; u++) {
        int64_t T = td ? td->seqs[u].len : m->cfg.seq_len;
        bound += T * T;
        if (T > tmax) tmax = T;
    }
    if (o->type != MSGPACK_OBJECT_MAP) return pe_fail(err, PE_ERR_INPUT, "the rows are not a map");
    /* xh, xb: importance features, NaN where a unit has no connection of that head or band (a sentinel) */
    static const char *const f64s[] = {"mem", "lp", "curve", "kl", "xh", "xb", "mcc", "ccc", "dcc", "dense", "att", "abl", "prb"};
    const char *kept = NULL, *allowed = NULL;
    size_t      n_kept = 0, n_allowed = 0;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (v->type != MSGPACK_OBJECT_BIN) continue; /* u0, n, k0, kb: checked by the caller */
        const char *b = v->via.bin.ptr;
        size_t      m = v->via.bin.size / 8;
        for (size_t f = 0; finite && f < sizeof f64s / sizeof f64s[0]; f++) {
            if (!rows_key_is(k, f64s[f])) continue;
            for (size_t j = 0; j < m; j++) {
                double x;
                memcpy(&x, b + 8 * j, 8);
                if (!isfinite(x) && !(isnan(x) && f64s[f][0] == 'x'))
                    return pe_fail(err, PE_ERR_INPUT, "field \"%s\" holds %s at index %zu (a finished task's numbers "
                                   "are finite)", f64s[f], isnan(x) ? "NaN" : "an infinity", j);
            }
        }
        if (rows_key_is(k, "agree")) {
            for (size_t j = 0; j < m; j++) {
                int64_t a;
                memcpy(&a, b + 8 * j, 8);
                if (a < 0 || a > tmax)
                    return pe_fail(err, PE_ERR_INPUT, "field \"agree\" holds %lld at index %zu, outside [0, %lld]",
                                   (long long)a, j, (long long)tmax);
            }
        } else if (rows_key_is(k, "kept")) {
            kept = b, n_kept = m;
        } else if (rows_key_is(k, "allowed")) {
            allowed = b, n_allowed = m;
        }
    }
    for (size_t j = 0; kept && allowed && j < n_kept && j < n_allowed; j++) {
        int64_t kv, av;
        memcpy(&kv, kept + 8 * j, 8);
        memcpy(&av, allowed + 8 * j, 8);
        if (kv < 0 || av < 0 || kv > av || av > bound)
            return pe_fail(err, PE_ERR_INPUT, "attention connection counts out of range at index %zu: %lld kept of %lld "
                           "allowed (these %d units have at most %lld)", j, (long long)kv, (long long)av, n, (long long)bound);
    }
    return PE_OK;
}

pe_status ens_rows_merge(ens_rows *all, const void *object, pe_err *err) {
    const msgpack_object *o = object;
    if (o->type != MSGPACK_OBJECT_MAP) return pe_fail(err, PE_ERR_INPUT, "result is not a map");
    int     ok = 1;
    int64_t u0 = unpack_int(o, "u0", &ok), n = unpack_int(o, "n", &ok), k0 = unpack_int(o, "k0", &ok),
            kb = unpack_int(o, "kb", &ok);
    int     K = all->K;
    if (!ok || u0 < 0 || n < 0 || u0 + n > all->n || k0 < 0 || kb < 0 || k0 + kb > K || (K > 0 && kb == 0))
        return pe_fail(err, PE_ERR_INPUT, "result covers units [%lld, +%lld) members [%lld, +%lld), outside %d units x %d "
                       "members", (long long)u0, (long long)n, (long long)k0, (long long)kb, all->n, K);
    int    split = kb < K, dense = k0 == 0;
    size_t Kc = K > 0 ? (size_t)K : 1, kbc = kb > 0 ? (size_t)kb : 1, LH = (size_t)all->L * all->NH;
    imp_collect *ic = &all->ic;
    size_t S = ic->S, A = ic->A, LNB = (size_t)all->L * all->NB;
    int64_t npos = 0, *uoff = malloc(sizeof(int64_t) * ((size_t)n + 1));
    if (!uoff) return pe_fail(err, PE_ERR_INTERNAL, "out of memory merging a result");
    uoff[0] = 0;
    for (int64_t i = 0; i < n; i++) { /* scored positions of each unit, from the dataset's own cut */
        int64_t np = all->pos_off[u0 + i + 1] - all->pos_off[u0 + i];
        uoff[i + 1] = uoff[i] + np;
    }
    npos = uoff[n];
    /* every field is checked before anything is copied: a bad record changes nothing */
    const double *mem = bin_field(o, "mem", (size_t)n * kbc * 8, err);
    const double *cur = NULL, *lp = NULL, *den = NULL, *att = NULL, *xh = NULL, *xb = NULL, *abl = NULL, *prb = NULL;
    const double *mcc = NULL, *ccc = NULL, *dcc = NULL; /* images */
    const double *kl = mem ? bin_field(o, "kl", (size_t)n * kbc * 8, err) : NULL;
    const int64_t *ag = kl ? bin_field(o, "agree", (size_t)n * kbc * 8, err) : NULL;
    const int64_t *kept = ag ? bin_field(o, "kept", kbc * LH * 8, err) : NULL;
    const int64_t *allowed = kept ? bin_field(o, "allowed", kbc * LH * 8, err) : NULL;
    int good = allowed != NULL;
    if (good && split) good = (lp = bin_field(o, "lp", (size_t)npos * kbc * 8, err)) != NULL;
    if (good && !split) good = (cur = bin_field(o, "curve", (size_t)n * kbc * 8, err)) != NULL;
    if (good && ic->on) good = (xh = bin_field(o, "xh", (size_t)n * kbc * LH * 8, err)) != NULL &&
                               (xb = bin_field(o, "xb", (size_t)n * kbc * LNB * 8, err)) != NULL;
    if (good && dense) good = (den = bin_field(o, "dense", (size_t)n * 8, err)) != NULL;
    if (good && dense && ic->on) good = (att = bin_field(o, "att", (size_t)n * LH * S * 8, err)) != NULL;
    if (good && dense && ic->abl) good = (abl = bin_field(o, "abl", (size_t)n * A * 8, err)) != NULL;
    if (good && dense && ic->P) good = (prb = bin_field(o, "prb", (size_t)n * ic->P * 8, err)) != NULL;
    if (good && all->images) good = (mcc = bin_field(o, "mcc", (size_t)n * kbc * 2 * 8, err)) != NULL;
    if (good && all->images && !split) good = (ccc = bin_field(o, "ccc", (size_t)n * kbc * 2 * 8, err)) != NULL;
    if (good && all->images && dense) good = (dcc = bin_field(o, "dcc", (size_t)n * 2 * 8, err)) != NULL;
    if (good && split && !all->lp_unit) {
        all->lp_unit    = calloc((size_t)all->n, sizeof(double *));
        all->members_in = calloc((size_t)all->n, sizeof(int));
        if (!all->lp_unit || !all->members_in) good = !pe_fail(err, PE_ERR_INTERNAL, "out of memory staging log-probs");
    }
    if (!good) {
        free(uoff);
        return err->code ? err->code : PE_ERR_INPUT;
    }
    double *kbuf = malloc(sizeof(double) * (Kc > (size_t)all->NC ? Kc : (size_t)all->NC)); /* (max(K, NC)) */
    if (!kbuf) {
        free(uoff);
        return pe_fail(err, PE_ERR_INTERNAL, "out of memory merging a result");
    }
    for (int64_t i = 0; i < n; i++) {
        size_t u = (size_t)(u0 + i);
        for (int64_t j = 0; j < kb; j++) {
            size_t dst = u * Kc + (size_t)(k0 + j), src = (size_t)i * kbc + (size_t)j;
            memcpy(&all->mem[dst], &mem[src], 8);
            memcpy(&all->kl[dst], &kl[src], 8);
            memcpy(&all->agree[dst], &ag[src], 8);
            if (!split) memcpy(&all->curve[dst], &cur[src], 8);
            if (mcc) memcpy(&all->mcc[dst * 2], &mcc[src * 2], 16);
            if (ccc) memcpy(&all->ccc[dst * 2], &ccc[src * 2], 16);
            if (ic->on) {
                memcpy(ic->u_xh + (u * Kc + (size_t)(k0 + j)) * LH, xh + ((size_t)i * kbc + (size_t)j) * LH, LH * 8);
                memcpy(ic->u_xb + (u * Kc + (size_t)(k0 + j)) * LNB, xb + ((size_t)i * kbc + (size_t)j) * LNB, LNB * 8);
            }
        }
        if (dense) {
            memcpy(&all->dense[u], &den[i], 8);
            if (dcc) memcpy(&all->dcc[u * 2], &dcc[(size_t)i * 2], 16);
            if (ic->on) memcpy(ic->u_att + u * LH * S, att + (size_t)i * LH * S, LH * S * 8);
            if (ic->abl) memcpy(ic->u_abl + u * A, abl + (size_t)i * A, A * 8);
            if (ic->P) memcpy(ic->u_prb + u * ic->P, prb + (size_t)i * ic->P, (size_t)ic->P * 8);
        }
        if (split) { /* stage this block's log-probs; the curve once every member is in */
            int64_t np = uoff[i + 1] - uoff[i];
            if (!all->lp_unit[u]) all->lp_unit[u] = calloc((size_t)np * Kc + 1, sizeof(double));
            for (int64_t p = 0; p < np; p++)
                for (int64_t j = 0; j < kb; j++)
                    memcpy(&all->lp_unit[u][(size_t)p * Kc + (size_t)(k0 + j)], &lp[((size_t)(uoff[i] + p)) * kbc + (size_t)j], 8);
            all->members_in[u] += (int)kb;
            if (all->members_in[u] == K) {
                if (all->images) curve_from_probs(all, (int)u, all->lp_unit[u], kbuf);
                else curve_from_lp(all, (int)u, all->lp_unit[u], np, kbuf);
                free(all->lp_unit[u]); /* the per-target data of a finished unit is dropped */
                all->lp_unit[u] = NULL;
            }
        }
    }
    int64_t kept_v, allowed_v;
    for (size_t i = 0; i < (size_t)kb * LH; i++) { /* integer sums: order free */
        memcpy(&kept_v, &kept[i], 8);
        memcpy(&allowed_v, &allowed[i], 8);
        all->kept[(size_t)k0 * LH + i] += kept_v;
        all->allowed[(size_t)k0 * LH + i] += allowed_v;
    }
    free(kbuf);
    free(uoff);
    return PE_OK;
}


/* ---- image classifiers ------------------------------------------------------------------- */

void ens_free_cls(ens_cls_result *r) {
    imp_result_free(&r->imp);
    free(r->member);
    free(r->curve);
    free(r->member_cal);
    free(r->kl);
    free(r->agree);
    free(r->kept);
    free(r->allowed);
    if (r->per_example) msgpack_sbuffer_free(r->per_example);
    memset(r, 0, sizeof *r);
}

pe_status ens_images_rows_run(ens_rows *rw, const model *m, const image_dataset *d, const pw_config *c,
                              const ens_options *o, pe_err *err) {
    const model_config *mc = &m->cfg;
    if (!rw->images) return pe_fail(err, PE_ERR_INTERNAL, "rows of a text dataset given to the image evaluation");
    ens_combine combine = o->combine;
    int K = rw->K, NC = rw->NC, L = rw->L, NH = rw->NH, NB = rw->NB, n = rw->n, u0 = rw->u0, TI = rw->Tmax;
    if (n == 0) return PE_OK;
    int    batch = o->batch < n ? o->batch : n;
    size_t Kc = K > 0 ? (size_t)K : 1, LH = (size_t)L * NH, img = (size_t)d->rows * d->cols;
    imp_collect *ic = &rw->ic;
    model_acts a;
    pe_status  st = model_acts_init(&a, m, batch, TI, err);
    if (st) return st;
    int     *units  = pe_malloc((size_t)batch * sizeof(int), err, "batch units");            /* (batch) */
    int     *lens   = pe_malloc((size_t)batch * sizeof(int), err, "batch lengths");          /* (batch) */
    int64_t *ids    = pe_malloc((size_t)batch * sizeof(int64_t), err, "ids");                /* (batch) */
    float   *logits = pe_malloc((size_t)batch * NC * sizeof(float), err, "logits");          /* (batch, NC) */
    double  *pd     = pe_malloc((size_t)batch * NC * sizeof(double), err, "dense probs");    /* (batch, NC) */
    double  *pm     = pe_malloc(Kc * batch * NC * sizeof(double), err, "member probs");      /* (K, batch, NC) */
    float   *lsum   = combine == ENS_COMBINE_LOGIT ? pe_malloc((size_t)batch * NC * sizeof(float), err, "logit sums")
                                                   : NULL;                                  /* (batch, NC) */
    double  *pe     = pe_malloc((size_t)NC * sizeof(double), err, "ensemble probs");         /* (NC) */
    float   *tmp    = pe_malloc((size_t)NC * sizeof(float), err, "mean logits");             /* (NC) */
    if (!units || !lens || !ids || !logits || !pd || !pm || (combine == ENS_COMBINE_LOGIT && !lsum) || !pe || !tmp)
        st = PE_ERR_INTERNAL;
    /* images in dataset order; every number of an image is a function of that image alone (one
     * sgemm per image, pathway draws keyed by the image index), so any split gives the same rows */
    for (int s0 = 0; !st && s0 < n; s0 += batch) {
        int B = n - s0 < batch ? n - s0 : batch, i0 = u0 + s0;
        for (int b = 0; b < B; b++) {
            ids[b]   = i0 + b;
            units[b] = i0 + b;
            lens[b]  = TI;
        }
        const uint8_t *px = d->pixels + (size_t)i0 * img;
        model_pathways dpw = {.cfg = NULL, .n_bands = NB, .att_stats = ic->on ? ic->att_stats : NULL};
        st = model_forward_images_pw(logits, &a, m, px, B, &dpw, 0, err);
        if (!st) imp_collect_dense(ic, B, units);
        for (int b = 0; !st && b < B; b++) softmax_d(pd + (size_t)b * NC, logits + (size_t)b * NC, NC);
        if (lsum) memset(lsum, 0, (size_t)B * NC * sizeof(float));
        for (int k = 0; !st && k < K; k++) { /* local member k is member rw->k0 + k of the ensemble */
            model_pathways pw = {.cfg = c, .member = rw->k0 + k, .seq_ids = ids, .kept = rw->kept + (size_t)k * LH,
                                 .allowed = rw->allowed + (size_t)k * LH, .n_bands = NB,
                                 .kept_bh = ic->on ? ic->kept_bh : NULL, .band_kept = ic->on ? ic->band_kept : NULL};
            st = model_forward_images_pw(logits, &a, m, px, B, &pw, 0, err);
            if (!st) imp_collect_member(ic, k, B, units, lens, mc->causal);
            for (int b = 0; !st && b < B; b++) softmax_d(pm + ((size_t)k * batch + b) * NC, logits + (size_t)b * NC, NC);
            if (lsum)
                for (int b = 0; b < B; b++)
                    for (int i = 0; i < NC; i++) lsum[(size_t)b * NC + i] += logits[(size_t)b * NC + i];
            /* curve point k (logit mode needs the running sums now); a split block leaves it to the coordinator */
            for (int b = 0; !st && !rw->split && b < B; b++) {
                size_t u = (size_t)(i0 + b - u0);
                if (combine == ENS_COMBINE_LOGIT) {
                    for (int i = 0; i < NC; i++) tmp[i] = lsum[(size_t)b * NC + i] / (k + 1);
                    softmax_d(pe, tmp, NC);
                } else {
                    mix_probs(pe, pm + (size_t)b * NC, (size_t)batch * NC, 1, k, NC);
                }
                cls_point(&rw->curve[u * Kc + k], &rw->ccc[(u * Kc + k) * 2], pe, NC, d->labels[i0 + b]);
            }
        }
        /* explicit ablations (each head, then each layer, then each band, dropped alone); drop-one passes */
        for (int ai = 0; !st && ai < ic->A + ic->P; ai++) {
            int            am;
            pw_config      ac  = imp_ablation_config(ic, ai, &am);
            model_pathways apw = {.cfg = &ac, .member = am, .seq_ids = ids}; /* ids: the image index */
            st = model_forward_images_pw(logits, &a, m, px, B, &apw, 0, err);
            for (int b = 0; !st && b < B; b++) {
                softmax_d(pe, logits + (size_t)b * NC, NC);
                if (ai < ic->A) ic->u_abl[(size_t)(i0 + b - u0) * ic->A + ai] = -log(pe[d->labels[i0 + b]]);
                else ic->u_prb[(size_t)(i0 + b - u0) * ic->P + (ai - ic->A)] = -log(pe[d->labels[i0 + b]]);
            }
        }
        /* per image: dense, members, KL and agreement */
        for (int b = 0; !st && b < B; b++) {
            int           y = d->labels[i0 + b];
            size_t        u = (size_t)(i0 + b - u0);
            const double *q = pd + (size_t)b * NC;
            int           ad = argmax_d(q, NC);
            cls_point(&rw->dense[u], &rw->dcc[u * 2], q, NC, y);
            for (int k = 0; k < K; k++) {
                const double *p = pm + ((size_t)k * batch + b) * NC;
                cls_point(&rw->mem[u * Kc + k], &rw->mcc[(u * Kc + k) * 2], p, NC, y);
                double kl = 0.0;
                for (int i = 0; i < NC; i++)
                    if (q[i] > 0) kl += q[i] * (log(q[i]) - log(p[i] > 0 ? p[i] : 1e-300));
                rw->kl[u * Kc + k] = kl;
                rw->agree[u * Kc + k] = argmax_d(p, NC) == ad;
                if (rw->split) /* the coordinator mixes the blocks: ship every class probability */
                    for (int i = 0; i < NC; i++) rw->lp[((size_t)rw->pos_off[u] + i) * Kc + k] = p[i];
            }
        }
    }
    free(units); free(lens); free(ids); free(logits); free(pd); free(pm); free(lsum); free(pe); free(tmp);
    model_acts_free(&a);
    return st;
}

pe_status ens_images_reduce(ens_cls_result *r, ens_rows *all, const image_dataset *d, const ens_options *o,
                            pe_err *err) {
    memset(r, 0, sizeof *r);
    int K = all->K, L = all->L, NH = all->NH, N = d->n;
    if (!all->images || all->u0 != 0 || all->n != N)
        return pe_fail(err, PE_ERR_INTERNAL, "reduce needs the rows of every image");
    size_t Kc = K > 0 ? (size_t)K : 1, LH = (size_t)L * NH;
    r->K = K;
    r->L = L;
    r->NH = NH;
    imp_collect *ic = &all->ic;
    pe_status st = imp_result_init(&r->imp, ic, err);
    r->member     = pe_calloc(Kc, sizeof(eval_cls_acc), err, "members");
    r->curve      = pe_calloc(Kc, sizeof(eval_cls_acc), err, "curve");
    r->member_cal = pe_calloc(Kc, sizeof(ens_calib), err, "calibration");
    r->kl         = pe_calloc(Kc, sizeof(double), err, "KL");
    r->agree      = pe_calloc(Kc, sizeof(int64_t), err, "agree");
    r->kept       = pe_malloc(Kc * LH * sizeof(int64_t), err, "kept");
    r->allowed    = pe_malloc(Kc * LH * sizeof(int64_t), err, "allowed");
    if (!st && (!r->member || !r->curve || !r->member_cal || !r->kl || !r->agree || !r->kept || !r->allowed))
        st = PE_ERR_INTERNAL;
    if (!st) {
        memcpy(r->kept, all->kept, Kc * LH * sizeof(int64_t));
        memcpy(r->allowed, all->allowed, Kc * LH * sizeof(int64_t));
    }
    msgpack_sbuffer *sb = NULL;
    msgpack_packer   pk;
    if (!st && o->per_example) {
        sb = msgpack_sbuffer_new();
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, (size_t)N);
        r->per_example = sb;
    }
    r->queries = (int64_t)N * all->Tmax;
    for (int u = 0; !st && u < N; u++) { /* canonical reduction in image order */
        const double *dcc = all->dcc + (size_t)u * 2, *mem = all->mem + (size_t)u * Kc;
        double        dn  = all->dense[u];
        int           cd  = dcc[1] != 0.0;
        eval_cls_add(&r->dense, dn, cd);
        calib_add(&r->dense_cal, dcc[0], cd);
        for (int k = 0; k < K; k++) {
            const double *mc = all->mcc + ((size_t)u * Kc + k) * 2, *cc = all->ccc + ((size_t)u * Kc + k) * 2;
            eval_cls_add(&r->member[k], mem[k], mc[1] != 0.0);
            calib_add(&r->member_cal[k], mc[0], mc[1] != 0.0);
            eval_cls_add(&r->curve[k], all->curve[(size_t)u * Kc + k], cc[1] != 0.0);
            r->kl[k] += all->kl[(size_t)u * Kc + k];
            r->agree[k] += all->agree[(size_t)u * Kc + k];
        }
        if (K > 0) {
            const double *cc = all->ccc + ((size_t)u * Kc + K - 1) * 2;
            double        en = all->curve[(size_t)u * Kc + K - 1];
            int           ce = cc[1] != 0.0;
            eval_cls_add(&r->ensemble, en, ce);
            calib_add(&r->ensemble_cal, cc[0], ce);
            paired_add(&r->diff_nll, en - dn, 1.0);
            paired_add(&r->diff_acc, (double)(ce - cd), 1.0);
        }
        imp_reduce_unit(&r->imp, ic, u, mem, dn, 1.0); /* y: member NLL of the image */
        if (sb) {
            msgpack_pack_map(&pk, 5);
            msgpack_pack_str_with_body(&pk, "unit", 4);
            msgpack_pack_int64(&pk, u);
            msgpack_pack_str_with_body(&pk, "label", 5);
            msgpack_pack_int64(&pk, d->labels[u]);
            msgpack_pack_str_with_body(&pk, "dense_nll", 9);
            msgpack_pack_double(&pk, dn);
            msgpack_pack_str_with_body(&pk, "member_nll", 10);
            msgpack_pack_array(&pk, (size_t)K);
            for (int k = 0; k < K; k++) msgpack_pack_double(&pk, mem[k]);
            msgpack_pack_str_with_body(&pk, "ensemble_nll", 12);
            if (K > 0) msgpack_pack_double(&pk, all->curve[(size_t)u * Kc + K - 1]);
            else msgpack_pack_nil(&pk);
        }
    }
    if (!st) st = imp_finish(&r->imp, ic, N, err);
    if (st) ens_free_cls(r);
    return st;
}

pe_status ens_eval_images(ens_cls_result *r, const model *m, const image_dataset *d, const pw_config *c,
                          const ens_options *o, pe_err *err) {
    memset(r, 0, sizeof *r);
    ens_rows *all = ens_rows_new_images(m, d, c, o, 0, d->n, 0, c ? c->members : 0, err);
    if (!all) return err->code ? err->code : PE_ERR_INTERNAL;
    pe_status st = ens_images_rows_run(all, m, d, c, o, err);
    if (!st) st = ens_images_reduce(r, all, d, o, err);
    ens_rows_free(all);
    return st;
}
