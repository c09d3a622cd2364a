/* ensemble.c: dense + K pathway-sampled members, combined; per-unit sums reduced in order. */
#include "ensemble.h"

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

/* log-softmax pieces of one row of logits (V), in double */
static double row_lse(const float *x, int V, int *argmax) {
    double mx = x[0];
    int    am = 0;
    for (int v = 1; v < V; v++)
        if (x[v] > mx) {
            mx = x[v];
            am = v;
        }
    double s = 0.0;
    for (int v = 0; v < V; v++) s += exp((double)x[v] - mx);
    if (argmax) *argmax = am;
    return mx + log(s);
}

/* log((1/k) Σ_{m<k} exp(lp[m])) */
static double log_mean_exp(const double *lp, int k) {
    double mx = lp[0];
    for (int i = 1; i < k; i++) mx = lp[i] > mx ? lp[i] : mx;
    double s = 0.0;
    for (int i = 0; i < k; i++) s += exp(lp[i] - mx);
    return mx + log(s / k);
}

static int *order_by_length(const text_dataset *d, pe_err *err) {
    int *order = pe_malloc((size_t)d->n_seqs * sizeof(int), err, "sequence order");
    if (!order) return NULL;
    int maxlen = 0;
    for (int s = 0; s < d->n_seqs; s++) maxlen = d->seqs[s].len > maxlen ? d->seqs[s].len : maxlen;
    int *count = calloc((size_t)maxlen + 2, sizeof(int));
    if (!count) {
        free(order);
        pe_fail(err, PE_ERR_INTERNAL, "out of memory sorting sequences");
        return NULL;
    }
    for (int s = 0; s < d->n_seqs; s++) count[d->seqs[s].len + 1]++;
    for (int l = 1; l <= maxlen + 1; l++) count[l] += count[l - 1];
    for (int s = 0; s < d->n_seqs; s++) order[count[d->seqs[s].len]++] = s;
    free(count);
    return order;
}

/* ---- language models ---------------------------------------------------------------------- */

void ens_free_lm(ens_lm_result *r) {
    free(r->member);
    free(r->curve);
    free(r->kl);
    free(r->agree);
    free(r->kept);
    free(r->allowed);
    if (r->per_example) msgpack_sbuffer_free(r->per_example);
    memset(r, 0, sizeof *r);
}

pe_status ens_eval_text(ens_lm_result *r, const model *m, const text_dataset *d, const pw_config *c,
                        ens_combine combine, int batch, int per_example, pe_err *err) {
    memset(r, 0, sizeof *r);
    const model_config *mc = &m->cfg;
    int K = c ? c->members : 0, V = mc->vocab_size, L = mc->n_layers, NH = mc->n_heads, Tmax = 0, N = d->n_seqs;
    for (int s = 0; s < N; s++) Tmax = d->seqs[s].len > Tmax ? d->seqs[s].len : Tmax;
    if (Tmax > mc->seq_len)
        return pe_fail(err, PE_ERR_INPUT, "data has sequences of %d tokens but the model's context is %d; set data.context",
                       Tmax, mc->seq_len);
    if (N == 0 || Tmax < 2) return pe_fail(err, PE_ERR_INPUT, "the dataset has no sequence with a target to score");
    if (batch > N) batch = N;
    r->K = K;
    r->L = L;
    r->NH = NH;
    size_t Kc = K > 0 ? (size_t)K : 1, BT = (size_t)batch * Tmax, LH = (size_t)L * NH;
    model_acts a;
    pe_status  st = model_acts_init(&a, m, batch, Tmax, err);
    if (st) return st;
    /* batch buffers */
    int     *tokens  = pe_malloc(BT * sizeof(int), err, "tokens");           /* (batch, T) */
    int     *lens    = pe_malloc((size_t)batch * sizeof(int), err, "lens");  /* (batch) */
    int64_t *ids     = pe_malloc((size_t)batch * sizeof(int64_t), err, "ids"); /* (batch) */
    float   *logits  = pe_malloc(BT * V * sizeof(float), err, "logits");     /* (batch, T, V) member */
    double  *lp_d    = pe_malloc(BT * V * sizeof(double), err, "dense log-probs"); /* (batch, T, V) */
    float   *lsum    = combine == ENS_COMBINE_LOGIT ? pe_malloc(BT * V * sizeof(float), err, "logit sums") : NULL;
    int     *am_d    = pe_malloc(BT * sizeof(int), err, "dense argmax");     /* (batch, T) */
    double  *lpt     = pe_malloc(Kc * BT * sizeof(double), err, "member target log-probs"); /* (K, batch, T) */
    double  *lpc     = pe_malloc(Kc * BT * sizeof(double), err, "curve target log-probs");  /* (K, batch, T) logit mode */
    /* per-unit results, dataset order */
    double  *u_dense = pe_malloc((size_t)N * sizeof(double), err, "unit dense");   /* (N) */
    double  *u_mem   = pe_malloc((size_t)N * Kc * sizeof(double), err, "unit members"); /* (N, K) */
    double  *u_curve = pe_malloc((size_t)N * Kc * sizeof(double), err, "unit curve");   /* (N, K) */
    double  *u_kl    = pe_calloc((size_t)N * Kc, sizeof(double), err, "unit KL");        /* (N, K) */
    int64_t *u_agree = pe_calloc((size_t)N * Kc, sizeof(int64_t), err, "unit agree");    /* (N, K) */
    double  *kbuf    = pe_malloc(Kc * sizeof(double), err, "member scratch");   /* (K) */
    float   *lrow    = pe_malloc((size_t)V * sizeof(float), err, "mean logits");  /* (V) */
    int     *order   = order_by_length(d, err);
    r->member  = pe_calloc(Kc, sizeof(eval_lm_acc), err, "member results");
    r->curve   = pe_calloc(Kc, sizeof(eval_lm_acc), err, "curve");
    r->kl      = pe_calloc(Kc, sizeof(double), err, "KL");
    r->agree   = pe_calloc(Kc, sizeof(int64_t), err, "agreement");
    r->kept    = pe_calloc(Kc * LH, sizeof(int64_t), err, "kept");
    r->allowed = pe_calloc(Kc * LH, sizeof(int64_t), err, "allowed");
    if (!tokens || !lens || !ids || !logits || !lp_d || (combine == ENS_COMBINE_LOGIT && !lsum) || !am_d || !lpt ||
        !lpc || !u_dense || !u_mem || !u_curve || !u_kl || !u_agree || !kbuf || !lrow || !order || !r->member || !r->curve || !r->kl ||
        !r->agree || !r->kept || !r->allowed)
        st = PE_ERR_INTERNAL;

    for (int s0 = 0; !st && s0 < N; s0 += batch) {
        int B = N - s0 < batch ? N - s0 : batch, T = 0;
        for (int b = 0; b < B; b++) T = d->seqs[order[s0 + b]].len > T ? d->seqs[order[s0 + b]].len : T;
        for (int b = 0; b < B; b++) {
            const text_seq *sq = &d->seqs[order[s0 + b]];
            lens[b] = sq->len;
            ids[b]  = sq->doc_id;
            memcpy(tokens + (size_t)b * T, d->tokens + sq->start, (size_t)sq->len * sizeof(int));
            for (int t = sq->len; t < T; t++) tokens[(size_t)b * T + t] = 0;
        }
        /* dense */
        st = model_forward_tokens_pw(logits, &a, m, tokens, lens, B, T, NULL, 0, err);
        for (int b = 0; !st && b < B; b++) {
            const text_seq *sq = &d->seqs[order[s0 + b]];
            double nll = 0.0;
            for (int p = sq->score_begin; p < sq->len - 1; p++) {
                size_t row = (size_t)b * T + p;
                const float *x = logits + row * V;
                double lse = row_lse(x, V, &am_d[row]);
                for (int v = 0; v < V; v++) lp_d[row * V + v] = (double)x[v] - lse;
                nll -= (double)x[d->tokens[sq->start + p + 1]] - lse;
            }
            u_dense[order[s0 + b]] = nll;
        }
        if (lsum) memset(lsum, 0, (size_t)B * T * V * sizeof(float));
        /* members */
        for (int k = 0; !st && k < K; k++) {
            model_pathways pw = {c, k, ids, r->kept + (size_t)k * LH, r->allowed + (size_t)k * LH};
            st = model_forward_tokens_pw(logits, &a, m, tokens, lens, B, T, &pw, 0, err);
            for (int b = 0; !st && b < B; b++) {
                const text_seq *sq = &d->seqs[order[s0 + b]];
                size_t          u  = (size_t)order[s0 + b];
                for (int p = sq->score_begin; p < sq->len - 1; p++) {
                    size_t       row = (size_t)b * T + p;
                    const float *x   = logits + row * V;
                    const double *ld = lp_d + row * V;
                    int          am;
                    double       lse = row_lse(x, V, &am);
                    double       kl  = 0.0;
                    for (int v = 0; v < V; v++) {
                        double ldv = ld[v];
                        kl += exp(ldv) * (ldv - ((double)x[v] - lse));
                    }
                    int tgt = d->tokens[sq->start + p + 1];
                    lpt[((size_t)k * B + b) * T + p] = (double)x[tgt] - lse;
                    u_kl[u * Kc + k] += kl;
                    u_agree[u * Kc + k] += am == am_d[row];
                    if (lsum) { /* running mean of logits: curve point k, scored like a member */
                        float *sm = lsum + row * V;
                        for (int v = 0; v < V; v++) {
                            sm[v] += x[v];
                            lrow[v] = sm[v] / (float)(k + 1);
                        }
                        lpc[((size_t)k * B + b) * T + p] = (double)lrow[tgt] - row_lse(lrow, V, NULL);
                    }
                }
            }
        }
        /* per unit: members and the ensemble-size curve */
        for (int b = 0; !st && b < B; b++) {
            const text_seq *sq = &d->seqs[order[s0 + b]];
            size_t          u  = (size_t)order[s0 + b];
            for (int k = 0; k < K; k++) {
                double mn = 0.0, cn = 0.0;
                for (int p = sq->score_begin; p < sq->len - 1; p++) {
                    mn -= lpt[((size_t)k * B + b) * T + p];
                    if (combine == ENS_COMBINE_LOGIT) {
                        cn -= lpc[((size_t)k * B + b) * T + p];
                    } else {
                        for (int j = 0; j <= k; j++) kbuf[j] = lpt[((size_t)j * B + b) * T + p];
                        cn -= log_mean_exp(kbuf, k + 1);
                    }
                }
                u_mem[u * Kc + k]   = mn;
                u_curve[u * Kc + k] = cn;
            }
        }
    }
    /* canonical reduction in dataset order */
    msgpack_sbuffer *sb = NULL;
    msgpack_packer   pk;
    if (!st && per_example) {
        sb = msgpack_sbuffer_new();
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, (size_t)N);
        r->per_example = sb;
    }
    for (int u = 0; !st && u < N; u++) {
        const text_seq *sq = &d->seqs[u];
        int64_t         nt = sq->len - 1 - sq->score_begin, nb = 0;
        for (int p = sq->score_begin; p < sq->len - 1; p++) nb += d->tok_bytes[sq->start + p + 1];
        eval_lm_add_unit(&r->dense, u_dense[u], nt, nb);
        r->queries += sq->len;
        double mean_m = 0.0;
        for (int k = 0; k < K; k++) {
            eval_lm_add_unit(&r->member[k], u_mem[(size_t)u * Kc + k], nt, nb);
            eval_lm_add_unit(&r->curve[k], u_curve[(size_t)u * Kc + k], nt, nb);
            r->kl[k] += u_kl[(size_t)u * Kc + k];
            r->agree[k] += u_agree[(size_t)u * Kc + k];
            mean_m += u_mem[(size_t)u * Kc + k];
        }
        if (K > 0) {
            double ens = u_curve[(size_t)u * Kc + K - 1];
            eval_lm_add_unit(&r->ensemble, ens, nt, nb);
            eval_lm_add_unit(&r->member_mean, mean_m / K, nt, nb);
            if (nt > 0) paired_add(&r->diff, ens - u_dense[u], (double)nt);
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
            msgpack_pack_double(&pk, u_dense[u]);
            msgpack_pack_str_with_body(&pk, "member_nll", 10);
            msgpack_pack_array(&pk, (size_t)K);
            for (int k = 0; k < K; k++) msgpack_pack_double(&pk, u_mem[(size_t)u * Kc + k]);
            msgpack_pack_str_with_body(&pk, "ensemble_nll", 12);
            if (K > 0) msgpack_pack_double(&pk, u_curve[(size_t)u * Kc + K - 1]);
            else msgpack_pack_nil(&pk);
        }
    }
    free(tokens); free(lens); free(ids); free(logits); free(lp_d); free(lsum); free(am_d); free(lpt); free(lpc);
    free(u_dense); free(u_mem); free(u_curve); free(u_kl); free(u_agree); free(kbuf); free(lrow); free(order);
    model_acts_free(&a);
    if (st) ens_free_lm(r);
    return st;
}

/* ---- image classifiers ------------------------------------------------------------------- */

void ens_free_cls(ens_cls_result *r) {
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

pe_status ens_eval_images(ens_cls_result *r, const model *m, const image_dataset *d, const pw_config *c,
                          ens_combine combine, int batch, int per_example, pe_err *err) {
    memset(r, 0, sizeof *r);
    const model_config *mc = &m->cfg;
    int K = c ? c->members : 0, NC = mc->n_classes, L = mc->n_layers, NH = mc->n_heads, N = d->n;
    if (d->rows != mc->image_size || d->cols != mc->image_size || mc->channels != 1)
        return pe_fail(err, PE_ERR_INPUT, "images are %dx%d grey but the model takes %dx%dx%d; wrong model or data",
                       d->rows, d->cols, mc->channels, mc->image_size, mc->image_size);
    if (d->n_classes > NC)
        return pe_fail(err, PE_ERR_INPUT, "labels go up to %d but the model has %d classes", d->n_classes - 1, NC);
    if (N == 0) return pe_fail(err, PE_ERR_INPUT, "the image dataset is empty");
    if (batch > N) batch = N;
    r->K = K;
    r->L = L;
    r->NH = NH;
    size_t Kc = K > 0 ? (size_t)K : 1, LH = (size_t)L * NH, img = (size_t)d->rows * d->cols;
    model_acts a;
    pe_status  st = model_acts_init(&a, m, batch, model_image_seq_len(mc), err);
    if (st) return st;
    int64_t *ids    = pe_malloc((size_t)batch * sizeof(int64_t), err, "ids");
    float   *logits = pe_malloc((size_t)batch * NC * sizeof(float), err, "logits");        /* (batch, NC) */
    double  *pd     = pe_malloc((size_t)batch * NC * sizeof(double), err, "dense probs");  /* (batch, NC) */
    double  *pm     = pe_malloc((size_t)Kc * batch * NC * sizeof(double), err, "member probs"); /* (K, batch, NC) */
    float   *lsum   = pe_calloc((size_t)batch * NC, sizeof(float), err, "logit sums");     /* (batch, NC) */
    double  *u_vals = pe_malloc((size_t)N * (3 + 2 * Kc) * sizeof(double), err, "per image"); /* per-example log */
    r->member     = pe_calloc(Kc, sizeof(eval_cls_acc), err, "members");
    r->curve      = pe_calloc(Kc, sizeof(eval_cls_acc), err, "curve");
    r->member_cal = pe_calloc(Kc, sizeof(ens_calib), err, "calibration");
    r->kl         = pe_calloc(Kc, sizeof(double), err, "KL");
    r->agree      = pe_calloc(Kc, sizeof(int64_t), err, "agree");
    r->kept       = pe_calloc(Kc * LH, sizeof(int64_t), err, "kept");
    r->allowed    = pe_calloc(Kc * LH, sizeof(int64_t), err, "allowed");
    if (!ids || !logits || !pd || !pm || !lsum || !u_vals || !r->member || !r->curve || !r->member_cal || !r->kl ||
        !r->agree || !r->kept || !r->allowed)
        st = PE_ERR_INTERNAL;
    double *pe  = malloc((size_t)NC * sizeof(double)); /* (NC) ensemble probabilities */
    float  *tmp = malloc((size_t)NC * sizeof(float));  /* (NC) mean logits */
    if (!pe || !tmp) st = pe_fail(err, PE_ERR_INTERNAL, "out of memory");
    /* images are processed in dataset order, so accumulating directly is the canonical order */
    for (int i0 = 0; !st && i0 < N; i0 += batch) {
        int B = N - i0 < batch ? N - i0 : batch;
        for (int b = 0; b < B; b++) ids[b] = i0 + b;
        r->queries += (int64_t)B * model_image_seq_len(mc);
        const uint8_t *px = d->pixels + (size_t)i0 * img;
        st = model_forward_images_pw(logits, &a, m, px, B, NULL, 0, err);
        for (int b = 0; !st && b < B; b++) softmax_d(pd + (size_t)b * NC, logits + (size_t)b * NC, NC);
        for (int k = 0; !st && k < K; k++) {
            model_pathways pw = {c, k, ids, r->kept + (size_t)k * LH, r->allowed + (size_t)k * LH};
            st = model_forward_images_pw(logits, &a, m, px, B, &pw, 0, err);
            for (int b = 0; !st && b < B; b++) softmax_d(pm + ((size_t)k * batch + b) * NC, logits + (size_t)b * NC, NC);
            if (combine == ENS_COMBINE_LOGIT)
                for (int b = 0; b < B; b++)
                    for (int i = 0; i < NC; i++) lsum[(size_t)b * NC + i] += logits[(size_t)b * NC + i];
            /* curve point k for this batch (logit mode needs the running sums now) */
            for (int b = 0; !st && b < B; b++) {
                int y = d->labels[i0 + b];
                if (combine == ENS_COMBINE_LOGIT) {
                    for (int i = 0; i < NC; i++) tmp[i] = lsum[(size_t)b * NC + i] / (k + 1);
                    softmax_d(pe, tmp, NC);
                } else {
                    for (int i = 0; i < NC; i++) {
                        double s = 0.0;
                        for (int j = 0; j <= k; j++) s += pm[((size_t)j * batch + b) * NC + i];
                        pe[i] = s / (k + 1);
                    }
                }
                eval_cls_add(&r->curve[k], -log(pe[y]), argmax_d(pe, NC) == y);
                if (k == K - 1) {
                    const double *q = pd + (size_t)b * NC;
                    int cd = argmax_d(q, NC) == y, ce = argmax_d(pe, NC) == y;
                    eval_cls_add(&r->ensemble, -log(pe[y]), ce);
                    calib_add(&r->ensemble_cal, pe[argmax_d(pe, NC)], ce);
                    paired_add(&r->diff_nll, -log(pe[y]) + log(q[y]), 1.0);
                    paired_add(&r->diff_acc, (double)(ce - cd), 1.0);
                    u_vals[(size_t)(i0 + b) * (3 + 2 * Kc) + 2] = -log(pe[y]);
                }
            }
        }
        for (int b = 0; !st && b < B; b++) {
            int           y = d->labels[i0 + b];
            const double *q = pd + (size_t)b * NC;
            int           ad = argmax_d(q, NC);
            eval_cls_add(&r->dense, -log(q[y]), ad == y);
            calib_add(&r->dense_cal, q[ad], ad == y);
            double *uv = u_vals + (size_t)(i0 + b) * (3 + 2 * Kc);
            uv[0] = y;
            uv[1] = -log(q[y]);
            for (int k = 0; k < K; k++) {
                const double *p = pm + ((size_t)k * batch + b) * NC;
                int am = argmax_d(p, NC);
                eval_cls_add(&r->member[k], -log(p[y]), am == y);
                calib_add(&r->member_cal[k], p[am], am == y);
                double kl = 0.0;
                for (int i = 0; i < NC; i++)
                    if (q[i] > 0) kl += q[i] * (log(q[i]) - log(p[i] > 0 ? p[i] : 1e-300));
                r->kl[k] += kl;
                r->agree[k] += am == ad;
                uv[3 + k] = -log(p[y]);
                uv[3 + Kc + k] = am;
            }
        }
    }
    if (!st && per_example) {
        msgpack_sbuffer *sb = msgpack_sbuffer_new();
        msgpack_packer   pk;
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, (size_t)N);
        for (int u = 0; u < N; u++) {
            const double *uv = u_vals + (size_t)u * (3 + 2 * Kc);
            msgpack_pack_map(&pk, 5);
            msgpack_pack_str_with_body(&pk, "unit", 4);
            msgpack_pack_int64(&pk, u);
            msgpack_pack_str_with_body(&pk, "label", 5);
            msgpack_pack_int64(&pk, (int64_t)uv[0]);
            msgpack_pack_str_with_body(&pk, "dense_nll", 9);
            msgpack_pack_double(&pk, uv[1]);
            msgpack_pack_str_with_body(&pk, "member_nll", 10);
            msgpack_pack_array(&pk, (size_t)K);
            for (int k = 0; k < K; k++) msgpack_pack_double(&pk, uv[3 + k]);
            msgpack_pack_str_with_body(&pk, "ensemble_nll", 12);
            if (K > 0) msgpack_pack_double(&pk, uv[2]);
            else msgpack_pack_nil(&pk);
        }
        r->per_example = sb;
    }
    free(pe); free(tmp); free(ids); free(logits); free(pd); free(pm); free(lsum); free(u_vals);
    model_acts_free(&a);
    if (st) ens_free_cls(r);
    return st;
}
