/* dataset.c: evaluation data: text cut into scored sequences, and IDX image sets (see dataset.h). */
#include "dataset.h"

#include <math.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- text ------------------------------------------------------------------------------------ */

/* growable storage of the dataset's tokens and sequences */
static pe_status data_reserve_tokens(text_dataset *d, int64_t *cap, int64_t need, pe_err *err) {
    if (need <= *cap) return PE_OK;
    int64_t c = *cap > 0 ? *cap : 4096;
    while (c < need) c *= 2;
    int *tok = realloc(d->tokens, (size_t)c * sizeof *tok);
    if (tok) d->tokens = tok;
    uint16_t *bytes = realloc(d->tok_bytes, (size_t)c * sizeof *bytes);
    if (bytes) d->tok_bytes = bytes;
    if (!tok || !bytes)
        return pe_fail(err, PE_ERR_INTERNAL, "out of memory growing the token store to %lld tokens", (long long)c);
    *cap = c;
    return PE_OK;
}

static pe_status data_push_seq(text_dataset *d, int *cap, text_seq s, pe_err *err) {
    if (d->n_seqs == *cap) {
        if (*cap > INT_MAX / 2)
            return pe_fail(err, PE_ERR_INPUT, "more than %d sequences: use [data] limit or a larger stride", INT_MAX / 2);
        int c = *cap > 0 ? 2 * *cap : 256;
        text_seq *seqs = realloc(d->seqs, (size_t)c * sizeof *seqs);
        if (!seqs) return pe_fail(err, PE_ERR_INTERNAL, "out of memory growing the sequence list to %d", c);
        d->seqs = seqs;
        *cap = c;
    }
    d->seqs[d->n_seqs++] = s;
    d->n_scored += s.len - 1 - s.score_begin;
    for (int p = s.score_begin + 1; p < s.len; p++) d->n_scored_bytes += d->tok_bytes[s.start + p];
    return PE_OK;
}

static int data_is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\v' || s[i] == '\f')) return 0;
    return 1;
}

/* Encode one document text[0..len) as a sequence (BOS + tokens, truncated to context). */
static pe_status data_add_document(text_dataset *d, const tokenizer *t, const char *text, size_t len,
                                   int64_t doc_id, int64_t *tok_cap, int *seq_cap, pe_err *err) {
    int *toks, n;
    pe_status st = tok_encode(t, text, len, t->add_bos, t->add_eos, &toks, &n, err);
    if (st != PE_OK) return st;
    if (n > d->context) n = d->context;
    if (n < 2) { /* nothing to predict */
        free(toks);
        return PE_OK;
    }
    st = data_reserve_tokens(d, tok_cap, d->n_tokens + n, err);
    if (st == PE_OK) {
        int64_t start = d->n_tokens;
        for (int i = 0; i < n; i++) {
            d->tokens[start + i] = toks[i];
            d->tok_bytes[start + i] = i == 0 ? 0 : (uint16_t)tok_count_bytes(t, toks[i - 1], toks[i]);
        }
        d->n_tokens += n;
        text_seq s = {start, n, 0, doc_id};
        st = data_push_seq(d, seq_cap, s, err);
    }
    free(toks);
    return st;
}

int data_next_document(const char *buf, size_t n, size_t *pos, size_t *start, size_t *len) {
    size_t doc_start = 0, doc_end = 0;
    int    in_doc = 0;
    for (size_t p = *pos; p <= n;) {
        const char *nl = p < n ? memchr(buf + p, '\n', n - p) : NULL;
        size_t eol = nl ? (size_t)(nl - buf) : n;
        int blank = data_is_blank(buf + p, eol - p);
        if (!blank) {
            if (!in_doc) doc_start = p;
            in_doc = 1;
            doc_end = eol > p && buf[eol - 1] == '\r' ? eol - 1 : eol;
        }
        p = eol + 1;
        if (in_doc && (blank || eol == n)) {
            *pos = p, *start = doc_start, *len = doc_end - doc_start;
            return 1;
        }
    }
    *pos = n + 1;
    return 0;
}

/* documents: blank-line separated paragraphs, each its own sequence */
static pe_status data_cut_documents(text_dataset *d, const tokenizer *t, const char *buf, size_t n, long limit,
                                    pe_err *err) {
    int64_t tok_cap = 0, doc_id = 0;
    int seq_cap = 0;
    size_t pos = 0, start, len;
    while ((limit <= 0 || doc_id < limit) && data_next_document(buf, n, &pos, &start, &len)) {
        pe_status st = data_add_document(d, t, buf + start, len, doc_id++, &tok_cap, &seq_cap, err);
        if (st != PE_OK) return st;
    }
    return PE_OK;
}

/* windows over the stream d->tokens[0, n_tokens) (tok_bytes filled): windows of context tokens
 * every step tokens */
static pe_status data_cut_stream_windows(text_dataset *d, long limit, pe_err *err) {
    int64_t nt = d->n_tokens;
    if (nt < 2) return PE_OK;
    /* Consecutive windows must overlap by a token for every target to be scored once, so
     * stride == context steps context - 1 (the first token of a window is never a target). */
    int step = d->stride < d->context ? d->stride : d->context - 1;
    int seq_cap = 0;
    int64_t start = 0, prev_end = 0;
    for (int64_t w = 0; limit <= 0 || w < limit; w++, start += step) {
        int len = nt - start < d->context ? (int)(nt - start) : d->context;
        /* predictions from position score_begin on target stream index >= prev_end */
        text_seq  s  = {start, len, w == 0 ? 0 : (int)(prev_end - start - 1), w};
        pe_status st = data_push_seq(d, &seq_cap, s, err);
        if (st != PE_OK) return st;
        prev_end = start + len;
        if (prev_end == nt) break;
    }
    return PE_OK;
}

/* windows: one token stream (BOS + encode(text)), cut by data_cut_stream_windows */
static pe_status data_cut_windows(text_dataset *d, const tokenizer *t, const char *buf, size_t n, long limit,
                                  pe_err *err) {
    int *toks, nt;
    pe_status st = tok_encode(t, buf, n, t->add_bos, t->add_eos, &toks, &nt, err);
    if (st != PE_OK) return st;
    d->tokens = toks;
    d->n_tokens = nt;
    d->tok_bytes = pe_malloc((size_t)nt * sizeof *d->tok_bytes, err, "token byte counts");
    if (!d->tok_bytes) return PE_ERR_INTERNAL;
    for (int i = 0; i < nt; i++) d->tok_bytes[i] = i == 0 ? 0 : (uint16_t)tok_count_bytes(t, toks[i - 1], toks[i]);
    return data_cut_stream_windows(d, limit, err);
}

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), 0 if the bytes there are not one
 * (stray continuation, overlong form, surrogate, above U+10FFFF, cut off). */
static size_t data_utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t   len;
    unsigned cp, min;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* Refuse data that is not text: a UTF-16/32 byte-order mark, NUL bytes (binary files, UTF-16
 * without a mark), or more than 10% of the bytes that are neither valid UTF-8 nor usual text
 * (control characters other than tab, newline, carriage return, form feed, vertical tab, escape).
 * A few stray bytes (a Latin-1 accent, a cut-off last character) are accepted. */
static pe_status data_check_text(const char *path, const char *text, size_t n, pe_err *err) {
    const unsigned char *s = (const unsigned char *)text;
    const char *fix = "give a UTF-8 text file, or set [data] format = idx (with an image model) for IDX images, or "
                      "[data] format = tokens for a flat file of token ids (nanoGPT's val.bin)";
    if (n >= 2 && ((s[0] == 0xFF && s[1] == 0xFE) || (s[0] == 0xFE && s[1] == 0xFF)))
        return pe_fail(err, PE_ERR_INPUT,
                       "%s looks like UTF-16 (or UTF-32) text, not UTF-8: it starts with the byte-order mark %02X %02X; "
                       "convert it (iconv -f UTF-16 -t UTF-8 %s > out.txt) and point [data] path at the result",
                       path, s[0], s[1], path);
    const unsigned char *nul = memchr(s, 0, n);
    if (nul) {
        size_t even = 0, odd = 0, m = n < 4096 ? n : 4096; /* UTF-16 of mostly ASCII: every other byte NUL */
        for (size_t i = 0; i < m; i++)
            if (!s[i]) *(i % 2 ? &odd : &even) += 1;
        size_t hi = odd > even ? odd : even, lo = odd > even ? even : odd;
        int    utf16 = m >= 4 && hi * 5 > m * 2 && lo * 8 < hi; /* > 80% of one parity, few of the other */
        if (utf16)
            return pe_fail(err, PE_ERR_INPUT,
                           "%s looks like UTF-16 text without a byte-order mark, not UTF-8: every other byte is NUL "
                           "(the first at byte offset %zu); convert it (iconv -f UTF-16%s -t UTF-8 %s > out.txt) and "
                           "point [data] path at the result; or, if it holds token ids (nanoGPT's val.bin), set [data] "
                           "format = tokens", path, (size_t)(nul - s), odd > even ? "LE" : "BE", path);
        return pe_fail(err, PE_ERR_INPUT,
                       "%s looks binary, not UTF-8 text: byte offset %zu is a NUL byte, which text never holds; %s",
                       path, (size_t)(nul - s), fix);
    }
    size_t bad = 0, first = n;
    for (size_t i = 0; i < n;) {
        size_t l = data_utf8_len(s + i, n - i);
        int ctl = l == 1 && s[i] < 0x20 && !strchr("\t\n\r\f\v\x1b", s[i]);
        if (l == 0 || ctl) {
            if (first == n) first = i;
            bad++;
            i++;
        } else {
            i += l;
        }
    }
    if (bad > 3 && bad > n / 10) /* up to 3: a last character cut off mid-sequence */
        return pe_fail(err, PE_ERR_INPUT,
                       "%s looks binary, not UTF-8 text: %zu of its %zu bytes (%.0f%%) are invalid UTF-8 or control "
                       "characters, the first at byte offset %zu; %s",
                       path, bad, n, 100.0 * (double)bad / (double)n, first, fix);
    return PE_OK;
}

pe_status data_load_text(text_dataset *d, const char *path, const tokenizer *t, data_text_mode mode,
                         int context, int stride, long limit, pe_err *err) {
    return data_load_text_span(d, path, t, mode, context, stride, limit, 0.0, 1.0, err);
}

pe_status data_load_text_span(text_dataset *d, const char *path, const tokenizer *t, data_text_mode mode,
                              int context, int stride, long limit, double span_begin, double span_end, pe_err *err) {
    memset(d, 0, sizeof *d);
    d->mode = mode;
    d->context = context;
    d->stride = stride;
    if (context < 2)
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: context is %d tokens: expected at least 2 (an input and its target); "
                       "set [data] context", path, context);
    if (mode == DATA_MODE_WINDOWS && (stride < 1 || stride > context))
        return pe_fail(err, PE_ERR_INPUT, "%s: stride is %d tokens: expected 1..%d (the context); set [data] stride",
                       path, stride, context);
    if (mode != DATA_MODE_DOCUMENTS && mode != DATA_MODE_WINDOWS)
        return pe_fail(err, PE_ERR_INPUT, "%s: unknown text mode %d: expected documents or windows", path, (int)mode);
    char *buf = NULL;
    size_t n = 0;
    pe_status st = pe_read_file_for(path, &buf, &n, "the text dataset set by [data] path", err);
    if (st != PE_OK) return st;
    st = data_check_text(path, buf, n, err); /* the whole file, whatever the span */
    if (st != PE_OK) {
        free(buf);
        return st;
    }
    /* the span [floor(begin n), floor(end n)) of the file's bytes */
    size_t b0 = (size_t)floor(span_begin * (double)n), b1 = (size_t)floor(span_end * (double)n);
    if (b1 > n) b1 = n;
    if (b0 > b1) b0 = b1;
    st = mode == DATA_MODE_DOCUMENTS ? data_cut_documents(d, t, buf + b0, b1 - b0, limit, err)
                                     : data_cut_windows(d, t, buf + b0, b1 - b0, limit, err);
    n = b1 - b0;
    free(buf);
    if (st == PE_OK && d->n_seqs == 0)
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s: empty dataset: no %s with at least 2 tokens (%zu bytes); check [data] path and mode",
                     path, mode == DATA_MODE_DOCUMENTS ? "document" : "token stream", n);
    if (st != PE_OK) data_free_text(d);
    return st;
}

/* ---- token files ----------------------------------------------------------------------------- */

/* documents of a token stream: a document starts at each eos id (kept as its first, unscored
 * token) and runs to the next one; tokens before the first eos are a document of their own.
 * Documents point into the stream (truncated to context), nothing is copied. */
static pe_status data_cut_stream_documents(text_dataset *d, int eos, long limit, pe_err *err) {
    int     seq_cap = 0;
    int64_t doc_id = 0, nt = d->n_tokens;
    for (int64_t a = 0; a < nt && (limit <= 0 || doc_id < limit);) {
        int64_t b = a + 1;
        while (b < nt && d->tokens[b] != eos) b++;
        int64_t len = b - a < d->context ? b - a : d->context;
        d->tok_bytes[a] = 0; /* a document's first token is context only */
        if (len >= 2) { /* else nothing to predict */
            text_seq  s  = {a, (int)len, 0, doc_id++};
            pe_status st = data_push_seq(d, &seq_cap, s, err);
            if (st != PE_OK) return st;
        }
        a = b;
    }
    return PE_OK;
}

pe_status data_load_tokens(text_dataset *d, const char *path, const data_token_opts *o, const tokenizer *t,
                           data_text_mode mode, int context, int stride, long limit, double span_begin,
                           double span_end, pe_err *err) {
    memset(d, 0, sizeof *d);
    d->mode    = mode;
    d->context = context;
    d->stride  = stride;
    if (o->dtype_bytes != 2 && o->dtype_bytes != 4)
        return pe_fail(err, PE_ERR_INPUT, "%s: token size %d bytes: expected 2 (dtype = uint16) or 4 (uint32); "
                       "set [data] dtype", path, o->dtype_bytes);
    if (context < 2)
        return pe_fail(err, PE_ERR_INPUT, "%s: context is %d tokens: expected at least 2 (an input and its target); "
                       "set [data] context", path, context);
    if (mode == DATA_MODE_WINDOWS && (stride < 1 || stride > context))
        return pe_fail(err, PE_ERR_INPUT, "%s: stride is %d tokens: expected 1..%d (the context); set [data] stride",
                       path, stride, context);
    if (mode == DATA_MODE_DOCUMENTS && o->eos < 0)
        return pe_fail(err, PE_ERR_INPUT, "%s: documents of a token file need the id that separates them: set [data] "
                       "eos = ID (e.g. 50256 for GPT-2's <|endoftext|>, 1 for llama2.c's BOS), or use [data] mode = "
                       "windows", path);
    if (mode == DATA_MODE_WINDOWS && o->eos >= 0)
        return pe_fail(err, PE_ERR_INPUT, "%s: [data] eos = %d is for documents mode; windows score the whole token "
                       "stream as it is: unset eos (-1) or set [data] mode = documents", path, o->eos);
    if (mode != DATA_MODE_DOCUMENTS && mode != DATA_MODE_WINDOWS)
        return pe_fail(err, PE_ERR_INPUT, "%s: unknown token-file mode %d: expected documents or windows", path,
                       (int)mode);
    /* ids are checked against the model's vocabulary, and the tokenizer's when bytes are counted */
    int         limit_id = o->vocab;
    const char *whose    = "the model's vocabulary";
    if (t && t->vocab_size < limit_id) limit_id = t->vocab_size, whose = "the tokenizer's vocabulary ([model] tokenizer)";
    if (o->eos >= limit_id)
        return pe_fail(err, PE_ERR_INPUT, "%s: [data] eos = %d is not a token id: expected 0..%d (%s has %d tokens)",
                       path, o->eos, limit_id - 1, whose, limit_id);
    char  *buf = NULL;
    size_t n   = 0;
    pe_status st = pe_read_file_for(path, &buf, &n, "the token file set by [data] path", err);
    if (st != PE_OK) return st;
    const unsigned char *b  = (const unsigned char *)buf;
    size_t               w  = (size_t)o->dtype_bytes;
    const char          *dt = w == 2 ? "uint16" : "uint32";
    if (n % w != 0) {
        st = pe_fail(err, PE_ERR_INPUT, "%s: %zu bytes is not a whole number of %s token ids (%zu bytes each; %zu "
                     "bytes left over): the file is cut short, or its ids are another size: check [data] dtype",
                     path, n, dt, w, n % w);
        goto done;
    }
    int64_t total = (int64_t)(n / w);
    if ((uint64_t)total > SIZE_MAX / sizeof(int)) {
        st = pe_fail(err, PE_ERR_INPUT, "%s: %lld token ids do not fit in memory here", path, (long long)total);
        goto done;
    }
    /* every id of the whole file, whatever the span: a bad id means the wrong file or vocabulary */
    for (int64_t i = 0; i < total; i++) {
        const unsigned char *q = b + (size_t)i * w; /* little-endian, as numpy writes it on x86 */
        uint32_t id = w == 2 ? (uint32_t)q[0] | (uint32_t)q[1] << 8
                             : (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
        if (id >= (uint32_t)limit_id) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: token %lld (byte offset %lld) is id %u: expected 0..%d (%s has %d "
                         "tokens); the file was made with another tokenizer%s", path, (long long)i,
                         (long long)i * (long long)w, id, limit_id - 1, whose, limit_id,
                         w == 2 ? ", or its ids are uint32: check [data] dtype" : "");
            goto done;
        }
    }
    /* the span [floor(begin n), floor(end n)) of the file's token ids */
    int64_t a = (int64_t)floor(span_begin * (double)total), e = (int64_t)floor(span_end * (double)total);
    if (e > total) e = total;
    if (a > e) a = e;
    d->n_tokens  = e - a;
    d->tokens    = pe_malloc((size_t)(e - a) * sizeof *d->tokens + 1, err, "token ids");
    d->tok_bytes = pe_malloc((size_t)(e - a) * sizeof *d->tok_bytes + 1, err, "token byte counts");
    if (!d->tokens || !d->tok_bytes) {
        st = PE_ERR_INTERNAL;
        goto done;
    }
    for (int64_t i = a; i < e; i++) {
        const unsigned char *q = b + (size_t)i * w;
        d->tokens[i - a] = w == 2 ? (int)((uint32_t)q[0] | (uint32_t)q[1] << 8)
                                  : (int)((uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 |
                                          (uint32_t)q[3] << 24);
    }
    /* bytes per target: decoded after its predecessor when a tokenizer is given, else unknown (0) */
    for (int64_t i = 0; i < d->n_tokens; i++)
        d->tok_bytes[i] = t && i > 0 ? (uint16_t)tok_count_bytes(t, d->tokens[i - 1], d->tokens[i]) : 0;
    st = mode == DATA_MODE_DOCUMENTS ? data_cut_stream_documents(d, o->eos, limit, err)
                                     : data_cut_stream_windows(d, limit, err);
    if (st == PE_OK && d->n_seqs == 0)
        st = pe_fail(err, PE_ERR_INPUT, "%s: empty dataset: no %s with at least 2 tokens (%lld token ids in the span "
                     "of %lld); check [data] path, mode, eos and span", path,
                     mode == DATA_MODE_DOCUMENTS ? "document" : "token stream", (long long)(e - a), (long long)total);
done:
    free(buf);
    if (st != PE_OK) data_free_text(d);
    return st;
}

void data_free_text(text_dataset *d) {
    free(d->tokens);
    free(d->tok_bytes);
    free(d->seqs);
    d->tokens = NULL;
    d->tok_bytes = NULL;
    d->seqs = NULL;
    d->n_tokens = 0;
    d->n_seqs = 0;
}

/* ---- IDX ------------------------------------------------------------------------------------- */

/* A gzip file held in memory, inflated on demand. Concatenated gzip members are one stream (as
 * gzip -d reads them); anything else after the last member, and a stream that stops before its
 * trailer (CRC-32 + size), are errors: zlib's gzread ignores both silently. */
typedef struct {
    z_stream       zs;
    const uint8_t *in;
    size_t         in_len, in_off; /* compressed bytes, and how many were consumed */
    int            ended;          /* the last member ended (trailer checked) */
    int            truncated;      /* the input ran out before the stream ended */
    size_t         junk;           /* bytes after the last member that do not start a gzip member */
    const char    *zmsg;           /* zlib's message on corrupt data */
} data_gz;

/* Inflate up to want bytes into dst; returns the count produced (< want at the end of the
 * stream, on truncation or on corrupt data: g->ended / g->truncated / g->zmsg say which). */
static size_t data_gz_inflate(data_gz *g, uint8_t *dst, size_t want) {
    size_t got = 0;
    while (got < want && !g->ended && !g->truncated && !g->zmsg) {
        size_t in_left = g->in_len - g->in_off, out_left = want - got;
        g->zs.next_in   = (Bytef *)(g->in + g->in_off);
        g->zs.avail_in  = in_left < UINT_MAX ? (uInt)in_left : UINT_MAX;
        g->zs.next_out  = dst + got;
        g->zs.avail_out = out_left < UINT_MAX ? (uInt)out_left : UINT_MAX;
        uInt ai = g->zs.avail_in, ao = g->zs.avail_out;
        int  r  = inflate(&g->zs, Z_NO_FLUSH);
        g->in_off += ai - g->zs.avail_in;
        got += ao - g->zs.avail_out;
        if (r == Z_STREAM_END) {
            const uint8_t *rest = g->in + g->in_off;
            size_t         nrest = g->in_len - g->in_off;
            if (nrest >= 2 && rest[0] == 0x1f && rest[1] == 0x8b && inflateReset(&g->zs) == Z_OK) continue;
            g->ended = 1;
            g->junk  = nrest;
        } else if (r == Z_OK || r == Z_BUF_ERROR) {
            if (g->in_off == g->in_len && g->zs.avail_out > 0) g->truncated = 1; /* wants input that is not there */
            else if (ai == g->zs.avail_in && ao == g->zs.avail_out) g->zmsg = "inflate made no progress"; /* never loop */
        } else {
            g->zmsg = g->zs.msg ? g->zs.msg : "corrupt deflate data";
        }
    }
    return got;
}

/* message for a gzip stream that stopped early (g->truncated) or holds corrupt data */
static pe_status data_gz_fail(const data_gz *g, const char *path, const char *what, pe_err *err) {
    if (g->zmsg)
        return pe_fail(err, PE_ERR_INPUT, "%s: corrupt gzip data in the %s (zlib: %s, near compressed byte %zu); "
                       "the file is damaged: re-download or reinstall it", path, what, g->zmsg, g->in_off);
    return pe_fail(err, PE_ERR_INPUT, "%s: the gzip stream is cut off in the %s (after %zu compressed bytes, no "
                   "end-of-stream and trailer): the file is truncated; re-download or reinstall it", path, what,
                   g->in_len);
}

/* Read one IDX file of uint8 items: magic, n_dims big-endian uint32 dims, then exactly
 * prod(dims) bytes, raw or gzip-compressed (detected by the gzip magic). Magic, dims and the
 * promised size are checked against the file before the data buffer is allocated.
 * *data (dims[0] * ... bytes) is malloc'ed. key names the config key for hints. */
static pe_status data_read_idx_file(const char *path, const char *key, uint32_t magic, int n_dims,
                                    uint32_t *dims, uint8_t **data, pe_err *err) {
    *data = NULL;
    char  *raw = NULL;
    size_t n = 0;
    char what[64];
    snprintf(what, sizeof what, "the IDX file set by %s", key);
    pe_status st = pe_read_file_for(path, &raw, &n, what, err);
    if (st != PE_OK) return st;
    const uint8_t *b = (const uint8_t *)raw;
    int     gz = n >= 2 && b[0] == 0x1f && b[1] == 0x8b;
    data_gz g;
    memset(&g, 0, sizeof g);
    g.in = b;
    g.in_len = n;
    if (gz && inflateInit2(&g.zs, 15 + 16) != Z_OK) { /* gzip wrapper only */
        free(raw);
        return pe_fail(err, PE_ERR_INTERNAL, "%s: cannot start zlib (out of memory?)", path);
    }
    uint8_t hdr[16]; /* magic + up to 3 dims */
    size_t  hdr_len = 4 + 4 * (size_t)n_dims, got;
    if (gz) {
        got = data_gz_inflate(&g, hdr, hdr_len);
        if (got < hdr_len && (g.truncated || g.zmsg)) {
            st = data_gz_fail(&g, path, "header", err);
            goto done;
        }
    } else {
        got = n < hdr_len ? n : hdr_len;
        memcpy(hdr, b, got);
    }
    if (got < hdr_len) {
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s: truncated header: expected %zu bytes (magic + %d big-endian dims), got %zu; check %s",
                     path, hdr_len, n_dims, got, key);
        goto done;
    }
    uint32_t be[4];
    for (int i = 0; i <= n_dims; i++)
        be[i] = (uint32_t)hdr[4 * i] << 24 | (uint32_t)hdr[4 * i + 1] << 16 | (uint32_t)hdr[4 * i + 2] << 8 |
                hdr[4 * i + 3];
    if (be[0] != magic) {
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s: bad magic 0x%08X: expected 0x%08X (IDX uint8, %d dims); is %s the right file?", path,
                     be[0], magic, n_dims, key);
        goto done;
    }
    uint64_t total = 1;
    for (int i = 0; i < n_dims; i++) {
        dims[i] = be[i + 1];
        if (dims[i] == 0 || dims[i] > INT_MAX) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: dimension %d is %u: expected 1..%d; the file is corrupt", path, i,
                         dims[i], INT_MAX);
            goto done;
        }
        if (__builtin_mul_overflow(total, (uint64_t)dims[i], &total)) { /* (2^31)^3 does not fit in 64 bits */
            st = pe_fail(err, PE_ERR_INPUT, "%s: the dimensions %u x %u x %u promise more than 2^64 bytes: the header is "
                         "corrupt; re-download or reinstall it (check %s)", path, be[1], n_dims > 1 ? be[2] : 1,
                         n_dims > 2 ? be[3] : 1, key);
            goto done;
        }
    }
    /* the promised size against what the file can hold, before allocating it: a raw file holds
     * exactly header + data; deflate expands at most 1032:1, so a gzip file of n bytes holds at most
     * 1032 n (the exact count is checked while inflating) */
    if (!gz && total > (uint64_t)(n - hdr_len)) {
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s: truncated: the header promises %llu data bytes (%s), the file holds %zu after its %zu-byte "
                     "header; the file is cut short or its header is corrupt: re-download or reinstall it (check %s)",
                     path, (unsigned long long)total, n_dims == 3 ? "n x rows x cols" : "n", n - hdr_len, hdr_len, key);
        goto done;
    }
    if (!gz && total < (uint64_t)(n - hdr_len)) {
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s: %llu trailing bytes: expected the file to end after the %llu data bytes its header "
                     "promises; the file is corrupt or not IDX (check %s)", path,
                     (unsigned long long)(n - hdr_len - total), (unsigned long long)total, key);
        goto done;
    }
    if (gz && (total > SIZE_MAX / 2 || total > (uint64_t)n * 1032 + 1024)) {
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s: the header promises %llu data bytes but a %zu-byte gzip file can hold at most %llu: "
                     "the header is corrupt; re-download or reinstall it (check %s)", path,
                     (unsigned long long)total, n, (unsigned long long)n * 1032 + 1024, key);
        goto done;
    }
    if (!gz) { /* the data is already in memory: move it to the front and keep the buffer */
        memmove(raw, raw + hdr_len, (size_t)total);
        uint8_t *shrunk = realloc(raw, (size_t)total);
        *data = shrunk ? shrunk : (uint8_t *)raw;
        raw = NULL;
        goto done;
    }
    *data = pe_malloc((size_t)total, err, path);
    if (!*data) {
        st = PE_ERR_INTERNAL;
        goto done;
    }
    got = data_gz_inflate(&g, *data, (size_t)total);
    if (got < total && (g.truncated || g.zmsg)) {
        st = data_gz_fail(&g, path, "data", err);
        goto done;
    }
    if (got < total) {
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s: truncated: the header promises %llu data bytes, the file holds %zu; re-download or "
                     "reinstall it", path, (unsigned long long)total, got);
        goto done;
    }
    uint64_t extra = 0; /* inflate the rest: trailing data, trailer, junk after the stream */
    uint8_t  tail[4096];
    while (!g.ended && !g.truncated && !g.zmsg) extra += data_gz_inflate(&g, tail, sizeof tail);
    if (g.truncated || g.zmsg)
        st = data_gz_fail(&g, path, "trailer", err);
    else if (extra > 0)
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s: %llu trailing bytes: expected the data to end after the %llu bytes its header promises; "
                     "the file is corrupt or not IDX", path, (unsigned long long)extra, (unsigned long long)total);
    else if (g.junk > 0)
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s: %zu bytes of junk after the gzip stream (from compressed byte %zu): expected the file to "
                     "end with the stream; the file is corrupt: re-download or reinstall it", path, g.junk,
                     g.in_len - g.junk);
done:
    if (gz) inflateEnd(&g.zs);
    free(raw);
    if (st != PE_OK) {
        free(*data);
        *data = NULL;
    }
    return st;
}

pe_status data_load_idx(image_dataset *d, const char *images_path, const char *labels_path, long limit,
                        pe_err *err) {
    memset(d, 0, sizeof *d);
    uint32_t idims[3], ldims[1];
    pe_status st = data_read_idx_file(images_path, "[data] path", 0x00000803u, 3, idims, &d->pixels, err);
    if (st == PE_OK) st = data_read_idx_file(labels_path, "[data] labels", 0x00000801u, 1, ldims, &d->labels, err);
    if (st == PE_OK && idims[0] != ldims[0])
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s holds %u images but %s holds %u labels: expected equal counts; check [data] labels",
                     images_path, idims[0], labels_path, ldims[0]);
    if (st != PE_OK) {
        data_free_idx(d);
        return st;
    }
    d->n = (int)idims[0];
    d->rows = (int)idims[1];
    d->cols = (int)idims[2];
    for (int i = 0; i < d->n; i++)
        if (d->labels[i] + 1 > d->n_classes) d->n_classes = d->labels[i] + 1; /* over the whole file */
    if (limit > 0 && limit < d->n) d->n = (int)limit;
    return PE_OK;
}

void data_free_idx(image_dataset *d) {
    free(d->pixels);
    free(d->labels);
    d->pixels = NULL;
    d->labels = NULL;
    d->n = 0;
}

static void data_idx_span(image_dataset *d, double span_begin, double span_end) {
    int    a = (int)floor(span_begin * d->n), b = (int)floor(span_end * d->n);
    size_t px = (size_t)d->rows * d->cols;
    if (b > d->n) b = d->n;
    if (a > b) a = b;
    memmove(d->pixels, d->pixels + (size_t)a * px, (size_t)(b - a) * px);
    memmove(d->labels, d->labels + a, (size_t)(b - a));
    d->n = b - a;
}

pe_status data_load_idx_span(image_dataset *d, const char *images_path, const char *labels_path, long limit,
                             double span_begin, double span_end, pe_err *err) {
    char labels[4096];
    const char *p = strstr(images_path, "images-idx3");
    if (labels_path && labels_path[0])
        snprintf(labels, sizeof labels, "%s", labels_path);
    else if (p) /* t10k-images-idx3-ubyte.gz -> t10k-labels-idx1-ubyte.gz */
        snprintf(labels, sizeof labels, "%.*slabels-idx1%s", (int)(p - images_path), images_path, p + strlen("images-idx3"));
    else
        snprintf(labels, sizeof labels, "%s", images_path);
    pe_status st = data_load_idx(d, images_path, labels, 0, err);
    if (st) return st;
    data_idx_span(d, span_begin, span_end); /* the span first, then the limit (as for text) */
    if (limit > 0 && limit < d->n) d->n = (int)limit;
    return PE_OK;
}
