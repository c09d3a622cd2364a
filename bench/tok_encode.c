/* tok_encode.c: print the token ids pathens feeds a model for a text file, one sequence per line
 * (ids separated by spaces), through the same dataset code `pathens eval` uses:
 *   documents  [data] mode = documents: blank-line separated paragraphs, each encoded with the
 *              tokenizer's own BOS/EOS (sequences of fewer than 2 tokens dropped), no truncation;
 *   whole      [data] mode = windows: the whole file as one token stream.
 * Used by tests/cli_tok_oracle.sh against the JavaScript tokenizers of tests/js/oracle.js, and by
 * bench/tok_throughput.sh.
 *
 *   tok_encode TOKENIZER documents|whole FILE [--vocab N] [--ref] [--check-bytes] [--time REPS]
 * TOKENIZER: a tokenizer.json, a folder (tokenizer.json or vocab.json + merges.txt), a llama2.c
 *   tokenizer.bin (give --vocab N, the model's vocabulary) or bytes.
 * --ref          also encode every sequence with the naive reference twin (tok_encode_ref); exit 1
 *                at the first sequence where it differs from the fast encoder.
 * --check-bytes  the bytes the tokens decode to (tok_count_bytes, first token after prev = -1)
 *                must add up to each sequence's text length; exit 1 otherwise (for valid UTF-8
 *                that normalization leaves unchanged, without special-token strings).
 * --time REPS    no ids: encode the file REPS times (as the mode cuts it) and print the throughput
 *                in MB/s of input text (best of REPS) on stdout, from the process's CPU time (the
 *                machines this runs on are shared: wall time measures the neighbours too).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "dataset.h"
#include "tokenizer.h"

static void check(pe_status st, const pe_err *err) {
    if (st) {
        fprintf(stderr, "tok_encode: %s\n", err->msg);
        exit((int)st);
    }
}

/* the text spans dataset.c encodes: documents (blank-line paragraphs, a last CR dropped) or the file */
typedef struct {
    size_t start, len;
} span;

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static span *cut(const char *buf, size_t n, int documents, int *n_spans) {
    span *sp = NULL;
    int   ns = 0, cap = 0;
    if (!documents) {
        sp = malloc(sizeof *sp);
        if (!sp) return NULL;
        sp[0] = (span){0, n};
        *n_spans = 1;
        return sp;
    }
    size_t pos = 0, start, len;
    while (data_next_document(buf, n, &pos, &start, &len)) {
        if (ns == cap) {
            cap = cap ? 2 * cap : 1024;
            span *q = realloc(sp, (size_t)cap * sizeof *q);
            if (!q) return NULL;
            sp = q;
        }
        sp[ns++] = (span){start, len};
    }
    *n_spans = ns;
    return sp;
}

int main(int argc, char **argv) {
    const char *spec = NULL, *mode = NULL, *path = NULL;
    int         vocab = INT_MAX, ref = 0, check_bytes = 0, reps = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--vocab")) vocab = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--time")) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ref")) ref = 1;
        else if (!strcmp(argv[i], "--check-bytes")) check_bytes = 1;
        else if (!spec) spec = argv[i];
        else if (!mode) mode = argv[i];
        else if (!path) path = argv[i];
        else spec = NULL, i = argc;
    }
    if (!spec || !path || (strcmp(mode, "documents") && strcmp(mode, "whole"))) {
        fprintf(stderr, "usage: tok_encode TOKENIZER documents|whole FILE [--vocab N] [--ref] [--check-bytes] "
                        "[--time REPS]\n");
        return 1;
    }
    int       documents = !strcmp(mode, "documents");
    pe_err    err = {0};
    tokenizer tok;
    check(tok_init_for_model(&tok, spec, NULL, vocab, &err), &err);
    char  *buf = NULL;
    size_t n = 0;
    check(pe_read_file(path, &buf, &n, &err), &err);
    int   ns = 0;
    span *sp = cut(buf, n, documents, &ns);
    if (!sp && n) {
        fprintf(stderr, "tok_encode: out of memory\n");
        return 3;
    }
    if (reps > 0) { /* throughput of the encoder alone */
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = cpu_seconds();
            for (int k = 0; k < ns; k++) {
                int *ids, nt;
                check(tok_encode(&tok, buf + sp[k].start, sp[k].len, tok.add_bos, tok.add_eos, &ids, &nt, &err), &err);
                free(ids);
            }
            double dt = cpu_seconds() - t0;
            if (dt < best) best = dt;
        }
        printf("%.3f MB/s (%zu bytes, %d %s, best of %d: %.3f s of CPU time)\n", (double)n / best / 1e6, n, ns,
               documents ? "documents" : "stream", reps, best);
        return 0;
    }
    text_dataset d;
    int          context = 1 << 30;
    check(data_load_text(&d, path, &tok, documents ? DATA_MODE_DOCUMENTS : DATA_MODE_WINDOWS, context, context, 0, &err),
          &err);
    int bad_bytes = 0, k = 0;
    for (int q = 0; q < d.n_seqs; q++) {
        const text_seq *s = &d.seqs[q];
        const int      *t = d.tokens + s->start;
        for (int p = 0; p < s->len; p++) printf(p ? " %d" : "%d", t[p]);
        printf("\n");
        if (!ref && !check_bytes) continue;
        /* the span dataset.c encoded for this sequence: the next one that gives >= 2 tokens */
        int *ids = NULL, nt = 0;
        for (; k < ns; k++) {
            check(tok_encode(&tok, buf + sp[k].start, sp[k].len, tok.add_bos, tok.add_eos, &ids, &nt, &err), &err);
            if (nt >= 2 || !documents) break;
            free(ids);
            ids = NULL;
        }
        if (k == ns || nt != s->len || memcmp(ids, t, (size_t)nt * sizeof *ids)) {
            fprintf(stderr, "tok_encode: sequence %d: the dataset's tokens differ from tok_encode of its text span\n", q);
            return 1;
        }
        if (ref) {
            int *rids, rn;
            check(tok_encode_ref(&tok, buf + sp[k].start, sp[k].len, tok.add_bos, tok.add_eos, &rids, &rn, &err), &err);
            int diff = rn != nt || memcmp(rids, ids, (size_t)nt * sizeof *ids);
            free(rids);
            if (diff) {
                fprintf(stderr, "tok_encode: sequence %d (bytes %zu..%zu): the reference encoder (tok_encode_ref) "
                                "gives other ids than tok_encode\n", q, sp[k].start, sp[k].start + sp[k].len);
                return 1;
            }
        }
        if (check_bytes) {
            size_t total = 0;
            for (int p = 0; p < nt; p++) total += (size_t)tok_count_bytes(&tok, p ? ids[p - 1] : -1, ids[p]);
            if (total != sp[k].len && bad_bytes++ < 5)
                fprintf(stderr, "tok_encode: sequence %d (bytes %zu..%zu): its %d tokens decode to %zu bytes, the text "
                                "has %zu\n", q, sp[k].start, sp[k].start + sp[k].len, nt, total, sp[k].len);
        }
        free(ids);
        k++;
    }
    data_free_text(&d);
    tok_free(&tok);
    free(sp);
    free(buf);
    if (bad_bytes) {
        fprintf(stderr, "tok_encode: %d sequences decode to another number of bytes than their text\n", bad_bytes);
        return 1;
    }
    return 0;
}
