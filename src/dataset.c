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
    pe_status st = tok_encode(t, text, len, t->bos_id >= 0, 0, &toks, &n, err);
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

/* documents: blank-line separated paragraphs, each its own sequence */
static pe_status data_cut_documents(text_dataset *d, const tokenizer *t, const char *buf, size_t n, long limit,
                                    pe_err *err) {
    int64_t tok_cap = 0, doc_id = 0;
    int seq_cap = 0;
    size_t doc_start = 0, doc_end = 0;
    int in_doc = 0;
    for (size_t p = 0; p <= n && (limit <= 0 || doc_id < limit);) {
        const char *nl = p < n ? memchr(buf + p, '\n', n - p) : NULL;
        size_t eol = nl ? (size_t)(nl - buf) : n;
        int blank = data_is_blank(buf + p, eol - p);
        if (!blank) {
            if (!in_doc) doc_start = p;
            in_doc = 1;
            doc_end = eol > p && buf[eol - 1] == '\r' ? eol - 1 : eol;
        }
        if (in_doc && (blank || eol == n)) {
            pe_status st = data_add_document(d, t, buf + doc_start, doc_end - doc_start, doc_id++, &tok_cap,
                                             &seq_cap, err);
            if (st != PE_OK) return st;
            in_doc = 0;
        }
        p = eol + 1;
    }
    return PE_OK;
}

/* windows: one token stream, windows of context tokens every step tokens */
static pe_status data_cut_windows(text_dataset *d, const tokenizer *t, const char *buf, size_t n, long limit,
                                  pe_err *err) {
    int *toks, nt;
    pe_status st = tok_encode(t, buf, n, t->bos_id >= 0, 0, &toks, &nt, err);
    if (st != PE_OK) return st;
    d->tokens = toks;
    d->n_tokens = nt;
    d->tok_bytes = pe_malloc((size_t)nt * sizeof *d->tok_bytes, err, "token byte counts");
    if (!d->tok_bytes) return PE_ERR_INTERNAL;
    for (int i = 0; i < nt; i++) d->tok_bytes[i] = i == 0 ? 0 : (uint16_t)tok_count_bytes(t, toks[i - 1], toks[i]);
    if (nt < 2) return PE_OK;
    /* Consecutive windows must overlap by a token for every target to be scored once, so
     * stride == context steps context - 1 (the first token of a window is never a target). */
    int step = d->stride < d->context ? d->stride : d->context - 1;
    int seq_cap = 0;
    int64_t start = 0, prev_end = 0;
    for (int64_t w = 0; limit <= 0 || w < limit; w++, start += step) {
        int len = nt - start < d->context ? (int)(nt - start) : d->context;
        /* predictions from position score_begin on target stream index >= prev_end */
        text_seq s = {start, len, w == 0 ? 0 : (int)(prev_end - start - 1), w};
        st = data_push_seq(d, &seq_cap, s, err);
        if (st != PE_OK) return st;
        prev_end = start + len;
        if (prev_end == nt) break;
    }
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
    pe_status st = pe_read_file(path, &buf, &n, err);
    if (st != PE_OK) {
        if (err) {
            char msg[sizeof err->msg];
            memcpy(msg, err->msg, sizeof msg);
            pe_fail(err, st, "%s (the text dataset set by [data] path)", msg);
        }
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

/* read up to n bytes; returns the count read (< n only at end of file), -1 on a read error */
static int64_t data_gz_read(gzFile f, void *dst, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t chunk = n - got < (1u << 30) ? n - got : (1u << 30);
        int r = gzread(f, (char *)dst + got, (unsigned)chunk);
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    return (int64_t)got;
}

/* Read one IDX file of uint8 items: magic, n_dims big-endian uint32 dims, then exactly
 * prod(dims) bytes. *data (dims[0] * ... ) is malloc'ed. key names the config key for hints. */
static pe_status data_read_idx_file(const char *path, const char *key, uint32_t magic, int n_dims,
                                    uint32_t *dims, uint8_t **data, pe_err *err) {
    *data = NULL;
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return pe_fail(err, PE_ERR_INPUT, "%s: cannot open (%s); check %s", path,
                       errno ? strerror(errno) : "zlib error", key);
    pe_status st = PE_OK;
    unsigned char hdr[16]; /* magic + up to 3 dims */
    size_t hdr_len = 4 + 4 * (size_t)n_dims;
    int64_t got = data_gz_read(f, hdr, hdr_len);
    uint64_t total = 1;
    if (got < 0) {
        int zerr;
        st = pe_fail(err, PE_ERR_INPUT, "%s: read error (%s); the file is corrupt, reinstall it", path,
                     gzerror(f, &zerr));
        goto done;
    }
    if ((size_t)got < hdr_len) {
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s: truncated header: expected %zu bytes (magic + %d big-endian dims), got %lld; check %s",
                     path, hdr_len, n_dims, (long long)got, key);
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
    for (int i = 0; i < n_dims; i++) {
        dims[i] = be[i + 1];
        if (dims[i] == 0 || dims[i] > INT_MAX) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: dimension %d is %u: expected 1..%d; the file is corrupt", path, i,
                         dims[i], INT_MAX);
            goto done;
        }
        total *= dims[i];
    }
    if (total > ((uint64_t)1 << 40)) {
        st = pe_fail(err, PE_ERR_INPUT, "%s: header promises %llu bytes: expected at most 2^40; the file is corrupt",
                     path, (unsigned long long)total);
        goto done;
    }
    *data = pe_malloc((size_t)total, err, path);
    if (!*data) {
        st = PE_ERR_INTERNAL;
        goto done;
    }
    got = data_gz_read(f, *data, (size_t)total);
    if (got >= 0 && (uint64_t)got < total) {
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s: truncated: the header promises %llu data bytes, the file holds %lld; reinstall it",
                     path, (unsigned long long)total, (long long)got);
        goto done;
    }
    int64_t extra = 0;
    if (got >= 0) {
        unsigned char tail[4096];
        int64_t r;
        while ((r = data_gz_read(f, tail, sizeof tail)) > 0) extra += r;
        got = r < 0 ? -1 : got;
    }
    if (got < 0) {
        int zerr;
        st = pe_fail(err, PE_ERR_INPUT, "%s: read error (%s); the file is corrupt, reinstall it", path,
                     gzerror(f, &zerr));
        goto done;
    }
    if (extra > 0)
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s: %lld trailing bytes: expected the file to end after the %llu data bytes its header "
                     "promises; the file is corrupt or not IDX", path, (long long)extra, (unsigned long long)total);
done:
    gzclose(f);
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
