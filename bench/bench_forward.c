/* bench_forward.c: teacher-forced evaluation throughput of the batched forward pass against a
 * token-by-token loop with a KV cache (llama2.c run.c's way), same model, same documents, same
 * process, 1 BLAS thread. Also prints both mean NLLs: they must agree (the token-by-token loop
 * is llama2.c's own forward, generalised).
 *
 *   bench_forward [--model M] [--tokenizer TOK] [--data TXT] [--limit N] [--batch B] [--reps R]
 * defaults: data/{stories260K.bin,tok512.bin,tinystories_val.txt}, limit 400, batch 16.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "dataset.h"
#include "ensemble.h"
#include "eval.h"
#include "model.h"
#include "tokenizer.h"

#ifndef PATHENS_DATA_DIR
#define PATHENS_DATA_DIR "data"
#endif

static void check(pe_status st, const pe_err *err) {
    if (st) {
        fprintf(stderr, "bench_forward: %s\n", err->msg);
        exit((int)st);
    }
}

int main(int argc, char **argv) {
    const char *model_path = PATHENS_DATA_DIR "/stories260K.bin", *tok_path = PATHENS_DATA_DIR "/tok512.bin",
               *data_path = PATHENS_DATA_DIR "/tinystories_val.txt";
    long limit = 400;
    int  batch = 16, reps = 3;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--model")) model_path = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--tokenizer")) tok_path = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--data")) data_path = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--limit")) limit = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_forward [--model M] [--tokenizer T] [--data TXT] [--limit N] [--batch B] [--reps R]\n");
            return 1;
        }
    }
    openblas_set_num_threads(1);
    pe_err    err = {0};
    ckpt_file ck;
    model     m;
    tokenizer tok;
    text_dataset d;
    check(ckpt_open(&ck, model_path, "auto", NULL, &err), &err);
    check(model_init(&m, &ck, &err), &err);
    check(tok_init_llama2c(&tok, tok_path, m.cfg.vocab_size, &err), &err);
    check(data_load_text(&d, data_path, &tok, DATA_MODE_DOCUMENTS, m.cfg.seq_len, m.cfg.seq_len, limit, &err), &err);
    printf("bench_forward: %s, %d documents, %lld scored tokens, OpenBLAS %s, 1 thread\n", model_path, d.n_seqs,
           (long long)d.n_scored, openblas_get_corename());

    /* batched: best of reps */
    ens_options   eo = {ENS_COMBINE_PROB, batch, 0, 0, 0, 0}; /* pathens eval with no members, no statistics */
    ens_lm_result r;
    double        best_b = 1e30, nll_b = 0.0;
    for (int rep = 0; rep < reps; rep++) {
        double t0 = pe_time_now();
        check(ens_eval_text(&r, &m, &d, NULL, &eo, &err), &err);
        double dt = pe_time_now() - t0;
        if (dt < best_b) best_b = dt;
        nll_b = eval_lm_nll(&r.dense);
        ens_free_lm(&r);
    }

    /* token by token with a KV cache, one document at a time */
    model_seq_state s;
    check(model_seq_init(&s, &m, &err), &err);
    float *logits = malloc((size_t)m.cfg.vocab_size * sizeof(float));
    double best_s = 1e30, nll_s = 0.0;
    for (int r = 0; r < reps; r++) {
        double t0 = pe_time_now(), sum = 0.0;
        int64_t n = 0;
        for (int q = 0; q < d.n_seqs; q++) {
            const text_seq *sq = &d.seqs[q];
            for (int p = 0; p < sq->len - 1; p++) {
                model_forward_token_seq(logits, &s, &m, d.tokens[sq->start + p], p);
                if (p >= sq->score_begin) {
                    sum += eval_nll_of(logits, m.cfg.vocab_size, d.tokens[sq->start + p + 1]);
                    n++;
                }
            }
        }
        double dt = pe_time_now() - t0;
        if (dt < best_s) best_s = dt;
        nll_s = sum / (double)n;
    }
    double tps_b = (double)d.n_scored / best_b, tps_s = (double)d.n_scored / best_s;
    printf("batched (B=%d)      : %10.0f tokens/s  (%.3f s, best of %d)  mean NLL %.7f\n", batch, tps_b, best_b, reps, nll_b);
    printf("token-by-token (KV) : %10.0f tokens/s  (%.3f s, best of %d)  mean NLL %.7f\n", tps_s, best_s, reps, nll_s);
    printf("speedup batched / token-by-token: %.2fx   |NLL difference| %.2e\n", tps_b / tps_s, fabs(nll_b - nll_s));
    free(logits);
    model_seq_free(&s);
    data_free_text(&d);
    tok_free(&tok);
    model_free(&m);
    ckpt_close(&ck);
    return 0;
}
