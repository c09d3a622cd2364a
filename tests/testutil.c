/* testutil.c: shared helpers for the cmocka tests. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PATHENS_DATA_DIR
#define PATHENS_DATA_DIR "../shared/data"
#endif
#ifndef PATHENS_TEST_TMP
#define PATHENS_TEST_TMP "/tmp/pathens-test"
#endif

const char *tu_data_path(const char *name) {
    static char buf[8][4096];
    static int slot = 0;
    char *p = buf[slot++ % 8];
    snprintf(p, 4096, "%s/%s", PATHENS_DATA_DIR, name);
    if (access(p, R_OK) != 0) {
        fprintf(stderr, "FATAL: test data %s is missing (%s).\n"
                        "The tests need the shared real data at %s (configure with -DPATHENS_DATA_DIR=...).\n",
                p, strerror(errno), PATHENS_DATA_DIR);
        exit(1); /* fail, never skip */
    }
    return p;
}

const char *tu_tmp_dir(const char *tag) {
    static char buf[4][4096];
    static int slot = 0;
    char *p = buf[slot++ % 4];
    mkdir(PATHENS_TEST_TMP, 0755);
    snprintf(p, 4096, "%s/%s", PATHENS_TEST_TMP, tag);
    mkdir(p, 0755);
    return p;
}

void tu_fill_random(float *x, size_t n, uint64_t seed, float scale) {
    uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        uint32_t r = (uint32_t)(s >> 40); /* 24 bits */
        x[i] = scale * (2.0f * ((float)r / 16777216.0f) - 1.0f);
    }
}

float tu_max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as "large" */
    }
    return m;
}
