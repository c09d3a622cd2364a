/* fuzz_hftok: Hugging Face tokenizers (tok_init_hf on a folder holding tokenizer.json and, when the
 * input has one, tokenizer_config.json; the same bytes also as a GPT-2 style vocab.json with an
 * empty merges.txt), then encoding a text with tok_encode and its naive twin tok_encode_ref (they
 * must agree token for token) and decoding every token back.
 * Input: tokenizer.json FZ_SEP tokenizer_config.json FZ_SEP text (missing parts: no config, a fixed
 * text with multi-byte UTF-8, invalid bytes and special-token strings). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tokenizer.h"

static const char DEFAULT_TEXT[] = "Once upon a time, Lily's caf\xc3\xa9 \xe2\x82\xac 42!<s> \xff\xe2\x82 </s>\n\n  The end.";

static void one(const char *path, const char *text, size_t len) {
    tokenizer t;
    pe_err    err = {0};
    pe_status st = tok_init_hf(&t, path, &err);
    fz_check(st, &err, "tok_init_hf");
    if (st) return;
    int      *a = NULL, *b = NULL, na = 0, nb = 0;
    pe_err    err2 = {0};
    st = tok_encode(&t, text, len, 1, 1, &a, &na, &err);
    fz_check(st, &err, "tok_encode");
    pe_status st2 = tok_encode_ref(&t, text, len, 1, 1, &b, &nb, &err2);
    fz_check(st2, &err2, "tok_encode_ref");
    if (st != st2 || (!st && (na != nb || memcmp(a, b, sizeof(int) * (size_t)na)))) {
        fprintf(stderr, "fuzz oracle: tok_encode and tok_encode_ref disagree (status %d vs %d, %d vs %d tokens)\n", st,
                st2, na, nb);
        abort();
    }
    for (int i = 0; !st && i < na; i++) {
        if (a[i] < 0 || a[i] >= t.vocab_size) {
            fprintf(stderr, "fuzz oracle: token %d is id %d, outside the vocabulary of %d\n", i, a[i], t.vocab_size);
            abort();
        }
        int         prev = i ? a[i - 1] : -1, n = 0;
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
    fz_part p[3];
    int     n = fz_split(data, size, p, 3);
    fz_reset();
    fz_mkdir("hf");
    fz_write("hf/tokenizer.json", p[0].p, p[0].n);
    if (n > 1) fz_write("hf/tokenizer_config.json", p[1].p, p[1].n);
    fz_mkdir("gpt2");
    fz_write("gpt2/vocab.json", p[0].p, p[0].n);
    fz_write("gpt2/merges.txt", "#version: 0.2\n", 14);
    const char *text = DEFAULT_TEXT;
    size_t      len = sizeof DEFAULT_TEXT - 1;
    if (n > 2) { /* the naive twin is O(n^2): keep the text short */
        text = (const char *)p[2].p;
        len = p[2].n < 512 ? p[2].n : 512;
    }
    char path[4300];
    fz_path(path, sizeof path, "hf");
    one(path, text, len);
    fz_path(path, sizeof path, "gpt2");
    one(path, text, len);
    return 0;
}
