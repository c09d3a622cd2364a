/* backward.c: training kernels (backward.h): the forward pieces that keep what the backward pass
 * needs (LayerNorm mean / rstd, the attention tape of kept connections) and the backward of every
 * operation, each with a naive reference twin (suffix _ref) that loops in double.
 *
 * Fast kernels compute in float in a fixed order (same bits on every run and thread count; the
 * only BLAS calls are the two sgemms of bwd_matmul). The attention kernels visit the kept
 * connections of a pathway sample only, so their time and tape memory scale with what is kept. */
#include "backward.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* ---- linear ------------------------------------------------------------------------------ */

void bwd_matmul(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w, int N, int C,
                int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    /* dinp (N, C) += dout (N, OC) . W (OC, C) */
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 1.0f, dinp, C);
    /* dw (OC, C) += dout^T (OC, N) . inp (N, C) */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dw, C);
    /* db (OC): accumulated straight into db row by row, db[o] = ((db[o] + dout[0][o]) + dout[1][o]) + ...,
     * a fixed order independent of BLAS threading (the inner loop over o vectorises) */
    if (db)
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * OC;
            for (int o = 0; o < OC; o++) db[o] += d[o];
        }
}

void bwd_matmul_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w, int N,
                    int C, int OC) {
    if (dinp)
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                double s = 0.0;
                for (int o = 0; o < OC; o++) s += (double)dout[(size_t)n * OC + o] * w[(size_t)o * C + c];
                dinp[(size_t)n * C + c] = (float)(dinp[(size_t)n * C + c] + s);
            }
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int n = 0; n < N; n++) s += (double)dout[(size_t)n * OC + o] * inp[(size_t)n * C + c];
            dw[(size_t)o * C + c] = (float)(dw[(size_t)o * C + c] + s);
        }
    if (db)
        for (int o = 0; o < OC; o++) {
            double s = 0.0;
            for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + o];
            db[o] = (float)(db[o] + s);
        }
}

/* ---- LayerNorm --------------------------------------------------------------------------- */

void fwd_layernorm(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b, int N, int C,
                   float eps) {
    /* the LayerNorm branch of kern_norm, expression for expression (so the bits agree), keeping m and r */
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C; /* (C) */
        float       *y = out + (size_t)n * C; /* (C) */
        float        m = 0.0f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= (float)C;
        float var = 0.0f;
        for (int c = 0; c < C; c++) var += (x[c] - m) * (x[c] - m);
        float r = 1.0f / sqrtf(var / (float)C + eps);
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * r * w[c] + (b ? b[c] : 0.0f);
        mean[n] = m;
        rstd[n] = r;
    }
}

/* With xhat = (x - m) r and g = w * dout (per row of C):
 *   dx = r (g - mean(g) - xhat mean(g xhat)),  dw += dout xhat,  db += dout. */
void bwd_layernorm(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *mean,
                   const float *rstd, const float *w, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x  = inp + (size_t)n * C;  /* (C) */
        const float *dy = dout + (size_t)n * C; /* (C) */
        float       *dx = dinp + (size_t)n * C; /* (C) */
        float        m = mean[n], r = rstd[n];
        float        dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * r;
            float g    = w[c] * dy[c];
            dnorm_mean += g;
            dnorm_norm_mean += g * xhat;
        }
        dnorm_mean /= (float)C;
        dnorm_norm_mean /= (float)C;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * r;
            float g    = w[c] * dy[c];
            if (db) db[c] += dy[c];
            dw[c] += xhat * dy[c];
            dx[c] += (g - dnorm_mean - xhat * dnorm_norm_mean) * r;
        }
    }
}

void bwd_layernorm_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *mean,
                       const float *rstd, const float *w, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        double       m = mean[n], r = rstd[n], gm = 0.0, gxm = 0.0;
        for (int c = 0; c < C; c++) {
            double xhat = (x[c] - m) * r, g = (double)w[c] * dy[c];
            gm += g;
            gxm += g * xhat;
        }
        gm /= C;
        gxm /= C;
        for (int c = 0; c < C; c++) {
            double xhat = (x[c] - m) * r, g = (double)w[c] * dy[c];
            dinp[(size_t)n * C + c] = (float)(dinp[(size_t)n * C + c] + (g - gm - xhat * gxm) * r);
        }
    }
    for (int c = 0; c < C; c++) { /* dw, db: column sums over the rows in double */
        double sw = 0.0, sb = 0.0;
        for (int n = 0; n < N; n++) {
            double dy = dout[(size_t)n * C + c];
            sw += dy * ((inp[(size_t)n * C + c] - (double)mean[n]) * rstd[n]);
            sb += dy;
        }
        dw[c] = (float)(dw[c] + sw);
        if (db) db[c] = (float)(db[c] + sb);
    }
}

/* ---- GELU -------------------------------------------------------------------------------- */

/* gelu(x) = x Φ(x), Φ the normal CDF = 0.5 (1 + erf(x / sqrt 2)); gelu'(x) = Φ(x) + x φ(x),
 * φ(x) = exp(-x^2 / 2) / sqrt(2π) */
void bwd_gelu(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x   = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * 0.7071067811865476f));
        float pdf = kern_expf(-0.5f * x * x) * 0.3989422804014327f;
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

void bwd_gelu_ref(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double x = inp[i];
        double d = 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) * 0.3989422804014327; /* 1/sqrt(2π) */
        dinp[i] = (float)(dinp[i] + (double)dout[i] * d);
    }
}

/* ---- softmax cross-entropy --------------------------------------------------------------- */

double bwd_crossentropy(float *dlogits, const float *logits, const int *targets, int N, int V, float scale) {
    double loss = 0.0;
    for (int n = 0; n < N; n++) {
        const float *l  = logits + (size_t)n * V;  /* (V) */
        float       *dl = dlogits + (size_t)n * V; /* (V), may be l itself: every write follows its read */
        int          t  = targets[n];
        if (t < 0) {
            memset(dl, 0, (size_t)V * sizeof(float));
            continue;
        }
        float mx = l[0];
        for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
        double sum = 0.0; /* Σ exp(l - mx) >= 1 (the max contributes 1) */
        for (int v = 0; v < V; v++) sum += kern_expf(l[v] - mx);
        loss += log(sum) + (double)mx - (double)l[t];
        float inv = (float)(1.0 / sum);
        for (int v = 0; v < V; v++) dl[v] = scale * (kern_expf(l[v] - mx) * inv - (v == t ? 1.0f : 0.0f));
    }
    return loss;
}

double bwd_crossentropy_ref(float *dlogits, const float *logits, const int *targets, int N, int V, float scale) {
    double loss = 0.0;
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float       *dl = dlogits + (size_t)n * V;
        int          t = targets[n];
        if (t < 0) {
            for (int v = 0; v < V; v++) dl[v] = 0.0f;
            continue;
        }
        double mx = l[0], sum = 0.0;
        for (int v = 1; v < V; v++) mx = l[v] > mx ? l[v] : mx;
        for (int v = 0; v < V; v++) sum += exp(l[v] - mx);
        loss += log(sum) + mx - l[t];
        for (int v = 0; v < V; v++) dl[v] = (float)(scale * (exp(l[v] - mx) / sum - (v == t ? 1.0 : 0.0)));
    }
    return loss;
}

/* ---- attention tape ---------------------------------------------------------------------- */

static int64_t tape_bytes(const att_tape *t) {
    return t->cap * (int64_t)(sizeof(int) + sizeof(float)) +
           (int64_t)t->n_calls * (t->T + 1) * (int64_t)sizeof(int64_t);
}

int att_tape_init(att_tape *t, int n_calls, int T, int64_t initial_cap) {
    memset(t, 0, sizeof *t);
    if (n_calls < 0 || T < 0) return -1;
    t->T       = T;
    t->n_calls = n_calls;
    t->cap     = initial_cap > 0 ? initial_cap : 1;
    t->row_off = malloc(((size_t)n_calls * (T + 1) + 1) * sizeof(int64_t)); /* (n_calls, T + 1) */
    t->keys    = malloc((size_t)t->cap * sizeof(int));                      /* (cap) */
    t->probs   = malloc((size_t)t->cap * sizeof(float));                    /* (cap) */
    if (!t->row_off || !t->keys || !t->probs) {
        att_tape_free(t);
        return -1;
    }
    t->peak_bytes = tape_bytes(t);
    return 0;
}

void att_tape_free(att_tape *t) {
    if (!t) return;
    free(t->row_off);
    free(t->keys);
    free(t->probs);
    memset(t, 0, sizeof *t);
}

void att_tape_reset(att_tape *t) { t->used = 0; }

/* Make room for `need` connections (cap >= need): doubling, so a pass grows O(log) times.
 * 0 ok, -1 out of memory (the tape keeps its old, still valid, arrays). */
static int tape_reserve(att_tape *t, int64_t need) {
    if (need <= t->cap) return 0;
    int64_t cap = t->cap > 0 ? t->cap : 1;
    while (cap < need) cap *= 2;
    int *keys = realloc(t->keys, (size_t)cap * sizeof(int));
    if (!keys) return -1;
    t->keys = keys;
    float *probs = realloc(t->probs, (size_t)cap * sizeof(float));
    if (!probs) return -1; /* keys is larger than needed; cap still describes both arrays safely */
    t->probs = probs;
    t->cap   = cap;
    int64_t b = tape_bytes(t);
    if (b > t->peak_bytes) t->peak_bytes = b;
    return 0;
}

/* A wrong call index or length is a bug in the caller; writing past row_off would be worse than stopping. */
static void check_tape(const att_tape *t, int call0, int ncalls, int T, const char *fn) {
    if (T != t->T || call0 < 0 || call0 + ncalls > t->n_calls) {
        fprintf(stderr, "pathens: internal error: %s with T = %d, calls [%d, %d) on a tape for T = %d, %d calls\n", fn,
                T, call0, call0 + ncalls, t->T, t->n_calls);
        abort();
    }
}

/* ---- attention over a pathway sample ------------------------------------------------------ */

/* copy the keys of L (len, ascending) that pass the causal rule for query i: all of them when
 * bidirectional; causal: those < i, then i itself (whether sampled or not) */
static int keys_from_list(int *keys, const int *L, int len, int causal, int i) {
    if (!causal) {
        memcpy(keys, L, (size_t)len * sizeof(int));
        return len;
    }
    int m = 0;
    for (int p = 0; p < len && L[p] < i; p++) keys[m++] = L[p];
    keys[m++] = i;
    return m;
}

int att_query_keys(int *keys, const pw_sample *s, int i) {
    switch (s->kind) {
    case PW_SAMPLE_NONE: return 0;
    case PW_SAMPLE_ALL: {
        int m = s->causal ? i + 1 : s->n;
        for (int j = 0; j < m; j++) keys[j] = j;
        return m;
    }
    case PW_SAMPLE_WINDOWS: {
        /* the window holding i: the last w < n_windows with win_start[w] <= i (empty windows skipped) */
        int lo = 0, hi = s->n_windows - 1;
        while (lo < hi) {
            int mid = (lo + hi + 1) >> 1;
            if (s->win_start[mid] <= i) lo = mid;
            else hi = mid - 1;
        }
        return keys_from_list(keys, s->keys + s->key_start[lo], s->key_start[lo + 1] - s->key_start[lo], s->causal,
                              i);
    }
    case PW_SAMPLE_PER_QUERY:
        return keys_from_list(keys, s->keys + s->key_start[i], s->key_start[i + 1] - s->key_start[i], s->causal, i);
    }
    return 0;
}

/* dot product with 8 independent partial sums (as kernels.c's dot8: the compiler vectorises it) */
static inline float dot8(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int   t = 0;
    for (; t + 8 <= n; t += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[t + l] * b[t + l];
    float d = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; t < n; t++) d += a[t] * b[t];
    return d;
}

int64_t fwd_attention_tape(float *out, att_tape *tape, int call0, const float *q, const float *k, const float *v,
                           int B, int T, int NH, int HS, int causal, const pw_config *pw, pw_sample *sample,
                           int member, int layer, const int64_t *seq_ids) {
    if (B <= 0 || T <= 0 || NH <= 0) return 0;
    check_tape(tape, call0, B * NH, T, "fwd_attention_tape");
    int   C = NH * HS;
    float scale = 1.0f / sqrtf((float)HS);
    /* dense: every allowed key, no draw (a dense config with a static head_keep still draws: it may drop heads) */
    int       dense = !pw || (pw->scheme == PW_SCHEME_DENSE && !pw->head_keep);
    pw_sample all = {.kind = PW_SAMPLE_ALL, .n = T, .causal = causal};
    int64_t   kept = 0;
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const pw_sample *s = &all;
            if (!dense) {
                pw_draw(sample, pw, member, layer, h, seq_ids[b], T, causal);
                s = sample;
            }
            const float *qb = q + (size_t)b * T * C + (size_t)h * HS; /* (T, HS) stride C */
            const float *kb = k + (size_t)b * T * C + (size_t)h * HS;
            const float *vb = v + (size_t)b * T * C + (size_t)h * HS;
            float       *ob = out + (size_t)b * T * C + (size_t)h * HS;
            int64_t     *row_off = tape->row_off + (size_t)(call0 + b * NH + h) * (T + 1); /* (T + 1) */
            for (int i = 0; i < T; i++) {
                row_off[i] = tape->used;
                /* a query keeps at most T keys: reserve them, then write keys and scores straight into the arena */
                if (tape_reserve(tape, tape->used + T) != 0) return -1;
                int         *L = tape->keys + tape->used;  /* (m) kept keys, ascending */
                float       *p = tape->probs + tape->used; /* (m) scores, then probabilities */
                int          m = att_query_keys(L, s, i);
                const float *qi = qb + (size_t)i * C;
                float       *o = ob + (size_t)i * C;
                memset(o, 0, (size_t)HS * sizeof(float));
                if (m == 0) continue; /* dropped head: output 0, nothing on the tape */
                float mx = -INFINITY;
                for (int j = 0; j < m; j++) {
                    p[j] = dot8(qi, kb + (size_t)L[j] * C, HS) * scale;
                    mx = p[j] > mx ? p[j] : mx;
                }
                float sum = 0.0f;
                for (int j = 0; j < m; j++) {
                    p[j] = kern_expf(p[j] - mx);
                    sum += p[j];
                }
                for (int j = 0; j < m; j++) {
                    p[j] /= sum;
                    const float *vj = vb + (size_t)L[j] * C;
                    for (int t = 0; t < HS; t++) o[t] += p[j] * vj[t];
                }
                tape->used += m;
                kept += m;
            }
            row_off[T] = tape->used;
        }
    }
    return kept;
}

/* Per query i with kept keys L (m) and probabilities p (m), for dp_j = dout_i . v_j:
 *   dv_j += p_j dout_i;  ds_j = p_j (dp_j - Σ_l p_l dp_l);  dq_i += scale Σ_j ds_j k_j;  dk_j += scale ds_j q_i.
 * dp is kept in a (T) scratch; if that cannot be allocated it is recomputed (the same bits, twice the dots). */
void bwd_attention_tape(float *dq, float *dk, float *dv, const float *dout, const att_tape *tape, int call0,
                        const float *q, const float *k, const float *v, int B, int T, int NH, int HS) {
    if (B <= 0 || T <= 0 || NH <= 0) return;
    check_tape(tape, call0, B * NH, T, "bwd_attention_tape");
    int    C = NH * HS;
    float  scale = 1.0f / sqrtf((float)HS);
    float *dp = malloc((size_t)T * sizeof(float)); /* (T) dout_i . v_j per kept key; NULL: recompute */
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            size_t         base = (size_t)b * T * C + (size_t)h * HS; /* (T, HS) stride C views of one head */
            const float   *qb = q + base, *kb = k + base, *vb = v + base, *gb = dout + base;
            float         *dqb = dq + base, *dkb = dk + base, *dvb = dv + base;
            const int64_t *row_off = tape->row_off + (size_t)(call0 + b * NH + h) * (T + 1);
            for (int i = 0; i < T; i++) {
                const int   *L = tape->keys + row_off[i];
                const float *p = tape->probs + row_off[i];
                int          m = (int)(row_off[i + 1] - row_off[i]);
                const float *gi = gb + (size_t)i * C, *qi = qb + (size_t)i * C;
                float       *dqi = dqb + (size_t)i * C;
                float        pdp = 0.0f; /* Σ_j p_j dp_j */
                for (int j = 0; j < m; j++) {
                    float d = dot8(gi, vb + (size_t)L[j] * C, HS);
                    if (dp) dp[j] = d;
                    pdp += p[j] * d;
                }
                for (int j = 0; j < m; j++) {
                    size_t       off = (size_t)L[j] * C;
                    float        d   = dp ? dp[j] : dot8(gi, vb + off, HS);
                    float        ds  = scale * (p[j] * (d - pdp));
                    const float *kj  = kb + off;
                    float       *dkj = dkb + off, *dvj = dvb + off;
                    for (int t = 0; t < HS; t++) {
                        dvj[t] += p[j] * gi[t];
                        dqi[t] += ds * kj[t];
                        dkj[t] += ds * qi[t];
                    }
                }
            }
        }
    }
    free(dp);
}

void attention_masked_ref(float *out, float *dq, float *dk, float *dv, const float *dout, const uint8_t *mask,
                          const float *q, const float *k, const float *v, int B, int T, int NH, int HS) {
    int    C = NH * HS, bwd = dout && (dq || dk || dv);
    size_t n = (size_t)B * T * C;
    double scale = 1.0 / sqrt((double)HS);
    double *sc = malloc(((size_t)T + 1) * sizeof(double)); /* (T) scores, then probabilities */
    double *gq = bwd ? calloc(n + 1, sizeof(double)) : NULL; /* (B, T, C) gradients, accumulated in double */
    double *gk = bwd ? calloc(n + 1, sizeof(double)) : NULL;
    double *gv = bwd ? calloc(n + 1, sizeof(double)) : NULL;
    if (!sc || (bwd && (!gq || !gk || !gv))) abort(); /* test-only twin */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                const uint8_t *mr = mask + (((size_t)b * NH + h) * T + i) * T; /* (T) row i of (b, h) */
                size_t         qo = ((size_t)b * T + i) * C + (size_t)h * HS;
                double         mx = -INFINITY;
                for (int j = 0; j < T; j++) {
                    if (!mr[j]) continue;
                    size_t ko = ((size_t)b * T + j) * C + (size_t)h * HS;
                    double s  = 0.0;
                    for (int d = 0; d < HS; d++) s += (double)q[qo + d] * k[ko + d];
                    sc[j] = s * scale;
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int d = 0; d < HS; d++) out[qo + d] = 0.0f;
                if (mx == -INFINITY) continue; /* no kept key: output 0, no gradient */
                double sum = 0.0;
                for (int j = 0; j < T; j++)
                    if (mr[j]) sum += exp(sc[j] - mx);
                for (int j = 0; j < T; j++)
                    if (mr[j]) sc[j] = exp(sc[j] - mx) / sum;
                for (int d = 0; d < HS; d++) {
                    double acc = 0.0;
                    for (int j = 0; j < T; j++)
                        if (mr[j]) acc += sc[j] * v[((size_t)b * T + j) * C + (size_t)h * HS + d];
                    out[qo + d] = (float)acc;
                }
                if (!bwd) continue;
                double pdp = 0.0; /* Σ_j p_j dp_j, dp_j = dout_i . v_j */
                for (int j = 0; j < T; j++) {
                    if (!mr[j]) continue;
                    size_t vo = ((size_t)b * T + j) * C + (size_t)h * HS;
                    double d  = 0.0;
                    for (int t = 0; t < HS; t++) d += (double)dout[qo + t] * v[vo + t];
                    pdp += sc[j] * d;
                }
                for (int j = 0; j < T; j++) {
                    if (!mr[j]) continue;
                    size_t jo = ((size_t)b * T + j) * C + (size_t)h * HS;
                    double d  = 0.0;
                    for (int t = 0; t < HS; t++) d += (double)dout[qo + t] * v[jo + t];
                    double ds = sc[j] * (d - pdp) * scale;
                    for (int t = 0; t < HS; t++) {
                        gv[jo + t] += sc[j] * dout[qo + t];
                        gq[qo + t] += ds * k[jo + t];
                        gk[jo + t] += ds * q[qo + t];
                    }
                }
            }
    if (bwd)
        for (size_t x = 0; x < n; x++) {
            if (dq) dq[x] = (float)(dq[x] + gq[x]);
            if (dk) dk[x] = (float)(dk[x] + gk[x]);
            if (dv) dv[x] = (float)(dv[x] + gv[x]);
        }
    free(sc);
    free(gq);
    free(gk);
    free(gv);
}
