/* hftok.c: Hugging Face BPE tokenizers (see hftok.h). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "hftok.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#define HF_MAX_STEPS 16 /* normalizer / pre-tokenizer steps after flattening Sequences */
#define HF_MAX_SPECIAL 8 /* post-processor tokens before / after a text */
#define HF_MAX_ID (1 << 24)
#define HF_RE_FAILED (-3) /* a PCRE2 match error other than "no match" */

/* GPT-2's byte-level regex (ByteLevel with use_regex, and vocab.json + merges.txt folders) */
static const char *HF_GPT2_REGEX =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef enum { HF_NORM_NFC, HF_NORM_NFD, HF_NORM_NFKC, HF_NORM_NFKD, HF_NORM_REPLACE, HF_NORM_PREPEND } hf_norm_kind;
typedef enum { HF_PRE_SPLIT, HF_PRE_BYTELEVEL, HF_PRE_METASPACE } hf_pre_kind;
typedef enum { HF_SPLIT_ISOLATED, HF_SPLIT_REMOVED } hf_split_behavior;
typedef enum { HF_SCHEME_ALWAYS, HF_SCHEME_FIRST, HF_SCHEME_NEVER } hf_scheme;

typedef struct {
    hf_norm_kind kind;
    char        *a;     /* Replace: the String pattern (NULL: regex); Prepend: the prefix */
    char        *b;     /* Replace: the content */
    pcre2_code  *re;    /* Replace: a Regex pattern */
} hf_norm;

typedef struct {
    hf_pre_kind       kind;
    pcre2_code       *re;        /* Split (Regex), ByteLevel with use_regex */
    char             *str;       /* Split with a String pattern; Metaspace: the replacement */
    hf_split_behavior behavior;
    int               invert;
    int               add_prefix_space; /* ByteLevel */
    hf_scheme         scheme;    /* Metaspace */
    int               split;     /* Metaspace: split into words at each replacement */
} hf_pre;

typedef struct {
    char *content;
    int   len, id, special, lstrip, rstrip;
} hf_added;

typedef struct {
    uint64_t key; /* (uint64)left << 32 | right; UINT64_MAX = empty slot */
    int32_t  rank, id;
} hf_merge;

struct hftok {
    char      source[4200];
    int       byte_level;
    int       n_ids;        /* largest id + 1 */
    /* model vocabulary: strings in the model alphabet (raw bytes for byte-level) */
    char     *arena;        /* (arena_len) all token strings */
    size_t    arena_len, arena_cap;
    int64_t  *str_off;      /* (n_ids) offset of each model token's string, -1: not a model token */
    int32_t  *str_len;      /* (n_ids) */
    int32_t  *vhash;        /* (vmask + 1) ids, -1 empty: string -> id */
    uint64_t  vmask;
    hf_merge *mtab;         /* (mmask + 1) pair -> (rank, merged id) */
    uint64_t  mmask;
    int       n_merges;
    int       byte_id[256]; /* byte-level: id of each byte; SentencePiece: id of <0xNN> (-1: none) */
    int       unk_id, byte_fallback, fuse_unk, ignore_merges;
    hf_added *added;        /* (n_added) sorted by first byte, then longest first */
    int       n_added;
    int       added_first[257]; /* added tokens starting with byte c: added[added_first[c] .. added_first[c+1]) */
    hf_norm   norm[HF_MAX_STEPS];
    int       n_norm;
    hf_pre    pre[HF_MAX_STEPS];
    int       n_pre;
    int       prefix[HF_MAX_SPECIAL], n_prefix, suffix[HF_MAX_SPECIAL], n_suffix;
    int       eos_id;
    /* decoding */
    unsigned char *special; /* (n_ids) 1: an added token, 2: a special added token (decodes to nothing) */
    char     *dec;          /* decoded bytes of every id */
    int64_t  *dec_off;      /* (n_ids) */
    int32_t  *dec_len;      /* (n_ids) */
    int       strip_mode;   /* 0: none; 1: a leading space is dropped at the start and after any special
                             * token; 2: only at the start and right after the prefix token */
};

/* ---- small helpers ---------------------------------------------------------------------------- */

static uint64_t hf_hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

static uint64_t hf_hash_pair(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    return k ^ (k >> 33);
}

/* first occurrence of needle[0..m) in hay[0..n) (C11 has no memmem) */
static const char *hf_find(const char *hay, size_t n, const char *needle, size_t m) {
    if (m == 0 || m > n) return NULL;
    for (const char *p = hay, *end = hay + n - m; p <= end; p++) {
        p = memchr(p, needle[0], (size_t)(end - p) + 1);
        if (!p) return NULL;
        if (!memcmp(p, needle, m)) return p;
    }
    return NULL;
}

/* length of the valid UTF-8 character at s[0..n) (1..4); 0 if invalid, with *sub = the length of
 * the maximal invalid subpart to replace by one U+FFFD (WHATWG / Unicode's recommended practice) */
static size_t hf_utf8_char(const unsigned char *s, size_t n, size_t *sub) {
    unsigned c = s[0];
    *sub = 1;
    if (c < 0x80) return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2;
    else if (c == 0xED) need = 2, hi = 0x9F;
    else if (c == 0xF0) need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) need = 3, hi = 0x8F;
    else return 0;
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *sub = i;
            return 0;
        }
        lo = 0x80, hi = 0xBF;
    }
    return need + 1;
}

/* growable byte buffer */
typedef struct {
    char  *b;
    size_t n, cap;
} hf_buf;

static int hf_buf_reserve(hf_buf *x, size_t extra) {
    if (x->n + extra + 1 <= x->cap) return 0;
    size_t c = x->cap ? x->cap : 256;
    while (c < x->n + extra + 1) c *= 2;
    char *b = realloc(x->b, c);
    if (!b) return -1;
    x->b = b;
    x->cap = c;
    return 0;
}

static int hf_buf_add(hf_buf *x, const char *s, size_t n) {
    if (hf_buf_reserve(x, n)) return -1;
    memcpy(x->b + x->n, s, n);
    x->n += n;
    x->b[x->n] = '\0';
    return 0;
}

/* growable int vector */
typedef struct {
    int   *v;
    size_t n, cap;
} hf_ints;

static int hf_ints_add(hf_ints *x, int v) {
    if (x->n == x->cap) {
        size_t c = x->cap ? 2 * x->cap : 1024;
        int   *p = realloc(x->v, c * sizeof *p);
        if (!p) return -1;
        x->v = p;
        x->cap = c;
    }
    x->v[x->n++] = v;
    return 0;
}

/* GPT-2's bytes_to_unicode: the codepoint standing for each byte */
static void hf_byte_map(uint32_t cp_of[256]) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp_of[b] = keep ? (uint32_t)b : (uint32_t)(256 + n++);
    }
}

/* its inverse: the byte each codepoint < 512 stands for, -1 for codepoints that stand for none */
static void hf_byte_unmap(int byte_of_cp[512]) {
    uint32_t cp_of[256];
    for (int i = 0; i < 512; i++) byte_of_cp[i] = -1;
    hf_byte_map(cp_of);
    for (int b = 0; b < 256; b++) byte_of_cp[cp_of[b]] = b;
}

/* ---- vocabulary and merges -------------------------------------------------------------------- */

static int hf_vocab_find(const hftok *h, const char *s, size_t n) {
    for (uint64_t i = hf_hash_bytes(s, n) & h->vmask;; i = (i + 1) & h->vmask) {
        int id = h->vhash[i];
        if (id < 0) return -1;
        if ((size_t)h->str_len[id] == n && memcmp(h->arena + h->str_off[id], s, n) == 0) return id;
    }
}

static const hf_merge *hf_merge_find(const hftok *h, int a, int b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (uint64_t i = hf_hash_pair(key) & h->mmask;; i = (i + 1) & h->mmask) {
        if (h->mtab[i].key == key) return &h->mtab[i];
        if (h->mtab[i].key == UINT64_MAX) return NULL;
    }
}

/* A vocabulary string converted to the model alphabet: byte-level strings map each character back
 * to its byte (a string holding a character outside the map, e.g. an added token kept in the vocab,
 * stays UTF-8). Appends to out; returns 0, or -1 out of memory. */
static int hf_to_model(const hftok *h, const int *byte_of_cp, const char *s, size_t n, hf_buf *out) {
    if (!h->byte_level) return hf_buf_add(out, s, n);
    size_t start = out->n;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (l <= 0 || cp >= 512 || byte_of_cp[cp] < 0) { /* not byte-level: keep the UTF-8 */
            out->n = start;
            return hf_buf_add(out, s, n);
        }
        char c = (char)byte_of_cp[cp];
        if (hf_buf_add(out, &c, 1)) return -1;
        i += (size_t)l;
    }
    return 0;
}

/* ---- loading: pieces of tokenizer.json -------------------------------------------------------- */

static pe_status hf_compile(pcre2_code **re, const char *pattern, const char *where, const char *path, pe_err *err) {
    int        code;
    PCRE2_SIZE off;
    *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &off, NULL);
    if (!*re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: %s: the regex /%s/ does not compile with PCRE2 (%s at offset %zu); fix the pattern, or "
                       "report it with the file if that is the file saved with a real model", path, where, pattern,
                       (const char *)msg, (size_t)off);
    }
    pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE); /* optional: interpreted when JIT is unavailable */
    return PE_OK;
}

static const char *hf_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int hf_bool(const cJSON *o, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* a {"String": s} or {"Regex": r} pattern */
static pe_status hf_pattern(const cJSON *p, char **str, pcre2_code **re, const char *where, const char *path,
                            pe_err *err) {
    const char *s = hf_str(p, "String"), *r = hf_str(p, "Regex");
    *str = NULL;
    *re = NULL;
    if (s && s[0]) {
        *str = strdup(s);
        return *str ? PE_OK : pe_fail(err, PE_ERR_INTERNAL, "out of memory");
    }
    if (r) return hf_compile(re, r, where, path, err);
    return pe_fail(err, PE_ERR_INPUT, "%s: %s.pattern: expected {\"String\": non-empty} or {\"Regex\": ...}; fix the "
                   "file", path, where);
}

static pe_status hf_add_norm(hftok *h, const cJSON *n, const char *path, pe_err *err) {
    if (!n || cJSON_IsNull(n)) return PE_OK;
    const char *type = hf_str(n, "type");
    if (type && !strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) {
            pe_status st = hf_add_norm(h, it, path, err);
            if (st) return st;
        }
        return PE_OK;
    }
    if (h->n_norm == HF_MAX_STEPS)
        return pe_fail(err, PE_ERR_INPUT, "%s: normalizer: more than %d steps; pathens reads at most %d", path,
                       HF_MAX_STEPS, HF_MAX_STEPS);
    hf_norm *s = &h->norm[h->n_norm];
    memset(s, 0, sizeof *s);
    if (type && !strcmp(type, "NFC")) s->kind = HF_NORM_NFC;
    else if (type && !strcmp(type, "NFD")) s->kind = HF_NORM_NFD;
    else if (type && !strcmp(type, "NFKC")) s->kind = HF_NORM_NFKC;
    else if (type && !strcmp(type, "NFKD")) s->kind = HF_NORM_NFKD;
    else if (type && !strcmp(type, "Prepend")) {
        const char *p = hf_str(n, "prepend");
        if (!p) return pe_fail(err, PE_ERR_INPUT, "%s: normalizer Prepend has no \"prepend\" string; fix the file", path);
        s->kind = HF_NORM_PREPEND;
        if (!(s->a = strdup(p))) return pe_fail(err, PE_ERR_INTERNAL, "out of memory");
    } else if (type && !strcmp(type, "Replace")) {
        const char *c = hf_str(n, "content");
        if (!c) return pe_fail(err, PE_ERR_INPUT, "%s: normalizer Replace has no \"content\" string; fix the file", path);
        s->kind = HF_NORM_REPLACE;
        h->n_norm++; /* owned from here: freed with the tokenizer on an error */
        pe_status st = hf_pattern(cJSON_GetObjectItemCaseSensitive(n, "pattern"), &s->a, &s->re, "normalizer Replace",
                                  path, err);
        if (st) return st;
        if (!(s->b = strdup(c))) return pe_fail(err, PE_ERR_INTERNAL, "out of memory");
        return PE_OK;
    } else {
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: normalizer type \"%s\" is not supported: pathens reads NFC, NFD, NFKC, NFKD, Replace, "
                       "Prepend and Sequence (the normalizers of GPT-2, Llama, Mistral and Qwen files); convert "
                       "the tokenizer or report it", path, type ? type : "(missing)");
    }
    h->n_norm++;
    return PE_OK;
}

static pe_status hf_add_pre(hftok *h, const cJSON *p, const char *path, pe_err *err) {
    if (!p || cJSON_IsNull(p)) return PE_OK;
    const char *type = hf_str(p, "type");
    if (type && !strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) {
            pe_status st = hf_add_pre(h, it, path, err);
            if (st) return st;
        }
        return PE_OK;
    }
    if (h->n_pre == HF_MAX_STEPS)
        return pe_fail(err, PE_ERR_INPUT, "%s: pre_tokenizer: more than %d steps; pathens reads at most %d", path,
                       HF_MAX_STEPS, HF_MAX_STEPS);
    hf_pre *s = &h->pre[h->n_pre];
    memset(s, 0, sizeof *s);
    if (type && !strcmp(type, "ByteLevel")) {
        s->kind = HF_PRE_BYTELEVEL;
        s->add_prefix_space = hf_bool(p, "add_prefix_space", 1);
        h->byte_level = 1;
        h->n_pre++;
        return hf_bool(p, "use_regex", 1) ? hf_compile(&s->re, HF_GPT2_REGEX, "pre_tokenizer ByteLevel", path, err)
                                          : PE_OK;
    }
    if (type && !strcmp(type, "Split")) {
        const char *beh = hf_str(p, "behavior");
        s->kind = HF_PRE_SPLIT;
        s->invert = hf_bool(p, "invert", 0);
        if (beh && !strcmp(beh, "Isolated")) s->behavior = HF_SPLIT_ISOLATED;
        else if (beh && !strcmp(beh, "Removed")) s->behavior = HF_SPLIT_REMOVED;
        else
            return pe_fail(err, PE_ERR_INPUT,
                           "%s: pre_tokenizer Split behavior \"%s\" is not supported: pathens reads Isolated and "
                           "Removed; report it with the file", path, beh ? beh : "(missing)");
        h->n_pre++;
        return hf_pattern(cJSON_GetObjectItemCaseSensitive(p, "pattern"), &s->str, &s->re, "pre_tokenizer Split", path,
                          err);
    }
    if (type && !strcmp(type, "Metaspace")) {
        const char *r = hf_str(p, "replacement"), *scheme = hf_str(p, "prepend_scheme");
        s->kind = HF_PRE_METASPACE;
        s->split = hf_bool(p, "split", 1);
        s->scheme = HF_SCHEME_ALWAYS;
        if (scheme && !strcmp(scheme, "first")) s->scheme = HF_SCHEME_FIRST;
        else if (scheme && !strcmp(scheme, "never")) s->scheme = HF_SCHEME_NEVER;
        else if (scheme && strcmp(scheme, "always"))
            return pe_fail(err, PE_ERR_INPUT, "%s: pre_tokenizer Metaspace prepend_scheme \"%s\": expected always, "
                           "first or never; fix the file", path, scheme);
        if (!hf_bool(p, "add_prefix_space", 1)) s->scheme = HF_SCHEME_NEVER; /* the older spelling */
        if (!(s->str = strdup(r && r[0] ? r : "\xe2\x96\x81"))) return pe_fail(err, PE_ERR_INTERNAL, "out of memory");
        h->n_pre++;
        return PE_OK;
    }
    return pe_fail(err, PE_ERR_INPUT,
                   "%s: pre_tokenizer type \"%s\" is not supported: pathens reads ByteLevel, Split, Metaspace and "
                   "Sequence (the pre-tokenizers of GPT-2, Llama, Mistral and Qwen files); convert the tokenizer or "
                   "report it", path, type ? type : "(missing)");
}

/* token string -> id among the added tokens, then the model vocabulary (-1: none) */
static int hf_token_id(const hftok *h, const char *tok, const int *byte_of_cp) {
    size_t n = strlen(tok);
    for (int i = 0; i < h->n_added; i++)
        if ((size_t)h->added[i].len == n && !memcmp(h->added[i].content, tok, n)) return h->added[i].id;
    hf_buf b = {0};
    int     id = -1;
    if (hf_to_model(h, byte_of_cp, tok, n, &b) == 0) id = hf_vocab_find(h, b.b ? b.b : "", b.n);
    free(b.b);
    return id;
}

static pe_status hf_template_side(hftok *h, const cJSON *pp, const cJSON *items, const char *path, pe_err *err) {
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens"), *it;
    int          seen_seq = 0;
    cJSON_ArrayForEach(it, items) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
            seen_seq = 1;
            continue;
        }
        const char *name = hf_str(sp, "id");
        if (!name)
            return pe_fail(err, PE_ERR_INPUT, "%s: post_processor TemplateProcessing: an item of \"single\" is "
                           "neither a Sequence nor a SpecialToken with an id; fix the file", path);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(specials, name), "ids"), *v;
        if (!cJSON_IsArray(ids))
            return pe_fail(err, PE_ERR_INPUT, "%s: post_processor TemplateProcessing: special token \"%s\" has no "
                           "ids in \"special_tokens\"; fix the file", path, name);
        cJSON_ArrayForEach(v, ids) {
            int *n = seen_seq ? &h->n_suffix : &h->n_prefix, *dst = seen_seq ? h->suffix : h->prefix;
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= HF_MAX_ID || *n == HF_MAX_SPECIAL)
                return pe_fail(err, PE_ERR_INPUT, "%s: post_processor TemplateProcessing: special token \"%s\": "
                               "expected at most %d ids in 0..%d; fix the file", path, name, HF_MAX_SPECIAL, HF_MAX_ID - 1);
            dst[(*n)++] = v->valueint;
        }
    }
    return PE_OK;
}

static pe_status hf_post(hftok *h, const cJSON *pp, const char *path, pe_err *err) {
    if (!pp || cJSON_IsNull(pp)) return PE_OK;
    const char *type = hf_str(pp, "type");
    if (type && !strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pp, "processors")) {
            pe_status st = hf_post(h, it, path, err);
            if (st) return st;
        }
        return PE_OK;
    }
    if (type && !strcmp(type, "ByteLevel")) return PE_OK; /* offsets only */
    if (type && !strcmp(type, "TemplateProcessing"))
        return hf_template_side(h, pp, cJSON_GetObjectItemCaseSensitive(pp, "single"), path, err);
    return pe_fail(err, PE_ERR_INPUT,
                   "%s: post_processor type \"%s\" is not supported: pathens reads TemplateProcessing, ByteLevel and "
                   "Sequence; report it with the file", path, type ? type : "(missing)");
}

/* add the model vocabulary: name -> id pairs (strings in the file's alphabet) */
static pe_status hf_set_vocab(hftok *h, const cJSON *vocab, const char *path, pe_err *err) {
    int          byte_of_cp[512];
    uint32_t     cp_of[256];
    const cJSON *it;
    int          n = 0, max_id = -1;
    hf_byte_unmap(byte_of_cp);
    hf_byte_map(cp_of);
    cJSON_ArrayForEach(it, vocab) {
        if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= HF_MAX_ID ||
            it->valuedouble != (double)it->valueint)
            return pe_fail(err, PE_ERR_INPUT, "%s: vocab entry \"%s\": expected an integer id in 0..%d; fix the file",
                           path, it->string ? it->string : "", HF_MAX_ID - 1);
        if (it->valueint > max_id) max_id = it->valueint;
        n++;
    }
    if (n == 0) return pe_fail(err, PE_ERR_INPUT, "%s: the BPE vocab is empty or missing; fix the file", path);
    h->n_ids = max_id + 1;
    h->str_off = pe_malloc((size_t)h->n_ids * sizeof *h->str_off, err, "vocab offsets");
    h->str_len = pe_calloc((size_t)h->n_ids, sizeof *h->str_len, err, "vocab lengths");
    uint64_t cap = 1;
    while (cap < 2 * (uint64_t)n) cap <<= 1;
    h->vmask = cap - 1;
    h->vhash = pe_malloc(cap * sizeof *h->vhash, err, "vocab hash");
    if (!h->str_off || !h->str_len || !h->vhash) return PE_ERR_INTERNAL;
    for (int i = 0; i < h->n_ids; i++) h->str_off[i] = -1;
    for (uint64_t i = 0; i < cap; i++) h->vhash[i] = -1;
    hf_buf arena = {0};
    /* never NULL, even when every token string is empty (arena + 0 on NULL is undefined) */
    if (hf_buf_reserve(&arena, 0)) return pe_fail(err, PE_ERR_INTERNAL, "out of memory reading the vocab");
    cJSON_ArrayForEach(it, vocab) {
        int    id = it->valueint;
        size_t off = arena.n;
        if (h->str_off[id] >= 0) {
            free(arena.b);
            return pe_fail(err, PE_ERR_INPUT, "%s: vocab: id %d is given to two tokens; fix the file", path, id);
        }
        if (hf_to_model(h, byte_of_cp, it->string, strlen(it->string), &arena)) {
            free(arena.b);
            return pe_fail(err, PE_ERR_INTERNAL, "out of memory reading the vocab");
        }
        h->str_off[id] = (int64_t)off;
        h->str_len[id] = (int32_t)(arena.n - off);
    }
    h->arena = arena.b;
    h->arena_len = arena.n;
    for (int id = 0; id < h->n_ids; id++) {
        if (h->str_off[id] < 0) continue;
        const char *s = h->arena + h->str_off[id];
        size_t      l = (size_t)h->str_len[id];
        uint64_t    i = hf_hash_bytes(s, l) & h->vmask;
        int         dup = 0;
        for (; h->vhash[i] >= 0; i = (i + 1) & h->vmask) {
            int o = h->vhash[i];
            if ((size_t)h->str_len[o] == l && !memcmp(h->arena + h->str_off[o], s, l)) dup = 1;
        }
        if (!dup) h->vhash[i] = id; /* a repeated string keeps its lowest id */
    }
    for (int b = 0; b < 256; b++) {
        char s[8];
        if (h->byte_level) {
            s[0] = (char)b;
            h->byte_id[b] = hf_vocab_find(h, s, 1);
            if (h->byte_id[b] < 0)
                return pe_fail(err, PE_ERR_INPUT, "%s: byte-level vocab has no token for byte 0x%02X (the character "
                               "U+%04X): a byte-level BPE needs all 256; fix the file", path, b, (unsigned)cp_of[b]);
        } else {
            snprintf(s, sizeof s, "<0x%02X>", b);
            h->byte_id[b] = hf_vocab_find(h, s, 6);
        }
    }
    return PE_OK;
}

/* the merges: ["a b", ...] (or [["a", "b"], ...]), rank = position */
static pe_status hf_set_merges(hftok *h, char **lefts, char **rights, int n, const char *path, pe_err *err) {
    int byte_of_cp[512];
    hf_byte_unmap(byte_of_cp);
    uint64_t cap = 1;
    while (cap < 2 * (uint64_t)n + 2) cap <<= 1;
    h->mmask = cap - 1;
    h->mtab = pe_malloc(cap * sizeof *h->mtab, err, "merge table");
    if (!h->mtab) return PE_ERR_INTERNAL;
    for (uint64_t i = 0; i < cap; i++) h->mtab[i].key = UINT64_MAX;
    hf_buf    b = {0};
    pe_status st = PE_OK;
    for (int r = 0; r < n && st == PE_OK; r++) {
        b.n = 0;
        int a = -1, c = -1, m = -1;
        if (hf_to_model(h, byte_of_cp, lefts[r], strlen(lefts[r]), &b)) {
            st = pe_fail(err, PE_ERR_INTERNAL, "out of memory");
            break;
        }
        size_t la = b.n;
        if (hf_to_model(h, byte_of_cp, rights[r], strlen(rights[r]), &b)) {
            st = pe_fail(err, PE_ERR_INTERNAL, "out of memory");
            break;
        }
        const char *s = b.b ? b.b : "";
        a = hf_vocab_find(h, s, la);
        c = hf_vocab_find(h, s + la, b.n - la);
        m = hf_vocab_find(h, s, b.n);
        if (a < 0 || c < 0 || m < 0) {
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s: merge %d (\"%s\" + \"%s\"): %s is not in the vocab; the merges and the vocab do not "
                         "belong together: use the files saved with the model", path, r, lefts[r], rights[r],
                         a < 0 ? "the left part" : c < 0 ? "the right part" : "the merged token");
            break;
        }
        uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)c, i = hf_hash_pair(key) & h->mmask;
        while (h->mtab[i].key != UINT64_MAX && h->mtab[i].key != key) i = (i + 1) & h->mmask;
        if (h->mtab[i].key == key) continue; /* a repeated merge keeps its first (lowest) rank */
        h->mtab[i] = (hf_merge){key, r, m};
        h->n_merges++;
    }
    free(b.b);
    return st;
}

static int hf_cmp_added(const void *x, const void *y) {
    const hf_added *a = x, *b = y;
    unsigned ca = (unsigned char)a->content[0], cb = (unsigned char)b->content[0];
    if (ca != cb) return ca < cb ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* longest first */
    return a->id < b->id ? -1 : a->id > b->id;
}

static pe_status hf_add_added(hftok *h, const char *content, int id, int special, int lstrip, int rstrip,
                              const char *path, pe_err *err) {
    if (!content || !content[0] || id < 0 || id >= HF_MAX_ID)
        return pe_fail(err, PE_ERR_INPUT, "%s: added token \"%s\" (id %d): expected non-empty content and an id in "
                       "0..%d; fix the file", path, content ? content : "", id, HF_MAX_ID - 1);
    for (int i = 0; i < h->n_added; i++)
        if (!strcmp(h->added[i].content, content)) return PE_OK; /* listed twice */
    hf_added *a = realloc(h->added, (size_t)(h->n_added + 1) * sizeof *a);
    if (!a) return pe_fail(err, PE_ERR_INTERNAL, "out of memory");
    h->added = a;
    hf_added *t = &a[h->n_added];
    if (!(t->content = strdup(content))) return pe_fail(err, PE_ERR_INTERNAL, "out of memory");
    t->len = (int)strlen(content);
    t->id = id;
    t->special = special;
    t->lstrip = lstrip;
    t->rstrip = rstrip;
    h->n_added++;
    return PE_OK;
}

static pe_status hf_read_json(const char *path, cJSON **out, const char *what, pe_err *err) {
    char     *buf = NULL;
    size_t    n = 0;
    pe_status st = pe_read_file_for(path, &buf, &n, what, err);
    if (st) return st;
    *out = cJSON_ParseWithLength(buf, n);
    if (!*out) {
        const char *at = cJSON_GetErrorPtr();
        size_t      off = at && at >= buf && at <= buf + n ? (size_t)(at - buf) : 0;
        free(buf);
        return pe_fail(err, PE_ERR_INPUT, "%s: not valid JSON (parse error near byte %zu); re-download it (%s)", path,
                       off, what);
    }
    free(buf);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return pe_fail(err, PE_ERR_INPUT, "%s: expected a JSON object at the top level (%s)", path, what);
    }
    return PE_OK;
}

/* tokenizer_config.json's "bos_token": "..." or {"content": "..."} */
static const char *hf_config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    return hf_str(v, "content");
}

/* tokenizer_config.json: eos name; add_bos_token / add_eos_token where transformers honours them
 * (Llama and Gemma tokenizers rebuild their post-processor from them; vocab.json + merges.txt
 * folders have no post-processor) */
static pe_status hf_apply_config(hftok *h, const cJSON *cfg, int have_post, const char *path, pe_err *err) {
    int byte_of_cp[512];
    hf_byte_unmap(byte_of_cp);
    const char *eos = hf_config_token(cfg, "eos_token"), *bos = hf_config_token(cfg, "bos_token");
    if (eos) h->eos_id = hf_token_id(h, eos, byte_of_cp);
    const char  *cls = hf_str(cfg, "tokenizer_class");
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    int honour = !have_post || (cls && (!strncmp(cls, "LlamaTokenizer", 14) || !strncmp(cls, "GemmaTokenizer", 14) ||
                                        !strncmp(cls, "CodeLlamaTokenizer", 18)));
    if (!honour) return PE_OK;
    if (cJSON_IsBool(ab)) {
        h->n_prefix = 0;
        if (cJSON_IsTrue(ab)) {
            int id = bos ? hf_token_id(h, bos, byte_of_cp) : -1;
            if (id < 0)
                return pe_fail(err, PE_ERR_INPUT, "%s: add_bos_token is true but bos_token %s%s%s is not a token of "
                               "the vocabulary; fix tokenizer_config.json", path, bos ? "\"" : "", bos ? bos : "(unset)",
                               bos ? "\"" : "");
            h->prefix[h->n_prefix++] = id;
        }
    }
    if (cJSON_IsBool(ae)) {
        h->n_suffix = 0;
        if (cJSON_IsTrue(ae)) {
            if (h->eos_id < 0)
                return pe_fail(err, PE_ERR_INPUT, "%s: add_eos_token is true but eos_token is not a token of the "
                               "vocabulary; fix tokenizer_config.json", path);
            h->suffix[h->n_suffix++] = h->eos_id;
        }
    }
    return PE_OK;
}

/* ---- decoding table --------------------------------------------------------------------------- */

static pe_status hf_build_decode(hftok *h, pe_err *err) {
    h->special = pe_calloc((size_t)h->n_ids, 1, err, "special flags");
    h->dec_off = pe_malloc((size_t)h->n_ids * sizeof *h->dec_off, err, "decode offsets");
    h->dec_len = pe_calloc((size_t)h->n_ids, sizeof *h->dec_len, err, "decode lengths");
    int *added_of = pe_malloc((size_t)h->n_ids * sizeof *added_of, err, "added-token index"); /* [n_ids] */
    if (!h->special || !h->dec_off || !h->dec_len || !added_of) {
        free(added_of);
        return PE_ERR_INTERNAL;
    }
    for (int id = 0; id < h->n_ids; id++) added_of[id] = -1;
    for (int i = 0; i < h->n_added; i++) { /* a later entry for the same id wins */
        h->special[h->added[i].id] = h->added[i].special ? 2 : 1;
        added_of[h->added[i].id]   = i;
    }
    const char *repl = NULL;
    for (int i = 0; i < h->n_pre; i++)
        if (h->pre[i].kind == HF_PRE_METASPACE) repl = h->pre[i].str;
    for (int i = 0; i < h->n_norm; i++)
        if (h->norm[i].kind == HF_NORM_REPLACE && h->norm[i].a && !strcmp(h->norm[i].a, " ")) repl = h->norm[i].b;
    size_t rl = repl ? strlen(repl) : 0;
    hf_buf d = {0};
    for (int id = 0; id < h->n_ids; id++) {
        h->dec_off[id] = (int64_t)d.n;
        const char *s = NULL;
        size_t      n = 0;
        int         added = added_of[id];
        if (added >= 0) {
            if (!h->added[added].special) s = h->added[added].content, n = (size_t)h->added[added].len;
        } else if (h->str_off[id] >= 0) {
            s = h->arena + h->str_off[id], n = (size_t)h->str_len[id];
        }
        int fail = 0;
        if (s && !h->byte_level && added < 0) {
            unsigned hi, lo;
            char     c;
            if (h->byte_fallback && n == 6 && sscanf(s, "<0x%1X%1X>", &hi, &lo) == 2 && s[5] == '>') {
                c = (char)(hi * 16 + lo);
                fail = hf_buf_add(&d, &c, 1);
            } else {
                for (size_t i = 0; i < n && !fail;) {
                    if (rl && n - i >= rl && !memcmp(s + i, repl, rl)) fail = hf_buf_add(&d, " ", 1), i += rl;
                    else fail = hf_buf_add(&d, s + i, 1), i++;
                }
            }
        } else if (s) {
            fail = hf_buf_add(&d, s, n);
        }
        if (fail) {
            free(d.b);
            free(added_of);
            return pe_fail(err, PE_ERR_INTERNAL, "out of memory building the decode table");
        }
        h->dec_len[id] = (int32_t)(d.n - (size_t)h->dec_off[id]);
    }
    h->dec = d.b;
    /* the prepend scheme whose space a decoder strips again */
    h->strip_mode = 0;
    for (int i = 0; i < h->n_norm; i++)
        if (h->norm[i].kind == HF_NORM_PREPEND && repl && !strcmp(h->norm[i].a, repl)) h->strip_mode = 1;
    for (int i = 0; i < h->n_pre; i++)
        if (h->pre[i].kind == HF_PRE_METASPACE && h->pre[i].scheme != HF_SCHEME_NEVER)
            h->strip_mode = h->pre[i].scheme == HF_SCHEME_ALWAYS ? 1 : 2;
    free(added_of);
    return PE_OK;
}

/* ---- loading: the files ----------------------------------------------------------------------- */

static pe_status hf_load_tokenizer_json(hftok *h, const char *path, const char *cfg_path, pe_err *err) {
    cJSON    *j = NULL, *cfg = NULL;
    pe_status st = hf_read_json(path, &j, "the tokenizer set by [model] tokenizer", err);
    if (st) return st;
    if (cfg_path) {
        struct stat sb;
        if (stat(cfg_path, &sb) == 0 && (st = hf_read_json(cfg_path, &cfg, "tokenizer_config.json beside it", err)))
            goto done;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const char  *type = hf_str(model, "type");
    if (!cJSON_IsObject(model)) {
        st = pe_fail(err, PE_ERR_INPUT, "%s: no \"model\" object: not a Hugging Face tokenizer.json; point [model] "
                     "tokenizer at the tokenizer.json saved with the model", path);
        goto done;
    }
    if (!type && cJSON_GetObjectItemCaseSensitive(model, "merges")) type = "BPE"; /* older files: no type */
    if (!type || strcmp(type, "BPE")) {
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s: model.type is \"%s\": pathens runs BPE tokenizers only (GPT-2, Llama, Mistral, Qwen, "
                     "Pythia); WordPiece (BERT), Unigram (T5, ALBERT) and WordLevel are not supported, so pathens cannot "
                     "tokenize text for this model",
                     path, type ? type : "(missing)");
        goto done;
    }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble != 0.0) {
        st = pe_fail(err, PE_ERR_INPUT, "%s: model.dropout is %g: BPE dropout makes tokenization random; set it to "
                     "null for evaluation", path, dropout->valuedouble);
        goto done;
    }
    const char *csp = hf_str(model, "continuing_subword_prefix"), *eow = hf_str(model, "end_of_word_suffix");
    if ((csp && csp[0]) || (eow && eow[0])) {
        st = pe_fail(err, PE_ERR_INPUT, "%s: model.%s is \"%s\": subword prefixes/suffixes are not supported by "
                     "pathens (no GPT-2, Llama, Mistral or Qwen file uses them); report it with the file", path,
                     csp && csp[0] ? "continuing_subword_prefix" : "end_of_word_suffix", csp && csp[0] ? csp : eow);
        goto done;
    }
    /* the alphabet follows from the pre-tokenizer: read it first */
    if ((st = hf_add_norm(h, cJSON_GetObjectItemCaseSensitive(j, "normalizer"), path, err))) goto done;
    if ((st = hf_add_pre(h, cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer"), path, err))) goto done;
    h->byte_fallback = hf_bool(model, "byte_fallback", 0);
    h->fuse_unk = hf_bool(model, "fuse_unk", 0);
    h->ignore_merges = hf_bool(model, "ignore_merges", 0);
    if ((st = hf_set_vocab(h, cJSON_GetObjectItemCaseSensitive(model, "vocab"), path, err))) goto done;
    const char *unk = hf_str(model, "unk_token");
    h->unk_id = unk ? hf_vocab_find(h, unk, strlen(unk)) : -1;
    {
        const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges"), *it;
        int          n = cJSON_GetArraySize(merges), r = 0;
        char       **L = calloc((size_t)n + 1, sizeof *L), **R = calloc((size_t)n + 1, sizeof *R);
        char       **own = calloc((size_t)n + 1, sizeof *own);
        if (!L || !R || !own) st = pe_fail(err, PE_ERR_INTERNAL, "out of memory reading the merges");
        cJSON_ArrayForEach(it, merges) {
            if (st) break;
            if (cJSON_IsString(it)) {
                char *sp = strchr(it->valuestring, ' ');
                if (!sp || !(own[r] = strdup(it->valuestring))) {
                    st = sp ? pe_fail(err, PE_ERR_INTERNAL, "out of memory")
                            : pe_fail(err, PE_ERR_INPUT, "%s: merge %d \"%s\": expected \"left right\" separated by "
                                      "one space; fix the file", path, r, it->valuestring);
                    break;
                }
                own[r][sp - it->valuestring] = '\0';
                L[r] = own[r];
                R[r] = own[r] + (sp - it->valuestring) + 1;
            } else if (cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                       cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
                L[r] = cJSON_GetArrayItem(it, 0)->valuestring;
                R[r] = cJSON_GetArrayItem(it, 1)->valuestring;
            } else {
                st = pe_fail(err, PE_ERR_INPUT, "%s: merge %d: expected \"left right\" or [\"left\", \"right\"]; fix "
                             "the file", path, r);
                break;
            }
            r++;
        }
        if (!st) st = hf_set_merges(h, L, R, r, path, err);
        for (int i = 0; i < r; i++) free(own[i]);
        free(own);
        free(L);
        free(R);
        if (st) goto done;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "added_tokens")) {
        const cJSON *idv = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (hf_bool(it, "single_word", 0)) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: added token \"%s\" has single_word = true, which pathens does not "
                         "implement; report it with the file", path, hf_str(it, "content") ? hf_str(it, "content") : "");
            goto done;
        }
        st = hf_add_added(h, hf_str(it, "content"), cJSON_IsNumber(idv) ? idv->valueint : -1, hf_bool(it, "special", 0),
                          hf_bool(it, "lstrip", 0), hf_bool(it, "rstrip", 0), path, err);
        if (st) goto done;
    }
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(j, "post_processor");
    if ((st = hf_post(h, pp, path, err))) goto done;
    if (cfg && (st = hf_apply_config(h, cfg, pp && !cJSON_IsNull(pp), cfg_path, err))) goto done;
done:
    cJSON_Delete(j);
    cJSON_Delete(cfg);
    return st;
}

/* GPT-2 style: vocab.json {token: id} + merges.txt ("#version" line, then "left right" lines) */
static pe_status hf_load_gpt2(hftok *h, const char *vocab_path, const char *merges_path, const char *cfg_path,
                              pe_err *err) {
    cJSON    *v = NULL, *cfg = NULL;
    char     *m = NULL;
    size_t    mn = 0;
    char    **L = NULL, **R = NULL;
    pe_status st = hf_read_json(vocab_path, &v, "vocab.json of a GPT-2 style tokenizer folder", err);
    if (st) return st;
    if ((st = pe_read_file_for(merges_path, &m, &mn, "merges.txt beside vocab.json", err))) goto done;
    struct stat sb;
    if (cfg_path && stat(cfg_path, &sb) == 0 && (st = hf_read_json(cfg_path, &cfg, "tokenizer_config.json", err)))
        goto done;
    h->pre[0].kind = HF_PRE_BYTELEVEL; /* GPT-2: ByteLevel(add_prefix_space = false, use_regex = true) */
    h->byte_level = 1;
    h->n_pre = 1;
    if ((st = hf_compile(&h->pre[0].re, HF_GPT2_REGEX, "the GPT-2 regex", vocab_path, err))) goto done;
    if ((st = hf_set_vocab(h, v, vocab_path, err))) goto done;
    h->unk_id = -1;
    size_t lines = 1;
    for (size_t i = 0; i < mn; i++) lines += m[i] == '\n';
    L = calloc(lines, sizeof *L);
    R = calloc(lines, sizeof *R);
    if (!L || !R) {
        st = pe_fail(err, PE_ERR_INTERNAL, "out of memory reading %s", merges_path);
        goto done;
    }
    int    r = 0, line = 0;
    char  *p = m;
    while (p < m + mn) {
        char *nl = memchr(p, '\n', (size_t)(m + mn - p)), *end = nl ? nl : m + mn;
        line++;
        if (end > p && end[-1] == '\r') end[-1] = '\0';
        *end = '\0';
        if (!(line == 1 && !strncmp(p, "#version", 8)) && p[0]) {
            char *sp = strchr(p, ' ');
            if (!sp || sp == p || !sp[1] || strchr(sp + 1, ' ')) {
                st = pe_fail(err, PE_ERR_INPUT, "%s:%d: expected \"left right\" (two tokens, one space), got \"%.80s\"; "
                             "fix the file or re-download it", merges_path, line, p);
                goto done;
            }
            *sp = '\0';
            L[r] = p;
            R[r] = sp + 1;
            r++;
        }
        p = end + 1;
    }
    if ((st = hf_set_merges(h, L, R, r, merges_path, err))) goto done;
    if (cfg) {
        const cJSON *dec = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder"), *it;
        cJSON_ArrayForEach(it, dec) {
            char *endp;
            long  id = strtol(it->string, &endp, 10);
            if (*endp || id < 0 || id >= HF_MAX_ID) {
                st = pe_fail(err, PE_ERR_INPUT, "%s: added_tokens_decoder key \"%s\": expected a token id; fix the file",
                             cfg_path, it->string);
                goto done;
            }
            if ((st = hf_add_added(h, hf_str(it, "content"), (int)id, hf_bool(it, "special", 0), hf_bool(it, "lstrip", 0),
                                   hf_bool(it, "rstrip", 0), cfg_path, err)))
                goto done;
        }
        if ((st = hf_apply_config(h, cfg, 0, cfg_path, err))) goto done;
    }
done:
    free(L);
    free(R);
    free(m);
    cJSON_Delete(v);
    cJSON_Delete(cfg);
    return st;
}

pe_status hftok_load(hftok **out, const char *path, pe_err *err) {
    *out = NULL;
    hftok *h = pe_calloc(1, sizeof *h, err, "tokenizer");
    if (!h) return PE_ERR_INTERNAL;
    h->unk_id = h->eos_id = -1;
    struct stat sb;
    char        a[4096], b[4096], c[4096];
    pe_status   st;
    if (stat(path, &sb) != 0) {
        st = pe_fail(err, PE_ERR_INPUT, "%s: no such file or folder (the tokenizer set by [model] tokenizer); give a "
                     "tokenizer.json, a folder holding one, or a folder with vocab.json + merges.txt", path);
    } else if (S_ISDIR(sb.st_mode)) {
        snprintf(a, sizeof a, "%s/tokenizer.json", path);
        snprintf(c, sizeof c, "%s/tokenizer_config.json", path);
        if (pe_is_file(a)) {
            snprintf(h->source, sizeof h->source, "%s", a);
            st = hf_load_tokenizer_json(h, a, c, err);
        } else {
            snprintf(a, sizeof a, "%s/vocab.json", path);
            snprintf(b, sizeof b, "%s/merges.txt", path);
            if (pe_is_file(a) && pe_is_file(b)) {
                snprintf(h->source, sizeof h->source, "%s + merges.txt", a);
                st = hf_load_gpt2(h, a, b, c, err);
            } else {
                st = pe_fail(err, PE_ERR_INPUT, "%s: the folder holds neither tokenizer.json nor vocab.json + merges.txt; "
                             "copy the tokenizer files saved with the model there, or set [model] tokenizer to "
                             "their path", path);
            }
        }
    } else {
        /* a tokenizer.json file: tokenizer_config.json beside it */
        const char *slash = strrchr(path, '/');
        if (slash) snprintf(c, sizeof c, "%.*s/tokenizer_config.json", (int)(slash - path), path);
        else snprintf(c, sizeof c, "tokenizer_config.json");
        snprintf(h->source, sizeof h->source, "%s", path);
        st = hf_load_tokenizer_json(h, path, c, err);
    }
    if (st == PE_OK) {
        int n_model = h->n_ids;
        for (int i = 0; i < h->n_added; i++)
            if (h->added[i].id >= h->n_ids) h->n_ids = h->added[i].id + 1;
        /* grow the per-id tables to cover added ids above the model vocab */
        int64_t *so = realloc(h->str_off, (size_t)h->n_ids * sizeof *so);
        int32_t *sl = so ? realloc(h->str_len, (size_t)h->n_ids * sizeof *sl) : NULL;
        if (so) h->str_off = so;
        if (sl) h->str_len = sl;
        if (!so || !sl) st = pe_fail(err, PE_ERR_INTERNAL, "out of memory");
        for (int i = n_model; st == PE_OK && i < h->n_ids; i++) h->str_off[i] = -1, h->str_len[i] = 0;
    }
    if (st == PE_OK) {
        for (int i = 0; i < h->n_prefix; i++)
            if (h->prefix[i] >= h->n_ids) st = pe_fail(err, PE_ERR_INPUT, "%s: the post-processor adds token id %d, "
                                                       "outside the vocabulary of %d", h->source, h->prefix[i], h->n_ids);
        for (int i = 0; i < h->n_suffix; i++)
            if (h->suffix[i] >= h->n_ids) st = pe_fail(err, PE_ERR_INPUT, "%s: the post-processor adds token id %d, "
                                                       "outside the vocabulary of %d", h->source, h->suffix[i], h->n_ids);
    }
    if (st == PE_OK) {
        if (h->n_added > 1) qsort(h->added, (size_t)h->n_added, sizeof *h->added, hf_cmp_added);
        for (int c2 = 0, i = 0; c2 <= 256; c2++) {
            while (i < h->n_added && (unsigned char)h->added[i].content[0] < c2) i++;
            h->added_first[c2] = i;
        }
        st = hf_build_decode(h, err);
    }
    if (st != PE_OK) {
        hftok_free(h);
        return st;
    }
    *out = h;
    return PE_OK;
}

void hftok_free(hftok *h) {
    if (!h) return;
    for (int i = 0; i < h->n_norm; i++) {
        free(h->norm[i].a);
        free(h->norm[i].b);
        pcre2_code_free(h->norm[i].re);
    }
    for (int i = 0; i < h->n_pre; i++) {
        free(h->pre[i].str);
        pcre2_code_free(h->pre[i].re);
    }
    for (int i = 0; i < h->n_added; i++) free(h->added[i].content);
    free(h->added);
    free(h->arena);
    free(h->str_off);
    free(h->str_len);
    free(h->vhash);
    free(h->mtab);
    free(h->special);
    free(h->dec);
    free(h->dec_off);
    free(h->dec_len);
    free(h);
}

int hftok_n_ids(const hftok *h) { return h->n_ids; }
int hftok_byte_level(const hftok *h) { return h->byte_level; }
int hftok_n_prefix(const hftok *h) { return h->n_prefix; }
int hftok_n_suffix(const hftok *h) { return h->n_suffix; }
int hftok_bos_id(const hftok *h) { return h->n_prefix == 1 ? h->prefix[0] : -1; }
int hftok_eos_id(const hftok *h) { return h->n_suffix == 1 ? h->suffix[0] : h->eos_id; }
const char *hftok_source(const hftok *h) { return h->source; }

/* ---- encoding --------------------------------------------------------------------------------- */

/* scratch of one encode call, reused across words */
typedef struct {
    hf_buf    norm_a, norm_b;    /* normalizer ping-pong */
    hf_buf    pa, pb;            /* pre-tokenizer pieces: bytes */
    size_t   *ea, *eb;           /* (n) end offsets of the pieces */
    size_t    na, nb, cea, ceb;
    /* BPE of one word */
    int      *tok, *prev, *next, *start, *len; /* (cap) symbols */
    unsigned *gen;
    struct hf_cand *heap;
    size_t    cap, hcap;
    pcre2_match_data *md;
    hf_ints   out;
} hf_ctx;

typedef struct hf_cand {
    int      rank, left, right, id;
    unsigned gl, gr;
} hf_cand;

static int hf_pieces_push(size_t **e, size_t *n, size_t *cap, size_t end) {
    if (*n == *cap) {
        size_t  c = *cap ? 2 * *cap : 64;
        size_t *p = realloc(*e, c * sizeof *p);
        if (!p) return -1;
        *e = p;
        *cap = c;
    }
    (*e)[(*n)++] = end;
    return 0;
}

/* one normalizer step: in -> out */
static int hf_norm_apply(const hf_norm *s, const char *in, size_t n, hf_buf *out, pcre2_match_data *md) {
    out->n = 0;
    if (hf_buf_reserve(out, 0)) return -1;
    out->b[0] = '\0';
    switch (s->kind) {
    case HF_NORM_NFC: case HF_NORM_NFD: case HF_NORM_NFKC: case HF_NORM_NFKD: {
        if (n == 0) return 0;
        int opt = UTF8PROC_STABLE | (s->kind == HF_NORM_NFC || s->kind == HF_NORM_NFKC ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE) |
                  (s->kind == HF_NORM_NFKC || s->kind == HF_NORM_NFKD ? UTF8PROC_COMPAT : 0);
        utf8proc_uint8_t *dst = NULL;
        utf8proc_ssize_t  r = utf8proc_map((const utf8proc_uint8_t *)in, (utf8proc_ssize_t)n, &dst, (utf8proc_option_t)opt);
        if (r < 0) return -1;
        int fail = hf_buf_add(out, (const char *)dst, (size_t)r);
        free(dst);
        return fail;
    }
    case HF_NORM_PREPEND:
        if (n == 0) return 0;
        return hf_buf_add(out, s->a, strlen(s->a)) || hf_buf_add(out, in, n) ? -1 : 0;
    case HF_NORM_REPLACE: {
        size_t i = 0, cl = strlen(s->b);
        if (s->a) {
            size_t pl = strlen(s->a);
            while (i < n) {
                const char *hit = pl <= n - i ? hf_find(in + i, n - i, s->a, pl) : NULL;
                size_t      upto = hit ? (size_t)(hit - in) : n;
                if (hf_buf_add(out, in + i, upto - i)) return -1;
                if (!hit) break;
                if (hf_buf_add(out, s->b, cl)) return -1;
                i = upto + pl;
            }
            return 0;
        }
        while (i <= n) {
            int rc = pcre2_match(s->re, (PCRE2_SPTR)in, n, i, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) return HF_RE_FAILED; /* a match or stack limit: never a silent "no match" */
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (hf_buf_add(out, in + i, ov[0] - i)) return -1;
            if (hf_buf_add(out, s->b, cl)) return -1;
            if (ov[1] == ov[0]) { /* empty match: keep one character and go on */
                if (ov[0] >= n) { i = n + 1; break; }
                size_t sub, l = hf_utf8_char((const unsigned char *)in + ov[0], n - ov[0], &sub);
                if (hf_buf_add(out, in + ov[0], l ? l : 1)) return -1;
                i = ov[0] + (l ? l : 1);
            } else {
                i = ov[1];
            }
        }
        if (i < n && hf_buf_add(out, in + i, n - i)) return -1;
        return 0;
    }
    }
    return -1;
}

/* a regex or string split of one piece into pieces (Isolated: gaps and matches; Removed: gaps;
 * invert swaps which parts are the delimiters) */
static int hf_split_piece(const hf_pre *s, const char *p, size_t n, hf_buf *ob, size_t **oe, size_t *on, size_t *cap,
                          pcre2_match_data *md) {
    size_t i = 0, at = 0; /* i: start of the text not yet emitted; at: where the next search starts */
#define HF_EMIT(ptr, len, is_delim)                                                                              \
    do {                                                                                                        \
        if ((len) > 0 && !(s->behavior == HF_SPLIT_REMOVED && (is_delim))) {                                    \
            if (hf_buf_add(ob, (ptr), (len)) || hf_pieces_push(oe, on, cap, ob->n)) return -1;                  \
        }                                                                                                       \
    } while (0)
    while (at < n) {
        size_t ms, me;
        if (s->re) {
            int rc = pcre2_match(s->re, (PCRE2_SPTR)p, n, at, PCRE2_NO_UTF_CHECK, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) return HF_RE_FAILED; /* a match or stack limit: never a silent "no match" */
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0], me = ov[1];
        } else {
            const char *hit = hf_find(p + at, n - at, s->str, strlen(s->str));
            if (!hit) break;
            ms = (size_t)(hit - p), me = ms + strlen(s->str);
        }
        if (me == ms) { /* an empty match splits there (as tokenizers and transformers.js do), then the
                         * search goes on one character further */
            size_t sub, l = ms < n ? hf_utf8_char((const unsigned char *)p + ms, n - ms, &sub) : 1;
            HF_EMIT(p + i, ms - i, s->invert);
            i = ms;
            at = ms + (l ? l : 1);
            continue;
        }
        HF_EMIT(p + i, ms - i, s->invert);
        HF_EMIT(p + ms, me - ms, !s->invert);
        i = at = me;
    }
    if (i < n) HF_EMIT(p + i, n - i, s->invert);
#undef HF_EMIT
    return 0;
}

/* one pre-tokenizer step over every piece: (pa, ea, na) -> (pb, eb, nb) */
static int hf_pre_apply(const hf_pre *s, hf_ctx *c, int section) {
    c->pb.n = 0;
    c->nb = 0;
    for (size_t k = 0; k < c->na; k++) {
        size_t      st = k ? c->ea[k - 1] : 0, n = c->ea[k] - st;
        const char *p = c->pa.b + st;
        if (s->kind == HF_PRE_SPLIT) {
            int e = hf_split_piece(s, p, n, &c->pb, &c->eb, &c->nb, &c->ceb, c->md);
            if (e) return e;
        } else if (s->kind == HF_PRE_BYTELEVEL) {
            hf_buf tmp = {0};
            const char *q = p;
            size_t      qn = n;
            if (s->add_prefix_space && (n == 0 || p[0] != ' ')) {
                if (hf_buf_add(&tmp, " ", 1) || hf_buf_add(&tmp, p, n)) { free(tmp.b); return -1; }
                q = tmp.b, qn = tmp.n;
            }
            int fail;
            if (s->re) {
                hf_pre iso = *s;
                iso.kind = HF_PRE_SPLIT;
                iso.behavior = HF_SPLIT_ISOLATED;
                iso.invert = 0;
                fail = hf_split_piece(&iso, q, qn, &c->pb, &c->eb, &c->nb, &c->ceb, c->md);
            } else {
                fail = qn && (hf_buf_add(&c->pb, q, qn) || hf_pieces_push(&c->eb, &c->nb, &c->ceb, c->pb.n));
            }
            free(tmp.b);
            if (fail) return fail;
        } else { /* Metaspace: spaces -> replacement, the prefix, then words starting at each replacement */
            size_t rl = strlen(s->str), w0 = c->pb.n;
            int    pre = s->scheme == HF_SCHEME_ALWAYS || (s->scheme == HF_SCHEME_FIRST && section == 0 && k == 0);
            if (pre && !(n >= 1 && p[0] == ' ') && !(n >= rl && !memcmp(p, s->str, rl)))
                if (hf_buf_add(&c->pb, s->str, rl)) return -1;
            for (size_t i = 0; i < n; i++)
                if (p[i] == ' ' ? hf_buf_add(&c->pb, s->str, rl) : hf_buf_add(&c->pb, p + i, 1)) return -1;
            if (s->split) { /* MergedWithNext at each replacement */
                size_t end = c->pb.n;
                for (size_t i = w0 + 1; i + rl <= end; i++)
                    if (!memcmp(c->pb.b + i, s->str, rl) && hf_pieces_push(&c->eb, &c->nb, &c->ceb, i)) return -1;
            }
            if (c->pb.n > w0 && hf_pieces_push(&c->eb, &c->nb, &c->ceb, c->pb.n)) return -1;
        }
    }
    /* swap */
    hf_buf tb = c->pa; c->pa = c->pb; c->pb = tb;
    size_t *te = c->ea; c->ea = c->eb; c->eb = te;
    size_t tn = c->na; c->na = c->nb; c->nb = tn;
    size_t tc = c->cea; c->cea = c->ceb; c->ceb = tc;
    return 0;
}

static int hf_cand_before(const hf_cand *x, const hf_cand *y) {
    if (x->rank != y->rank) return x->rank < y->rank;
    return x->left < y->left;
}

static void hf_heap_push(hf_ctx *c, size_t *hn, hf_cand p) {
    size_t i = (*hn)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!hf_cand_before(&p, &c->heap[parent])) break;
        c->heap[i] = c->heap[parent];
        i = parent;
    }
    c->heap[i] = p;
}

static hf_cand hf_heap_pop(hf_ctx *c, size_t *hn) {
    hf_cand top = c->heap[0], last = c->heap[--*hn];
    size_t  i = 0;
    for (;;) {
        size_t ch = 2 * i + 1;
        if (ch >= *hn) break;
        if (ch + 1 < *hn && hf_cand_before(&c->heap[ch + 1], &c->heap[ch])) ch++;
        if (!hf_cand_before(&c->heap[ch], &last)) break;
        c->heap[i] = c->heap[ch];
        i = ch;
    }
    if (*hn > 0) c->heap[i] = last;
    return top;
}

static void hf_try(const hftok *h, hf_ctx *c, size_t *hn, int l, int r) {
    if (c->tok[l] < 0 || c->tok[r] < 0) return;
    const hf_merge *m = hf_merge_find(h, c->tok[l], c->tok[r]);
    if (m) hf_heap_push(c, hn, (hf_cand){m->rank, l, r, m->id, c->gen[l], c->gen[r]});
}

static int hf_ctx_reserve(hf_ctx *c, size_t n) {
    if (n <= c->cap) return 0;
    size_t cap = c->cap ? c->cap : 64;
    while (cap < n) cap *= 2;
    int *t = realloc(c->tok, cap * sizeof *t), *p = t ? realloc(c->prev, cap * sizeof *p) : NULL;
    if (t) c->tok = t;
    if (p) c->prev = p;
    int *nx = p ? realloc(c->next, cap * sizeof *nx) : NULL;
    if (nx) c->next = nx;
    int *s = nx ? realloc(c->start, cap * sizeof *s) : NULL;
    if (s) c->start = s;
    int *ln = s ? realloc(c->len, cap * sizeof *ln) : NULL;
    if (ln) c->len = ln;
    unsigned *g = ln ? realloc(c->gen, cap * sizeof *g) : NULL;
    if (g) c->gen = g;
    hf_cand *hp = g ? realloc(c->heap, 2 * cap * sizeof *hp) : NULL;
    if (hp) c->heap = hp;
    if (!hp) return -1;
    c->cap = cap;
    return 0;
}

/* BPE of one word w[0..n) (model alphabet), ids appended to c->out */
static int hf_bpe_word(const hftok *h, hf_ctx *c, const char *w, size_t n, int ref) {
    if (n == 0) return 0;
    if (h->ignore_merges) {
        int id = hf_vocab_find(h, w, n);
        if (id >= 0) return hf_ints_add(&c->out, id);
    }
    if (hf_ctx_reserve(c, n + 1)) return -1;
    int m = 0;
    for (size_t i = 0; i < n;) { /* initial symbols: bytes, or UTF-8 characters */
        size_t l = 1, sub;
        if (!h->byte_level) {
            l = hf_utf8_char((const unsigned char *)w + i, n - i, &sub);
            if (!l) l = 1;
        }
        c->tok[m] = h->byte_level ? h->byte_id[(unsigned char)w[i]] : hf_vocab_find(h, w + i, l);
        c->start[m] = (int)i;
        c->len[m] = (int)l;
        m++;
        i += l;
    }
    if (ref) { /* naive: merge the lowest-rank adjacent pair (leftmost on ties) until none merges */
        for (;;) {
            int best = -1, best_rank = INT_MAX, best_id = -1;
            for (int i = 0; i + 1 < m; i++) {
                if (c->tok[i] < 0 || c->tok[i + 1] < 0) continue;
                const hf_merge *mg = hf_merge_find(h, c->tok[i], c->tok[i + 1]);
                if (mg && mg->rank < best_rank) best = i, best_rank = mg->rank, best_id = mg->id;
            }
            if (best < 0) break;
            c->tok[best] = best_id;
            c->len[best] += c->len[best + 1];
            memmove(c->tok + best + 1, c->tok + best + 2, (size_t)(m - best - 2) * sizeof *c->tok);
            memmove(c->start + best + 1, c->start + best + 2, (size_t)(m - best - 2) * sizeof *c->start);
            memmove(c->len + best + 1, c->len + best + 2, (size_t)(m - best - 2) * sizeof *c->len);
            m--;
        }
        for (int i = 0; i < m; i++) c->next[i] = i + 1 < m ? i + 1 : -1;
    } else {
        size_t hn = 0;
        for (int i = 0; i < m; i++) {
            c->prev[i] = i - 1;
            c->next[i] = i + 1 < m ? i + 1 : -1;
            c->gen[i] = 0;
        }
        for (int i = 0; i + 1 < m; i++) hf_try(h, c, &hn, i, i + 1);
        while (hn > 0) {
            hf_cand p = hf_heap_pop(c, &hn);
            if (c->gen[p.left] != p.gl || c->gen[p.right] != p.gr) continue; /* stale */
            int l = p.left, r = p.right;
            c->tok[l] = p.id;
            c->len[l] += c->len[r];
            c->gen[l]++;
            c->gen[r]++;
            c->next[l] = c->next[r];
            if (c->next[r] >= 0) c->prev[c->next[r]] = l;
            if (c->prev[l] >= 0) hf_try(h, c, &hn, c->prev[l], l);
            if (c->next[l] >= 0) hf_try(h, c, &hn, l, c->next[l]);
        }
    }
    int last_unk = 0;
    for (int i = 0; i >= 0 && i < m; i = c->next[i]) { /* symbol 0 always survives */
        if (c->tok[i] >= 0) {
            if (hf_ints_add(&c->out, c->tok[i])) return -1;
            last_unk = 0;
            continue;
        }
        int ok = h->byte_fallback;
        for (int k = 0; ok && k < c->len[i]; k++) ok = h->byte_id[(unsigned char)w[c->start[i] + k]] >= 0;
        if (ok) {
            for (int k = 0; k < c->len[i]; k++)
                if (hf_ints_add(&c->out, h->byte_id[(unsigned char)w[c->start[i] + k]])) return -1;
            last_unk = 0;
        } else if (h->unk_id >= 0) {
            if (!(h->fuse_unk && last_unk) && hf_ints_add(&c->out, h->unk_id)) return -1;
            last_unk = 1;
        } else {
            return -2; /* a character the vocabulary cannot represent */
        }
    }
    return 0;
}

/* normalize, pre-tokenize and BPE one section of text (no added tokens in it) */
static int hf_encode_section(const hftok *h, hf_ctx *c, const char *s, size_t n, int section, int ref) {
    const char *cur = s;
    size_t      cn = n;
    for (int i = 0; i < h->n_norm; i++) {
        hf_buf *dst = (i % 2) ? &c->norm_b : &c->norm_a;
        int e = hf_norm_apply(&h->norm[i], cur, cn, dst, c->md);
        if (e) return e;
        cur = dst->b, cn = dst->n;
    }
    if (cn == 0) return 0;
    c->pa.n = 0;
    c->na = 0;
    if (hf_buf_add(&c->pa, cur, cn) || hf_pieces_push(&c->ea, &c->na, &c->cea, cn)) return -1;
    for (int i = 0; i < h->n_pre; i++) {
        int e = hf_pre_apply(&h->pre[i], c, section);
        if (e) return e;
    }
    for (size_t k = 0; k < c->na; k++) {
        size_t st = k ? c->ea[k - 1] : 0;
        int    rc = hf_bpe_word(h, c, c->pa.b + st, c->ea[k] - st, ref);
        if (rc) return rc;
    }
    return 0;
}

static int hf_is_space(const char *s, size_t n, size_t *l) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &cp);
    if (r <= 0) return 0;
    *l = (size_t)r;
    return (cp >= 9 && cp <= 13) || cp == 32 || utf8proc_category(cp) == UTF8PROC_CATEGORY_ZS ||
           cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF;
}

static size_t hf_trim_end(const char *s, size_t n) {
    while (n > 0) {
        size_t k = n - 1, l;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
        if (!hf_is_space(s + k, n - k, &l)) break;
        n = k;
    }
    return n;
}

pe_status hftok_encode(const hftok *h, const char *text, size_t len, int prefix, int suffix, int ref, int **out,
                       int *n_out, pe_err *err) {
    *out = NULL;
    *n_out = 0;
    if (len > (size_t)INT_MAX / 4)
        return pe_fail(err, PE_ERR_INPUT, "text of %zu bytes is too long to encode at once: expected at most %d", len,
                       INT_MAX / 4);
    hf_ctx    c;
    hf_buf    clean = {0};
    pe_status st = PE_OK;
    memset(&c, 0, sizeof c);
    c.md = pcre2_match_data_create(1, NULL);
    if (!c.md || hf_buf_reserve(&clean, len + 16)) goto oom;
    /* invalid UTF-8 -> U+FFFD */
    for (size_t i = 0; i < len;) {
        size_t sub, l = hf_utf8_char((const unsigned char *)text + i, len - i, &sub);
        if (l) {
            if (hf_buf_add(&clean, text + i, l)) goto oom;
            i += l;
        } else {
            if (hf_buf_add(&clean, "\xEF\xBF\xBD", 3)) goto oom;
            i += sub;
        }
    }
    if (prefix)
        for (int i = 0; i < h->n_prefix; i++)
            if (hf_ints_add(&c.out, h->prefix[i])) goto oom;
    const char *s = clean.b ? clean.b : "";
    size_t      n = clean.n, sec = 0, i = 0;
    int         section = 0, rstrip = 0;
    while (i <= n) {
        const hf_added *hit = NULL;
        if (i < n) {
            unsigned char b = (unsigned char)s[i];
            for (int k = h->added_first[b]; k < h->added_first[b + 1]; k++)
                if ((size_t)h->added[k].len <= n - i && !memcmp(s + i, h->added[k].content, (size_t)h->added[k].len)) {
                    hit = &h->added[k];
                    break;
                }
            if (!hit) {
                i++;
                continue;
            }
        }
        size_t a = sec, e = i; /* the section [a, e) before the token (or the end) */
        int    raw = e > a;    /* sections are counted before any stripping, as the splitter sees them */
        if (rstrip)
            for (size_t l; a < e && hf_is_space(s + a, e - a, &l);) a += l;
        if (hit && hit->lstrip) e = a + hf_trim_end(s + a, e - a);
        if (e > a) {
            int rc = hf_encode_section(h, &c, s + a, e - a, section, ref);
            if (rc == -2) {
                st = pe_fail(err, PE_ERR_INPUT, "cannot encode the text: a character is neither in the vocabulary nor "
                             "representable by byte fallback, and the tokenizer has no unk_token (%s)", h->source);
                goto done;
            }
            if (rc == HF_RE_FAILED) {
                st = pe_fail(err, PE_ERR_INPUT, "cannot encode the text: a regex of %s hit PCRE2's match or stack "
                             "limit on a section of %zu bytes; split the text into smaller documents", h->source,
                             e - a);
                goto done;
            }
            if (rc) goto oom;
        }
        section += raw;
        if (!hit) break;
        if (hf_ints_add(&c.out, hit->id)) goto oom;
        section++;
        rstrip = hit->rstrip;
        i += (size_t)hit->len;
        sec = i;
    }
    if (suffix)
        for (int k = 0; k < h->n_suffix; k++)
            if (hf_ints_add(&c.out, h->suffix[k])) goto oom;
    *out = c.out.v ? c.out.v : malloc(sizeof(int));
    if (!*out) goto oom;
    *n_out = (int)c.out.n;
    c.out.v = NULL;
    goto done;
oom:
    st = pe_fail(err, PE_ERR_INTERNAL, "out of memory encoding %zu bytes of text", len);
done:
    free(clean.b);
    free(c.norm_a.b);
    free(c.norm_b.b);
    free(c.pa.b);
    free(c.pb.b);
    free(c.ea);
    free(c.eb);
    free(c.tok);
    free(c.prev);
    free(c.next);
    free(c.start);
    free(c.len);
    free(c.gen);
    free(c.heap);
    free(c.out.v);
    pcre2_match_data_free(c.md);
    return st;
}

const char *hftok_piece(const hftok *h, int prev, int cur, int *len) {
    if (cur < 0 || cur >= h->n_ids) {
        *len = 0;
        return "";
    }
    const char *p = h->dec + h->dec_off[cur];
    int         n = h->dec_len[cur];
    int at_start = prev < 0 || prev >= h->n_ids ||
                   (h->strip_mode == 1 ? h->special[prev] : (h->n_prefix > 0 && prev == h->prefix[h->n_prefix - 1]));
    if (h->strip_mode && at_start && n > 0 && p[0] == ' ') {
        p++;
        n--;
    }
    *len = n;
    return p;
}
