/* test_lmhead.c: the LM head and the per-token metrics in chunks of rows (model.h: model_head_lm;
 * ensemble.h: ens_rows_set_head), never a (B, T, V) buffer.
 *   - the head over the 48-aligned chunk grid equals one sgemm over the whole sequence: bit for
 *     bit with the reference kernel (any machine), and with OpenBLAS (1 thread, the default of
 *     pathens eval) on the cores where that was measured (Zen, Haswell, Sandybridge;
 *     bench/bench_lmhead.c chunks); elsewhere within 1e-5;
 *   - the text evaluation gives the same bytes for any member group size (any machine) and for
 *     any chunk size (reference kernels: any machine; OpenBLAS: the measured cores), on documents
 *     and on strided windows (chunks before score_begin are skipped), with both combination rules,
 *     importance statistics and ablations;
 *   - the chunked fast path equals a naive computation from whole-sequence logits
 *     (model_forward_tokens_pw, libm exp in double): dense, member and mixture NLL, KL(dense ||
 *     member), argmax agreement (the sums to 1e-8 per token: a chunk grid off the 48-row
 *     alignment moves logits by an ulp and fails this).
 * On a generated model (stories260K's shape, 2 layers, vocab 512) and generated text: no data needed. */
#include "testutil.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "ensemble.h"
#include "model.h"

typedef struct {
    tu_stories  *f;
    text_dataset win; /* the fixture's text as windows of 200 tokens every 130 */
} fixture;

static int setup(void **state) {
    fixture *x = calloc(1, sizeof *x);
    pe_err   err = {0};
    /* one BLAS thread, as pathens eval runs by default: with more, OpenBLAS splits a call's rows
     * between threads by the call's size, so chunks and the whole call round differently */
    openblas_set_num_threads(1);
    x->f = tu_lm_fixture_open("lmhead", 16, 5);
    char path[4096];
    snprintf(path, sizeof path, "%s/lmhead/text.txt", PATHENS_TEST_TMP);
    assert_int_equal(data_load_text(&x->win, path, &x->f->tok, DATA_MODE_WINDOWS, 200, 130, 0, &err), PE_OK);
    assert_true(x->win.n_seqs >= 4);
    assert_true(x->win.seqs[1].score_begin > 48); /* a chunk before the scored part exists */
    *state = x;
    return 0;
}

static int teardown(void **state) {
    fixture *x = *state;
    data_free_text(&x->win);
    tu_stories_close(x->f);
    free(x);
    return 0;
}

/* OpenBLAS cores on which the chunk grid was measured to reproduce the whole-sequence bits */
static int grid_exact_core(void) {
    const char *core = openblas_get_corename();
    return !strcmp(core, "Zen") || !strcmp(core, "Haswell") || !strcmp(core, "Sandybridge");
}

static pw_config members_cfg(int K) {
    pw_config c = {0};
    c.scheme = PW_SCHEME_UNBIASED;
    c.ratio = 3.0;
    c.lambda = INFINITY;
    c.members = K;
    c.seed = 42;
    c.granularity = PW_GRAN_HEAD;
    return c;
}

/* the evaluation through its pieces with a chunk size, a member group size and kernels */
static void eval_rows(ens_lm_result *r, const model *m, const text_dataset *d, const pw_config *c, const ens_options *o,
                      int head_rows, int group, int use_ref) {
    pe_err    err = {0};
    ens_rows *all = ens_rows_new(m, d, c, o, 0, d->n_seqs, &err);
    assert_non_null(all);
    ens_rows_set_head(all, head_rows, group, use_ref);
    if (ens_text_rows_run(all, m, d, c, o, &err) != PE_OK) fail_msg("ens_text_rows_run: %s", err.msg);
    assert_int_equal(ens_text_reduce(r, all, d, o, &err), PE_OK);
    ens_rows_free(all);
}

static void lm_results_equal(const ens_lm_result *a, const ens_lm_result *b) {
    size_t K = (size_t)a->K, Kc = K ? K : 1, LH = (size_t)a->L * a->NH, n1, n2;
    assert_int_equal(a->K, b->K);
    assert_memory_equal(&a->dense, &b->dense, sizeof a->dense);
    assert_memory_equal(&a->ensemble, &b->ensemble, sizeof a->ensemble);
    assert_memory_equal(&a->member_mean, &b->member_mean, sizeof a->member_mean);
    assert_memory_equal(&a->diff, &b->diff, sizeof a->diff);
    assert_memory_equal(a->member, b->member, Kc * sizeof *a->member);
    assert_memory_equal(a->curve, b->curve, Kc * sizeof *a->curve);
    assert_memory_equal(a->kl, b->kl, Kc * sizeof *a->kl);
    assert_memory_equal(a->agree, b->agree, Kc * sizeof *a->agree);
    assert_memory_equal(a->kept, b->kept, Kc * LH * sizeof *a->kept);
    if (a->imp.has_ablation) {
        assert_memory_equal(a->imp.abl_head, b->imp.abl_head, LH * sizeof *a->imp.abl_head);
        assert_memory_equal(a->imp.abl_layer, b->imp.abl_layer, (size_t)a->L * sizeof *a->imp.abl_layer);
    }
    if (a->imp.has_sampled) assert_memory_equal(a->imp.head, b->imp.head, LH * sizeof *a->imp.head);
    const void *b1 = ens_per_example_data(a->per_example, &n1), *b2 = ens_per_example_data(b->per_example, &n2);
    assert_int_equal(n1, n2);
    if (n1) assert_memory_equal(b1, b2, n1); /* every unit's dense, member and ensemble NLL */
}

/* ---- the head alone ------------------------------------------------------------------------ */

static void test_head_grid_equals_whole(void **state) {
    fixture     *x = *state;
    const model *m = &x->f->m;
    int C = m->cfg.dim, V = m->cfg.vocab_size, lens[] = {1, 11, 47, 48, 49, 97, 143, 144, 250};
    float *hid = malloc(250 * (size_t)C * sizeof(float)), *whole = malloc(250 * (size_t)V * sizeof(float)),
          *chunked = malloc(250 * (size_t)V * sizeof(float));
    tu_fill_random(hid, 250 * (size_t)C, 3, 1.0f);
    int exact = grid_exact_core();
    printf("  OpenBLAS core %s: chunked head expected %s\n", openblas_get_corename(),
           exact ? "bit-identical" : "within 1e-5 (core not measured)");
    for (int use_ref = 0; use_ref <= 1; use_ref++)
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
            for (int R = 48; R <= 144; R += 48) {
                int len = lens[li];
                model_head_lm(whole, m, hid, len, use_ref);
                for (int r0 = 0; r0 < len; r0 += R)
                    model_head_lm(chunked + (size_t)r0 * V, m, hid + (size_t)r0 * C, len - r0 < R ? len - r0 : R, use_ref);
                if (use_ref || exact) {
                    if (memcmp(whole, chunked, (size_t)len * V * sizeof(float)))
                        fail_msg("%s head, %d rows in chunks of %d: not the whole-sequence bits",
                                 use_ref ? "reference" : "OpenBLAS", len, R);
                } else {
                    assert_true(tu_max_abs_diff(whole, chunked, (size_t)len * V) <= 1e-5f);
                }
            }
    free(hid); free(whole); free(chunked);
}

static void test_head_rows_auto(void **state) {
    (void)state;
    model m;
    memset(&m, 0, sizeof m);
    int V[] = {1, 512, 32000, 50257, 128256, 262144, 1 << 24}, want[] = {384, 384, 384, 288, 96, 48, 48};
    for (size_t i = 0; i < sizeof V / sizeof V[0]; i++) {
        m.cfg.vocab_size = V[i];
        int R = model_head_rows_auto(&m);
        if (R != want[i]) fail_msg("vocab %d: %d rows per chunk, want %d", V[i], R, want[i]);
        assert_int_equal(R % MODEL_HEAD_ROW_ALIGN, 0);
        assert_true((int64_t)R * V[i] <= MODEL_HEAD_BUDGET || R == MODEL_HEAD_ROW_ALIGN); /* flat in V */
    }
}

/* ---- the evaluation ------------------------------------------------------------------------ */

/* chunk sizes and member groups change no byte: documents and windows, both rules, statistics
 * and ablations; OpenBLAS kernels */
static void test_eval_chunks_same_bytes(void **state) {
    fixture *x = *state;
    const model *m = &x->f->m;
    int exact = grid_exact_core();
    const text_dataset *ds[2] = {&x->f->d, &x->win};
    for (int di = 0; di < 2; di++)
        for (int comb = 0; comb <= 1; comb++) {
            pw_config   c = members_cfg(3);
            ens_options o = {(ens_combine)comb, 5, 1, 1, comb == 0 && di == 1, 0};
            ens_lm_result whole, g1, r48;
            eval_rows(&whole, m, ds[di], &c, &o, 480, 0, 0); /* one chunk per sequence, every member at once */
            eval_rows(&g1, m, ds[di], &c, &o, 480, 1, 0);    /* members one at a time (logit: ignored, all) */
            lm_results_equal(&whole, &g1);
            eval_rows(&r48, m, ds[di], &c, &o, 48, 2, 0);
            if (exact) lm_results_equal(&whole, &r48);
            else assert_true(fabs(r48.dense.sum_nll - whole.dense.sum_nll) <= 1e-6 * fabs(whole.dense.sum_nll));
            printf("  %s, %s: dense %.6f, ensemble %.6f nats/token, KL[0] %.6g\n", di ? "windows" : "documents",
                   comb ? "logit" : "prob", eval_lm_nll(&whole.dense), eval_lm_nll(&whole.ensemble), whole.kl[0]);
            ens_free_lm(&whole); ens_free_lm(&g1); ens_free_lm(&r48);
        }
    /* dense only */
    ens_options o = {ENS_COMBINE_PROB, 5, 1, 0, 0, 0};
    ens_lm_result a, b;
    eval_rows(&a, m, &x->win, NULL, &o, 480, 0, 0);
    eval_rows(&b, m, &x->win, NULL, &o, 96, 0, 0);
    if (exact) lm_results_equal(&a, &b);
    ens_free_lm(&a); ens_free_lm(&b);
}

/* the same with the reference kernels: the chunk grid cannot change a bit on any machine */
static void test_eval_chunks_same_bytes_ref(void **state) {
    fixture *x = *state;
    pw_config   c = members_cfg(2);
    for (int comb = 0; comb <= 1; comb++) {
        ens_options o = {(ens_combine)comb, 4, 1, 0, 0, 0};
        ens_lm_result whole, r48;
        eval_rows(&whole, &x->f->m, &x->win, &c, &o, 480, 0, 1);
        eval_rows(&r48, &x->f->m, &x->win, &c, &o, 48, 1, 1);
        lm_results_equal(&whole, &r48);
        ens_free_lm(&whole); ens_free_lm(&r48);
    }
}

/* naive: every number from the whole-sequence logits of model_forward_tokens_pw, in double with
 * libm exp, against the chunked fast path (chunks of 48 rows, members one at a time) */
static void test_fast_matches_naive(void **state) {
    fixture *x = *state;
    const model *m = &x->f->m;
    const text_dataset *d = &x->win;
    int K = 3, V = m->cfg.vocab_size, T = d->context;
    pw_config   c = members_cfg(K);
    ens_options o = {ENS_COMBINE_PROB, 5, 0, 0, 0, 0};
    ens_lm_result r;
    /* chunks of 48 where they reproduce the whole-sequence logits; elsewhere the grid of
     * model_forward_tokens_pw (one chunk here), so the logits agree bit for bit on any machine */
    eval_rows(&r, m, d, &c, &o, grid_exact_core() ? 48 : 0, 1, 0);
    pe_err err = {0};
    model_acts a;
    assert_int_equal(model_acts_init(&a, m, 1, T, &err), PE_OK);
    float  *lg = malloc((size_t)(K + 1) * T * V * sizeof(float)); /* (1 + K, T, V): dense, then members */
    double dense = 0.0, mem[3] = {0}, mix[3] = {0}, kl[3] = {0};
    int64_t agree[3] = {0};
    for (int s = 0; s < d->n_seqs; s++) {
        const text_seq *sq = &d->seqs[s];
        int64_t id = sq->doc_id;
        for (int k = -1; k < K; k++) {
            model_pathways pw = {.cfg = &c, .member = k, .seq_ids = &id};
            assert_int_equal(model_forward_tokens_pw(lg + (size_t)(k + 1) * T * V, &a, m, d->tokens + sq->start, &sq->len,
                                                     1, sq->len, k < 0 ? NULL : &pw, 0, &err), PE_OK);
        }
        double du = 0.0, mu[3] = {0}, xu[3] = {0};
        for (int p = sq->score_begin; p < sq->len - 1; p++) {
            int    tgt = d->tokens[sq->start + p + 1], am[4];
            double lse[4], lpk[3];
            for (int k = 0; k <= K; k++) {
                const float *z = lg + ((size_t)k * T + p) * V;
                am[k] = 0;
                for (int v = 1; v < V; v++)
                    if (z[v] > z[am[k]]) am[k] = v;
                double s = 0.0;
                for (int v = 0; v < V; v++) s += exp((double)z[v] - z[am[k]]);
                lse[k] = z[am[k]] + log(s);
            }
            const float *zd = lg + (size_t)p * V;
            du -= zd[tgt] - lse[0];
            for (int k = 0; k < K; k++) {
                const float *zm = lg + ((size_t)(k + 1) * T + p) * V;
                lpk[k] = zm[tgt] - lse[k + 1];
                mu[k] -= lpk[k];
                for (int v = 0; v < V; v++) {
                    double ld = zd[v] - lse[0];
                    kl[k] += exp(ld) * (ld - (zm[v] - lse[k + 1]));
                }
                agree[k] += am[k + 1] == am[0];
                double pm = 0.0; /* mixture of members 0..k */
                for (int j = 0; j <= k; j++) pm += exp(lpk[j]);
                xu[k] -= log(pm / (k + 1));
            }
        }
        dense += du;
        for (int k = 0; k < K; k++) mem[k] += mu[k], mix[k] += xu[k];
    }
    double tol = 1e-9 * (double)d->n_scored;
    printf("  naive vs chunked: dense %.9f vs %.9f nats\n", dense, r.dense.sum_nll);
    assert_true(fabs(dense - r.dense.sum_nll) <= tol * 10);
    for (int k = 0; k < K; k++) {
        printf("  member %d: NLL %.9f vs %.9f, mixture %.9f vs %.9f, KL %.9f vs %.9f, agree %lld vs %lld\n", k, mem[k],
               r.member[k].sum_nll, mix[k], r.curve[k].sum_nll, kl[k], r.kl[k], (long long)agree[k],
               (long long)r.agree[k]);
        assert_true(fabs(mem[k] - r.member[k].sum_nll) <= tol * 10);
        assert_true(fabs(mix[k] - r.curve[k].sum_nll) <= tol * 10);
        assert_true(fabs(kl[k] - r.kl[k]) <= 1e-6 * (1.0 + fabs(kl[k])) * 10);
        assert_true(llabs(agree[k] - r.agree[k]) <= 1);
        assert_true(kl[k] > 0.0);
    }
    free(lg);
    model_acts_free(&a);
    ens_free_lm(&r);
}

/* a chunk size off the grid is refused (it could change bits), not silently used */
static void test_chunk_off_grid_refused(void **state) {
    fixture *x = *state;
    pe_err   err = {0};
    ens_options o = {ENS_COMBINE_PROB, 4, 0, 0, 0, 0};
    ens_rows *rw = ens_rows_new(&x->f->m, &x->win, NULL, &o, 0, 2, &err);
    assert_non_null(rw);
    ens_rows_set_head(rw, 50, 0, 0);
    assert_int_equal(ens_text_rows_run(rw, &x->f->m, &x->win, NULL, &o, &err), PE_ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "multiple of 48"));
    ens_rows_free(rw);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_rows_auto),
        cmocka_unit_test(test_head_grid_equals_whole),
        cmocka_unit_test(test_eval_chunks_same_bytes),
        cmocka_unit_test(test_eval_chunks_same_bytes_ref),
        cmocka_unit_test(test_fast_matches_naive),
        cmocka_unit_test(test_chunk_off_grid_refused),
    };
    return tu_finish(cmocka_run_group_tests_name("LM head in chunks (generated model)", tests, setup, teardown));
}
