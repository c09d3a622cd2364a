/* fuzz_tokenizer: llama2.c tokenizer.bin files (tok_init_llama2c; the vocabulary size comes from
 * the model, so each input is tried with several), then encoding a text with tok_encode and its
 * naive twin tok_encode_ref (they must agree token for token) and decoding every token back.
 * Input: tokenizer.bin FZ_SEP text (no separator: a fixed text with multi-byte UTF-8). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tokenizer.h"

static const char DEFAULT_TEXT[] = "Once upon a time, a little girl named Lily saw a caf\xc3\xa9 \xe2\x82\xac 42!\n\nThe end.";
static const int VOCABS[] = {512, 300, 260, 259};

static void one(const char *path, int vocab, const char *text, size_t len) {
    tokenizer t;
    pe_err    err = {0};
    pe_status st = tok_init_llama2c(&t, path, vocab, &err);
    fz_check(st, &err, "tok_init_llama2c");
    if (st) return;
    int *a = NULL, *b = NULL, na = 0, nb = 0;
    st = tok_encode(&t, text, len, 1, 1, &a, &na, &err);
    fz_check(st, &err, "tok_encode");
    pe_err err2 = {0};
    pe_status st2 = tok_encode_ref(&t, text, len, 1, 1, &b, &nb, &err2);
    fz_check(st2, &err2, "tok_encode_ref");
    if (st != st2 || (!st && (na != nb || memcmp(a, b, sizeof(int) * (size_t)na)))) {
        fprintf(stderr, "fuzz oracle: tok_encode and tok_encode_ref disagree (status %d vs %d, %d vs %d tokens)\n", st,
                st2, na, nb);
        abort();
    }
    for (int i = 0; !st && i < na; i++) {
        int prev = i ? a[i - 1] : -1, n = 0;
        const char *piece = tok_decode_piece(&t, prev, a[i], &n);
        volatile char sink = 0;
        for (int k = 0; piece && k < n; k++) sink ^= piece[k];
        (void)sink;
        (void)tok_count_bytes(&t, prev, a[i]);
    }
    free(a);
    free(b);
    tok_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_part p[2];
    int n = fz_split(data, size, p, 2);
    fz_reset();
    fz_write("tokenizer.bin", p[0].p, p[0].n);
    char path[4300];
    fz_path(path, sizeof path, "tokenizer.bin");
    const char *text = DEFAULT_TEXT;
    size_t len = sizeof DEFAULT_TEXT - 1;
    if (n > 1) { /* the naive twin is O(n^2): keep the text short */
        text = (const char *)p[1].p;
        len = p[1].n < 512 ? p[1].n : 512;
    }
    for (size_t i = 0; i < sizeof VOCABS / sizeof VOCABS[0]; i++) one(path, VOCABS[i], text, len);
    return 0;
}
