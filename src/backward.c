/* backward.c: training kernels (backward.h): the forward pieces that keep what the backward pass
 * needs (LayerNorm mean / rstd, the attention tape of kept connections) and the backward of every
 * operation, each with a naive reference twin (suffix _ref) that loops in double.
 *
 * Fast kernels compute in float in a fixed order (same bits on every run and thread count: the
 * BLAS calls are sgemms whose shapes depend only on the sequence's own sample, never on the
 * batch). The attention kernels visit the kept connections of a pathway sample only (dense and
 * window samples as sgemms over each window's key list, per-query lists one dot product at a
 * time), so their time and tape memory scale with what is kept. */
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

/* gelu(x) = x Φ(x), Φ the normal CDF; gelu'(x) = Φ(x) + x φ(x), φ(x) = exp(-x^2 / 2) / sqrt(2π).
 * Φ through erfc(z), z = |x| / sqrt 2, by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7):
 * erfc(z) = t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-z^2), t = 1 / (1 + p z);
 * Φ(x) = erfc / 2 for x < 0, 1 - erfc / 2 otherwise. exp(-z^2) = exp(-x^2 / 2) is φ's exponential
 * too, so a point costs one kern_expf and one division, branch-free: the loop vectorises (libm's
 * erff does not) and runs about 4x faster; |gelu' - exact| <= 3e-7 (erff's form: 1.2e-7). */
void bwd_gelu(float *dinp, const float *dout, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float t = 1.0f / (1.0f + 0.3275911f * (fabsf(x) * 0.7071067811865476f));
        float P = 1.061405429f;
        P = P * t - 1.453152027f;
        P = P * t + 1.421413741f;
        P = P * t - 0.284496736f;
        P = P * t + 0.254829592f;
        float e   = kern_expf(-0.5f * x * x); /* exp(-z^2) */
        float h   = 0.5f * t * P * e;          /* erfc(z) / 2 = Φ(-|x|) */
        float cdf = x < 0.0f ? h : 1.0f - h;
        dinp[i] += dout[i] * (cdf + x * (e * 0.3989422804014327f));
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
    return t->icap * (int64_t)sizeof(int) + t->fcap * (int64_t)sizeof(float) +
           (int64_t)t->n_calls * (t->T + 3) * (int64_t)sizeof(int64_t);
}

int att_tape_init(att_tape *t, int n_calls, int T, int64_t initial_cap) {
    memset(t, 0, sizeof *t);
    if (n_calls < 0 || T < 0) return -1;
    t->T       = T;
    t->n_calls = n_calls;
    t->fcap    = initial_cap > 0 ? initial_cap : 1;
    t->icap    = t->fcap / 4 + 64; /* window records need few ints; per-query ones grow it */
    t->row_off = malloc(((size_t)n_calls * (T + 1) + 1) * sizeof(int64_t)); /* (n_calls, T + 1) */
    t->call_at = malloc(((size_t)n_calls * 2 + 1) * sizeof(int64_t));       /* (n_calls, 2) */
    t->idx     = malloc((size_t)t->icap * sizeof(int));                     /* (icap) */
    t->val     = malloc((size_t)t->fcap * sizeof(float));                   /* (fcap) */
    if (!t->row_off || !t->call_at || !t->idx || !t->val) {
        att_tape_free(t);
        return -1;
    }
    t->peak_bytes = tape_bytes(t);
    return 0;
}

void att_tape_free(att_tape *t) {
    if (!t) return;
    free(t->row_off);
    free(t->call_at);
    free(t->idx);
    free(t->val);
    free(t->work);
    memset(t, 0, sizeof *t);
}

void att_tape_reset(att_tape *t) { t->used = t->iused = t->fused = 0; }

/* doubling capacity >= need for n more entries */
static int64_t grown_cap(int64_t cap, int64_t need) {
    cap = cap > 0 ? cap : 1;
    while (cap < need) cap *= 2;
    return cap;
}

/* Make room for ni more ints and nf more floats (doubling, so a pass grows O(log) times).
 * 0 ok, -1 out of memory (the tape keeps its old, still valid, arrays). Pointers into the arenas
 * taken before a call are stale after it. */
static int tape_reserve(att_tape *t, int64_t ni, int64_t nf) {
    if (t->iused + ni > t->icap) {
        int64_t cap = grown_cap(t->icap, t->iused + ni);
        int    *idx = realloc(t->idx, (size_t)cap * sizeof(int));
        if (!idx) return -1;
        t->idx = idx, t->icap = cap;
    }
    if (t->fused + nf > t->fcap) {
        int64_t cap = grown_cap(t->fcap, t->fused + nf);
        float  *val = realloc(t->val, (size_t)cap * sizeof(float));
        if (!val) return -1;
        t->val = val, t->fcap = cap;
    }
    int64_t b = tape_bytes(t);
    if (b > t->peak_bytes) t->peak_bytes = b;
    return 0;
}

/* workspace floats the kernels need for T positions of head size HS: gathered K, V, dK, dV (4, T, HS),
 * one block of scores / dP / dS (T, T), one block of probabilities (T, T), the self column (T) */
static int64_t work_need(int T, int HS) { return (int64_t)4 * T * HS + (int64_t)2 * T * T + T + 1; }

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

/* gather rows L (m) of a (., HS) stride C view into a contiguous (m, HS) buffer */
static void gather_rows(float *dst, const float *src, const int *L, int m, int C, int HS) {
    for (int s = 0; s < m; s++) memcpy(dst + (size_t)s * HS, src + (size_t)L[s] * C, (size_t)HS * sizeof(float));
}

/* The query blocks of one window [r0, r1) with key list L (m): block size, the number of keys
 * of L the block [i0, i0 + rows) can use (causal: those <= its last query), and for query i of
 * the block the keys L[0, lim) it keeps of those nk, plus (has_self) its own key i when the
 * causal rule adds it (i not in L): exactly att_query_keys' rule. */
static int win_block(int causal, int r0, int r1) { return causal ? ATT_TAPE_BLOCK : r1 - r0; }
static int block_keys(const int *L, int m, int causal, int last) { return causal ? kern_upper_bound(L, m, last) : m; }
static int row_keys(const int *L, int nk, int causal, int i, int *has_self) {
    int lim = causal ? kern_upper_bound(L, nk, i) : nk; /* L[0, lim) are <= i */
    *has_self = causal && !(lim > 0 && L[lim - 1] == i);
    return lim;
}

/* Window record of one call (kind ALL or WINDOWS; backward.h has the layout), its forward output
 * ob (T, HS) stride C, and the per-query counts cnt[i] (T) = kept keys of query i. Per query block,
 * two sgemms into the workspace: S = scale Q K_L^T, the softmax in place (masked entries 0),
 * O = P V_L; a causal query whose own position is not in L gets it as an extra key, scored and
 * added by hand (as kernels.c's att_window, so the arithmetic matches the inference forward).
 * The tape keeps each query's kept probabilities only (its row prefix, then the self one).
 * Returns the kept connections, or -1 when the tape could not grow. */
static int64_t fwd_windows(att_tape *t, int64_t *cnt, float *ob, const float *qb, const float *kb, const float *vb,
                           int C, int HS, float scale, const pw_sample *s) {
    int n = s->n, causal = s->causal, all = s->kind == PW_SAMPLE_ALL;
    int nw = all ? 1 : s->n_windows;
    /* ints: tag, causal, n_windows, then per window r0, r1, m, L (m) */
    int64_t ni = 3;
    for (int w = 0; w < nw; w++) ni += 3 + (all ? n : s->key_start[w + 1] - s->key_start[w]);
    if (tape_reserve(t, ni, 0) != 0) return -1;
    int *rec = t->idx + t->iused, *p = rec + 3; /* (ni) */
    rec[0] = ATT_REC_WINDOWS, rec[1] = causal, rec[2] = nw;
    int64_t kept = 0; /* = the floats of the record */
    for (int w = 0; w < nw; w++) {
        int r0 = all ? 0 : s->win_start[w], r1 = all ? n : s->win_start[w + 1];
        int m = all ? n : s->key_start[w + 1] - s->key_start[w];
        p[0] = r0, p[1] = r1, p[2] = m;
        int *L = p + 3; /* (m) */
        if (all)
            for (int j = 0; j < n; j++) L[j] = j;
        else
            memcpy(L, s->keys + s->key_start[w], (size_t)m * sizeof(int));
        for (int i0 = r0, bl = win_block(causal, r0, r1); i0 < r1; i0 += bl) {
            int rows = r1 - i0 < bl ? r1 - i0 : bl, nk = block_keys(L, m, causal, i0 + rows - 1), has_self;
            for (int i = i0; i < i0 + rows; i++) {
                cnt[i] = row_keys(L, nk, causal, i, &has_self) + has_self;
                kept += cnt[i];
            }
        }
        p += 3 + m;
    }
    if (tape_reserve(t, ni, kept) != 0) return -1; /* grows val only: the ni ints already fit */
    rec = t->idx + t->iused;
    float *fv = t->val + t->fused; /* (kept) */
    float *kg = t->work, *vg = kg + (size_t)n * HS;   /* (m, HS) gathered keys and values */
    float *S = vg + (size_t)3 * n * HS;                /* (rows, nk) scores, then probabilities */
    float *self = S + (size_t)n * n;                   /* (rows) probability of the extra self key, or 0 */
    p = rec + 3;
    for (int w = 0; w < nw; w++, p += 3 + p[2]) {
        int r0 = p[0], r1 = p[1], m = p[2];
        const int *L = p + 3;
        gather_rows(kg, kb, L, m, C, HS);
        gather_rows(vg, vb, L, m, C, HS);
        for (int i0 = r0, bl = win_block(causal, r0, r1); i0 < r1; i0 += bl) {
            int rows = r1 - i0 < bl ? r1 - i0 : bl;
            int nk = block_keys(L, m, causal, i0 + rows - 1);
            if (nk > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, HS, scale, qb + (size_t)i0 * C, C, kg,
                            HS, 0.0f, S, nk);
            for (int r = 0; r < rows; r++) {
                int    i = i0 + r, has_self;
                float *sr = S + (size_t)r * nk; /* (nk) */
                int    lim = row_keys(L, nk, causal, i, &has_self);
                self[r] = 0.0f;
                if (lim + has_self == 0) { /* bidirectional window without keys: output 0 */
                    memset(sr, 0, (size_t)nk * sizeof(float));
                    continue;
                }
                float s_self = 0.0f;
                if (has_self) {
                    const float *qi = qb + (size_t)i * C, *ki = kb + (size_t)i * C;
                    float        d = 0.0f;
                    for (int c = 0; c < HS; c++) d += qi[c] * ki[c];
                    s_self = d * scale;
                }
                float mx = has_self ? s_self : sr[0];
                for (int j = 0; j < lim; j++) mx = sr[j] > mx ? sr[j] : mx;
                for (int j = 0; j < lim; j++) sr[j] = kern_expf(sr[j] - mx);
                float sum = 0.0f;
                for (int j = 0; j < lim; j++) sum += sr[j];
                float e_self = has_self ? kern_expf(s_self - mx) : 0.0f;
                sum += e_self;
                float inv = 1.0f / sum;
                for (int j = 0; j < lim; j++) sr[j] *= inv;
                for (int j = lim; j < nk; j++) sr[j] = 0.0f;
                self[r] = e_self * inv;
                memcpy(fv, sr, (size_t)lim * sizeof(float)); /* the tape: the kept ones, keys ascending */
                if (has_self) fv[lim] = self[r];
                fv += lim + has_self;
            }
            if (nk > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, nk, 1.0f, S, nk, vg, HS, 0.0f,
                            ob + (size_t)i0 * C, C);
            else
                for (int r = 0; r < rows; r++) memset(ob + (size_t)(i0 + r) * C, 0, (size_t)HS * sizeof(float));
            for (int r = 0; r < rows; r++)
                if (self[r] != 0.0f) {
                    const float *vi = vb + (size_t)(i0 + r) * C;
                    float       *o = ob + (size_t)(i0 + r) * C;
                    for (int c = 0; c < HS; c++) o[c] += self[r] * vi[c];
                }
        }
    }
    t->iused += ni;
    t->fused += kept;
    return kept;
}

/* Per-query record of one call (random-k, window: kind PER_QUERY): keys and probabilities of each
 * query one after the other; cnt[i] (T) = kept keys of query i. Returns kept, -1 out of memory. */
static int64_t fwd_per_query(att_tape *t, int64_t *cnt, float *ob, const float *qb, const float *kb, const float *vb,
                             int C, int HS, float scale, const pw_sample *s, int T) {
    if (tape_reserve(t, 1, 0) != 0) return -1;
    t->idx[t->iused++] = ATT_REC_QUERY;
    int64_t kept = 0;
    for (int i = 0; i < T; i++) {
        /* a query keeps at most T keys: reserve them, then write keys and scores straight into the arenas */
        if (tape_reserve(t, T, T) != 0) return -1;
        int         *L = t->idx + t->iused;  /* (m) kept keys, ascending */
        float       *p = t->val + t->fused;  /* (m) scores, then probabilities */
        int          m = att_query_keys(L, s, i);
        const float *qi = qb + (size_t)i * C;
        float       *o = ob + (size_t)i * C;
        memset(o, 0, (size_t)HS * sizeof(float));
        cnt[i] = m;
        if (m == 0) continue;
        float mx = -INFINITY;
        for (int j = 0; j < m; j++) {
            p[j] = kern_dot8(qi, kb + (size_t)L[j] * C, HS) * scale;
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
            for (int c = 0; c < HS; c++) o[c] += p[j] * vj[c];
        }
        t->iused += m;
        t->fused += m;
        kept += m;
    }
    return kept;
}

int64_t fwd_attention_tape(float *out, att_tape *tape, int call0, const float *q, const float *k, const float *v,
                           int B, int T, int NH, int HS, int causal, const pw_config *pw, pw_sample *sample,
                           int member, int layer, const int64_t *seq_ids) {
    if (B <= 0 || T <= 0 || NH <= 0) return 0;
    check_tape(tape, call0, B * NH, T, "fwd_attention_tape");
    int64_t wn = work_need(T, HS);
    if (tape->work_cap < wn) {
        float *w = realloc(tape->work, (size_t)wn * sizeof(float)); /* (work_need) */
        if (!w) return -1;
        tape->work = w, tape->work_cap = wn;
    }
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
            int          c = call0 + b * NH + h;
            int64_t     *row_off = tape->row_off + (size_t)c * (T + 1); /* (T + 1) */
            int64_t     *cnt = row_off + 1;                              /* (T) counts, then offsets */
            tape->call_at[2 * c] = tape->iused, tape->call_at[2 * c + 1] = tape->fused;
            for (int i = 0; i < T; i++) {
                cnt[i] = 0;
                memset(ob + (size_t)i * C, 0, (size_t)HS * sizeof(float));
            }
            int64_t kc;
            if (s->kind == PW_SAMPLE_ALL || s->kind == PW_SAMPLE_WINDOWS) {
                kc = fwd_windows(tape, cnt, ob, qb, kb, vb, C, HS, scale, s);
            } else if (s->kind == PW_SAMPLE_PER_QUERY) {
                kc = fwd_per_query(tape, cnt, ob, qb, kb, vb, C, HS, scale, s, T);
            } else { /* dropped head: output 0, only the tag on the tape */
                if (tape_reserve(tape, 1, 0) != 0) return -1;
                tape->idx[tape->iused++] = ATT_REC_NONE;
                kc = 0;
            }
            if (kc < 0) return -1;
            row_off[0] = tape->used;
            for (int i = 0; i < T; i++) row_off[i + 1] += row_off[i];
            tape->used = row_off[T];
            kept += kc;
        }
    }
    return kept;
}

/* Backward of one window record (see fwd_windows) for one call; rec points at its ints, fv at its
 * floats. Per query block [i0, i0 + rows), with P (rows, nk) expanded from the tape (masked 0) and
 * self (rows) the extra self key's probability (0 if none):
 *   dP = dO V_L^T;  pdp_r = Σ_j P_rj dP_rj + p_self dp_self;  dS = P o (dP - pdp);
 *   dQ += scale dS K_L;  dK_L += scale dS^T Q;  dV_L += P^T dO  (sgemms; dK_L, dV_L gathered (m, HS)
 *   and scattered back per window); the extra self key by hand. */
static void bwd_windows(float *dqb, float *dkb, float *dvb, const float *gb, const int *rec, const float *fv,
                        float *work, const float *qb, const float *kb, const float *vb, int T, int C, int HS,
                        float scale) {
    int    causal = rec[1], nw = rec[2];
    float *kg = work, *vg = kg + (size_t)T * HS, *dkg = vg + (size_t)T * HS, *dvg = dkg + (size_t)T * HS; /* (m, HS) */
    float *dS = dvg + (size_t)T * HS;  /* (rows, nk) dP, then dS */
    float *P = dS + (size_t)T * T;     /* (rows, nk) probabilities */
    float *self = P + (size_t)T * T;   /* (rows) */
    const int *p = rec + 3;
    for (int w = 0; w < nw; w++, p += 3 + p[2]) {
        int        r0 = p[0], r1 = p[1], m = p[2];
        const int *L = p + 3;
        if (r1 <= r0) continue;
        gather_rows(kg, kb, L, m, C, HS);
        gather_rows(vg, vb, L, m, C, HS);
        memset(dkg, 0, (size_t)m * HS * sizeof(float));
        memset(dvg, 0, (size_t)m * HS * sizeof(float));
        for (int i0 = r0, bl = win_block(causal, r0, r1); i0 < r1; i0 += bl) {
            int rows = r1 - i0 < bl ? r1 - i0 : bl;
            int nk = block_keys(L, m, causal, i0 + rows - 1);
            for (int r = 0; r < rows; r++) { /* expand the kept probabilities into P, self */
                int    has_self, lim = row_keys(L, nk, causal, i0 + r, &has_self);
                float *pr = P + (size_t)r * nk;
                memcpy(pr, fv, (size_t)lim * sizeof(float));
                for (int j = lim; j < nk; j++) pr[j] = 0.0f;
                self[r] = has_self ? fv[lim] : 0.0f;
                fv += lim + has_self;
            }
            const float *gblk = gb + (size_t)i0 * C, *qblk = qb + (size_t)i0 * C; /* (rows, HS) stride C */
            if (nk > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, HS, 1.0f, gblk, C, vg, HS, 0.0f, dS,
                            nk);
            for (int r = 0; r < rows; r++) {
                int          i = i0 + r;
                const float *pr = P + (size_t)r * nk, *gi = gb + (size_t)i * C;
                float       *dr = dS + (size_t)r * nk;
                float        pdp = kern_dot8(pr, dr, nk), ps = self[r], dps = 0.0f;
                if (ps != 0.0f) {
                    dps = kern_dot8(gi, vb + (size_t)i * C, HS);
                    pdp += ps * dps;
                }
                for (int j = 0; j < nk; j++) dr[j] = pr[j] * (dr[j] - pdp);
                if (ps != 0.0f) {
                    float        ds = scale * (ps * (dps - pdp));
                    const float *qi = qb + (size_t)i * C, *ki = kb + (size_t)i * C;
                    float       *dqi = dqb + (size_t)i * C, *dki = dkb + (size_t)i * C, *dvi = dvb + (size_t)i * C;
                    for (int c = 0; c < HS; c++) {
                        dvi[c] += ps * gi[c];
                        dqi[c] += ds * ki[c];
                        dki[c] += ds * qi[c];
                    }
                }
            }
            if (nk == 0) continue;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, nk, scale, dS, nk, kg, HS, 1.0f,
                        dqb + (size_t)i0 * C, C);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, HS, rows, scale, dS, nk, qblk, C, 1.0f, dkg, HS);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, HS, rows, 1.0f, P, nk, gblk, C, 1.0f, dvg, HS);
        }
        for (int s = 0; s < m; s++) { /* scatter-add dK_L, dV_L to their rows */
            float       *dkj = dkb + (size_t)L[s] * C, *dvj = dvb + (size_t)L[s] * C;
            const float *a = dkg + (size_t)s * HS, *b = dvg + (size_t)s * HS;
            for (int c = 0; c < HS; c++) {
                dkj[c] += a[c];
                dvj[c] += b[c];
            }
        }
    }
}

/* Backward of one per-query record: per query i with kept keys L (m) and probabilities p (m),
 * for dp_j = dout_i . v_j:
 *   dv_j += p_j dout_i;  ds_j = p_j (dp_j - Σ_l p_l dp_l);  dq_i += scale Σ_j ds_j k_j;  dk_j += scale ds_j q_i.
 * keys, probs: the record's arrays; row_off (T + 1) the call's connection offsets; dp (T) scratch. */
static void bwd_per_query(float *dqb, float *dkb, float *dvb, const float *gb, const int *keys, const float *probs,
                          const int64_t *row_off, float *dp, const float *qb, const float *kb, const float *vb, int T,
                          int C, int HS, float scale) {
    for (int i = 0; i < T; i++) {
        const int   *L = keys + (row_off[i] - row_off[0]);
        const float *p = probs + (row_off[i] - row_off[0]);
        int          m = (int)(row_off[i + 1] - row_off[i]);
        const float *gi = gb + (size_t)i * C, *qi = qb + (size_t)i * C;
        float       *dqi = dqb + (size_t)i * C;
        float        pdp = 0.0f; /* Σ_j p_j dp_j */
        for (int j = 0; j < m; j++) {
            dp[j] = kern_dot8(gi, vb + (size_t)L[j] * C, HS);
            pdp += p[j] * dp[j];
        }
        for (int j = 0; j < m; j++) {
            size_t       off = (size_t)L[j] * C;
            float        ds  = scale * (p[j] * (dp[j] - pdp));
            const float *kj  = kb + off;
            float       *dkj = dkb + off, *dvj = dvb + off;
            for (int c = 0; c < HS; c++) {
                dvj[c] += p[j] * gi[c];
                dqi[c] += ds * kj[c];
                dkj[c] += ds * qi[c];
            }
        }
    }
}

void bwd_attention_tape(float *dq, float *dk, float *dv, const float *dout, const att_tape *tape, int call0,
                        const float *q, const float *k, const float *v, int B, int T, int NH, int HS) {
    if (B <= 0 || T <= 0 || NH <= 0) return;
    check_tape(tape, call0, B * NH, T, "bwd_attention_tape");
    if (tape->work_cap < work_need(T, HS)) {
        fprintf(stderr, "pathens: internal error: bwd_attention_tape (HS = %d) without a matching forward\n", HS);
        abort();
    }
    int   C = NH * HS;
    float scale = 1.0f / sqrtf((float)HS);
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            size_t         base = (size_t)b * T * C + (size_t)h * HS; /* (T, HS) stride C views of one head */
            const float   *qb = q + base, *kb = k + base, *vb = v + base, *gb = dout + base;
            float         *dqb = dq + base, *dkb = dk + base, *dvb = dv + base;
            int            c = call0 + b * NH + h;
            const int64_t *row_off = tape->row_off + (size_t)c * (T + 1);
            const int     *rec = tape->idx + tape->call_at[2 * c];
            const float   *fv = tape->val + tape->call_at[2 * c + 1];
            if (rec[0] == ATT_REC_WINDOWS)
                bwd_windows(dqb, dkb, dvb, gb, rec, fv, tape->work, qb, kb, vb, T, C, HS, scale);
            else if (rec[0] == ATT_REC_QUERY)
                bwd_per_query(dqb, dkb, dvb, gb, rec + 1, fv, row_off, tape->work, qb, kb, vb, T, C, HS, scale);
        }
    }
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
