/* test_backward.c: the training kernels (backward.h).
 *
 *   - every backward (linear, LayerNorm, GELU, cross-entropy, attention through the tape) against
 *     central finite differences of a double-precision forward written here (loss = Σ G ⊙ f(x)
 *     for a random upstream gradient G), on tiny shapes;
 *   - fast kernels against their _ref twins on larger shapes;
 *   - fwd_layernorm bit-identical to the inference kern_norm (LayerNorm);
 *   - the key invariant of SSA training: the attention forward / backward over a pathway sample
 *     (through the tape, kept connections only) equals dense masked attention in double with the
 *     same connections (mask from pw_draw + pw_mask_dense per (b, h)); pw NULL = the all-allowed mask;
 *   - att_query_keys = pw_mask_dense row by row, the tape's kept count = pw_count_kept, the tape
 *     growing from capacity 1, and kept connections at ratio 4 about a quarter of dense.
 *
 * Tolerances (all relative to max(max|reference|, floor)):
 *   finite differences: step h = 1e-4 on a double forward, so truncation (~h^2) and cancellation
 *   (~1e-16 / h) errors are below 1e-8; the float kernels then differ by float rounding over a
 *   handful of terms (~1e-6). We allow 1e-3 for the float kernels (a wrong index, sign or term is
 *   an O(1) error) and 1e-5 for the _ref twins (double inside, float only at the output).
 *   fast vs _ref: float accumulation over K terms is within eps * sqrt(K) of double; we allow
 *   1e-5 * sqrt(K) (with K <= 64 here, up to 8e-5), and 1e-5 for attention (K <= T = 33 terms of O(1)).
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backward.h"
#include "kernels.h"

#define FD_H 1e-4
#define TOL_FD_FAST 1e-3
#define TOL_FD_REF 1e-5

static float *falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

static double *dalloc(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    assert_non_null(p);
    return p;
}

static double *to_double(const float *x, size_t n) {
    double *d = dalloc(n);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* |a - ref| <= tol * max(min_scale, max|ref|) everywhere (NaN fails) */
static void check_close_d(const float *a, const double *ref, size_t n, double tol, double min_scale, const char *what) {
    double scale = min_scale, worst = 0.0;
    for (size_t i = 0; i < n; i++) scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (!(d <= worst)) {
            worst = d;
            at = i;
        }
    }
    if (!(worst <= tol * scale))
        fail_msg("%s: max |got - ref| = %g at %zu (got %g, ref %g) > %g (scale %g)", what, worst, at, (double)a[at],
                 ref[at], tol * scale, scale);
}

static void check_close_f(const float *a, const float *ref, size_t n, double tol, const char *what) {
    double *r = to_double(ref, n);
    check_close_d(a, r, n, tol, 1.0, what);
    free(r);
}

/* ---- finite differences ------------------------------------------------------------------- */

/* a scalar loss of the double parameters held in ctx */
typedef double (*loss_fn)(void *ctx);

/* central differences d loss / d x[i] for i < n, x one of the arrays the loss reads */
static double *fd_grad(loss_fn f, void *ctx, double *x, size_t n) {
    double *g = dalloc(n);
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + FD_H;
        double lp = f(ctx);
        x[i] = x0 - FD_H;
        double lm = f(ctx);
        x[i] = x0;
        g[i] = (lp - lm) / (2.0 * FD_H);
    }
    return g;
}

/* ---- linear ------------------------------------------------------------------------------- */

typedef struct {
    int     N, C, OC;
    double *inp, *w, *b, *G; /* (N, C), (OC, C), (OC), (N, OC) */
} mm_ctx;

static double mm_loss(void *vc) {
    mm_ctx *c = vc;
    double  L = 0.0;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double y = c->b[o];
            for (int k = 0; k < c->C; k++) y += c->inp[n * c->C + k] * c->w[o * c->C + k];
            L += c->G[n * c->OC + o] * y;
        }
    return L;
}

static void test_matmul_fd(void **state) {
    (void)state;
    const int N = 5, C = 6, OC = 7;
    float *inp = falloc(N * C), *w = falloc(OC * C), *b = falloc(OC), *G = falloc(N * OC);
    tu_fill_random(inp, N * C, 1, 1.0f);
    tu_fill_random(w, OC * C, 2, 1.0f);
    tu_fill_random(b, OC, 3, 1.0f);
    tu_fill_random(G, N * OC, 4, 1.0f);
    mm_ctx  c = {N, C, OC, to_double(inp, N * C), to_double(w, OC * C), to_double(b, OC), to_double(G, N * OC)};
    double *fdi = fd_grad(mm_loss, &c, c.inp, N * C), *fdw = fd_grad(mm_loss, &c, c.w, OC * C);
    double *fdb = fd_grad(mm_loss, &c, c.b, OC);
    for (int ref = 0; ref < 2; ref++) {
        float *di = falloc(N * C), *dw = falloc(OC * C), *db = falloc(OC);
        (ref ? bwd_matmul_ref : bwd_matmul)(di, dw, db, G, inp, w, N, C, OC);
        double tol = ref ? TOL_FD_REF : TOL_FD_FAST;
        check_close_d(di, fdi, N * C, tol, 1e-3, ref ? "matmul_ref dinp" : "matmul dinp");
        check_close_d(dw, fdw, OC * C, tol, 1e-3, ref ? "matmul_ref dw" : "matmul dw");
        check_close_d(db, fdb, OC, tol, 1e-3, ref ? "matmul_ref db" : "matmul db");
        /* gradients accumulate; NULL dinp / db are skipped */
        float *dw2 = falloc(OC * C);
        for (int i = 0; i < OC * C; i++) dw2[i] = 1.0f;
        (ref ? bwd_matmul_ref : bwd_matmul)(NULL, dw2, NULL, G, inp, w, N, C, OC);
        for (int i = 0; i < OC * C; i++) dw2[i] -= 1.0f;
        check_close_f(dw2, dw, OC * C, 1e-6, "matmul dw accumulates");
        free(di), free(dw), free(db), free(dw2);
    }
    free(fdi), free(fdw), free(fdb);
    free(c.inp), free(c.w), free(c.b), free(c.G);
    free(inp), free(w), free(b), free(G);
}

static void test_matmul_fast_vs_ref(void **state) {
    (void)state;
    const int shapes[][3] = {{33, 48, 20}, {1, 64, 64}, {64, 1, 3}, {17, 40, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int    N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float *inp = falloc(N * C), *w = falloc(OC * C), *G = falloc(N * OC);
        tu_fill_random(inp, N * C, 10 + s, 1.0f);
        tu_fill_random(w, OC * C, 20 + s, 1.0f);
        tu_fill_random(G, N * OC, 30 + s, 1.0f);
        float *d[2][3];
        for (int r = 0; r < 2; r++) {
            d[r][0] = falloc(N * C), d[r][1] = falloc(OC * C), d[r][2] = falloc(OC);
            for (int i = 0; i < N * C; i++) d[r][0][i] = 0.5f; /* += on a non-zero start */
            (r ? bwd_matmul_ref : bwd_matmul)(d[r][0], d[r][1], d[r][2], G, inp, w, N, C, OC);
        }
        char what[96];
        snprintf(what, sizeof what, "matmul fast vs ref N=%d C=%d OC=%d", N, C, OC);
        check_close_f(d[0][0], d[1][0], N * C, 1e-5 * sqrt(OC), what);
        check_close_f(d[0][1], d[1][1], OC * C, 1e-5 * sqrt(N), what);
        check_close_f(d[0][2], d[1][2], OC, 1e-5 * sqrt(N), what);
        for (int r = 0; r < 2; r++) free(d[r][0]), free(d[r][1]), free(d[r][2]);
        free(inp), free(w), free(G);
    }
}

/* ---- LayerNorm ---------------------------------------------------------------------------- */

#define LN_EPS 1e-5f

typedef struct {
    int     N, C;
    double *inp, *w, *b, *G; /* (N, C), (C), (C), (N, C) */
} ln_ctx;

static double ln_loss(void *vc) {
    ln_ctx *c = vc;
    double  L = 0.0;
    for (int n = 0; n < c->N; n++) {
        const double *x = c->inp + n * c->C;
        double        m = 0.0, v = 0.0;
        for (int k = 0; k < c->C; k++) m += x[k];
        m /= c->C;
        for (int k = 0; k < c->C; k++) v += (x[k] - m) * (x[k] - m);
        double r = 1.0 / sqrt(v / c->C + LN_EPS);
        for (int k = 0; k < c->C; k++) L += c->G[n * c->C + k] * ((x[k] - m) * r * c->w[k] + c->b[k]);
    }
    return L;
}

static void test_layernorm_fd(void **state) {
    (void)state;
    const int N = 5, C = 6;
    float *inp = falloc(N * C), *w = falloc(C), *b = falloc(C), *G = falloc(N * C);
    tu_fill_random(inp, N * C, 41, 2.0f);
    for (int i = 0; i < N * C; i++) inp[i] += 0.3f * (float)(i % C); /* non-zero means */
    tu_fill_random(w, C, 42, 0.5f);
    for (int k = 0; k < C; k++) w[k] += 1.0f;
    tu_fill_random(b, C, 43, 0.5f);
    tu_fill_random(G, N * C, 44, 1.0f);
    ln_ctx  c = {N, C, to_double(inp, N * C), to_double(w, C), to_double(b, C), to_double(G, N * C)};
    double *fdi = fd_grad(ln_loss, &c, c.inp, N * C), *fdw = fd_grad(ln_loss, &c, c.w, C);
    double *fdb = fd_grad(ln_loss, &c, c.b, C);
    float  *out = falloc(N * C), *mean = falloc(N), *rstd = falloc(N);
    fwd_layernorm(out, mean, rstd, inp, w, b, N, C, LN_EPS);
    for (int ref = 0; ref < 2; ref++) {
        float *di = falloc(N * C), *dw = falloc(C), *db = falloc(C);
        (ref ? bwd_layernorm_ref : bwd_layernorm)(di, dw, db, G, inp, mean, rstd, w, N, C);
        double tol = ref ? TOL_FD_REF : TOL_FD_FAST;
        check_close_d(di, fdi, N * C, tol, 1e-3, ref ? "layernorm_ref dinp" : "layernorm dinp");
        check_close_d(dw, fdw, C, tol, 1e-3, ref ? "layernorm_ref dw" : "layernorm dw");
        check_close_d(db, fdb, C, tol, 1e-3, ref ? "layernorm_ref db" : "layernorm db");
        /* db NULL: the rest unchanged */
        float *di2 = falloc(N * C), *dw2 = falloc(C);
        (ref ? bwd_layernorm_ref : bwd_layernorm)(di2, dw2, NULL, G, inp, mean, rstd, w, N, C);
        assert_memory_equal(di2, di, N * C * sizeof(float));
        assert_memory_equal(dw2, dw, C * sizeof(float));
        free(di), free(dw), free(db), free(di2), free(dw2);
    }
    free(fdi), free(fdw), free(fdb), free(out), free(mean), free(rstd);
    free(c.inp), free(c.w), free(c.b), free(c.G);
    free(inp), free(w), free(b), free(G);
}

static void test_layernorm_forward_bits_and_twins(void **state) {
    (void)state;
    const int Cs[] = {1, 6, 64, 100, 768};
    const int N = 7;
    for (size_t s = 0; s < sizeof Cs / sizeof Cs[0]; s++) {
        int    C = Cs[s];
        float *inp = falloc(N * C), *w = falloc(C), *b = falloc(C), *G = falloc(N * C);
        tu_fill_random(inp, N * C, 50 + s, 3.0f);
        for (int i = 0; i < N * C; i++) inp[i] += 1.5f;
        tu_fill_random(w, C, 60 + s, 1.0f);
        tu_fill_random(b, C, 70 + s, 1.0f);
        tu_fill_random(G, N * C, 80 + s, 1.0f);
        for (int with_b = 0; with_b < 2; with_b++) {
            float *y = falloc(N * C), *yk = falloc(N * C), *mean = falloc(N), *rstd = falloc(N);
            fwd_layernorm(y, mean, rstd, inp, w, with_b ? b : NULL, N, C, LN_EPS);
            kern_norm(yk, inp, w, with_b ? b : NULL, N, C, MODEL_NORM_LAYERNORM, LN_EPS);
            if (memcmp(y, yk, (size_t)N * C * sizeof(float)) != 0)
                fail_msg("fwd_layernorm is not bit-identical to kern_norm (C=%d, bias=%d)", C, with_b);
            for (int n = 0; n < N; n++) { /* mean, rstd against double */
                double m = 0.0, v = 0.0;
                for (int k = 0; k < C; k++) m += inp[n * C + k];
                m /= C;
                for (int k = 0; k < C; k++) v += (inp[n * C + k] - m) * (inp[n * C + k] - m);
                double r = 1.0 / sqrt(v / C + LN_EPS);
                assert_true(fabs(mean[n] - m) <= 1e-5 * (1.0 + fabs(m)));
                assert_true(fabs(rstd[n] - r) <= 1e-5 * r);
            }
            float *d[2][3];
            for (int r = 0; r < 2; r++) {
                d[r][0] = falloc(N * C), d[r][1] = falloc(C), d[r][2] = falloc(C);
                (r ? bwd_layernorm_ref : bwd_layernorm)(d[r][0], d[r][1], d[r][2], G, inp, mean, rstd, w, N, C);
            }
            char what[80];
            snprintf(what, sizeof what, "layernorm fast vs ref C=%d", C);
            check_close_f(d[0][0], d[1][0], N * C, 1e-5 * sqrt(C), what);
            check_close_f(d[0][1], d[1][1], C, 1e-5 * sqrt(N), what);
            check_close_f(d[0][2], d[1][2], C, 1e-5 * sqrt(N), what);
            for (int r = 0; r < 2; r++) free(d[r][0]), free(d[r][1]), free(d[r][2]);
            free(y), free(yk), free(mean), free(rstd);
        }
        free(inp), free(w), free(b), free(G);
    }
}

/* ---- GELU --------------------------------------------------------------------------------- */

typedef struct {
    int     n;
    double *x, *G;
} gelu_ctx;

static double gelu_loss(void *vc) {
    gelu_ctx *c = vc;
    double    L = 0.0;
    for (int i = 0; i < c->n; i++) L += c->G[i] * 0.5 * c->x[i] * (1.0 + erf(c->x[i] / sqrt(2.0)));
    return L;
}

static void test_gelu(void **state) {
    (void)state;
    const int n = 101;
    float    *x = falloc(n), *G = falloc(n);
    tu_fill_random(x, n, 90, 5.0f);
    x[0] = 0.0f, x[1] = -9.0f, x[2] = 9.0f;
    tu_fill_random(G, n, 91, 1.0f);
    gelu_ctx c = {n, to_double(x, n), to_double(G, n)};
    double  *fd = fd_grad(gelu_loss, &c, c.x, n);
    float   *d[2];
    for (int r = 0; r < 2; r++) {
        d[r] = falloc(n);
        for (int i = 0; i < n; i++) d[r][i] = 0.25f; /* += */
        (r ? bwd_gelu_ref : bwd_gelu)(d[r], G, x, n);
        for (int i = 0; i < n; i++) d[r][i] -= 0.25f;
        check_close_d(d[r], fd, n, r ? TOL_FD_REF : TOL_FD_FAST, 1e-3, r ? "gelu_ref" : "gelu");
    }
    check_close_f(d[0], d[1], n, 1e-5, "gelu fast vs ref");
    /* the forward this is the derivative of: kern_gelu's erf form */
    float *y = falloc(n);
    memcpy(y, x, n * sizeof(float));
    kern_gelu(y, n, 0);
    for (int i = 0; i < n; i++) assert_true(fabs(y[i] - 0.5 * c.x[i] * (1.0 + erf(c.x[i] / sqrt(2.0)))) <= 1e-5);
    free(y), free(d[0]), free(d[1]), free(fd), free(c.x), free(c.G), free(x), free(G);
}

/* ---- cross-entropy ------------------------------------------------------------------------ */

typedef struct {
    int        N, V;
    double    *logits;
    const int *targets;
} ce_ctx;

static double ce_loss(void *vc) {
    ce_ctx *c = vc;
    double  L = 0.0;
    for (int n = 0; n < c->N; n++) {
        if (c->targets[n] < 0) continue;
        const double *l = c->logits + n * c->V;
        double        mx = l[0], s = 0.0;
        for (int v = 1; v < c->V; v++) mx = l[v] > mx ? l[v] : mx;
        for (int v = 0; v < c->V; v++) s += exp(l[v] - mx);
        L += log(s) + mx - l[c->targets[n]];
    }
    return L;
}

static void test_crossentropy(void **state) {
    (void)state;
    const int   N = 5, V = 7;
    const int   targets[5] = {3, -1, 0, 6, 2};
    const float scale = 0.37f;
    float      *logits = falloc(N * V);
    tu_fill_random(logits, N * V, 100, 3.0f);
    logits[2 * V + 4] = 40.0f; /* a large logit: the max subtraction keeps it finite */
    ce_ctx  c = {N, V, to_double(logits, N * V), targets};
    double  L = ce_loss(&c);
    double *fd = fd_grad(ce_loss, &c, c.logits, N * V);
    for (int i = 0; i < N * V; i++) fd[i] *= scale;
    float *d[2];
    for (int r = 0; r < 2; r++) {
        d[r] = falloc(N * V);
        for (int i = 0; i < N * V; i++) d[r][i] = NAN; /* written, every row */
        double loss = (r ? bwd_crossentropy_ref : bwd_crossentropy)(d[r], logits, targets, N, V, scale);
        assert_true(fabs(loss - L) <= 1e-6 * fabs(L));
        check_close_d(d[r], fd, N * V, r ? TOL_FD_REF : TOL_FD_FAST, 1e-3, r ? "crossentropy_ref" : "crossentropy");
        for (int v = 0; v < V; v++) assert_true(d[r][1 * V + v] == 0.0f); /* unscored row */
        /* dlogits may alias logits: the same bits */
        float *alias = falloc(N * V);
        memcpy(alias, logits, N * V * sizeof(float));
        double la = (r ? bwd_crossentropy_ref : bwd_crossentropy)(alias, alias, targets, N, V, scale);
        assert_true(la == loss);
        assert_memory_equal(alias, d[r], N * V * sizeof(float));
        free(alias);
    }
    free(d[0]), free(d[1]), free(fd), free(c.logits), free(logits);

    /* fast vs ref on a vocabulary-sized row count */
    const int N2 = 9, V2 = 300;
    int      *t2 = malloc(N2 * sizeof(int));
    float    *l2 = falloc(N2 * V2), *a = falloc(N2 * V2), *b = falloc(N2 * V2);
    tu_fill_random(l2, N2 * V2, 101, 8.0f);
    for (int n = 0; n < N2; n++) t2[n] = n == 4 ? -1 : (n * 37) % V2;
    double la = bwd_crossentropy(a, l2, t2, N2, V2, 1.0f / 8.0f);
    double lb = bwd_crossentropy_ref(b, l2, t2, N2, V2, 1.0f / 8.0f);
    assert_true(fabs(la - lb) <= 1e-5 * fabs(lb));
    check_close_f(a, b, N2 * V2, 1e-5, "crossentropy fast vs ref");
    free(t2), free(l2), free(a), free(b);
}

/* ---- attention ---------------------------------------------------------------------------- */

static pw_config cfg(pw_scheme scheme, double ratio, double sigma) {
    pw_config c = {0};
    c.scheme = scheme;
    c.ratio = ratio;
    c.sigma = sigma;
    c.lambda = INFINITY;
    c.keep = 0.0;
    c.members = 1;
    c.seed = 777;
    c.granularity = PW_GRAN_HEAD;
    return c;
}

/* the (B, NH, T, T) mask of fwd_attention_tape's rule: pw NULL = every allowed key, else the draw of (b, h) */
static uint8_t *build_mask(const pw_config *pw, pw_sample *s, int member, int layer, const int64_t *seq_ids, int B,
                           int T, int NH, int causal) {
    uint8_t *mask = malloc((size_t)B * NH * T * T);
    assert_non_null(mask);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            uint8_t *m = mask + ((size_t)b * NH + h) * T * T;
            if (!pw) {
                for (int i = 0; i < T; i++)
                    for (int j = 0; j < T; j++) m[i * T + j] = !causal || j <= i;
            } else {
                pw_draw(s, pw, member, layer, h, seq_ids[b], T, causal);
                pw_mask_dense(s, m);
            }
        }
    return mask;
}

typedef struct {
    int            B, T, NH, HS;
    const uint8_t *mask;
    double        *q, *k, *v, *G; /* (B, T, NH*HS) */
} att_ctx;

/* Σ G ⊙ out of masked attention in double (rows without keys output 0) */
static double att_loss(void *vc) {
    att_ctx *c = vc;
    int      C = c->NH * c->HS, T = c->T;
    double   L = 0.0, sc[64];
    assert_true(T <= 64);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int i = 0; i < T; i++) {
                const uint8_t *mr = c->mask + (((size_t)b * c->NH + h) * T + i) * T;
                const double  *qi = c->q + (b * T + i) * C + h * c->HS;
                double         mx = -INFINITY, sum = 0.0;
                for (int j = 0; j < T; j++) {
                    if (!mr[j]) continue;
                    const double *kj = c->k + (b * T + j) * C + h * c->HS;
                    double        s = 0.0;
                    for (int d = 0; d < c->HS; d++) s += qi[d] * kj[d];
                    sc[j] = s / sqrt((double)c->HS);
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                if (mx == -INFINITY) continue;
                for (int j = 0; j < T; j++)
                    if (mr[j]) sum += exp(sc[j] - mx);
                for (int j = 0; j < T; j++) {
                    if (!mr[j]) continue;
                    double p = exp(sc[j] - mx) / sum;
                    for (int d = 0; d < c->HS; d++)
                        L += c->G[(b * T + i) * C + h * c->HS + d] * p * c->v[(b * T + j) * C + h * c->HS + d];
                }
            }
    return L;
}

/* run the tape forward + backward and the masked twin, return the four results of each */
typedef struct {
    float  *out, *dq, *dk, *dv;
    int64_t kept;
} att_result;

static void att_result_free(att_result *r) { free(r->out), free(r->dq), free(r->dk), free(r->dv); }

/* tape path: a tape for 2 layers, this one being layer 1 (call0 = B*NH), after a layer-0 pass
 * over the same inputs so that its offsets start past other calls' connections */
static att_result run_tape(const float *q, const float *k, const float *v, const float *G, int B, int T, int NH,
                           int HS, int causal, const pw_config *pw, pw_sample *s, int member, const int64_t *seq_ids,
                           int64_t initial_cap, att_tape *tape_out) {
    size_t     n = (size_t)B * T * NH * HS;
    att_result r = {falloc(n), falloc(n), falloc(n), falloc(n), 0};
    att_tape   tape;
    assert_int_equal(att_tape_init(&tape, 2 * B * NH, T, initial_cap), 0);
    float  *scratch = falloc(n);
    int64_t k0 = fwd_attention_tape(scratch, &tape, 0, q, k, v, B, T, NH, HS, causal, pw, s, member, 0, seq_ids);
    assert_true(k0 >= 0);
    assert_int_equal(tape.used, k0);
    for (size_t i = 0; i < n; i++) r.out[i] = NAN; /* written */
    r.kept = fwd_attention_tape(r.out, &tape, B * NH, q, k, v, B, T, NH, HS, causal, pw, s, member, 1, seq_ids);
    assert_true(r.kept >= 0);
    assert_int_equal(tape.used, k0 + r.kept);
    bwd_attention_tape(r.dq, r.dk, r.dv, G, &tape, B * NH, q, k, v, B, T, NH, HS);
    free(scratch);
    if (tape_out) *tape_out = tape;
    else att_tape_free(&tape);
    return r;
}

static att_result run_masked(const uint8_t *mask, const float *q, const float *k, const float *v, const float *G,
                             int B, int T, int NH, int HS) {
    size_t     n = (size_t)B * T * NH * HS;
    att_result r = {falloc(n), falloc(n), falloc(n), falloc(n), 0};
    for (size_t i = 0; i < n; i++) r.out[i] = NAN;
    attention_masked_ref(r.out, r.dq, r.dk, r.dv, G, mask, q, k, v, B, T, NH, HS);
    for (size_t i = 0; i < (size_t)B * NH * T * T; i++) r.kept += mask[i];
    return r;
}

static void test_attention_fd(void **state) {
    (void)state;
    const int B = 2, T = 7, NH = 2, HS = 4, C = NH * HS;
    const size_t n = (size_t)B * T * C;
    float       *q = falloc(n), *k = falloc(n), *v = falloc(n), *G = falloc(n);
    tu_fill_random(q, n, 200, 1.5f);
    tu_fill_random(k, n, 201, 1.5f);
    tu_fill_random(v, n, 202, 1.0f);
    tu_fill_random(G, n, 203, 1.0f);
    const int64_t seq_ids[2] = {11, 12};
    pw_sample     s;
    pe_err        err = {0};
    assert_int_equal(pw_sample_init(&s, T, &err), PE_OK);
    pw_config ub = cfg(PW_SCHEME_UNBIASED, 2, 0), rk = cfg(PW_SCHEME_RANDOM_K, 2, 0);
    const pw_config *pws[] = {NULL, &ub, &rk};
    for (size_t c = 0; c < 3; c++)
        for (int causal = 0; causal < 2; causal++) {
            /* the layer-1 draw: run_tape's second pass is layer 1 */
            uint8_t   *mask = build_mask(pws[c], &s, 0, 1, seq_ids, B, T, NH, causal);
            att_ctx    ctx = {B, T, NH, HS, mask, to_double(q, n), to_double(k, n), to_double(v, n), to_double(G, n)};
            double    *fq = fd_grad(att_loss, &ctx, ctx.q, n), *fk = fd_grad(att_loss, &ctx, ctx.k, n);
            double    *fv = fd_grad(att_loss, &ctx, ctx.v, n);
            att_result t = run_tape(q, k, v, G, B, T, NH, HS, causal, pws[c], &s, 0, seq_ids, 16, NULL);
            att_result m = run_masked(mask, q, k, v, G, B, T, NH, HS);
            char       what[96];
            const char *names[3] = {"dense", "unbiased 2", "random-k 2"};
            for (int r = 0; r < 2; r++) {
                att_result *x = r ? &m : &t;
                double      tol = r ? TOL_FD_REF : TOL_FD_FAST;
                snprintf(what, sizeof what, "%s %s causal=%d dq", r ? "masked_ref" : "tape", names[c], causal);
                check_close_d(x->dq, fq, n, tol, 1e-3, what);
                snprintf(what, sizeof what, "%s %s causal=%d dk", r ? "masked_ref" : "tape", names[c], causal);
                check_close_d(x->dk, fk, n, tol, 1e-3, what);
                snprintf(what, sizeof what, "%s %s causal=%d dv", r ? "masked_ref" : "tape", names[c], causal);
                check_close_d(x->dv, fv, n, tol, 1e-3, what);
            }
            att_result_free(&t), att_result_free(&m);
            free(fq), free(fk), free(fv), free(mask);
            free(ctx.q), free(ctx.k), free(ctx.v), free(ctx.G);
        }
    pw_sample_free(&s);
    free(q), free(k), free(v), free(G);
}

/* tape = masked twin for out, dq, dk, dv (1e-5) and kept = mask count; also = kern_attention's out */
static void check_invariant(const pw_config *pw, int B, int T, int NH, int HS, int causal, const char *name) {
    const size_t  n = (size_t)B * T * NH * HS;
    float        *q = falloc(n), *k = falloc(n), *v = falloc(n), *G = falloc(n);
    const int64_t seq_ids[3] = {5, 17, 1000};
    const int     member = 2;
    assert_true(B <= 3);
    tu_fill_random(q, n, 300 + T, 2.0f);
    tu_fill_random(k, n, 301 + T, 2.0f);
    tu_fill_random(v, n, 302 + T, 1.0f);
    tu_fill_random(G, n, 303 + T, 1.0f);
    pw_sample s;
    pe_err    err = {0};
    assert_int_equal(pw_sample_init(&s, T, &err), PE_OK);
    uint8_t   *mask = build_mask(pw, &s, member, 1, seq_ids, B, T, NH, causal);
    att_result t = run_tape(q, k, v, G, B, T, NH, HS, causal, pw, &s, member, seq_ids, 64, NULL);
    att_result m = run_masked(mask, q, k, v, G, B, T, NH, HS);
    char       what[128];
    snprintf(what, sizeof what, "%s causal=%d T=%d HS=%d: out", name, causal, T, HS);
    check_close_f(t.out, m.out, n, 1e-5, what);
    snprintf(what, sizeof what, "%s causal=%d T=%d HS=%d: dq", name, causal, T, HS);
    check_close_f(t.dq, m.dq, n, 1e-5, what);
    snprintf(what, sizeof what, "%s causal=%d T=%d HS=%d: dk", name, causal, T, HS);
    check_close_f(t.dk, m.dk, n, 1e-5, what);
    snprintf(what, sizeof what, "%s causal=%d T=%d HS=%d: dv", name, causal, T, HS);
    check_close_f(t.dv, m.dv, n, 1e-5, what);
    assert_int_equal(t.kept, m.kept);
    /* the inference kernel over the same sample agrees with the training forward */
    float        *ko = falloc(n), *scratch = falloc((size_t)T * T + T + 1), *gather = falloc(2 * (size_t)T * HS);
    int          *isc = malloc(T * sizeof(int));
    kern_pathways kp = {0};
    kp.cfg = pw, kp.sample = &s, kp.member = member, kp.layer = 1, kp.seq_ids = seq_ids;
    kern_attention(ko, scratch, gather, isc, q, k, v, NULL, B, T, NH, NH, HS, causal, pw ? &kp : NULL);
    snprintf(what, sizeof what, "%s causal=%d T=%d: tape forward vs kern_attention", name, causal, T);
    check_close_f(t.out, ko, n, 1e-5, what);
    free(ko), free(scratch), free(gather), free(isc);
    att_result_free(&t), att_result_free(&m);
    free(mask), free(q), free(k), free(v), free(G);
    pw_sample_free(&s);
}

static void test_attention_invariant(void **state) {
    (void)state;
    pw_config cs[8];
    const char *names[8] = {"unbiased 2", "unbiased 4", "local 3 sigma 2", "random-k 3", "random-k 3 lambda 2",
                            "window 3",   "head-drop 2", "dense, head 1 of layer 1 dropped"};
    cs[0] = cfg(PW_SCHEME_UNBIASED, 2, 0);
    cs[1] = cfg(PW_SCHEME_UNBIASED, 4, 0);
    cs[2] = cfg(PW_SCHEME_LOCAL, 3, 2);
    cs[3] = cfg(PW_SCHEME_RANDOM_K, 3, 0);
    cs[4] = cfg(PW_SCHEME_RANDOM_K, 3, 0);
    cs[4].lambda = 2;
    cs[5] = cfg(PW_SCHEME_WINDOW, 3, 0);
    cs[6] = cfg(PW_SCHEME_HEAD_DROP, 2, 0);
    static const uint8_t keep[6] = {1, 1, 1, 1, 0, 1}; /* [layer * 3 + head]: layer 1 head 1 dropped */
    cs[7] = cfg(PW_SCHEME_DENSE, 1, 0);
    cs[7].n_heads = 3, cs[7].head_keep = keep;
    const int shapes[][2] = {{33, 8}, {20, 12}, {5, 3}}; /* (T, HS): dot8 full blocks, remainder, tiny */
    int       checked = 0;
    for (size_t sh = 0; sh < 3; sh++)
        for (int causal = 0; causal < 2; causal++) {
            check_invariant(NULL, 3, shapes[sh][0], 3, shapes[sh][1], causal, "dense (pw NULL)");
            checked++;
            for (int c = 0; c < 8; c++, checked++)
                check_invariant(&cs[c], 3, shapes[sh][0], 3, shapes[sh][1], causal, names[c]);
        }
    printf("  %d (scheme, shape, causal) cases: tape = masked twin\n", checked);
}

/* a dropped head outputs 0 and passes no gradient; a dense config without head_keep needs no sample */
static void test_attention_dropped_and_dense_config(void **state) {
    (void)state;
    const int B = 2, T = 9, NH = 3, HS = 4, C = NH * HS;
    const size_t n = (size_t)B * T * C;
    float       *q = falloc(n), *k = falloc(n), *v = falloc(n), *G = falloc(n);
    tu_fill_random(q, n, 400, 1.0f);
    tu_fill_random(k, n, 401, 1.0f);
    tu_fill_random(v, n, 402, 1.0f);
    tu_fill_random(G, n, 403, 1.0f);
    const int64_t seq_ids[2] = {1, 2};
    pw_sample     s;
    pe_err        err = {0};
    assert_int_equal(pw_sample_init(&s, T, &err), PE_OK);
    for (int causal = 0; causal < 2; causal++) {
        att_result d = run_tape(q, k, v, G, B, T, NH, HS, causal, NULL, NULL, 0, NULL, 1, NULL);
        pw_config  dc = cfg(PW_SCHEME_DENSE, 1, 0);
        att_result d2 = run_tape(q, k, v, G, B, T, NH, HS, causal, &dc, NULL, 0, NULL, 1, NULL);
        assert_memory_equal(d.out, d2.out, n * sizeof(float));
        assert_memory_equal(d.dq, d2.dq, n * sizeof(float));
        assert_memory_equal(d.dk, d2.dk, n * sizeof(float));
        assert_memory_equal(d.dv, d2.dv, n * sizeof(float));
        assert_int_equal(d.kept, (int64_t)B * NH * (causal ? T * (T + 1) / 2 : T * T));
        static const uint8_t keep[6] = {1, 1, 1, 1, 0, 1}; /* layer 1, head 1 dropped */
        pw_config            hk = cfg(PW_SCHEME_DENSE, 1, 0);
        hk.n_heads = 3, hk.head_keep = keep;
        att_result x = run_tape(q, k, v, G, B, T, NH, HS, causal, &hk, &s, 0, seq_ids, 1, NULL);
        assert_int_equal(x.kept, (int64_t)B * (NH - 1) * (causal ? T * (T + 1) / 2 : T * T));
        for (size_t e = 0; e < n; e++) {
            int h = (int)(e % C) / HS;
            if (h == 1) {
                assert_true(x.out[e] == 0.0f && x.dq[e] == 0.0f && x.dk[e] == 0.0f && x.dv[e] == 0.0f);
            } else { /* the other heads run the dense arithmetic: the same bits */
                assert_true(x.out[e] == d.out[e] && x.dq[e] == d.dq[e] && x.dk[e] == d.dk[e] && x.dv[e] == d.dv[e]);
            }
        }
        att_result_free(&d), att_result_free(&d2), att_result_free(&x);
    }
    pw_sample_free(&s);
    free(q), free(k), free(v), free(G);
}

/* ---- att_query_keys and the tape ---------------------------------------------------------- */

static void test_query_keys_match_mask(void **state) {
    (void)state;
    enum { MAXN = 64, NCFG = 11 };
    pw_sample s;
    pe_err    err = {0};
    assert_int_equal(pw_sample_init(&s, MAXN, &err), PE_OK);
    uint8_t *mask = malloc(MAXN * MAXN);
    int     *keys = malloc(MAXN * sizeof(int));
    static const uint8_t keep[4] = {1, 0, 1, 1};  /* [layer * 2 + head] */
    static const int     win[4] = {3, 0, 1, 100}; /* plan windows */
    const double ratios[] = {1, 1.5, 2, 3, 4, 8};
    const int    ns[] = {1, 2, 7, 33, 64};
    int          rows = 0;
    for (size_t a = 0; a < sizeof ratios / sizeof ratios[0]; a++) {
        double    rho = ratios[a];
        pw_config cs[NCFG] = {cfg(PW_SCHEME_DENSE, rho, 0),    cfg(PW_SCHEME_UNBIASED, rho, 0),
                              cfg(PW_SCHEME_LOCAL, rho, 2),    cfg(PW_SCHEME_LOCAL, rho, 0),
                              cfg(PW_SCHEME_RANDOM_K, rho, 0), cfg(PW_SCHEME_RANDOM_K, rho, 0),
                              cfg(PW_SCHEME_WINDOW, rho, 0),   cfg(PW_SCHEME_HEAD_DROP, rho, 0),
                              cfg(PW_SCHEME_PLAN, rho, 0),     cfg(PW_SCHEME_UNBIASED, rho, 0),
                              cfg(PW_SCHEME_LOCAL, rho, 4)};
        cs[5].lambda = 3;
        cs[8].n_heads = 2, cs[8].head_keep = keep, cs[8].head_window = win;
        cs[9].n_heads = 2, cs[9].head_keep = keep; /* static head drop on top of a scheme */
        cs[10].granularity = PW_GRAN_LAYER;
        for (int c = 0; c < NCFG; c++) {
            assert_int_equal(pw_config_check(&cs[c], &err), PE_OK);
            for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
                for (int causal = 0; causal < 2; causal++)
                    for (int rep = 0; rep < 4; rep++) {
                        int n = ns[b], layer = rep / 2, head = rep % 2;
                        pw_draw(&s, &cs[c], rep, layer, head, 1000 + rep, n, causal);
                        pw_mask_dense(&s, mask);
                        int64_t total = 0, kept = -1;
                        for (int i = 0; i < n; i++, rows++) {
                            int m = att_query_keys(keys, &s, i);
                            assert_true(m >= 0 && m <= n);
                            for (int j = 1; j < m; j++) assert_true(keys[j - 1] < keys[j]); /* ascending */
                            int cnt = 0;
                            for (int j = 0; j < n; j++) cnt += mask[i * n + j];
                            if (cnt != m)
                                fail_msg("cfg %d rho %g n %d causal %d: row %d has %d keys, mask %d", c, rho, n,
                                         causal, i, m, cnt);
                            for (int j = 0; j < m; j++) assert_int_equal(mask[i * n + keys[j]], 1);
                            total += m;
                        }
                        pw_count_kept(&s, &kept, NULL);
                        assert_int_equal(total, kept);
                    }
        }
    }
    printf("  %d query rows checked\n", rows);
    free(mask), free(keys);
    pw_sample_free(&s);
}

static void test_tape_growth_and_counts(void **state) {
    (void)state;
    const int B = 3, T = 32, NH = 2, HS = 8;
    const size_t n = (size_t)B * T * NH * HS;
    float       *q = falloc(n), *k = falloc(n), *v = falloc(n), *G = falloc(n);
    tu_fill_random(q, n, 500, 1.0f);
    tu_fill_random(k, n, 501, 1.0f);
    tu_fill_random(v, n, 502, 1.0f);
    tu_fill_random(G, n, 503, 1.0f);
    const int64_t seq_ids[3] = {7, 8, 9};
    pw_sample     s;
    pe_err        err = {0};
    assert_int_equal(pw_sample_init(&s, T, &err), PE_OK);
    pw_config cs[3] = {cfg(PW_SCHEME_UNBIASED, 4, 0), cfg(PW_SCHEME_LOCAL, 3, 2), cfg(PW_SCHEME_RANDOM_K, 4, 0)};
    for (int c = 0; c < 3; c++)
        for (int causal = 0; causal < 2; causal++) {
            att_tape   small, big;
            att_result a = run_tape(q, k, v, G, B, T, NH, HS, causal, &cs[c], &s, 0, seq_ids, 1, &small);
            att_result b = run_tape(q, k, v, G, B, T, NH, HS, causal, &cs[c], &s, 0, seq_ids, 1 << 16, &big);
            /* the arena's size changes nothing */
            assert_memory_equal(a.out, b.out, n * sizeof(float));
            assert_memory_equal(a.dq, b.dq, n * sizeof(float));
            assert_memory_equal(a.dk, b.dk, n * sizeof(float));
            assert_memory_equal(a.dv, b.dv, n * sizeof(float));
            assert_int_equal(small.used, big.used);
            assert_int_equal(small.iused, big.iused);
            assert_int_equal(small.fused, big.fused);
            /* both arenas grew by doubling from 1 to within 2x of what they hold (a query reserves at most T) */
            assert_true(small.icap >= small.iused && small.icap > 1 && small.icap < 2 * (small.iused + T));
            assert_true(small.fcap >= small.fused && small.fcap > 1 && small.fcap < 2 * (small.fused + T));
            assert_int_equal(big.icap, (1 << 16) / 4 + 64);
            assert_int_equal(big.fcap, 1 << 16);
            /* what is stored: one probability per kept connection; per-query records one key each too
             * (+ a tag per call), window records their windows' key lists (+ 3 per call and window) */
            assert_int_equal(small.fused, small.used);
            if (cs[c].scheme == PW_SCHEME_RANDOM_K) assert_int_equal(small.iused, small.used + 2 * B * NH);
            else assert_true(small.iused <= (int64_t)2 * B * NH * (3 + 4 * T));
            int64_t rowoff_bytes = (int64_t)2 * B * NH * (T + 3) * (int64_t)sizeof(int64_t);
            assert_int_equal(small.peak_bytes, (small.icap + small.fcap) * 4 + rowoff_bytes);
            assert_int_equal(big.peak_bytes, (big.icap + big.fcap) * 4 + rowoff_bytes);
            /* layer 1's calls: per call, kept = pw_count_kept of its draw; rows ascend */
            int64_t total = 0;
            for (int bb = 0; bb < B; bb++)
                for (int h = 0; h < NH; h++) {
                    pw_draw(&s, &cs[c], 0, 1, h, seq_ids[bb], T, causal);
                    int64_t kept;
                    pw_count_kept(&s, &kept, NULL);
                    const int64_t *ro = small.row_off + (size_t)(B * NH + bb * NH + h) * (T + 1);
                    for (int i = 0; i < T; i++) assert_true(ro[i] <= ro[i + 1]);
                    assert_int_equal(ro[T] - ro[0], kept);
                    total += kept;
                }
            assert_int_equal(a.kept, total);
            /* reset keeps the memory; a second pass stores the same connections */
            int64_t icap = small.icap, fcap = small.fcap, peak = small.peak_bytes;
            att_tape_reset(&small);
            assert_int_equal(small.used, 0);
            assert_int_equal(small.iused, 0);
            assert_int_equal(small.fused, 0);
            float  *out2 = falloc(n);
            int64_t k2 = fwd_attention_tape(out2, &small, 0, q, k, v, B, T, NH, HS, causal, &cs[c], &s, 0, 1, seq_ids);
            assert_int_equal(k2, a.kept);
            assert_memory_equal(out2, a.out, n * sizeof(float));
            assert_int_equal(small.icap, icap);
            assert_int_equal(small.fcap, fcap);
            assert_int_equal(small.peak_bytes, peak);
            free(out2);
            att_tape_free(&small), att_tape_free(&big);
            att_result_free(&a), att_result_free(&b);
        }
    pw_sample_free(&s);
    free(q), free(k), free(v), free(G);
}

static void test_kept_fraction(void **state) {
    (void)state;
    const int B = 2, T = 32, NH = 2, HS = 4;
    const size_t n = (size_t)B * T * NH * HS;
    float       *q = falloc(n), *k = falloc(n), *v = falloc(n), *out = falloc(n);
    tu_fill_random(q, n, 600, 1.0f);
    tu_fill_random(k, n, 601, 1.0f);
    tu_fill_random(v, n, 602, 1.0f);
    const int64_t seq_ids[2] = {3, 4};
    pw_sample     s;
    pe_err        err = {0};
    assert_int_equal(pw_sample_init(&s, T, &err), PE_OK);
    pw_config ub = cfg(PW_SCHEME_UNBIASED, 4, 0);
    for (int causal = 0; causal < 2; causal++) {
        att_tape tape;
        assert_int_equal(att_tape_init(&tape, B * NH, T, 1), 0);
        int64_t dense = fwd_attention_tape(out, &tape, 0, q, k, v, B, T, NH, HS, causal, NULL, NULL, 0, 0, NULL);
        att_tape_reset(&tape);
        int64_t kept = fwd_attention_tape(out, &tape, 0, q, k, v, B, T, NH, HS, causal, &ub, &s, 0, 0, seq_ids);
        assert_int_equal(dense, (int64_t)B * NH * (causal ? T * (T + 1) / 2 : T * T));
        printf("  causal=%d: kept %lld of %lld dense (%.3f)\n", causal, (long long)kept, (long long)dense,
               (double)kept / dense);
        assert_true(kept < dense);
        if (!causal) {
            assert_int_equal(kept * 4, dense); /* every query keeps the shared ceil(32/4) = 8 keys */
        } else {
            /* query i keeps |S ∩ [0, i)| + 1: expectation 1/4 of the past plus the diagonal (~0.30 of dense) */
            assert_true(kept > dense * 0.15 && kept < dense * 0.45);
        }
        att_tape_free(&tape);
    }
    pw_sample_free(&s);
    free(q), free(k), free(v), free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_fd),
        cmocka_unit_test(test_matmul_fast_vs_ref),
        cmocka_unit_test(test_layernorm_fd),
        cmocka_unit_test(test_layernorm_forward_bits_and_twins),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_crossentropy),
        cmocka_unit_test(test_attention_fd),
        cmocka_unit_test(test_attention_invariant),
        cmocka_unit_test(test_attention_dropped_and_dense_config),
        cmocka_unit_test(test_query_keys_match_mask),
        cmocka_unit_test(test_tape_growth_and_counts),
        cmocka_unit_test(test_kept_fraction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
