/* importance.c: distance bands and the within-unit slope estimator (importance.h). */
#include "importance.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int imp_band_of(int d) { return d <= 0 ? 0 : 32 - __builtin_clz((unsigned)d); }

int imp_n_bands(int seq_len) {
    int nb = imp_band_of(seq_len > 1 ? seq_len - 1 : 0) + 1;
    return nb < IMP_MAX_BANDS ? nb : IMP_MAX_BANDS;
}

int imp_band_lo(int band) { return band <= 0 ? 0 : 1 << (band - 1); }
int imp_band_hi(int band) { return band <= 0 ? 0 : (1 << band) - 1; }

int64_t imp_band_allowed(int n, int band, int causal) {
    int lo = imp_band_lo(band), hi = imp_band_hi(band);
    if (hi > n - 1) hi = n - 1;
    int64_t total = 0;
    for (int d = lo; d <= hi; d++) total += causal ? (int64_t)(n - d) : (d == 0 ? n : 2 * (int64_t)(n - d));
    return total;
}

void imp_slope_add_unit(imp_slope *s, const double *x, const double *y, int K) {
    double mx = 0.0, my = 0.0;
    int    n = 0;
    for (int k = 0; k < K; k++)
        if (!isnan(x[k])) {
            mx += x[k];
            my += y[k];
            n++;
        }
    if (n < 2) return;
    mx /= n;
    my /= n;
    double sxx = 0.0, sxy = 0.0;
    for (int k = 0; k < K; k++)
        if (!isnan(x[k])) {
            sxx += (x[k] - mx) * (x[k] - mx);
            sxy += (x[k] - mx) * (y[k] - my);
        }
    if (!(sxx > 1e-300)) return; /* x did not vary on this unit: no information */
    s->sxx += sxx;
    s->sxy += sxy;
    s->sxy2 += sxy * sxy;
    s->sxyxx += sxy * sxx;
    s->sxx2 += sxx * sxx;
    s->units++;
}

void imp_slope_merge(imp_slope *into, const imp_slope *from) {
    into->sxx += from->sxx;
    into->sxy += from->sxy;
    into->sxy2 += from->sxy2;
    into->sxyxx += from->sxyxx;
    into->sxx2 += from->sxx2;
    into->units += from->units;
}

double imp_slope_delta(const imp_slope *s) { return s->sxx > 0 ? -s->sxy / s->sxx : NAN; }

double imp_slope_stderr(const imp_slope *s) {
    if (s->units < 2 || !(s->sxx > 0)) return NAN;
    double b = s->sxy / s->sxx, n = (double)s->units;
    double ss = s->sxy2 - 2.0 * b * s->sxyxx + b * b * s->sxx2;
    if (ss < 0) ss = 0;
    return sqrt(n / (n - 1.0) * ss) / s->sxx;
}

/* in-place Cholesky of the (n, n) SPD matrix A (lower); returns 0 if not positive definite */
static int chol(double *A, int n) {
    for (int j = 0; j < n; j++) {
        double d = A[j * n + j];
        for (int k = 0; k < j; k++) d -= A[j * n + k] * A[j * n + k];
        if (!(d > 0)) return 0;
        A[j * n + j] = sqrt(d);
        for (int i = j + 1; i < n; i++) {
            double s = A[i * n + j];
            for (int k = 0; k < j; k++) s -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = s / A[j * n + j];
        }
    }
    return 1;
}

/* solve L Lᵀ x = b in place */
static void chol_solve(const double *Lm, int n, double *b) {
    for (int i = 0; i < n; i++) {
        double s = b[i];
        for (int k = 0; k < i; k++) s -= Lm[i * n + k] * b[k];
        b[i] = s / Lm[i * n + i];
    }
    for (int i = n - 1; i >= 0; i--) {
        double s = b[i];
        for (int k = i + 1; k < n; k++) s -= Lm[k * n + i] * b[k];
        b[i] = s / Lm[i * n + i];
    }
}

pe_status imp_joint_fit(double *delta, double *se, int64_t *units_out, int p, int N, int K, const double *X,
                        size_t x_unit, size_t x_member, const double *Y) {
    for (int j = 0; j < p; j++) {
        delta[j] = se[j] = NAN;
        units_out[j] = 0;
    }
    if (K < 2 || p < 1) return PE_OK;
    double *xt = malloc(sizeof(double) * (size_t)K * p), *yt = malloc(sizeof(double) * K);
    double *A = calloc((size_t)p * p, sizeof(double)), *bv = calloc((size_t)p, sizeof(double));
    double *M = calloc((size_t)p * p, sizeof(double)), *g = malloc(sizeof(double) * p);
    int    *idx = malloc(sizeof(int) * p);
    if (!xt || !yt || !A || !bv || !M || !g || !idx) {
        free(xt); free(yt); free(A); free(bv); free(M); free(g); free(idx);
        return PE_ERR_INTERNAL;
    }
    /* centred rows of one unit into xt (K, p), yt (K); NaN features -> 0 (no information) */
    #define CENTRE(u)                                                                           \
        do {                                                                                    \
            double my = 0.0;                                                                    \
            for (int k = 0; k < K; k++) my += Y[(size_t)(u) * K + k];                            \
            my /= K;                                                                            \
            for (int k = 0; k < K; k++) yt[k] = Y[(size_t)(u) * K + k] - my;                     \
            for (int j = 0; j < p; j++) {                                                       \
                double mx = 0.0;                                                                \
                int    bad = 0;                                                                 \
                for (int k = 0; k < K; k++) {                                                   \
                    double x = X[(size_t)(u) * x_unit + (size_t)k * x_member + j];              \
                    if (isnan(x)) bad = 1;                                                      \
                    mx += x;                                                                    \
                }                                                                               \
                mx /= K;                                                                        \
                for (int k = 0; k < K; k++)                                                     \
                    xt[k * p + j] = bad ? 0.0 : X[(size_t)(u) * x_unit + (size_t)k * x_member + j] - mx; \
            }                                                                                   \
        } while (0)
    for (int u = 0; u < N; u++) {
        CENTRE(u);
        for (int j = 0; j < p; j++) {
            double v = 0.0;
            for (int k = 0; k < K; k++) v += xt[k * p + j] * xt[k * p + j];
            if (v > 1e-300) units_out[j]++;
            for (int i = 0; i <= j; i++) {
                double s = 0.0;
                for (int k = 0; k < K; k++) s += xt[k * p + i] * xt[k * p + j];
                A[j * p + i] += s;
            }
            double s = 0.0;
            for (int k = 0; k < K; k++) s += xt[k * p + j] * yt[k];
            bv[j] += s;
        }
    }
    /* keep the features that varied; ridge-stabilise */
    int q = 0;
    double mdiag = 0.0;
    for (int j = 0; j < p; j++)
        if (units_out[j] > 0 && A[j * p + j] > 0) {
            idx[q++] = j;
            if (A[j * p + j] > mdiag) mdiag = A[j * p + j];
        }
    double *As = calloc((size_t)q * q + 1, sizeof(double)), *beta = calloc((size_t)q + 1, sizeof(double));
    if (!As || !beta) {
        free(xt); free(yt); free(A); free(bv); free(M); free(g); free(idx); free(As); free(beta);
        return PE_ERR_INTERNAL;
    }
    for (int a = 0; a < q; a++) {
        for (int c = 0; c <= a; c++) As[a * q + c] = As[c * q + a] = A[idx[a] * p + idx[c]];
        As[a * q + a] += 1e-12 * mdiag;
        beta[a] = bv[idx[a]];
    }
    int64_t n_units = 0;
    if (q > 0 && chol(As, q)) {
        chol_solve(As, q, beta);
        /* sandwich: Σ_u g_u g_uᵀ with g_u = X̃_uᵀ (ỹ_u - X̃_u β) */
        for (int u = 0; u < N; u++) {
            CENTRE(u);
            int informative = 0;
            for (int a = 0; a < q; a++) g[a] = 0.0;
            for (int k = 0; k < K; k++) {
                double e = yt[k];
                for (int a = 0; a < q; a++) e -= xt[k * p + idx[a]] * beta[a];
                for (int a = 0; a < q; a++) {
                    g[a] += xt[k * p + idx[a]] * e;
                    if (xt[k * p + idx[a]] != 0.0) informative = 1;
                }
            }
            n_units += informative;
            for (int a = 0; a < q; a++)
                for (int c = 0; c < q; c++) M[a * q + c] += g[a] * g[c];
        }
        double adj = n_units > 1 ? (double)n_units / (double)(n_units - 1) : NAN;
        /* cov = A^-1 M A^-1: column by column */
        double *col = calloc((size_t)q, sizeof(double)), *tmp = calloc((size_t)q * q, sizeof(double));
        if (col && tmp) {
            for (int c = 0; c < q; c++) { /* tmp[:, c] = A^-1 M[:, c] */
                for (int a = 0; a < q; a++) col[a] = M[a * q + c];
                chol_solve(As, q, col);
                for (int a = 0; a < q; a++) tmp[a * q + c] = col[a];
            }
            for (int a = 0; a < q; a++) { /* row a of tmp, then A^-1: diagonal element only */
                for (int c = 0; c < q; c++) col[c] = tmp[a * q + c];
                chol_solve(As, q, col);
                double v = col[a] * adj;
                se[idx[a]] = v >= 0 ? sqrt(v) : NAN;
                delta[idx[a]] = -beta[a];
            }
        }
        free(col);
        free(tmp);
    }
    #undef CENTRE
    free(xt); free(yt); free(A); free(bv); free(M); free(g); free(idx); free(As); free(beta);
    return PE_OK;
}

/* ---- drop-one importance members ------------------------------------------------------------- */

void imp_design_init(imp_design *d, int L, int NH, int NB, int causal, int64_t N, int64_t units, uint64_t seed) {
    memset(d, 0, sizeof *d);
    d->L = L, d->NH = NH, d->NB = NB, d->b0 = causal ? 1 : 0, d->N = N, d->seed = seed;
    d->C_h = L * NH;
    d->C_r = L + L * (NB > d->b0 ? NB - d->b0 : 0);
    int64_t target = units < N / 2 ? units : N / 2; /* units per component: at most half of them */
    if (target <= 0 || N <= 0) return;
    for (int blk = 0; blk < 2; blk++) {
        int64_t C = blk ? d->C_r : d->C_h;
        int64_t M = (C * target + N - 1) / N;
        if (M > C / 2) M = C / 2;
        if (blk) d->M_r = (int)M;
        else d->M_h = (int)M;
    }
}

int imp_design_components(const imp_design *d) { return d->C_h + d->C_r; }

int imp_design_band_component(const imp_design *d, int layer, int band) {
    if (band < d->b0 || band >= d->NB || layer < 0 || layer >= d->L) return -1;
    return d->C_h + d->L + layer * (d->NB - d->b0) + (band - d->b0);
}

int imp_design_component(const imp_design *d, int m, int64_t u) {
    int blk = m >= d->M_h, M = blk ? d->M_r : d->M_h, C = blk ? d->C_r : d->C_h;
    if (m < 0 || m >= d->M_h + d->M_r || u < 0 || M <= 0 || C <= 0) return -1;
    if (blk) m -= d->M_h;
    uint64_t q = (uint64_t)u * (uint64_t)M + (uint64_t)m, cyc = q / (uint64_t)C;
    int      i = (int)(q % (uint64_t)C);
    /* entry i of the cycle's permutation: forward Fisher-Yates over an implicit identity, i + 1 steps */
    pw_rng r;
    pw_rng_init(&r, d->seed, 0x494d50ULL /* "IMP" */, (uint64_t)blk, cyc, (uint64_t)C, 0);
    int small[256], *p = C <= 256 ? small : malloc(sizeof(int) * (size_t)C);
    if (!p) abort(); /* a few kilobytes */
    for (int j = 0; j < C; j++) p[j] = j;
    for (int a = 0; a <= i && a < C - 1; a++) {
        int b = a + (int)(pw_rng_u64(&r) % (uint64_t)(C - a));
        int x = p[a]; p[a] = p[b]; p[b] = x;
    }
    int c = p[i] + (blk ? d->C_h : 0);
    if (p != small) free(p);
    return c;
}

int imp_drop_draw(const void *ctx, pw_sample *s, int member, int layer, int head, int64_t seq_id, int n, int causal) {
    imp_drop         *dr = (imp_drop *)ctx; /* the cache below: the object is the caller's, never const */
    const imp_design *d  = dr->d;
    if (dr->fixed < 0 && !(dr->c_valid && dr->c_member == member && dr->c_seq == seq_id)) {
        dr->c_comp = imp_design_component(d, member, seq_id); /* a Fisher-Yates walk: once per (member, unit) */
        dr->c_member = member, dr->c_seq = seq_id, dr->c_valid = 1;
    }
    int c = dr->fixed >= 0 ? dr->fixed : dr->c_comp;
    if (c < 0) return 0;
    s->n = n, s->causal = causal, s->n_windows = 0;
    if (c < d->C_h) {
        if (c != layer * d->NH + head) return 0;
        s->kind = PW_SAMPLE_NONE;
        return 1;
    }
    c -= d->C_h;
    if (c < d->L) {
        if (c != layer) return 0;
        s->kind = PW_SAMPLE_NONE;
        return 1;
    }
    c -= d->L;
    int nbl = d->NB - d->b0, l = c / nbl, band = d->b0 + c % nbl;
    if (l != layer || n < 2) return 0; /* one position: no distance but 0, which stays */
    int lo = imp_band_lo(band), hi = imp_band_hi(band), off = 0;
    s->kind = PW_SAMPLE_PER_QUERY;
    for (int i = 0; i < n; i++) { /* every allowed key whose distance lies outside the band, ascending */
        s->key_start[i] = off;
        for (int j = 0, je = causal ? i : n - 1; j <= je; j++) {
            int dist = i > j ? i - j : j - i;
            if (dist < lo || dist > hi) s->keys[off++] = j;
        }
    }
    s->key_start[n] = off;
    return 1;
}

/* average ranks (1-based) of x[idx[0..n)] into r */
static void ranks_of(double *r, const double *x, const int *idx, int n, int *ord) {
    for (int i = 0; i < n; i++) ord[i] = i;
    for (int i = 1; i < n; i++) { /* insertion sort: n is a few hundred at most */
        int v = ord[i], j = i - 1;
        while (j >= 0 && x[idx[ord[j]]] > x[idx[v]]) ord[j + 1] = ord[j], j--;
        ord[j + 1] = v;
    }
    for (int a = 0; a < n;) {
        int b = a;
        while (b + 1 < n && x[idx[ord[b + 1]]] == x[idx[ord[a]]]) b++;
        for (int k = a; k <= b; k++) r[ord[k]] = 0.5 * (a + b) + 1.0;
        a = b + 1;
    }
}

double imp_spearman(const double *a, const double *b, int n, int *n_out) {
    int    *idx = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1)), *ord = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    double *ra = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1)), *rb = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    int     m  = 0;
    double  rho = NAN;
    if (idx && ord && ra && rb) {
        for (int i = 0; i < n; i++)
            if (isfinite(a[i]) && isfinite(b[i])) idx[m++] = i;
        if (m >= 3) {
            ranks_of(ra, a, idx, m, ord);
            ranks_of(rb, b, idx, m, ord);
            double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
            for (int i = 0; i < m; i++) ma += ra[i], mb += rb[i];
            ma /= m, mb /= m;
            for (int i = 0; i < m; i++) {
                sab += (ra[i] - ma) * (rb[i] - mb);
                saa += (ra[i] - ma) * (ra[i] - ma);
                sbb += (rb[i] - mb) * (rb[i] - mb);
            }
            if (saa > 0 && sbb > 0) rho = sab / sqrt(saa * sbb);
        }
    }
    free(idx); free(ord); free(ra); free(rb);
    if (n_out) *n_out = m;
    return rho;
}
