/* test_dataset.c: text datasets (documents, windows: every target scored exactly once, limit,
 * errors) and IDX image sets (Fashion-MNIST, corrupted files). */
#include "testutil.h"

#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#ifndef PATHENS_FASHION_DIR
#define PATHENS_FASHION_DIR "/usr/share/datasets/fashion-mnist"
#endif

static void assert_contains(const char *haystack, const char *needle) {
    if (!strstr(haystack, needle)) fail_msg("'%s' does not contain '%s'", haystack, needle);
}

static void load_tok512(tokenizer *t) {
    pe_err err = {0};
    if (tok_init_llama2c(t, tu_data_path("tok512.bin"), 512, &err) != PE_OK) fail_msg("%s", err.msg);
}

/* write data to <tmp>/dataset/<name>; the path goes to out (4096 bytes) and is returned */
static const char *write_tmp(char *out, const char *name, const void *data, size_t len) {
    snprintf(out, 4096, "%s/%s", tu_tmp_dir("dataset"), name);
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return out;
}

static text_dataset load_text_ok(const char *path, const tokenizer *t, data_text_mode mode, int context, int stride,
                                 long limit) {
    text_dataset d;
    pe_err err = {0};
    if (data_load_text(&d, path, t, mode, context, stride, limit, &err) != PE_OK) fail_msg("%s", err.msg);
    return d;
}

/* structural invariants shared by both modes */
static void check_seqs(const text_dataset *d) {
    int64_t scored = 0, bytes = 0;
    for (int i = 0; i < d->n_seqs; i++) {
        const text_seq *s = &d->seqs[i];
        assert_true(s->len >= 2 && s->len <= d->context);
        assert_true(s->start >= 0 && s->start + s->len <= d->n_tokens);
        assert_true(s->score_begin >= 0 && s->score_begin < s->len - 1);
        scored += s->len - 1 - s->score_begin;
        for (int p = s->score_begin + 1; p < s->len; p++) bytes += d->tok_bytes[s->start + p];
    }
    assert_int_equal(scored, d->n_scored);
    assert_int_equal(bytes, d->n_scored_bytes);
}

/* ---- documents ------------------------------------------------------------------------------- */

static void test_documents_tinystories(void **state) {
    tokenizer t;
    load_tok512(&t);
    const char *path = tu_data_path("tinystories_val.txt");
    /* 4300 paragraphs separated by empty lines; two of them are split again by a line holding a
     * single space (lines 6285 and 6338), which is blank too: 4302 documents */
    text_dataset d = load_text_ok(path, &t, DATA_MODE_DOCUMENTS, 512, 0, 0);
    assert_int_equal(d.n_seqs, 4302);
    assert_int_equal(d.seqs[d.n_seqs - 1].doc_id, 4301);
    check_seqs(&d);
    for (int i = 0; i < d.n_seqs; i++) {
        assert_int_equal(d.seqs[i].doc_id, i);
        assert_int_equal(d.seqs[i].score_begin, 0);
        assert_int_equal(d.tokens[d.seqs[i].start], 1); /* BOS */
        assert_int_equal(d.tok_bytes[d.seqs[i].start], 0);
    }

    /* the first document is the file's first paragraph, encoded with BOS */
    char *text;
    size_t len;
    pe_err err = {0};
    assert_int_equal(pe_read_file(path, &text, &len, &err), PE_OK);
    size_t doc0_len = (size_t)(strstr(text, "\n\n") - text);
    int *toks, n;
    assert_int_equal(tok_encode(&t, text, doc0_len, 1, 0, &toks, &n, &err), PE_OK);
    assert_true(n <= 512);
    assert_int_equal(d.seqs[0].len, n);
    assert_memory_equal(d.tokens + d.seqs[0].start, toks, (size_t)n * sizeof *toks);
    long bytes = 0;
    for (int p = 1; p < n; p++) bytes += d.tok_bytes[d.seqs[0].start + p];
    assert_int_equal(bytes, (long)doc0_len); /* the targets decode to the whole text */
    free(toks);
    free(text);
    data_free_text(&d);

    /* a context longer than any document: the targets decode to every document's whole text
     * (785,768 bytes: the file less its separators, computed independently) */
    d = load_text_ok(path, &t, DATA_MODE_DOCUMENTS, 1 << 20, 0, 0);
    assert_int_equal(d.n_seqs, 4302);
    assert_int_equal(d.n_scored_bytes, 785768);
    text_dataset s = load_text_ok(path, &t, DATA_MODE_DOCUMENTS, 16, 0, 0);
    assert_int_equal(s.n_seqs, 4302); /* short context: documents truncated, none lost */
    check_seqs(&s);
    for (int i = 0; i < s.n_seqs; i++) {
        assert_int_equal(s.seqs[i].len, d.seqs[i].len < 16 ? d.seqs[i].len : 16);
        assert_memory_equal(s.tokens + s.seqs[i].start, d.tokens + d.seqs[i].start,
                            (size_t)s.seqs[i].len * sizeof *s.tokens);
    }
    data_free_text(&s);
    data_free_text(&d);

    /* limit keeps the first N documents */
    d = load_text_ok(path, &t, DATA_MODE_DOCUMENTS, 512, 0, 10);
    assert_int_equal(d.n_seqs, 10);
    assert_int_equal(d.seqs[9].doc_id, 9);
    data_free_text(&d);
    tok_free(&t);
}

static void test_documents_splitting(void **state) {
    tokenizer t;
    tok_init_bytes(&t); /* tokens = bytes: the document texts are visible as tokens */
    const char text[] = "\n \t\r\n  hello\r\nworld \r\n \t \r\n\r\nsecond\n\n\nx\n\nlast one";
    char path[4096];
    write_tmp(path, "docs.txt", text, sizeof text - 1);
    text_dataset d = load_text_ok(path, &t, DATA_MODE_DOCUMENTS, 100, 0, 0);
    const char *want[] = {"  hello\r\nworld ", "second", "last one"};
    const int want_id[] = {0, 1, 3}; /* "x" (document 2) has one token and is dropped */
    assert_int_equal(d.n_seqs, 3);
    check_seqs(&d);
    for (int i = 0; i < 3; i++) {
        const text_seq *s = &d.seqs[i];
        assert_int_equal(s->doc_id, want_id[i]);
        assert_int_equal(s->len, (int)strlen(want[i]));
        for (int p = 0; p < s->len; p++) {
            assert_int_equal(d.tokens[s->start + p], (unsigned char)want[i][p]);
            assert_int_equal(d.tok_bytes[s->start + p], p == 0 ? 0 : 1);
        }
    }
    assert_int_equal(d.n_scored, 14 + 5 + 7);
    assert_int_equal(d.n_scored_bytes, 14 + 5 + 7);
    data_free_text(&d);
    tok_free(&t);
}

/* ---- windows --------------------------------------------------------------------------------- */

/* every stream target (index >= 1) is scored by exactly one window */
static void check_coverage(const text_dataset *d, int context, int stride) {
    int *count = calloc((size_t)d->n_tokens, sizeof *count);
    assert_non_null(count);
    int64_t prev_start = -1;
    for (int w = 0; w < d->n_seqs; w++) {
        const text_seq *s = &d->seqs[w];
        assert_int_equal(s->doc_id, w);
        assert_true(s->start > prev_start);
        assert_true(s->start - prev_start <= stride || w == 0);
        prev_start = s->start;
        assert_true(s->len == context || s->start + s->len == d->n_tokens);
        for (int p = s->score_begin + 1; p < s->len; p++) count[s->start + p]++;
    }
    assert_int_equal(d->seqs[0].start, 0);
    assert_int_equal(d->seqs[0].score_begin, 0);
    assert_int_equal(d->seqs[d->n_seqs - 1].start + d->seqs[d->n_seqs - 1].len, d->n_tokens);
    assert_int_equal(count[0], 0);
    for (int64_t i = 1; i < d->n_tokens; i++)
        if (count[i] != 1)
            fail_msg("context %d stride %d: stream target %lld scored %d times", context, stride, (long long)i,
                     count[i]);
    assert_int_equal(d->n_scored, d->n_tokens - 1);
    free(count);
}

static void test_windows_tinystories(void **state) {
    tokenizer t;
    load_tok512(&t);
    const char *path = tu_data_path("tinystories_val.txt");
    char *text;
    size_t len;
    pe_err err = {0};
    assert_int_equal(pe_read_file(path, &text, &len, &err), PE_OK);
    int *toks, n;
    assert_int_equal(tok_encode(&t, text, len, 1, 0, &toks, &n, &err), PE_OK);

    const int cs[][2] = {{512, 512}, {512, 128}, {512, 511}, {64, 64}, {64, 17}, {64, 1}, {2, 2}, {2, 1}};
    for (size_t k = 0; k < sizeof cs / sizeof *cs; k++) {
        text_dataset d = load_text_ok(path, &t, DATA_MODE_WINDOWS, cs[k][0], cs[k][1], 0);
        assert_int_equal(d.n_tokens, n);
        assert_memory_equal(d.tokens, toks, (size_t)n * sizeof *toks); /* BOS + encode(file) */
        check_seqs(&d);
        check_coverage(&d, cs[k][0], cs[k][1]);
        assert_int_equal(d.n_scored_bytes, (int64_t)len); /* the targets decode to the whole file */
        if (k == 0) print_message("windows 512/512: %d windows over %lld tokens\n", d.n_seqs, (long long)n);
        data_free_text(&d);
    }
    /* limit keeps the first N windows */
    text_dataset d = load_text_ok(path, &t, DATA_MODE_WINDOWS, 256, 128, 3);
    assert_int_equal(d.n_seqs, 3);
    assert_int_equal(d.seqs[2].start, 256);
    assert_int_equal(d.seqs[2].score_begin, 127);
    assert_int_equal(d.n_scored, 255 + 128 + 128);
    check_seqs(&d);
    data_free_text(&d);
    free(toks);
    free(text);
    tok_free(&t);
}

static void test_windows_bytes_shakespeare(void **state) {
    tokenizer t;
    tok_init_bytes(&t);
    const char *path = tu_data_path("tinyshakespeare.txt");
    const int cs[][2] = {{256, 256}, {256, 100}, {1024, 1}};
    for (size_t k = 0; k < sizeof cs / sizeof *cs; k++) {
        text_dataset d = load_text_ok(path, &t, DATA_MODE_WINDOWS, cs[k][0], cs[k][1], 0);
        assert_int_equal(d.n_tokens, 1115394); /* one token per byte, no BOS */
        check_seqs(&d);
        check_coverage(&d, cs[k][0], cs[k][1]);
        assert_int_equal(d.n_scored_bytes, 1115394 - 1);
        data_free_text(&d);
    }
    tok_free(&t);
}

/* ---- text errors ----------------------------------------------------------------------------- */

static void expect_text_error(const char *path, const tokenizer *t, data_text_mode mode, int context, int stride,
                              const char *what) {
    text_dataset d;
    pe_err err = {0};
    pe_status st = data_load_text(&d, path, t, mode, context, stride, 0, &err);
    if (st != PE_ERR_INPUT) fail_msg("%s: expected PE_ERR_INPUT, got %d (%s)", path, st, err.msg);
    assert_contains(err.msg, path);
    assert_contains(err.msg, what);
    print_message("  %s\n", err.msg);
    assert_null(d.seqs);
    assert_null(d.tokens);
}

static void test_text_errors(void **state) {
    tokenizer t;
    tok_init_bytes(&t);
    char good[4096];
    char   text[4000];
    size_t n = 0;
    for (int i = 0; i < 40; i++) /* a good file: 40 short documents */
        n += (size_t)snprintf(text + n, sizeof text - n, "%s a story, number %d.\n\n", i % 2 ? "Once" : "Then", i);
    write_tmp(good, "good.txt", text, n);
    expect_text_error("/nonexistent/data.txt", &t, DATA_MODE_DOCUMENTS, 64, 0, "[data] path");
    expect_text_error(good, &t, DATA_MODE_DOCUMENTS, 1, 0, "context is 1");
    expect_text_error(good, &t, DATA_MODE_WINDOWS, 64, 0, "stride is 0");
    expect_text_error(good, &t, DATA_MODE_WINDOWS, 64, 65, "stride is 65");
    char empty[4096], blank[4096];
    write_tmp(empty, "empty.txt", "", 0);
    expect_text_error(empty, &t, DATA_MODE_DOCUMENTS, 64, 0, "empty dataset");
    expect_text_error(empty, &t, DATA_MODE_WINDOWS, 64, 64, "empty dataset");
    write_tmp(blank, "blank.txt", "\n  \n\t\n\n", 6);
    expect_text_error(blank, &t, DATA_MODE_DOCUMENTS, 64, 0, "empty dataset");
    /* a directory: ftell said LONG_MAX and the read failed as 'out of memory' (exit 3) */
    expect_text_error(tu_tmp_dir("dataset"), &t, DATA_MODE_DOCUMENTS, 64, 0, "is a directory");
    tok_free(&t);
}

/* Binary and UTF-16 data were tokenised and scored as text (fuzzing: txt_only_nul.txt,
 * txt_utf16.txt: perplexity 4.35e9, exit 0); both tokenizers refuse them now, in both modes. */
static void test_text_not_binary(void **state) {
    tokenizer tl, tb;
    load_tok512(&tl);
    tok_init_bytes(&tb);
    const tokenizer *toks[2] = {&tl, &tb};
    char p[4096];
    static char buf[4096];
    for (int k = 0; k < 2; k++) {
        const tokenizer *t = toks[k];
        memset(buf, 0, 1000);
        write_tmp(p, "only_nul.txt", buf, 1000);
        expect_text_error(p, t, DATA_MODE_DOCUMENTS, 64, 0, "looks binary, not UTF-8 text: byte offset 0 is a NUL byte");
        expect_text_error(p, t, DATA_MODE_WINDOWS, 64, 64, "looks binary");
        const char text[] = "Once upon a time.\n\nThere was a cat.\0And then.\n";
        write_tmp(p, "mid_nul.txt", text, sizeof text - 1);
        expect_text_error(p, t, DATA_MODE_DOCUMENTS, 64, 0, "byte offset 35 is a NUL byte");
        /* UTF-16 with a byte-order mark (LE and BE), and without one */
        const char *ascii = "Once upon a time there was a cat.\n\nAnother.\n";
        size_t n = strlen(ascii);
        for (int be = 0; be <= 1; be++) {
            buf[0] = be ? (char)0xFE : (char)0xFF;
            buf[1] = be ? (char)0xFF : (char)0xFE;
            for (size_t i = 0; i < n; i++) {
                buf[2 + 2 * i + be] = ascii[i];
                buf[2 + 2 * i + !be] = 0;
            }
            write_tmp(p, "utf16.txt", buf, 2 + 2 * n);
            expect_text_error(p, t, DATA_MODE_DOCUMENTS, 64, 0, be ? "byte-order mark FE FF" : "byte-order mark FF FE");
            expect_text_error(p, t, DATA_MODE_DOCUMENTS, 64, 0, "iconv -f UTF-16 -t UTF-8");
            write_tmp(p, "utf16_nobom.txt", buf + 2, 2 * n);
            expect_text_error(p, t, DATA_MODE_DOCUMENTS, 64, 0,
                              be ? "without a byte-order mark" : "the first at byte offset 1); convert it (iconv -f UTF-16LE");
        }
        /* random bytes without NULs: mostly invalid UTF-8 */
        uint64_t seed = 7;
        for (int i = 0; i < 3000; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            buf[i] = (char)(1 + (seed >> 33) % 255);
        }
        write_tmp(p, "random.txt", buf, 3000);
        expect_text_error(p, t, DATA_MODE_DOCUMENTS, 64, 0, "are invalid UTF-8 or control characters");
        expect_text_error(p, t, DATA_MODE_WINDOWS, 64, 32, "looks binary");
        /* ASCII control characters are not text either */
        memset(buf, 0x01, 500);
        write_tmp(p, "controls.txt", buf, 500);
        expect_text_error(p, t, DATA_MODE_DOCUMENTS, 64, 0, "500 of its 500 bytes (100%) are invalid UTF-8");
    }
    /* text with a few stray bytes (Latin-1 accents, a cut-off last character) is still text */
    const char latin1[] = "Il \xe9tait une fois un chat.\n\nCaf\xe9 cr\xe8me, tr\xe8s bon.\n\nUn dernier mot \xe2\x82";
    write_tmp(p, "latin1.txt", latin1, sizeof latin1 - 1);
    text_dataset d = load_text_ok(p, &tl, DATA_MODE_DOCUMENTS, 64, 0, 0);
    assert_int_equal(d.n_seqs, 3);
    data_free_text(&d);
    /* a tiny file whose last character is cut off mid-sequence is text; four bad bytes are not */
    write_tmp(p, "tiny_cut.txt", "ab\xe2\x82", 4);
    d = load_text_ok(p, &tb, DATA_MODE_DOCUMENTS, 64, 0, 0);
    assert_int_equal(d.n_seqs, 1);
    data_free_text(&d);
    write_tmp(p, "tiny_bad.txt", "\xc0\xc1\xf8\xf9", 4);
    expect_text_error(p, &tb, DATA_MODE_DOCUMENTS, 64, 0, "4 of its 4 bytes (100%) are invalid UTF-8");
    /* and UTF-8 with tabs, CR LF, form feeds and escapes */
    const char utf8[] = "Caf\xc3\xa9\tna\xc3\xafve \xe2\x82\xac \xf0\x9f\x98\x80\r\n\x1b[0m\f\vend\n";
    write_tmp(p, "utf8.txt", utf8, sizeof utf8 - 1);
    d = load_text_ok(p, &tl, DATA_MODE_WINDOWS, 64, 64, 0);
    assert_int_equal(d.n_seqs, 1);
    data_free_text(&d);
    tok_free(&tl);
    tok_free(&tb);
}

/* ---- token files ----------------------------------------------------------------------------- */

/* write ids as little-endian uint16 (w = 2) or uint32 (w = 4) to <tmp>/dataset/<name> */
static const char *write_ids(char *out, const char *name, const int *ids, int n, int w) {
    unsigned char *b = malloc((size_t)n * (size_t)w + 1);
    assert_non_null(b);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < w; k++) b[(size_t)i * (size_t)w + (size_t)k] = (unsigned char)((unsigned)ids[i] >> (8 * k));
    write_tmp(out, name, b, (size_t)n * (size_t)w);
    free(b);
    return out;
}

static text_dataset load_tokens_ok(const char *path, int w, int vocab, int eos, const tokenizer *t,
                                   data_text_mode mode, int context, int stride, long limit, double b, double e) {
    text_dataset    d;
    pe_err          err = {0};
    data_token_opts o   = {w, vocab, eos};
    if (data_load_tokens(&d, path, &o, t, mode, context, stride, limit, b, e, &err) != PE_OK) fail_msg("%s", err.msg);
    check_seqs(&d);
    return d;
}

/* documents start at each eos (kept as their first, unscored token), truncated to context; the
 * ids before the first eos are a document; one-token documents are dropped; limit, span, dtype */
static void test_tokens_documents(void **state) {
    (void)state;
    const int ids[] = {5, 6, 1, 7, 8, 9, 1, 3, 1, 1, 4, 4, 2};
    const int n     = (int)(sizeof ids / sizeof ids[0]);
    char      p16[4096], p32[4096];
    write_ids(p16, "docs16.bin", ids, n, 2);
    write_ids(p32, "docs32.bin", ids, n, 4);
    for (int w = 2; w <= 4; w += 2) {
        text_dataset d = load_tokens_ok(w == 2 ? p16 : p32, w, 10, 1, NULL, DATA_MODE_DOCUMENTS, 3, 0, 0, 0.0, 1.0);
        assert_int_equal(d.n_tokens, n); /* the stream, not copied per document */
        assert_memory_equal(d.tokens, ids, sizeof ids);
        /* {5 6}, {1 7 8 | 9} truncated, {1 3}, {1} dropped, {1 4 4 2} truncated */
        const int start[] = {0, 2, 6, 9}, len[] = {2, 3, 2, 3};
        assert_int_equal(d.n_seqs, 4);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(d.seqs[i].start, start[i]);
            assert_int_equal(d.seqs[i].len, len[i]);
            assert_int_equal(d.seqs[i].score_begin, 0);
            assert_int_equal(d.seqs[i].doc_id, i);
        }
        assert_int_equal(d.n_scored, 1 + 2 + 1 + 2);
        assert_int_equal(d.n_scored_bytes, 0); /* no tokenizer: bytes unknown */
        data_free_text(&d);
    }
    text_dataset d = load_tokens_ok(p16, 2, 10, 1, NULL, DATA_MODE_DOCUMENTS, 100, 0, 2, 0.0, 1.0);
    assert_int_equal(d.n_seqs, 2); /* limit */
    assert_int_equal(d.seqs[1].len, 4);
    data_free_text(&d);
    /* span 0.5:1 = ids [6, 13): {1 3}, {1}, {1 4 4 2} */
    d = load_tokens_ok(p16, 2, 10, 1, NULL, DATA_MODE_DOCUMENTS, 100, 0, 0, 0.5, 1.0);
    assert_int_equal(d.n_tokens, 7);
    assert_int_equal(d.n_seqs, 2);
    assert_int_equal(d.tokens[d.seqs[0].start], 1);
    assert_int_equal(d.seqs[0].len, 2);
    assert_int_equal(d.seqs[1].len, 4);
    data_free_text(&d);
    /* a uint32 id above 65,535 */
    const int big[] = {70000, 3, 70001, 70000, 5};
    write_ids(p32, "big32.bin", big, 5, 4);
    d = load_tokens_ok(p32, 4, 100000, 70000, NULL, DATA_MODE_DOCUMENTS, 8, 0, 0, 0.0, 1.0);
    assert_int_equal(d.n_seqs, 2);
    assert_int_equal(d.tokens[2], 70001);
    assert_int_equal(d.seqs[1].start, 3);
    data_free_text(&d);
}

/* the same documents and windows as the text path, from the text path's own ids: tokens, sequences
 * and bytes per target identical (documents: BOS-prefixed, split at BOS = 1) */
static void test_tokens_match_text(void **state) {
    (void)state;
    tokenizer t;
    load_tok512(&t);
    const char *path = tu_data_path("tinystories_val.txt");
    text_dataset x = load_text_ok(path, &t, DATA_MODE_DOCUMENTS, 1 << 20, 0, 50);
    int *ids = malloc((size_t)x.n_tokens * sizeof *ids), n = 0;
    assert_non_null(ids);
    for (int i = 0; i < x.n_seqs; i++)
        for (int p = 0; p < x.seqs[i].len; p++) ids[n++] = x.tokens[x.seqs[i].start + p];
    data_free_text(&x);
    char tp[4096];
    write_ids(tp, "stories16.bin", ids, n, 2);
    for (int ctx = 16; ctx <= 512; ctx *= 32) {
        x              = load_text_ok(path, &t, DATA_MODE_DOCUMENTS, ctx, 0, 50);
        text_dataset y = load_tokens_ok(tp, 2, 512, 1, &t, DATA_MODE_DOCUMENTS, ctx, 0, 0, 0.0, 1.0);
        assert_int_equal(y.n_seqs, x.n_seqs);
        assert_int_equal(y.n_scored, x.n_scored);
        assert_int_equal(y.n_scored_bytes, x.n_scored_bytes);
        for (int i = 0; i < x.n_seqs; i++) {
            const text_seq *a = &x.seqs[i], *b = &y.seqs[i];
            assert_int_equal(a->len, b->len);
            assert_int_equal(a->doc_id, b->doc_id);
            assert_memory_equal(x.tokens + a->start, y.tokens + b->start, (size_t)a->len * sizeof(int));
            for (int p = 1; p < a->len; p++) assert_int_equal(x.tok_bytes[a->start + p], y.tok_bytes[b->start + p]);
        }
        data_free_text(&x);
        data_free_text(&y);
    }
    free(ids);

    /* windows: the text path's stream (BOS + encode(file[0, 20000))) as uint32 ids */
    char *text;
    size_t len;
    pe_err err = {0};
    assert_int_equal(pe_read_file(path, &text, &len, &err), PE_OK);
    char sp[4096];
    write_tmp(sp, "head.txt", text, 20000);
    free(text);
    x = load_text_ok(sp, &t, DATA_MODE_WINDOWS, 64, 24, 0);
    write_ids(tp, "stream32.bin", x.tokens, (int)x.n_tokens, 4);
    text_dataset y = load_tokens_ok(tp, 4, 512, -1, &t, DATA_MODE_WINDOWS, 64, 24, 0, 0.0, 1.0);
    assert_true(x.n_seqs > 100);
    assert_int_equal(y.n_seqs, x.n_seqs);
    assert_int_equal(y.n_tokens, x.n_tokens);
    assert_memory_equal(y.tokens, x.tokens, (size_t)x.n_tokens * sizeof(int));
    assert_memory_equal(y.seqs, x.seqs, (size_t)x.n_seqs * sizeof *x.seqs);
    assert_memory_equal(y.tok_bytes, x.tok_bytes, (size_t)x.n_tokens * sizeof *x.tok_bytes);
    assert_int_equal(y.n_scored_bytes, x.n_scored_bytes);
    check_coverage(&y, 64, 24);
    data_free_text(&x);
    data_free_text(&y);
    tok_free(&t);
}

static void expect_tokens_error(const char *path, int w, int vocab, int eos, const tokenizer *t, data_text_mode mode,
                                int context, int stride, const char *what) {
    text_dataset    d;
    pe_err          err = {0};
    data_token_opts o   = {w, vocab, eos};
    pe_status       st  = data_load_tokens(&d, path, &o, t, mode, context, stride, 0, 0.0, 1.0, &err);
    if (st != PE_ERR_INPUT) fail_msg("expected an input error containing '%s', got status %d", what, st);
    assert_contains(err.msg, what);
    assert_null(d.tokens);
    assert_null(d.seqs);
}

static void test_tokens_errors(void **state) {
    (void)state;
    const int ids[] = {1, 30, 40, 1, 300, 7};
    char      p[4096], q[4096];
    write_ids(p, "errs.bin", ids, 6, 2);
    /* the first id not below the vocabulary: its index and byte offset */
    expect_tokens_error(p, 2, 64, 1, NULL, DATA_MODE_DOCUMENTS, 8, 0,
                        "token 4 (byte offset 8) is id 300: expected 0..63 (the model's vocabulary has 64 tokens)");
    write_ids(q, "errs32.bin", ids, 6, 4);
    expect_tokens_error(q, 4, 64, 1, NULL, DATA_MODE_DOCUMENTS, 8, 0, "token 4 (byte offset 16) is id 300");
    /* below the model's vocabulary but not the tokenizer's (bytes cannot be counted) */
    tokenizer bt;
    tok_init_bytes(&bt);
    expect_tokens_error(p, 2, 512, 1, &bt, DATA_MODE_DOCUMENTS, 8, 0,
                        "is id 300: expected 0..255 (the tokenizer's vocabulary ([model] tokenizer) has 256 tokens)");
    tok_free(&bt);
    /* a length that is not a whole number of ids */
    write_tmp(q, "odd.bin", "\x01\x00\x02\x00\x03", 5);
    expect_tokens_error(q, 2, 64, 1, NULL, DATA_MODE_DOCUMENTS, 8, 0,
                        "5 bytes is not a whole number of uint16 token ids (2 bytes each; 1 bytes left over)");
    write_ids(q, "six.bin", ids, 3, 2); /* 6 bytes: not uint32 */
    expect_tokens_error(q, 4, 512, 1, NULL, DATA_MODE_DOCUMENTS, 8, 0, "6 bytes is not a whole number of uint32");
    expect_tokens_error(q, 3, 512, 1, NULL, DATA_MODE_DOCUMENTS, 8, 0, "token size 3 bytes");
    /* options */
    expect_tokens_error(p, 2, 512, -1, NULL, DATA_MODE_DOCUMENTS, 8, 0, "set [data] eos = ID");
    expect_tokens_error(p, 2, 512, 1, NULL, DATA_MODE_WINDOWS, 8, 4, "[data] eos = 1 is for documents mode");
    expect_tokens_error(p, 2, 512, 512, NULL, DATA_MODE_DOCUMENTS, 8, 0, "[data] eos = 512 is not a token id");
    expect_tokens_error(p, 2, 512, -1, NULL, DATA_MODE_WINDOWS, 8, 9, "stride is 9 tokens");
    expect_tokens_error(p, 2, 512, -1, NULL, DATA_MODE_WINDOWS, 1, 1, "context is 1 tokens");
    /* nothing to score: an empty file, a file of eos ids */
    write_tmp(q, "empty.bin", "", 0);
    expect_tokens_error(q, 2, 512, -1, NULL, DATA_MODE_WINDOWS, 8, 8, "empty dataset");
    const int eoses[] = {1, 1, 1};
    write_ids(q, "eoses.bin", eoses, 3, 2);
    expect_tokens_error(q, 2, 512, 1, NULL, DATA_MODE_DOCUMENTS, 8, 0, "empty dataset: no document");
    expect_tokens_error("/nonexistent/val.bin", 2, 512, 1, NULL, DATA_MODE_DOCUMENTS, 8, 0, "/nonexistent/val.bin");
}

/* ---- IDX ------------------------------------------------------------------------------------- */

static void test_fashion_mnist(void **state) {
    char images[4096], labels[4096];
    snprintf(images, sizeof images, "%s/t10k-images-idx3-ubyte.gz", PATHENS_FASHION_DIR);
    snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte.gz", PATHENS_FASHION_DIR);
    if (access(images, R_OK) != 0 || access(labels, R_OK) != 0)
        fail_msg("Fashion-MNIST is missing under %s: apt-get install dataset-fashion-mnist", PATHENS_FASHION_DIR);
    image_dataset d;
    pe_err err = {0};
    if (data_load_idx(&d, images, labels, 0, &err) != PE_OK) fail_msg("%s", err.msg);
    assert_int_equal(d.n, 10000);
    assert_int_equal(d.rows, 28);
    assert_int_equal(d.cols, 28);
    assert_int_equal(d.n_classes, 10);
    assert_int_equal(d.labels[0], 9);
    long sum = 0;
    for (int i = 0; i < 28 * 28; i++) sum += d.pixels[i];
    assert_true(sum > 0);
    data_free_idx(&d);

    assert_int_equal(data_load_idx(&d, images, labels, 100, &err), PE_OK);
    assert_int_equal(d.n, 100);
    assert_int_equal(d.n_classes, 10);
    assert_int_equal(d.labels[0], 9);
    data_free_idx(&d);
}

/* a tiny IDX pair: 3 images of 2x2 and 3 labels, optionally damaged */
static size_t make_idx(unsigned char *b, int images, uint32_t magic, uint32_t n) {
    size_t k = 0;
    uint32_t hdr[4] = {magic, n, 2, 2};
    for (int i = 0; i < (images ? 4 : 2); i++)
        for (int s = 24; s >= 0; s -= 8) b[k++] = (unsigned char)(hdr[i] >> s);
    for (uint32_t i = 0; i < n * (images ? 4u : 1u); i++) b[k++] = (unsigned char)(images ? 10 * i : i % 3);
    return k;
}

static void expect_idx_error(const char *images, const char *labels, const char *name, const char *what) {
    image_dataset d;
    pe_err err = {0};
    pe_status st = data_load_idx(&d, images, labels, 0, &err);
    if (st != PE_ERR_INPUT) fail_msg("%s: expected PE_ERR_INPUT, got %d (%s)", name, st, err.msg);
    assert_contains(err.msg, name);
    assert_contains(err.msg, what);
    print_message("  %s\n", err.msg);
    assert_null(d.pixels);
    assert_null(d.labels);
}

static void test_idx_files(void **state) {
    unsigned char img[64], lab[64], bad[64];
    size_t ni = make_idx(img, 1, 0x803, 3), nl = make_idx(lab, 0, 0x801, 3);
    char images[4096], labels[4096], p[4096];
    write_tmp(images, "img.idx", img, ni);
    write_tmp(labels, "lab.idx", lab, nl);

    /* raw files load; a gzip-compressed copy loads the same */
    image_dataset d;
    pe_err err = {0};
    if (data_load_idx(&d, images, labels, 0, &err) != PE_OK) fail_msg("%s", err.msg);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.rows, 2);
    assert_int_equal(d.n_classes, 3);
    assert_int_equal(d.pixels[5], 50);
    assert_int_equal(d.labels[2], 2);
    data_free_idx(&d);
    char gz_path[4096];
    snprintf(gz_path, sizeof gz_path, "%s/img.idx.gz", tu_tmp_dir("dataset"));
    gzFile gz = gzopen(gz_path, "wb");
    assert_non_null(gz);
    assert_int_equal(gzwrite(gz, img, (unsigned)ni), (int)ni);
    gzclose(gz);
    if (data_load_idx(&d, gz_path, labels, 2, &err) != PE_OK) fail_msg("%s", err.msg);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.pixels[5], 50);
    data_free_idx(&d);

    /* a gzip stream cut short */
    char *gz_bytes;
    size_t gz_len;
    assert_int_equal(pe_read_file(gz_path, &gz_bytes, &gz_len, &err), PE_OK);
    write_tmp(p, "cut.idx.gz", gz_bytes, gz_len - 10);
    free(gz_bytes);
    expect_idx_error(p, labels, p, "truncated");

    /* damaged files */
    size_t nb = make_idx(bad, 1, 0x801, 3);
    write_tmp(p, "magic.idx", bad, nb);
    expect_idx_error(p, labels, p, "bad magic 0x00000801: expected 0x00000803");
    write_tmp(p, "short_hdr.idx", img, 10);
    expect_idx_error(p, labels, p, "truncated header");
    write_tmp(p, "truncated.idx", img, ni - 1);
    expect_idx_error(p, labels, p, "truncated: the header promises 12 data bytes (n x rows x cols), the file holds 11");
    memcpy(bad, img, ni);
    memcpy(bad + ni, "xyz", 3);
    write_tmp(p, "trailing.idx", bad, ni + 3);
    expect_idx_error(p, labels, p, "3 trailing bytes");
    nb = make_idx(bad, 0, 0x801, 4);
    write_tmp(p, "lab4.idx", bad, nb);
    expect_idx_error(images, p, p, "3 images");
    nb = make_idx(bad, 0, 0x803, 3);
    write_tmp(p, "labmagic.idx", bad, nb);
    expect_idx_error(images, p, p, "expected 0x00000801");
    expect_idx_error("/nonexistent/img.idx", labels, "/nonexistent/img.idx", "cannot open");
    expect_idx_error(tu_tmp_dir("dataset"), labels, tu_tmp_dir("dataset"), "is a directory");
}

/* write a gzip member of data[0..n) to out[] (returns its length) */
static size_t gzip_member(unsigned char *out, size_t cap, const unsigned char *data, size_t n) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (Bytef *)data;
    zs.avail_in = (uInt)n;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t len = cap - zs.avail_out;
    deflateEnd(&zs);
    return len;
}

/* Fuzzing: a 16-byte header promising 2^40 bytes was allocated before the size check (exit 3);
 * a gzip file without its trailer, or with junk after the stream, loaded silently (zlib's gzread
 * ignores both). The promised size is now checked against the file before allocating. */
static void test_idx_hostile(void **state) {
    unsigned char img[64], lab[64], buf[512], gz[512];
    size_t ni = make_idx(img, 1, 0x803, 3), nl = make_idx(lab, 0, 0x801, 3);
    char images[4096], labels[4096], p[4096];
    write_tmp(images, "h_img.idx", img, ni);
    write_tmp(labels, "h_lab.idx", lab, nl);
    /* 2^40 promised by 1024 x 1024 x 1048576: raw and gzip */
    const unsigned char huge[16] = {0, 0, 8, 3, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0x10, 0, 0};
    write_tmp(p, "huge.idx", huge, sizeof huge);
    expect_idx_error(p, labels, p, "the header promises 1099511627776 data bytes (n x rows x cols), the file holds 0");
    size_t ng = gzip_member(gz, sizeof gz, huge, sizeof huge);
    write_tmp(p, "huge.idx.gz", gz, ng);
    expect_idx_error(p, labels, p, "the header promises 1099511627776 data bytes but a");
    expect_idx_error(p, labels, p, "gzip file can hold at most");
    const unsigned char huge_lab[8] = {0, 0, 8, 1, 0x7f, 0xff, 0xff, 0xff}; /* 2^31 - 1 labels, none there */
    write_tmp(p, "huge_lab.idx", huge_lab, sizeof huge_lab);
    expect_idx_error(images, p, p, "promises 2147483647 data bytes (n), the file holds 0");

    /* gzip: trailer cut off, junk after the stream, a corrupt CRC, extra data inside the stream */
    ng = gzip_member(gz, sizeof gz, img, ni);
    write_tmp(p, "notrailer.idx.gz", gz, ng - 8);
    expect_idx_error(p, labels, p, "the gzip stream is cut off");
    write_tmp(p, "halftrailer.idx.gz", gz, ng - 3);
    expect_idx_error(p, labels, p, "the gzip stream is cut off");
    memcpy(buf, gz, ng);
    memcpy(buf + ng, "JUNKJUNK", 8);
    write_tmp(p, "junk.idx.gz", buf, ng + 8);
    expect_idx_error(p, labels, p, "8 bytes of junk after the gzip stream");
    buf[ng] = 0x1f; /* a lone gzip magic byte is junk too */
    write_tmp(p, "junk1.idx.gz", buf, ng + 1);
    expect_idx_error(p, labels, p, "1 bytes of junk after the gzip stream");
    memcpy(buf, gz, ng);
    buf[ng - 8] ^= 0xff; /* CRC-32 */
    write_tmp(p, "crc.idx.gz", buf, ng);
    expect_idx_error(p, labels, p, "corrupt gzip data in the trailer (zlib: incorrect data check");
    unsigned char longer[64];
    memcpy(longer, img, ni);
    memcpy(longer + ni, "xyz", 3);
    ng = gzip_member(gz, sizeof gz, longer, ni + 3);
    write_tmp(p, "extra.idx.gz", gz, ng);
    expect_idx_error(p, labels, p, "3 trailing bytes");
    /* a file that starts with gzip's magic but is not gzip */
    memcpy(buf, "\x1f\x8b\x00\x00garbage-garbage", 19);
    write_tmp(p, "fakegz.idx", buf, 19);
    expect_idx_error(p, labels, p, "corrupt gzip data in the header");

    /* concatenated gzip members are one stream (gzip -d reads them so): they load */
    size_t n1 = gzip_member(gz, sizeof gz, img, 10);
    size_t n2 = gzip_member(gz + n1, sizeof gz - n1, img + 10, ni - 10);
    write_tmp(p, "two.idx.gz", gz, n1 + n2);
    image_dataset d;
    pe_err err = {0};
    if (data_load_idx(&d, p, labels, 0, &err) != PE_OK) fail_msg("%s", err.msg);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.pixels[11], 110);
    data_free_idx(&d);
    /* labels derived from the images name also load (data_load_idx_span) */
    write_tmp(p, "pair-images-idx3-ubyte", img, ni);
    char lp[4096];
    write_tmp(lp, "pair-labels-idx1-ubyte", lab, nl);
    if (data_load_idx_span(&d, p, NULL, 0, 0.0, 1.0, &err) != PE_OK) fail_msg("%s", err.msg);
    assert_int_equal(d.n, 3);
    data_free_idx(&d);
    expect_idx_error(images, "/nonexistent/lab.idx", "/nonexistent/lab.idx", "[data] labels");
}

int main(void) {
    int stories = tu_have_data("tok512.bin", "tinystories_val.txt", NULL);
    int shakespeare = tu_have_data("tinyshakespeare.txt", NULL);
    const struct CMUnitTest tests[] = {
        tu_needs(stories, cmocka_unit_test(test_documents_tinystories)),
        cmocka_unit_test(test_documents_splitting),
        tu_needs(stories, cmocka_unit_test(test_windows_tinystories)),
        tu_needs(shakespeare, cmocka_unit_test(test_windows_bytes_shakespeare)),
        cmocka_unit_test(test_text_errors),
        cmocka_unit_test(test_text_not_binary),
        cmocka_unit_test(test_tokens_documents),
        tu_needs(stories, cmocka_unit_test(test_tokens_match_text)),
        cmocka_unit_test(test_tokens_errors),
        tu_needs(tu_have_fashion(), cmocka_unit_test(test_fashion_mnist)),
        cmocka_unit_test(test_idx_files),
        cmocka_unit_test(test_idx_hostile),
    };
    return tu_finish(cmocka_run_group_tests(tests, NULL, NULL));
}
