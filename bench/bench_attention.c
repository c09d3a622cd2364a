/* bench_attention.c: the attention kernel alone, dense vs sampled pathways, 1 BLAS thread.
 *
 * kern_attention on random q, k, v (B = 1, NH = NKV = 8, HS = 64), causal and bidirectional,
 * T in {512, 1024, 2048}, schemes unbiased, local (sigma 4), random-k (lambda inf and 16) and
 * window at ratio rho in {1, 2, 4, 8}, against the dense kernel (cfg NULL) as the rho = 1
 * baseline (timed before and after each (causal, T) group, median of both). The time of a point
 * is the median over repetitions (at least --reps, and at least
 * --min-time seconds in all); each repetition is one kern_attention call over all 8 heads and
 * includes the pathway sampling (pw_draw runs inside kern_attention). Repetition r uses member
 * r, so every repetition times a fresh draw.
 *
 * Columns: ms = median time of one call; ratio = time / time(dense, same causal and T);
 * goal = 1.25 / rho, stated for T >= 1024 only (met? is "-" for T = 512); keys/q = mean kept
 * keys per query and kept% = kept / allowed connections, both from kern_pathways' kept / allowed
 * counters (so "ratio = work" can be read off); draw ms = the median time of the 8 pw_draw
 * calls of one repetition alone (the part of ms that is sampling).
 *
 *   bench_attention [--quick] [--cpu] [--portable] [--T N] [--scheme PREFIX] [--rho R] [--causal 0|1]
 *                   [--reps R] [--min-time S] [--no-dense]
 * --rho, --causal: only that rho and that causal flag (for profiling one point; the dense
 * baseline still runs, unless --no-dense: then no ratio, for a profile of the sampled point alone). --quick: T in {512, 1024}, 3 repetitions, 0.05 s per point. --T: that T only. --scheme: only the
 * schemes whose label starts with PREFIX (e.g. random-k, window; for profiling). --cpu: times are
 * this thread's CPU time (steadier on a shared machine). --portable: the portable C attention
 * path instead of the AVX2 one (kern_set_simd(0); the same results, for before/after ratios).
 */
#include <cblas.h>
#include <math.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "kernels.h"
#include "pathways.h"

#define NH 8
#define NKV 8
#define HS 64
#define MAX_REPS 1000

typedef struct {
    const char *label;
    pw_scheme   scheme;
    double      sigma, lambda;
} scheme_case;

static const scheme_case CASES[] = {
    {"unbiased", PW_SCHEME_UNBIASED, 0.0, INFINITY},
    {"local(s=4)", PW_SCHEME_LOCAL, 4.0, INFINITY},
    {"random-k(l=inf)", PW_SCHEME_RANDOM_K, 0.0, INFINITY},
    {"random-k(l=16)", PW_SCHEME_RANDOM_K, 0.0, 16.0},
    {"window", PW_SCHEME_WINDOW, 0.0, INFINITY},
};
#define N_CASES ((int)(sizeof CASES / sizeof CASES[0]))
static const double RHOS[] = {1, 2, 4, 8};
#define N_RHOS 4

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* --cpu: the calling thread's CPU time instead of wall time (1 BLAS thread: all of the work runs
 * on this thread). On a shared machine, other processes' time slices then do not count; cache and
 * memory-bandwidth contention still do. */
static int use_cpu_time = 0;
static double now(void) {
    struct timespec ts;
    clock_gettime(use_cpu_time ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* xorshift64* uniform in [-1, 1) */
static uint64_t rng_state = 0x853c49e6748fea9bULL;
static float frand(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t x = rng_state * 0x2545F4914F6CDD1DULL;
    return (float)((double)(x >> 11) * 0x1p-53 * 2.0 - 1.0);
}

typedef struct {
    float *out, *scratch, *gather, *q, *k, *v;
    int   *iscratch;
    pw_sample sample;
    int    T;
} bufs;

typedef struct {
    double ms, draw_ms, keys_per_q, kept_frac;
    int    reps;
    double t[MAX_REPS]; /* seconds per repetition */
} point;

/* one point: cfg NULL = dense */
static void run_point(point *pp, bufs *b, const pw_config *cfg, int causal, int min_reps, double min_time) {
    double  *t = pp->t, td[MAX_REPS], tm[MAX_REPS];
    int64_t kept[NH] = {0}, allowed[NH] = {0};
    int64_t seq_id = 7;
    kern_pathways kp = {.cfg = cfg, .sample = &b->sample, .member = 0, .layer = 0, .seq_ids = &seq_id,
                        .kept = kept, .allowed = allowed};
    double  total = 0.0;
    int     r = 0;
    /* one untimed warm-up call (page faults of the scratch, BLAS buffers) */
    kern_attention(b->out, b->scratch, b->gather, b->iscratch, b->q, b->k, b->v, NULL, 1, b->T, NH, NKV, HS, causal, &kp);
    memset(kept, 0, sizeof kept);
    memset(allowed, 0, sizeof allowed);
    while (r < MAX_REPS && (r < min_reps || total < min_time)) {
        kp.member = r + 1;
        double t0 = now();
        kern_attention(b->out, b->scratch, b->gather, b->iscratch, b->q, b->k, b->v, NULL, 1, b->T, NH, NKV, HS, causal,
                       &kp);
        t[r] = now() - t0;
        total += t[r];
        r++;
    }
    point p;
    memset(&p, 0, sizeof p);
    p.reps = r;
    memcpy(tm, t, (size_t)r * sizeof(double));
    p.ms = 1e3 * median(tm, r);
    int64_t k = 0, a = 0;
    for (int h = 0; h < NH; h++) {
        k += kept[h];
        a += allowed[h];
    }
    p.keys_per_q = (double)k / ((double)r * NH * b->T);
    p.kept_frac = a ? (double)k / (double)a : 0.0;
    /* the sampling alone: the NH draws of one call */
    if (cfg) {
        int nd = r < 5 ? 5 : r;
        if (nd > MAX_REPS) nd = MAX_REPS;
        for (int i = 0; i < nd; i++) {
            double t0 = now();
            for (int h = 0; h < NH; h++) pw_draw(&b->sample, cfg, i + 1, 0, h, seq_id, b->T, causal);
            td[i] = now() - t0;
        }
        p.draw_ms = 1e3 * median(td, nd);
    }
    memcpy(p.t, t, (size_t)r * sizeof(double));
    *pp = p;
}

static void cpu_model(char *buf, size_t n) {
    snprintf(buf, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ' || *c == '\t') c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, n, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

int main(int argc, char **argv) {
    int    Ts[3] = {512, 1024, 2048}, nT = 3;
    int    min_reps = 5;
    double min_time = 0.3;
    int    quick = 0, oneT = 0, set_reps = 0, set_time = 0, no_dense = 0;
    const char *only = NULL; /* --scheme: run only the schemes whose label starts with this */
    double      only_rho = 0; /* --rho: only this rho (0: all) */
    int         only_causal = -1; /* --causal: only this causal flag (-1: both) */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--cpu")) use_cpu_time = 1;
        else if (!strcmp(argv[i], "--portable")) kern_set_simd(0);
        else if (!strcmp(argv[i], "--no-dense")) no_dense = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--T")) oneT = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--reps")) min_reps = atoi(argv[++i]), set_reps = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--scheme")) only = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--rho")) only_rho = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--causal")) only_causal = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--min-time")) min_time = atof(argv[++i]), set_time = 1;
        else {
            fprintf(stderr, "usage: bench_attention [--quick] [--cpu] [--portable] [--T N] [--scheme PREFIX] [--rho R] "
                            "[--causal 0|1] [--reps R] [--min-time S] [--no-dense]\n");
            return 1;
        }
    }
    if (quick) { /* fewer and shorter points, unless --reps / --min-time say otherwise */
        nT = 2;
        if (!set_reps) min_reps = 3;
        if (!set_time) min_time = 0.05;
    }
    if (oneT > 0) {
        Ts[0] = oneT;
        nT = 1;
    }
    if (min_reps < 1) min_reps = 1;
    if (min_reps > MAX_REPS) min_reps = MAX_REPS;
    openblas_set_num_threads(1);

    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    printf("bench_attention: kern_attention, B=1 NH=%d NKV=%d HS=%d, %s, OpenBLAS %s, 1 thread\n", NH, NKV, HS, cpu,
           openblas_get_corename());
    printf("time = median of >= %d calls and >= %.2f s per point (%s); each call includes pw_draw for the %d heads\n",
           min_reps, min_time, use_cpu_time ? "thread CPU time" : "wall time", NH);
    printf("attention paths: %s\n", kern_simd_active() ? "AVX2" : "portable C");
    printf("goal: time(rho) / time(dense) <= 1.25 / rho for T >= 1024\n\n");

    int Tmax = 0;
    for (int i = 0; i < nT; i++) Tmax = Ts[i] > Tmax ? Ts[i] : Tmax;
    pe_err err = {0};
    bufs   b;
    size_t C = (size_t)NH * HS, KVC = (size_t)NKV * HS;
    b.q = pe_malloc((size_t)Tmax * C * sizeof(float), &err, "q");
    b.k = pe_malloc((size_t)Tmax * KVC * sizeof(float), &err, "k");
    b.v = pe_malloc((size_t)Tmax * KVC * sizeof(float), &err, "v");
    b.out = pe_malloc((size_t)Tmax * C * sizeof(float), &err, "out");
    b.scratch = pe_malloc((size_t)Tmax * Tmax * sizeof(float), &err, "scratch");
    b.gather = pe_malloc(2 * (size_t)Tmax * HS * sizeof(float), &err, "gather");
    b.iscratch = pe_malloc((size_t)Tmax * sizeof(int), &err, "iscratch");
    if (!b.q || !b.k || !b.v || !b.out || !b.scratch || !b.gather || !b.iscratch ||
        pw_sample_init(&b.sample, Tmax, &err)) {
        fprintf(stderr, "bench_attention: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < (size_t)Tmax * C; i++) b.q[i] = frand();
    for (size_t i = 0; i < (size_t)Tmax * KVC; i++) b.k[i] = frand();
    for (size_t i = 0; i < (size_t)Tmax * KVC; i++) b.v[i] = frand();

    /* summary[causal][T][case][rho] = ratio */
    static double summary[2][3][N_CASES][N_RHOS];
    static point  rows[N_CASES][N_RHOS];

    printf("| scheme | causal | T | rho | ms | draw ms | time/dense | goal 1.25/rho | met? | keys/q | kept%% |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    for (int ci = 0; ci < 2; ci++) {
        int causal = ci == 0 ? 1 : 0;
        if (only_causal >= 0 && causal != only_causal) continue;
        for (int ti = 0; ti < nT; ti++) {
            b.T = Ts[ti];
            /* the dense baseline is timed before and after the group's schemes; its time is the
             * median of both sets of repetitions (the VM's speed drifts over a group) */
            static point d, d2, p;
            static double pool[2 * MAX_REPS];
            if (!no_dense) run_point(&d, &b, NULL, causal, min_reps, min_time);
            for (int sc = 0; sc < N_CASES; sc++) {
                if (only && strncmp(CASES[sc].label, only, strlen(only))) continue;
                for (int ri = 0; ri < N_RHOS; ri++) {
                    if (only_rho > 0 && RHOS[ri] != only_rho) continue;
                    pw_config cfg = {0};
                    cfg.scheme = CASES[sc].scheme;
                    cfg.ratio = RHOS[ri];
                    cfg.sigma = CASES[sc].sigma;
                    cfg.lambda = CASES[sc].lambda;
                    cfg.keep = 0.0;
                    cfg.members = 1;
                    cfg.seed = 1234;
                    cfg.granularity = PW_GRAN_HEAD;
                    run_point(&p, &b, &cfg, causal, min_reps, min_time);
                    rows[sc][ri] = p;
                }
            }
            double dense_ms = NAN; /* --no-dense: every ratio NaN, "met?" NO */
            if (!no_dense) {
                run_point(&d2, &b, NULL, causal, min_reps, min_time);
                memcpy(pool, d.t, (size_t)d.reps * sizeof(double));
                memcpy(pool + d.reps, d2.t, (size_t)d2.reps * sizeof(double));
                dense_ms = 1e3 * median(pool, d.reps + d2.reps);
                printf("| dense | %d | %d | 1 | %.3f | - | 1.000 | 1.250 | - | %.1f | %.1f |\n", causal, b.T, dense_ms,
                       d.keys_per_q, 100.0 * d.kept_frac);
            }
            for (int sc = 0; sc < N_CASES; sc++)
                for (int ri = 0; ri < N_RHOS; ri++) {
                    if (only && strncmp(CASES[sc].label, only, strlen(only))) continue;
                    if (only_rho > 0 && RHOS[ri] != only_rho) continue;
                    const point *q = &rows[sc][ri];
                    double ratio = q->ms / dense_ms, goal = 1.25 / RHOS[ri];
                    summary[ci][ti][sc][ri] = ratio;
                    printf("| %s | %d | %d | %g | %.3f | %.3f | %.3f | %.3f | %s | %.1f | %.1f |\n", CASES[sc].label,
                           causal, b.T, RHOS[ri], q->ms, q->draw_ms, ratio, goal,
                           b.T < 1024 ? "-" : (ratio <= goal ? "yes" : "NO"), q->keys_per_q, 100.0 * q->kept_frac);
                }
            fflush(stdout);
        }
    }

    /* compact view: time/dense per scheme and rho, goal 1.25/rho (T >= 1024; * = missed) */
    printf("\nSummary: time(rho)/time(dense); '*' marks a miss of 1.25/rho at T >= 1024\n\n");
    printf("| scheme | causal | T | rho=1 | rho=2 | rho=4 | rho=8 |\n|---|---|---|---|---|---|---|\n");
    for (int ci = 0; ci < 2; ci++)
        for (int sc = 0; sc < N_CASES; sc++)
            for (int ti = 0; ti < nT; ti++) {
                if (only && strncmp(CASES[sc].label, only, strlen(only))) continue;
                if (only_causal >= 0 && (ci == 0) != (only_causal == 1)) continue;
                printf("| %s | %d | %d |", CASES[sc].label, ci == 0 ? 1 : 0, Ts[ti]);
                for (int ri = 0; ri < N_RHOS; ri++) {
                    double r = summary[ci][ti][sc][ri];
                    printf(" %.3f%s |", r, Ts[ti] >= 1024 && r > 1.25 / RHOS[ri] ? "*" : "");
                }
                printf("\n");
            }
    pw_sample_free(&b.sample);
    free(b.q);
    free(b.k);
    free(b.v);
    free(b.out);
    free(b.scratch);
    free(b.gather);
    free(b.iscratch);
    return 0;
}
