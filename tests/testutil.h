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

/* documents mode, context 512, the first `docs` documents; fails the test if anything is missing */
tu_stories *tu_stories_open(long docs);
void        tu_stories_close(tu_stories *f);

