/* test_tokenizer.c: llama2.c tokenizer loading, encoding (golden ids, fast == reference), decoding
 * round trips, bad files, the byte tokenizer, and whole-file encoding speed. */
#include "testutil.h"

#include "tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOK512_VOCAB 512

static void assert_contains(const char *haystack, const char *needle) {
    if (!strstr(haystack, needle)) fail_msg("'%s' does not contain '%s'", haystack, needle);
}

static void load_tok512(tokenizer *t) {
    pe_err err = {0};
    pe_status st = tok_init_llama2c(t, tu_data_path("tok512.bin"), TOK512_VOCAB, &err);
    if (st != PE_OK) fail_msg("loading tok512.bin: %s", err.msg);
}

static char *read_data(const char *name, size_t *len) {
    char *buf;
    pe_err err = {0};
    if (pe_read_file(tu_data_path(name), &buf, len, &err) != PE_OK) fail_msg("%s", err.msg);
    return buf;
}

/* Split text into paragraphs separated by "\n\n" (offsets into text); returns the count. */
static int split_paragraphs(const char *text, size_t len, size_t *starts, size_t *lens, int max) {
    int n = 0;
    size_t p = 0;
    while (p < len && n < max) {
        while (p < len && text[p] == '\n') p++;
        if (p >= len) break;
        size_t e = p;
        while (e < len && !(text[e] == '\n' && e + 1 < len && text[e + 1] == '\n')) e++;
        if (e == len && text[e - 1] == '\n') e--;
        starts[n] = p;
        lens[n++] = e - p;
        p = e;
    }
    return n;
}

/* encode with both encoders and require identical output; returns the fast tokens */
static int *encode_both(const tokenizer *t, const char *text, size_t len, int bos, int *n_out) {
    pe_err err = {0};
    int *fast, *ref, nf, nr;
    if (tok_encode(t, text, len, bos, 0, &fast, &nf, &err) != PE_OK) fail_msg("tok_encode: %s", err.msg);
    if (tok_encode_ref(t, text, len, bos, 0, &ref, &nr, &err) != PE_OK) fail_msg("tok_encode_ref: %s", err.msg);
    if (nf != nr) fail_msg("fast gives %d tokens, reference %d, for %zu bytes '%.60s'", nf, nr, len, text);
    for (int i = 0; i < nf; i++)
        if (fast[i] != ref[i]) fail_msg("token %d: fast %d, reference %d, text '%.60s'", i, fast[i], ref[i], text);
    free(ref);
    *n_out = nf;
    return fast;
}

/* decoded pieces (after BOS) must give text back byte for byte, and count_bytes must agree */
static void assert_round_trip(const tokenizer *t, const char *text, size_t len, const int *toks, int n) {
    char *out = malloc(len + 1);
    assert_non_null(out);
    size_t pos = 0;
    long counted = 0;
    for (int i = 1; i < n; i++) {
        int pl;
        const char *piece = tok_decode_piece(t, toks[i - 1], toks[i], &pl);
        if (pos + (size_t)pl > len) fail_msg("decoded text is longer than the %zu input bytes", len);
        memcpy(out + pos, piece, (size_t)pl);
        pos += (size_t)pl;
        counted += tok_count_bytes(t, toks[i - 1], toks[i]);
    }
    if (pos != len || memcmp(out, text, len) != 0) fail_msg("round trip differs for '%.60s'", text);
    assert_int_equal(counted, (long)len);
    free(out);
}

static void test_golden_lily(void **state) {
    tokenizer t;
    load_tok512(&t);
    assert_int_equal(t.bos_id, 1);
    assert_int_equal(t.eos_id, 2);
    assert_int_equal(t.max_token_length, 7);
    assert_true(t.space_id >= 0);
    assert_string_equal(t.vocab[t.space_id], " ");
    const char *text = "Once upon a time, there was a little girl named Lily.";
    const int golden[] = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426};
    int n, *toks = encode_both(&t, text, strlen(text), 1, &n);
    assert_int_equal(n, 16);
    for (int i = 0; i < n; i++) assert_int_equal(toks[i], golden[i]);
    assert_round_trip(&t, text, strlen(text), toks, n);
    free(toks);

    /* EOS appended, empty text gives only BOS/EOS (no dummy prefix) */
    pe_err err = {0};
    assert_int_equal(tok_encode(&t, "", 0, 1, 1, &toks, &n, &err), PE_OK);
    assert_int_equal(n, 2);
    assert_int_equal(toks[0], 1);
    assert_int_equal(toks[1], 2);
    free(toks);
    assert_int_equal(tok_encode(&t, "", 0, 0, 0, &toks, &n, &err), PE_OK);
    assert_int_equal(n, 0);
    free(toks);
    tok_free(&t);
}

static void test_fast_matches_ref_on_paragraphs(void **state) {
    tokenizer t;
    load_tok512(&t);
    size_t len;
    char *text = read_data("tinystories_val.txt", &len);
    enum { MAXP = 5000 };
    size_t *starts = malloc(MAXP * sizeof *starts), *lens = malloc(MAXP * sizeof *lens);
    assert_non_null(starts);
    assert_non_null(lens);
    int np = split_paragraphs(text, len, starts, lens, MAXP);
    assert_true(np > 4000);
    long total = 0;
    for (int i = 0; i < np; i++) {
        int n, *toks = encode_both(&t, text + starts[i], lens[i], 1, &n);
        assert_int_equal(toks[0], 1);
        assert_round_trip(&t, text + starts[i], lens[i], toks, n);
        total += n;
        free(toks);
    }
    /* a multi-paragraph chunk: newlines, blank lines and byte fallback inside one text */
    int n, *toks = encode_both(&t, text, 6000, 1, &n);
    assert_round_trip(&t, text, 6000, toks, n);
    free(toks);
    print_message("%d paragraphs, %ld tokens: fast == reference, round trips exact\n", np, total);
    free(starts);
    free(lens);
    free(text);
    tok_free(&t);
}

static uint64_t lcg_next(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

static void test_fast_matches_ref_on_random_bytes(void **state) {
    tokenizer t;
    load_tok512(&t);
    static const char *frags[] = {"the", " a", " ", "  ", "e", "he", " was", "Lily", ".", ",", "\n", "\n\n",
                                  "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80", "\x80", "\xff", "\xc3",
                                  "\xe6\x97", "\x80\x80\x80\x80\x80\x80", "\t", "ing", " the"};
    const char *fixed[] = {"", " ", "\xff", "\x80\x80\x80\x80\x80", "\xf0\x9f\x98\x80\x80\x80",
                           "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "  leading spaces", "a\nb"};
    int n_fixed = (int)(sizeof fixed / sizeof *fixed), n_frags = (int)(sizeof frags / sizeof *frags);
    uint64_t seed = 12345;
    char buf[513]; /* up to 512 bytes + NUL for messages */
    for (int k = 0; k < 600; k++) {
        size_t len = 0;
        if (k < n_fixed) {
            len = strlen(fixed[k]);
            memcpy(buf, fixed[k], len);
        } else {
            size_t want = lcg_next(&seed) % 200;
            while (len < want) {
                if (k % 3 == 0) { /* raw bytes, NUL and invalid UTF-8 included */
                    buf[len++] = (char)(lcg_next(&seed) & 0xff);
                } else {
                    const char *f = frags[lcg_next(&seed) % (uint64_t)n_frags];
                    size_t fl = strlen(f);
                    if (len + fl > 512) break;
                    memcpy(buf + len, f, fl);
                    len += fl;
                }
            }
        }
        buf[len] = '\0';
        for (int bos = 0; bos <= 1; bos++) {
            int n, *toks = encode_both(&t, buf, len, bos, &n);
            if (bos) assert_round_trip(&t, buf, len, toks, n);
            for (int i = 0; i < n; i++) assert_true(toks[i] >= 0 && toks[i] < TOK512_VOCAB);
            free(toks);
        }
    }
    /* the text is len bytes: an embedded NUL is byte fallback <0x00>, not the end */
    int n, *toks = encode_both(&t, "a\0b", 3, 0, &n);
    int found = 0;
    for (int i = 0; i < n; i++) found |= toks[i] == 3;
    assert_true(found);
    free(toks);
    tok_free(&t);
}

static void test_decode_rules(void **state) {
    tokenizer t;
    load_tok512(&t);
    int len;
    const char *p = tok_decode_piece(&t, 5, 3 + 0x0A, &len); /* "<0x0A>" */
    assert_int_equal(len, 1);
    assert_int_equal(p[0], '\n');
    p = tok_decode_piece(&t, 1, 3 + 0x00, &len);
    assert_int_equal(len, 1);
    assert_int_equal(p[0], '\0');
    p = tok_decode_piece(&t, 1, 259, &len); /* " t" after BOS loses its space */
    assert_int_equal(len, 1);
    assert_memory_equal(p, "t", 1);
    p = tok_decode_piece(&t, 300, 259, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(p, " t", 2);
    assert_int_equal(tok_count_bytes(&t, 1, t.space_id), 0);
    assert_int_equal(tok_count_bytes(&t, 7, t.space_id), 1);
    tok_free(&t);
}

static void test_byte_tokenizer(void **state) {
    tokenizer t;
    tok_init_bytes(&t);
    assert_int_equal(t.vocab_size, 256);
    assert_int_equal(t.bos_id, -1);
    const char text[] = "h\xc3\xa9\0\xff!";
    size_t len = sizeof text - 1;
    pe_err err = {0};
    int *toks, n;
    assert_int_equal(tok_encode(&t, text, len, 1, 1, &toks, &n, &err), PE_OK);
    assert_int_equal(n, (int)len);
    for (int i = 0; i < n; i++) {
        assert_int_equal(toks[i], (unsigned char)text[i]);
        int pl;
        const char *p = tok_decode_piece(&t, i ? toks[i - 1] : -1, toks[i], &pl);
        assert_int_equal(pl, 1);
        assert_int_equal((unsigned char)p[0], (unsigned char)text[i]);
        assert_int_equal(tok_count_bytes(&t, 0, toks[i]), 1);
    }
    free(toks);
    assert_int_equal(tok_encode_ref(&t, text, len, 1, 0, &toks, &n, &err), PE_OK);
    assert_int_equal(n, (int)len);
    free(toks);
    tok_free(&t);
}

/* ---- bad files ------------------------------------------------------------------------------- */

static const char *write_tmp(const char *name, const void *data, size_t len) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", tu_tmp_dir("tokenizer"), name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

/* loading must fail with PE_ERR_INPUT and a message naming the file and containing `what` */
static void expect_bad(const char *path, int vocab_size, const char *what) {
    tokenizer t;
    pe_err err = {0};
    pe_status st = tok_init_llama2c(&t, path, vocab_size, &err);
    if (st != PE_ERR_INPUT) fail_msg("%s: expected PE_ERR_INPUT, got %d (%s)", path, st, err.msg);
    assert_contains(err.msg, path);
    assert_contains(err.msg, what);
    print_message("  %s\n", err.msg);
    tok_free(&t); /* safe after a failed init */
}

/* byte offset of record i's int32 len */
static size_t record_len_offset(const unsigned char *b, int i) {
    size_t off = 4;
    for (int k = 0; k < i; k++) {
        int32_t len;
        memcpy(&len, b + off + 4, 4);
        off += 8 + (size_t)len;
    }
    return off + 4;
}

static void test_bad_files(void **state) {
    size_t len;
    char *good = read_data("tok512.bin", &len);
    unsigned char *b = malloc(len + 16);
    assert_non_null(b);

    expect_bad(write_tmp("short.bin", good, 3), TOK512_VOCAB, "expected at least 4 bytes");
    expect_bad(write_tmp("truncated.bin", good, 3000), TOK512_VOCAB, "truncated");
    expect_bad(write_tmp("truncated_piece.bin", good, len - 2), TOK512_VOCAB, "truncated");
    expect_bad(tu_data_path("tok512.bin"), TOK512_VOCAB + 1, "truncated at token record 512");
    expect_bad(tu_data_path("tok512.bin"), TOK512_VOCAB - 1, "trailing bytes");
    expect_bad(tu_data_path("tok512.bin"), 2, "expected at least 3");

    memcpy(b, good, len);
    memcpy(b + len, "junk", 4);
    expect_bad(write_tmp("trailing.bin", b, len + 4), TOK512_VOCAB, "4 trailing bytes");

    int32_t v = -1;
    memcpy(b, good, len);
    memcpy(b + record_len_offset(b, 300), &v, 4);
    expect_bad(write_tmp("neglen.bin", b, len), TOK512_VOCAB, "has length -1: expected 0..7");

    v = 1000;
    memcpy(b, good, len);
    memcpy(b + record_len_offset(b, 10), &v, 4);
    expect_bad(write_tmp("biglen.bin", b, len), TOK512_VOCAB, "has length 1000: expected 0..7");

    v = 0;
    memcpy(b, good, len);
    memcpy(b, &v, 4);
    expect_bad(write_tmp("mtl0.bin", b, len), TOK512_VOCAB, "max_token_length is 0");

    memcpy(b, good, len);
    b[record_len_offset(b, 0) + 4] = '\0'; /* "<unk>" -> "\0unk>" */
    expect_bad(write_tmp("nul.bin", b, len), TOK512_VOCAB, "NUL byte");

    expect_bad("/nonexistent/tok.bin", TOK512_VOCAB, "cannot open");
    expect_bad(tu_tmp_dir("tokenizer"), TOK512_VOCAB, "is a directory"); /* was 'out of memory' (exit 3) */
    /* a vocab_size the file cannot hold is refused before the vocab arrays are allocated */
    expect_bad(tu_data_path("tok512.bin"), 1000000000, "cannot hold the model's vocab_size 1000000000");

    /* non-finite merge scores (fuzzing: tok512.bin with every score NaN, or every score Inf, was
     * accepted): NaN compares false everywhere and breaks the merge order of both encoders */
    const float bad_scores[] = {NAN, INFINITY, -INFINITY};
    const char *bad_names[] = {"NaN", "+Inf", "-Inf"};
    for (int k = 0; k < 3; k++) {
        memcpy(b, good, len);
        for (int i = 0; i < TOK512_VOCAB; i++) memcpy(b + record_len_offset(b, i) - 4, &bad_scores[k], 4);
        char name[32], what[96];
        snprintf(name, sizeof name, "score_all_%d.bin", k);
        snprintf(what, sizeof what, "token record 0 (byte offset 4) has merge score %s", bad_names[k]);
        expect_bad(write_tmp(name, b, len), TOK512_VOCAB, what);
        memcpy(b, good, len); /* one bad record among good ones */
        memcpy(b + record_len_offset(b, 400) - 4, &bad_scores[k], 4);
        snprintf(name, sizeof name, "score_one_%d.bin", k);
        snprintf(what, sizeof what, "token record 400 (byte offset %zu) has merge score %s",
                 record_len_offset(b, 400) - 4, bad_names[k]);
        expect_bad(write_tmp(name, b, len), TOK512_VOCAB, what);
    }
    free(b);
    free(good);
}

/* Tied scores are where a heap easily disagrees with llama2.c's leftmost-wins scan: a synthetic
 * vocabulary of every string over {a, b, ' '} up to length 4 with only three score levels (plus
 * pieces at or below llama2.c's -1e10 floor, which must never merge). */
static void test_fast_matches_ref_with_ties(void **state) {
    enum { N_BASE = 259, N_EXTRA = 3 + 9 + 27 + 81 };
    unsigned char *file = malloc(64 * 1024), *w = file;
    assert_non_null(file);
    int32_t mtl = 6;
    memcpy(w, &mtl, 4);
    w += 4;
    uint64_t seed = 99;
    for (int i = 0; i < N_BASE + N_EXTRA; i++) {
        char piece[8];
        if (i == 0) strcpy(piece, "<unk>");
        else if (i == 1) strcpy(piece, "\n<s>\n");
        else if (i == 2) strcpy(piece, "\n</s>\n");
        else if (i < N_BASE) snprintf(piece, sizeof piece, "<0x%02X>", i - 3);
        else { /* i - N_BASE enumerates strings of length 1..4 over "ab " */
            int k = i - N_BASE, len = 1, count = 3;
            while (k >= count) {
                k -= count;
                count *= 3;
                len++;
            }
            for (int c = 0; c < len; c++, k /= 3) piece[c] = "ab "[k % 3];
            piece[len] = '\0';
        }
        uint64_t r = lcg_next(&seed) % 16;
        float score = i < N_BASE ? 0.0f : r == 0 ? -1e10f : r == 1 ? -3e10f : -(float)(r % 3);
        int32_t len = (int32_t)strlen(piece);
        memcpy(w, &score, 4);
        memcpy(w + 4, &len, 4);
        memcpy(w + 8, piece, (size_t)len);
        w += 8 + len;
    }
    const char *path = write_tmp("ties.bin", file, (size_t)(w - file));
    tokenizer t;
    pe_err err = {0};
    if (tok_init_llama2c(&t, path, N_BASE + N_EXTRA, &err) != PE_OK) fail_msg("%s", err.msg);
    char buf[401];
    for (int k = 0; k < 500; k++) {
        size_t len = lcg_next(&seed) % 400;
        for (size_t i = 0; i < len; i++) {
            uint64_t r = lcg_next(&seed) % 20;
            buf[i] = r == 0 ? (char)0xc3 : r == 1 ? 'z' : "ab "[r % 3];
        }
        buf[len] = '\0';
        int n, *toks = encode_both(&t, buf, len, k % 2, &n);
        if (k % 2) assert_round_trip(&t, buf, len, toks, n);
        free(toks);
    }
    tok_free(&t);
    free(file);
}

static void test_encode_whole_file(void **state) {
    tokenizer t;
    load_tok512(&t);
    size_t len;
    char *text = read_data("tinystories_val.txt", &len);
    pe_err err = {0};
    int *toks, n;
    double t0 = pe_time_now();
    assert_int_equal(tok_encode(&t, text, len, 1, 0, &toks, &n, &err), PE_OK);
    double dt = pe_time_now() - t0;
    print_message("tok_encode: tinystories_val.txt, %zu bytes -> %d tokens in %.3f s\n", len, n, dt);
    assert_round_trip(&t, text, len, toks, n);
    free(toks);
    free(text);
    tok_free(&t);
}

int main(void) {
    int tok = tu_have_data("tok512.bin", NULL), text = tu_have_data("tok512.bin", "tinystories_val.txt", NULL);
    const struct CMUnitTest tests[] = {
        tu_needs(tok, cmocka_unit_test(test_golden_lily)),
        tu_needs(text, cmocka_unit_test(test_fast_matches_ref_on_paragraphs)),
        tu_needs(tok, cmocka_unit_test(test_fast_matches_ref_on_random_bytes)),
        tu_needs(tok, cmocka_unit_test(test_decode_rules)),
        cmocka_unit_test(test_byte_tokenizer),
        tu_needs(tok, cmocka_unit_test(test_bad_files)),
        cmocka_unit_test(test_fast_matches_ref_with_ties),
        tu_needs(text, cmocka_unit_test(test_encode_whole_file)),
    };
    return tu_finish(cmocka_run_group_tests(tests, NULL, NULL));
}
