/* results.c: results.json objects and CSV tables from the ensemble results. */
#include "results.h"

#include "importance.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define Z95 1.959963984540054 /* two-sided 95% normal quantile */

static cJSON *num(double x) { return isfinite(x) ? cJSON_CreateNumber(x) : cJSON_CreateNull(); }

static void add_ci(cJSON *o, const char *name, double mean, double se) {
    cJSON *a = cJSON_AddArrayToObject(o, name);
    cJSON_AddItemToArray(a, num(mean - Z95 * se));
    cJSON_AddItemToArray(a, num(mean + Z95 * se));
}

static int64_t sum_i64(const int64_t *x, size_t n) {
    int64_t s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

/* the LM metric block of one accumulator */
static cJSON *lm_block(const eval_lm_acc *a) {
    cJSON *o   = cJSON_CreateObject();
    double nll = eval_lm_nll(a), se = eval_lm_nll_stderr(a);
    cJSON_AddItemToObject(o, "nll_per_token", num(nll));
    cJSON_AddItemToObject(o, "nll_per_token_stderr", num(se));
    add_ci(o, "nll_per_token_ci95", nll, se);
    cJSON_AddItemToObject(o, "perplexity", num(exp(nll)));
    cJSON_AddItemToObject(o, "bits_per_token", num(nll / log(2.0)));
    cJSON_AddItemToObject(o, "bits_per_byte", num(a->bytes ? a->sum_nll / (double)a->bytes / log(2.0) : NAN));
    cJSON_AddNumberToObject(o, "tokens", (double)a->tokens);
    cJSON_AddNumberToObject(o, "bytes", (double)a->bytes);
    cJSON_AddNumberToObject(o, "units", (double)a->units);
    return o;
}

static void add_paired(cJSON *o, const char *name, const ens_paired *p) {
    cJSON *d  = cJSON_AddObjectToObject(o, name);
    double m = ens_paired_mean(p), se = ens_paired_stderr(p);
    cJSON_AddItemToObject(d, "mean", num(m));
    cJSON_AddItemToObject(d, "stderr", num(se));
    add_ci(d, "ci95", m, se);
}

void results_add_lm(void *root_, const ens_lm_result *r) {
    cJSON *root = root_;
    cJSON_AddItemToObject(root, "dense", lm_block(&r->dense));
    if (r->K == 0) return;
    size_t LH = (size_t)r->L * r->NH;
    cJSON *e = lm_block(&r->ensemble);
    add_paired(e, "minus_dense", &r->diff);
    cJSON_AddItemToObject(root, "ensemble", e);
    cJSON_AddItemToObject(root, "member_mean", lm_block(&r->member_mean));
    cJSON *ms = cJSON_AddArrayToObject(root, "members");
    for (int k = 0; k < r->K; k++) {
        cJSON  *o    = lm_block(&r->member[k]);
        int64_t kept = sum_i64(r->kept + k * LH, LH), all = sum_i64(r->allowed + k * LH, LH);
        cJSON_AddNumberToObject(o, "member", k);
        cJSON_AddItemToObject(o, "kl_from_dense", num(r->dense.tokens ? r->kl[k] / (double)r->dense.tokens : NAN));
        cJSON_AddItemToObject(o, "top1_agreement", num(r->dense.tokens ? (double)r->agree[k] / (double)r->dense.tokens : NAN));
        cJSON_AddItemToObject(o, "kept_fraction", num(all ? (double)kept / (double)all : NAN));
        cJSON_AddItemToObject(o, "mean_kept_keys", num(r->queries ? (double)kept / (double)LH / (double)r->queries : NAN));
        cJSON_AddItemToObject(o, "mean_allowed_keys", num(r->queries ? (double)all / (double)LH / (double)r->queries : NAN));
        cJSON_AddItemToArray(ms, o);
    }
    cJSON *cv = cJSON_AddArrayToObject(root, "curve");
    for (int k = 0; k < r->K; k++) {
        cJSON *o = lm_block(&r->curve[k]);
        cJSON_AddNumberToObject(o, "k", k + 1);
        cJSON_AddItemToArray(cv, o);
    }
}

static cJSON *cls_block(const eval_cls_acc *a, const ens_calib *cal) {
    cJSON *o = cJSON_CreateObject();
    double n = (double)a->examples, p = n > 0 ? (double)a->correct / n : NAN, nll = n > 0 ? a->sum_nll / n : NAN;
    double var = n > 1 ? (a->sum_nll2 - n * nll * nll) / (n - 1) : NAN;
    double pse = n > 1 ? sqrt(p * (1 - p) / (n - 1)) : NAN, nse = n > 1 && var >= 0 ? sqrt(var / n) : NAN;
    cJSON_AddItemToObject(o, "accuracy", num(p));
    cJSON_AddItemToObject(o, "accuracy_stderr", num(pse));
    add_ci(o, "accuracy_ci95", p, pse);
    cJSON_AddItemToObject(o, "nll", num(nll));
    cJSON_AddItemToObject(o, "nll_stderr", num(nse));
    add_ci(o, "nll_ci95", nll, nse);
    if (cal) cJSON_AddItemToObject(o, "ece", num(ens_calib_ece(cal)));
    cJSON_AddNumberToObject(o, "examples", n);
    return o;
}

void results_add_cls(void *root_, const ens_cls_result *r) {
    cJSON *root = root_;
    cJSON_AddItemToObject(root, "dense", cls_block(&r->dense, &r->dense_cal));
    if (r->K == 0) return;
    size_t LH = (size_t)r->L * r->NH;
    cJSON *e = cls_block(&r->ensemble, &r->ensemble_cal);
    add_paired(e, "nll_minus_dense", &r->diff_nll);
    add_paired(e, "accuracy_minus_dense", &r->diff_acc);
    cJSON_AddItemToObject(root, "ensemble", e);
    cJSON *ms = cJSON_AddArrayToObject(root, "members");
    double n = (double)r->dense.examples;
    for (int k = 0; k < r->K; k++) {
        cJSON  *o    = cls_block(&r->member[k], &r->member_cal[k]);
        int64_t kept = sum_i64(r->kept + k * LH, LH), all = sum_i64(r->allowed + k * LH, LH);
        cJSON_AddNumberToObject(o, "member", k);
        cJSON_AddItemToObject(o, "kl_from_dense", num(n > 0 ? r->kl[k] / n : NAN));
        cJSON_AddItemToObject(o, "top1_agreement", num(n > 0 ? (double)r->agree[k] / n : NAN));
        cJSON_AddItemToObject(o, "kept_fraction", num(all ? (double)kept / (double)all : NAN));
        cJSON_AddItemToObject(o, "mean_kept_keys", num(r->queries ? (double)kept / (double)LH / (double)r->queries : NAN));
        cJSON_AddItemToArray(ms, o);
    }
    cJSON *cv = cJSON_AddArrayToObject(root, "curve");
    for (int k = 0; k < r->K; k++) {
        cJSON *o = cls_block(&r->curve[k], NULL);
        cJSON_AddNumberToObject(o, "k", k + 1);
        cJSON_AddItemToArray(cv, o);
    }
}

/* ---- CSV ------------------------------------------------------------------------------------ */

typedef struct {
    char  *s;
    size_t len, cap;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t nc = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char  *p  = realloc(b->s, nc);
        if (!p) return;
        b->s   = p;
        b->cap = nc;
    }
}

/* CSV cells: full precision; a missing value (NaN, no estimate) is an empty cell, never "nan" */
static void sb_cell(strbuf *b, double x) {
    if (isfinite(x)) sb_printf(b, ",%.17g", x);
    else sb_printf(b, ",");
}

char *results_members_csv_lm(const ens_lm_result *r) {
    strbuf b = {0};
    size_t LH = (size_t)r->L * r->NH;
    sb_printf(&b, "member,nll_per_token,nll_per_token_stderr,perplexity,bits_per_byte,kl_from_dense,top1_agreement,"
                  "kept_fraction,mean_kept_keys\n");
    for (int k = 0; k < r->K; k++) {
        const eval_lm_acc *a = &r->member[k];
        double nll = eval_lm_nll(a);
        int64_t kept = sum_i64(r->kept + k * LH, LH), all = sum_i64(r->allowed + k * LH, LH);
        const double cells[] = {nll, eval_lm_nll_stderr(a), exp(nll), a->bytes ? a->sum_nll / (double)a->bytes / log(2.0) : NAN,
                                r->dense.tokens ? r->kl[k] / (double)r->dense.tokens : NAN,
                                r->dense.tokens ? (double)r->agree[k] / (double)r->dense.tokens : NAN,
                                all ? (double)kept / (double)all : NAN,
                                r->queries ? (double)kept / (double)LH / (double)r->queries : NAN};
        sb_printf(&b, "%d", k);
        for (size_t c = 0; c < sizeof cells / sizeof cells[0]; c++) sb_cell(&b, cells[c]);
        sb_printf(&b, "\n");
    }
    if (!b.s) sb_printf(&b, "%s", "");
    return b.s;
}

char *results_curve_csv_lm(const ens_lm_result *r) {
    strbuf b = {0};
    sb_printf(&b, "k,nll_per_token,nll_per_token_stderr,ci95_low,ci95_high,perplexity\n");
    for (int k = 0; k < r->K; k++) {
        double nll = eval_lm_nll(&r->curve[k]), se = eval_lm_nll_stderr(&r->curve[k]);
        const double cells[] = {nll, se, nll - Z95 * se, nll + Z95 * se, exp(nll)};
        sb_printf(&b, "%d", k + 1);
        for (size_t c = 0; c < sizeof cells / sizeof cells[0]; c++) sb_cell(&b, cells[c]);
        sb_printf(&b, "\n");
    }
    return b.s;
}

char *results_members_csv_cls(const ens_cls_result *r) {
    strbuf b = {0};
    size_t LH = (size_t)r->L * r->NH;
    double n = (double)r->dense.examples;
    sb_printf(&b, "member,accuracy,nll,ece,kl_from_dense,top1_agreement,kept_fraction\n");
    for (int k = 0; k < r->K; k++) {
        const eval_cls_acc *a = &r->member[k];
        int64_t kept = sum_i64(r->kept + k * LH, LH), all = sum_i64(r->allowed + k * LH, LH);
        const double cells[] = {(double)a->correct / (double)a->examples, a->sum_nll / (double)a->examples,
                                ens_calib_ece(&r->member_cal[k]), r->kl[k] / n, (double)r->agree[k] / n,
                                all ? (double)kept / (double)all : NAN};
        sb_printf(&b, "%d", k);
        for (size_t c = 0; c < sizeof cells / sizeof cells[0]; c++) sb_cell(&b, cells[c]);
        sb_printf(&b, "\n");
    }
    return b.s;
}

char *results_curve_csv_cls(const ens_cls_result *r) {
    strbuf b = {0};
    sb_printf(&b, "k,accuracy,nll\n");
    for (int k = 0; k < r->K; k++) {
        const eval_cls_acc *a = &r->curve[k];
        sb_printf(&b, "%d", k + 1);
        sb_cell(&b, (double)a->correct / (double)a->examples);
        sb_cell(&b, a->sum_nll / (double)a->examples);
        sb_printf(&b, "\n");
    }
    return b.s;
}

/* ---- importance ------------------------------------------------------------------------------ */

static cJSON *paired_obj(const ens_paired *p) {
    if (p->units == 0) return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    double d = ens_paired_mean(p), se = ens_paired_stderr(p);
    cJSON_AddItemToObject(o, "delta", num(d));
    cJSON_AddItemToObject(o, "stderr", num(se));
    add_ci(o, "ci95", d, se);
    return o;
}

/* The sampled estimate of head c (kind 0), band (l, b) (kind 1, c = l * NB + b), layer l (kind 2): from the
 * drop-one passes (importance.h); the members' own variation never stands in for it (issue 15: under
 * local or unbiased sampling it is noise, under head-drop the effect inside much smaller sub-models). */
static int sampled_est(const ens_importance *imp, int kind, int c, double *d, double *se, int64_t *units) {
    if (!imp->has_drop) return 0;
    int comp = kind == 0 ? c : kind == 2 ? imp->design.C_h + c : imp_design_band_component(&imp->design, c / imp->NB, c % imp->NB);
    const ens_paired *p = comp >= 0 ? &imp->drop[comp] : NULL;
    if (!p || !p->units) return 0;
    *d = ens_paired_mean(p), *se = ens_paired_stderr(p), *units = p->units;
    return 1;
}

static cJSON *sampled_obj(const ens_importance *imp, int kind, int c) {
    double  d, se;
    int64_t units;
    if (!sampled_est(imp, kind, c, &d, &se, &units)) return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "delta", num(d));
    cJSON_AddItemToObject(o, "stderr", num(se));
    add_ci(o, "ci95", d, se);
    cJSON_AddNumberToObject(o, "units", (double)units);
    return o;
}

/* the reference ablation of head c / band l * NB + b / layer l, or NULL */
static const ens_paired *ablation_of(const ens_importance *imp, int kind, int c) {
    if (kind == 0) return imp->has_ablation ? &imp->abl_head[c] : NULL;
    if (kind == 2) return imp->has_ablation ? &imp->abl_layer[c] : NULL;
    return imp->has_band_ablation && c % imp->NB >= imp->design.b0 ? &imp->abl_band[c] : NULL;
}

/* Spearman rank correlation of sampled and ablation deltas, and the share of 95% intervals of the
 * sampled estimate that contain the ablation value; NULL when fewer than 3 pairs exist */
static cJSON *agreement_obj(const ens_importance *imp, int kind, int n) {
    double *a = malloc(sizeof(double) * (size_t)n), *b = malloc(sizeof(double) * (size_t)n);
    cJSON  *o = NULL;
    int     pairs = 0, covered = 0, used = 0;
    for (int c = 0; a && b && c < n; c++) {
        double d, se;
        int64_t units;
        const ens_paired *ab = ablation_of(imp, kind, c);
        a[c] = b[c] = NAN;
        if (!ab || !ab->units || !sampled_est(imp, kind, c, &d, &se, &units)) continue;
        a[c] = d, b[c] = ens_paired_mean(ab);
        if (isfinite(d) && isfinite(se) && isfinite(b[c])) {
            pairs++;
            covered += fabs(b[c] - d) <= Z95 * se;
        }
    }
    double rho = a && b ? imp_spearman(a, b, n, &used) : NAN;
    if (used >= 3) {
        o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "spearman", num(rho));
        cJSON_AddItemToObject(o, "coverage", pairs ? num((double)covered / pairs) : cJSON_CreateNull());
        cJSON_AddNumberToObject(o, "n", used);
    }
    free(a);
    free(b);
    return o;
}

void results_add_importance(void *root_, const ens_importance *imp, const char *metric) {
    if (!imp->has_sampled && !imp->has_attention && !imp->has_ablation) return;
    cJSON *o = cJSON_AddObjectToObject(root_, "importance");
    int L = imp->L, NH = imp->NH, NB = imp->NB, S = 3 + NB;
    cJSON_AddNumberToObject(o, "n_layers", L);
    cJSON_AddNumberToObject(o, "n_heads", NH);
    cJSON_AddStringToObject(o, "metric", metric);
    { /* how the sampled column was estimated and at what cost, or why there is none */
        cJSON *sm = cJSON_AddObjectToObject(o, "sampled");
        const imp_design *dg = &imp->design;
        cJSON_AddStringToObject(sm, "method", imp->has_drop ? "drop-one" : "none");
        cJSON_AddNumberToObject(sm, "passes_heads", imp->has_drop ? dg->M_h : 0);
        cJSON_AddNumberToObject(sm, "passes_layers_bands", imp->has_drop ? dg->M_r : 0);
        cJSON_AddNumberToObject(sm, "ablation_passes_heads", dg->C_h);
        cJSON_AddNumberToObject(sm, "ablation_passes_layers_bands", dg->C_r);
        if (!imp->has_drop)
            cJSON_AddStringToObject(sm, "note", imp->has_sampled
                ? "not estimated: the members' own variation cannot identify single heads or bands (it is noise under "
                  "local and unbiased sampling and the effect inside much smaller sub-models under head-drop); set "
                  "importance.units (drop-one passes, docs/importance.md)"
                : "not estimated: set importance.units (drop-one passes, docs/importance.md)");
    }
    {
        cJSON *ag = cJSON_CreateObject(), *x;
        if ((x = agreement_obj(imp, 0, imp->L * imp->NH))) cJSON_AddItemToObject(ag, "heads", x);
        if ((x = agreement_obj(imp, 1, imp->L * imp->NB))) cJSON_AddItemToObject(ag, "bands", x);
        if ((x = agreement_obj(imp, 2, imp->L))) cJSON_AddItemToObject(ag, "layers", x);
        if (cJSON_GetArraySize(ag)) cJSON_AddItemToObject(o, "agreement", ag);
        else cJSON_Delete(ag);
    }
    cJSON *bands = cJSON_AddArrayToObject(o, "bands");
    for (int b = 0; b < NB; b++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "band", b);
        cJSON_AddNumberToObject(e, "lo", imp_band_lo(b));
        cJSON_AddNumberToObject(e, "hi", imp_band_hi(b));
        cJSON_AddItemToArray(bands, e);
    }
    cJSON *heads = cJSON_AddArrayToObject(o, "heads");
    for (int l = 0; l < L; l++)
        for (int h = 0; h < NH; h++) {
            int    c = l * NH + h;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "layer", l);
            cJSON_AddNumberToObject(e, "head", h);
            cJSON_AddItemToObject(e, "sampled", sampled_obj(imp, 0, c));
            cJSON_AddItemToObject(e, "ablation", imp->has_ablation ? paired_obj(&imp->abl_head[c]) : cJSON_CreateNull());
            const double *a = imp->att + (size_t)c * S;
            if (imp->has_attention && a[0] > 0) {
                cJSON *at = cJSON_AddObjectToObject(e, "attention");
                cJSON_AddItemToObject(at, "mean_distance", num(a[1] / a[0]));
                cJSON_AddItemToObject(at, "entropy", num(a[2] / a[0]));
                cJSON *mb = cJSON_AddArrayToObject(at, "mass_by_band");
                for (int b = 0; b < NB; b++) cJSON_AddItemToArray(mb, num(a[3 + b] / a[0]));
            } else {
                cJSON_AddNullToObject(e, "attention");
            }
            cJSON_AddItemToArray(heads, e);
        }
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int l = 0; l < L; l++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "layer", l);
        cJSON_AddItemToObject(e, "sampled", sampled_obj(imp, 2, l));
        cJSON_AddItemToObject(e, "ablation", imp->has_ablation ? paired_obj(&imp->abl_layer[l]) : cJSON_CreateNull());
        cJSON_AddItemToArray(layers, e);
    }
    cJSON *bl = cJSON_AddArrayToObject(o, "bands_by_layer");
    for (int l = 0; l < L; l++)
        for (int b = 0; b < NB; b++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "layer", l);
            cJSON_AddNumberToObject(e, "band", b);
            cJSON_AddItemToObject(e, "sampled", sampled_obj(imp, 1, l * NB + b));
            const ens_paired *ab = ablation_of(imp, 1, l * NB + b);
            cJSON_AddItemToObject(e, "ablation", ab ? paired_obj(ab) : cJSON_CreateNull());
            double rows = 0.0, mass = 0.0;
            for (int h = 0; h < NH; h++) {
                rows += imp->att[((size_t)l * NH + h) * S];
                mass += imp->att[((size_t)l * NH + h) * S + 3 + b];
            }
            cJSON_AddItemToObject(e, "attention_mass", imp->has_attention && rows > 0 ? num(mass / rows) : cJSON_CreateNull());
            cJSON_AddItemToArray(bl, e);
        }
}

char *results_importance_csv(const ens_importance *imp) {
    strbuf b = {0};
    int L = imp->L, NH = imp->NH, NB = imp->NB, S = 3 + NB;
    sb_printf(&b, "kind,layer,head,band,band_lo,band_hi,sampled_delta,sampled_stderr,ablation_delta,ablation_stderr,"
                  "mean_distance,entropy,attention_mass\n");
    for (int l = 0; l < L; l++)
        for (int h = 0; h < NH; h++) {
            int c = l * NH + h;
            const double *a = imp->att + (size_t)c * S;
            sb_printf(&b, "head,%d,%d,,,", l, h); /* band, band_lo, band_hi: not for heads */
            double  sd = NAN, ss = NAN;
            int64_t su;
            sampled_est(imp, 0, c, &sd, &ss, &su);
            sb_cell(&b, sd);
            sb_cell(&b, ss);
            sb_cell(&b, imp->has_ablation ? ens_paired_mean(&imp->abl_head[c]) : NAN);
            sb_cell(&b, imp->has_ablation ? ens_paired_stderr(&imp->abl_head[c]) : NAN);
            sb_cell(&b, a[0] > 0 ? a[1] / a[0] : NAN);
            sb_cell(&b, a[0] > 0 ? a[2] / a[0] : NAN);
            sb_printf(&b, ",\n"); /* attention_mass: per band */
        }
    for (int l = 0; l < L; l++)
        for (int bd = 0; bd < NB; bd++) {
            double rows = 0.0, mass = 0.0;
            for (int h = 0; h < NH; h++) {
                rows += imp->att[((size_t)l * NH + h) * S];
                mass += imp->att[((size_t)l * NH + h) * S + 3 + bd];
            }
            sb_printf(&b, "band,%d,,%d,%d,%d", l, bd, imp_band_lo(bd), imp_band_hi(bd));
            double  sd = NAN, ss = NAN;
            int64_t su;
            sampled_est(imp, 1, l * NB + bd, &sd, &ss, &su);
            sb_cell(&b, sd);
            sb_cell(&b, ss);
            const ens_paired *ab = ablation_of(imp, 1, l * NB + bd);
            sb_cell(&b, ab ? ens_paired_mean(ab) : NAN);
            sb_cell(&b, ab ? ens_paired_stderr(ab) : NAN);
            sb_printf(&b, ",,"); /* mean_distance, entropy: not for bands */
            sb_cell(&b, rows > 0 ? mass / rows : NAN);
            sb_printf(&b, "\n");
        }
    for (int l = 0; l < L; l++) {
        double  sd = NAN, ss = NAN;
        int64_t su;
        sampled_est(imp, 2, l, &sd, &ss, &su);
        sb_printf(&b, "layer,%d,,,,", l); /* head, band, band_lo, band_hi */
        sb_cell(&b, sd);
        sb_cell(&b, ss);
        sb_cell(&b, imp->has_ablation ? ens_paired_mean(&imp->abl_layer[l]) : NAN);
        sb_cell(&b, imp->has_ablation ? ens_paired_stderr(&imp->abl_layer[l]) : NAN);
        sb_printf(&b, ",,,\n"); /* mean_distance, entropy, attention_mass */
    }
    return b.s;
}
