/* test_eval.c: dense evaluation equals llama2.c's own forward pass (the token-by-token KV-cache
 * loop, checked against llama2.c's golden logits in test_golden) and never depends on the batch
 * size; accumulators merge exactly. On a generated model and documents (no data needed), then on
 * the real stories260K and TinyStories when data/ has them. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "dataset.h"
#include "ensemble.h"
#include "eval.h"
#include "model.h"
#include "tokenizer.h"

typedef tu_stories fixture;

static int setup(void **state) {
    *state = tu_stories_open(120);
    return 0;
}

static int setup_generated(void **state) {
    *state = tu_lm_fixture_open("eval_lm", 40, 3);
    return 0;
}

static int teardown(void **state) {
    if (*state) tu_stories_close(*state);
    return 0;
}

/* the dense result of the product's evaluation path (no members, no statistics) at a batch size */
static eval_lm_acc dense_at(fixture *f, int batch) {
    pe_err        err = {0};
    ens_options   o = {ENS_COMBINE_PROB, batch, 0, 0, 0, 0};
    ens_lm_result r;
    assert_int_equal(ens_eval_text(&r, &f->m, &f->d, NULL, &o, &err), PE_OK);
    eval_lm_acc acc = r.dense;
    ens_free_lm(&r);
    return acc;
}

static void test_eval_matches_token_by_token(void **state) {
    fixture *f = *state;
    pe_err   err = {0};
    eval_lm_acc acc = dense_at(f, 16);
    model_seq_state s;
    assert_int_equal(model_seq_init(&s, &f->m, &err), PE_OK);
    float  *logits = malloc(512 * sizeof(float));
    double  sum = 0.0;
    int64_t n = 0;
    for (int q = 0; q < f->d.n_seqs; q++) {
        const text_seq *sq = &f->d.seqs[q];
        for (int p = 0; p < sq->len - 1; p++) {
            model_forward_token_seq(logits, &s, &f->m, f->d.tokens[sq->start + p], p);
            sum += eval_nll_of(logits, 512, f->d.tokens[sq->start + p + 1]);
            n++;
        }
    }
    printf("  batched NLL %.9f, token-by-token NLL %.9f over %lld tokens\n", eval_lm_nll(&acc), sum / n, (long long)n);
    assert_int_equal(acc.tokens, n);
    assert_int_equal(acc.tokens, f->d.n_scored);
    assert_int_equal(acc.bytes, f->d.n_scored_bytes);
    assert_true(fabs(eval_lm_nll(&acc) - sum / n) < 1e-6);
    free(logits);
    model_seq_free(&s);
}

static void test_eval_batch_invariance(void **state) {
    fixture *f = *state;
    eval_lm_acc a1 = dense_at(f, 1), a5 = dense_at(f, 5), a32 = dense_at(f, 32);
    assert_memory_equal(&a1, &a5, sizeof a1); /* bit for bit */
    assert_memory_equal(&a1, &a32, sizeof a1);
}

static void test_eval_merge(void **state) {
    (void)state;
    eval_lm_acc all = {0}, x = {0}, y = {0};
    double nll[5] = {3.5, 1.25, 7.0, 2.0, 0.5};
    int64_t tok[5] = {4, 2, 9, 3, 1}, by[5] = {10, 5, 20, 7, 2};
    for (int i = 0; i < 5; i++) {
        eval_lm_add_unit(&all, nll[i], tok[i], by[i]);
        eval_lm_add_unit(i < 2 ? &x : &y, nll[i], tok[i], by[i]);
    }
    eval_lm_merge(&x, &y);
    assert_memory_equal(&x, &all, sizeof all); /* exact: these sums are representable */
    /* stderr of a ratio with units as samples, against the formula written out */
    double r = 14.25 / 19.0, ss = 0.0;
    for (int i = 0; i < 5; i++) ss += (nll[i] - r * tok[i]) * (nll[i] - r * tok[i]);
    assert_true(fabs(eval_lm_nll_stderr(&all) - sqrt(5.0 / 4.0 * ss) / 19.0) < 1e-12);
    eval_lm_acc one = {0};
    eval_lm_add_unit(&one, 1.0, 3, 3);
    assert_true(isnan(eval_lm_nll_stderr(&one)));
}

int main(void) {
    const struct CMUnitTest generated[] = {
        cmocka_unit_test(test_eval_matches_token_by_token),
        cmocka_unit_test(test_eval_batch_invariance),
        cmocka_unit_test(test_eval_merge),
    };
    int stories = tu_have_data(TU_STORIES_FILES, NULL);
    const struct CMUnitTest real[] = {
        tu_needs(stories, cmocka_unit_test(test_eval_matches_token_by_token)),
        tu_needs(stories, cmocka_unit_test(test_eval_batch_invariance)),
    };
    int failed = cmocka_run_group_tests_name("generated model", generated, setup_generated, teardown);
    failed += cmocka_run_group_tests_name("stories260K", real, stories ? setup : NULL, stories ? teardown : NULL);
    return tu_finish(failed);
}
