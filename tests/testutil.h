/* testutil.h: shared helpers for the cmocka tests. */
#pragma once
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Path of a file in the shared real-data folder. Fails the test (never skips) when the
 * folder or file is missing: CI must have ../shared/data. */
const char *tu_data_path(const char *name);
/* A fresh scratch folder under the build tree for this test binary: PATHENS_TEST_TMP/<tag>. */
const char *tu_tmp_dir(const char *tag);
/* deterministic uniform floats in [-scale, scale) from a tiny LCG (tests only) */
void tu_fill_random(float *x, size_t n, uint64_t seed, float scale);
/* max |a-b| over n floats */
float tu_max_abs_diff(const float *a, const float *b, size_t n);
