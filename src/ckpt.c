/* ckpt.c: llama2.c (v0, v1) and safetensors checkpoints as named tensors over a read-only mmap.
 * See ckpt.h and docs/formats.md. Nothing here trusts a size or offset before checking it
 * against the file size. */
#include "ckpt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LLAMA2C_V1_MAGIC 0x616b3432u /* "ak42" */
#define CKPT_MAX_TENSORS 100000

const char *ckpt_dtype_name(ckpt_dtype d) {
    switch (d) {
    case CKPT_DTYPE_F32: return "F32";
    case CKPT_DTYPE_F16: return "F16";
    case CKPT_DTYPE_BF16: return "BF16";
    }
    return "?";
}

static size_t ckpt_dtype_size(ckpt_dtype d) { return d == CKPT_DTYPE_F32 ? 4 : 2; }

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

void ckpt_close(ckpt_file *ck) {
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
        close(fd);
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

/* ---- llama2.c v0 / v1 ------------------------------------------------------------------ */

/* The 7 header ints as llama2.c writes them. */
typedef struct { int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; } llama2c_header;

static pe_status llama2c_config(model_config *c, const llama2c_header *h, int shared, const char *path,
                                pe_err *err) {
    if (h->dim <= 0 || h->hidden_dim <= 0 || h->n_layers <= 0 || h->n_heads <= 0 || h->n_kv_heads <= 0 ||
        h->vocab_size <= 0 || h->seq_len <= 0)
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: llama2.c header has a non-positive field (dim %d hidden %d layers %d heads %d "
                       "kv_heads %d vocab %d seq_len %d); not a llama2.c checkpoint? set [model] format",
                       path, h->dim, h->hidden_dim, h->n_layers, h->n_heads, h->n_kv_heads, h->vocab_size, h->seq_len);
    memset(c, 0, sizeof *c);
    c->dim        = h->dim;
    c->hidden_dim = h->hidden_dim;
    c->n_layers   = h->n_layers;
    c->n_heads    = h->n_heads;
    c->n_kv_heads = h->n_kv_heads;
    c->vocab_size = h->vocab_size;
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

/* Walk a float pointer through the file in `order` and register each native tensor. */
static pe_status llama2c_register(ckpt_file *ck, size_t offset, const char *const *order, int n_order,
                                  size_t skip_after_idx, size_t skip_floats, pe_err *err) {
    model_tensor_spec specs[1024];
    int n_specs = model_list_tensors(&ck->cfg, NULL, 0);
    if (n_specs > 1024) return pe_fail(err, PE_ERR_INPUT, "%s: too many layers for llama2.c reader", ck->path);
    model_list_tensors(&ck->cfg, specs, n_specs);
    /* expected total size, checked before any pointer is formed */
    size_t need = offset;
    for (int o = 0; o < n_order; o++) {
        for (int s = 0; s < n_specs; s++) {
            const char *nm = specs[s].name;
            /* match "layers.N.<order>" or "<order>" exactly */
            const char *base = nm;
            if (strncmp(nm, "layers.", 7) == 0) base = strchr(nm + 7, '.') + 1;
            if (strcmp(base, order[o]) == 0) need += 4 * (size_t)(specs[s].shape[0] * (specs[s].ndim > 1 ? specs[s].shape[1] : 1));
        }
        if ((size_t)o == skip_after_idx) need += 4 * skip_floats;
    }
    if (need != ck->map_size)
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: file size is %zu bytes but a %s checkpoint with this header needs %zu bytes; "
                       "the file is %s; re-export or re-download it",
                       ck->path, ck->map_size, ck->format, need, ck->map_size < need ? "truncated" : "too long");
    int cap = 0;
    size_t at = offset;
    for (int o = 0; o < n_order; o++) {
        /* all layers of one kind are contiguous: layers.0.x, layers.1.x, ... */
        for (int s = 0; s < n_specs; s++) {
            const char *nm = specs[s].name;
            const char *base = nm;
            if (strncmp(nm, "layers.", 7) == 0) base = strchr(nm + 7, '.') + 1;
            if (strcmp(base, order[o]) != 0) continue;
            size_t nfl = (size_t)(specs[s].shape[0] * (specs[s].ndim > 1 ? specs[s].shape[1] : 1));
            if (!ckpt_add_tensor(ck, &cap, nm, CKPT_DTYPE_F32, specs[s].ndim, specs[s].shape,
                                 (const char *)ck->map + at, nfl * 4, err))
                return PE_ERR_INTERNAL;
            at += nfl * 4;
        }
        if ((size_t)o == skip_after_idx) at += 4 * skip_floats;
    }
    return PE_OK;
}

static pe_status ckpt_open_llama2c(ckpt_file *ck, pe_err *err) {
    const unsigned char *p = ck->map;
    uint32_t magic = 0;
    if (ck->map_size >= 4) memcpy(&magic, p, 4);
    llama2c_header h;
    if (magic == LLAMA2C_V1_MAGIC) {
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
        memcpy(&h, p + 8, sizeof h);
        int shared = p[8 + sizeof h];
        pe_status st = llama2c_config(&ck->cfg, &h, shared, ck->path, err);
        if (st) return st;
        static const char *order_shared[] = {"attn_norm.weight", "mlp_norm.weight", "final_norm.weight", "tok_emb.weight",
                                             "attn.wq.weight",   "attn.wk.weight",  "attn.wv.weight",    "attn.wo.weight",
                                             "mlp.w1.weight",    "mlp.w2.weight",   "mlp.w3.weight",     "lm_head.weight"};
        return llama2c_register(ck, 256, order_shared, 12, (size_t)-1, 0, err);
    }
    snprintf(ck->format, sizeof ck->format, "llama2c-v0");
    if (ck->map_size < sizeof h)
        return pe_fail(err, PE_ERR_INPUT, "%s: %zu bytes is shorter than the 28-byte llama2.c header; truncated file",
                       ck->path, ck->map_size);
    memcpy(&h, p, sizeof h);
    int shared = h.vocab_size > 0;
    if (h.vocab_size < 0) h.vocab_size = -h.vocab_size;
    pe_status st = llama2c_config(&ck->cfg, &h, shared, ck->path, err);
    if (st) return st;
    int    hs          = h.dim / h.n_heads;
    size_t rope_floats = (size_t)h.seq_len * (size_t)(hs / 2) * 2; /* freq_cis_real + freq_cis_imag */
    static const char *order[] = {"tok_emb.weight", "attn_norm.weight", "attn.wq.weight", "attn.wk.weight",
                                  "attn.wv.weight", "attn.wo.weight",   "mlp_norm.weight", "mlp.w1.weight",
                                  "mlp.w2.weight",  "mlp.w3.weight",    "final_norm.weight", "lm_head.weight"};
    return llama2c_register(ck, sizeof h, order, 12, 10, rope_floats, err);
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

static pe_status json_get_float(const cJSON *it, float *out, const char *where, pe_err *err) {
    if (!cJSON_IsNumber(it)) return pe_fail(err, PE_ERR_INPUT, "%s: \"%s\" must be a number", where, it->string);
    *out = (float)it->valuedouble;
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
        } else if (!strcmp(k, "activation_function")) {
            if (!cJSON_IsString(it)) return pe_fail(err, PE_ERR_INPUT, "%s: activation_function must be a string", where);
            if (!strcmp(it->valuestring, "gelu_new") || !strcmp(it->valuestring, "gelu_pytorch_tanh"))
                c->mlp = MODEL_MLP_GELU_TANH;
            else if (!strcmp(it->valuestring, "gelu"))
                c->mlp = MODEL_MLP_GELU;
            else
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
    c->hidden_dim = n_inner > 0 ? n_inner : 4 * c->dim;
    return model_check_config(c, where, err);
}

pe_status ckpt_parse_config_json(model_config *c, int *hf_gpt2, const char *text, const char *where, pe_err *err) {
    *hf_gpt2 = 0;
    cJSON *root = cJSON_Parse(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return pe_fail(err, PE_ERR_INPUT, "%s: not a JSON object (parse error near '%.20s')", where,
                       cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "?");
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (cJSON_IsString(mt)) {
        pe_status st;
        if (strcmp(mt->valuestring, "gpt2") == 0) {
            *hf_gpt2 = 1;
            st = config_from_hf_gpt2(c, root, where, err);
        } else {
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s: Hugging Face model_type \"%s\" is not supported (gpt2 is; or write a native "
                         "pathens config.json, docs/formats.md)", where, mt->valuestring);
        }
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

static pe_status ckpt_open_safetensors(ckpt_file *ck, const char *config_path, pe_err *err) {
    snprintf(ck->format, sizeof ck->format, "safetensors");
    const unsigned char *p = ck->map;
    if (ck->map_size < 8)
        return pe_fail(err, PE_ERR_INPUT, "%s: %zu bytes, shorter than the 8-byte safetensors header length; truncated",
                       ck->path, ck->map_size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > ck->map_size - 8)
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: safetensors header length %llu runs past the end of the file (%zu bytes); the file is "
                       "truncated or not safetensors", ck->path, (unsigned long long)hlen, ck->map_size);
    size_t data0 = 8 + (size_t)hlen, data_len = ck->map_size - data0;
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return pe_fail(err, PE_ERR_INPUT, "%s: safetensors header is not a JSON object", ck->path);
    }
    int cap = 0;
    pe_status st = PE_OK;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (strcmp(it->string, "__metadata__") == 0) continue;
        if (strlen(it->string) >= sizeof ck->tensors[0].name) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: tensor name too long: %.60s...", ck->path, it->string);
            break;
        }
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\": header entry needs dtype, shape and data_offsets [begin, end]",
                         ck->path, it->string);
            break;
        }
        ckpt_dtype dtype;
        if (!strcmp(dt->valuestring, "F32")) dtype = CKPT_DTYPE_F32;
        else if (!strcmp(dt->valuestring, "F16")) dtype = CKPT_DTYPE_F16;
        else if (!strcmp(dt->valuestring, "BF16")) dtype = CKPT_DTYPE_BF16;
        else {
            st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\" has dtype %s; pathens reads F32, F16 and BF16; convert it",
                         ck->path, it->string, dt->valuestring);
            break;
        }
        int ndim = cJSON_GetArraySize(sh);
        if (ndim > 4) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\" has %d dims; at most 4 supported", ck->path, it->string, ndim);
            break;
        }
        int64_t shape[4] = {0}, numel = 1;
        for (int d = 0; d < ndim && !st; d++) {
            const cJSON *x = cJSON_GetArrayItem(sh, d);
            if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 1e12 || x->valuedouble != floor(x->valuedouble))
                st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\": bad shape entry %d", ck->path, it->string, d);
            else {
                shape[d] = (int64_t)x->valuedouble;
                numel *= shape[d];
                if (numel > ((int64_t)1 << 40)) st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\" too large", ck->path, it->string);
            }
        }
        if (st) break;
        const cJSON *b = cJSON_GetArrayItem(of, 0), *e = cJSON_GetArrayItem(of, 1);
        if (!cJSON_IsNumber(b) || !cJSON_IsNumber(e) || b->valuedouble < 0 || e->valuedouble < b->valuedouble) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\": data_offsets must be [begin, end] with 0 <= begin <= end",
                         ck->path, it->string);
            break;
        }
        double bd = b->valuedouble, ed = e->valuedouble;
        if (ed > (double)data_len) {
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s: tensor \"%s\": data_offsets [%.0f, %.0f] out of range: the data section holds %zu bytes; "
                         "the file is truncated or its header is wrong", ck->path, it->string, bd, ed, data_len);
            break;
        }
        size_t nbytes = (size_t)(ed - bd);
        size_t want = (size_t)numel * ckpt_dtype_size(dtype);
        if (nbytes != want) {
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s: tensor \"%s\": shape and dtype %s need %zu bytes but data_offsets span %zu", ck->path,
                         it->string, dt->valuestring, want, nbytes);
            break;
        }
        if (ck->n_tensors >= CKPT_MAX_TENSORS) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: more than %d tensors", ck->path, CKPT_MAX_TENSORS);
            break;
        }
        if (!ckpt_add_tensor(ck, &cap, it->string, dtype, ndim, shape, p + data0 + (size_t)bd, nbytes, err)) {
            st = PE_ERR_INTERNAL;
            break;
        }
    }
    cJSON_Delete(root);
    if (st) return st;

    /* architecture from config.json */
    char cpath[4096];
    if (config_path && config_path[0]) {
        snprintf(cpath, sizeof cpath, "%s", config_path);
    } else {
        const char *slash = strrchr(ck->path, '/');
        if (slash) snprintf(cpath, sizeof cpath, "%.*s/config.json", (int)(slash - ck->path), ck->path);
        else snprintf(cpath, sizeof cpath, "config.json");
    }
    char *text = NULL;
    if (pe_read_file(cpath, &text, NULL, err) != PE_OK)
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: a safetensors model needs a config.json describing its architecture; cannot read %s "
                       "(put it beside the model or set [model] config)", ck->path, cpath);
    st = ckpt_parse_config_json(&ck->cfg, &ck->hf_gpt2, text, cpath, err);
    free(text);
    return st;
}

pe_status ckpt_open(ckpt_file *ck, const char *path, const char *format, const char *config_path, pe_err *err) {
    memset(ck, 0, sizeof *ck);
    pe_status st = ckpt_map_file(ck, path, err);
    if (st) return st;
    int want_st = 0;
    if (!format || !format[0] || !strcmp(format, "auto")) {
        const unsigned char *p = ck->map;
        uint32_t magic = 0;
        if (ck->map_size >= 4) memcpy(&magic, p, 4);
        size_t n = strlen(path);
        if (magic == LLAMA2C_V1_MAGIC) want_st = 0;
        else if (n > 12 && !strcmp(path + n - 12, ".safetensors")) want_st = 1;
        else if (ck->map_size > 9 && p[8] == '{') want_st = 1;
        else want_st = 0;
    } else if (!strcmp(format, "safetensors")) {
        want_st = 1;
    } else if (strcmp(format, "llama2c") != 0) {
        ckpt_close(ck);
        return pe_fail(err, PE_ERR_INPUT, "[model] format = '%s' is not one of: auto, llama2c, safetensors", format);
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
