/* bench_sgemm_blocks.c: does an OpenBLAS sgemm over a sequence's rows give the same bits when
 * it is split into row blocks (model.c seq_matmul: tasks of MODEL_MATMUL_ROWS = 192 rows)?
 *
 * For 1,170 shapes (rows N 1..1024, K, OC, both weight layouts, beta 0 and 1) one call over all N
 * rows is compared with calls over blocks of 48, 96, 192 and 384 rows (the last block ending at
 * N), on 1 OpenBLAS thread. It prints, per block size, how many shapes differ: 0 everywhere means
 * the threaded projections give the bits of the unsplit call on this machine (they are the same
 * for any thread count either way: the blocks never depend on it). Measured 0 on the Zen, Haswell
 * and Sandybridge kernels of OpenBLAS 0.3.21 (docs/performance.md).
 *   OPENBLAS_CORETYPE=Haswell ./build/bench_sgemm_blocks
 */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float rnd(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)(*s >> 40) / 16777216.0f - 0.5f;
}

/* C (rows, OC) [+]= A (rows, K) . W^T; W (OC, K) when tr = 0, stored (K, OC) when tr = 1 */
static void mm(int rows, int K, int OC, int tr, const float *A, const float *W, float beta, float *C) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, tr ? CblasNoTrans : CblasTrans, rows, OC, K, 1.0f, A, K, W, tr ? OC : K,
                beta, C, OC);
}

int main(void) {
    openblas_set_num_threads(1);
    static const int Ns[] = {1, 13, 47, 48, 49, 95, 100, 200, 257, 383, 385, 700, 1024};
    static const int Ks[] = {64, 96, 172, 768, 3072};
    static const int OCs[] = {10, 64, 172, 300, 512, 768, 2304, 3072, 5000};
    static const int Wb[] = {48, 96, 192, 384};
    uint64_t s = 1;
    int      bad[4] = {0}, total = 0;
    for (size_t a = 0; a < sizeof Ns / sizeof *Ns; a++)
        for (size_t bk = 0; bk < sizeof Ks / sizeof *Ks; bk++)
            for (size_t c = 0; c < sizeof OCs / sizeof *OCs; c++)
                for (int tr = 0; tr < 2; tr++) {
                    int    N = Ns[a], K = Ks[bk], OC = OCs[c];
                    size_t nc = (size_t)N * OC;
                    float *A = malloc(sizeof(float) * N * K), *W = malloc(sizeof(float) * OC * K);
                    float *C0 = malloc(sizeof(float) * nc), *C1 = malloc(sizeof(float) * nc), *C2 = malloc(sizeof(float) * nc);
                    if (!A || !W || !C0 || !C1 || !C2) return 3;
                    for (size_t i = 0; i < (size_t)N * K; i++) A[i] = rnd(&s);
                    for (size_t i = 0; i < (size_t)OC * K; i++) W[i] = rnd(&s);
                    for (size_t i = 0; i < nc; i++) C0[i] = rnd(&s);
                    float beta = (a + c) & 1 ? 1.0f : 0.0f; /* 1: the bias path of kern_matmul */
                    memcpy(C1, C0, sizeof(float) * nc);
                    mm(N, K, OC, tr, A, W, beta, C1);
                    for (int w = 0; w < 4; w++) {
                        memcpy(C2, C0, sizeof(float) * nc);
                        for (int r0 = 0; r0 < N; r0 += Wb[w])
                            mm(N - r0 < Wb[w] ? N - r0 : Wb[w], K, OC, tr, A + (size_t)r0 * K, W, beta, C2 + (size_t)r0 * OC);
                        if (memcmp(C1, C2, sizeof(float) * nc)) {
                            if (bad[w]++ < 3) printf("differs: blocks of %d rows, N %d K %d OC %d layout %d\n", Wb[w], N, K, OC, tr);
                        }
                    }
                    total++;
                    free(A); free(W); free(C0); free(C1); free(C2);
                }
    printf("OpenBLAS core %s: of %d shapes, differing from one call with row blocks of 48 / 96 / 192 / 384: %d / %d / %d / %d\n",
           openblas_get_corename(), total, bad[0], bad[1], bad[2], bad[3]);
    return 0;
}
