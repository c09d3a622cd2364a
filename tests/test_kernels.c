/* test_kernels.c: every fast kernel against its naive reference twin (kernels.h) on random
 * inputs, with tolerances derived from the problem size; plus properties the references must
 * have on their own (LayerNorm moments, RoPE norm preservation, GQA = MHA with repeated KV heads,
 * padded attention = the same sequence alone), and the activations against double formulas.
 *
 * Tolerances: float32 accumulation over K terms against the double-accumulating twin differs by
 * about eps * sqrt(K) relative to the output scale; we allow 1e-5 * sqrt(K) (about 80x eps * sqrt(K)),
 * still far below the O(1) errors of a wrong index, stride or mask. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define CANARY 12345.678f
#define N_CANARY 16

static float *alloc_floats(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

/* output buffer of n floats followed by canaries; every element starts as `fill` */
static float *alloc_out(size_t n, float fill) {
    float *p = alloc_floats(n + N_CANARY);
    for (size_t i = 0; i < n; i++) p[i] = fill;
    for (size_t i = 0; i < N_CANARY; i++) p[n + i] = CANARY;
    return p;
}

static void check_canaries(const float *p, size_t n, const char *what) {
    for (size_t i = 0; i < N_CANARY; i++)
        if (p[n + i] != CANARY) fail_msg("%s wrote past its output (element %zu after the end)", what, i);
}

static float max_abs(const float *x, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (!(a <= m)) m = a;
    }
    return m;
}

/* |fast - ref| <= tol_rel * max(1, max|ref|) everywhere (NaN fails) */
static void check_close(const float *fast, const float *ref, size_t n, float tol_rel, const char *what) {
    float scale = max_abs(ref, n);
    if (scale < 1.0f) scale = 1.0f;
    float d = tu_max_abs_diff(fast, ref, n);
    if (!(d <= tol_rel * scale))
        fail_msg("%s: max |fast - ref| = %g > %g (scale %g)", what, (double)d, (double)(tol_rel * scale), (double)scale);
}

/* ---- matmul -------------------------------------------------------------------------------- */

/* W as a column sub-view: a (rows, ld) buffer, the view starting at column `col` */
static void run_matmul_case(int N, int C, int OC, int kmajor, int with_bias, int extra_cols, int col, uint64_t seed) {
    int    rows = kmajor ? C : OC, width = kmajor ? OC : C, ld = width + extra_cols;
    float *wbuf = alloc_floats((size_t)rows * ld);
    float *bias = alloc_floats((size_t)OC);
    float *inp  = alloc_floats((size_t)N * C);
    tu_fill_random(wbuf, (size_t)rows * ld, seed, 1.0f);
    tu_fill_random(bias, (size_t)OC, seed + 1, 1.0f);
    tu_fill_random(inp, (size_t)N * C, seed + 2, 1.0f);
    assert_true(col + width <= ld);
    model_linear w = {wbuf + col, ld, kmajor, with_bias ? bias : NULL};
    float *fast = alloc_out((size_t)N * OC, NAN), *ref = alloc_out((size_t)N * OC, NAN);
    kern_matmul(fast, inp, &w, N, C, OC);
    kern_matmul_ref(ref, inp, &w, N, C, OC);
    char what[160];
    snprintf(what, sizeof what, "matmul N=%d C=%d OC=%d kmajor=%d bias=%d ld=%d col=%d", N, C, OC, kmajor, with_bias,
             ld, col);
    check_canaries(fast, (size_t)N * OC, what);
    check_canaries(ref, (size_t)N * OC, what);
    check_close(fast, ref, (size_t)N * OC, 1e-5f * sqrtf((float)C), what);
    /* the reference itself against a direct loop over the full buffer (independent indexing) */
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = with_bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++) {
                double wv = kmajor ? wbuf[(size_t)c * ld + col + o] : wbuf[(size_t)o * ld + col + c];
                s += (double)inp[(size_t)n * C + c] * wv;
            }
            if (fabs(s - ref[(size_t)n * OC + o]) > 1e-5 * (1.0 + fabs(s))) fail_msg("%s: ref disagrees at (%d, %d)", what, n, o);
        }
    free(wbuf);
    free(bias);
    free(inp);
    free(fast);
    free(ref);
}

static void test_matmul(void **state) {
    (void)state;
    static const int sizes[][3] = {{7, 13, 5}, {1, 1, 1}, {1, 64, 48}, {33, 64, 96}, {65, 17, 3}, {4, 172, 64}, {150, 32, 40}};
    uint64_t seed = 100;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int N = sizes[s][0], C = sizes[s][1], OC = sizes[s][2];
        for (int kmajor = 0; kmajor <= 1; kmajor++)
            for (int bias = 0; bias <= 1; bias++) {
                run_matmul_case(N, C, OC, kmajor, bias, 0, 0, seed++);      /* dense: ld == width */
                run_matmul_case(N, C, OC, kmajor, bias, 11, 0, seed++);     /* ld > width, first columns */
                run_matmul_case(N, C, OC, kmajor, bias, 11, 11, seed++);    /* ld > width, last columns */
                run_matmul_case(N, C, OC, kmajor, bias, 2 * (kmajor ? OC : C), kmajor ? OC : C, seed++); /* c_attn-like middle third */
            }
    }
}

/* ---- norms --------------------------------------------------------------------------------- */

static void run_norm_case(int N, int C, model_norm_kind kind, int with_bias, float offset, uint64_t seed) {
    float *inp = alloc_floats((size_t)N * C), *w = alloc_floats((size_t)C), *b = alloc_floats((size_t)C);
    tu_fill_random(inp, (size_t)N * C, seed, 2.0f);
    for (size_t i = 0; i < (size_t)N * C; i++) inp[i] += offset; /* a non-zero mean stresses LayerNorm */
    tu_fill_random(w, (size_t)C, seed + 1, 0.5f);
    for (int i = 0; i < C; i++) w[i] += 1.0f;
    tu_fill_random(b, (size_t)C, seed + 2, 0.5f);
    float *fast = alloc_out((size_t)N * C, NAN), *ref = alloc_out((size_t)N * C, NAN);
    kern_norm(fast, inp, w, with_bias ? b : NULL, N, C, kind, 1e-5f);
    kern_norm_ref(ref, inp, w, with_bias ? b : NULL, N, C, kind, 1e-5f);
    char what[128];
    snprintf(what, sizeof what, "%s N=%d C=%d bias=%d offset=%g", kind == MODEL_NORM_RMSNORM ? "rmsnorm" : "layernorm",
             N, C, with_bias, (double)offset);
    check_canaries(fast, (size_t)N * C, what);
    check_canaries(ref, (size_t)N * C, what);
    /* float mean/variance: error grows with C and with |mean| / std */
    check_close(fast, ref, (size_t)N * C, 1e-5f * sqrtf((float)C) * (1.0f + fabsf(offset)), what);
    if (kind == MODEL_NORM_RMSNORM) {
        /* RMSNorm ignores the bias: with and without it the output is the same */
        float *nob = alloc_out((size_t)N * C, NAN);
        kern_norm(nob, inp, w, with_bias ? NULL : b, N, C, kind, 1e-5f);
        assert_memory_equal(nob, fast, (size_t)N * C * sizeof(float));
        kern_norm_ref(nob, inp, w, with_bias ? NULL : b, N, C, kind, 1e-5f);
        assert_memory_equal(nob, ref, (size_t)N * C * sizeof(float));
        free(nob);
    }
    free(inp);
    free(w);
    free(b);
    free(fast);
    free(ref);
}

static void test_norm(void **state) {
    (void)state;
    static const int sizes[][2] = {{1, 1}, {5, 13}, {7, 64}, {3, 768}, {130, 32}};
    uint64_t seed = 200;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int kind = 0; kind <= 1; kind++)
            for (int bias = 0; bias <= 1; bias++) {
                run_norm_case(sizes[s][0], sizes[s][1], (model_norm_kind)kind, bias, 0.0f, seed++);
                run_norm_case(sizes[s][0], sizes[s][1], (model_norm_kind)kind, bias, 3.0f, seed++);
            }
}

/* the references on their own: LayerNorm with w = 1, b = 0 gives mean 0 and variance ~1;
 * RMSNorm gives mean square ~1 */
static void test_norm_ref_moments(void **state) {
    (void)state;
    int    N = 4, C = 96;
    float *inp = alloc_floats((size_t)N * C), *w = alloc_floats((size_t)C), *out = alloc_floats((size_t)N * C);
    tu_fill_random(inp, (size_t)N * C, 250, 3.0f);
    for (size_t i = 0; i < (size_t)N * C; i++) inp[i] += 5.0f;
    for (int i = 0; i < C; i++) w[i] = 1.0f;
    for (int kind = 0; kind <= 1; kind++) {
        kern_norm_ref(out, inp, w, NULL, N, C, (model_norm_kind)kind, 1e-5f);
        for (int n = 0; n < N; n++) {
            double m = 0, ss = 0;
            for (int c = 0; c < C; c++) m += out[n * C + c];
            m /= C;
            for (int c = 0; c < C; c++) ss += kind ? (double)out[n * C + c] * out[n * C + c]
                                                  : (out[n * C + c] - m) * (out[n * C + c] - m);
            if (!kind) assert_true(fabs(m) < 1e-5);
            assert_true(fabs(ss / C - 1.0) < 1e-4);
        }
    }
    free(inp);
    free(w);
    free(out);
}

/* ---- RoPE ---------------------------------------------------------------------------------- */

static void run_rope_case(int B, int T, int nh, int hs, float theta, uint64_t seed) {
    size_t n = (size_t)B * T * nh * hs;
    float *x0 = alloc_floats(n), *fast = alloc_out(n, 0.0f), *ref = alloc_out(n, 0.0f);
    tu_fill_random(x0, n, seed, 1.0f);
    memcpy(fast, x0, n * sizeof(float));
    memcpy(ref, x0, n * sizeof(float));
    kern_rope(fast, B, T, nh, hs, theta);
    kern_rope_ref(ref, B, T, nh, hs, theta);
    char what[128];
    snprintf(what, sizeof what, "rope B=%d T=%d nh=%d hs=%d theta=%g", B, T, nh, hs, (double)theta);
    check_canaries(fast, n, what);
    check_canaries(ref, n, what);
    /* the float angle t * freq carries an absolute error ~ eps * t: tolerance grows with T */
    check_close(fast, ref, n, 1e-5f + 2e-7f * (float)T, what);
    /* reference properties: position 0 is the identity, every pair keeps its length */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < nh * hs; i += 2) {
                size_t k  = ((size_t)b * T + t) * nh * hs + i;
                double r0 = hypot(x0[k], x0[k + 1]), r1 = hypot(ref[k], ref[k + 1]);
                assert_true(fabs(r0 - r1) <= 1e-6 * (1.0 + r0));
                if (t == 0) assert_true(ref[k] == x0[k] && ref[k + 1] == x0[k + 1]);
            }
    /* the angle: position 1, pair 0 of a head rotates by exactly 1 radian (theta^0 = 1) */
    if (T > 1) {
        size_t k = (size_t)nh * hs; /* b 0, t 1, head 0, i 0 */
        double c = cos(1.0), s = sin(1.0);
        assert_true(fabs(ref[k] - (x0[k] * c - x0[k + 1] * s)) < 1e-6);
        assert_true(fabs(ref[k + 1] - (x0[k] * s + x0[k + 1] * c)) < 1e-6);
    }
    free(x0);
    free(fast);
    free(ref);
}

static void test_rope(void **state) {
    (void)state;
    run_rope_case(1, 1, 1, 2, 10000.0f, 300);
    run_rope_case(2, 7, 3, 8, 10000.0f, 301);
    run_rope_case(3, 150, 4, 16, 10000.0f, 302);
    run_rope_case(2, 64, 2, 2, 500000.0f, 303);
    run_rope_case(1, 512, 8, 8, 10000.0f, 304);
}

/* ---- attention ----------------------------------------------------------------------------- */

typedef struct {
    int    B, T, NH, NKV, HS;
    float *q, *k, *v; /* (B, T, NH*HS), (B, T, NKV*HS) x 2 */
} att_inputs;

/* random q, k, v; positions at or past lens[b] are NaN: a kernel that reads them fails */
static void att_inputs_init(att_inputs *a, int B, int T, int NH, int NKV, int HS, const int *lens, uint64_t seed) {
    *a = (att_inputs){B, T, NH, NKV, HS, NULL, NULL, NULL};
    size_t nq = (size_t)B * T * NH * HS, nkv = (size_t)B * T * NKV * HS;
    a->q = alloc_floats(nq);
    a->k = alloc_floats(nkv);
    a->v = alloc_floats(nkv);
    tu_fill_random(a->q, nq, seed, 1.5f);
    tu_fill_random(a->k, nkv, seed + 1, 1.5f);
    tu_fill_random(a->v, nkv, seed + 2, 1.0f);
    if (lens)
        for (int b = 0; b < B; b++)
            for (int t = lens[b]; t < T; t++) {
                for (int i = 0; i < NH * HS; i++) a->q[((size_t)b * T + t) * NH * HS + i] = NAN;
                for (int i = 0; i < NKV * HS; i++) {
                    a->k[((size_t)b * T + t) * NKV * HS + i] = NAN;
                    a->v[((size_t)b * T + t) * NKV * HS + i] = NAN;
                }
            }
}

static void att_inputs_free(att_inputs *a) {
    free(a->q);
    free(a->k);
    free(a->v);
}

/* run one kernel into a fresh output (pre-filled with garbage) with an exactly-sized scratch */
static float *att_run(const att_inputs *a, const int *lens, int causal, int use_ref) {
    size_t n = (size_t)a->B * a->T * a->NH * a->HS;
    float *out = alloc_out(n, -777.0f);
    float *scratch = alloc_floats((size_t)a->T * a->T + a->T + 1);
    float *gather  = alloc_floats(2 * (size_t)a->T * a->HS);
    int   *iscr    = malloc((size_t)a->T * sizeof(int));
    (use_ref ? kern_attention_ref : kern_attention)(out, scratch, gather, iscr, a->q, a->k, a->v, lens, a->B, a->T,
                                                    a->NH, a->NKV, a->HS, causal, NULL);
    free(scratch);
    free(gather);
    free(iscr);
    check_canaries(out, n, use_ref ? "kern_attention_ref" : "kern_attention");
    return out;
}

static void run_attention_case(int B, int T, int NH, int NKV, int HS, const int *lens, int causal, uint64_t seed) {
    att_inputs a;
    att_inputs_init(&a, B, T, NH, NKV, HS, lens, seed);
    float *fast = att_run(&a, lens, causal, 0), *ref = att_run(&a, lens, causal, 1);
    char what[200];
    int  n = snprintf(what, sizeof what, "attention B=%d T=%d NH=%d NKV=%d HS=%d %s lens=", B, T, NH, NKV, HS,
                      causal ? "causal" : "bidirectional");
    for (int b = 0; b < B && n < (int)sizeof what - 8; b++) n += snprintf(what + n, sizeof what - n, "%d,", lens ? lens[b] : T);
    int C = NH * HS;
    for (int b = 0; b < B; b++) {
        int len = lens ? lens[b] : T;
        for (int t = 0; t < T; t++) {
            const float *f = fast + ((size_t)b * T + t) * C, *r = ref + ((size_t)b * T + t) * C;
            if (t >= len) { /* padding: exactly zero in both */
                for (int i = 0; i < C; i++)
                    if (f[i] != 0.0f || r[i] != 0.0f)
                        fail_msg("%s: sequence %d position %d >= len %d: fast %g ref %g, expected 0", what, b, t, len,
                                 (double)f[i], (double)r[i]);
            } else {
                /* convex combinations of |v| <= 1: absolute tolerance, growing with the keys summed */
                float tol = 1e-5f * sqrtf((float)(HS + (causal ? t + 1 : len)));
                for (int i = 0; i < C; i++)
                    if (!(fabsf(f[i] - r[i]) <= tol))
                        fail_msg("%s: sequence %d position %d elem %d: fast %g ref %g (tol %g)", what, b, t, i,
                                 (double)f[i], (double)r[i], (double)tol);
            }
        }
    }
    free(fast);
    free(ref);
    att_inputs_free(&a);
}

static void test_attention(void **state) {
    (void)state;
    static const int heads[][3] = {{4, 4, 16}, {8, 2, 8}, {2, 1, 4}, {1, 1, 1}}; /* NH, NKV, HS: MHA, GQA, MQA, tiny */
    static const int Ts[] = {1, 7, 64, 65, 150};
    uint64_t seed = 400;
    for (size_t h = 0; h < sizeof heads / sizeof heads[0]; h++)
        for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
            int T = Ts[ti], NH = heads[h][0], NKV = heads[h][1], HS = heads[h][2];
            /* lens shorter than T, crossing the 64-row block boundary where T allows */
            int lens[4] = {T, T > 1 ? T - 1 : 1, T > 70 ? 70 : (T + 1) / 2, T >= 64 ? 64 : 1};
            for (int causal = 0; causal <= 1; causal++) {
                run_attention_case(2, T, NH, NKV, HS, NULL, causal, seed++);
                run_attention_case(4, T, NH, NKV, HS, lens, causal, seed++);
            }
        }
}

/* GQA semantics of the reference: query head h reads KV head h / (NH / NKV), i.e. GQA equals MHA
 * with every KV head repeated NH/NKV times */
static void test_attention_gqa_is_repeated_mha(void **state) {
    (void)state;
    int B = 2, T = 37, NH = 8, NKV = 2, HS = 8, group = NH / NKV;
    int lens[2] = {37, 20};
    for (int causal = 0; causal <= 1; causal++) {
        att_inputs g, m;
        att_inputs_init(&g, B, T, NH, NKV, HS, lens, 500 + causal);
        att_inputs_init(&m, B, T, NH, NH, HS, NULL, 600);
        memcpy(m.q, g.q, (size_t)B * T * NH * HS * sizeof(float));
        for (size_t bt = 0; bt < (size_t)B * T; bt++)
            for (int h = 0; h < NH; h++) {
                memcpy(m.k + (bt * NH + h) * HS, g.k + (bt * NKV + h / group) * HS, (size_t)HS * sizeof(float));
                memcpy(m.v + (bt * NH + h) * HS, g.v + (bt * NKV + h / group) * HS, (size_t)HS * sizeof(float));
            }
        for (int use_ref = 0; use_ref <= 1; use_ref++) {
            float *og = att_run(&g, lens, causal, use_ref), *om = att_run(&m, lens, causal, use_ref);
            assert_true(tu_max_abs_diff(og, om, (size_t)B * T * NH * HS) <= 1e-6f);
            free(og);
            free(om);
        }
        att_inputs_free(&g);
        att_inputs_free(&m);
    }
}

/* A padded sequence's valid outputs equal those of the same sequence run alone with T = len
 * (bidirectional: the padding must not enter the softmax denominator; causal as well). */
static void test_attention_padding_equals_alone(void **state) {
    (void)state;
    int B = 3, T = 150, NH = 8, NKV = 2, HS = 8, C = NH * HS, KVC = NKV * HS;
    int lens[3] = {150, 70, 13};
    uint64_t seed = 700;
    for (int causal = 0; causal <= 1; causal++) {
        att_inputs a;
        att_inputs_init(&a, B, T, NH, NKV, HS, lens, seed++);
        for (int use_ref = 0; use_ref <= 1; use_ref++) {
            float *full = att_run(&a, lens, causal, use_ref);
            for (int b = 0; b < B; b++) {
                int        L = lens[b];
                att_inputs s = {1, L, NH, NKV, HS, alloc_floats((size_t)L * C), alloc_floats((size_t)L * KVC),
                                alloc_floats((size_t)L * KVC)};
                memcpy(s.q, a.q + (size_t)b * T * C, (size_t)L * C * sizeof(float));
                memcpy(s.k, a.k + (size_t)b * T * KVC, (size_t)L * KVC * sizeof(float));
                memcpy(s.v, a.v + (size_t)b * T * KVC, (size_t)L * KVC * sizeof(float));
                float *alone = att_run(&s, NULL, causal, use_ref);
                float  d     = tu_max_abs_diff(full + (size_t)b * T * C, alone, (size_t)L * C);
                if (!(d <= 1e-5f))
                    fail_msg("%s %s: sequence %d (len %d) differs from the same sequence alone by %g",
                             use_ref ? "ref" : "fast", causal ? "causal" : "bidirectional", b, L, (double)d);
                free(alone);
                att_inputs_free(&s);
            }
            free(full);
        }
        att_inputs_free(&a);
    }
}

/* causal attention at position i does not depend on later positions: changing the last token's
 * q/k/v leaves every earlier output unchanged */
static void test_attention_causal_no_future(void **state) {
    (void)state;
    int B = 1, T = 100, NH = 4, NKV = 2, HS = 8, KVC = NKV * HS, C = NH * HS;
    att_inputs a;
    att_inputs_init(&a, B, T, NH, NKV, HS, NULL, 800);
    for (int use_ref = 0; use_ref <= 1; use_ref++) {
        float *o1 = att_run(&a, NULL, 1, use_ref);
        att_inputs b = a;
        b.k = alloc_floats((size_t)T * KVC);
        b.v = alloc_floats((size_t)T * KVC);
        memcpy(b.k, a.k, (size_t)T * KVC * sizeof(float));
        memcpy(b.v, a.v, (size_t)T * KVC * sizeof(float));
        for (int i = 0; i < KVC; i++) {
            b.k[(size_t)(T - 1) * KVC + i] = 50.0f;
            b.v[(size_t)(T - 1) * KVC + i] = -50.0f;
        }
        float *o2 = att_run(&b, NULL, 1, use_ref);
        assert_memory_equal(o1, o2, (size_t)(T - 1) * C * sizeof(float));
        assert_true(tu_max_abs_diff(o1 + (size_t)(T - 1) * C, o2 + (size_t)(T - 1) * C, (size_t)C) > 1.0f);
        free(b.k);
        free(b.v);
        free(o1);
        free(o2);
    }
    att_inputs_free(&a);
}


/* Sampled attention over per-query key lists (random-k, and window lists that are not ranges
 * through the plan path): the AVX2 path and the portable C give the same bits (outputs, kept
 * counts, band counts and attention statistics), for head sizes with and without a tail of
 * HS mod 8 and lists of any length mod 8; and both agree with the masked double twin. On a CPU
 * without AVX2 both runs take the portable path (the test then checks only the twin). */
static void test_attention_per_query_simd_bitwise(void **state) {
    (void)state;
    static const int hss[] = {1, 4, 8, 12, 16, 64, 67};
    static const double lambdas[] = {INFINITY, 3.0};
    int B = 2, T = 97, NH = 2, NKV = 1, NB = 8;
    int lens[2] = {97, 41};
    int64_t ids[2] = {11, 12};
    pw_sample ps;
    pe_err err = {0};
    assert_int_equal(pw_sample_init(&ps, T, &err), PE_OK);
    printf("  AVX2 path %s\n", kern_simd_active() ? "active" : "not available: portable C only");
    uint64_t seed = 1300;
    for (size_t hi = 0; hi < sizeof hss / sizeof hss[0]; hi++)
        for (int li = 0; li < 2; li++)
            for (int causal = 0; causal <= 1; causal++)
                for (int ri = 0; ri < 6; ri++) { /* ri >= 3: without the attention statistics */
                    int HS = hss[hi], C = NH * HS, with_att = ri < 3;
                    att_inputs a;
                    att_inputs_init(&a, B, T, NH, NKV, HS, lens, seed++);
                    pw_config c = {0};
                    c.scheme = PW_SCHEME_RANDOM_K, c.ratio = (double[]){1.7, 3.0, 8.0}[ri % 3], c.lambda = lambdas[li];
                    c.members = 1, c.seed = 77;
                    size_t n = (size_t)B * T * C;
                    float *o[3];
                    int64_t kept[3][2], allowed[3][2], kbh[3][2 * 2], band[3][2 * 2 * 8];
                    double  st[3][2 * 2 * (3 + 8)] = {{0}};
                    float  *scratch = alloc_floats((size_t)T * T + T + 1), *gather = alloc_floats(2 * (size_t)T * HS);
                    int    *iscr = malloc((size_t)T * sizeof(int));
                    for (int r = 0; r < 3; r++) { /* 0: SIMD if available, 1: portable C, 2: masked twin */
                        memset(kept[r], 0, sizeof kept[r]);
                        memset(allowed[r], 0, sizeof allowed[r]);
                        kern_pathways kp = {.cfg = &c, .sample = &ps, .member = 1, .layer = 2, .seq_ids = ids,
                                            .kept = kept[r], .allowed = allowed[r], .n_bands = NB,
                                            .kept_bh = r < 2 ? kbh[r] : NULL, .band_kept = r < 2 ? band[r] : NULL,
                                            .att_stats = r < 2 && with_att ? st[r] : NULL};
                        o[r] = alloc_out(n, -777.0f);
                        kern_set_simd(r == 0);
                        (r == 2 ? kern_attention_ref : kern_attention)(o[r], scratch, gather, iscr, a.q, a.k, a.v,
                                                                      lens, B, T, NH, NKV, HS, causal, &kp);
                        check_canaries(o[r], n, "kern_attention");
                    }
                    kern_set_simd(1);
                    char what[120];
                    snprintf(what, sizeof what, "random-k HS=%d lambda=%g rho=%g %s", HS, c.lambda, c.ratio,
                             causal ? "causal" : "bidirectional");
                    if (memcmp(o[0], o[1], n * sizeof(float)) || memcmp(kbh[0], kbh[1], sizeof kbh[0]) ||
                        memcmp(band[0], band[1], sizeof band[0]) || memcmp(st[0], st[1], sizeof st[0]))
                        fail_msg("%s: the AVX2 path and the portable C differ (max |diff| %g)", what,
                                 (double)tu_max_abs_diff(o[0], o[1], n));
                    assert_memory_equal(kept[0], kept[2], sizeof kept[0]);
                    assert_memory_equal(allowed[0], allowed[2], sizeof allowed[0]);
                    float d = tu_max_abs_diff(o[0], o[2], n), tol = 1e-5f * sqrtf((float)(HS + T));
                    if (!(d <= tol)) fail_msg("%s: fast vs masked twin max diff %g > %g", what, (double)d, (double)tol);
                    for (int r = 0; r < 3; r++) free(o[r]);
                    free(scratch);
                    free(gather);
                    free(iscr);
                    att_inputs_free(&a);
                }
    pw_sample_free(&ps);
}


/* The AVX2 path's blocks of 8 list positions (short segments: under 16 keys per query and key
 * chunk on average) at their edges: lists that end within 8 of the row's end (n = 100, ρ = 1.02:
 * the last block is copied, not stored 8 wide, where 8 floats would run into the next row), many
 * chunks (HS = 256: chunks of 16 keys), the blocks' order across chunks and queries (n = 300,
 * ρ = 8 and 12, 5 blocks of 64 queries), and GQA. AVX2 = portable C bit for bit (outputs and
 * kept counts), both = the masked double twin. */
static void test_attention_per_query_blocks(void **state) {
    (void)state;
    static const struct { int T, HS, NH, NKV; double rho; } cases[] = {
        {100, 256, 1, 1, 1.02}, {100, 256, 2, 1, 1.3}, {300, 64, 2, 2, 8.0}, {300, 64, 4, 2, 12.0}, {300, 8, 1, 1, 5.0}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int causal = 0; causal <= 1; causal++) {
            int T = cases[ci].T, HS = cases[ci].HS, NH = cases[ci].NH, NKV = cases[ci].NKV, B = 1;
            pw_sample ps;
            pe_err    err = {0};
            assert_int_equal(pw_sample_init(&ps, T, &err), PE_OK);
            att_inputs a;
            att_inputs_init(&a, B, T, NH, NKV, HS, NULL, 4100 + ci * 2 + causal);
            pw_config c = {0};
            c.scheme = PW_SCHEME_RANDOM_K, c.ratio = cases[ci].rho, c.lambda = INFINITY, c.members = 1, c.seed = 5;
            size_t  n = (size_t)B * T * NH * HS;
            int64_t ids[1] = {3}, kept[3][8], allowed[3][8];
            float  *o[3], *scratch = alloc_floats((size_t)T * T + T + 1), *gather = alloc_floats(2 * (size_t)T * HS);
            int    *iscr = malloc((size_t)T * sizeof(int));
            for (int r = 0; r < 3; r++) { /* 0: SIMD if available, 1: portable C, 2: masked twin */
                memset(kept[r], 0, sizeof kept[r]);
                memset(allowed[r], 0, sizeof allowed[r]);
                kern_pathways kp = {.cfg = &c, .sample = &ps, .member = 1, .layer = 0, .seq_ids = ids, .kept = kept[r],
                                    .allowed = allowed[r]};
                o[r] = alloc_out(n, -777.0f);
                kern_set_simd(r == 0);
                (r == 2 ? kern_attention_ref : kern_attention)(o[r], scratch, gather, iscr, a.q, a.k, a.v, NULL, B, T,
                                                              NH, NKV, HS, causal, &kp);
                check_canaries(o[r], n, "kern_attention");
            }
            kern_set_simd(1);
            if (memcmp(o[0], o[1], n * sizeof(float)))
                fail_msg("T=%d HS=%d rho=%g causal=%d: the AVX2 path and the portable C differ (max |diff| %g)", T, HS,
                         cases[ci].rho, causal, (double)tu_max_abs_diff(o[0], o[1], n));
            assert_memory_equal(kept[0], kept[1], sizeof kept[0]);
            assert_memory_equal(kept[0], kept[2], sizeof kept[0]);
            float d = tu_max_abs_diff(o[0], o[2], n), tol = 1e-5f * sqrtf((float)(HS + T));
            if (!(d <= tol))
                fail_msg("T=%d HS=%d rho=%g causal=%d: fast vs masked twin max diff %g > %g", T, HS, cases[ci].rho, causal,
                         (double)d, (double)tol);
            for (int r = 0; r < 3; r++) free(o[r]);
            free(scratch), free(gather), free(iscr);
            att_inputs_free(&a);
            pw_sample_free(&ps);
        }
}

/* ---- contiguous ranges (window, plan windows): the band kernel ---------------------------- */

/* pw_config.drop that draws per-query ranges itself: mode 0 "wild" (causal: [i - m + 1, i] with
 * m uniform in 1..i+1; bidirectional: any [a, a + m)), so the 4-query groups' unions are often
 * far wider than their ranges (the row-by-row fallback); mode 1 "jitter" (width 5..12, start
 * near i), unions a little wider than each range */
typedef struct {
    int      mode;
    uint64_t seed;
} ranges_ctx;

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static int draw_test_ranges(const void *ctx, pw_sample *s, int member, int layer, int head, int64_t seq_id, int n,
                            int causal) {
    const ranges_ctx *c = ctx;
    uint64_t x = c->seed ^ mix64((uint64_t)seq_id * 1000003u + (uint64_t)head * 101u + (uint64_t)layer * 7u + (uint64_t)member);
    int off = 0;
    s->kind = PW_SAMPLE_PER_QUERY;
    for (int i = 0; i < n; i++) {
        x = mix64(x);
        int m, a;
        if (c->mode == 0) {
            m = 1 + (int)(x % (uint64_t)(causal ? i + 1 : n));
            a = causal ? i - m + 1 : (int)((x >> 32) % (uint64_t)(n - m + 1));
        } else {
            m = 5 + (int)(x % 8u);
            m = m < (causal ? i + 1 : n) ? m : (causal ? i + 1 : n);
            a = causal ? i - m + 1 : i - m / 2 + (int)((x >> 32) % 3u) - 1;
            a = a < 0 ? 0 : (a > n - m ? n - m : a);
        }
        s->key_start[i] = off;
        for (int j = 0; j < m; j++) s->keys[off++] = a + j;
    }
    s->key_start[n] = off;
    return 1;
}

/* The band kernel (per-query lists that are contiguous ranges: window, plan windows): the AVX2
 * path and the portable C give the same bits (outputs, kept counts, band counts, attention
 * statistics), for head sizes with and without tails of HS mod 16 and mod 8, sequences shorter
 * than a group of 4 queries and than a tile of 8 keys, lengths not a multiple of 4, GQA (K^T
 * shared by the query heads of a KV head), and ranges whose groups take the union path and the
 * row-by-row fallback; both agree with the masked double twin. On a CPU without AVX2 both runs
 * take the portable path (the test then checks only the twin). */
static void test_attention_ranges_simd_bitwise(void **state) {
    (void)state;
    static const int hss[] = {1, 5, 8, 16, 24, 64, 67};
    int B = 4, T = 97, NH = 2, NKV = 1, NB = 8;
    int lens[4] = {97, 41, 6, 3};
    int64_t ids[4] = {11, 12, 13, 14};
    int hw[3 * 2]; /* plan: head_window[layer * NH + head] (layer 2 used) */
    uint8_t keep[3 * 2] = {1, 1, 1, 1, 1, 1};
    pw_sample ps;
    pe_err err = {0};
    assert_int_equal(pw_sample_init(&ps, T, &err), PE_OK);
    printf("  AVX2 path %s\n", kern_simd_active() ? "active" : "not available: portable C only");
    uint64_t seed = 2300;
    int      checked_groups = 0;
    for (size_t hi = 0; hi < sizeof hss / sizeof hss[0]; hi++)
        for (int sch = 0; sch < 8; sch++) /* window rho 1.5, 3, 8; plan w 1, 5 / 40; wild; jitter; window rho 40 */
            for (int causal = 0; causal <= 1; causal++)
                for (int with_att = 0; with_att <= 1; with_att++) {
                    int HS = hss[hi], C = NH * HS;
                    att_inputs a;
                    att_inputs_init(&a, B, T, NH, NKV, HS, lens, seed++);
                    pw_config  c = {0};
                    ranges_ctx rc = {sch == 5 ? 0 : 1, seed};
                    c.members = 1, c.seed = 77, c.ratio = 1.0, c.lambda = INFINITY;
                    if (sch < 3 || sch == 7) c.scheme = PW_SCHEME_WINDOW, c.ratio = (double[]){1.5, 3.0, 8.0, 0, 0, 0, 0, 40.0}[sch];
                    else if (sch < 5) {
                        c.scheme = PW_SCHEME_PLAN, c.n_heads = NH, c.head_keep = keep, c.head_window = hw;
                        for (int u = 0; u < 6; u++) hw[u] = sch == 3 ? 1 : (u % 2 ? 40 : 5);
                    } else c.scheme = PW_SCHEME_DENSE, c.drop = draw_test_ranges, c.drop_ctx = &rc;
                    size_t n = (size_t)B * T * C;
                    float *o[3];
                    int64_t kept[3][2], allowed[3][2], kbh[3][4 * 2], band[3][4 * 2 * 8];
                    double  st[3][4 * 2 * (3 + 8)] = {{0}};
                    float  *scratch = alloc_floats((size_t)T * T + T + 1), *gather = alloc_floats(2 * (size_t)T * HS);
                    int    *iscr = malloc((size_t)T * sizeof(int));
                    for (int r = 0; r < 3; r++) { /* 0: SIMD if available, 1: portable C, 2: masked twin */
                        memset(kept[r], 0, sizeof kept[r]);
                        memset(allowed[r], 0, sizeof allowed[r]);
                        kern_pathways kp = {.cfg = &c, .sample = &ps, .member = 1, .layer = 2, .seq_ids = ids,
                                            .kept = kept[r], .allowed = allowed[r], .n_bands = NB,
                                            .kept_bh = r < 2 ? kbh[r] : NULL, .band_kept = r < 2 ? band[r] : NULL,
                                            .att_stats = r < 2 && with_att ? st[r] : NULL};
                        o[r] = alloc_out(n, -777.0f);
                        kern_set_simd(r == 0);
                        (r == 2 ? kern_attention_ref : kern_attention)(o[r], scratch, gather, iscr, a.q, a.k, a.v,
                                                                      lens, B, T, NH, NKV, HS, causal, &kp);
                        check_canaries(o[r], n, "kern_attention");
                    }
                    kern_set_simd(1);
                    /* the lists were ranges (the band kernel ran), and how many 4-query groups
                     * had a union wider than 2 max m + 16 (the fallback) */
                    pw_draw(&ps, &c, 1, 2, 0, ids[0], lens[0], causal);
                    assert_int_equal(ps.kind, PW_SAMPLE_PER_QUERY);
                    for (int i0 = 0; i0 + 4 <= lens[0]; i0 += 4) {
                        int lo = T, hi2 = 0, mm = 0;
                        for (int r = 0; r < 4; r++) {
                            int s0 = ps.key_start[i0 + r], m = ps.key_start[i0 + r + 1] - s0;
                            assert_int_equal(ps.keys[s0 + m - 1] - ps.keys[s0], m - 1); /* a range */
                            lo = ps.keys[s0] < lo ? ps.keys[s0] : lo;
                            hi2 = ps.keys[s0] + m > hi2 ? ps.keys[s0] + m : hi2;
                            mm = m > mm ? m : mm;
                        }
                        checked_groups += (hi2 - lo > 2 * mm + 16) ? 1000 : 1; /* thousands: fallback groups */
                    }
                    char what[120];
                    snprintf(what, sizeof what, "ranges case %d HS=%d %s%s", sch, HS, causal ? "causal" : "bidirectional",
                             with_att ? " with statistics" : "");
                    if (memcmp(o[0], o[1], n * sizeof(float)) || memcmp(kbh[0], kbh[1], sizeof kbh[0]) ||
                        memcmp(band[0], band[1], sizeof band[0]) || memcmp(st[0], st[1], sizeof st[0]))
                        fail_msg("%s: the AVX2 path and the portable C differ (max |diff| %g)", what,
                                 (double)tu_max_abs_diff(o[0], o[1], n));
                    assert_memory_equal(kept[0], kept[2], sizeof kept[0]);
                    assert_memory_equal(allowed[0], allowed[2], sizeof allowed[0]);
                    float d = tu_max_abs_diff(o[0], o[2], n), tol = 1e-5f * sqrtf((float)(HS + T));
                    if (!(d <= tol)) fail_msg("%s: fast vs masked twin max diff %g > %g", what, (double)d, (double)tol);
                    for (int r = 0; r < 3; r++) free(o[r]);
                    free(scratch);
                    free(gather);
                    free(iscr);
                    att_inputs_free(&a);
                }
    /* both kinds of groups were exercised */
    assert_true(checked_groups % 1000 > 0);
    assert_true(checked_groups / 1000 > 0);
    pw_sample_free(&ps);
}

/* A band-kernel row depends on its own query and range only: the causal window's (and a causal
 * plan window's) first 50 rows of a 97-token sequence equal, bit for bit, the rows of its
 * 50-token prefix run alone (rows 48, 49 run in a 4-query group in one, row by row in the other),
 * on the AVX2 path and the portable C; and a window that keeps everything (rho = 1, a plan
 * window >= n) takes the dense kernel's bits. */
static void test_attention_ranges_row_independent(void **state) {
    (void)state;
    int T = 97, NH = 2, NKV = 1, HS = 64, C = NH * HS, lens_short[1] = {50};
    int64_t ids[1] = {5};
    int hw[3 * 2] = {9, 9, 9, 9, 9, 9};
    uint8_t keep[3 * 2] = {1, 1, 1, 1, 1, 1};
    pw_sample ps;
    pe_err err = {0};
    assert_int_equal(pw_sample_init(&ps, T, &err), PE_OK);
    att_inputs a;
    att_inputs_init(&a, 1, T, NH, NKV, HS, NULL, 2900);
    float *scratch = alloc_floats((size_t)T * T + T + 1), *gather = alloc_floats(2 * (size_t)T * HS);
    int   *iscr = malloc((size_t)T * sizeof(int));
    for (int simd = 0; simd <= 1; simd++)
        for (int sch = 0; sch < 4; sch++) {
            pw_config c = {0};
            c.members = 1, c.seed = 3, c.lambda = INFINITY, c.ratio = sch == 0 ? 3.0 : 1.0;
            c.scheme = sch == 0 || sch == 2 ? PW_SCHEME_WINDOW : PW_SCHEME_PLAN;
            if (c.scheme == PW_SCHEME_PLAN) {
                c.n_heads = NH, c.head_keep = keep, c.head_window = hw;
                for (int u = 0; u < 6; u++) hw[u] = sch == 1 ? 9 : T;
            }
            kern_set_simd(simd);
            kern_pathways kp = {.cfg = &c, .sample = &ps, .member = 1, .layer = 2, .seq_ids = ids};
            float *full = alloc_out((size_t)T * C, -777.0f), *part = alloc_out((size_t)T * C, -777.0f);
            kern_attention(full, scratch, gather, iscr, a.q, a.k, a.v, NULL, 1, T, NH, NKV, HS, 1, &kp);
            if (sch < 2) {
                kern_attention(part, scratch, gather, iscr, a.q, a.k, a.v, lens_short, 1, T, NH, NKV, HS, 1, &kp);
                if (memcmp(full, part, (size_t)50 * C * sizeof(float)))
                    fail_msg("%s %s: rows of the 50-token prefix differ from the 97-token sequence's (max |diff| %g)",
                             sch == 0 ? "window rho 3" : "plan w 9", simd ? "AVX2" : "portable C",
                             (double)tu_max_abs_diff(full, part, (size_t)50 * C));
            } else {
                kern_attention(part, scratch, gather, iscr, a.q, a.k, a.v, NULL, 1, T, NH, NKV, HS, 1, NULL);
                if (memcmp(full, part, (size_t)T * C * sizeof(float)))
                    fail_msg("%s: keep-all differs from dense", sch == 2 ? "window rho 1" : "plan w = n");
            }
            free(full);
            free(part);
        }
    kern_set_simd(1);
    free(scratch);
    free(gather);
    free(iscr);
    att_inputs_free(&a);
    pw_sample_free(&ps);
}

/* kern_expf through the AVX2 lanes (used by the per-query attention path) gives kern_expf's bits
 * on every input class: a dense sweep of [-100, 100], the clamps, zeros, infinities and NaN */
static void test_expf_lanes_bitwise(void **state) {
    (void)state;
    int    n = 200003 + 261 * 129;
    float *x = alloc_floats((size_t)n + 16), *y = alloc_floats((size_t)n + 16);
    for (int i = 0; i < 200003; i++) x[i] = -100.0f + 200.0f * (float)i / (float)(200003 - 1);
    /* and the 129 floats around each x where x * log2(e) + 0.5 is an integer (the floor's edge) */
    for (int k = -130, i = 200003; k <= 130; k++) {
        float c = ((float)k - 0.5f) / 1.44269504088896341f;
        for (int u = 0; u < 64; u++) c = nextafterf(c, -INFINITY);
        for (int u = 0; u < 129; u++, c = nextafterf(c, INFINITY)) x[i++] = c;
    }
    const float special[16] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -87.0f, 88.0f, -87.00001f,
                               88.00001f, 1e-30f, -1e-30f, 0.5f, -0.5f, 87.9999f, -86.9999f, 1.0f};
    for (int i = 0; i < 16; i++) x[n + i] = special[i];
    kern_expf_lanes(y, x, n + 16);
    for (int i = 0; i < n + 16; i++) {
        float e = kern_expf(x[i]);
        if (memcmp(&e, &y[i], sizeof e))
            fail_msg("kern_expf_lanes(%a) = %a, kern_expf = %a", (double)x[i], (double)y[i], (double)e);
    }
    free(x);
    free(y);
}

/* ---- activations (no _ref twins: against the double formulas) ------------------------------- */

static void test_activations(void **state) {
    (void)state;
    size_t n = 1001;
    float *x = alloc_floats(n), *y = alloc_floats(n), *h3 = alloc_floats(n);
    for (size_t i = 0; i < n; i++) x[i] = -8.0f + 16.0f * (float)i / (float)(n - 1);
    tu_fill_random(h3, n, 900, 2.0f);
    for (int tanh_approx = 0; tanh_approx <= 1; tanh_approx++) {
        memcpy(y, x, n * sizeof(float));
        kern_gelu(y, n, tanh_approx);
        for (size_t i = 0; i < n; i++) {
            double u = x[i];
            double e = tanh_approx ? 0.5 * u * (1.0 + tanh(sqrt(2.0 / M_PI) * (u + 0.044715 * u * u * u)))
                                   : 0.5 * u * (1.0 + erf(u / sqrt(2.0)));
            if (!(fabs(y[i] - e) <= 1e-6 * (1.0 + fabs(e)))) fail_msg("gelu(%g, tanh=%d) = %g, expected %g", u, tanh_approx, (double)y[i], e);
        }
    }
    memcpy(y, x, n * sizeof(float));
    kern_swiglu(y, h3, n);
    for (size_t i = 0; i < n; i++) {
        double g = x[i], e = g / (1.0 + exp(-g)) * h3[i];
        assert_true(fabs(y[i] - e) <= 1e-6 * (1.0 + fabs(e)));
    }
    memcpy(y, x, n * sizeof(float));
    kern_add(y, h3, n);
    for (size_t i = 0; i < n; i++) assert_true(y[i] == x[i] + h3[i]);
    free(x);
    free(y);
    free(h3);
}


/* SwiGLU: the AVX2 lanes give the portable loop's bits (kern_set_simd(0)) over a wide range of
 * gates and values, NaN, infinities and signed zeros, at lengths around multiples of 8 */
static void test_swiglu_lanes(void **state) {
    (void)state;
    size_t cap = 20000;
    float *g = alloc_floats(cap), *h3 = alloc_floats(cap), *ya = alloc_floats(cap), *yc = alloc_floats(cap);
    size_t n = 0;
    for (int e = -30; e <= 7; e++)
        for (int k = 0; k < 200 && n + 2 <= cap - 16; k++) {
            float m = ldexpf(1.0f + (float)k / 200.0f, e);
            g[n++] = m;
            g[n++] = -m;
        }
    const float special[10] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 90.0f, -90.0f, 87.5f, -88.5f, 3e38f};
    for (int i = 0; i < 10; i++) g[n++] = special[i];
    tu_fill_random(h3, n, 901, 3.0f);
    h3[0] = INFINITY, h3[1] = -0.0f, h3[2] = NAN;
    const size_t lens[] = {n, n - 1, 7, 8, 9, 15, 16, 17, 1, 0};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        size_t m = lens[li];
        memcpy(ya, g, n * sizeof(float));
        memcpy(yc, g, n * sizeof(float));
        kern_swiglu(ya, h3, m);
        kern_set_simd(0);
        kern_swiglu(yc, h3, m);
        kern_set_simd(1);
        for (size_t i = 0; i < n; i++)
            if (memcmp(ya + i, yc + i, sizeof(float)))
                fail_msg("swiglu lanes (n %zu) at %zu: g %a h3 %a: %a vs portable %a", m, i, (double)g[i], (double)h3[i],
                         (double)ya[i], (double)yc[i]);
    }
    free(g);
    free(h3);
    free(ya);
    free(yc);
}

/* GELU-tanh (u / (1 + exp(-2z)) through kern_expf) against the double formula:
 * |y - ref| <= (4e-7 + 3e-7 |2z|) |ref| + 1e-37 + |u| e^-88 (a few ulp, plus the float roundings of the
 * exponent's argument, which the exponential scales by |2z|: the far negative tail, where
 * y ~ u e^{-2|z|}) over exponents 2^-40 .. 2^7 of both signs and [-20, 20], and
 * the AVX2 lanes give the portable loop's bits (lengths not a multiple of 8, NaN, infinities) */
static void test_gelu_tanh_lanes(void **state) {
    (void)state;
    size_t n = 0, cap = 40000;
    float *x = alloc_floats(cap + 16), *y = alloc_floats(cap + 16), *yc = alloc_floats(cap + 16), *r = alloc_floats(cap + 16);
    for (int e = -40; e <= 7; e++)
        for (int k = 0; k < 200; k++) {
            float m = ldexpf(1.0f + (float)k / 200.0f, e);
            x[n++] = m;
            x[n++] = -m;
        }
    for (int k = 0; k <= 4000; k++) x[n++] = -20.0f + 40.0f * (float)k / 4000.0f;
    const float special[12] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-30f, -1e-30f, 3e38f, -3e38f, 1e13f, -1e13f, -9.5f};
    for (int i = 0; i < 12; i++) x[n++] = special[i];
    n -= 3; /* a length that is not a multiple of 8: the scalar tail runs too */
    assert_true(n <= cap);
    memcpy(y, x, n * sizeof(float));
    memcpy(yc, x, n * sizeof(float));
    memcpy(r, x, n * sizeof(float));
    kern_gelu(y, n, 1);
    kern_gelu_ref(r, n, 1);
    int was = kern_simd_active();
    kern_set_simd(0);
    kern_gelu(yc, n, 1);
    kern_set_simd(1);
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&y[i], &yc[i], sizeof(float)) && !(isnan(y[i]) && isnan(yc[i])))
            fail_msg("gelu_tanh(%a): lanes %a, portable %a (simd %d)", (double)x[i], (double)y[i], (double)yc[i], was);
        if (!isfinite(x[i]) || fabsf(x[i]) > 1e6f) continue;
        double u = x[i], a = fabs(1.5957691216057308 * (u + 0.044715 * u * u * u)); /* |2z| */
        double d = fabs((double)y[i] - (double)r[i]);
        if (!(d <= (4e-7 + 3e-7 * a) * fabs((double)r[i]) + 1e-37 + 7e-39 * fabs(u)))
            fail_msg("gelu_tanh(%a) = %a, reference %a (rel err %g)", (double)x[i], (double)y[i], (double)r[i],
                     d / fabs((double)r[i]));
    }
    /* the large-|u| limits: u for u -> +inf, -0 side for u -> -inf; NaN stays NaN */
    float big[4] = {1e13f, 3e38f, INFINITY, NAN};
    kern_gelu(big, 4, 1);
    assert_true(big[0] == 1e13f && big[1] == 3e38f && big[2] == INFINITY && isnan(big[3]));
    free(x);
    free(y);
    free(yc);
    free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_norm),
        cmocka_unit_test(test_norm_ref_moments),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_gqa_is_repeated_mha),
        cmocka_unit_test(test_attention_padding_equals_alone),
        cmocka_unit_test(test_attention_causal_no_future),
        cmocka_unit_test(test_attention_per_query_simd_bitwise),
        cmocka_unit_test(test_attention_per_query_blocks),
        cmocka_unit_test(test_attention_ranges_simd_bitwise),
        cmocka_unit_test(test_swiglu_lanes),
        cmocka_unit_test(test_attention_ranges_row_independent),
        cmocka_unit_test(test_expf_lanes_bitwise),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_gelu_tanh_lanes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
