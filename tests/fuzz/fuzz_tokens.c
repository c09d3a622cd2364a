/* fuzz_tokens: token files ([data] format = tokens, data_load_tokens) as uint16 and uint32, documents
 * (eos 0, 1 and 200) and strided windows, vocabularies of 256 and 512 ids, without a tokenizer and
 * with the byte tokenizer (bytes per target), whole file and a span with a limit. Oracle: every
 * sequence lies inside the stream and the context, every id is below the vocabulary, a document
 * starts at eos (but the first), the scored targets and bytes add up to n_scored / n_scored_bytes.
 * Input: the token file's bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "fuzz_util.h"
#include "tokenizer.h"

static tokenizer tk_bytes;

static void one(const char *path, int w, int vocab, int eos, const tokenizer *t, data_text_mode mode, int context,
                int stride, long limit, double b, double e) {
    text_dataset    d;
    data_token_opts o   = {w, vocab, eos};
    pe_err          err = {0};
    memset(&d, 0, sizeof d);
    pe_status st = data_load_tokens(&d, path, &o, t, mode, context, stride, limit, b, e, &err);
    fz_check(st, &err, "data_load_tokens");
    if (st) return;
    int64_t scored = 0, bytes = 0;
    for (int s = 0; s < d.n_seqs; s++) {
        const text_seq *q = &d.seqs[s];
        if (q->start < 0 || q->len < 2 || q->len > context || q->start + q->len > d.n_tokens || q->score_begin < 0 ||
            q->score_begin >= q->len - 1) {
            fprintf(stderr, "fuzz oracle: sequence %d [%lld, +%d) score_begin %d outside %lld tokens, context %d\n", s,
                    (long long)q->start, q->len, q->score_begin, (long long)d.n_tokens, context);
            abort();
        }
        if (mode == DATA_MODE_DOCUMENTS && q->start > 0 && d.tokens[q->start] != eos) {
            fprintf(stderr, "fuzz oracle: document %d starts at id %d, not eos %d\n", s, d.tokens[q->start], eos);
            abort();
        }
        for (int i = 0; i < q->len; i++)
            if (d.tokens[q->start + i] < 0 || d.tokens[q->start + i] >= vocab) {
                fprintf(stderr, "fuzz oracle: id %d outside the vocabulary of %d\n", d.tokens[q->start + i], vocab);
                abort();
            }
        scored += q->len - 1 - q->score_begin;
        for (int p = q->score_begin + 1; p < q->len; p++) bytes += d.tok_bytes[q->start + p];
    }
    if (scored != d.n_scored || bytes != d.n_scored_bytes || (!t && bytes != 0)) {
        fprintf(stderr, "fuzz oracle: %lld targets / %lld bytes from the sequences, n_scored %lld / n_scored_bytes %lld\n",
                (long long)scored, (long long)bytes, (long long)d.n_scored, (long long)d.n_scored_bytes);
        abort();
    }
    data_free_text(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tk_bytes.vocab_size) tok_init_bytes(&tk_bytes);
    fz_reset();
    fz_write("val.bin", data, size);
    char path[4300];
    fz_path(path, sizeof path, "val.bin");
    for (int w = 2; w <= 4; w += 2) {
        one(path, w, 512, 1, NULL, DATA_MODE_DOCUMENTS, 16, 0, 0, 0.0, 1.0);
        one(path, w, 256, 0, &tk_bytes, DATA_MODE_DOCUMENTS, 4, 0, 3, 0.5, 1.0);
        one(path, w, 512, 200, &tk_bytes, DATA_MODE_DOCUMENTS, 8, 0, 0, 0.0, 0.5);
        one(path, w, 512, -1, NULL, DATA_MODE_WINDOWS, 16, 5, 0, 0.0, 1.0);
        one(path, w, 256, -1, &tk_bytes, DATA_MODE_WINDOWS, 8, 8, 3, 0.25, 0.75);
    }
    return 0;
}
