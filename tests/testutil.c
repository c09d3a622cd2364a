/* testutil.c: shared helpers for the cmocka tests. */
#include "testutil.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PATHENS_DATA_DIR
#define PATHENS_DATA_DIR "data"
#endif
#ifndef PATHENS_FASHION_DIR
#define PATHENS_FASHION_DIR "/usr/share/datasets/fashion-mnist"
#endif
#ifndef PATHENS_TEST_TMP
#define PATHENS_TEST_TMP "/tmp/pathens-test"
#endif

/* ---- real data ------------------------------------------------------------------------------ */
static char tu_missing[1024]; /* the missing files, for tu_finish's line */
static int  tu_missing_fashion;

static int tu_ci(void) {
    const char *ci = getenv("CI");
    return ci && strcmp(ci, "true") == 0;
}

static void tu_note_missing(const char *name) {
    char item[300];
    snprintf(item, sizeof item, "data/%s", name);
    if (strstr(tu_missing, item)) return;
    size_t n = strlen(tu_missing);
    snprintf(tu_missing + n, sizeof tu_missing - n, "%s%s", n ? ", " : "", item);
}

int tu_have_data(const char *name, ...) {
    int     have = 1;
    va_list ap;
    va_start(ap, name);
    for (const char *f = name; f; f = va_arg(ap, const char *)) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", PATHENS_DATA_DIR, f);
        if (access(p, R_OK) != 0) {
            tu_note_missing(f);
            have = 0;
        }
    }
    va_end(ap);
    return have;
}

int tu_have_fashion(void) {
    static const char *files[] = {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                                  "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", PATHENS_FASHION_DIR, files[i]);
        if (access(p, R_OK) != 0) {
            tu_missing_fashion = 1;
            return 0;
        }
    }
    return 1;
}

/* "data/a, data/b; run tools/fetch-data.sh to fill data/" (and Fashion-MNIST's fix) */
static const char *tu_missing_line(void) {
    static char line[2048];
    int fashion = tu_missing_fashion, data = tu_missing[0] != 0;
    snprintf(line, sizeof line, "%s%s%s; %s%s%s", tu_missing, data && fashion ? ", " : "",
             fashion ? "Fashion-MNIST under " PATHENS_FASHION_DIR : "", data ? "run tools/fetch-data.sh to fill data/" : "",
             data && fashion ? "; " : "", fashion ? "install dataset-fashion-mnist (tools/deps.sh)" : "");
    return line;
}

static int tu_skipped; /* tests skipped for missing data */

static void tu_missing_data_test(void **state) {
    (void)state;
    tu_skipped++;
    if (tu_ci()) fail_msg("data is missing under CI=true: %s", tu_missing_line());
    skip();
}

struct CMUnitTest tu_needs_entry(int have, struct CMUnitTest t) {
    if (!have) {
        t.test_func     = tu_missing_data_test;
        t.setup_func    = NULL;
        t.teardown_func = NULL;
    }
    return t;
}

int tu_finish(int failed) {
    if (!tu_missing[0] && !tu_missing_fashion) return failed ? 1 : 0;
    if (tu_ci()) {
        printf("FAIL: data is missing under CI=true: %s\n", tu_missing_line());
        return 1;
    }
    if (failed) {
        printf("FAIL (and %d test(s) skipped for missing data: %s)\n", tu_skipped, tu_missing_line());
        return 1;
    }
    printf("SKIP: %d test(s) skipped for missing data (any others ran and passed): %s\n", tu_skipped, tu_missing_line());
    return 77;
}

const char *tu_data_path(const char *name) {
    static char buf[8][4096];
    static int slot = 0;
    char *p = buf[slot++ % 8];
    snprintf(p, 4096, "%s/%s", PATHENS_DATA_DIR, name);
    if (access(p, R_OK) != 0) {
        tu_note_missing(name);
        if (tu_ci()) fail_msg("test data %s is missing under CI=true (%s): run tools/fetch-data.sh", p, strerror(errno));
        fprintf(stderr, "test data %s is missing (%s): run tools/fetch-data.sh to fill data/\n", p, strerror(errno));
        tu_skipped++;
        skip(); /* inside a test: skipped here; outside one cmocka exits */
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

/* ---- tiny random native models ----------------------------------------------------------- */
#include "ckpt.h"

size_t tu_spec_numel(const model_tensor_spec *s) {
    return (size_t)s->shape[0] * (s->ndim > 1 ? (size_t)s->shape[1] : 1);
}

static int tu_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

pe_status tu_random_tensors(tu_tensors *t, const model_config *c, uint64_t seed, pe_err *err) {
    memset(t, 0, sizeof *t);
    int n = model_list_tensors(c, NULL, 0);
    t->specs = pe_calloc((size_t)n, sizeof *t->specs, err, "tensor specs");
    t->data  = pe_calloc((size_t)n, sizeof *t->data, err, "tensor pointers");
    if (!t->specs || !t->data) {
        tu_free_tensors(t);
        return PE_ERR_INTERNAL;
    }
    t->n = model_list_tensors(c, t->specs, n);
    for (int i = 0; i < t->n; i++) {
        const model_tensor_spec *s = &t->specs[i];
        size_t numel = tu_spec_numel(s);
        t->data[i] = pe_malloc(numel * sizeof(float), err, s->name);
        if (!t->data[i]) {
            tu_free_tensors(t);
            return PE_ERR_INTERNAL;
        }
        uint64_t ts = seed * 1000003ULL + (uint64_t)i * 7919ULL + 17ULL;
        if (tu_ends_with(s->name, "norm.weight")) {
            tu_fill_random(t->data[i], numel, ts, 0.1f);
            for (size_t k = 0; k < numel; k++) t->data[i][k] += 1.0f;
        } else if (tu_ends_with(s->name, ".bias")) {
            tu_fill_random(t->data[i], numel, ts, 0.1f);
        } else if (!strcmp(s->name, "tok_emb.weight") || !strcmp(s->name, "pos_emb.weight") ||
                   !strcmp(s->name, "cls_token")) {
            tu_fill_random(t->data[i], numel, ts, 0.5f);
        } else {
            float in = s->ndim > 1 ? (float)s->shape[1] : 1.0f;
            tu_fill_random(t->data[i], numel, ts, 1.0f / sqrtf(in));
        }
    }
    return PE_OK;
}

void tu_free_tensors(tu_tensors *t) {
    if (t->data)
        for (int i = 0; i < t->n; i++) free(t->data[i]);
    free(t->data);
    free(t->specs);
    memset(t, 0, sizeof *t);
}

int tu_tensors_find(const tu_tensors *t, const char *name) {
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->specs[i].name, name)) return i;
    return -1;
}

pe_status tu_write_model_dir(const model_config *c, const char *dir, const tu_tensors *t, pe_err *err) {
    pe_status st = pe_mkdir_p(dir, err);
    if (st) return st;
    char path[4096];
    char *json = ckpt_config_to_json(c);
    if (!json) return pe_fail(err, PE_ERR_INTERNAL, "out of memory for config.json");
    snprintf(path, sizeof path, "%s/config.json", dir);
    st = pe_write_file_atomic(path, json, strlen(json), err);
    free(json);
    if (st) return st;
    const char **names  = pe_calloc((size_t)t->n + 1, sizeof *names, err, "names");
    int         *ndims  = pe_calloc((size_t)t->n + 1, sizeof *ndims, err, "ndims");
    int64_t    (*shapes)[4] = pe_calloc((size_t)t->n + 1, sizeof *shapes, err, "shapes");
    if (!names || !ndims || !shapes) st = PE_ERR_INTERNAL;
    for (int i = 0; !st && i < t->n; i++) {
        names[i] = t->specs[i].name;
        ndims[i] = t->specs[i].ndim;
        shapes[i][0] = t->specs[i].shape[0];
        shapes[i][1] = t->specs[i].shape[1];
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!st)
        st = ckpt_write_safetensors(path, t->n, names, ndims, (const int64_t (*)[4])shapes,
                                    (const float *const *)t->data, err);
    free(names);
    free(ndims);
    free(shapes);
    return st;
}

pe_status tu_write_random_model(const model_config *c, const char *dir, uint64_t seed) {
    pe_err     err = {0};
    tu_tensors t;
    pe_status  st = tu_random_tensors(&t, c, seed, &err);
    if (!st) st = tu_write_model_dir(c, dir, &t, &err);
    tu_free_tensors(&t);
    if (st) fprintf(stderr, "tu_write_random_model(%s): %s\n", dir, err.msg);
    return st;
}

tu_stories *tu_stories_open(long docs) {
    tu_stories *f = calloc(1, sizeof *f);
    pe_err      err = {0};
    assert_non_null(f);
    assert_int_equal(ckpt_open(&f->ck, tu_data_path("stories260K.bin"), "auto", NULL, &err), PE_OK);
    assert_int_equal(model_init(&f->m, &f->ck, &err), PE_OK);
    assert_int_equal(tok_init_llama2c(&f->tok, tu_data_path("tok512.bin"), 512, &err), PE_OK);
    assert_int_equal(data_load_text(&f->d, tu_data_path("tinystories_val.txt"), &f->tok, DATA_MODE_DOCUMENTS, 512, 512,
                                    docs, &err), PE_OK);
    return f;
}

tu_stories *tu_lm_fixture_open(const char *tag, long docs, uint64_t seed) {
    model_config c;
    memset(&c, 0, sizeof c);
    c.dim = 64, c.hidden_dim = 172, c.n_layers = 2, c.n_heads = 8, c.n_kv_heads = 4, c.vocab_size = 512;
    c.seq_len = 512, c.norm = MODEL_NORM_RMSNORM, c.norm_eps = 1e-5f, c.pos = MODEL_POS_ROPE;
    c.rope_theta = 10000.0f, c.mlp = MODEL_MLP_SWIGLU, c.causal = 1, c.bias = 0, c.head = MODEL_HEAD_LM_TIED;
    c.input = MODEL_INPUT_TOKENS, c.pixel_std = 1.0f, c.channels = 1;
    const char *dir = tu_tmp_dir(tag);
    assert_int_equal(tu_write_random_model(&c, dir, seed), PE_OK);
    /* paragraphs of words drawn by an LCG, blank-line separated, each 30..240 bytes */
    static const char *words[] = {"the", "a", "little", "girl", "boy", "dog", "cat", "sun", "tree", "ball",
                                  "ran", "saw", "was", "happy", "big", "red", "and", "to", "play", "park",
                                  "Lily", "Tom", "mom", "said", "friend", "home", "day", "jumped", "very", "fun"};
    const int nw = (int)(sizeof words / sizeof words[0]);
    char path[4096];
    snprintf(path, sizeof path, "%s/text.txt", dir);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    uint64_t r = seed * 6364136223846793005ULL + 99991ULL;
#define TU_NEXT() (r = r * 6364136223846793005ULL + 1442695040888963407ULL, (int)(r >> 33))
    for (long d = 0; d < docs; d++) {
        int target = 30 + TU_NEXT() % 211, len = 0;
        char para[512];
        para[0] = 0;
        while (1) {
            const char *w = words[TU_NEXT() % nw];
            int         wl = (int)strlen(w);
            if (len + wl + 2 > target) break;
            len += snprintf(para + len, sizeof para - (size_t)len, "%s%s", len ? " " : "", w);
        }
        if (len == 0) len = snprintf(para, sizeof para, "%s", words[0]);
        fprintf(out, "%s.\n\n", para);
    }
#undef TU_NEXT
    assert_int_equal(fclose(out), 0);
    tu_stories *f = calloc(1, sizeof *f);
    pe_err      err = {0};
    char        mpath[4096];
    assert_non_null(f);
    snprintf(mpath, sizeof mpath, "%s/model.safetensors", dir);
    assert_int_equal(ckpt_open(&f->ck, mpath, "auto", NULL, &err), PE_OK);
    assert_int_equal(model_init(&f->m, &f->ck, &err), PE_OK);
    tok_init_bytes(&f->tok);
    assert_int_equal(data_load_text(&f->d, path, &f->tok, DATA_MODE_DOCUMENTS, 512, 512, docs, &err), PE_OK);
    assert_int_equal(f->d.n_seqs, (int)docs);
    return f;
}

void tu_stories_close(tu_stories *f) {
    data_free_text(&f->d);
    tok_free(&f->tok);
    model_free(&f->m);
    ckpt_close(&f->ck);
    free(f);
}
