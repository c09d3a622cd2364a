/* bench_sgemm_rows.c: does an OpenBLAS sgemm row depend on where it sits in the block?
 *
 * The same input row x is placed at every position of an M x K block (the other rows random),
 * the block is multiplied by one fixed K x N matrix, and the bits of x's output row are compared.
 * It prints one letter per position (the same letter = bit-identical results) for several M.
 * With more than one letter, a batched [B*T, C] sgemm would make a sequence's numbers depend on
 * its batch-mates; pathens therefore calls sgemm once per sequence (docs/performance.md).
 *   OPENBLAS_CORETYPE=Haswell OPENBLAS_NUM_THREADS=1 ./build/bench_sgemm_rows [N K]
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

int main(int argc, char **argv) {
    int N = argc > 2 ? atoi(argv[1]) : 64, K = argc > 2 ? atoi(argv[2]) : 64;
    static const int Ms[] = {16, 24, 32, 48, 64, 128, 512, 4096};
    uint64_t s = 1;
    float   *B = malloc(sizeof(float) * N * K), *x = malloc(sizeof(float) * K);
    float   *cls = malloc(sizeof(float) * 64 * N); /* distinct result rows seen, up to 64 */
    for (int i = 0; i < N * K; i++) B[i] = rnd(&s);
    for (int i = 0; i < K; i++) x[i] = rnd(&s);
    printf("OpenBLAS core %s, N = %d, K = %d; one letter per row position (first 48 positions)\n",
           openblas_get_corename(), N, K);
    int nc = 0;
    for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
        int    M = Ms[mi];
        float *A = malloc(sizeof(float) * M * K), *C = malloc(sizeof(float) * M * N);
        printf("M = %4d: ", M);
        for (int pos = 0; pos < M && pos < 48; pos++) {
            for (int i = 0; i < M * K; i++) A[i] = rnd(&s);
            memcpy(A + (size_t)pos * K, x, sizeof(float) * K);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
            int c = 0;
            while (c < nc && memcmp(cls + (size_t)c * N, C + (size_t)pos * N, sizeof(float) * N)) c++;
            if (c == nc && nc < 64) memcpy(cls + (size_t)nc++ * N, C + (size_t)pos * N, sizeof(float) * N);
            putchar('A' + (c < 26 ? c : 25));
        }
        putchar('\n');
        free(A);
        free(C);
    }
    printf("%d distinct results for the same row\n", nc);
    free(B);
    free(x);
    free(cls);
    return 0;
}
