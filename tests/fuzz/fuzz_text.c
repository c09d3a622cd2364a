/* fuzz_text: text data (data_load_text_span) with the byte tokenizer and with a llama2.c tokenizer
 * (data/tok512.bin when tools/fetch-data.sh has filled data/, else the corpus' 300-token
 * tiny300_ties), documents and windows modes, whole file and a
 * span with a limit; every sequence's tokens and scored bytes are read back.
 * Input: the text file's bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "fuzz_util.h"
#include "tokenizer.h"

static tokenizer tk_bytes, tk_llama;

static void one(const char *path, const tokenizer *t, data_text_mode mode, int context, int stride, long limit,
                double b, double e) {
    text_dataset d;
    memset(&d, 0, sizeof d);
    pe_err err = {0};
    pe_status st = data_load_text_span(&d, path, t, mode, context, stride, limit, b, e, &err);
    fz_check(st, &err, "data_load_text_span");
    if (st) return;
    int64_t scored = 0, sum = 0;
    for (int s = 0; s < d.n_seqs; s++) {
        const text_seq *q = &d.seqs[s];
        if (q->start < 0 || q->len < 0 || q->len > context || q->start + q->len > d.n_tokens || q->score_begin < 0 ||
            (q->len > 0 && q->score_begin >= q->len)) {
            fprintf(stderr, "fuzz oracle: sequence %d [%lld, +%d) score_begin %d outside %lld tokens, context %d\n", s,
                    (long long)q->start, q->len, q->score_begin, (long long)d.n_tokens, context);
            abort();
        }
        for (int i = 0; i < q->len; i++) sum += d.tokens[q->start + i] + d.tok_bytes[q->start + i];
        if (q->len > 0) scored += q->len - 1 - q->score_begin;
    }
    if (scored != d.n_scored) {
        fprintf(stderr, "fuzz oracle: %lld targets scored by the sequences, n_scored = %lld\n", (long long)scored,
                (long long)d.n_scored);
        abort();
    }
    (void)sum;
    data_free_text(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tk_bytes.vocab_size) {
        tok_init_bytes(&tk_bytes);
        pe_err err = {0};
        pe_status st = tok_init_llama2c(&tk_llama, PATHENS_DATA_DIR "/tok512.bin", 512, &err);
        if (st) {
            fprintf(stderr, "fuzz_text: %s; using the corpus' tiny300_ties instead\n", err.msg);
            memset(&err, 0, sizeof err);
            st = tok_init_llama2c(&tk_llama, PATHENS_FUZZ_CORPUS "/tokenizer/tiny300_ties", 300, &err);
        }
        if (st) {
            fprintf(stderr, "fuzz: %s\n", err.msg);
            abort();
        }
    }
    fz_reset();
    fz_write("data.txt", data, size);
    char path[4300];
    fz_path(path, sizeof path, "data.txt");
    for (int k = 0; k < 2; k++) {
        const tokenizer *t = k ? &tk_llama : &tk_bytes;
        one(path, t, DATA_MODE_DOCUMENTS, 16, 0, 0, 0.0, 1.0);
        one(path, t, DATA_MODE_WINDOWS, 16, 5, 0, 0.0, 1.0);
        one(path, t, DATA_MODE_WINDOWS, 8, 8, 3, 0.25, 0.75);
        one(path, t, DATA_MODE_DOCUMENTS, 4, 0, 2, 0.5, 1.0);
    }
    return 0;
}
