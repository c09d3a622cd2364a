/* testutil.h: shared helpers for the cmocka tests. */
#pragma once
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* ---- real data: PATHENS_DATA_DIR (the checkout's data/, filled by tools/fetch-data.sh) and
 * PATHENS_FASHION_DIR (Debian's dataset-fashion-mnist). A test binary checks up front what each
 * test needs, so that no test stops half-way and every test that needs nothing runs:
 *
 *     int stories = tu_have_data("stories260K.bin", "tok512.bin", NULL);
 *     const struct CMUnitTest tests[] = {
 *         cmocka_unit_test(test_fixture_only),
 *         tu_needs(stories, cmocka_unit_test_setup_teardown(test_on_stories, setup, teardown)),
 *     };
 *     return tu_finish(cmocka_run_group_tests(tests, NULL, NULL));
 *
 * A test whose data is missing is reported SKIPPED by cmocka (its setup never runs), and tu_finish
 * makes the binary exit 77 (CTest: skipped) with one line naming tools/fetch-data.sh, unless a test
 * failed. Under CI=true missing data fails instead: such a test fails and the binary exits 1. */
/* 1 when every file (a NULL-terminated list) is readable under PATHENS_DATA_DIR; else 0, and the
 * missing names are remembered for tu_finish's line */
int tu_have_data(const char *name, ...);
/* the same for Fashion-MNIST: its test and train images and labels */
int tu_have_fashion(void);
/* tu_needs(have, cmocka_unit_test...(...)): the entry itself when have, else an entry of the same
 * name that skips (fails under CI=true) and runs no setup */
#define tu_needs(have, entry) tu_needs_entry((have), (struct CMUnitTest)entry)
struct CMUnitTest tu_needs_entry(int have, struct CMUnitTest t);
/* main's return value from cmocka's count of failed tests (see above) */
int tu_finish(int failed);
/* Path of a file under PATHENS_DATA_DIR. When it is missing (a test that did not declare it with
 * tu_needs), the running test is skipped there, or fails under CI=true; never call it from a setup
 * (cmocka counts a skipped setup as an error). */
const char *tu_data_path(const char *name);
/* A fresh scratch folder under the build tree for this test binary: PATHENS_TEST_TMP/<tag>. */
const char *tu_tmp_dir(const char *tag);
/* deterministic uniform floats in [-scale, scale) from a tiny LCG (tests only) */
void tu_fill_random(float *x, size_t n, uint64_t seed, float scale);
/* max |a-b| over n floats */
float tu_max_abs_diff(const float *a, const float *b, size_t n);

/* ---- tiny random native models (shared by test_ckpt and pathens_mkmodel; no cmocka calls) ---- */
#include "common.h"
#include "model.h"

typedef struct {
    int                n;
    model_tensor_spec *specs; /* (n) in model_list_tensors order */
    float            **data;  /* (n) arrays of tu_spec_numel(&specs[i]) floats */
} tu_tensors;

size_t tu_spec_numel(const model_tensor_spec *s);
/* Random weights for every tensor of model_list_tensors(c): norm weights 1 +- 0.1, biases +-0.1,
 * embeddings / positions / CLS token +-0.5, matrices [out, in] +-1/sqrt(in). Deterministic in seed. */
pe_status tu_random_tensors(tu_tensors *t, const model_config *c, uint64_t seed, pe_err *err);
void tu_free_tensors(tu_tensors *t);
/* index of the tensor called name, or -1 */
int tu_tensors_find(const tu_tensors *t, const char *name);
/* Write dir/config.json (ckpt_config_to_json(c)) and dir/model.safetensors (the n tensors of t,
 * F32, via ckpt_write_safetensors). dir is created if missing. */
pe_status tu_write_model_dir(const model_config *c, const char *dir, const tu_tensors *t, pe_err *err);
/* tu_random_tensors + tu_write_model_dir; prints the error to stderr on failure */
pe_status tu_write_random_model(const model_config *c, const char *dir, uint64_t seed);

/* ---- the real stories260K model on the first documents of tinystories_val.txt (cmocka asserts) -- */
#include "ckpt.h"
#include "dataset.h"
#include "model.h"
#include "tokenizer.h"

typedef struct {
    ckpt_file    ck;
    model        m;
    tokenizer    tok;
    text_dataset d;
} tu_stories;

/* documents mode, context 512, the first `docs` documents; declare its data with
 * tu_have_data(TU_STORIES_FILES, NULL) */
#define TU_STORIES_FILES "stories260K.bin", "tok512.bin", "tinystories_val.txt"
tu_stories *tu_stories_open(long docs);
/* The same without data: a random model shaped like stories260K but with 2 layers (llama: dim 64,
 * hidden 172, 8 heads, 4 KV heads, vocab 512, seq_len 512, tied classifier; native safetensors
 * under PATHENS_TEST_TMP/<tag>) and the byte tokenizer on `docs` generated paragraphs of 30 to 240
 * bytes (one sequence each), deterministic in seed. For tests that need "a language model on some
 * documents", not stories260K's numbers. */
tu_stories *tu_lm_fixture_open(const char *tag, long docs, uint64_t seed);
void        tu_stories_close(tu_stories *f);

