/* test_golden.c: stories260K against logits computed by llama2.c's own run.c
 * (data/golden/stories260K_lily.txt; filled by tools/fetch-data.sh): same tokens, every logit within 1e-4,
 * mean NLL within 1e-5; for the v0 and v1 files, the batched path, the naive reference path
 * and the token-by-token loop. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "model.h"
#include "tokenizer.h"

#define GOLD_MAX_T 64
#define GOLD_V 512

typedef struct {
    int    n_tokens;
    int    tokens[GOLD_MAX_T];
    float  logits[GOLD_MAX_T][GOLD_V]; /* (n_tokens - 1, V): positions 0 .. n-2 */
    double mean_nll;
    char   text[256];
} golden;

static void golden_load(golden *g) {
    FILE *f = fopen(tu_data_path("golden/stories260K_lily.txt"), "r");
    assert_non_null(f);
    char  *line = NULL;
    size_t cap  = 0;
    int    npos = 0;
    memset(g, 0, sizeof *g);
    while (getline(&line, &cap, f) > 0) {
        if (!strncmp(line, "# text: ", 8)) {
            snprintf(g->text, sizeof g->text, "%s", line + 8);
            g->text[strcspn(g->text, "\n")] = 0;
        } else if (!strncmp(line, "tokens ", 7)) {
            char *p = line + 7, *e;
            while ((g->tokens[g->n_tokens] = (int)strtol(p, &e, 10)), e != p) {
                g->n_tokens++;
                p = e;
            }
        } else if (!strncmp(line, "pos ", 4)) {
            int pos, target;
            double lp;
            int used = 0;
            assert_int_equal(sscanf(line, "pos %d target %d logprob %lf logits%n", &pos, &target, &lp, &used), 3);
            assert_int_equal(pos, npos);
            char *p = line + used, *e;
            for (int v = 0; v < GOLD_V; v++) {
                g->logits[pos][v] = strtof(p, &e);
                assert_true(e != p);
                p = e;
            }
            npos++;
        } else if (!strncmp(line, "# mean_nll_nats_per_token ", 26)) {
            g->mean_nll = atof(line + 26);
        }
    }
    free(line);
    fclose(f);
    assert_int_equal(g->n_tokens, 16);
    assert_int_equal(npos, g->n_tokens - 1);
}

static double nll_from_logits(const float *logits, int V, int target) {
    double mx = logits[0];
    for (int v = 1; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
    double s = 0.0;
    for (int v = 0; v < V; v++) s += exp(logits[v] - mx);
    return -(logits[target] - mx - log(s));
}

static void check_against_golden(const golden *g, const float *logits /* (T, V) */, const char *what) {
    double nll = 0.0, maxd = 0.0;
    for (int p = 0; p < g->n_tokens - 1; p++) {
        for (int v = 0; v < GOLD_V; v++) {
            double d = fabs((double)logits[(size_t)p * GOLD_V + v] - g->logits[p][v]);
            if (d > maxd) maxd = d;
        }
        nll += nll_from_logits(logits + (size_t)p * GOLD_V, GOLD_V, g->tokens[p + 1]);
    }
    nll /= (g->n_tokens - 1);
    printf("  %-28s max |logit - golden| = %.3g, mean NLL %.7f (golden %.7f)\n", what, maxd, nll, g->mean_nll);
    assert_true(maxd <= 1e-4);
    assert_true(fabs(nll - g->mean_nll) <= 1e-5);
}

static void run_model_file(const char *file) {
    golden *g = malloc(sizeof *g);
    golden_load(g);
    pe_err    err = {0};
    ckpt_file ck;
    model     m;
    assert_int_equal(ckpt_open(&ck, tu_data_path(file), "auto", NULL, &err), PE_OK);
    assert_int_equal(model_init(&m, &ck, &err), PE_OK);
    assert_int_equal(m.n_params, 260032 + (m.cfg.head == MODEL_HEAD_LM ? 512 * 64 : 0));

    /* tokens: our encoder must give llama2.c's ids */
    tokenizer tok;
    assert_int_equal(tok_init_llama2c(&tok, tu_data_path("tok512.bin"), m.cfg.vocab_size, &err), PE_OK);
    int *ids = NULL, n = 0;
    assert_int_equal(tok_encode(&tok, g->text, strlen(g->text), 1, 0, &ids, &n, &err), PE_OK);
    assert_int_equal(n, g->n_tokens);
    assert_memory_equal(ids, g->tokens, (size_t)n * sizeof(int));

    int    T = n, V = m.cfg.vocab_size;
    float *logits = malloc((size_t)2 * T * V * sizeof(float));
    /* batched: the sequence twice in one batch, the second copy shorter (padding must not leak) */
    int toks2[2 * GOLD_MAX_T], lens[2] = {T, T - 3};
    memcpy(toks2, ids, (size_t)T * sizeof(int));
    memcpy(toks2 + T, ids, (size_t)T * sizeof(int));
    for (int t = T - 3; t < T; t++) toks2[T + t] = 0;
    model_acts a;
    assert_int_equal(model_acts_init(&a, &m, 2, T, &err), PE_OK);
    for (int use_ref = 0; use_ref <= 1; use_ref++) {
        assert_int_equal(model_forward_tokens(logits, &a, &m, toks2, lens, 2, T, use_ref, &err), PE_OK);
        check_against_golden(g, logits, use_ref ? "batched (naive twins)" : "batched (sgemm)");
        /* the shorter copy agrees with the full one on its valid prefix (padding does not leak). Not
         * bit for bit: its sgemm has 3 rows fewer, and OpenBLAS kernels round edge tiles differently
         * (Zen: 1.05e-5); a leak of one padded position changes logits by far more than 1e-4. */
        for (int p = 0; p < T - 3; p++)
            assert_true(tu_max_abs_diff(logits + (size_t)p * V, logits + (size_t)(T + p) * V, (size_t)V) <= 1e-4);
    }
    model_acts_free(&a);
    /* token by token (KV cache), as run.c */
    model_seq_state s;
    assert_int_equal(model_seq_init(&s, &m, &err), PE_OK);
    for (int p = 0; p < T; p++) model_forward_token_seq(logits + (size_t)p * V, &s, &m, ids[p], p);
    check_against_golden(g, logits, "token-by-token");
    model_seq_free(&s);
    free(logits);
    free(ids);
    tok_free(&tok);
    model_free(&m);
    ckpt_close(&ck);
    free(g);
}

static void test_golden_v0(void **state) { (void)state; run_model_file("stories260K.bin"); }
static void test_golden_v1(void **state) { (void)state; run_model_file("stories260K_v1.bin"); }

int main(void) {
    int v0 = tu_have_data("golden/stories260K_lily.txt", "stories260K.bin", "tok512.bin", NULL);
    int v1 = tu_have_data("golden/stories260K_lily.txt", "stories260K_v1.bin", "tok512.bin", NULL);
    const struct CMUnitTest tests[] = {
        tu_needs(v0, cmocka_unit_test(test_golden_v0)),
        tu_needs(v1, cmocka_unit_test(test_golden_v1)),
    };
    return tu_finish(cmocka_run_group_tests(tests, NULL, NULL));
}
