/* test_tokenizer.c: llama2.c tokenizer loading, encoding (golden ids, fast == reference), decoding
 * round trips, bad files, the byte tokenizer, and whole-file encoding speed; Hugging Face BPE
 * tokenizers (hftok.c) on small hand-made files: ids worked out by hand, fast == reference on random
 * text with many rank ties, invalid UTF-8, decoded byte counts, GPT-2 folders, refused files. The
 * real vocabularies are compared with an independent implementation by tests/cli_tok_oracle.sh. */
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


/* ---- Hugging Face tokenizers: small hand-made files ------------------------------------------ */

/* GPT-2's bytes_to_unicode, written out again here: the UTF-8 of the character standing for byte b */
static void bl_char(int b, char *out) {
    int cp, n = 0;
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) cp = b;
    else {
        for (int k = 0; k < b; k++)
            if (!((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) out[0] = (char)cp, out[1] = '\0';
    else out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = '\0';
}

static const char *write_tmp_str(const char *name, const char *s) { return write_tmp(name, s, strlen(s)); }

/* append to a growing JSON text */
static void jcat(char **j, size_t *n, const char *s) {
    size_t l = strlen(s);
    *j = realloc(*j, *n + l + 1);
    assert_non_null(*j);
    memcpy(*j + *n, s, l + 1);
    *n += l;
}

/* A byte-level BPE over bytes 0..255 (ids 0..255 in byte order) plus the merged tokens of `merges`
 * ("left right" in the byte-level alphabet; the merged token gets the next id), GPT-2's regex
 * (ByteLevel use_regex) unless `split_regex` is given (then Split + ByteLevel(use_regex false), as
 * Llama 3 / Qwen write it), and the added tokens "<|x|>" (special, 300) and "<y>" (not special, 301). */
static const char *write_bytelevel(const char *name, const char *const *merges, int n_merges, const char *split_regex,
                                   const char *normalizer) {
    char  *j = NULL, c[8], buf[512];
    size_t n = 0;
    jcat(&j, &n, "{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 300, \"content\": \"<|x|>\", \"special\": true},"
                 " {\"id\": 301, \"content\": \"<y>\", \"special\": false}], \"normalizer\": ");
    jcat(&j, &n, normalizer ? normalizer : "null");
    if (split_regex) {
        snprintf(buf, sizeof buf, ", \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
                 "\"pattern\": {\"Regex\": \"%s\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
                 "\"add_prefix_space\": false, \"use_regex\": false}]}", split_regex);
        jcat(&j, &n, buf);
    } else {
        jcat(&j, &n, ", \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}");
    }
    jcat(&j, &n, ", \"post_processor\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {");
    for (int b = 0; b < 256; b++) {
        bl_char(b, c);
        snprintf(buf, sizeof buf, "%s\"%s%s\": %d", b ? ", " : "", b == '"' || b == '\\' ? "\\" : "", c, b);
        jcat(&j, &n, buf);
    }
    for (int m = 0; m < n_merges; m++) { /* merged token = left + right without the space */
        char tok[64];
        const char *sp = strchr(merges[m], ' ');
        snprintf(tok, sizeof tok, "%.*s%s", (int)(sp - merges[m]), merges[m], sp + 1);
        snprintf(buf, sizeof buf, ", \"%s\": %d", tok, 256 + m);
        jcat(&j, &n, buf);
    }
    jcat(&j, &n, "}, \"merges\": [");
    for (int m = 0; m < n_merges; m++) {
        snprintf(buf, sizeof buf, "%s\"%s\"", m ? ", " : "", merges[m]);
        jcat(&j, &n, buf);
    }
    jcat(&j, &n, "]}}");
    const char *path = write_tmp_str(name, j);
    free(j);
    return path;
}

static void load_hf(tokenizer *t, const char *path) {
    pe_err err = {0};
    if (tok_init_hf(t, path, &err) != PE_OK) fail_msg("tok_init_hf %s: %s", path, err.msg);
}

static void expect_ids(const tokenizer *t, const char *text, const int *want, int n_want) {
    int n, *ids = encode_both(t, text, strlen(text), t->add_bos, &n);
    if (n != n_want) fail_msg("'%s': %d ids, expected %d", text, n, n_want);
    for (int i = 0; i < n; i++)
        if (ids[i] != want[i]) fail_msg("'%s': id %d is %d, expected %d", text, i, ids[i], want[i]);
    free(ids);
}

/* ids worked out by hand: merges by rank, the GPT-2 regex, added tokens before the model */
static void test_hf_bytelevel_by_hand(void **state) {
    static const char *const merges[] = {"a b", "a ab", "Ġ ab", "b a"}; /* ab=256 aab=257 " ab"=258 ba=259 */
    tokenizer t;
    load_hf(&t, write_bytelevel("bl.json", merges, 4, NULL, NULL));
    assert_int_equal(t.kind, TOK_KIND_BPE_BYTELEVEL);
    assert_string_equal(tok_kind_name(&t), "bpe-byte-level");
    assert_int_equal(t.vocab_size, 302);
    assert_int_equal(t.add_bos, 0);
    /* "aab" -> a a b -> a ab (rank 0) -> aab (rank 1); " ab" -> Ġ a b -> Ġ ab -> " ab"; "<|x|>" is the added
     * token; "bab" -> b a b: (a b) rank 0 beats (b a) rank 3 -> b ab */
    expect_ids(&t, "aab ab<|x|>bab", (int[]){257, 258, 300, 'b', 256}, 5);
    /* the regex splits "'s" and digits; "<y>" is matched even glued to text */
    expect_ids(&t, "it's 42<y>a", (int[]){'i', 't', '\'', 's', ' ', '4', '2', 301, 'a'}, 9);
    /* ties: "aaab" has (a a)? no merge; (a b) at the end only */
    expect_ids(&t, "aaab", (int[]){'a', 257}, 2);
    /* decoded bytes: the special token counts nothing, the other added token its text */
    assert_int_equal(tok_count_bytes(&t, -1, 258), 3);
    assert_int_equal(tok_count_bytes(&t, 258, 300), 0);
    assert_int_equal(tok_count_bytes(&t, 300, 301), 3);
    tok_free(&t);
}

/* random text over a small alphabet with many merges of equal length: fast == naive reference */
static void test_hf_fast_matches_ref(void **state) {
    static const char *const merges[] = {"a a", "a b", "b a", "aa a", "a aa", "ab a", "a ba", "aa aa", "Ġ a", "Ġ b",
                                         "Ġa a", "Ġ aa", "b b", "bb a", "Ġ Ġ", "ĠĠ Ġ", "Ã ©", "aa b", "b aa", "Ġb a"};
    const char *regexes[] = {NULL, "(?i:'s|'t)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"};
    uint64_t    seed = 7;
    char        buf[301];
    for (int r = 0; r < 2; r++) {
        tokenizer t;
        load_hf(&t, write_bytelevel(r ? "bl_split.json" : "bl_gpt2.json", merges, 20, regexes[r], NULL));
        for (int k = 0; k < 400; k++) {
            size_t len = lcg_next(&seed) % 300;
            for (size_t i = 0; i < len;) {
                uint64_t x = lcg_next(&seed) % 24;
                const char *piece = x < 8 ? "a" : x < 13 ? "b" : x < 17 ? " " : x == 17 ? "\xc3\xa9" : x == 18 ? "\n"
                                  : x == 19 ? "1" : x == 20 ? "'s" : x == 21 ? "<|x|>" : x == 22 ? "\xe2\x82" : "\t";
                size_t pl = strlen(piece);
                if (i + pl > len) break;
                memcpy(buf + i, piece, pl);
                i += pl;
                buf[i] = '\0';
                if (i == len) break;
            }
            buf[len] = '\0';
            int n, *ids = encode_both(&t, buf, strlen(buf), 0, &n);
            free(ids);
        }
        tok_free(&t);
    }
}

/* invalid UTF-8 becomes U+FFFD, one per maximal invalid subpart, before anything else */
static void test_hf_invalid_utf8(void **state) {
    static const char *const merges[] = {"ï ¿", "ï¿ ½"};
    tokenizer t;
    load_hf(&t, write_bytelevel("bl_fffd.json", merges, 2, NULL, NULL));
    static const char *const pairs[][2] = {
        {"a\xff" "b", "a\xef\xbf\xbd" "b"},                       /* a byte that never starts a character */
        {"\xe2\x82" "A", "\xef\xbf\xbd" "A"},                     /* a cut 3-byte character: one U+FFFD */
        {"x\xf0\x9f\x98", "x\xef\xbf\xbd"},                       /* a cut 4-byte one at the end */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a surrogate: three */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* an overlong form: two */
        {"caf\xe9 ok", "caf\xef\xbf\xbd ok"},                     /* Latin-1 */
    };
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        int na, nb, *a = encode_both(&t, pairs[p][0], strlen(pairs[p][0]), 0, &na);
        int *b = encode_both(&t, pairs[p][1], strlen(pairs[p][1]), 0, &nb);
        if (na != nb || memcmp(a, b, (size_t)na * sizeof *a)) fail_msg("pair %zu: invalid bytes not read as U+FFFD", p);
        free(a);
        free(b);
    }
    tok_free(&t);
}

/* SentencePiece-style BPE: the legacy normalizer (Prepend + Replace) and the Metaspace form, byte
 * fallback, TemplateProcessing's BOS, decoded bytes */
static void test_hf_sentencepiece(void **state) {
    char  *j = NULL, buf[256];
    size_t n = 0;
    /* ids: <unk>=0 <s>=1 </s>=2 <0x00>..<0xFF>=3..258, then ▁=259 a=260 b=261 ▁a=262 ab=263 ▁ab=264 ▁▁=265 */
    const char *head = "{\"added_tokens\": [{\"id\": 0, \"content\": \"<unk>\", \"special\": true}, {\"id\": 1, \"content\": "
                       "\"<s>\", \"special\": true}, {\"id\": 2, \"content\": \"</s>\", \"special\": true}], ";
    const char *legacy = "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": "
                         "\"\xe2\x96\x81\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": "
                         "\"\xe2\x96\x81\"}]}, \"pre_tokenizer\": null, ";
    const char *meta = "\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"\xe2\x96\x81\", "
                       "\"prepend_scheme\": \"first\", \"split\": true}, ";
    const char *tail = "\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": "
                       "\"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"special_tokens\": "
                       "{\"<s>\": {\"id\": \"<s>\", \"ids\": [1], \"tokens\": [\"<s>\"]}}}, \"model\": {\"type\": \"BPE\", "
                       "\"unk_token\": \"<unk>\", \"byte_fallback\": true, \"fuse_unk\": true, \"vocab\": {\"<unk>\": 0, "
                       "\"<s>\": 1, \"</s>\": 2";
    for (int form = 0; form < 2; form++) {
        n = 0;
        jcat(&j, &n, head);
        jcat(&j, &n, form ? meta : legacy);
        jcat(&j, &n, tail);
        for (int b = 0; b < 256; b++) {
            snprintf(buf, sizeof buf, ", \"<0x%02X>\": %d", b, 3 + b);
            jcat(&j, &n, buf);
        }
        jcat(&j, &n, ", \"\xe2\x96\x81\": 259, \"a\": 260, \"b\": 261, \"\xe2\x96\x81" "a\": 262, \"ab\": 263, \"\xe2\x96\x81"
                     "ab\": 264, \"\xe2\x96\x81\xe2\x96\x81\": 265}, \"merges\": [\"a b\", \"\xe2\x96\x81 a\", \"\xe2\x96\x81"
                     " ab\", \"\xe2\x96\x81 \xe2\x96\x81\"]}}");
        tokenizer t;
        load_hf(&t, write_tmp_str(form ? "spm_meta.json" : "spm_legacy.json", j));
        assert_int_equal(t.kind, TOK_KIND_BPE_SPM);
        assert_int_equal(t.add_bos, 1);
        assert_int_equal(t.bos_id, 1);
        /* "ab ab\xc3\xa9" -> "▁ab▁abé": ▁ab ▁ab, é by byte fallback (0xC3, 0xA9) */
        expect_ids(&t, "ab ab\xc3\xa9", (int[]){1, 264, 264, 3 + 0xC3, 3 + 0xA9}, 5);
        /* "  a": legacy gives "▁▁▁a": (▁ a) rank 1 first, then (▁ ▁) rank 3: ▁▁ ▁a; Metaspace does not prepend
         * to a text that starts with a space: "▁▁a", split into the words "▁" and "▁a" */
        if (form == 0) expect_ids(&t, "  a", (int[]){1, 265, 262}, 3);
        else expect_ids(&t, "  a", (int[]){1, 259, 262}, 3);
        /* a special token splits the text; legacy prepends ▁ to every section, "first" only to the first */
        if (form == 0) expect_ids(&t, "a</s>b", (int[]){1, 262, 2, 259, 261}, 5);
        else expect_ids(&t, "a</s>b", (int[]){1, 262, 2, 261}, 4);
        /* decoded bytes add up to the text: the added ▁ is dropped after BOS */
        const char *text = "ab ab\xc3\xa9 b";
        int         nt, *ids = encode_both(&t, text, strlen(text), 1, &nt);
        long        total = 0;
        for (int i = 1; i < nt; i++) total += tok_count_bytes(&t, ids[i - 1], ids[i]);
        assert_int_equal(total, (long)strlen(text));
        free(ids);
        tok_free(&t);
    }
    free(j);
}

/* a GPT-2 style folder (vocab.json + merges.txt) read by tok_init_for_model, as [model] tokenizer =
 * auto does for a model folder: the same ids as the tokenizer.json of the same vocabulary */
static void test_hf_gpt2_folder(void **state) {
    static const char *const merges[] = {"a b", "a ab", "Ġ ab", "b a"};
    tokenizer ref, t;
    load_hf(&ref, write_bytelevel("bl_ref.json", merges, 4, NULL, NULL));
    char dir[4096], path[4200], c[8];
    snprintf(dir, sizeof dir, "%s/gpt2dir", tu_tmp_dir("tokenizer"));
    assert_int_equal(pe_mkdir_p(dir, NULL), PE_OK);
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "{");
    for (int b = 0; b < 256; b++) {
        bl_char(b, c);
        fprintf(f, "%s\"%s%s\": %d", b ? ", " : "", b == '"' || b == '\\' ? "\\" : "", c, b);
    }
    fprintf(f, ", \"ab\": 256, \"aab\": 257, \"\xc4\xa0" "ab\": 258, \"ba\": 259}");
    fclose(f);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "#version: 0.2\na b\na ab\n\xc4\xa0 ab\nb a\n");
    fclose(f);
    pe_err err = {0};
    if (tok_init_for_model(&t, "auto", dir, 260, &err) != PE_OK) fail_msg("%s", err.msg);
    assert_int_equal(t.kind, TOK_KIND_BPE_BYTELEVEL);
    assert_int_equal(t.vocab_size, 260);
    const char *text = "aab ab bab it's 42 <|x|>";
    int         n1, n2, *a = encode_both(&t, text, strlen(text), 0, &n1), *b = encode_both(&ref, text, strlen(text), 0, &n2);
    /* the folder has no added tokens: "<|x|>" is plain text there, one token in the json's vocabulary */
    assert_int_equal(n1, n2 + 4);
    assert_memory_equal(a, b, (size_t)(n2 - 1) * sizeof *a);
    free(a);
    free(b);
    tok_free(&t);
    /* auto beside a weights file in that folder (the file itself need not be read here) */
    char weights[4200];
    snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
    if (tok_init_for_model(&t, "", weights, 260, &err) != PE_OK) fail_msg("%s", err.msg);
    assert_int_equal(t.kind, TOK_KIND_BPE_BYTELEVEL);
    assert_contains(tok_source(&t), "gpt2dir/vocab.json + merges.txt");
    tok_free(&t);
    /* a model with fewer embedding rows than the tokenizer has ids is refused */
    assert_int_equal(tok_init_for_model(&t, dir, NULL, 259, &err), PE_ERR_INPUT);
    assert_contains(err.msg, "has 260 token ids but the model's vocabulary has 259");
    tok_free(&ref);
}

static void expect_bad_hf(const char *name, const char *json, const char *what) {
    tokenizer   t;
    pe_err      err = {0};
    const char *path = write_tmp_str(name, json);
    pe_status   st = tok_init_for_model(&t, path, NULL, 1 << 20, &err);
    if (st != PE_ERR_INPUT) fail_msg("%s: expected PE_ERR_INPUT, got %d (%s)", name, st, err.msg);
    assert_contains(err.msg, path);
    assert_contains(err.msg, what);
    print_message("  %s\n", err.msg);
}

static void test_hf_bad_files(void **state) {
    expect_bad_hf("wp.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", "model.type is \"WordPiece\"");
    expect_bad_hf("uni.json", "{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}", "Unigram (T5, ALBERT)");
    expect_bad_hf("nomodel.json", "{\"version\": \"1.0\"}", "no \"model\" object");
    expect_bad_hf("cut.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\":", "not valid JSON");
    expect_bad_hf("array.json", "[1, 2]", "expected a JSON object");
    expect_bad_hf("empty.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}}", "vocab is empty");
    expect_bad_hf("negid.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}",
                  "vocab entry \"a\": expected an integer id");
    expect_bad_hf("dupid.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}",
                  "id 0 is given to two tokens");
    expect_bad_hf("merge.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
                  "merge 0 (\"a\" + \"b\"): the merged token is not in the vocab");
    expect_bad_hf("merge1.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]}}",
                  "merge 0 \"ab\": expected \"left right\"");
    expect_bad_hf("dropout.json", "{\"model\": {\"type\": \"BPE\", \"dropout\": 0.1, \"vocab\": {\"a\": 0}, \"merges\": []}}",
                  "model.dropout is 0.1");
    expect_bad_hf("lower.json", "{\"normalizer\": {\"type\": \"Lowercase\"}, \"model\": {\"type\": \"BPE\", \"vocab\": "
                  "{\"a\": 0}, \"merges\": []}}", "normalizer type \"Lowercase\" is not supported");
    expect_bad_hf("ws.json", "{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"type\": \"BPE\", \"vocab\": "
                  "{\"a\": 0}, \"merges\": []}}", "pre_tokenizer type \"Whitespace\" is not supported");
    expect_bad_hf("regex.json", "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"[a\"}, \"behavior\": "
                  "\"Isolated\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}",
                  "the regex /[a/ does not compile with PCRE2");
    expect_bad_hf("bytes.json", "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"vocab\": "
                  "{\"a\": 0}, \"merges\": []}}", "byte-level vocab has no token for byte 0x00");
    expect_bad_hf("post.json", "{\"post_processor\": {\"type\": \"BertProcessing\"}, \"model\": {\"type\": \"BPE\", "
                  "\"vocab\": {\"a\": 0}, \"merges\": []}}", "post_processor type \"BertProcessing\" is not supported");
    expect_bad_hf("single.json", "{\"added_tokens\": [{\"id\": 1, \"content\": \"<w>\", \"single_word\": true}], \"model\": "
                  "{\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", "single_word = true");
    /* a character neither in the vocabulary nor representable: no byte fallback, no unk */
    tokenizer t;
    pe_err    err = {0};
    load_hf(&t, write_tmp_str("nofallback.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}"));
    int *ids, n;
    assert_int_equal(tok_encode(&t, "ab", 2, 0, 0, &ids, &n, &err), PE_ERR_INPUT);
    assert_contains(err.msg, "neither in the vocabulary nor representable by byte fallback");
    tok_free(&t);
    /* a Split regex that can match empty ("x*"): like the tokenizers library's and transformers.js's
     * splitters, every empty match is a split point (so "ab" is two words, never merged; Removed drops
     * the runs of x) */
    load_hf(&t, write_tmp_str("empty_match.json", "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": "
                              "\"x*\"}, \"behavior\": \"Removed\"}, \"model\": {\"type\": \"BPE\", \"vocab\": "
                              "{\"a\": 0, \"b\": 1, \"ab\": 2, \"x\": 3}, \"merges\": [\"a b\"]}}"));
    expect_ids(&t, "abxxab", (int[]){0, 1, 0, 1}, 4);
    expect_ids(&t, "ab", (int[]){0, 1}, 2);
    expect_ids(&t, "xxx", (int[]){0}, 0);
    tok_free(&t);
    /* a regex that backtracks without end: PCRE2's match limit is an error, never "no match" */
    load_hf(&t, write_tmp_str("backtrack.json", "{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": "
                              "\"(a+a+)+y\"}, \"behavior\": \"Isolated\"}, \"model\": {\"type\": \"BPE\", \"vocab\": "
                              "{\"a\": 0, \"z\": 1, \"y\": 2}, \"merges\": []}}"));
    const char *aaa = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaazy";
    assert_int_equal(tok_encode(&t, aaa, strlen(aaa), 0, 0, &ids, &n, &err), PE_ERR_INPUT);
    assert_contains(err.msg, "hit PCRE2's match or stack limit");
    tok_free(&t);
    /* a folder without tokenizer files */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/emptydir", tu_tmp_dir("tokenizer"));
    assert_int_equal(pe_mkdir_p(dir, NULL), PE_OK);
    assert_int_equal(tok_init_for_model(&t, "auto", dir, 512, &err), PE_ERR_INPUT);
    assert_contains(err.msg, "holds neither tokenizer.json nor vocab.json + merges.txt");
    assert_int_equal(tok_init_for_model(&t, "none", dir, 512, &err), PE_ERR_INPUT);
    assert_int_equal(tok_init_for_model(&t, "", "model.bin", 512, &err), PE_ERR_INPUT);
    assert_contains(err.msg, "needs a tokenizer");
    assert_int_equal(tok_init_for_model(&t, "", "model.bin", 256, &err), PE_OK);
    assert_int_equal(t.kind, TOK_KIND_BYTES);
    tok_free(&t);
    /* a vocab-256 model folder without tokenizer files: bytes, as for a weights file (tok_auto_finds agrees) */
    assert_int_equal(tok_auto_finds(dir, 256), 1);
    assert_int_equal(tok_auto_finds(dir, 512), 0);
    assert_int_equal(tok_init_for_model(&t, "auto", dir, 256, &err), PE_OK);
    assert_int_equal(t.kind, TOK_KIND_BYTES);
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
        cmocka_unit_test(test_hf_bytelevel_by_hand),
        cmocka_unit_test(test_hf_fast_matches_ref),
        cmocka_unit_test(test_hf_invalid_utf8),
        cmocka_unit_test(test_hf_sentencepiece),
        cmocka_unit_test(test_hf_gpt2_folder),
        cmocka_unit_test(test_hf_bad_files),
    };
    return tu_finish(cmocka_run_group_tests(tests, NULL, NULL));
}
