/* bench_lmhead.c: the LM head in chunks of rows, and the sgemm ceiling of a dense pass.
 *
 *   bench_lmhead chunks [V C]     is the 48-aligned chunk grid bit-identical to one sgemm over the
 *                                 whole sequence? (lengths 1..1100, chunks of 12..384 rows and two
 *                                 off-grid sizes, which are expected to differ); default V 512, C 64
 *   bench_lmhead rate [V C T]     head sgemm rate by chunk rows (T rows in chunks of R; CPU time);
 *                                 default GPT-2 small: V 50257, C 768, T 1024
 *   bench_lmhead ceiling [C L V T S H]
 *                                 the sgemm ceiling of one dense pass of a GPT-2-shaped model (width
 *                                 C, L layers, vocab V, S sequences of T tokens, H heads): every
 *                                 projection and the head timed as the OpenBLAS sgemm calls pathens
 *                                 makes (one per sequence, HF Conv1D weights k-major, c_attn column
 *                                 views with ld 3C, the head over the chunk grid), FLOP-counted;
 *                                 the ceiling of the pass = all of its FLOPs (attention: the causal
 *                                 half, 4 HS T (T + 1) / 2 per head and layer) at that rate.
 *                                 default 768 12 50257 1024 4 12
 * Run with OPENBLAS_NUM_THREADS=1 (bench/bench_gpt2.sh does). Times: best of 3, wall and CPU. */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static float rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)(*s >> 40) / 16777216.0f - 0.5f;
}

static float *rnd_array(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    if (!x) {
        fprintf(stderr, "bench_lmhead: out of memory (%zu floats)\n", n);
        exit(3);
    }
    for (size_t i = 0; i < n; i++) x[i] = rnd(&seed);
    return x;
}

/* out (n, V) = x (n, C) . W^T, W (V, C): the tied head as kern_matmul calls it */
static void head(float *out, const float *x, const float *W, int n, int C, int V) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, V, C, 1.0f, x, C, W, C, 0.0f, out, V);
}

static int bench_chunks(int V, int C) {
    int    Tm = 1100, Rs[] = {12, 24, 48, 96, 144, 288, 384, 16, 40}, lens[] = {1, 5, 11, 12, 13, 47, 48, 49, 97, 143,
                                                                                 145, 255, 256, 300, 511, 1024, 1099};
    size_t nR = sizeof Rs / sizeof Rs[0], nl = sizeof lens / sizeof lens[0];
    if ((int64_t)V * C > (1 << 22)) { /* a big head: a few lengths and chunk sizes, or it takes an hour */
        static int bigR[] = {48, 288, 40}, bigl[] = {13, 145, 300};
        memcpy(Rs, bigR, sizeof bigR), memcpy(lens, bigl, sizeof bigl);
        nR = nl = 3;
    }
    float *W = rnd_array((size_t)V * C, 1), *X = rnd_array((size_t)Tm * C, 2);
    float *whole = malloc(sizeof(float) * (size_t)Tm * V), *ch = malloc(sizeof(float) * (size_t)Tm * V);
    printf("OpenBLAS core %s, V = %d, C = %d: lengths whose chunked head differs from the whole-sequence sgemm\n",
           openblas_get_corename(), V, C);
    int bad_grid = 0;
    for (size_t ri = 0; ri < nR; ri++) {
        int R = Rs[ri], bad = 0;
        for (size_t li = 0; li < nl; li++) {
            int len = lens[li];
            head(whole, X, W, len, C, V);
            for (int r0 = 0; r0 < len; r0 += R)
                head(ch + (size_t)r0 * V, X + (size_t)r0 * C, W, len - r0 < R ? len - r0 : R, C, V);
            bad += memcmp(whole, ch, sizeof(float) * (size_t)len * V) != 0;
        }
        int on_grid = R % MODEL_HEAD_ROW_ALIGN == 0;
        printf("  chunks of %3d rows (%s): %2d of %zu lengths differ\n", R,
               on_grid ? "on the 48 grid" : R % 12 == 0 ? "multiple of 12" : "off grid", bad, nl);
        if (on_grid) bad_grid += bad;
    }
    printf("%s\n", bad_grid ? "the 48-row grid does NOT reproduce the whole-sequence bits on this core"
                            : "the 48-row grid reproduces the whole-sequence bits on this core");
    free(W); free(X); free(whole); free(ch);
    return 0;
}

static int bench_rate(int V, int C, int T) {
    float *W = rnd_array((size_t)V * C, 1), *X = rnd_array((size_t)T * C, 2), *O = malloc(sizeof(float) * (size_t)T * V);
    int    Rs[] = {48, 96, 144, 192, 288, 384, 768, 1024};
    printf("OpenBLAS core %s: head sgemm, V = %d, C = %d, %d rows in chunks of R (best of 3)\n", openblas_get_corename(),
           V, C, T);
    for (size_t ri = 0; ri < sizeof Rs / sizeof Rs[0]; ri++) {
        int    R = Rs[ri];
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
            for (int r0 = 0; r0 < T; r0 += R) head(O + (size_t)r0 * V, X + (size_t)r0 * C, W, T - r0 < R ? T - r0 : R, C, V);
            double c = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
            best = c < best ? c : best;
        }
        printf("  R = %4d: %.3f s CPU, %.1f GFLOP/s\n", R, best, 2.0 * T * (double)V * C / best / 1e9);
    }
    free(W); free(X); free(O);
    return 0;
}

/* out (T, OC) = x (T, IC) . W, W stored (IC, OC) with leading dim ld (HF Conv1D, k-major) */
static void conv1d(float *out, const float *x, const float *W, int ld, int T, int IC, int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, OC, IC, 1.0f, x, IC, W, ld, 0.0f, out, OC);
}

static int bench_ceiling(int C, int L, int V, int T, int S, int H) {
    int    HID = 4 * C, R = 0;
    model  m;
    memset(&m, 0, sizeof m);
    m.cfg.vocab_size = V;
    R = model_head_rows_auto(&m);
    /* one layer's weights serve every layer (the shapes are what is timed; L distinct layers would only
     * add page-cache traffic that the real model also has) */
    float *wqkv = rnd_array((size_t)C * 3 * C, 1), *wo = rnd_array((size_t)C * C, 2), *w1 = rnd_array((size_t)C * HID, 3),
          *w2 = rnd_array((size_t)HID * C, 4), *wte = rnd_array((size_t)V * C, 5);
    float *x = rnd_array((size_t)T * HID, 6), *y = rnd_array((size_t)T * HID, 7), *z = rnd_array((size_t)T * C, 8), *logits = malloc(sizeof(float) * (size_t)R * V);
    double proj = 2.0 * T * ((double)4 * C * C + 2.0 * C * HID) * L * S, headf = 2.0 * T * (double)C * V * S;
    double attn = 4.0 * (C / H) * ((double)T * (T + 1) / 2.0) * H * L * S;
    double best_w = 1e30, best_c = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        for (int s = 0; s < S; s++) {
            for (int l = 0; l < L; l++) {
                for (int i = 0; i < 3; i++) conv1d(y, x, wqkv + (size_t)i * C, 3 * C, T, C, C); /* wq, wk, wv views */
                conv1d(y, x, wo, C, T, C, C);
                conv1d(y, x, w1, HID, T, C, HID);
                conv1d(z, y, w2, C, T, HID, C); /* into scratch: x stays bounded */
            }
            for (int r0 = 0; r0 < T; r0 += R) head(logits, x + (size_t)r0 * C, wte, T - r0 < R ? T - r0 : R, C, V);
        }
        double w = clock_s(CLOCK_MONOTONIC) - w0, c = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        best_w = w < best_w ? w : best_w;
        best_c = c < best_c ? c : best_c;
    }
    double rate_c = (proj + headf) / best_c, rate_w = (proj + headf) / best_w;
    printf("OpenBLAS core %s; dense pass of C %d, L %d, V %d, %d sequences of %d tokens (head chunks of %d rows)\n",
           openblas_get_corename(), C, L, V, S, T, R);
    printf("FLOPs: projections %.1f G, head %.1f G, attention (causal half) %.1f G, total %.1f G\n", proj / 1e9,
           headf / 1e9, attn / 1e9, (proj + headf + attn) / 1e9);
    printf("sgemm of the projections and the head: %.2f s CPU (%.1f GFLOP/s), %.2f s wall (%.1f GFLOP/s), best of 3\n",
           best_c, rate_c / 1e9, best_w, rate_w / 1e9);
    printf("CEILING_CPU_SECONDS %.3f\n", (proj + headf + attn) / rate_c);
    printf("CEILING_WALL_SECONDS %.3f\n", (proj + headf + attn) / rate_w);
    printf("CEILING_GFLOP %.3f\n", (proj + headf + attn) / 1e9);
    free(wqkv); free(wo); free(w1); free(w2); free(wte); free(x); free(y); free(z); free(logits);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
#define ARG(i, def) (argc > (i) ? atoi(argv[i]) : (def))
    if (!strcmp(mode, "chunks")) return bench_chunks(ARG(2, 512), ARG(3, 64));
    if (!strcmp(mode, "rate")) return bench_rate(ARG(2, 50257), ARG(3, 768), ARG(4, 1024));
    if (!strcmp(mode, "ceiling")) return bench_ceiling(ARG(2, 768), ARG(3, 12), ARG(4, 50257), ARG(5, 1024), ARG(6, 4), ARG(7, 12));
#undef ARG
    fprintf(stderr, "usage: bench_lmhead chunks [V C] | rate [V C T] | ceiling [C L V T S H]\n");
    return 1;
}
