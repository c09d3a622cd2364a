/* test_pathways.c: the pathway samplers (src/pathways.c) against the paper's Fig. 3 vectors, the
 * counter-based contract (a draw is a pure function of seed, member, layer, head, sequence), the
 * causal rule, dense limits at ρ = 1, kept fractions with bounds derived from the definitions,
 * the exact law of random-k on small cases, and config errors. docs/pathways.md has the formulas. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "pathways.h"

#define MAXN 300

static pw_config cfg(pw_scheme scheme, double ratio) {
    pw_config c = {0};
    c.scheme = scheme;
    c.ratio = ratio;
    c.sigma = 4.0;
    c.lambda = INFINITY;
    c.keep = 0.0;
    c.members = 1;
    c.seed = 1234;
    c.granularity = PW_GRAN_HEAD;
    return c;
}

/* same formula as the library (docs/pathways.md): k = ceil(nv/ρ) in [1, nv] */
static int k_of(int nv, double ratio) {
    double q = ceil((double)nv / ratio - 1e-9);
    return q < 1 ? 1 : (q > nv ? nv : (int)q);
}

static int w_of(int n, double ratio) {
    double w = ceil(ratio - 1e-9);
    return w < 1 ? 1 : (w > n ? n : (int)w);
}

static int64_t mask_sum(const uint8_t *m, int n) {
    int64_t s = 0;
    for (int64_t t = 0; t < (int64_t)n * n; t++) s += m[t];
    return s;
}

/* structural invariants of any sample: sorted distinct in-range key lists, counts == mask */
static void check_structure(const pw_sample *s, uint8_t *mask) {
    int n = s->n;
    if (s->kind == PW_SAMPLE_WINDOWS || s->kind == PW_SAMPLE_PER_QUERY) {
        int nl = s->kind == PW_SAMPLE_WINDOWS ? s->n_windows : n;
        if (s->kind == PW_SAMPLE_WINDOWS) {
            assert_int_equal(s->win_start[0], 0);
            assert_int_equal(s->win_start[nl], n);
        }
        assert_int_equal(s->key_start[0], 0);
        for (int w = 0; w < nl; w++) {
            if (s->kind == PW_SAMPLE_WINDOWS) assert_true(s->win_start[w] < s->win_start[w + 1]);
            int a = s->key_start[w], b = s->key_start[w + 1];
            assert_true(b > a); /* never an empty list */
            for (int p = a; p < b; p++) {
                assert_true(s->keys[p] >= 0 && s->keys[p] < n);
                if (p > a) assert_true(s->keys[p] > s->keys[p - 1]);
            }
        }
    }
    pw_mask_dense(s, mask);
    int64_t kept, allowed;
    pw_count_kept(s, &kept, &allowed);
    assert_int_equal(kept, mask_sum(mask, n));
    assert_int_equal(allowed, s->causal ? (int64_t)n * (n + 1) / 2 : (int64_t)n * n);
}

/* ---- Fig. 3 ------------------------------------------------------------------------------ */

static void expect_columns(const uint8_t *mask, int n, int row_a, int row_b, const int *cols, int ncols) {
    for (int i = row_a; i < row_b; i++)
        for (int j = 0; j < n; j++) {
            int want = 0;
            for (int c = 0; c < ncols; c++) want |= cols[c] == j;
            assert_int_equal(mask[i * n + j], want);
        }
}

static void test_fig3a_unbiased(void **state) {
    pw_sample s;
    pe_err    err = {0};
    uint8_t   mask[64];
    assert_int_equal(pw_sample_init(&s, 8, &err), PE_OK);
    const int red[8] = {3, 6, 1, 5, 2, 7, 0, 4}, blue[8] = {6, 7, 1, 2, 3, 0, 4, 5};
    const int s_red[4] = {1, 3, 5, 6}, s_blue[4] = {1, 2, 6, 7};
    pw_draw_unbiased_from_perm(&s, red, 8, 2.0, 0);
    assert_int_equal(s.kind, PW_SAMPLE_WINDOWS);
    assert_int_equal(s.n_windows, 1);
    assert_int_equal(s.key_start[1], 4);
    assert_memory_equal(s.keys, s_red, sizeof s_red);
    pw_mask_dense(&s, mask);
    expect_columns(mask, 8, 0, 8, s_red, 4);
    pw_draw_unbiased_from_perm(&s, blue, 8, 2.0, 0);
    assert_memory_equal(s.keys, s_blue, sizeof s_blue);
    pw_mask_dense(&s, mask);
    expect_columns(mask, 8, 0, 8, s_blue, 4);
    pw_sample_free(&s);
}

static void test_fig3b_local(void **state) {
    pw_sample s;
    pe_err    err = {0};
    uint8_t   mask[64];
    assert_int_equal(pw_sample_init(&s, 8, &err), PE_OK);
    const int red[8] = {1, 3, 0, 4, 2, 6, 7, 5}, blue[8] = {0, 1, 2, 6, 3, 5, 4, 7};
    const int red_cols[4][2] = {{1, 3}, {0, 4}, {2, 6}, {5, 7}};
    const int blue_cols[4][2] = {{0, 1}, {2, 6}, {3, 5}, {4, 7}};
    for (int v = 0; v < 2; v++) {
        pw_draw_local_from_perm(&s, v ? blue : red, 8, 4.0, 0);
        assert_int_equal(s.kind, PW_SAMPLE_WINDOWS);
        assert_int_equal(s.n_windows, 4);
        pw_mask_dense(&s, mask);
        for (int w = 0; w < 4; w++) {
            assert_int_equal(s.win_start[w], 2 * w);
            expect_columns(mask, 8, 2 * w, 2 * w + 2, v ? blue_cols[w] : red_cols[w], 2);
        }
        check_structure(&s, mask);
    }
    pw_sample_free(&s);
}

/* ---- randomness --------------------------------------------------------------------------- */

static void test_rng(void **state) {
    pw_rng a, b;
    pw_rng_init(&a, 7, 1, 2, 3, 4, 5);
    pw_rng_init(&b, 7, 2, 1, 3, 4, 5);
    assert_true(a.key != b.key); /* order of inputs matters */
    pw_rng_init(&b, 7, 1, 2, 3, 5, 4);
    assert_true(a.key != b.key);
    pw_rng_init(&b, 8, 1, 2, 3, 4, 5);
    assert_true(a.key != b.key);
    /* pure function of (key, counter) */
    uint64_t seq[10];
    for (int t = 0; t < 10; t++) seq[t] = pw_rng_u64(&a);
    pw_rng c = {a.key, 6};
    assert_true(pw_rng_u64(&c) == seq[6]);
    /* uniform in (0,1), mean 1/2 +- 4 sd; normal mean 0 and variance 1 +- 4 sd */
    pw_rng_init(&a, 1, 0, 0, 0, 0, 0);
    const int D = 200000;
    double    su = 0, sn = 0, sn2 = 0;
    for (int t = 0; t < D; t++) {
        double u = pw_rng_uniform(&a);
        assert_true(u > 0.0 && u < 1.0);
        su += u;
        double z = pw_rng_normal(&a);
        sn += z;
        sn2 += z * z;
    }
    assert_true(fabs(su / D - 0.5) < 4 * sqrt(1.0 / 12 / D));
    assert_true(fabs(sn / D) < 4 * sqrt(1.0 / D));
    assert_true(fabs(sn2 / D - 1.0) < 4 * sqrt(2.0 / D)); /* Var(z^2) = 2 */
}

/* ---- counter-based draws ------------------------------------------------------------------ */

static int masks_equal(pw_sample *s, const pw_config *c, int m1, int l1, int h1, int64_t q1, int m2, int l2, int h2,
                       int64_t q2, int n, uint8_t *ma, uint8_t *mb) {
    pw_draw(s, c, m1, l1, h1, q1, n, 0);
    pw_mask_dense(s, ma);
    pw_draw(s, c, m2, l2, h2, q2, n, 0);
    pw_mask_dense(s, mb);
    return memcmp(ma, mb, (size_t)n * n) == 0;
}

static void test_counter_based(void **state) {
    pw_sample s;
    pe_err    err = {0};
    const int n = 256;
    uint8_t  *ma = malloc(MAXN * MAXN), *mb = malloc(MAXN * MAXN), *ref = malloc(MAXN * MAXN);
    assert_int_equal(pw_sample_init(&s, MAXN, &err), PE_OK);
    pw_config cs[5] = {cfg(PW_SCHEME_UNBIASED, 4), cfg(PW_SCHEME_LOCAL, 4), cfg(PW_SCHEME_RANDOM_K, 4),
                       cfg(PW_SCHEME_RANDOM_K, 4), cfg(PW_SCHEME_LOCAL, 4)};
    cs[1].sigma = 8;
    cs[3].lambda = 8;
    cs[4].sigma = 3;
    pw_config other = cfg(PW_SCHEME_RANDOM_K, 3);
    for (int v = 0; v < 5; v++) {
        const pw_config *c = &cs[v];
        pw_draw(&s, c, 2, 3, 1, 77, n, 0);
        pw_mask_dense(&s, ref);
        /* unrelated draws in between, other n, other scheme */
        pw_draw(&s, c, 0, 0, 0, 5, 100, 1);
        pw_draw(&s, &other, 2, 3, 1, 77, 257, 0);
        pw_draw(&s, c, 2, 3, 1, 77, n, 0);
        pw_mask_dense(&s, ma);
        assert_memory_equal(ma, ref, (size_t)n * n);
        /* a fresh sample object gives the same draw */
        pw_sample s2;
        assert_int_equal(pw_sample_init(&s2, n, &err), PE_OK);
        pw_draw(&s2, c, 2, 3, 1, 77, n, 0);
        pw_mask_dense(&s2, mb);
        assert_memory_equal(mb, ref, (size_t)n * n);
        pw_sample_free(&s2);
        /* anything else changed: a different subset */
        assert_false(masks_equal(&s, c, 2, 3, 1, 77, 3, 3, 1, 77, n, ma, mb)); /* member */
        assert_false(masks_equal(&s, c, 2, 3, 1, 77, 2, 4, 1, 77, n, ma, mb)); /* layer */
        assert_false(masks_equal(&s, c, 2, 3, 1, 77, 2, 3, 2, 77, n, ma, mb)); /* head */
        assert_false(masks_equal(&s, c, 2, 3, 1, 77, 2, 3, 1, 78, n, ma, mb)); /* sequence */
        assert_false(masks_equal(&s, c, 3, 2, 1, 77, 2, 3, 1, 77, n, ma, mb)); /* (member, layer) swapped */
        pw_config c2 = *c;
        c2.seed = c->seed + 1;
        pw_draw(&s, &c2, 2, 3, 1, 77, n, 0);
        pw_mask_dense(&s, ma);
        assert_memory_not_equal(ma, ref, (size_t)n * n); /* seed */
        /* granularity layer: the heads of a layer share the draw, layers differ */
        c2 = *c;
        c2.granularity = PW_GRAN_LAYER;
        for (int h = 1; h < 4; h++) assert_true(masks_equal(&s, &c2, 2, 3, 0, 77, 2, 3, h, 77, n, ma, mb));
        assert_false(masks_equal(&s, &c2, 2, 3, 0, 77, 2, 4, 0, 77, n, ma, mb));
        assert_false(masks_equal(&s, &c2, 2, 3, 0, 77, 1, 3, 0, 77, n, ma, mb));
        /* granularity sequence: shared by every layer and head, not by sequences or members */
        c2.granularity = PW_GRAN_SEQUENCE;
        for (int l = 0; l < 3; l++)
            for (int h = 0; h < 3; h++) assert_true(masks_equal(&s, &c2, 2, 0, 0, 77, 2, l, h, 77, n, ma, mb));
        assert_false(masks_equal(&s, &c2, 2, 0, 0, 77, 2, 0, 0, 76, n, ma, mb));
        assert_false(masks_equal(&s, &c2, 2, 0, 0, 77, 1, 0, 0, 77, n, ma, mb));
    }
    /* causal random-k: each query has its own sub-stream, so the first rows of a longer sequence
     * are the rows of a shorter one */
    {
        pw_config c = cfg(PW_SCHEME_RANDOM_K, 4);
        c.lambda = 6;
        pw_draw(&s, &c, 0, 1, 2, 9, 100, 1);
        pw_mask_dense(&s, ma);
        pw_draw(&s, &c, 0, 1, 2, 9, 257, 1);
        pw_mask_dense(&s, mb);
        for (int i = 0; i < 100; i++) assert_memory_equal(ma + i * 100, mb + i * 257, 100);
    }
    /* head-drop: over 64 heads both outcomes occur; layer granularity: one outcome per layer */
    {
        pw_config c = cfg(PW_SCHEME_HEAD_DROP, 2);
        int       none = 0;
        for (int h = 0; h < 64; h++) {
            pw_draw(&s, &c, 0, 0, h, 0, 16, 1);
            none += s.kind == PW_SAMPLE_NONE;
            assert_true(s.kind == PW_SAMPLE_NONE || s.kind == PW_SAMPLE_ALL);
        }
        assert_true(none > 0 && none < 64);
        c.granularity = PW_GRAN_LAYER;
        for (int l = 0; l < 16; l++) {
            pw_draw(&s, &c, 0, l, 0, 0, 16, 1);
            pw_sample_kind k0 = s.kind;
            for (int h = 1; h < 8; h++) {
                pw_draw(&s, &c, 0, l, h, 0, 16, 1);
                assert_int_equal(s.kind, k0);
            }
        }
    }
    free(ma);
    free(mb);
    free(ref);
    pw_sample_free(&s);
}

/* ---- causal rule, every scheme ------------------------------------------------------------ */

#define N_CFG 8
static void all_configs(pw_config *cs, double ratio) {
    cs[0] = cfg(PW_SCHEME_DENSE, ratio);
    cs[1] = cfg(PW_SCHEME_UNBIASED, ratio);
    cs[2] = cfg(PW_SCHEME_LOCAL, ratio);
    cs[3] = cfg(PW_SCHEME_LOCAL, ratio);
    cs[3].sigma = 0;
    cs[4] = cfg(PW_SCHEME_RANDOM_K, ratio);
    cs[5] = cfg(PW_SCHEME_RANDOM_K, ratio);
    cs[5].lambda = 3;
    cs[6] = cfg(PW_SCHEME_WINDOW, ratio);
    cs[7] = cfg(PW_SCHEME_HEAD_DROP, ratio);
}

static void test_causal_self_and_structure(void **state) {
    pw_sample s;
    pe_err    err = {0};
    uint8_t  *mask = malloc(MAXN * MAXN);
    assert_int_equal(pw_sample_init(&s, MAXN, &err), PE_OK);
    const double ratios[] = {1, 1.5, 2, 3, 4, 8, 16};
    const int    ns[] = {1, 2, 7, 64, 100, 257};
    int          drawn = 0;
    for (size_t a = 0; a < sizeof ratios / sizeof ratios[0]; a++) {
        pw_config cs[N_CFG];
        all_configs(cs, ratios[a]);
        for (int v = 0; v < N_CFG; v++) {
            assert_int_equal(pw_config_check(&cs[v], &err), PE_OK);
            for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
                for (int causal = 0; causal < 2; causal++)
                    for (int rep = 0; rep < 3; rep++) {
                        int n = ns[b];
                        pw_draw(&s, &cs[v], rep, 1, 2, 100 + rep, n, causal);
                        drawn++;
                        assert_int_equal(s.n, n);
                        assert_int_equal(s.causal, causal);
                        check_structure(&s, mask);
                        if (s.kind == PW_SAMPLE_NONE) {
                            assert_int_equal(cs[v].scheme, PW_SCHEME_HEAD_DROP);
                            assert_int_equal(mask_sum(mask, n), 0);
                            continue;
                        }
                        for (int i = 0; i < n; i++) {
                            int cnt = 0;
                            for (int j = 0; j < n; j++) cnt += mask[i * n + j];
                            assert_true(cnt >= 1);
                            if (causal) {
                                assert_int_equal(mask[i * n + i], 1);
                                for (int j = i + 1; j < n; j++) assert_int_equal(mask[i * n + j], 0);
                            }
                        }
                    }
        }
    }
    printf("  %d draws checked\n", drawn);
    free(mask);
    pw_sample_free(&s);
}

static void test_ratio_one_is_dense(void **state) {
    pw_sample s;
    pe_err    err = {0};
    uint8_t  *mask = malloc(MAXN * MAXN);
    assert_int_equal(pw_sample_init(&s, MAXN, &err), PE_OK);
    pw_config cs[N_CFG];
    all_configs(cs, 1.0);
    const int ns[] = {1, 7, 64, 257};
    for (int v = 0; v < N_CFG; v++)
        for (size_t b = 0; b < sizeof ns / sizeof ns[0]; b++)
            for (int causal = 0; causal < 2; causal++) {
                int n = ns[b];
                pw_draw(&s, &cs[v], 0, 0, 0, 3, n, causal);
                pw_mask_dense(&s, mask);
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++) assert_int_equal(mask[i * n + j], causal ? j <= i : 1);
            }
    free(mask);
    pw_sample_free(&s);
}

/* ---- kept fractions ------------------------------------------------------------------------ */

static void test_kept_fraction_bidirectional(void **state) {
    pw_sample s;
    pe_err    err = {0};
    assert_int_equal(pw_sample_init(&s, MAXN, &err), PE_OK);
    const double ratios[] = {1.5, 2, 3, 4, 8, 16};
    const int    ns[] = {7, 64, 100, 257};
    const pw_scheme schemes[] = {PW_SCHEME_UNBIASED, PW_SCHEME_LOCAL, PW_SCHEME_WINDOW, PW_SCHEME_RANDOM_K};
    for (size_t a = 0; a < 6; a++)
        for (size_t b = 0; b < 4; b++)
            for (size_t v = 0; v < 4; v++) {
                double    rho = ratios[a];
                int       n = ns[b];
                pw_config c = cfg(schemes[v], rho);
                c.lambda = v == 3 && (a & 1) ? 5.0 : INFINITY;
                /* exact count per draw, from the definitions */
                int64_t want;
                double  lo, hi;
                if (schemes[v] == PW_SCHEME_LOCAL) {
                    int W = w_of(n, rho);
                    want = 0;
                    for (int w = 0; w < W; w++) {
                        int64_t sz = (int64_t)(w + 1) * n / W - (int64_t)w * n / W;
                        want += sz * sz;
                    }
                    /* sizes differ by at most 1: Σ sz² ∈ [n²/W, n²/W + W/4] */
                    lo = 1.0 / W;
                    hi = 1.0 / W + W / (4.0 * n * n);
                    if (rho == floor(rho) && n % (int)rho == 0) assert_int_equal(want * (int64_t)rho, (int64_t)n * n);
                } else {
                    int k = k_of(n, rho);
                    want = (int64_t)n * k;
                    /* k = ceil(n/ρ) ∈ [n/ρ, n/ρ + 1) → fraction ∈ [1/ρ, 1/ρ + 1/n) */
                    lo = 1.0 / rho;
                    hi = 1.0 / rho + 1.0 / n;
                }
                for (int rep = 0; rep < 10; rep++) {
                    pw_draw(&s, &c, rep, rep, 0, rep * 31 + 1, n, 0);
                    int64_t kept, allowed;
                    pw_count_kept(&s, &kept, &allowed);
                    assert_int_equal(kept, want);
                    double f = (double)kept / allowed;
                    assert_true(f >= lo - 1e-12 && f <= hi + 1e-12);
                }
            }
    /* head-drop: the kept fraction over D draws is Binomial(D, q)/D */
    const int D = 4000;
    for (int v = 0; v < 3; v++) {
        pw_config c = cfg(PW_SCHEME_HEAD_DROP, v == 0 ? 4.0 : 2.0);
        c.keep = v == 2 ? 0.6 : 0.0;
        double  q = c.keep > 0 ? c.keep : 1.0 / c.ratio;
        int64_t kept_sum = 0, allowed_sum = 0;
        for (int d = 0; d < D; d++) {
            pw_draw(&s, &c, 0, d % 7, d / 7, 11, 32, 0);
            int64_t kept, allowed;
            pw_count_kept(&s, &kept, &allowed);
            assert_true(kept == 0 || kept == allowed);
            kept_sum += kept;
            allowed_sum += allowed;
        }
        double f = (double)kept_sum / allowed_sum;
        printf("  head-drop q=%.3f: kept fraction %.4f over %d draws (bound %.4f)\n", q, f, D, 4 * sqrt(q * (1 - q) / D));
        assert_true(fabs(f - q) <= 4 * sqrt(q * (1 - q) / D));
    }
    pw_sample_free(&s);
}

static void test_kept_fraction_causal(void **state) {
    pw_sample s;
    pe_err    err = {0};
    assert_int_equal(pw_sample_init(&s, MAXN, &err), PE_OK);
    /* window and random-k: the count of query i is exactly k_i = ceil((i+1)/ρ) */
    const double ratios[] = {1.5, 2, 3, 8};
    for (int a = 0; a < 4; a++)
        for (int v = 0; v < 3; v++) {
            int       n = 100;
            pw_config c = cfg(v == 0 ? PW_SCHEME_WINDOW : PW_SCHEME_RANDOM_K, ratios[a]);
            if (v == 2) c.lambda = 4;
            int64_t want = 0;
            for (int i = 0; i < n; i++) want += k_of(i + 1, ratios[a]);
            for (int rep = 0; rep < 5; rep++) {
                pw_draw(&s, &c, rep, 0, 0, rep, n, 1);
                int64_t kept, allowed;
                pw_count_kept(&s, &kept, &allowed);
                assert_int_equal(kept, want);
            }
        }
    /* unbiased: E[kept_i] = k(i+1)/n + (1 - k/n) (hypergeometric |S ∩ [0,i]| plus the self key
     * when i ∉ S); the empirical mean over D draws within 4 standard errors */
    {
        const int    n = 64, D = 3000;
        const double rho = 4;
        pw_config    c = cfg(PW_SCHEME_UNBIASED, rho);
        int          k = k_of(n, rho);
        double       expect = 0;
        for (int i = 0; i < n; i++) expect += (double)k * (i + 1) / n + (1.0 - (double)k / n);
        double sum = 0, sum2 = 0;
        for (int d = 0; d < D; d++) {
            pw_draw(&s, &c, d, 0, 0, 0, n, 1);
            int64_t kept;
            pw_count_kept(&s, &kept, NULL);
            sum += kept;
            sum2 += (double)kept * kept;
        }
        double mean = sum / D, var = (sum2 - D * mean * mean) / (D - 1), se = sqrt(var / D);
        printf("  causal unbiased n=%d rho=%g: mean kept %.3f, expected %.3f, se %.3f\n", n, rho, mean, expect, se);
        assert_true(se > 0);
        assert_true(fabs(mean - expect) <= 4 * se);
    }
    /* local: the kernel computes n·z pairs (z = n/W per window) but under the causal mask only
     * keys j <= i survive. σ = 0: block-diagonal, window of size z keeps z(z+1)/2, i.e. a fraction
     * (z+1)/(2z) of the computed pairs and (z+1)/(n+1) of the allowed ones. σ > 0: about half of
     * the computed pairs still fall in the future (paper.md §2.6), plus the self keys added back. */
    {
        const int n = 256;
        pw_config c = cfg(PW_SCHEME_LOCAL, 8);
        c.sigma = 0;
        pw_draw(&s, &c, 0, 0, 0, 0, n, 1);
        int64_t kept, allowed;
        pw_count_kept(&s, &kept, &allowed);
        assert_int_equal(kept, 8 * (32 * 33 / 2));
        const double sig[] = {8, 32};
        for (int a = 0; a < 2; a++) {
            c.sigma = sig[a];
            double f = 0, valid = 0, computed = 0;
            for (int d = 0; d < 50; d++) {
                pw_draw(&s, &c, 0, 0, 0, d, n, 1);
                pw_count_kept(&s, &kept, &allowed);
                f += (double)kept / allowed / 50;
                for (int w = 0; w < s.n_windows; w++)
                    for (int i = s.win_start[w]; i < s.win_start[w + 1]; i++)
                        for (int p = s.key_start[w]; p < s.key_start[w + 1]; p++) {
                            valid += s.keys[p] <= i;
                            computed++;
                        }
            }
            printf("  causal local sigma=%g rho=8: kept/allowed %.4f (1/rho = %.4f), causally valid share of the "
                   "computed pairs %.3f\n", sig[a], f, 1.0 / 8, valid / computed);
            assert_true(valid / computed > 0.40 && valid / computed < 0.55);
            assert_true(f > 0.8 / 8 && f < 1.2 / 8);
        }
    }
    pw_sample_free(&s);
}

/* ---- local: locality ---------------------------------------------------------------------- */

static void test_local_sigma_zero_block_diagonal(void **state) {
    pw_sample s;
    pe_err    err = {0};
    uint8_t  *mask = malloc(MAXN * MAXN);
    assert_int_equal(pw_sample_init(&s, MAXN, &err), PE_OK);
    const struct { int n; double rho; } cases[] = {{64, 4}, {100, 3}, {10, 2.5}, {257, 8}, {5, 16}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int       n = cases[t].n, W = w_of(n, cases[t].rho);
        pw_config c = cfg(PW_SCHEME_LOCAL, cases[t].rho);
        c.sigma = 0;
        pw_draw(&s, &c, 1, 2, 3, 4, n, 0);
        pw_mask_dense(&s, mask);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                int wi = 0, wj = 0;
                while ((int64_t)(wi + 1) * n / W <= i) wi++;
                while ((int64_t)(wj + 1) * n / W <= j) wj++;
                assert_int_equal(mask[i * n + j], wi == wj);
            }
    }
    free(mask);
    pw_sample_free(&s);
}

/* mean |i-j| over kept pairs of bidirectional draws, and the fraction with |i-j| <= 32, for
 * queries at offsets 0, 8, 16, 24 of each 32-window (paper.md §2.4's Monte-Carlo setup) */
static void local_stats(pw_sample *s, double sigma, int draws, double *mean_dist, double *within) {
    pw_config c = cfg(PW_SCHEME_LOCAL, 8);
    c.sigma = sigma;
    double sum = 0, cnt = 0, near = 0;
    for (int d = 0; d < draws; d++) {
        pw_draw(s, &c, 0, 0, 0, d, 256, 0);
        for (int w = 0; w < s->n_windows; w++)
            for (int i = s->win_start[w]; i < s->win_start[w + 1]; i++) {
                if ((i - s->win_start[w]) % 8) continue;
                for (int p = s->key_start[w]; p < s->key_start[w + 1]; p++) {
                    int dist = abs(i - s->keys[p]);
                    sum += dist;
                    near += dist <= 32;
                    cnt++;
                }
            }
    }
    *mean_dist = sum / cnt;
    *within = near / cnt;
}

static void test_local_locality(void **state) {
    pw_sample s;
    pe_err    err = {0};
    assert_int_equal(pw_sample_init(&s, MAXN, &err), PE_OK);
    double m0, w0, m8, w8, m32, w32;
    local_stats(&s, 0.0, 1, &m0, &w0);
    local_stats(&s, 8.0, 400, &m8, &w8);
    local_stats(&s, 32.0, 400, &m32, &w32);
    printf("  local n=256 rho=8: sigma 0: mean |i-j| %.2f, %.1f%% within 32; sigma 8: %.2f, %.1f%%; sigma 32: %.2f, "
           "%.1f%%\n", m0, 100 * w0, m8, 100 * w8, m32, 100 * w32);
    /* σ = 0 is exact: offsets 0, 8, 16, 24 in a 32-window average 10.875 */
    assert_true(fabs(m0 - 10.875) < 1e-9);
    assert_true(w0 == 1.0);
    /* locality decays with σ (paper.md §2.4 reports 12.4 / 97% and 24.6 / 71%) */
    assert_true(m8 > m0 + 0.5 && m32 > m8 + 5.0);
    assert_true(w8 < 1.0 && w32 < w8 - 0.1);
    assert_true(fabs(m8 - 12.4) < 0.6 && fabs(m32 - 24.6) < 1.2);
    assert_true(fabs(w8 - 0.97) < 0.02 && fabs(w32 - 0.71) < 0.03);
    pw_sample_free(&s);
}

/* ---- random-k ----------------------------------------------------------------------------- */

static double random_k_mean_dist(pw_sample *s, double rho, double lambda, int n) {
    pw_config c = cfg(PW_SCHEME_RANDOM_K, rho);
    c.lambda = lambda;
    double sum = 0, cnt = 0;
    for (int d = 0; d < 5; d++) {
        pw_draw(s, &c, 0, 0, 0, d, n, 0);
        for (int i = 0; i < n; i++)
            for (int p = s->key_start[i]; p < s->key_start[i + 1]; p++) {
                sum += abs(i - s->keys[p]);
                cnt++;
            }
    }
    return sum / cnt;
}

static void test_random_k_locality(void **state) {
    pw_sample s;
    pe_err    err = {0};
    assert_int_equal(pw_sample_init(&s, MAXN, &err), PE_OK);
    /* ρ = 16: k = 16 of 256 (O(k) rejection path); ρ = 2: k = 128 (exponential-keys path) */
    for (int a = 0; a < 2; a++) {
        double rho = a ? 2 : 16;
        double u = random_k_mean_dist(&s, rho, INFINITY, 256), l4 = random_k_mean_dist(&s, rho, 4, 256);
        printf("  random-k rho=%g: mean |i-j| uniform %.2f, lambda=4 %.2f\n", rho, u, l4);
        assert_true(l4 < 0.6 * u);
    }
    /* tiny λ: every query's keys are the k nearest, a contiguous run around i (a gap needs a
     * pick against odds of about e^(-1/λ)); λ = 1e-3 underflows every weight but the nearest */
    const double lams[] = {0.05, 1e-3};
    for (int a = 0; a < 2; a++)
        for (int causal = 0; causal < 2; causal++) {
            pw_config c = cfg(PW_SCHEME_RANDOM_K, 10);
            c.lambda = lams[a];
            int n = 300;
            pw_draw(&s, &c, 0, 0, 0, 1, n, causal);
            for (int i = 0; i < n; i++) {
                int a0 = s.key_start[i], b0 = s.key_start[i + 1];
                assert_int_equal(b0 - a0, k_of(causal ? i + 1 : n, 10));
                assert_int_equal(s.keys[b0 - 1] - s.keys[a0], b0 - a0 - 1);
                assert_true(s.keys[a0] <= i && s.keys[b0 - 1] >= i);
            }
        }
    pw_sample_free(&s);
}

/* exact inclusion probabilities of successive sampling (t picks without replacement, each ∝ w
 * among the rest), by enumerating the ordered pick sequences */
/* exact inclusion probabilities of successive sampling (t picks, each ∝ w among the keys not yet
 * picked) over m <= 22 keys: a DP over the sets picked so far (a set's probability flows to each
 * one-larger set; ascending order visits a set after every set it comes from) */
static void incl_exact(const double *w, int m, int t, double *incl) {
    size_t  N = (size_t)1 << m;
    double *P = calloc(N, sizeof(double)); /* (2^m) probability of having picked exactly the set */
    assert_non_null(P);
    P[0] = 1.0;
    for (size_t S = 0; S < N; S++) {
        if (P[S] == 0.0) continue;
        if (__builtin_popcountll(S) == t) {
            for (int j = 0; j < m; j++)
                if (S >> j & 1) incl[j] += P[S];
            continue;
        }
        double rest = 0.0;
        for (int j = 0; j < m; j++)
            if (!(S >> j & 1)) rest += w[j];
        for (int j = 0; j < m; j++)
            if (!(S >> j & 1)) P[S | (size_t)1 << j] += P[S] * w[j] / rest;
    }
    free(P);
}

static void test_random_k_exact_law(void **state) {
    pw_sample s;
    pe_err    err = {0};
    assert_int_equal(pw_sample_init(&s, 22, &err), PE_OK);
    /* {n, ρ, λ, causal, query}; t = picks besides the forced self key (causal), m = candidates.
     * Queries with t >= 3 ceil(2.5 λ) (causal: and λ >= 2) take the near zone of
     * K = min(m, t + min(ceil(2.5 λ), t + 32)) keys and exponential jumps beyond it (when K < m);
     * the others: t > 3m/4 causal or t > 2m/5 bidirectional exponential keys over all candidates,
     * else the rejection sampler (offsets from the alias table, or by inversion when λ > 512 or a
     * tail keeps < 1/4 of the geometric mass) (or Floyd for λ = inf) */
    const struct { int n; double rho, lambda; int causal, i; } cases[] = {
        {8, 4, 2.0, 0, 2},      /* t = 2, m = 8: rejection, alias */
        {8, 2.5, 2.0, 0, 2},    /* t = 4, m = 8: exponential keys */
        {10, 2.5, 3.0, 0, 5},   /* t = 4, m = 10: rejection, alias, two tails */
        {8, 1.5, 2.0, 0, 2},    /* t = 6, m = 8: exponential keys */
        {12, 4, 1.5, 1, 11},    /* t = 2, m = 11: rejection, one-sided */
        {12, 2, 1.5, 1, 5},     /* t = 2, m = 5: rejection, one-sided */
        {12, 1.5, 1.5, 1, 7},   /* t = 5, m = 7: rejection, one-sided, tails shorter than the core */
        {12, 1.2, 1.5, 1, 7},   /* t = 6, m = 7: exponential keys, one-sided */
        {8, 4, INFINITY, 0, 5}, /* Floyd */
        {16, 8, 0.7, 0, 8},     /* t = 2, m = 16, concentrated: core growth */
        {12, 3, 40.0, 0, 3},    /* t = 4, m = 12: short tails (G[len] < 1/4): inversion */
        {14, 4, 2000.0, 1, 13}, /* t = 3, m = 13: λ > 512: inversion, nearly uniform */
        {16, 3, 6.0, 0, 12},    /* t = 6, m = 16: alias with the overshoot rejections of a short right tail */
        {14, 2, 0.3, 1, 13},    /* t = 6, m = 13, causal, λ < 2: rejection, concentrated */
        {16, 2.5, 0.7, 0, 8},   /* t = 7, m = 16: near zone K = 9, jumps on both sides */
        {18, 2, 1.0, 0, 3},     /* t = 9, m = 18: near zone K = 12 (3 left, 8 right), jumps rightwards */
        {22, 1.4, 2.0, 1, 21},  /* t = 15, m = 21, causal: near zone K = 20, jumps over 1 */
        {16, 2, 0.006, 0, 7},   /* t = 8, m = 16: zone radius 4 > 600 λ = 3.6: keys scaled (dref = 1);
                                 * the 8th pick is key 3 or 11 (weights e^-667 each), half each */
    };
    const int D = 20000;
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int       n = cases[t].n, i = cases[t].i, causal = cases[t].causal;
        pw_config c = cfg(PW_SCHEME_RANDOM_K, cases[t].rho);
        c.lambda = cases[t].lambda;
        int    m = causal ? i : n, picks = k_of(causal ? i + 1 : n, cases[t].rho) - causal;
        double w[22], incl[22] = {0};
        for (int j = 0; j < m; j++) w[j] = isinf(c.lambda) ? 1.0 : exp(-fabs((double)(i - j)) / c.lambda);
        incl_exact(w, m, picks, incl);
        double cnt[22] = {0};
        for (int d = 0; d < D; d++) {
            pw_draw(&s, &c, 0, 0, 0, d, n, causal);
            for (int p = s.key_start[i]; p < s.key_start[i + 1]; p++) cnt[s.keys[p]] += 1;
            assert_int_equal(s.key_start[i + 1] - s.key_start[i], picks + causal);
        }
        if (causal) assert_true(cnt[i] == D);
        for (int j = 0; j < m; j++) {
            double f = cnt[j] / D, sd = sqrt(incl[j] * (1 - incl[j]) / D);
            if (fabs(f - incl[j]) > 4.5 * sd + 1e-12)
                printf("  case %zu key %d: frequency %.4f, exact %.4f (sd %.4f)\n", t, j, f, incl[j], sd);
            assert_true(fabs(f - incl[j]) <= 4.5 * sd + 1e-12);
        }
    }
    pw_sample_free(&s);
}

/* Long tails, one pick over n = 2048 keys with λ = 400 (P(d) ∝ e^{-d/λ}, a fifth of it past
 * distance 1023), the frequencies of four ranges of the distance d against the exact law:
 * bidirectional query 0 (the near zone of 34 keys, then exponential jumps over the other 2014;
 * fails when a jump's distance or an entrant's key is off), and causal query 2047 (the rejection
 * sampler: the alias table's last slot stands for every offset >= 1023, then a fresh draw is
 * added; fails when the slot is read as the single offset 1023). */
static void test_random_k_long_tail_law(void **state) {
    (void)state;
    pw_sample s;
    pe_err    err = {0};
    const int n = 2048, D = 6000;
    assert_int_equal(pw_sample_init(&s, n, &err), PE_OK);
    const int edges[5] = {0, 300, 1023, 1500, n};
    for (int causal = 0; causal <= 1; causal++) {
        pw_config c = cfg(PW_SCHEME_RANDOM_K, causal ? n / 2 : n); /* causal query n - 1: k = 2, one pick */
        c.lambda = 400.0;
        int    q = causal ? n - 1 : 0;
        double cnt[4] = {0}, tot = 0.0, ex[4] = {0};
        for (int d = causal; d < n; d++) tot += exp(-d / c.lambda);
        for (int b = 0; b < 4; b++)
            for (int d = edges[b] > causal ? edges[b] : causal; d < edges[b + 1]; d++) ex[b] += exp(-d / c.lambda) / tot;
        for (int r = 0; r < D; r++) {
            pw_draw(&s, &c, 0, 0, 0, r, n, causal);
            assert_int_equal(s.key_start[q + 1] - s.key_start[q], 1 + causal);
            int d = abs(q - s.keys[s.key_start[q]]); /* causal: the pick, then the self key */
            for (int b = 0; b < 4; b++) cnt[b] += d >= edges[b] && d < edges[b + 1];
        }
        for (int b = 0; b < 4; b++) {
            double f = cnt[b] / D, sd = sqrt(ex[b] * (1 - ex[b]) / D);
            printf("  %s: distances [%d, %d): frequency %.4f, exact %.4f (sd %.4f)\n", causal ? "causal" : "bidirectional",
                   edges[b], edges[b + 1], f, ex[b], sd);
            assert_true(fabs(f - ex[b]) <= 4.5 * sd);
        }
    }
    pw_sample_free(&s);
}

/* λ at its smallest (config minimum 1e-9) and small enough that the near zone's keys are scaled
 * against overflow (0.0004): the law puts all but e^{-huge} of its mass on the t nearest keys, so
 * every list holds every candidate nearer than its farthest key (ties at that distance either
 * side), causal and bidirectional, n = 300 */
static void test_random_k_tiny_lambda_nearest(void **state) {
    (void)state;
    pw_sample s;
    pe_err    err = {0};
    assert_int_equal(pw_sample_init(&s, 300, &err), PE_OK);
    const double lambdas[2] = {1e-9, 0.0004};
    for (int a = 0; a < 2; a++)
        for (int causal = 0; causal <= 1; causal++) {
            pw_config c = cfg(PW_SCHEME_RANDOM_K, 3.0);
            c.lambda = lambdas[a];
            pw_draw(&s, &c, 0, 0, 0, 1, 300, causal);
            for (int i = 0; i < 300; i++) {
                int b0 = s.key_start[i], b1 = s.key_start[i + 1], dmax = 0, in = 0, want = 0;
                for (int p = b0; p < b1; p++) dmax = abs(s.keys[p] - i) > dmax ? abs(s.keys[p] - i) : dmax;
                for (int p = b0; p < b1; p++) in += abs(s.keys[p] - i) < dmax;
                for (int j = 0; j < (causal ? i + 1 : 300); j++) want += abs(j - i) < dmax;
                if (in != want)
                    fail_msg("lambda %g %s query %d: %d of the %d keys nearer than %d in its list", c.lambda,
                             causal ? "causal" : "bidirectional", i, in, want, dmax);
            }
        }
    pw_sample_free(&s);
}

/* ---- window ------------------------------------------------------------------------------- */

static void expect_keys(const pw_sample *s, int i, int first, int last) {
    int a = s->key_start[i], b = s->key_start[i + 1];
    assert_int_equal(b - a, last - first + 1);
    for (int p = a; p < b; p++) assert_int_equal(s->keys[p], first + (p - a));
}

static void test_window_exact(void **state) {
    pw_sample s;
    pe_err    err = {0};
    assert_int_equal(pw_sample_init(&s, 16, &err), PE_OK);
    pw_config c = cfg(PW_SCHEME_WINDOW, 3);
    /* causal n = 10, ρ = 3: k_i = ceil((i+1)/3) */
    pw_draw(&s, &c, 0, 0, 0, 0, 10, 1);
    assert_int_equal(s.kind, PW_SAMPLE_PER_QUERY);
    expect_keys(&s, 0, 0, 0);
    expect_keys(&s, 2, 2, 2);
    expect_keys(&s, 3, 2, 3);
    expect_keys(&s, 4, 3, 4);
    expect_keys(&s, 9, 6, 9);
    /* bidirectional n = 10, ρ = 3: k = 4, start i - 2, shifted into [0, 6] */
    pw_draw(&s, &c, 0, 0, 0, 0, 10, 0);
    expect_keys(&s, 0, 0, 3);
    expect_keys(&s, 1, 0, 3);
    expect_keys(&s, 5, 3, 6);
    expect_keys(&s, 8, 6, 9);
    expect_keys(&s, 9, 6, 9);
    /* odd k: n = 9, ρ = 3, k = 3 centred */
    pw_draw(&s, &c, 0, 0, 0, 0, 9, 0);
    expect_keys(&s, 4, 3, 5);
    expect_keys(&s, 0, 0, 2);
    expect_keys(&s, 8, 6, 8);
    /* non-integer ρ = 2.5, n = 10: k = 4; ρ = 1.1, n = 11: k = 10 exactly (not 11) */
    c.ratio = 2.5;
    pw_draw(&s, &c, 0, 0, 0, 0, 10, 0);
    expect_keys(&s, 5, 3, 6);
    c.ratio = 1.1;
    pw_draw(&s, &c, 0, 0, 0, 0, 11, 0);
    expect_keys(&s, 5, 0, 9);
    /* deterministic: no dependence on member / seed */
    c.ratio = 3;
    c.seed = 99;
    pw_draw(&s, &c, 5, 0, 0, 0, 10, 1);
    expect_keys(&s, 9, 6, 9);
    pw_sample_free(&s);
}


/* ---- the sampled sets are pinned ------------------------------------------------------------ */

/* FNV-1a over the key offsets and key lists of a sample */
static uint64_t sample_hash(const pw_sample *s, uint64_t h) {
    int nl = s->kind == PW_SAMPLE_WINDOWS ? s->n_windows : s->n;
    const int *v[2] = {s->key_start, s->keys};
    int len[2] = {nl + 1, s->key_start[nl]};
    h = (h ^ (uint64_t)s->kind) * 0x100000001b3ULL;
    for (int a = 0; a < 2; a++)
        for (int t = 0; t < len[a]; t++) h = (h ^ (uint32_t)v[a][t]) * 0x100000001b3ULL;
    return h;
}

/* Random-k draws are part of the results (docs/pathways.md fixes what is drawn): a faster sampler
 * must give the same key lists, or change them as a documented change of results. Hashes over
 * every branch: Floyd (lambda = inf); finite lambda: the near zone with exponential jumps
 * (queries with t >= 3 ceil(2.5 lambda); causal ones only for lambda >= 2), and for the others
 * Efraimidis-Spirakis (t > 3m/4 causal, t > 2m/5 bidirectional) and the rejection sampler
 * (alias-table offsets and inversion), causal and bidirectional, n = 1 .. 300 mixed. lambda = inf: recorded with the sampler of 2026-11-30 (before
 * the bitmap Floyd), unchanged since; finite lambda: recorded with the near-zone sampler of
 * 2026-11-30 (h-kern4; docs/pathways.md "Sampler versions"), which changed those lists again. */
static void test_random_k_pinned(void **state) {
    (void)state;
    pe_err    err = {0};
    pw_sample s;
    assert_int_equal(pw_sample_init(&s, MAXN, &err), PE_OK);
    const double lambdas[] = {INFINITY, 16.0, 2.5, 0.7};
    const double rhos[] = {1.5, 2.0, 3.0, 4.0, 8.0};
    const int    ns[] = {1, 2, 7, 64, 65, 199, 300};
    static const uint64_t want[4] = {0xae637210a2194a3cULL, 0x25decaff8e8835e6ULL, 0xcc845e9abf7c3689ULL,
                                     0x53abc9e2312053aeULL};
    uint64_t got[4];
    for (int a = 0; a < 4; a++) {
        uint64_t h = 0xcbf29ce484222325ULL;
        for (int b = 0; b < 5; b++)
            for (int c = 0; c < 7; c++)
                for (int causal = 0; causal < 2; causal++)
                    for (int head = 0; head < 3; head++) {
                        pw_config cf = cfg(PW_SCHEME_RANDOM_K, rhos[b]);
                        cf.lambda = lambdas[a];
                        pw_draw(&s, &cf, 2, 1, head, 40 + c, ns[c], causal);
                        h = sample_hash(&s, h);
                    }
        printf("  random-k lambda=%g: hash 0x%016llxULL\n", lambdas[a], (unsigned long long)h);
        got[a] = h;
    }
    for (int a = 0; a < 4; a++) assert_true(got[a] == want[a]);
    pw_sample_free(&s);
}

/* Floyd's draws (lambda = inf) at the lengths the bench and the models use, and at the edges of
 * the sampler's 32- and 64-key blocks (m = 31 ... 65, 1023 ... 1025): hashes recorded with the
 * 64-bit-word bitmap sampler (main at 2e84f77), before the byte-mark sampler; a faster Floyd must
 * give the same lists. One sample of cap 2049 serves every n (the marks past n stay unused). The
 * draws here take rng_below's rare rejection loop (probability < m / 2^32 a pick) 8 times, the
 * short pinned test never: a Floyd step that skips it fails here. */
static void test_random_k_floyd_pinned_long(void **state) {
    (void)state;
    pe_err    err = {0};
    pw_sample s;
    assert_int_equal(pw_sample_init(&s, 2049, &err), PE_OK);
    const double rhos[] = {1.01, 1.5, 2.0, 3.0, 4.0, 8.0, 16.0, 100.0};
    const int    ns[] = {31, 32, 33, 63, 64, 65, 1023, 1024, 1025, 2048, 2049};
    for (int simd = 1; simd >= 0; simd--) { /* the marks' AVX2 collect, then the portable one */
        kern_set_simd(simd);
        uint64_t h = 0xcbf29ce484222325ULL;
        for (int b = 0; b < 8; b++)
            for (int c = 0; c < 11; c++)
                for (int causal = 0; causal < 2; causal++)
                    for (int head = 0; head < 2; head++) {
                        pw_config cf = cfg(PW_SCHEME_RANDOM_K, rhos[b]);
                        pw_draw(&s, &cf, 3, 2, head, 7 + c, ns[c], causal);
                        h = sample_hash(&s, h);
                    }
        printf("  random-k lambda=inf, long, simd %d (active %d): hash 0x%016llxULL\n", simd, kern_simd_active(),
               (unsigned long long)h);
        assert_true(h == 0xfa7601672666b231ULL);
    }
    kern_set_simd(1);
    pw_sample_free(&s);
}

/* ---- config -------------------------------------------------------------------------------- */

static void expect_config_error(const pw_config *c, const char *key) {
    pe_err err = {0};
    assert_int_equal(pw_config_check(c, &err), PE_ERR_INPUT);
    assert_int_equal(err.code, PE_ERR_INPUT);
    if (!strstr(err.msg, key)) printf("  message without %s: %s\n", key, err.msg);
    assert_non_null(strstr(err.msg, key));
}

static void test_config(void **state) {
    pe_err    err = {0};
    pw_config c = cfg(PW_SCHEME_RANDOM_K, 4);
    assert_int_equal(pw_config_check(&c, &err), PE_OK);
    c.lambda = 3;
    c.keep = 1;
    assert_int_equal(pw_config_check(&c, &err), PE_OK);
    pw_config b;
    b = c, b.ratio = 0.5, expect_config_error(&b, "pathways.ratio");
    b = c, b.ratio = NAN, expect_config_error(&b, "pathways.ratio");
    b = c, b.sigma = -1, expect_config_error(&b, "pathways.sigma");
    b = c, b.lambda = 0, expect_config_error(&b, "pathways.lambda");
    b = c, b.lambda = -2, expect_config_error(&b, "pathways.lambda");
    b = c, b.keep = 1.5, expect_config_error(&b, "pathways.keep");
    b = c, b.keep = -0.1, expect_config_error(&b, "pathways.keep");
    b = c, b.members = 0, expect_config_error(&b, "pathways.members");
    b = c, b.scheme = (pw_scheme)9, expect_config_error(&b, "pathways.scheme");
    b = c, b.granularity = (pw_granularity)5, expect_config_error(&b, "pathways.granularity");
    /* names round-trip */
    for (int v = 0; v <= PW_SCHEME_HEAD_DROP; v++) assert_int_equal(pw_scheme_parse(pw_scheme_name(v)), v);
    for (int g = 0; g <= PW_GRAN_SEQUENCE; g++) assert_int_equal(pw_granularity_parse(pw_granularity_name(g)), g);
    assert_string_equal(pw_scheme_name(PW_SCHEME_RANDOM_K), "random-k");
    assert_string_equal(pw_scheme_name(PW_SCHEME_HEAD_DROP), "head-drop");
    assert_int_equal(pw_scheme_parse("randomk"), -1);
    assert_int_equal(pw_granularity_parse("heads"), -1);
    /* sample sizes */
    pw_sample s;
    assert_int_equal(pw_sample_init(&s, 0, &err), PE_ERR_INPUT);
    pw_sample_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fig3a_unbiased),
        cmocka_unit_test(test_fig3b_local),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_counter_based),
        cmocka_unit_test(test_causal_self_and_structure),
        cmocka_unit_test(test_ratio_one_is_dense),
        cmocka_unit_test(test_kept_fraction_bidirectional),
        cmocka_unit_test(test_kept_fraction_causal),
        cmocka_unit_test(test_local_sigma_zero_block_diagonal),
        cmocka_unit_test(test_local_locality),
        cmocka_unit_test(test_random_k_locality),
        cmocka_unit_test(test_random_k_exact_law),
        cmocka_unit_test(test_random_k_long_tail_law),
        cmocka_unit_test(test_random_k_tiny_lambda_nearest),
        cmocka_unit_test(test_random_k_pinned),
        cmocka_unit_test(test_random_k_floyd_pinned_long),
        cmocka_unit_test(test_window_exact),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
