/* bench_draw.c: the cost of one head's random-k draw alone (pw_draw, src/pathways.c), without the
 * attention it feeds: REPS draws of an n-key head, thread CPU time, ns per kept key
 * (docs/performance.md, "Second pass": the sampler table).
 *   ./build/bench_draw N CAUSAL RHO REPS [LAMBDA]     e.g. ./build/bench_draw 1024 1 4 4 16
 * Before/after a sampler change: build this file against each version of pathways.c. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "pathways.h"

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: bench_draw N CAUSAL RHO REPS [LAMBDA (default 16)]\n");
        return 1;
    }
    int    n = atoi(argv[1]), causal = atoi(argv[2]), reps = atoi(argv[4]);
    double rho = atof(argv[3]);
    if (n < 1 || reps < 1 || !(rho >= 1)) {
        fprintf(stderr, "bench_draw: N >= 1, RHO >= 1, REPS >= 1\n");
        return 1;
    }
    pw_sample s; /* one head's kept-key lists, n queries */
    pe_err    err = {0};
    if (pw_sample_init(&s, n, &err)) {
        fprintf(stderr, "bench_draw: %s\n", err.msg);
        return 3;
    }
    pw_config c = {0};
    c.scheme  = PW_SCHEME_RANDOM_K;
    c.ratio   = rho;
    c.lambda  = argc > 5 ? atof(argv[5]) : 16;
    c.members = 1;
    c.seed    = 1234;
    struct timespec a, b;
    long            keys = 0;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    for (int r = 0; r < reps; r++) {
        pw_draw(&s, &c, r, 0, r % 8, 7, n, causal);
        keys += s.key_start[n];
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    double t = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    printf("n=%d causal=%d rho=%g lambda=%g: %.3f ms per draw, %.1f ns per kept key\n", n, causal, rho, c.lambda,
           1e3 * t / reps, 1e9 * t / (double)keys);
    pw_sample_free(&s);
    return 0;
}
