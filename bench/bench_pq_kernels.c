/* bench_pq_kernels.c: the per-query attention path's 8-key kernels alone (src/kernels.c, included
 * here for its static functions), on rows drawn from a pool of ROWS rows of 64 floats: the pool
 * fits L1 at 64 rows, L2 at 1,024, neither at 4,096. ns per key, thread CPU time, 2M calls each:
 *   score  pq_dots8_avx2 (8 keys' kern_dot8 tree: mul then add, the project's bits)
 *   out    pq_out_avx2 (o += p_c v_c for 8 keys, mul then add)
 *   fma    the score loop with FMA (other bits), with and without the horizontal tree
 *   peak   ymm operations per ns of 12 independent chains (8 adds + 4 muls; 12 FMAs): what the
 *          core retires with no loads
 * (docs/performance.md, "Fifth pass": what the arithmetic costs by itself).
 *   OPENBLAS_NUM_THREADS=1 ./build/bench_pq_kernels ROWS      e.g. 64, 1024, 4096 */
#include "kernels.c"

#include <time.h>

#ifdef KERN_HAVE_AVX2
static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define FACC(x, rr) x = _mm256_fmadd_ps(qv, _mm256_loadu_ps((rr) + t), x)
/* pq_dot8rows with FMA; tree = 0 adds the 8 accumulators vertically instead of the hadd tree */
__attribute__((target("avx2,fma"))) static void dot8_fma(float *res, const float *qi, const float *kb, const int *L,
                                                         int HS, float scale, int tree) {
    const float *r[8];
    for (int u = 0; u < 8; u++) r[u] = kb + (size_t)L[u] * HS;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int t = 0; t < HS; t += 8) {
        __m256 qv = _mm256_loadu_ps(qi + t);
        FACC(a0, r[0]); FACC(a1, r[1]); FACC(a2, r[2]); FACC(a3, r[3]);
        FACC(a4, r[4]); FACC(a5, r[5]); FACC(a6, r[6]); FACC(a7, r[7]);
    }
    __m256 d;
    if (tree) {
        __m256 g1 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
        __m256 g2 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
        d = _mm256_add_ps(_mm256_permute2f128_ps(g1, g2, 0x20), _mm256_permute2f128_ps(g1, g2, 0x31));
    } else
        d = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                          _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    _mm256_storeu_ps(res, _mm256_mul_ps(d, _mm256_set1_ps(scale)));
}
#undef FACC

/* 12 independent chains in registers: mul/add (8 adds + 4 muls per round) or fma; ops per ns */
__attribute__((target("avx2,fma"))) static double peak_ops(int fma) {
    __m256 a0 = _mm256_set1_ps(1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
           a9 = a0, a10 = a0, a11 = a0;
    const __m256 m = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(0.0001f);
    const long   M = 50000000;
    double       t0 = cpu_now();
    if (fma)
        for (long i = 0; i < M; i++) {
            a0 = _mm256_fmadd_ps(a0, m, c), a1 = _mm256_fmadd_ps(a1, m, c), a2 = _mm256_fmadd_ps(a2, m, c);
            a3 = _mm256_fmadd_ps(a3, m, c), a4 = _mm256_fmadd_ps(a4, m, c), a5 = _mm256_fmadd_ps(a5, m, c);
            a6 = _mm256_fmadd_ps(a6, m, c), a7 = _mm256_fmadd_ps(a7, m, c), a8 = _mm256_fmadd_ps(a8, m, c);
            a9 = _mm256_fmadd_ps(a9, m, c), a10 = _mm256_fmadd_ps(a10, m, c), a11 = _mm256_fmadd_ps(a11, m, c);
        }
    else
        for (long i = 0; i < M; i++) {
            a0 = _mm256_add_ps(a0, c), a1 = _mm256_add_ps(a1, c), a2 = _mm256_add_ps(a2, c);
            a3 = _mm256_add_ps(a3, c), a4 = _mm256_add_ps(a4, c), a5 = _mm256_add_ps(a5, c);
            a6 = _mm256_add_ps(a6, c), a7 = _mm256_add_ps(a7, c), a8 = _mm256_mul_ps(a8, m);
            a9 = _mm256_mul_ps(a9, m), a10 = _mm256_mul_ps(a10, m), a11 = _mm256_mul_ps(a11, m);
        }
    double t = cpu_now() - t0;
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    if (out[0] == 12345.0f) puts(""); /* keeps the chains */
    return 12.0 * (double)M / (t * 1e9);
}

int main(int argc, char **argv) {
    int rows = argc > 1 ? atoi(argv[1]) : 0;
    if (rows < 8) {
        fprintf(stderr, "usage: bench_pq_kernels ROWS (>= 8)\n");
        return 1;
    }
    if (!kern_simd_active()) {
        fprintf(stderr, "bench_pq_kernels: this CPU has no AVX2\n");
        return 1;
    }
    enum { HS = 64, NL = 4096, N = 2000000 };
    float *K = malloc((size_t)rows * HS * sizeof(float)), q[HS], res[8], o[HS] = {0}, p[8];
    int   *L = malloc((size_t)8 * NL * sizeof(int)); /* NL lists of 8 keys, each sorted */
    if (!K || !L) return 3;
    for (size_t i = 0; i < (size_t)rows * HS; i++) K[i] = (float)(i % 7) * 0.01f;
    for (int i = 0; i < HS; i++) q[i] = 0.01f * (float)i;
    for (int i = 0; i < 8; i++) p[i] = 0.1f;
    uint32_t x = 1;
    for (int i = 0; i < 8 * NL; i++) x = x * 1103515245u + 12345u, L[i] = (int)((x >> 8) % (uint32_t)rows);
    for (int i = 0; i < 8 * NL; i += 8)
        for (int a = 1; a < 8; a++)
            for (int b = a; b > 0 && L[i + b - 1] > L[i + b]; b--) {
                int t = L[i + b];
                L[i + b] = L[i + b - 1], L[i + b - 1] = t;
            }
    float  sink = 0.0f;
    double t0 = cpu_now();
    for (int it = 0; it < N; it++) pq_dots8_avx2(res, 1, q, K, HS, L + (it & (NL - 1)) * 8, 8, HS, 0.125f), sink += res[3];
    double t1 = cpu_now();
    for (int it = 0; it < N; it++) pq_out_avx2(o, p, K, HS, L + (it & (NL - 1)) * 8, 0, 8, HS);
    double t2 = cpu_now();
    for (int it = 0; it < N; it++) dot8_fma(res, q, K, L + (it & (NL - 1)) * 8, HS, 0.125f, 1), sink += res[3];
    double t3 = cpu_now();
    for (int it = 0; it < N; it++) dot8_fma(res, q, K, L + (it & (NL - 1)) * 8, HS, 0.125f, 0), sink += res[3];
    double t4 = cpu_now();
    double k = 1e9 / (8.0 * N);
    printf("rows %d (%zu KB): score %.2f, out %.2f, score with FMA %.2f, FMA without the tree %.2f ns per key "
           "(checksum %g)\n", rows, (size_t)rows * HS * sizeof(float) / 1024, (t1 - t0) * k, (t2 - t1) * k,
           (t3 - t2) * k, (t4 - t3) * k, (double)(sink + o[5]));
    printf("peak: %.2f mul-or-add ymm operations per ns, %.2f FMA per ns\n", peak_ops(0), peak_ops(1));
    free(K);
    free(L);
    return 0;
}
#else
int main(void) {
    fprintf(stderr, "bench_pq_kernels: needs x86-64 with GCC or Clang (the AVX2 path)\n");
    return 1;
}
#endif
