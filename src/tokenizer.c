/* tokenizer.c: llama2.c tokenizer files and the byte-level tokenizer (see tokenizer.h).
 *
 * Pieces are C strings, exactly as llama2.c treats them (the loader rejects a piece holding a NUL
 * byte), so lookups compare with strcmp like llama2.c's bsearch over its sorted vocabulary.
 */
#include "tokenizer.h"

#include "hftok.h"

#include <limits.h>
#include <sys/stat.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOK_MIN_SCORE (-1e10f) /* llama2.c's initial best_score: a merge must score above it */

/* ---- loading -------------------------------------------------------------------------------- */

static int32_t tok_read_i32(const unsigned char *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static float tok_read_f32(const unsigned char *p) {
    float v;
    memcpy(&v, p, 4);
    return v;
}

/* order of ids by (string, id), so a lookup finds the lowest id among duplicate pieces */
static int tok_compare_ids(int a, int b, char *const *vocab) {
    int c = strcmp(vocab[a], vocab[b]);
    return c != 0 ? c : (a > b) - (a < b);
}

/* merge sort of ids (qsort has no context argument in C11); tmp: (n) scratch */
static void tok_sort_ids(int *ids, int *tmp, int n, char *const *vocab) {
    if (n < 2) return;
    int h = n / 2;
    tok_sort_ids(ids, tmp, h, vocab);
    tok_sort_ids(ids + h, tmp, n - h, vocab);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = tok_compare_ids(ids[j], ids[i], vocab) < 0 ? ids[j++] : ids[i++];
    while (i < h) tmp[k++] = ids[i++];
    while (j < n) tmp[k++] = ids[j++];
    memcpy(ids, tmp, (size_t)n * sizeof *ids);
}

/* id of the piece equal to the NUL-terminated s, -1 if none (lowest id among duplicates) */
static int tok_find_piece(const tokenizer *t, const char *s) {
    int lo = 0, hi = t->vocab_size; /* first sorted index whose string is >= s */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(t->vocab[t->sorted_ids[mid]], s) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < t->vocab_size && strcmp(t->vocab[t->sorted_ids[lo]], s) == 0) return t->sorted_ids[lo];
    return -1;
}

static void tok_fill_byte_pieces(tokenizer *t) {
    for (int i = 0; i < 256; i++) {
        t->byte_pieces[i][0] = (char)i;
        t->byte_pieces[i][1] = '\0';
    }
}

/* Parse the file bytes buf[0..n) into t (vocab arrays already allocated, zeroed). */
static pe_status tok_parse_records(tokenizer *t, const char *path, const unsigned char *buf, size_t n,
                                   pe_err *err) {
    const char *hint = "check that [model] tokenizer is the tokenizer.bin exported with this model";
    size_t off = 4;
    for (int i = 0; i < t->vocab_size; i++) {
        if (n - off < 8)
            return pe_fail(err, PE_ERR_INPUT,
                           "%s: truncated at token record %d of %d (byte offset %zu): expected 8 bytes "
                           "{float32 score, int32 len}, got %zu; the file holds fewer tokens than the model's "
                           "vocab_size %d; %s",
                           path, i, t->vocab_size, off, n - off, t->vocab_size, hint);
        float score = tok_read_f32(buf + off);
        int32_t len = tok_read_i32(buf + off + 4);
        off += 8;
        if (!isfinite(score))
            return pe_fail(err, PE_ERR_INPUT,
                           "%s: token record %d (byte offset %zu) has merge score %s: expected a finite float32; the "
                           "file is corrupt or not a llama2.c tokenizer; %s",
                           path, i, off - 8, isnan(score) ? "NaN" : score > 0 ? "+Inf" : "-Inf", hint);
        if (len < 0 || len > t->max_token_length)
            return pe_fail(err, PE_ERR_INPUT,
                           "%s: token record %d (byte offset %zu) has length %d: expected 0..%d "
                           "(max_token_length); the file is corrupt or not a llama2.c tokenizer; %s",
                           path, i, off - 4, (int)len, t->max_token_length, hint);
        if (n - off < (size_t)len)
            return pe_fail(err, PE_ERR_INPUT,
                           "%s: truncated in token record %d (byte offset %zu): expected %d piece bytes, "
                           "got %zu; re-export or re-download the tokenizer",
                           path, i, off, (int)len, n - off);
        if (memchr(buf + off, '\0', (size_t)len))
            return pe_fail(err, PE_ERR_INPUT,
                           "%s: token record %d holds a NUL byte: expected a C-string piece as llama2.c "
                           "writes them; the file is corrupt; %s", path, i, hint);
        t->vocab[i] = pe_malloc((size_t)len + 1, err, "tokenizer piece");
        if (!t->vocab[i]) return PE_ERR_INTERNAL;
        memcpy(t->vocab[i], buf + off, (size_t)len);
        t->vocab[i][len] = '\0';
        t->vocab_len[i] = len;
        t->scores[i] = score;
        off += (size_t)len;
    }
    if (off != n)
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: %zu trailing bytes after %d token records: expected the file to end at byte %zu, "
                       "it has %zu bytes; the tokenizer has more tokens than the model's vocab_size %d; %s",
                       path, n - off, t->vocab_size, off, n, t->vocab_size, hint);
    return PE_OK;
}

pe_status tok_init_llama2c(tokenizer *t, const char *path, int vocab_size, pe_err *err) {
    memset(t, 0, sizeof *t);
    t->kind = TOK_KIND_LLAMA2C;
    if (vocab_size < 3)
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: model vocab_size is %d: expected at least 3 (unk, BOS=1, EOS=2) for a llama2.c "
                       "tokenizer; use tokenizer = bytes for byte-level models", path, vocab_size);
    char *raw = NULL;
    size_t n = 0;
    pe_status st = pe_read_file_for(path, &raw, &n, "the llama2.c tokenizer set by [model] tokenizer", err);
    if (st != PE_OK) return st;
    const unsigned char *buf = (const unsigned char *)raw;
    if (n < 4) {
        free(raw);
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: truncated: expected at least 4 bytes (int32 max_token_length), got %zu; "
                       "check [model] tokenizer", path, n);
    }
    int32_t mtl = tok_read_i32(buf);
    if (mtl <= 0 || mtl > 65535) {
        free(raw);
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: max_token_length is %d: expected 1..65535; is this a llama2.c tokenizer.bin? "
                       "check [model] tokenizer", path, (int)mtl);
    }
    if ((uint64_t)vocab_size * 8 > (uint64_t)(n - 4)) { /* every record is >= 8 bytes: check before allocating */
        free(raw);
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: %zu bytes cannot hold the model's vocab_size %d token records (each at least 8 bytes: "
                       "float32 score, int32 len); check that [model] tokenizer is the tokenizer.bin exported with "
                       "this model", path, n, vocab_size);
    }
    t->vocab_size = vocab_size;
    t->max_token_length = mtl;
    t->vocab = pe_calloc((size_t)vocab_size, sizeof *t->vocab, err, "tokenizer vocab");
    t->vocab_len = pe_calloc((size_t)vocab_size, sizeof *t->vocab_len, err, "tokenizer lengths");
    t->scores = pe_calloc((size_t)vocab_size, sizeof *t->scores, err, "tokenizer scores");
    t->sorted_ids = pe_calloc((size_t)vocab_size, sizeof *t->sorted_ids, err, "tokenizer index");
    int *tmp = pe_calloc((size_t)vocab_size, sizeof *tmp, err, "tokenizer sort buffer");
    st = (t->vocab && t->vocab_len && t->scores && t->sorted_ids && tmp) ? PE_OK : PE_ERR_INTERNAL;
    if (st == PE_OK) st = tok_parse_records(t, path, buf, n, err);
    free(raw);
    if (st == PE_OK) {
        for (int i = 0; i < vocab_size; i++) t->sorted_ids[i] = i;
        tok_sort_ids(t->sorted_ids, tmp, vocab_size, t->vocab);
    }
    free(tmp);
    if (st != PE_OK) {
        tok_free(t);
        return st;
    }
    t->bos_id = 1;
    t->eos_id = 2;
    t->add_bos = 1;
    t->add_eos = 0;
    t->space_id = tok_find_piece(t, " ");
    tok_fill_byte_pieces(t);
    return PE_OK;
}

void tok_init_bytes(tokenizer *t) {
    memset(t, 0, sizeof *t);
    t->kind = TOK_KIND_BYTES;
    t->vocab_size = 256;
    t->max_token_length = 1;
    t->bos_id = -1;
    t->eos_id = -1;
    t->space_id = -1; /* no dummy prefix */
    tok_fill_byte_pieces(t);
}

pe_status tok_init_hf(tokenizer *t, const char *path, pe_err *err) {
    memset(t, 0, sizeof *t);
    pe_status st = hftok_load(&t->hf, path, err);
    if (st != PE_OK) return st;
    t->kind = hftok_byte_level(t->hf) ? TOK_KIND_BPE_BYTELEVEL : TOK_KIND_BPE_SPM;
    t->vocab_size = hftok_n_ids(t->hf);
    t->bos_id = hftok_bos_id(t->hf);
    t->eos_id = hftok_eos_id(t->hf);
    t->space_id = -1;
    t->add_bos = hftok_n_prefix(t->hf) > 0;
    t->add_eos = hftok_n_suffix(t->hf) > 0;
    tok_fill_byte_pieces(t);
    return PE_OK;
}

/* the folder whose tokenizer files `auto` loads: model_path itself when it is a folder, else the folder of
 * the weights file; 1 when it holds tokenizer.json or vocab.json */
static int tok_hf_dir(const char *model_path, char *dir, size_t dir_n) {
    if (!model_path) return 0;
    if (pe_is_dir(model_path)) {
        snprintf(dir, dir_n, "%s", model_path);
    } else {
        const char *slash = strrchr(model_path, '/');
        snprintf(dir, dir_n, "%.*s", slash ? (int)(slash - model_path) : 1, slash ? model_path : ".");
    }
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/tokenizer.json", dir);
    snprintf(b, sizeof b, "%s/vocab.json", dir);
    return pe_is_file(a) || pe_is_file(b);
}

int tok_auto_finds(const char *model_path, int model_vocab) {
    char dir[4096];
    return model_vocab == 256 || tok_hf_dir(model_path, dir, sizeof dir);
}

pe_status tok_init_for_model(tokenizer *t, const char *spec, const char *model_path, int model_vocab, pe_err *err) {
    memset(t, 0, sizeof *t);
    size_t    n = strlen(spec);
    pe_status st;
    if (!strcmp(spec, "bytes")) {
        tok_init_bytes(t);
    } else if (!strcmp(spec, "none")) {
        return pe_fail(err, PE_ERR_INPUT, "[model] tokenizer = none, but a language model needs a tokenizer: set it to "
                       "auto (a Hugging Face model folder), a tokenizer.json, a folder with one, a llama2.c "
                       "tokenizer.bin, or bytes");
    } else if (!n || !strcmp(spec, "auto")) {
        char dir[4096];
        if (tok_hf_dir(model_path, dir, sizeof dir)) {
            if ((st = tok_init_hf(t, dir, err))) return st;
        } else if (model_vocab == 256) {
            tok_init_bytes(t);
        } else if (model_path && pe_is_dir(model_path)) { /* says what the folder lacks */
            if ((st = tok_init_hf(t, model_path, err))) return st;
        } else {
            return pe_fail(err, PE_ERR_INPUT, "a language model needs a tokenizer and %s is not a model folder to find "
                           "one in: set [model] tokenizer = PATH (a tokenizer.json, a folder with one, or a llama2.c "
                           "tokenizer.bin) or bytes", model_path ? model_path : "[model] path");
        }
    } else if (pe_is_dir(spec) || (n >= 5 && !strcmp(spec + n - 5, ".json"))) {
        if ((st = tok_init_hf(t, spec, err))) return st;
    } else {
        return tok_init_llama2c(t, spec, model_vocab, err);
    }
    if (t->vocab_size > model_vocab) {
        pe_fail(err, PE_ERR_INPUT,
                "tokenizer %s has %d token ids but the model's vocabulary has %d (its embedding rows): the tokenizer "
                "belongs to another model; set [model] tokenizer to the one saved with this model",
                t->hf ? hftok_source(t->hf) : spec, t->vocab_size, model_vocab);
        tok_free(t);
        return PE_ERR_INPUT;
    }
    return PE_OK;
}

const char *tok_kind_name(const tokenizer *t) {
    switch (t->kind) {
    case TOK_KIND_LLAMA2C: return "llama2.c";
    case TOK_KIND_BYTES: return "bytes";
    case TOK_KIND_BPE_BYTELEVEL: return "bpe-byte-level";
    case TOK_KIND_BPE_SPM: return "bpe-sentencepiece";
    }
    return "unknown";
}

const char *tok_source(const tokenizer *t) { return t->hf ? hftok_source(t->hf) : ""; }

void tok_free(tokenizer *t) {
    hftok_free(t->hf);
    t->hf = NULL;
    if (t->vocab)
        for (int i = 0; i < t->vocab_size; i++) free(t->vocab[i]);
    free(t->vocab);
    free(t->vocab_len);
    free(t->scores);
    free(t->sorted_ids);
    t->vocab = NULL;
    t->vocab_len = NULL;
    t->scores = NULL;
    t->sorted_ids = NULL;
}

/* ---- encoding: the part shared by both encoders --------------------------------------------- */

/* Allocate *out for the worst case and fill it with llama2.c's pre-merge tokens: optional BOS, the
 * dummy " " prefix, then one token per UTF-8 codepoint (groups of up to 4 bytes) or byte fallback.
 * *buf gets a scratch string of max_token_length*2+8 bytes for the merge lookups. */
static pe_status tok_split_codepoints(const tokenizer *t, const char *text, size_t len, int bos,
                                      int **out, int *n_out, char **buf, pe_err *err) {
    *out = NULL;
    *n_out = 0;
    *buf = NULL;
    if (len > (size_t)INT_MAX - 4)
        return pe_fail(err, PE_ERR_INPUT, "text of %zu bytes is too long to encode at once: expected at most %d",
                       len, INT_MAX - 4);
    int *toks = pe_malloc((len + 3) * sizeof *toks, err, "tokens"); /* (bos + prefix + len + eos) */
    char *sbuf = pe_malloc((size_t)t->max_token_length * 2 + 8, err, "token string buffer");
    if (!toks || !sbuf) {
        free(toks);
        free(sbuf);
        return PE_ERR_INTERNAL;
    }
    int n = 0;
    if (bos) toks[n++] = t->bos_id;
    if (len > 0) toks[n++] = t->space_id >= 0 ? t->space_id : ' ' + 3; /* no " " piece: its byte fallback */
    const unsigned char *s = (const unsigned char *)text;
    size_t sl = 0; /* bytes in the current codepoint group */
    for (size_t i = 0; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) sl = 0; /* ASCII or leading byte starts a new group */
        sbuf[sl++] = (char)s[i];
        sbuf[sl] = '\0';
        if (i + 1 < len && (s[i + 1] & 0xC0) == 0x80 && sl < 4) continue;
        int id = memchr(sbuf, '\0', sl) ? -1 : tok_find_piece(t, sbuf);
        if (id >= 0) {
            toks[n++] = id;
        } else {
            for (size_t k = 0; k < sl; k++) toks[n++] = (unsigned char)sbuf[k] + 3;
        }
        sl = 0;
    }
    for (int i = 0; i < n; i++) {
        if (toks[i] < 0 || toks[i] >= t->vocab_size) {
            pe_fail(err, PE_ERR_INPUT,
                    "cannot encode: token id %d (byte fallback or BOS) is outside the vocabulary of %d; "
                    "expected a llama2.c tokenizer with byte-fallback pieces <0x00>..<0xFF> at ids 3..258",
                    toks[i], t->vocab_size);
            free(toks);
            free(sbuf);
            return PE_ERR_INPUT;
        }
    }
    *out = toks;
    *n_out = n;
    *buf = sbuf;
    return PE_OK;
}

/* id of the piece vocab[a] + vocab[b] if it may merge (score above llama2.c's floor), else -1 */
static int tok_find_merge(const tokenizer *t, int a, int b, char *buf) {
    size_t la = (size_t)t->vocab_len[a], lb = (size_t)t->vocab_len[b];
    memcpy(buf, t->vocab[a], la);
    memcpy(buf + la, t->vocab[b], lb + 1);
    int id = tok_find_piece(t, buf);
    return (id >= 0 && t->scores[id] > TOK_MIN_SCORE) ? id : -1;
}

static pe_status tok_encode_bytes(const char *text, size_t len, int **out, int *n_out, pe_err *err) {
    *out = NULL;
    *n_out = 0;
    if (len > (size_t)INT_MAX)
        return pe_fail(err, PE_ERR_INPUT, "text of %zu bytes is too long to encode at once: expected at most %d",
                       len, INT_MAX);
    int *toks = pe_malloc(len * sizeof *toks, err, "tokens"); /* (len) */
    if (!toks) return PE_ERR_INTERNAL;
    for (size_t i = 0; i < len; i++) toks[i] = (unsigned char)text[i];
    *out = toks;
    *n_out = (int)len;
    return PE_OK;
}

/* ---- reference encoder: llama2.c's loop -------------------------------------------------------- */

pe_status tok_encode_ref(const tokenizer *t, const char *text, size_t len, int bos, int eos,
                         int **out, int *n_out, pe_err *err) {
    if (t->kind == TOK_KIND_BYTES) return tok_encode_bytes(text, len, out, n_out, err);
    if (t->hf) return hftok_encode(t->hf, text, len, bos, eos, 1, out, n_out, err);
    int *toks, n;
    char *buf;
    pe_status st = tok_split_codepoints(t, text, len, bos, &toks, &n, &buf, err);
    if (st != PE_OK) return st;
    while (1) { /* merge the best consecutive pair each iteration */
        float best_score = TOK_MIN_SCORE;
        int best_id = -1, best_idx = -1;
        for (int i = 0; i < n - 1; i++) {
            int id = tok_find_merge(t, toks[i], toks[i + 1], buf);
            if (id != -1 && t->scores[id] > best_score) {
                best_score = t->scores[id];
                best_id = id;
                best_idx = i;
            }
        }
        if (best_idx == -1) break;
        toks[best_idx] = best_id;
        for (int i = best_idx + 1; i < n - 1; i++) toks[i] = toks[i + 1];
        n--;
    }
    if (eos) toks[n++] = t->eos_id;
    free(buf);
    *out = toks;
    *n_out = n;
    return PE_OK;
}

/* ---- fast encoder: heap of candidate pairs over a linked list of symbols --------------------- */

/* A candidate merge of the adjacent symbols (left, right). It is stale once either symbol changed
 * token or died, which bumps that symbol's generation. */
typedef struct {
    float    score;
    int      left, right, id;
    unsigned gen_left, gen_right;
} tok_pair;

typedef struct {
    tok_pair *a;   /* (cap) */
    int       n, cap;
} tok_heap;

/* heap order: higher score first; on equal scores the leftmost pair (llama2.c's strict '>') */
static int tok_pair_before(const tok_pair *x, const tok_pair *y) {
    if (x->score != y->score) return x->score > y->score;
    return x->left < y->left;
}

static void tok_heap_push(tok_heap *h, tok_pair p) {
    int i = h->n++;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (!tok_pair_before(&p, &h->a[parent])) break;
        h->a[i] = h->a[parent];
        i = parent;
    }
    h->a[i] = p;
}

static tok_pair tok_heap_pop(tok_heap *h) {
    tok_pair top = h->a[0], last = h->a[--h->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && tok_pair_before(&h->a[c + 1], &h->a[c])) c++;
        if (!tok_pair_before(&h->a[c], &last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n > 0) h->a[i] = last;
    return top;
}

typedef struct {
    int      *tok;  /* (n) token of each symbol */
    int      *prev; /* (n) previous live symbol, -1 at the head */
    int      *next; /* (n) next live symbol, -1 at the tail */
    unsigned *gen;  /* (n) bumped whenever the symbol changes token or dies */
} tok_symbols;

static void tok_try_pair(const tokenizer *t, const tok_symbols *s, tok_heap *h, int left, int right, char *buf) {
    int id = tok_find_merge(t, s->tok[left], s->tok[right], buf);
    if (id < 0) return;
    tok_pair p = {t->scores[id], left, right, id, s->gen[left], s->gen[right]};
    tok_heap_push(h, p);
}

pe_status tok_encode(const tokenizer *t, const char *text, size_t len, int bos, int eos,
                     int **out, int *n_out, pe_err *err) {
    if (t->kind == TOK_KIND_BYTES) return tok_encode_bytes(text, len, out, n_out, err);
    if (t->hf) return hftok_encode(t->hf, text, len, bos, eos, 0, out, n_out, err);
    int *toks, n;
    char *buf;
    pe_status st = tok_split_codepoints(t, text, len, bos, &toks, &n, &buf, err);
    if (st != PE_OK) return st;
    /* Each valid merge pops one pair and pushes at most two, each stale pop removes one:
     * the heap never holds more than (n - 1) + (n - 1) pairs. */
    tok_symbols s = {toks, NULL, NULL, NULL};
    tok_heap h = {NULL, 0, 2 * n + 1};
    s.prev = pe_malloc((size_t)n * sizeof *s.prev, err, "encoder links");
    s.next = pe_malloc((size_t)n * sizeof *s.next, err, "encoder links");
    s.gen = pe_calloc((size_t)n, sizeof *s.gen, err, "encoder generations");
    h.a = pe_malloc((size_t)h.cap * sizeof *h.a, err, "encoder heap");
    if (!s.prev || !s.next || !s.gen || !h.a) {
        st = PE_ERR_INTERNAL;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        s.prev[i] = i - 1;
        s.next[i] = i + 1 < n ? i + 1 : -1;
    }
    for (int i = 0; i + 1 < n; i++) tok_try_pair(t, &s, &h, i, i + 1, buf);
    while (h.n > 0) {
        tok_pair p = tok_heap_pop(&h);
        if (s.gen[p.left] != p.gen_left || s.gen[p.right] != p.gen_right) continue; /* stale */
        int l = p.left, r = p.right;
        s.tok[l] = p.id;
        s.gen[l]++;
        s.gen[r]++; /* r dies */
        s.next[l] = s.next[r];
        if (s.next[r] >= 0) s.prev[s.next[r]] = l;
        if (s.prev[l] >= 0) tok_try_pair(t, &s, &h, s.prev[l], l, buf);
        if (s.next[l] >= 0) tok_try_pair(t, &s, &h, l, s.next[l], buf);
    }
    int m = 0; /* symbol 0 is never merged away (it has no left neighbour) */
    for (int i = n > 0 ? 0 : -1; i >= 0; i = s.next[i]) toks[m++] = s.tok[i];
    if (eos) toks[m++] = t->eos_id;
    n = m;
done:
    free(s.prev);
    free(s.next);
    free(s.gen);
    free(h.a);
    free(buf);
    if (st != PE_OK) {
        free(toks);
        return st;
    }
    *out = toks;
    *n_out = n;
    return PE_OK;
}

/* ---- decoding -------------------------------------------------------------------------------- */

static int tok_hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

const char *tok_decode_piece(const tokenizer *t, int prev, int cur, int *len) {
    if (cur < 0 || cur >= t->vocab_size) {
        *len = 0;
        return "";
    }
    if (t->kind == TOK_KIND_BYTES) {
        *len = 1;
        return t->byte_pieces[cur];
    }
    if (t->hf) return hftok_piece(t->hf, prev, cur, len);
    const char *piece = t->vocab[cur];
    int n = t->vocab_len[cur];
    if (prev == t->bos_id && n > 0 && piece[0] == ' ') { /* sentencepiece strips it after BOS */
        piece++;
        n--;
    }
    if (n == 6 && memcmp(piece, "<0x", 3) == 0 && piece[5] == '>') {
        int hi = tok_hex_digit(piece[3]), lo = tok_hex_digit(piece[4]);
        if (hi >= 0 && lo >= 0) {
            *len = 1;
            return t->byte_pieces[hi * 16 + lo];
        }
    }
    *len = n;
    return piece;
}

int tok_count_bytes(const tokenizer *t, int prev, int cur) {
    int len;
    tok_decode_piece(t, prev, cur, &len);
    return len;
}
