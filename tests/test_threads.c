/* test_threads.c: the threaded forward (pe_threads_set, src/common.h) gives the same bits for
 * any thread count. A random llama-style model (RMSNorm, RoPE, SwiGLU, GQA) and a
 * GPT-style one (LayerNorm + biases, learned positions, GELU) over 5 sequences of lengths 400,
 * 193, 17, 250, 384 (more than one 192-row projection task, MODEL_MATMUL_ROWS, and fewer):
 * hidden states, logits, kept / allowed connection counts and the per-(sequence, head) importance
 * statistics are bit-identical for 1, 2, 3 and 5 threads, dense and for unbiased and random-k
 * members. Without OpenMP pe_threads_set clamps to 1 and the test checks that instead. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "importance.h"
#include "model.h"

#define TB 5
#define TT 400
static const int LENS[TB] = {400, 193, 17, 250, 384};

typedef struct { /* one forward's outputs */
    float   *hidden; /* (TB, TT, C) */
    float   *logits; /* (TB, TT, V) */
    int64_t *kept, *allowed;                /* (L, NH) */
    int64_t *kept_bh, *band_kept;           /* (L, TB, NH), (L, TB, NH, NB) */
    double  *att_stats;                     /* (L, TB, NH, 3 + NB) */
} fwd_out;

static void fwd_run(fwd_out *o, const model *m, const int *tok, const pw_config *pc, int threads) {
    const model_config *c = &m->cfg;
    int L = c->n_layers, NH = c->n_heads, NB = imp_n_bands(TT), C = c->dim, V = c->vocab_size;
    assert_int_equal(pe_threads_set(threads), threads <= pe_threads_max() ? threads : 1);
    o->hidden    = calloc((size_t)TB * TT * C, sizeof(float));
    o->logits    = calloc((size_t)TB * TT * V, sizeof(float));
    o->kept      = calloc((size_t)L * NH, sizeof(int64_t));
    o->allowed   = calloc((size_t)L * NH, sizeof(int64_t));
    o->kept_bh   = calloc((size_t)L * TB * NH, sizeof(int64_t));
    o->band_kept = calloc((size_t)L * TB * NH * NB, sizeof(int64_t));
    o->att_stats = calloc((size_t)L * TB * NH * (3 + NB), sizeof(double));
    assert_true(o->hidden && o->logits && o->kept && o->allowed && o->kept_bh && o->band_kept && o->att_stats);
    int64_t ids[TB] = {11, 5, 7, 1000003, 2};
    int     srows[TB];
    for (int b = 0; b < TB; b++) srows[b] = LENS[b] - 1;
    model_pathways pw = {.cfg = pc, .member = 2, .seq_ids = ids, .kept = o->kept, .allowed = o->allowed, .n_bands = NB,
                         .kept_bh = o->kept_bh, .band_kept = o->band_kept, .att_stats = o->att_stats, .stat_rows = srows};
    model_acts a;
    pe_err     err = {0};
    assert_int_equal(model_acts_init(&a, m, TB, TT, &err), PE_OK);
    assert_int_equal(model_forward_hidden_pw(o->hidden, &a, m, tok, LENS, TB, TT, &pw, 0, &err), PE_OK);
    assert_int_equal(model_forward_tokens_pw(o->logits, &a, m, tok, LENS, TB, TT, &pw, 0, &err), PE_OK);
    model_acts_free(&a);
    pe_threads_set(1);
}

static void fwd_free(fwd_out *o) {
    free(o->hidden); free(o->logits); free(o->kept); free(o->allowed); free(o->kept_bh); free(o->band_kept);
    free(o->att_stats);
}

/* every valid row and every statistic of b equal to a's, bit for bit */
static void fwd_same(const fwd_out *a, const fwd_out *b, const model *m, const char *what, int threads) {
    const model_config *c = &m->cfg;
    int L = c->n_layers, NH = c->n_heads, NB = imp_n_bands(TT), C = c->dim, V = c->vocab_size;
    for (int s = 0; s < TB; s++) {
        if (memcmp(a->hidden + (size_t)s * TT * C, b->hidden + (size_t)s * TT * C, (size_t)LENS[s] * C * sizeof(float)))
            fail_msg("%s: %d threads: hidden states of sequence %d differ from 1 thread", what, threads, s);
        if (memcmp(a->logits + (size_t)s * TT * V, b->logits + (size_t)s * TT * V, (size_t)LENS[s] * V * sizeof(float)))
            fail_msg("%s: %d threads: logits of sequence %d differ from 1 thread", what, threads, s);
    }
    size_t LH = (size_t)L * NH, LBH = LH * TB;
    if (memcmp(a->kept, b->kept, LH * 8) || memcmp(a->allowed, b->allowed, LH * 8))
        fail_msg("%s: %d threads: kept / allowed connection counts differ", what, threads);
    if (memcmp(a->kept_bh, b->kept_bh, LBH * 8) || memcmp(a->band_kept, b->band_kept, LBH * NB * 8))
        fail_msg("%s: %d threads: per-(sequence, head) kept counts differ", what, threads);
    if (memcmp(a->att_stats, b->att_stats, LBH * (3 + NB) * sizeof(double)))
        fail_msg("%s: %d threads: attention statistics differ", what, threads);
}

static void check_model(model_config *c, const char *tag) {
    const char *dir = tu_tmp_dir(tag);
    assert_int_equal(tu_write_random_model(c, dir, 17), 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    pe_err    err = {0};
    ckpt_file ck;
    model     m;
    if (ckpt_open(&ck, path, "auto", NULL, &err) || model_init(&m, &ck, &err)) fail_msg("%s: %s", tag, err.msg);
    int *tok = calloc((size_t)TB * TT, sizeof(int));
    assert_non_null(tok);
    for (int i = 0; i < TB * TT; i++) tok[i] = (int)((i * 2654435761u) >> 7) % c->vocab_size;
    pw_config unb = {.scheme = PW_SCHEME_UNBIASED, .ratio = 3.0, .sigma = 3.0, .lambda = INFINITY, .members = 4, .seed = 5};
    pw_config rk  = {.scheme = PW_SCHEME_RANDOM_K, .ratio = 4.0, .sigma = 3.0, .lambda = 8.0, .members = 4, .seed = 5};
    const pw_config *cfgs[3]  = {NULL, &unb, &rk};
    const char      *names[3] = {"dense", "unbiased", "random-k"};
    static const int threads[] = {2, 3, 5};
    for (int ci = 0; ci < 3; ci++) {
        fwd_out one;
        fwd_run(&one, &m, tok, cfgs[ci], 1);
        int64_t kept = 0;
        for (int i = 0; i < c->n_layers * c->n_heads; i++) kept += one.kept[i];
        if (cfgs[ci]) assert_true(kept > 0); /* the statistics were collected: the comparison means something */
        for (size_t ti = 0; ti < sizeof threads / sizeof threads[0]; ti++) {
            fwd_out more;
            fwd_run(&more, &m, tok, cfgs[ci], threads[ti]);
            char what[128];
            snprintf(what, sizeof what, "%s, %s", tag, names[ci]);
            fwd_same(&one, &more, &m, what, threads[ti]);
            fwd_free(&more);
        }
        fwd_free(&one);
    }
    free(tok);
    model_free(&m);
    ckpt_close(&ck);
}

static void test_llama_threads(void **state) {
    (void)state;
    model_config c = {0};
    c.dim = 32; c.hidden_dim = 72; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2; c.vocab_size = 97; c.seq_len = TT;
    c.norm = MODEL_NORM_RMSNORM; c.norm_eps = 1e-5f; c.pos = MODEL_POS_ROPE; c.rope_theta = 10000.0f;
    c.mlp = MODEL_MLP_SWIGLU; c.causal = 1; c.head = MODEL_HEAD_LM; c.input = MODEL_INPUT_TOKENS;
    check_model(&c, "threads_llama");
}

static void test_gpt_threads(void **state) {
    (void)state;
    model_config c = {0};
    c.dim = 24; c.hidden_dim = 96; c.n_layers = 2; c.n_heads = 3; c.n_kv_heads = 3; c.vocab_size = 131; c.seq_len = TT;
    c.norm = MODEL_NORM_LAYERNORM; c.norm_eps = 1e-5f; c.pos = MODEL_POS_LEARNED; c.mlp = MODEL_MLP_GELU;
    c.causal = 1; c.bias = 1; c.head = MODEL_HEAD_LM_TIED; c.input = MODEL_INPUT_TOKENS;
    check_model(&c, "threads_gpt");
}

static void test_threads_clamp(void **state) {
    (void)state;
    assert_int_equal(pe_threads_set(0), 1);
    assert_int_equal(pe_threads_set(-3), 1);
    assert_int_equal(pe_threads_set(PE_THREADS_MAX + 5), pe_threads_max());
    assert_int_equal(pe_threads_get(), pe_threads_max());
    pe_threads_set(1);
    assert_int_equal(pe_threads_get(), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_clamp),
        cmocka_unit_test(test_llama_threads),
        cmocka_unit_test(test_gpt_threads),
    };
    return tu_finish(cmocka_run_group_tests(tests, NULL, NULL));
}
