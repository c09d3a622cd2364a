/* ckpt.c: llama2.c (v0, v1) and safetensors checkpoints as named tensors over a read-only mmap.
 * See ckpt.h and docs/formats.md. Nothing here trusts a size or offset before checking it
 * against the file size. */
#include "ckpt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <float.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LLAMA2C_V1_MAGIC_BYTES "\x32\x34\x6b\x61" /* uint32 LE 0x616b3432, "ak42" */
#define CKPT_MAX_TENSORS 100000

const char *ckpt_dtype_name(ckpt_dtype d) {
    switch (d) {
    case CKPT_DTYPE_F32: return "F32";
    case CKPT_DTYPE_F16: return "F16";
    case CKPT_DTYPE_BF16: return "BF16";
    case CKPT_DTYPE_BOOL: return "BOOL";
    case CKPT_DTYPE_U8: return "U8";
    }
    return "?";
}

static size_t ckpt_dtype_size(ckpt_dtype d) { return d == CKPT_DTYPE_F32 ? 4 : d >= CKPT_DTYPE_BOOL ? 1 : 2; }

static const char *const HF_FAMILY_NAMES[CKPT_HF_N_FAMILIES] = {"", "gpt2", "llama", "mistral", "qwen2", "qwen3",
                                                                "gpt_neox", "vit"};

const char *ckpt_hf_family_name(int f) { return f >= 0 && f < CKPT_HF_N_FAMILIES ? HF_FAMILY_NAMES[f] : "?"; }

float ckpt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    int      exp  = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    float    f;
    if (exp == 0) {
        f = ldexpf((float)mant, -24); /* subnormal or zero */
    } else if (exp == 31) {
        f = mant ? NAN : INFINITY;
    } else {
        f = ldexpf((float)(mant | 0x400), exp - 25);
    }
    uint32_t bits;
    memcpy(&bits, &f, 4);
    bits |= sign;
    memcpy(&f, &bits, 4);
    return f;
}

float ckpt_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float    f;
    memcpy(&f, &bits, 4);
    return f;
}

const ckpt_tensor *ckpt_find(const ckpt_file *ck, const char *name) {
    for (int i = 0; i < ck->n_tensors; i++)
        if (strcmp(ck->tensors[i].name, name) == 0) return &ck->tensors[i];
    return NULL;
}

const char *ckpt_tensor_file(const ckpt_file *ck, const ckpt_tensor *t, char *buf, size_t n) {
    if (!ck->is_dir || ck->n_shards < 1) snprintf(buf, n, "%s", ck->path);
    else if (t && t->shard >= 0 && t->shard < ck->n_shards) snprintf(buf, n, "%s/%s", ck->path, ck->shards[t->shard].name);
    else if (ck->n_shards == 1) snprintf(buf, n, "%s/%s", ck->path, ck->shards[0].name);
    else snprintf(buf, n, "%s/model.safetensors.index.json (%d shards)", ck->path, ck->n_shards);
    return buf;
}

void ckpt_close(ckpt_file *ck) {
    for (int i = 0; i < ck->n_shards; i++)
        if (ck->shards[i].map && ck->shards[i].map != ck->map) munmap(ck->shards[i].map, ck->shards[i].size);
    free(ck->shards);
    if (ck->map && ck->map != MAP_FAILED) munmap(ck->map, ck->map_size);
    free(ck->tensors);
    memset(ck, 0, sizeof *ck);
}

/* ---- mapping --------------------------------------------------------------------------- */

static pe_status ckpt_map_file(ckpt_file *ck, const char *path, pe_err *err) {
    snprintf(ck->path, sizeof ck->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return pe_fail(err, PE_ERR_INPUT, "%s: cannot open model (%s); check [model] path", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
        close(fd);
        if (is_dir)
            return pe_fail(err, PE_ERR_INPUT,
                           "%s is a folder, not a checkpoint file; set [model] path to the model file in it (e.g. "
                           "%s/model.safetensors, or a llama2.c .bin)", path, path);
        return pe_fail(err, PE_ERR_INPUT, "%s: not a regular file; check [model] path", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return pe_fail(err, PE_ERR_INPUT, "%s: empty file; the checkpoint was not written completely", path);
    }
    ck->map_size = (size_t)st.st_size;
    ck->map      = mmap(NULL, ck->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd); /* the mapping keeps the file alive */
    if (ck->map == MAP_FAILED) {
        ck->map = NULL;
        return pe_fail(err, PE_ERR_INTERNAL, "%s: mmap failed (%s)", path, strerror(errno));
    }
    return PE_OK;
}

static ckpt_tensor *ckpt_add_tensor(ckpt_file *ck, int *cap, const char *name, ckpt_dtype dt, int ndim,
                                    const int64_t *shape, const void *data, size_t nbytes, pe_err *err) {
    if (ck->n_tensors == *cap) {
        int newcap = *cap ? 2 * *cap : 64;
        ckpt_tensor *t = realloc(ck->tensors, (size_t)newcap * sizeof *t);
        if (!t) {
            pe_fail(err, PE_ERR_INTERNAL, "out of memory for the tensor directory of %s", ck->path);
            return NULL;
        }
        ck->tensors = t;
        *cap        = newcap;
    }
    ckpt_tensor *t = &ck->tensors[ck->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dt;
    t->ndim  = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data   = data;
    t->nbytes = nbytes;
    return t;
}

/* ---- checked size arithmetic ----------------------------------------------------------- */

int ckpt_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return -1;
    *out = r;
    return 0;
}

int ckpt_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r)) return -1;
    *out = r;
    return 0;
}

int ckpt_numel(const int64_t *shape, int ndim, int64_t max, int64_t *out) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0 || __builtin_mul_overflow(n, shape[d], &n) || n > max) return -1;
    *out = n;
    return 0;
}

/* ---- format sniffing ------------------------------------------------------------------- */

#define SAFETENSORS_MAX_HEADER 100000000ull /* the safetensors library's own limit */

/* 0 when p looks like a safetensors file (see ckpt.h), else -1 with the reason in why */
static int sniff_safetensors(const unsigned char *p, size_t size, uint64_t *hlen_out, char *why, size_t wn) {
    if (size < 8) {
        snprintf(why, wn, "%zu bytes, fewer than the 8-byte header length; truncated?", size);
        return -1;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen_out) *hlen_out = hlen;
    if (hlen > SAFETENSORS_MAX_HEADER) {
        snprintf(why, wn, "its first 8 bytes give a header length of %llu, above the 100000000-byte limit of "
                 "safetensors headers%s (the file has %zu bytes)", (unsigned long long)hlen,
                 hlen > size - 8 ? " and past the end of the file" : "", size);
        return -1;
    }
    if (hlen > size - 8) {
        snprintf(why, wn, "its header length %llu runs past the end of the file (%zu bytes); truncated?",
                 (unsigned long long)hlen, size);
        return -1;
    }
    if (hlen < 2) {
        snprintf(why, wn, "its header is not a JSON object: the header length is %llu bytes", (unsigned long long)hlen);
        return -1;
    }
    if (p[8] != '{') {
        snprintf(why, wn, "its header is not a JSON object: byte 8 is 0x%02x, not '{'", p[8]);
        return -1;
    }
    size_t end = 8 + (size_t)hlen;
    while (end > 9 && p[end - 1] == ' ') end--; /* padding */
    if (p[end - 1] != '}') {
        snprintf(why, wn, "its header is not a JSON object: the %llu header bytes do not end with '}' (then only "
                 "padding spaces)", (unsigned long long)hlen);
        return -1;
    }
    return 0;
}

static const char *const LLAMA2C_FIELD[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
                                             "seq_len"};

int ckpt_llama2c_check(const int32_t *h, int nf, int v1, int shared, uint64_t *file_bytes, char *why, size_t wn) {
    static const int64_t maxv[7] = {MODEL_MAX_DIM, MODEL_MAX_HIDDEN, MODEL_MAX_LAYERS, MODEL_MAX_DIM,
                                    MODEL_MAX_DIM, MODEL_MAX_VOCAB,  MODEL_MAX_SEQ};
    char dummy[8];
    if (!why) why = dummy, wn = sizeof dummy;
    for (int i = 0; i < nf && i < 7; i++) {
        int64_t v = h[i];
        if (i == 5 && !v1 && v < 0) v = -v; /* int64: INT32_MIN negates safely */
        if (v <= 0 || v > maxv[i]) {
            snprintf(why, wn, "%s %d (%s must be in [1, %lld])", LLAMA2C_FIELD[i], h[i],
                     i == 5 && !v1 ? "|vocab_size|" : LLAMA2C_FIELD[i], (long long)maxv[i]);
            return -1;
        }
    }
    if (nf < 7) return 0;
    int64_t C = h[0], HID = h[1], L = h[2], NH = h[3], NKV = h[4], V = h[5] < 0 ? -(int64_t)h[5] : h[5], S = h[6];
    if (C % NH) return snprintf(why, wn, "dim %lld is not a multiple of n_heads %lld", (long long)C, (long long)NH), -1;
    if (NH % NKV)
        return snprintf(why, wn, "n_heads %lld is not a multiple of n_kv_heads %lld", (long long)NH, (long long)NKV), -1;
    int64_t HS = C / NH, KVC = NKV * HS;
    if (HS % 2) return snprintf(why, wn, "head size dim/n_heads = %lld is odd (RoPE needs it even)", (long long)HS), -1;
    int sep_head = v1 ? !shared : h[5] < 0;
    /* every factor is bounded above, so these products fit; checked anyway */
    uint64_t per = 0, t = 0, fl = 0, bytes = 0;
    int bad = ckpt_mul_u64((uint64_t)C, (uint64_t)(2 * C + 2 * KVC + 3 * HID), &per) ||
              ckpt_add_u64(per, 2 * (uint64_t)C, &per) || ckpt_mul_u64(per, (uint64_t)L, &fl) ||
              ckpt_mul_u64((uint64_t)V, (uint64_t)C, &t) || ckpt_add_u64(fl, t * (sep_head ? 2 : 1), &fl) ||
              ckpt_add_u64(fl, (uint64_t)C, &fl) || (!v1 && ckpt_add_u64(fl, (uint64_t)(S * HS), &fl)) ||
              ckpt_mul_u64(fl, 4, &bytes) || ckpt_add_u64(bytes, v1 ? 256 : 28, &bytes);
    if (bad) return snprintf(why, wn, "the sizes it announces overflow"), -1;
    if (file_bytes) *file_bytes = bytes;
    return 0;
}

/* "23 20 70 61 ... ("# pa...")": the first bytes of a file, for messages */
static void describe_bytes(const unsigned char *p, size_t size, char *out, size_t n) {
    size_t k = size < 12 ? size : 12, at = 0;
    out[0] = 0;
    for (size_t i = 0; i < k && at + 4 < n; i++) at += (size_t)snprintf(out + at, n - at, "%s%02x", i ? " " : "", p[i]);
    if (at + 4 < n) at += (size_t)snprintf(out + at, n - at, " (\"");
    for (size_t i = 0; i < k && at + 4 < n; i++) out[at++] = p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' ? (char)p[i] : '.';
    if (at + 3 < n) snprintf(out + at, n - at, "\")");
}

ckpt_kind ckpt_sniff(const void *data, size_t size, char *why, size_t wn) {
    const unsigned char *p = data;
    if (size >= 4 && !memcmp(p, LLAMA2C_V1_MAGIC_BYTES, 4)) return CKPT_KIND_LLAMA2C_V1;
    char st_why[320], v0_why[160], first[96];
    if (sniff_safetensors(p, size, NULL, st_why, sizeof st_why) == 0) return CKPT_KIND_SAFETENSORS;
    /* A safetensors header length is < 2^32 (the 100 MB cap), so bytes 4..7, which v0 reads as
     * hidden_dim, are 0 in every file that got here as safetensors: the two never both match. */
    int32_t h[7] = {0};
    int     nf   = size >= 28 ? 7 : (int)(size / 4);
    if (nf) memcpy(h, p, (size_t)nf * 4);
    if (nf > 0 && ckpt_llama2c_check(h, nf, 0, 0, NULL, v0_why, sizeof v0_why) == 0) return CKPT_KIND_LLAMA2C_V0;
    if (nf == 0) snprintf(v0_why, sizeof v0_why, "%zu bytes, shorter than its 28-byte header", size);
    if (why) {
        describe_bytes(p, size, first, sizeof first);
        snprintf(why, wn, "the file (%zu bytes) starts %s; read as a llama2.c v0 header it has %s; read as safetensors %s",
                 size, first, v0_why, st_why);
    }
    return CKPT_KIND_UNKNOWN;
}

/* ---- llama2.c v0 / v1 ------------------------------------------------------------------ */

/* The 7 header ints as llama2.c writes them. */
typedef struct { int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; } llama2c_header;

#define LLAMA2C_ACCEPTS                                                                                            \
    "a llama2.c checkpoint starts with the magic \"ak42\" and version 1 (v1), or with 7 int32 (dim, hidden_dim, "  \
    "n_layers, n_heads, n_kv_heads, vocab_size, seq_len) that are positive (v0: vocab_size negative for a separate " \
    "classifier) and within pathens' limits, then exactly the float32 arrays that header announces "               \
    "(docs/formats.md)"

/* h has passed ckpt_llama2c_check */
static pe_status llama2c_config(model_config *c, const llama2c_header *h, int shared, const char *path,
                                pe_err *err) {
    memset(c, 0, sizeof *c);
    c->dim        = h->dim;
    c->hidden_dim = h->hidden_dim;
    c->n_layers   = h->n_layers;
    c->n_heads    = h->n_heads;
    c->n_kv_heads = h->n_kv_heads;
    c->vocab_size = h->vocab_size < 0 ? -h->vocab_size : h->vocab_size; /* never INT32_MIN here */
    c->seq_len    = h->seq_len;
    c->norm       = MODEL_NORM_RMSNORM;
    c->norm_eps   = 1e-5f;
    c->pos        = MODEL_POS_ROPE;
    c->rope_theta = 10000.0f;
    c->mlp        = MODEL_MLP_SWIGLU;
    c->causal     = 1;
    c->bias       = 0;
    c->head       = shared ? MODEL_HEAD_LM_TIED : MODEL_HEAD_LM;
    c->input      = MODEL_INPUT_TOKENS;
    c->pixel_std  = 1.0f;
    return model_check_config(c, path, err);
}

static uint64_t spec_floats(const model_tensor_spec *s) {
    return (uint64_t)s->shape[0] * (uint64_t)(s->ndim > 1 ? s->shape[1] : 1); /* bounded by model_check_config */
}

/* the part of a native name after "layers.N." (or the whole name) */
static const char *spec_base(const char *nm) {
    if (strncmp(nm, "layers.", 7) != 0) return nm;
    const char *dot = strchr(nm + 7, '.');
    return dot ? dot + 1 : nm;
}

/* Walk a float pointer through the file in `order` and register each native tensor. */
static pe_status llama2c_register(ckpt_file *ck, size_t offset, const char *const *order, int n_order,
                                  size_t skip_after_idx, uint64_t skip_floats, pe_err *err) {
    /* up to 9 tensors a layer and MODEL_MAX_LAYERS layers: on the heap, no fixed cap */
    int n_specs = model_list_tensors(&ck->cfg, NULL, 0);
    model_tensor_spec *specs = pe_malloc((size_t)n_specs * sizeof *specs, err, "llama2.c tensor list");
    if (!specs) return PE_ERR_INTERNAL;
    model_list_tensors(&ck->cfg, specs, n_specs);
    /* expected total size, checked before any pointer is formed */
    uint64_t need = offset;
    int      bad  = 0;
    for (int o = 0; o < n_order; o++) {
        for (int s = 0; s < n_specs; s++)
            if (strcmp(spec_base(specs[s].name), order[o]) == 0)
                bad |= ckpt_add_u64(need, 4 * spec_floats(&specs[s]), &need);
        if ((size_t)o == skip_after_idx) bad |= ckpt_add_u64(need, 4 * skip_floats, &need);
    }
    if (bad || need != ck->map_size) {
        const model_config *c = &ck->cfg;
        pe_fail(err, PE_ERR_INPUT,
                "%s: file size is %zu bytes but a %s checkpoint with this header (dim %d, hidden_dim %d, n_layers %d, "
                "n_heads %d, n_kv_heads %d, vocab_size %d, seq_len %d) needs %llu bytes; the file is %s; re-export or "
                "re-download it", ck->path, ck->map_size, ck->format, c->dim, c->hidden_dim, c->n_layers, c->n_heads,
                c->n_kv_heads, c->vocab_size, c->seq_len, (unsigned long long)need,
                ck->map_size < need ? "truncated" : "too long");
        free(specs);
        return PE_ERR_INPUT;
    }
    int cap = 0;
    size_t at = offset;
    pe_status st = PE_OK;
    for (int o = 0; o < n_order && !st; o++) {
        /* all layers of one kind are contiguous: layers.0.x, layers.1.x, ... */
        for (int s = 0; s < n_specs && !st; s++) {
            if (strcmp(spec_base(specs[s].name), order[o]) != 0) continue;
            size_t nfl = (size_t)spec_floats(&specs[s]);
            if (!ckpt_add_tensor(ck, &cap, specs[s].name, CKPT_DTYPE_F32, specs[s].ndim, specs[s].shape,
                                 (const char *)ck->map + at, nfl * 4, err))
                st = PE_ERR_INTERNAL;
            at += nfl * 4;
        }
        if ((size_t)o == skip_after_idx) at += 4 * (size_t)skip_floats;
    }
    free(specs);
    return st;
}

static pe_status ckpt_open_llama2c(ckpt_file *ck, pe_err *err) {
    const unsigned char *p = ck->map;
    int32_t hdr[7] = {0};
    char    why[160];
    llama2c_header h;
    if (ck->map_size >= 4 && !memcmp(p, LLAMA2C_V1_MAGIC_BYTES, 4)) {
        snprintf(ck->format, sizeof ck->format, "llama2c-v1");
        if (ck->map_size < 256)
            return pe_fail(err, PE_ERR_INPUT, "%s: llama2.c v1 header needs 256 bytes, file has %zu; truncated file",
                           ck->path, ck->map_size);
        int32_t version;
        memcpy(&version, p + 4, 4);
        if (version != 1)
            return pe_fail(err, PE_ERR_INPUT,
                           "%s: llama2.c format version %d; only version 1 (float32) is read (version 2 is int8); "
                           "export with version=1", ck->path, version);
        memcpy(hdr, p + 8, sizeof hdr);
        int shared = p[8 + sizeof hdr];
        if (shared > 1)
            return pe_fail(err, PE_ERR_INPUT,
                           "%s is not a llama2.c checkpoint: its v1 header's shared_classifier byte (offset 36) is %d, "
                           "not 0 or 1; %s", ck->path, shared, LLAMA2C_ACCEPTS);
        if (ckpt_llama2c_check(hdr, 7, 1, shared, NULL, why, sizeof why))
            return pe_fail(err, PE_ERR_INPUT, "%s is not a llama2.c checkpoint: its v1 header has %s; %s", ck->path, why,
                           LLAMA2C_ACCEPTS);
        memcpy(&h, hdr, sizeof h);
        pe_status st = llama2c_config(&ck->cfg, &h, shared, ck->path, err);
        if (st) return st;
        static const char *order_shared[] = {"attn_norm.weight", "mlp_norm.weight", "final_norm.weight", "tok_emb.weight",
                                             "attn.wq.weight",   "attn.wk.weight",  "attn.wv.weight",    "attn.wo.weight",
                                             "mlp.w1.weight",    "mlp.w2.weight",   "mlp.w3.weight",     "lm_head.weight"};
        return llama2c_register(ck, 256, order_shared, 12, (size_t)-1, 0, err);
    }
    snprintf(ck->format, sizeof ck->format, "llama2c-v0");
    int nf = ck->map_size >= sizeof hdr ? 7 : (int)(ck->map_size / 4);
    if (nf) memcpy(hdr, p, (size_t)nf * 4);
    if (nf && ckpt_llama2c_check(hdr, nf, 0, 0, NULL, why, sizeof why))
        return pe_fail(err, PE_ERR_INPUT, "%s is not a llama2.c checkpoint: read as a v0 header it has %s; %s", ck->path,
                       why, LLAMA2C_ACCEPTS);
    if (nf < 7)
        return pe_fail(err, PE_ERR_INPUT, "%s: %zu bytes is shorter than the 28-byte llama2.c header; truncated file",
                       ck->path, ck->map_size);
    memcpy(&h, hdr, sizeof h);
    int shared = h.vocab_size > 0;
    pe_status st = llama2c_config(&ck->cfg, &h, shared, ck->path, err);
    if (st) return st;
    uint64_t hs          = (uint64_t)(h.dim / h.n_heads);
    uint64_t rope_floats = (uint64_t)h.seq_len * (hs / 2) * 2; /* freq_cis_real + freq_cis_imag; bounded */
    static const char *order[] = {"tok_emb.weight", "attn_norm.weight", "attn.wq.weight", "attn.wk.weight",
                                  "attn.wv.weight", "attn.wo.weight",   "mlp_norm.weight", "mlp.w1.weight",
                                  "mlp.w2.weight",  "mlp.w3.weight",    "final_norm.weight", "lm_head.weight"};
    return llama2c_register(ck, sizeof hdr, order, 12, 10, rope_floats, err);
}

/* ---- config.json ----------------------------------------------------------------------- */

static const char *json_enum_name(const char *const *names, int n, int v) { return v >= 0 && v < n ? names[v] : "?"; }

static const char *const NORM_NAMES[]  = {"layernorm", "rmsnorm"};
static const char *const POS_NAMES[]   = {"none", "learned", "rope"};
static const char *const MLP_NAMES[]   = {"gelu", "gelu_tanh", "swiglu"};
static const char *const HEAD_NAMES[]  = {"lm_tied", "lm", "cls_token", "cls_mean"};
static const char *const INPUT_NAMES[] = {"tokens", "patches"};

static pe_status json_get_enum(const cJSON *it, const char *const *names, int n, int *out, const char *where,
                               pe_err *err) {
    if (!cJSON_IsString(it))
        return pe_fail(err, PE_ERR_INPUT, "%s: \"%s\" must be a string", where, it->string);
    for (int i = 0; i < n; i++)
        if (strcmp(it->valuestring, names[i]) == 0) {
            *out = i;
            return PE_OK;
        }
    char choices[256] = "";
    for (int i = 0; i < n; i++) {
        strcat(choices, names[i]);
        if (i + 1 < n) strcat(choices, ", ");
    }
    return pe_fail(err, PE_ERR_INPUT, "%s: \"%s\" = \"%s\" is not one of: %s", where, it->string, it->valuestring,
                   choices);
}

static pe_status json_get_int(const cJSON *it, int *out, const char *where, pe_err *err) {
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 1e9)
        return pe_fail(err, PE_ERR_INPUT, "%s: \"%s\" must be an integer", where, it->string);
    *out = (int)it->valuedouble;
    return PE_OK;
}

/* a float32 key: finite before and after the conversion (a double beyond FLT_MAX would become
 * Inf, and converting it is undefined behaviour in C); ranges are model_check_config's */
static pe_status json_get_float(const cJSON *it, float *out, const char *where, pe_err *err) {
    if (!cJSON_IsNumber(it)) return pe_fail(err, PE_ERR_INPUT, "%s: \"%s\" must be a number", where, it->string);
    double v = it->valuedouble;
    if (!isfinite(v) || fabs(v) > FLT_MAX || !isfinite((float)v))
        return pe_fail(err, PE_ERR_INPUT, "%s: \"%s\" = %g is not a finite float32 number (|x| <= 3.4e38)", where,
                       it->string, v);
    *out = (float)v;
    return PE_OK;
}

static pe_status json_get_bool(const cJSON *it, int *out, const char *where, pe_err *err) {
    if (!cJSON_IsBool(it)) return pe_fail(err, PE_ERR_INPUT, "%s: \"%s\" must be true or false", where, it->string);
    *out = cJSON_IsTrue(it);
    return PE_OK;
}

/* Hugging Face GPT-2 config.json: the keys that define the architecture are read; the many
 * bookkeeping keys HF writes (task_specific_params, architectures, ...) are ignored; keys that
 * would change the math and that we do not implement are refused. */
/* HF's activation names of the GELU MLP; 0 for any other name */
static int hf_gelu_kind(const char *name, model_mlp_kind *out) {
    if (!strcmp(name, "gelu")) *out = MODEL_MLP_GELU;
    else if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh")) *out = MODEL_MLP_GELU_TANH;
    else return 0;
    return 1;
}

static pe_status config_from_hf_gpt2(model_config *c, const cJSON *root, const char *where, pe_err *err) {
    memset(c, 0, sizeof *c);
    c->norm = MODEL_NORM_LAYERNORM;
    c->norm_eps = 1e-5f;
    c->pos = MODEL_POS_LEARNED;
    c->mlp = MODEL_MLP_GELU_TANH;
    c->causal = 1;
    c->bias = 1;
    c->head = MODEL_HEAD_LM_TIED;
    c->input = MODEL_INPUT_TOKENS;
    c->pixel_std = 1.0f;
    int n_inner = 0;
    const cJSON *it;
    pe_status st = PE_OK;
    cJSON_ArrayForEach(it, root) {
        const char *k = it->string;
        if (!strcmp(k, "n_embd")) st = json_get_int(it, &c->dim, where, err);
        else if (!strcmp(k, "n_layer")) st = json_get_int(it, &c->n_layers, where, err);
        else if (!strcmp(k, "n_head")) st = json_get_int(it, &c->n_heads, where, err);
        else if (!strcmp(k, "n_positions")) st = json_get_int(it, &c->seq_len, where, err);
        else if (!strcmp(k, "vocab_size")) st = json_get_int(it, &c->vocab_size, where, err);
        else if (!strcmp(k, "layer_norm_epsilon")) st = json_get_float(it, &c->norm_eps, where, err);
        else if (!strcmp(k, "n_inner")) {
            if (!cJSON_IsNull(it)) st = json_get_int(it, &n_inner, where, err);
            if (!st && !cJSON_IsNull(it) && n_inner <= 0)
                return pe_fail(err, PE_ERR_INPUT, "%s: n_inner %d must be positive (or null for 4 * n_embd)", where,
                               n_inner);
        } else if (!strcmp(k, "activation_function")) {
            if (!cJSON_IsString(it)) return pe_fail(err, PE_ERR_INPUT, "%s: activation_function must be a string", where);
            if (!hf_gelu_kind(it->valuestring, &c->mlp))
                return pe_fail(err, PE_ERR_INPUT, "%s: activation_function \"%s\" not supported (gelu_new, gelu)", where,
                               it->valuestring);
        } else if (!strcmp(k, "scale_attn_by_inverse_layer_idx") || !strcmp(k, "reorder_and_upcast_attn")) {
            if (cJSON_IsTrue(it))
                return pe_fail(err, PE_ERR_INPUT, "%s: \"%s\": true is not supported", where, k);
        } else if (!strcmp(k, "scale_attn_weights")) {
            if (cJSON_IsFalse(it)) return pe_fail(err, PE_ERR_INPUT, "%s: scale_attn_weights false is not supported", where);
        }
        if (st) return st;
    }
    c->n_kv_heads = c->n_heads;
    if (c->dim <= 0 || c->dim > MODEL_MAX_DIM) /* before 4 * n_embd, which would overflow an int */
        return pe_fail(err, PE_ERR_INPUT, "%s: n_embd %d must be in [1, %d]", where, c->dim, MODEL_MAX_DIM);
    c->hidden_dim = n_inner > 0 ? n_inner : 4 * c->dim;
    return model_check_config(c, where, err);
}

/* ---- Hugging Face config.json of the other families (docs/models.md) ---------------------- */

/* key lookups with HF's defaults: an absent key or null gives the default; a present key of the
 * wrong type is refused with its name */
static pe_status hf_int(const cJSON *root, const char *key, int dflt, int *out, const char *where, pe_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) {
        *out = dflt;
        return PE_OK;
    }
    return json_get_int(it, out, where, err);
}

static pe_status hf_float(const cJSON *root, const char *key, float dflt, float *out, const char *where, pe_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) {
        *out = dflt;
        return PE_OK;
    }
    return json_get_float(it, out, where, err);
}

static pe_status hf_bool(const cJSON *root, const char *key, int dflt, int *out, const char *where, pe_err *err) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) {
        *out = dflt;
        return PE_OK;
    }
    return json_get_bool(it, out, where, err);
}

/* a string key: absent or null gives dflt; a value of another type gives "(not a string)", a name every
 * caller refuses as unsupported (never the default in its place) */
static const char *hf_str(const cJSON *root, const char *key, const char *dflt) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) return dflt;
    return cJSON_IsString(it) ? it->valuestring : "(not a string)";
}

/* rope_scaling: null / absent / type "default" = none; "llama3" with its four numbers; any other
 * type (linear, dynamic, yarn, longrope, ...) is refused */
static pe_status hf_rope_scaling(model_config *c, const cJSON *root, const char *where, pe_err *err) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return PE_OK;
    if (!cJSON_IsObject(rs)) return pe_fail(err, PE_ERR_INPUT, "%s: \"rope_scaling\" must be an object or null", where);
    const char *type = hf_str(rs, "rope_type", hf_str(rs, "type", "default"));
    if (!strcmp(type, "default")) return PE_OK;
    if (strcmp(type, "llama3"))
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: rope_scaling type \"%s\" is not supported (pathens implements \"llama3\" and none); "
                       "evaluate at the original context without it (remove rope_scaling) only if that is what you "
                       "mean", where, type);
    c->rope_scaling = MODEL_ROPE_SCALE_LLAMA3;
    pe_status st = hf_float(rs, "factor", 8.0f, &c->rope_factor, where, err);
    if (!st) st = hf_float(rs, "low_freq_factor", 1.0f, &c->rope_low_freq_factor, where, err);
    if (!st) st = hf_float(rs, "high_freq_factor", 4.0f, &c->rope_high_freq_factor, where, err);
    if (!st) st = hf_int(rs, "original_max_position_embeddings", 8192, &c->rope_orig_ctx, where, err);
    return st;
}

/* llama, mistral, qwen2, qwen3: one decoder (RMSNorm, rotate_half RoPE, GQA, SwiGLU) */
static pe_status config_from_hf_llama(model_config *c, int family, const cJSON *root, const char *where, pe_err *err) {
    c->norm = MODEL_NORM_RMSNORM;
    c->pos = MODEL_POS_ROPE;
    c->rope_style = MODEL_ROPE_HALF;
    c->mlp = MODEL_MLP_SWIGLU;
    c->causal = 1;
    c->input = MODEL_INPUT_TOKENS;
    c->pixel_std = 1.0f;
    int tied = 0, attn_bias = 0, head_dim = 0, use_sw = family == CKPT_HF_MISTRAL;
    float partial = 1.0f;
    pe_status st = hf_int(root, "hidden_size", 0, &c->dim, where, err);
    if (!st) st = hf_int(root, "intermediate_size", 0, &c->hidden_dim, where, err);
    if (!st) st = hf_int(root, "num_hidden_layers", 0, &c->n_layers, where, err);
    if (!st) st = hf_int(root, "num_attention_heads", 0, &c->n_heads, where, err);
    if (!st) st = hf_int(root, "num_key_value_heads", c->n_heads, &c->n_kv_heads, where, err);
    if (!st) st = hf_int(root, "vocab_size", 0, &c->vocab_size, where, err);
    if (!st) st = hf_int(root, "max_position_embeddings", 0, &c->seq_len, where, err);
    if (!st) st = hf_float(root, "rms_norm_eps", 1e-6f, &c->norm_eps, where, err);
    if (!st) st = hf_float(root, "rope_theta", 10000.0f, &c->rope_theta, where, err);
    if (!st) st = hf_int(root, "head_dim", family == CKPT_HF_QWEN3 ? 128 : 0, &head_dim, where, err);
    if (!st) st = hf_bool(root, "tie_word_embeddings", 0, &tied, where, err);
    if (!st) st = hf_bool(root, "attention_bias", 0, &attn_bias, where, err);
    if (!st) st = hf_bool(root, "mlp_bias", 0, &c->mlp_bias, where, err);
    if (!st) st = hf_float(root, "partial_rotary_factor", 1.0f, &partial, where, err);
    if (!st && family != CKPT_HF_MISTRAL) st = hf_bool(root, "use_sliding_window", 0, &use_sw, where, err);
    if (!st && use_sw) st = hf_int(root, "sliding_window", 0, &c->sliding_window, where, err);
    if (!st) st = hf_rope_scaling(c, root, where, err);
    if (st) return st;
    const char *act = hf_str(root, "hidden_act", "silu");
    if (strcmp(act, "silu") && strcmp(act, "swish"))
        return pe_fail(err, PE_ERR_INPUT, "%s: hidden_act \"%s\" is not supported for %s (silu is: the SwiGLU MLP)", where,
                       act, ckpt_hf_family_name(family));
    if (partial != 1.0f)
        return pe_fail(err, PE_ERR_INPUT, "%s: partial_rotary_factor %g is not supported for %s (1 is)", where,
                       (double)partial, ckpt_hf_family_name(family));
    if (c->n_heads > 0 && head_dim > 0 && (int64_t)head_dim * c->n_heads != c->dim) c->head_dim = head_dim;
    if (head_dim < 0) return pe_fail(err, PE_ERR_INPUT, "%s: head_dim %d must be positive", where, head_dim);
    if (c->n_heads > 0 && head_dim == 0 && c->dim % c->n_heads)
        return pe_fail(err, PE_ERR_INPUT, "%s: hidden_size %d is not a multiple of num_attention_heads %d and no "
                       "head_dim is given", where, c->dim, c->n_heads);
    c->head = tied ? MODEL_HEAD_LM_TIED : MODEL_HEAD_LM;
    if (family == CKPT_HF_QWEN2) c->qkv_bias = 1; /* Qwen2Attention: bias on q, k, v; none on o */
    else c->qkv_bias = c->o_bias = attn_bias;
    c->qk_norm = family == CKPT_HF_QWEN3;
    return model_check_config(c, where, err);
}

static pe_status config_from_hf_neox(model_config *c, const cJSON *root, const char *where, pe_err *err) {
    c->norm = MODEL_NORM_LAYERNORM;
    c->pos = MODEL_POS_ROPE;
    c->rope_style = MODEL_ROPE_HALF;
    c->causal = 1;
    c->bias = 1;
    c->input = MODEL_INPUT_TOKENS;
    c->pixel_std = 1.0f;
    int tied = 0, attn_bias = 1;
    float pct = 0.25f, base = 10000.0f;
    pe_status st = hf_int(root, "hidden_size", 0, &c->dim, where, err);
    if (!st) st = hf_int(root, "intermediate_size", 0, &c->hidden_dim, where, err);
    if (!st) st = hf_int(root, "num_hidden_layers", 0, &c->n_layers, where, err);
    if (!st) st = hf_int(root, "num_attention_heads", 0, &c->n_heads, where, err);
    if (!st) st = hf_int(root, "vocab_size", 0, &c->vocab_size, where, err);
    if (!st) st = hf_int(root, "max_position_embeddings", 0, &c->seq_len, where, err);
    if (!st) st = hf_float(root, "layer_norm_eps", 1e-5f, &c->norm_eps, where, err);
    if (!st) st = hf_float(root, "rotary_pct", 0.25f, &pct, where, err);
    if (!st) st = hf_float(root, "partial_rotary_factor", pct, &pct, where, err);
    if (!st) st = hf_float(root, "rotary_emb_base", 10000.0f, &base, where, err);
    if (!st) st = hf_float(root, "rope_theta", base, &c->rope_theta, where, err);
    if (!st) st = hf_bool(root, "use_parallel_residual", 1, &c->parallel_residual, where, err);
    if (!st) st = hf_bool(root, "tie_word_embeddings", 0, &tied, where, err);
    if (!st) st = hf_bool(root, "attention_bias", 1, &attn_bias, where, err);
    if (!st) st = hf_rope_scaling(c, root, where, err);
    if (st) return st;
    c->n_kv_heads = c->n_heads;
    const char *act = hf_str(root, "hidden_act", "gelu");
    if (!hf_gelu_kind(act, &c->mlp))
        return pe_fail(err, PE_ERR_INPUT, "%s: hidden_act \"%s\" is not supported for gpt_neox (gelu, gelu_new)", where,
                       act);
    if (!attn_bias)
        return pe_fail(err, PE_ERR_INPUT, "%s: attention_bias false is not supported for gpt_neox (Pythia has biases)",
                       where);
    if (c->n_heads <= 0 || c->dim <= 0 || c->dim % c->n_heads)
        return pe_fail(err, PE_ERR_INPUT, "%s: hidden_size %d must be a positive multiple of num_attention_heads %d", where,
                       c->dim, c->n_heads);
    if (!(pct > 0.0f && pct <= 1.0f))
        return pe_fail(err, PE_ERR_INPUT, "%s: rotary_pct %g must be in (0, 1]", where, (double)pct);
    int hs = c->dim / c->n_heads, rot = (int)((float)hs * pct); /* HF: int(head_size * rotary_pct) */
    if (rot != hs) c->rotary_dim = rot;
    if (rot < 2 || rot % 2)
        return pe_fail(err, PE_ERR_INPUT, "%s: rotary_pct %g of head size %d gives %d rotary dims; RoPE needs an even "
                       "number >= 2", where, (double)pct, hs, rot);
    c->head = tied ? MODEL_HEAD_LM_TIED : MODEL_HEAD_LM;
    return model_check_config(c, where, err);
}

static pe_status config_from_hf_vit(model_config *c, const cJSON *root, const char *where, pe_err *err) {
    c->norm = MODEL_NORM_LAYERNORM;
    c->pos = MODEL_POS_LEARNED;
    c->mlp = MODEL_MLP_GELU;
    c->causal = 0;
    c->bias = 1;
    c->head = MODEL_HEAD_CLS_TOKEN;
    c->input = MODEL_INPUT_PATCHES;
    c->pixel_mean = 0.5f; /* ViTImageProcessor's defaults; preprocessor_config.json overrides */
    c->pixel_std = 0.5f;
    int qkv_bias = 1;
    pe_status st = hf_int(root, "hidden_size", 768, &c->dim, where, err);
    if (!st) st = hf_int(root, "intermediate_size", 3072, &c->hidden_dim, where, err);
    if (!st) st = hf_int(root, "num_hidden_layers", 12, &c->n_layers, where, err);
    if (!st) st = hf_int(root, "num_attention_heads", 12, &c->n_heads, where, err);
    if (!st) st = hf_float(root, "layer_norm_eps", 1e-12f, &c->norm_eps, where, err);
    if (!st) st = hf_int(root, "image_size", 224, &c->image_size, where, err);
    if (!st) st = hf_int(root, "patch_size", 16, &c->patch_size, where, err);
    if (!st) st = hf_int(root, "num_channels", 3, &c->channels, where, err);
    if (!st) st = hf_bool(root, "qkv_bias", 1, &qkv_bias, where, err);
    if (st) return st;
    c->n_kv_heads = c->n_heads;
    const char *act = hf_str(root, "hidden_act", "gelu");
    if (!hf_gelu_kind(act, &c->mlp)) return pe_fail(err, PE_ERR_INPUT, "%s: hidden_act \"%s\" is not supported for vit (gelu, gelu_new)", where, act);
    if (!qkv_bias) return pe_fail(err, PE_ERR_INPUT, "%s: qkv_bias false is not supported for vit", where);
    /* classes: id2label's size (HF writes it), else num_labels, else 2 (PretrainedConfig's default) */
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(root, "id2label");
    if (cJSON_IsObject(labels)) c->n_classes = cJSON_GetArraySize(labels);
    else if ((st = hf_int(root, "num_labels", 2, &c->n_classes, where, err))) return st;
    if (c->patch_size > 0 && c->image_size > 0 && c->image_size <= MODEL_MAX_IMAGE) {
        int per = c->image_size / c->patch_size;
        c->seq_len = per * per + 1;
    }
    return model_check_config(c, where, err);
}

pe_status ckpt_parse_config_json(model_config *c, int *hf_family, const char *text, const char *where, pe_err *err) {
    *hf_family = CKPT_HF_NONE;
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return pe_fail(err, PE_ERR_INPUT, "%s: not a JSON object (parse error near '%.20s')", where,
                       cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "?");
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (cJSON_IsString(mt)) {
        int fam = CKPT_HF_NONE;
        for (int f = 1; f < CKPT_HF_N_FAMILIES; f++)
            if (!strcmp(mt->valuestring, HF_FAMILY_NAMES[f])) fam = f;
        pe_status st;
        char      w2[4200]; /* messages name the family: "config.json (model_type llama)" */
        snprintf(w2, sizeof w2, "%s (model_type %s)", where, mt->valuestring);
        memset(c, 0, sizeof *c);
        if (fam == CKPT_HF_GPT2) st = config_from_hf_gpt2(c, root, where, err);
        else if (fam == CKPT_HF_GPT_NEOX) st = config_from_hf_neox(c, root, w2, err);
        else if (fam == CKPT_HF_VIT) st = config_from_hf_vit(c, root, w2, err);
        else if (fam != CKPT_HF_NONE) st = config_from_hf_llama(c, fam, root, w2, err);
        else
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s: Hugging Face model_type \"%s\" is not supported (pathens reads gpt2, llama, mistral, "
                         "qwen2, qwen3, gpt_neox and vit: docs/models.md; or write a native pathens config.json, "
                         "docs/formats.md)", where, mt->valuestring);
        if (!st) *hf_family = fam;
        cJSON_Delete(root);
        return st;
    }
    memset(c, 0, sizeof *c);
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->causal = 1;
    c->pixel_std = 1.0f;
    c->channels = 1;
    pe_status st = PE_OK;
    int have_format = 0, e = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        const char *k = it->string;
        if (!strcmp(k, "format")) {
            if (!cJSON_IsString(it) || strcmp(it->valuestring, "pathens"))
                st = pe_fail(err, PE_ERR_INPUT, "%s: \"format\" must be \"pathens\"", where);
            have_format = 1;
        } else if (!strcmp(k, "version")) {
            int v = 0;
            st = json_get_int(it, &v, where, err);
            if (!st && v != 1)
                st = pe_fail(err, PE_ERR_INPUT, "%s: config version %d; this pathens reads version 1", where, v);
        } else if (!strcmp(k, "dim")) st = json_get_int(it, &c->dim, where, err);
        else if (!strcmp(k, "hidden_dim")) st = json_get_int(it, &c->hidden_dim, where, err);
        else if (!strcmp(k, "n_layers")) st = json_get_int(it, &c->n_layers, where, err);
        else if (!strcmp(k, "n_heads")) st = json_get_int(it, &c->n_heads, where, err);
        else if (!strcmp(k, "n_kv_heads")) st = json_get_int(it, &c->n_kv_heads, where, err);
        else if (!strcmp(k, "vocab_size")) st = json_get_int(it, &c->vocab_size, where, err);
        else if (!strcmp(k, "seq_len")) st = json_get_int(it, &c->seq_len, where, err);
        else if (!strcmp(k, "norm")) { st = json_get_enum(it, NORM_NAMES, 2, &e, where, err); c->norm = e; }
        else if (!strcmp(k, "norm_eps")) st = json_get_float(it, &c->norm_eps, where, err);
        else if (!strcmp(k, "pos")) { st = json_get_enum(it, POS_NAMES, 3, &e, where, err); c->pos = e; }
        else if (!strcmp(k, "rope_theta")) st = json_get_float(it, &c->rope_theta, where, err);
        else if (!strcmp(k, "mlp")) { st = json_get_enum(it, MLP_NAMES, 3, &e, where, err); c->mlp = e; }
        else if (!strcmp(k, "causal")) st = json_get_bool(it, &c->causal, where, err);
        else if (!strcmp(k, "bias")) st = json_get_bool(it, &c->bias, where, err);
        else if (!strcmp(k, "head")) { st = json_get_enum(it, HEAD_NAMES, 4, &e, where, err); c->head = e; }
        else if (!strcmp(k, "n_classes")) st = json_get_int(it, &c->n_classes, where, err);
        else if (!strcmp(k, "input")) { st = json_get_enum(it, INPUT_NAMES, 2, &e, where, err); c->input = e; }
        else if (!strcmp(k, "image_size")) st = json_get_int(it, &c->image_size, where, err);
        else if (!strcmp(k, "patch_size")) st = json_get_int(it, &c->patch_size, where, err);
        else if (!strcmp(k, "channels")) st = json_get_int(it, &c->channels, where, err);
        else if (!strcmp(k, "pixel_mean")) st = json_get_float(it, &c->pixel_mean, where, err);
        else if (!strcmp(k, "pixel_std")) st = json_get_float(it, &c->pixel_std, where, err);
        else
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s: unknown config key \"%s\"; the native keys are listed in docs/formats.md "
                         "(a Hugging Face config needs \"model_type\")", where, k);
        if (st) break;
    }
    cJSON_Delete(root);
    if (st) return st;
    if (!have_format)
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: no \"format\": \"pathens\" and no \"model_type\"; not a config this reader knows "
                       "(docs/formats.md)", where);
    if (c->n_kv_heads == 0) c->n_kv_heads = c->n_heads;
    return model_check_config(c, where, err);
}

char *ckpt_config_to_json(const model_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", "pathens");
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddNumberToObject(o, "dim", c->dim);
    cJSON_AddNumberToObject(o, "hidden_dim", c->hidden_dim);
    cJSON_AddNumberToObject(o, "n_layers", c->n_layers);
    cJSON_AddNumberToObject(o, "n_heads", c->n_heads);
    cJSON_AddNumberToObject(o, "n_kv_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "seq_len", c->seq_len);
    cJSON_AddStringToObject(o, "norm", json_enum_name(NORM_NAMES, 2, c->norm));
    cJSON_AddNumberToObject(o, "norm_eps", c->norm_eps);
    cJSON_AddStringToObject(o, "pos", json_enum_name(POS_NAMES, 3, c->pos));
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON_AddStringToObject(o, "mlp", json_enum_name(MLP_NAMES, 3, c->mlp));
    cJSON_AddBoolToObject(o, "causal", c->causal);
    cJSON_AddBoolToObject(o, "bias", c->bias);
    cJSON_AddStringToObject(o, "head", json_enum_name(HEAD_NAMES, 4, c->head));
    cJSON_AddNumberToObject(o, "n_classes", c->n_classes);
    cJSON_AddStringToObject(o, "input", json_enum_name(INPUT_NAMES, 2, c->input));
    cJSON_AddNumberToObject(o, "image_size", c->image_size);
    cJSON_AddNumberToObject(o, "patch_size", c->patch_size);
    cJSON_AddNumberToObject(o, "channels", c->channels);
    cJSON_AddNumberToObject(o, "pixel_mean", c->pixel_mean);
    cJSON_AddNumberToObject(o, "pixel_std", c->pixel_std);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

/* ---- safetensors ----------------------------------------------------------------------- */

#define SAFETENSORS_ACCEPTS                                                                                      \
    "a safetensors file starts with a little-endian u64 header length N (at most 100000000), then N bytes holding " \
    "one JSON object (optionally padded with spaces), then the tensor data (docs/formats.md)"

/* tensor directory order for the tiling check: by begin, then end */
static int cmp_by_offset(const void *a, const void *b) {
    const ckpt_tensor *x = *(const ckpt_tensor *const *)a, *y = *(const ckpt_tensor *const *)b;
    const char *xb = x->data, *yb = y->data;
    if (xb != yb) return xb < yb ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp((*(const ckpt_tensor *const *)a)->name, (*(const ckpt_tensor *const *)b)->name);
}

/* a data_offsets entry: an integer in [0, 2^53] */
static int json_offset(const cJSON *x, uint64_t *out) {
    if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0) || x->valuedouble > 9007199254740992.0 ||
        x->valuedouble != floor(x->valuedouble))
        return -1;
    *out = (uint64_t)x->valuedouble;
    return 0;
}

/* Like the safetensors library: the tensors, sorted by offset, tile the data section exactly —
 * no overlap (two names for one byte), no gap, nothing after the last tensor; names unique. */
static pe_status safetensors_check_layout(ckpt_file *ck, int first, const char *path, const unsigned char *data0,
                                          size_t data_len, pe_err *err) {
    int n = ck->n_tensors - first;
    const ckpt_tensor **v = pe_malloc((size_t)(n ? n : 1) * sizeof *v, err, "safetensors tensor index");
    if (!v) return PE_ERR_INTERNAL;
    for (int i = 0; i < n; i++) v[i] = &ck->tensors[first + i];
    pe_status st = PE_OK;
    qsort(v, (size_t)n, sizeof *v, cmp_by_name);
    for (int i = 1; i < n && !st; i++)
        if (!strcmp(v[i - 1]->name, v[i]->name))
            st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\" appears twice in the safetensors header; the file is corrupt",
                         path, v[i]->name);
    qsort(v, (size_t)n, sizeof *v, cmp_by_offset);
    /* overlaps first (the defect when a tensor was pointed at another's bytes), then gaps */
    size_t at = 0;
    const ckpt_tensor *prev = NULL;
    for (int i = 0; i < n && !st; i++) {
        size_t b = (size_t)((const unsigned char *)v[i]->data - data0), e = b + v[i]->nbytes;
        if (b < at)
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s: tensors \"%s\" (data_offsets [%zu, %zu]) and \"%s\" ([%zu, %zu]) overlap; in a safetensors "
                         "file every byte of the data section belongs to exactly one tensor: the header is corrupt",
                         path, prev->name, (size_t)((const unsigned char *)prev->data - data0),
                         (size_t)((const unsigned char *)prev->data - data0) + prev->nbytes, v[i]->name, b, e);
        if (e > at) at = e, prev = v[i];
    }
    at = 0;
    for (int i = 0; i < n && !st; i++) {
        size_t b = (size_t)((const unsigned char *)v[i]->data - data0);
        if (b > at)
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s: bytes [%zu, %zu) of the data section belong to no tensor (a gap before \"%s\"); a safetensors "
                         "file's tensors cover its data section without gaps: the header is corrupt", path, at, b,
                         v[i]->name);
        at = b + v[i]->nbytes;
    }
    if (!st && at != data_len)
        st = pe_fail(err, PE_ERR_INPUT,
                     "%s: %zu bytes after the last tensor (the tensors end at data offset %zu, the data section holds %zu "
                     "bytes); a safetensors file ends with its last tensor: trailing bytes were appended or the header is "
                     "wrong", path, data_len - at, at, data_len);
    free(v);
    return st;
}

/* The tensors of one safetensors file p (size bytes) at `path`, appended to ck's directory with
 * shard index `shard`; *cap: the directory's capacity. */
static pe_status safetensors_read_header(ckpt_file *ck, int shard, const char *path, const unsigned char *p, size_t size,
                                         int *cap, pe_err *err) {
    uint64_t hlen = 0;
    char     why[320];
    int      first = ck->n_tensors;
    if (sniff_safetensors(p, size, &hlen, why, sizeof why))
        return pe_fail(err, PE_ERR_INPUT, "%s is not a safetensors checkpoint: %s; %s", path, why,
                       SAFETENSORS_ACCEPTS);
    size_t data0 = 8 + (size_t)hlen, data_len = size - data0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)p + 8, (size_t)hlen, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return pe_fail(err, PE_ERR_INPUT, "%s is not a safetensors checkpoint: its %llu-byte header is not a JSON object "
                       "(parse error at header byte %lld); %s", path, (unsigned long long)hlen,
                       !root && cJSON_GetErrorPtr() ? (long long)(cJSON_GetErrorPtr() - (const char *)p - 8) : -1LL,
                       SAFETENSORS_ACCEPTS);
    }
    for (const char *q = end; q < (const char *)p + data0; q++)
        if (*q != ' ') {
            size_t off = (size_t)(q - (const char *)p - 8);
            cJSON_Delete(root);
            return pe_fail(err, PE_ERR_INPUT,
                           "%s: the safetensors header's JSON object ends at header byte %zu, but byte %zu after it is "
                           "0x%02x, not a padding space (only spaces may follow the object): the header is corrupt",
                           path, (size_t)(end - (const char *)p - 8), off, (unsigned)(unsigned char)*q);
        }
    pe_status st = PE_OK;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (strcmp(it->string, "__metadata__") == 0) continue;
        if (strlen(it->string) >= sizeof ck->tensors[0].name) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: tensor name too long: %.60s...", path, it->string);
            break;
        }
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\": header entry needs dtype, shape and data_offsets [begin, end]",
                         path, it->string);
            break;
        }
        ckpt_dtype dtype;
        if (!strcmp(dt->valuestring, "F32")) dtype = CKPT_DTYPE_F32;
        else if (!strcmp(dt->valuestring, "F16")) dtype = CKPT_DTYPE_F16;
        else if (!strcmp(dt->valuestring, "BF16")) dtype = CKPT_DTYPE_BF16;
        else if (!strcmp(dt->valuestring, "BOOL")) dtype = CKPT_DTYPE_BOOL; /* export buffers (model_init) */
        else if (!strcmp(dt->valuestring, "U8")) dtype = CKPT_DTYPE_U8;
        else {
            st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\" has dtype %s; pathens reads F32, F16 and BF16; convert it",
                         path, it->string, dt->valuestring);
            break;
        }
        int ndim = cJSON_GetArraySize(sh);
        if (ndim > 4) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\" has %d dims; at most 4 supported", path, it->string, ndim);
            break;
        }
        int64_t shape[4] = {0}, numel = 1;
        for (int d = 0; d < ndim && !st; d++) {
            const cJSON *x = cJSON_GetArrayItem(sh, d);
            if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0) || x->valuedouble > 1e12 || x->valuedouble != floor(x->valuedouble))
                st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\": bad shape entry %d (dims are integers in [0, 10^12])",
                             path, it->string, d);
            else
                shape[d] = (int64_t)x->valuedouble;
        }
        if (st) break;
        if (ckpt_numel(shape, ndim, (int64_t)1 << 40, &numel)) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\" too large: its shape has more than 2^40 elements", path,
                         it->string);
            break;
        }
        uint64_t bo, eo;
        if (json_offset(cJSON_GetArrayItem(of, 0), &bo) || json_offset(cJSON_GetArrayItem(of, 1), &eo) || eo < bo) {
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s: tensor \"%s\": data_offsets must be [begin, end], integers with 0 <= begin <= end", path,
                         it->string);
            break;
        }
        if (eo > data_len) {
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s: tensor \"%s\": data_offsets [%llu, %llu] out of range: the data section holds %zu bytes; "
                         "the file is truncated or its header is wrong", path, it->string, (unsigned long long)bo,
                         (unsigned long long)eo, data_len);
            break;
        }
        size_t nbytes = (size_t)(eo - bo);
        size_t want   = (size_t)numel * ckpt_dtype_size(dtype); /* <= 2^42 */
        if (nbytes != want) {
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s: tensor \"%s\": shape and dtype %s need %zu bytes but data_offsets span %zu", path,
                         it->string, dt->valuestring, want, nbytes);
            break;
        }
        if (ck->n_tensors >= CKPT_MAX_TENSORS) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: more than %d tensors", path, CKPT_MAX_TENSORS);
            break;
        }
        ckpt_tensor *t = ckpt_add_tensor(ck, cap, it->string, dtype, ndim, shape, p + data0 + (size_t)bo, nbytes, err);
        if (!t) {
            st = PE_ERR_INTERNAL;
            break;
        }
        t->shard = shard;
    }
    cJSON_Delete(root);
    if (!st) st = safetensors_check_layout(ck, first, path, p + data0, data_len, err);
    return st;
}

/* A ViT folder's preprocessor_config.json (beside config.json; absent: ViTImageProcessor's 0.5 /
 * 0.5): pixels become (x * rescale_factor - image_mean) / image_std, one value for all channels
 * (pixel_mean / pixel_std) or one per channel (pixel_mean_c / pixel_std_c); images are not
 * resized: they must be image_size. */
static pe_status ckpt_read_preprocessor(model_config *c, const char *config_json, pe_err *err) {
    char path[4096];
    const char *slash = strrchr(config_json, '/');
    if (slash) snprintf(path, sizeof path, "%.*s/preprocessor_config.json", (int)(slash - config_json), config_json);
    else snprintf(path, sizeof path, "preprocessor_config.json");
    struct stat sst;
    if (stat(path, &sst) != 0) return PE_OK;
    char *text = NULL;
    pe_status st = pe_read_file(path, &text, NULL, err);
    if (st) return st;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return pe_fail(err, PE_ERR_INPUT, "%s: not a JSON object; fix or remove it (absent = mean 0.5, std 0.5)", path);
    }
    float rescale = 1.0f / 255.0f, v[2][MODEL_MAX_CHANNELS];
    int   do_norm = 1, do_rescale = 1;
    st = hf_float(root, "rescale_factor", rescale, &rescale, path, err);
    if (!st) st = hf_bool(root, "do_normalize", 1, &do_norm, path, err);
    if (!st) st = hf_bool(root, "do_rescale", 1, &do_rescale, path, err);
    if (!st && (!do_rescale || fabsf(rescale * 255.0f - 1.0f) > 1e-6f))
        st = pe_fail(err, PE_ERR_INPUT, "%s: rescale_factor %g (do_rescale %d): pathens scales pixels by 1/255 only",
                     path, (double)rescale, do_rescale);
    const char *keys[2] = {"image_mean", "image_std"};
    int         nv[2] = {1, 1};
    for (int k = 0; k < 2 && !st; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, keys[k]);
        int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
        if (!a || cJSON_IsNull(a)) {
            v[k][0] = 0.5f;
        } else if (cJSON_IsNumber(a)) {
            st = json_get_float(a, &v[k][0], path, err);
        } else if (n != 1 && n != c->channels) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: \"%s\" must be a number or a list of 1 or num_channels (%d) numbers", path,
                         keys[k], c->channels);
        } else {
            nv[k] = n;
            for (int i = 0; i < n && !st; i++) st = json_get_float(cJSON_GetArrayItem(a, i), &v[k][i], path, err);
        }
    }
    cJSON_Delete(root);
    if (st) return st;
    /* one value for every channel, or one per channel (DeiT: ImageNet's mean and std) */
    c->pixel_mean = do_norm ? v[0][0] : 0.0f;
    c->pixel_std  = do_norm ? v[1][0] : 1.0f;
    for (int ch = 0; do_norm && ch < c->channels; ch++) {
        c->pixel_mean_c[ch] = v[0][nv[0] > 1 ? ch : 0];
        c->pixel_std_c[ch]  = v[1][nv[1] > 1 ? ch : 0];
        if (c->pixel_mean_c[ch] != c->pixel_mean || c->pixel_std_c[ch] != c->pixel_std) c->pixel_per_channel = 1;
    }
    if (!c->pixel_per_channel) memset(c->pixel_mean_c, 0, sizeof c->pixel_mean_c), memset(c->pixel_std_c, 0, sizeof c->pixel_std_c);
    return model_check_config(c, path, err);
}

/* the architecture from config.json: config_path, else config.json in `dir` */
static pe_status ckpt_read_config(ckpt_file *ck, const char *dir, const char *config_path, pe_err *err) {

    char cpath[4096];
    if (config_path && config_path[0]) snprintf(cpath, sizeof cpath, "%s", config_path);
    else if (dir) snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    else {
        const char *slash = strrchr(ck->path, '/');
        if (slash) snprintf(cpath, sizeof cpath, "%.*s/config.json", (int)(slash - ck->path), ck->path);
        else snprintf(cpath, sizeof cpath, "config.json");
    }
    struct stat cst;
    if (stat(cpath, &cst) == 0 && !S_ISREG(cst.st_mode))
        return pe_fail(err, PE_ERR_INPUT, "%s: the model's config %s is %s, not a config.json file; set [model] config to "
                       "the JSON file", ck->path, cpath, S_ISDIR(cst.st_mode) ? "a folder" : "not a regular file");
    char *text = NULL;
    if (pe_read_file(cpath, &text, NULL, err) != PE_OK)
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: a safetensors model needs a config.json describing its architecture; cannot read %s "
                       "(put it beside the model or set [model] config)", ck->path, cpath);
    snprintf(ck->config_path, sizeof ck->config_path, "%s", cpath);
    pe_status st = ckpt_parse_config_json(&ck->cfg, &ck->hf_family, text, cpath, err);
    free(text);
    if (!st && ck->hf_family == CKPT_HF_VIT) st = ckpt_read_preprocessor(&ck->cfg, cpath, err);
    return st;
}

/* a shard of a sharded folder opened on its own would read as a model with missing tensors: say
 * what it is instead (the index beside it names it) */
static pe_status safetensors_check_not_shard(const ckpt_file *ck, pe_err *err) {
    const char *slash = strrchr(ck->path, '/'), *base = slash ? slash + 1 : ck->path;
    char index[4200], quoted[4200];
    snprintf(index, sizeof index, "%.*smodel.safetensors.index.json", slash ? (int)(slash - ck->path + 1) : 0, ck->path);
    snprintf(quoted, sizeof quoted, "\"%s\"", base);
    if (!pe_is_file(index)) return PE_OK;
    char *text = NULL;
    pe_err ignore = {0};
    if (pe_read_file(index, &text, NULL, &ignore) != PE_OK) return PE_OK;
    int listed = strstr(text, quoted) != NULL;
    free(text);
    if (!listed) return PE_OK;
    return pe_fail(err, PE_ERR_INPUT,
                   "%s is one shard of a sharded model (%s lists it); set [model] path to the folder %.*s, which "
                   "pathens reads with all its shards", ck->path, index, slash ? (int)(slash - ck->path) : 1,
                   slash ? ck->path : ".");
}

static pe_status ckpt_open_safetensors(ckpt_file *ck, const char *config_path, pe_err *err) {
    snprintf(ck->format, sizeof ck->format, "safetensors");
    pe_status sst = safetensors_check_not_shard(ck, err);
    if (sst) return sst;
    int cap = 0;
    pe_status st = safetensors_read_header(ck, 0, ck->path, ck->map, ck->map_size, &cap, err);
    return st ? st : ckpt_read_config(ck, NULL, config_path, err);
}

/* ---- Hugging Face model folders ---------------------------------------------------------- */

/* map one safetensors file of a folder read-only; `index` names the index file that lists it
 * (NULL for a lone model.safetensors) */
static pe_status folder_map(const char *path, const char *index, void **map, size_t *size, pe_err *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        if (index)
            return pe_fail(err, PE_ERR_INPUT,
                           "%s: cannot open this shard named in %s (%s); the download or copy of the model folder is "
                           "incomplete: fetch every file the index names", path, index, strerror(errno));
        return pe_fail(err, PE_ERR_INPUT, "%s: cannot open (%s)", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return pe_fail(err, PE_ERR_INPUT, "%s: not a regular file%s%s; the model folder is damaged", path,
                       index ? ", named in " : "", index ? index : "");
    }
    if (st.st_size == 0) {
        close(fd);
        return pe_fail(err, PE_ERR_INPUT, "%s: empty file%s%s; the shard was not written or downloaded completely", path,
                       index ? " named in " : "", index ? index : "");
    }
    *size = (size_t)st.st_size;
    *map  = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (*map == MAP_FAILED) {
        *map = NULL;
        return pe_fail(err, PE_ERR_INTERNAL, "%s: mmap failed (%s)", path, strerror(errno));
    }
    return PE_OK;
}

/* a shard name from the index: a plain file name in the folder (no path, no "..") */
static int shard_name_ok(const char *n) {
    size_t len = strlen(n);
    return len > 0 && len < sizeof ((ckpt_shard *)0)->name && !strchr(n, '/') && strcmp(n, ".") && strcmp(n, "..");
}

/* model.safetensors.index.json: {"metadata": {...}, "weight_map": {tensor: shard file}}. Every
 * shard is mapped and read; then every tensor must be in the shard the index names, and every
 * tensor of a shard must be in the index. */
static pe_status folder_open_index(ckpt_file *ck, const char *index_path, pe_err *err) {
    char *text = NULL;
    pe_status st = pe_read_file(index_path, &text, NULL, err);
    if (st) return st;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(root) || !cJSON_IsObject(wm)) {
        cJSON_Delete(root);
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: not a safetensors index (a JSON object with a \"weight_map\" object {tensor name: shard file}); "
                       "re-save the model with save_pretrained", index_path);
    }
    const cJSON *it;
    int n_map = 0;
    cJSON_ArrayForEach(it, wm) {
        n_map++;
        if (!cJSON_IsString(it) || !shard_name_ok(it->valuestring)) {
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s: weight_map[\"%s\"] must be the file name of a shard in the folder (no path, no \"..\"); "
                         "the index is damaged", index_path, it->string);
            break;
        }
        int known = 0;
        for (int i = 0; i < ck->n_shards && !known; i++) known = !strcmp(ck->shards[i].name, it->valuestring);
        if (known) continue;
        ckpt_shard *ns = realloc(ck->shards, (size_t)(ck->n_shards + 1) * sizeof *ns);
        if (!ns) {
            st = pe_fail(err, PE_ERR_INTERNAL, "out of memory listing the shards of %s", index_path);
            break;
        }
        ck->shards = ns;
        memset(&ck->shards[ck->n_shards], 0, sizeof *ns);
        snprintf(ck->shards[ck->n_shards++].name, sizeof ns->name, "%s", it->valuestring);
    }
    if (!st && n_map == 0)
        st = pe_fail(err, PE_ERR_INPUT, "%s: weight_map is empty; the index names no tensor", index_path);
    int cap = 0;
    char spath[4352];
    for (int i = 0; !st && i < ck->n_shards; i++) {
        ckpt_shard *sh = &ck->shards[i];
        snprintf(spath, sizeof spath, "%s/%s", ck->path, sh->name);
        st = folder_map(spath, index_path, &sh->map, &sh->size, err);
        if (!st) {
            int before = ck->n_tensors;
            st = safetensors_read_header(ck, i, spath, sh->map, sh->size, &cap, err);
            sh->n_tensors = ck->n_tensors - before;
        }
    }
    if (!st) {
        ck->map      = ck->shards[0].map;
        ck->map_size = ck->shards[0].size;
    }
    /* the index and the shards agree, tensor by tensor */
    for (int i = 0; !st && i < ck->n_tensors; i++) {
        const ckpt_tensor *t = &ck->tensors[i];
        const cJSON *where = cJSON_GetObjectItemCaseSensitive(wm, t->name);
        if (!cJSON_IsString(where))
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s/%s holds tensor \"%s\", which %s does not list; the shard and the index come from different "
                         "saves: fetch the folder again", ck->path, ck->shards[t->shard].name, t->name, index_path);
        else if (strcmp(where->valuestring, ck->shards[t->shard].name))
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s/%s holds tensor \"%s\", which %s places in %s; the shards and the index come from "
                         "different saves: fetch the folder again", ck->path, ck->shards[t->shard].name, t->name,
                         index_path, where->valuestring);
    }
    cJSON_ArrayForEach(it, wm) {
        if (st) break;
        int found = 0;
        for (int i = 0; i < ck->n_tensors && !found; i++)
            found = !strcmp(ck->tensors[i].name, it->string) && !strcmp(ck->shards[ck->tensors[i].shard].name, it->valuestring);
        if (!found)
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s names tensor \"%s\" in shard %s, but %s/%s does not hold it; the shard is incomplete or from "
                         "another save: fetch it again", index_path, it->string, it->valuestring, ck->path, it->valuestring);
    }
    cJSON_Delete(root);
    return st;
}

/* A folder as save_pretrained writes it: config.json, then model.safetensors, or
 * model.safetensors.index.json and its shards. */
static pe_status ckpt_open_folder(ckpt_file *ck, const char *dir, const char *config_path, pe_err *err) {
    snprintf(ck->path, sizeof ck->path, "%s", dir);
    size_t n = strlen(ck->path);
    while (n > 1 && ck->path[n - 1] == '/') ck->path[--n] = 0;
    snprintf(ck->format, sizeof ck->format, "safetensors");
    ck->is_dir = 1;
    char cfg[4352], single[4352], index[4352], bin[4352];
    snprintf(cfg, sizeof cfg, "%s/config.json", ck->path);
    snprintf(single, sizeof single, "%s/model.safetensors", ck->path);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", ck->path);
    snprintf(bin, sizeof bin, "%s/pytorch_model.bin", ck->path);
    if (!(config_path && config_path[0]) && !pe_is_file(cfg))
        return pe_fail(err, PE_ERR_INPUT,
                       "%s is a folder but not a model folder: it has no config.json (a save_pretrained folder holds "
                       "config.json and model.safetensors, or model.safetensors.index.json and its shards); set [model] "
                       "path to a model folder or to the model file in it (or [model] config to its config.json)",
                       ck->path);
    pe_status st = PE_OK;
    if (pe_is_file(single)) {
        ck->shards = pe_calloc(1, sizeof *ck->shards, err, "shard table");
        if (!ck->shards) return PE_ERR_INTERNAL;
        ck->n_shards = 1;
        snprintf(ck->shards[0].name, sizeof ck->shards[0].name, "model.safetensors");
        st = folder_map(single, NULL, &ck->shards[0].map, &ck->shards[0].size, err);
        if (st) return st;
        ck->map      = ck->shards[0].map;
        ck->map_size = ck->shards[0].size;
        int cap = 0;
        st = safetensors_read_header(ck, 0, single, ck->map, ck->map_size, &cap, err);
        ck->shards[0].n_tensors = ck->n_tensors;
    } else if (pe_is_file(index)) {
        st = folder_open_index(ck, index, err);
    } else {
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: no model.safetensors and no model.safetensors.index.json in this folder%s; pathens reads "
                       "safetensors weights (save_pretrained(..., safe_serialization=True) writes them)", ck->path,
                       pe_is_file(bin) ? " (only pytorch_model.bin, a pickle pathens does not read: convert it)" : "");
    }
    if (!st) st = ckpt_read_config(ck, ck->path, config_path, err);
    return st;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

pe_status ckpt_open(ckpt_file *ck, const char *path, const char *format, const char *config_path, pe_err *err) {
    memset(ck, 0, sizeof *ck);
    if (pe_is_dir(path)) {
        pe_status st = PE_OK;
        if (format && format[0] && strcmp(format, "auto") && strcmp(format, "safetensors"))
            st = pe_fail(err, PE_ERR_INPUT, "%s is a model folder (safetensors + config.json); [model] format = '%s' does "
                         "not fit it: set format = auto", path, format);
        if (!st) st = ckpt_open_folder(ck, path, config_path, err);
        if (st) ckpt_close(ck);
        return st;
    }
    pe_status st = ckpt_map_file(ck, path, err);
    if (st) return st;
    char      why[768];
    ckpt_kind kind = ckpt_sniff(ck->map, ck->map_size, why, sizeof why);
    int       want_st = 0;
    if (!format || !format[0] || !strcmp(format, "auto")) {
        if (kind == CKPT_KIND_SAFETENSORS) want_st = 1;
        else if (kind == CKPT_KIND_LLAMA2C_V1 || (kind == CKPT_KIND_LLAMA2C_V0 && ck->map_size >= 28)) want_st = 0;
        /* named .safetensors but not sane: the safetensors reader says why (truncated, ...) */
        else if (ends_with(path, ".safetensors")) want_st = 1;
        else if (kind == CKPT_KIND_LLAMA2C_V0) want_st = 0; /* a plausible but truncated v0 header */
        else {
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s is not a llama2.c / safetensors checkpoint: %s. pathens reads llama2.c v1 (magic \"ak42\", "
                         "version 1), llama2.c v0 (7 int32 header: positive dims within the limits, file size matching "
                         "it) and safetensors (u64 LE header length, then a JSON object), see docs/formats.md; check "
                         "[model] path", path, why);
            ckpt_close(ck);
            return st;
        }
    } else if (!strcmp(format, "safetensors")) {
        want_st = 1;
    } else if (strcmp(format, "llama2c") != 0) {
        ckpt_close(ck);
        return pe_fail(err, PE_ERR_INPUT, "[model] format = '%s' is not one of: auto, llama2c, safetensors", format);
    } else if (kind == CKPT_KIND_SAFETENSORS) {
        ckpt_close(ck);
        return pe_fail(err, PE_ERR_INPUT,
                       "%s is not a llama2.c checkpoint: it is a safetensors file; set [model] format = auto or "
                       "safetensors", path);
    }
    st = want_st ? ckpt_open_safetensors(ck, config_path, err) : ckpt_open_llama2c(ck, err);
    if (st) ckpt_close(ck);
    return st;
}

pe_status ckpt_write_safetensors(const char *path, int n, const char *const *names, const int *ndims,
                                 const int64_t (*shapes)[4], const float *const *data, pe_err *err) {
    cJSON *h = cJSON_CreateObject();
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "dtype", "F32");
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        size_t numel = 1;
        for (int d = 0; d < ndims[i]; d++) {
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)shapes[i][d]));
            numel *= (size_t)shapes[i][d];
        }
        cJSON *of = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + 4 * numel)));
        off += 4 * numel;
        cJSON_AddItemToObject(h, names[i], t);
    }
    char *hs = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!hs) return pe_fail(err, PE_ERR_INTERNAL, "out of memory writing %s", path);
    size_t hl = strlen(hs), padded = (hl + 7) & ~(size_t)7;
    size_t total = 8 + padded + off;
    unsigned char *buf = pe_malloc(total, err, path);
    if (!buf) {
        free(hs);
        return PE_ERR_INTERNAL;
    }
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, hs, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    free(hs);
    size_t at = 8 + padded;
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < ndims[i]; d++) numel *= (size_t)shapes[i][d];
        memcpy(buf + at, data[i], 4 * numel);
        at += 4 * numel;
    }
    pe_status st = pe_write_file_atomic(path, buf, total, err);
    free(buf);
    return st;
}
