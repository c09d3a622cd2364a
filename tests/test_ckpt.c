/* test_ckpt.c: checkpoints end to end.
 *   - safetensors round trip of random native models for every architecture switch: every tensor is
 *     bound to the right view, the sgemm path equals the naive path, causal models equal the
 *     token-by-token loop, padded sequences equal the same sequence alone;
 *   - a Hugging Face GPT-2 file (Conv1D weights, fused c_attn, attn.bias buffers, HF config.json)
 *     gives the same logits as the same weights written as a native model;
 *   - F16 / BF16 conversion (exhaustive), mixed-dtype and misaligned files;
 *   - bad input: every broken file is refused with PE_ERR_INPUT and a message naming the file
 *     and the problem, never a crash (run under ASan + UBSan with -DPATHENS_SANITIZE=ON);
 *   - Hugging Face model folders: a llama folder (q/k rows permuted as transformers converts them,
 *     rotate_half RoPE) computes what the native model computes, one file or shards alike; every
 *     broken folder (unknown model_type, missing / extra tensor, wrong shape, bad index, missing or
 *     truncated shard) refused; RoPE pair styles, partial rotary and llama3 scaling; GPT-NeoX's fused
 *     query_key_value re-laid out. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "kernels.h"
#include "model.h"
#include "train.h"

/* ---- small helpers ------------------------------------------------------------------------- */

static void assert_contains(const char *haystack, const char *needle) {
    if (!strstr(haystack, needle)) fail_msg("message '%s' does not contain '%s'", haystack, needle);
}

static uint64_t lcg_next(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* a fresh folder PATHENS_TEST_TMP/ckpt-<tag> (copied out of tu_tmp_dir's rotating buffers) */
static void tmp_dir(char *out, size_t n, const char *tag) {
    char t[128];
    snprintf(t, sizeof t, "ckpt-%s", tag);
    snprintf(out, n, "%s", tu_tmp_dir(t));
    char p[4200];
    snprintf(p, sizeof p, "%s/model.safetensors", out);
    unlink(p);
    snprintf(p, sizeof p, "%s/config.json", out);
    unlink(p);
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void *read_bytes(const char *path, size_t *n) {
    char  *buf = NULL;
    pe_err err = {0};
    if (pe_read_file(path, &buf, n, &err) != PE_OK) fail_msg("%s", err.msg);
    return buf;
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

static void write_config(const char *dir, const model_config *c) {
    char  path[4200];
    char *json = ckpt_config_to_json(c);
    assert_non_null(json);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, json);
    free(json);
}

static float max_abs(const float *x, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (!(a <= m)) m = a;
    }
    return m;
}

/* |a - b| <= rel * max(1, max|b|) */
static void check_logits(const float *a, const float *b, size_t n, float rel, const char *what) {
    float scale = max_abs(b, n);
    if (scale < 1.0f) scale = 1.0f;
    float d = tu_max_abs_diff(a, b, n);
    if (!(d <= rel * scale)) fail_msg("%s: max |diff| = %g > %g (logit scale %g)", what, (double)d, (double)(rel * scale), (double)scale);
}

/* the same over the valid positions [0, lens[b]) of each sequence of (B, T, V) logits only: the
 * forward leaves positions past a sequence's length unwritten */
static void check_valid_logits(const float *a, const float *b, const int *lens, int B, int T, int V, float rel,
                               const char *what) {
    for (int s = 0; s < B; s++) {
        char w[200];
        snprintf(w, sizeof w, "%s (sequence %d, len %d)", what, s, lens[s]);
        check_logits(a + (size_t)s * T * V, b + (size_t)s * T * V, (size_t)lens[s] * V, rel, w);
    }
}

/* ---- a hand-rolled safetensors writer: any dtype string, misaligned data, forged offsets ---- */

typedef struct {
    char        name[96];
    const char *dtype;      /* written as is: "F32", "F16", "BF16", "I8", ... */
    int         ndim;
    int64_t     shape[6];
    const void *data;
    size_t      nbytes;
    int         forge;      /* write forged_offsets instead of the real ones */
    double      forged_offsets[2];
} raw_tensor;

/* misalign: 0 pads the header so the data starts 8-aligned; 1 makes (8 + header length) % 4 == 1.
 * hlen_override != 0 is written as the header length instead of the real one. */
static void write_raw_safetensors(const char *path, const raw_tensor *t, int n, int misalign, uint64_t hlen_override) {
    size_t cap = 4096 + (size_t)n * 256, len = 0;
    char  *h   = malloc(cap);
    assert_non_null(h);
    len += (size_t)snprintf(h + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(h + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name, t[i].dtype);
        for (int d = 0; d < t[i].ndim; d++) len += (size_t)snprintf(h + len, cap - len, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        if (t[i].forge)
            len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%.0f,%.0f]}", t[i].forged_offsets[0],
                                    t[i].forged_offsets[1]);
        else
            len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off, off + t[i].nbytes);
        off += t[i].nbytes;
        assert_true(len + 512 < cap);
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    while (misalign ? (8 + len) % 4 != 1 : (8 + len) % 8 != 0) h[len++] = ' ';
    size_t         total = 8 + len + off;
    unsigned char *buf   = malloc(total);
    assert_non_null(buf);
    uint64_t hl = hlen_override ? hlen_override : (uint64_t)len;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, h, len);
    size_t at = 8 + len;
    for (int i = 0; i < n; i++) {
        if (t[i].nbytes) memcpy(buf + at, t[i].data, t[i].nbytes);
        at += t[i].nbytes;
    }
    write_bytes(path, buf, total);
    free(buf);
    free(h);
}

/* float <-> half / bfloat16 for building test files (values are pre-rounded so this is exact) */
static uint16_t f32_to_bf16_rne(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    b += 0x7fffu + ((b >> 16) & 1u);
    return (uint16_t)(b >> 16);
}

static float round_to_bf16(float x) { return ckpt_bf16_to_f32(f32_to_bf16_rne(x)); }

/* truncating float -> half for |x| in the normal half range; tiny values flush to (signed) zero */
static uint16_t f32_to_f16_trunc(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    uint16_t sign = (uint16_t)((b >> 16) & 0x8000u);
    int      e    = (int)((b >> 23) & 0xff) - 127 + 15;
    if (e <= 0) return sign;
    assert_true(e < 31);
    return (uint16_t)(sign | (uint16_t)(e << 10) | (uint16_t)((b >> 13) & 0x3ffu));
}

/* raw_tensor entries for tensors t, each encoded as dtypes[i] ("F32", "F16", "BF16"); the F16/BF16
 * values of t are first replaced by their rounded values (so t holds exactly what the file holds).
 * *blobs receives the encoded buffers (free with free_blobs). */
static raw_tensor *encode_tensors(tu_tensors *t, const char *const *dtypes, void ***blobs) {
    raw_tensor *r = calloc((size_t)t->n, sizeof *r);
    *blobs        = calloc((size_t)t->n, sizeof **blobs);
    assert_non_null(r);
    assert_non_null(*blobs);
    for (int i = 0; i < t->n; i++) {
        size_t numel = tu_spec_numel(&t->specs[i]);
        snprintf(r[i].name, sizeof r[i].name, "%s", t->specs[i].name);
        r[i].dtype = dtypes[i];
        r[i].ndim  = t->specs[i].ndim;
        for (int d = 0; d < r[i].ndim; d++) r[i].shape[d] = t->specs[i].shape[d];
        if (!strcmp(dtypes[i], "F32")) {
            r[i].data   = t->data[i];
            r[i].nbytes = 4 * numel;
            continue;
        }
        uint16_t *h = malloc(2 * numel);
        assert_non_null(h);
        for (size_t k = 0; k < numel; k++) {
            if (!strcmp(dtypes[i], "F16")) {
                h[k]          = f32_to_f16_trunc(t->data[i][k]);
                t->data[i][k] = ckpt_f16_to_f32(h[k]);
            } else {
                h[k]          = f32_to_bf16_rne(t->data[i][k]);
                t->data[i][k] = ckpt_bf16_to_f32(h[k]);
            }
        }
        (*blobs)[i] = h;
        r[i].data   = h;
        r[i].nbytes = 2 * numel;
    }
    return r;
}

static void free_blobs(void **blobs, int n) {
    for (int i = 0; i < n; i++) free(blobs[i]);
    free(blobs);
}

/* ---- architectures ------------------------------------------------------------------------- */

static model_config cfg_base(void) {
    model_config c;
    memset(&c, 0, sizeof c);
    c.norm_eps   = 1e-5f;
    c.rope_theta = 10000.0f;
    c.pixel_std  = 1.0f;
    c.channels   = 1;
    c.causal     = 1;
    return c;
}

/* (a) GPT-2 style */
static model_config cfg_gpt(void) {
    model_config c = cfg_base();
    c.dim = 16, c.hidden_dim = 48, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 4, c.vocab_size = 40, c.seq_len = 24;
    c.norm = MODEL_NORM_LAYERNORM, c.pos = MODEL_POS_LEARNED, c.mlp = MODEL_MLP_GELU_TANH, c.bias = 1;
    c.head = MODEL_HEAD_LM_TIED, c.input = MODEL_INPUT_TOKENS;
    return c;
}

/* (b) llama style: RMSNorm, RoPE, SwiGLU, GQA, separate head; seq_len > 64 crosses the attention row block */
static model_config cfg_llama(void) {
    model_config c = cfg_base();
    c.dim = 32, c.hidden_dim = 80, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 64, c.seq_len = 80;
    c.norm = MODEL_NORM_RMSNORM, c.pos = MODEL_POS_ROPE, c.mlp = MODEL_MLP_SWIGLU, c.bias = 0;
    c.head = MODEL_HEAD_LM, c.input = MODEL_INPUT_TOKENS;
    return c;
}

/* (c) ViT with a CLS token */
static model_config cfg_vit_cls(void) {
    model_config c = cfg_base();
    c.dim = 16, c.hidden_dim = 32, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 2, c.seq_len = 5;
    c.norm = MODEL_NORM_LAYERNORM, c.pos = MODEL_POS_LEARNED, c.mlp = MODEL_MLP_GELU, c.bias = 1, c.causal = 0;
    c.head = MODEL_HEAD_CLS_TOKEN, c.n_classes = 3, c.input = MODEL_INPUT_PATCHES;
    c.image_size = 8, c.patch_size = 4, c.channels = 1, c.pixel_mean = 0.5f, c.pixel_std = 0.25f;
    return c;
}

/* (d) ViT with mean pooling, 3 channels, seq_len larger than the 16 patches */
static model_config cfg_vit_mean(void) {
    model_config c = cfg_base();
    c.dim = 24, c.hidden_dim = 48, c.n_layers = 2, c.n_heads = 3, c.n_kv_heads = 3, c.seq_len = 20;
    c.norm = MODEL_NORM_LAYERNORM, c.pos = MODEL_POS_LEARNED, c.mlp = MODEL_MLP_GELU_TANH, c.bias = 1, c.causal = 0;
    c.head = MODEL_HEAD_CLS_MEAN, c.n_classes = 4, c.input = MODEL_INPUT_PATCHES;
    c.image_size = 8, c.patch_size = 2, c.channels = 3, c.pixel_mean = 0.4f, c.pixel_std = 0.3f;
    return c;
}

/* (e) ViT with RMSNorm, RoPE, SwiGLU, GQA and no biases */
static model_config cfg_vit_rope(void) {
    model_config c = cfg_base();
    c.dim = 32, c.hidden_dim = 40, c.n_layers = 1, c.n_heads = 4, c.n_kv_heads = 2, c.seq_len = 17;
    c.norm = MODEL_NORM_RMSNORM, c.pos = MODEL_POS_ROPE, c.mlp = MODEL_MLP_SWIGLU, c.bias = 0, c.causal = 0;
    c.head = MODEL_HEAD_CLS_TOKEN, c.n_classes = 5, c.input = MODEL_INPUT_PATCHES;
    c.image_size = 12, c.patch_size = 3, c.channels = 2, c.pixel_mean = 0.0f, c.pixel_std = 1.0f;
    return c;
}

/* (f) bidirectional token LM: LayerNorm without bias, no positions, erf GELU, separate head */
static model_config cfg_bidir(void) {
    model_config c = cfg_base();
    c.dim = 16, c.hidden_dim = 32, c.n_layers = 3, c.n_heads = 2, c.n_kv_heads = 1, c.vocab_size = 30, c.seq_len = 70;
    c.norm = MODEL_NORM_LAYERNORM, c.pos = MODEL_POS_NONE, c.mlp = MODEL_MLP_GELU, c.bias = 0, c.causal = 0;
    c.head = MODEL_HEAD_LM, c.input = MODEL_INPUT_TOKENS;
    return c;
}

/* ---- binding: the view model_init gave each native tensor ---------------------------------- */

static const model_linear *native_linear(const model *m, const char *name, int *is_bias) {
    const model_weights *w = &m->w;
    *is_bias = strstr(name, ".bias") != NULL;
    if (!strncmp(name, "patch_emb.", 10)) return &w->patch;
    if (!strncmp(name, "lm_head.", 8) || !strncmp(name, "cls_head.", 9)) return &w->head;
    int  l;
    char rest[64];
    if (sscanf(name, "layers.%d.%63s", &l, rest) != 2 || l < 0 || l >= m->cfg.n_layers) return NULL;
    const model_layer_weights *lw = &w->layers[l];
    static const char *names[] = {"attn.wq.", "attn.wk.", "attn.wv.", "attn.wo.", "mlp.w1.", "mlp.w2.", "mlp.w3."};
    const model_linear *lins[] = {&lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->w1, &lw->w2, &lw->w3};
    for (int i = 0; i < 7; i++)
        if (!strncmp(rest, names[i], strlen(names[i]))) return lins[i];
    return NULL;
}

static const float *native_ptr(const model *m, const char *name) {
    const model_weights *w = &m->w;
    if (!strcmp(name, "tok_emb.weight")) return w->tok_emb;
    if (!strcmp(name, "pos_emb.weight")) return w->pos_emb;
    if (!strcmp(name, "cls_token")) return w->cls_token;
    if (!strcmp(name, "final_norm.weight")) return w->final_norm_w;
    if (!strcmp(name, "final_norm.bias")) return w->final_norm_b;
    int  l;
    char rest[64];
    if (sscanf(name, "layers.%d.%63s", &l, rest) == 2 && l >= 0 && l < m->cfg.n_layers) {
        const model_layer_weights *lw = &w->layers[l];
        if (!strcmp(rest, "attn_norm.weight")) return lw->attn_norm_w;
        if (!strcmp(rest, "attn_norm.bias")) return lw->attn_norm_b;
        if (!strcmp(rest, "mlp_norm.weight")) return lw->mlp_norm_w;
        if (!strcmp(rest, "mlp_norm.bias")) return lw->mlp_norm_b;
    }
    int is_bias;
    const model_linear *lin = native_linear(m, name, &is_bias);
    if (!lin) return NULL;
    return is_bias ? lin->b : lin->w;
}

/* every tensor of t is bound, holds exactly t's values, linear layers are dense [out][in] */
static void check_bound_exactly(const model *m, const tu_tensors *t) {
    int64_t total = 0;
    for (int i = 0; i < t->n; i++) {
        const model_tensor_spec *s = &t->specs[i];
        const float *p = native_ptr(m, s->name);
        if (!p) fail_msg("tensor %s is not bound", s->name);
        size_t numel = tu_spec_numel(s);
        if (memcmp(p, t->data[i], numel * sizeof(float)) != 0) fail_msg("tensor %s: bound values differ from the file", s->name);
        int is_bias;
        const model_linear *lin = native_linear(m, s->name, &is_bias);
        if (lin && !is_bias) {
            assert_int_equal(lin->kmajor, 0);
            assert_int_equal(lin->ld, (int)s->shape[1]);
        }
        total += (int64_t)numel;
    }
    assert_int_equal(m->n_params, total);
}

/* ---- forward checks ------------------------------------------------------------------------ */

static void check_token_model(const model *m, uint64_t seed, const char *tag) {
    const model_config *c = &m->cfg;
    int    B = 3, T = c->seq_len < 72 ? c->seq_len : 72, V = c->vocab_size;
    int    lens[3] = {T, T - 5, 1};
    int   *tok = malloc((size_t)B * T * sizeof *tok);
    float *lf = malloc((size_t)B * T * V * sizeof *lf), *lr = malloc((size_t)B * T * V * sizeof *lr);
    float *l1 = malloc((size_t)T * V * sizeof *l1);
    assert_true(tok && lf && lr && l1);
    uint64_t s = seed;
    for (int i = 0; i < B * T; i++) tok[i] = (int)(lcg_next(&s) % (uint64_t)V);
    for (int t = 0; t < lens[1]; t++) tok[T + t] = tok[t]; /* sequence 1: a padded prefix of sequence 0 */
    pe_err     err = {0};
    model_acts a;
    assert_int_equal(model_acts_init(&a, m, B, T, &err), PE_OK);
    char what[160];
    assert_int_equal(model_forward_tokens(lf, &a, m, tok, lens, B, T, 0, &err), PE_OK);
    assert_int_equal(model_forward_tokens(lr, &a, m, tok, lens, B, T, 1, &err), PE_OK);
    snprintf(what, sizeof what, "%s: sgemm vs naive twins", tag);
    check_valid_logits(lf, lr, lens, B, T, V, 1e-4f, what);
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < (size_t)lens[b] * V; i++) assert_true(isfinite(lf[(size_t)b * T * V + i]));
    /* each padded sequence equals, bit for bit, the same sequence run alone with T = len
     * (results never depend on batch composition) */
    for (int use_ref = 0; use_ref <= 1; use_ref++)
        for (int b = 0; b < B; b++) {
            assert_int_equal(model_forward_tokens(l1, &a, m, tok + (size_t)b * T, NULL, 1, lens[b], use_ref, &err), PE_OK);
            if (memcmp(l1, (use_ref ? lr : lf) + (size_t)b * T * V, (size_t)lens[b] * V * sizeof(float)) != 0)
                fail_msg("%s: sequence %d (len %d) differs in the batch and alone (%s)", tag, b, lens[b],
                         use_ref ? "naive" : "sgemm");
        }
    if (c->causal) {
        /* causal: the padded prefix agrees with the full sequence */
        snprintf(what, sizeof what, "%s: padded prefix vs full sequence", tag);
        check_logits(lf + (size_t)T * V, lf, (size_t)lens[1] * V, 1e-5f, what);
        /* and the token-by-token loop (KV cache, naive matvec) agrees with the batch */
        model_seq_state ss;
        assert_int_equal(model_seq_init(&ss, m, &err), PE_OK);
        for (int p = 0; p < T; p++) model_forward_token_seq(l1 + (size_t)p * V, &ss, m, tok[p], p);
        model_seq_free(&ss);
        snprintf(what, sizeof what, "%s: token-by-token loop vs batch", tag);
        check_logits(l1, lf, (size_t)T * V, 1e-4f, what);
    } else {
        model_seq_state ss;
        assert_int_equal(model_seq_init(&ss, m, &err), PE_ERR_INPUT);
    }
    model_acts_free(&a);
    free(tok);
    free(lf);
    free(lr);
    free(l1);
}

static void check_image_model(const model *m, uint64_t seed, const char *tag) {
    const model_config *c = &m->cfg;
    int     B = 3, NC = c->n_classes, T = model_image_seq_len(c);
    size_t  per = (size_t)c->channels * c->image_size * c->image_size;
    uint8_t *px = malloc((size_t)B * per);
    float   *lf = malloc((size_t)B * NC * sizeof *lf), *lr = malloc((size_t)B * NC * sizeof *lr), l1[64];
    assert_true(px && lf && lr && NC <= 64);
    uint64_t s = seed;
    for (size_t i = 0; i < (size_t)B * per; i++) px[i] = (uint8_t)lcg_next(&s);
    pe_err     err = {0};
    model_acts a;
    assert_int_equal(model_acts_init(&a, m, B, T, &err), PE_OK);
    assert_int_equal(model_forward_images(lf, &a, m, px, B, 0, &err), PE_OK);
    assert_int_equal(model_forward_images(lr, &a, m, px, B, 1, &err), PE_OK);
    char what[160];
    snprintf(what, sizeof what, "%s: sgemm vs naive twins", tag);
    check_logits(lf, lr, (size_t)B * NC, 1e-4f, what);
    for (int b = 0; b < B; b++) {
        assert_int_equal(model_forward_images(l1, &a, m, px + (size_t)b * per, 1, 0, &err), PE_OK);
        if (memcmp(lf + (size_t)b * NC, l1, (size_t)NC * sizeof(float)) != 0)
            fail_msg("%s: image %d differs in the batch and alone", tag, b);
    }
    /* the logits depend on the image (a wrong patch gather that read only zeros would not) */
    assert_true(tu_max_abs_diff(lf, lf + NC, (size_t)NC) > 1e-4f);
    float *tl = malloc((size_t)4 * sizeof *tl);
    int    tk = 0;
    assert_int_equal(model_forward_tokens(tl, &a, m, &tk, NULL, 1, 1, 0, &err), PE_ERR_INPUT);
    free(tl);
    model_acts_free(&a);
    free(px);
    free(lf);
    free(lr);
}

/* open dir/model.safetensors (auto format, config.json beside it) */
static void open_model(ckpt_file *ck, model *m, const char *dir, const char *format) {
    char   path[4200];
    pe_err err = {0};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (ckpt_open(ck, path, format, NULL, &err) != PE_OK) fail_msg("ckpt_open: %s", err.msg);
    if (model_init(m, ck, &err) != PE_OK) fail_msg("model_init: %s", err.msg);
}

static void roundtrip(const model_config *c, const char *tag, uint64_t seed) {
    char dir[4096];
    tmp_dir(dir, sizeof dir, tag);
    tu_tensors t;
    pe_err     err = {0};
    assert_int_equal(tu_random_tensors(&t, c, seed, &err), PE_OK);
    assert_int_equal(tu_write_model_dir(c, dir, &t, &err), PE_OK);
    for (int pass = 0; pass < 2; pass++) { /* auto-detected, then the format named */
        ckpt_file ck;
        model     m;
        open_model(&ck, &m, dir, pass ? "safetensors" : "auto");
        assert_string_equal(ck.format, "safetensors");
        assert_int_equal(ck.hf_family, 0);
        assert_string_equal(m.source, "safetensors");
        assert_memory_equal(&m.cfg, c, sizeof *c); /* config.json round trip (all fields 4 bytes: no padding) */
        assert_null(m.owned);                      /* aligned F32: views into the mapping, nothing copied */
        check_bound_exactly(&m, &t);
        char desc[512];
        model_describe(&m, desc, sizeof desc);
        assert_true(strlen(desc) > 20);
        if (pass == 0) {
            if (c->input == MODEL_INPUT_TOKENS) check_token_model(&m, seed + 1, tag);
            else check_image_model(&m, seed + 1, tag);
        }
        model_free(&m);
        ckpt_close(&ck);
    }
    tu_free_tensors(&t);
}

static void test_roundtrip_gpt(void **state) { (void)state; model_config c = cfg_gpt(); roundtrip(&c, "gpt", 11); }
static void test_roundtrip_llama(void **state) { (void)state; model_config c = cfg_llama(); roundtrip(&c, "llama", 12); }
static void test_roundtrip_vit_cls(void **state) { (void)state; model_config c = cfg_vit_cls(); roundtrip(&c, "vit-cls", 13); }
static void test_roundtrip_vit_mean(void **state) { (void)state; model_config c = cfg_vit_mean(); roundtrip(&c, "vit-mean", 14); }
static void test_roundtrip_vit_rope(void **state) { (void)state; model_config c = cfg_vit_rope(); roundtrip(&c, "vit-rope", 15); }
static void test_roundtrip_bidir(void **state) { (void)state; model_config c = cfg_bidir(); roundtrip(&c, "bidir", 16); }

/* config.json: parse(to_json(c)) == c for every architecture; n_kv_heads defaults to n_heads */
static void test_config_json(void **state) {
    (void)state;
    model_config cs[] = {cfg_gpt(), cfg_llama(), cfg_vit_cls(), cfg_vit_mean(), cfg_vit_rope(), cfg_bidir()};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        char *json = ckpt_config_to_json(&cs[i]);
        model_config back;
        int hf = 1;
        pe_err err = {0};
        assert_int_equal(ckpt_parse_config_json(&back, &hf, json, "mem", &err), PE_OK);
        assert_int_equal(hf, 0);
        assert_memory_equal(&back, &cs[i], sizeof back);
        free(json);
    }
    model_config c;
    int hf;
    pe_err err = {0};
    assert_int_equal(ckpt_parse_config_json(&c, &hf,
                                            "{\"format\":\"pathens\",\"version\":1,\"dim\":8,\"hidden_dim\":16,"
                                            "\"n_layers\":1,\"n_heads\":2,\"vocab_size\":10,\"seq_len\":4}",
                                            "mem", &err), PE_OK);
    assert_int_equal(c.n_kv_heads, 2);
    assert_int_equal(c.causal, 1);
    assert_int_equal(c.norm, MODEL_NORM_LAYERNORM);
    assert_int_equal(c.pos, MODEL_POS_NONE);
    assert_int_equal(c.mlp, MODEL_MLP_GELU);
    assert_int_equal(c.head, MODEL_HEAD_LM_TIED);
    assert_true(c.norm_eps == 1e-5f && c.rope_theta == 10000.0f && c.pixel_std == 1.0f && c.channels == 1);
    /* bad values name the key */
    static const struct { const char *json, *needle; } bad[] = {
        {"{\"format\":\"pathens\",\"dim\":8,\"hidden_dim\":16,\"n_layers\":1,\"n_heads\":2,\"vocab_size\":10,\"seq_len\":4,\"norm\":\"batchnorm\"}", "batchnorm"},
        {"{\"format\":\"pathens\",\"dim\":8,\"hidden_dim\":16,\"n_layers\":1,\"n_heads\":3,\"vocab_size\":10,\"seq_len\":4}", "n_heads"},
        {"{\"format\":\"pathens\",\"dim\":8.5,\"hidden_dim\":16,\"n_layers\":1,\"n_heads\":2,\"vocab_size\":10,\"seq_len\":4}", "\"dim\" must be an integer"},
        {"{\"format\":\"pathens\",\"version\":2,\"dim\":8}", "version 2"},
        {"{\"format\":\"other\"}", "\"format\""},
        {"{\"dim\":8,\"hidden_dim\":16,\"n_layers\":1,\"n_heads\":2,\"vocab_size\":10,\"seq_len\":4}", "no \"format\""},
        {"{\"format\":\"pathens\",\"causal\":1}", "\"causal\" must be true or false"},
        {"{\"model_type\":\"llama\"}", "llama"},
        {"{\"model_type\":\"mamba\"}", "model_type \"mamba\" is not supported"},
        {"{\"model_type\":\"llama\",\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":1000000000,"
         "\"head_dim\":1000000000,\"vocab_size\":8,\"max_position_embeddings\":8}", "head_dim"},
        {"{\"model_type\":\"qwen3\",\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
         "\"head_dim\":-4,\"vocab_size\":8,\"max_position_embeddings\":8}", "head_dim"},
        {"{\"model_type\":\"llama\",\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
         "\"vocab_size\":8,\"max_position_embeddings\":8,\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}", "\"yarn\""},
        /* a non-string type is refused, never read as "default" (it silently dropped the scaling) */
        {"{\"model_type\":\"llama\",\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
         "\"vocab_size\":8,\"max_position_embeddings\":8,\"rope_scaling\":{\"rope_type\":3,\"factor\":4}}", "(not a string)"},
        {"{\"model_type\":\"gpt_neox\",\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
         "\"vocab_size\":8,\"max_position_embeddings\":8,\"hidden_act\":5}", "hidden_act \"(not a string)\""},
        {"{\"model_type\":\"llama\",\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
         "\"vocab_size\":8,\"max_position_embeddings\":8,\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8,"
         "\"low_freq_factor\":4,\"high_freq_factor\":1,\"original_max_position_embeddings\":8}}", "low_freq_factor"},
        {"{\"model_type\":\"gpt_neox\",\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
         "\"vocab_size\":8,\"max_position_embeddings\":8,\"rotary_pct\":0.1}", "rotary dims"},
        {"{\"model_type\":\"gpt_neox\",\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
         "\"vocab_size\":8,\"max_position_embeddings\":8,\"rotary_pct\":0}", "rotary_pct"},
        {"{\"model_type\":\"vit\",\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
         "\"image_size\":8,\"patch_size\":3}", "patch_size"},
        {"{\"model_type\":\"mistral\",\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
         "\"vocab_size\":8,\"max_position_embeddings\":8,\"sliding_window\":-3}", "sliding_window"},
        {"[1, 2]", "not a JSON object"},
        {"{\"format\":", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(ckpt_parse_config_json(&c, &hf, bad[i].json, "where.json", &err), PE_ERR_INPUT);
        assert_contains(err.msg, "where.json");
        assert_contains(err.msg, bad[i].needle);
    }
}

/* ---- Hugging Face GPT-2 ---------------------------------------------------------------------- */

#define HF_C 16
#define HF_L 2
#define HF_NH 2
#define HF_P 24
#define HF_V 50
#define HF_HID (4 * HF_C)

typedef struct {
    float wte[HF_V * HF_C], wpe[HF_P * HF_C];
    struct {
        float ln1_w[HF_C], ln1_b[HF_C], attn_w[HF_C * 3 * HF_C], attn_b[3 * HF_C], proj_w[HF_C * HF_C], proj_b[HF_C];
        float ln2_w[HF_C], ln2_b[HF_C], fc_w[HF_C * HF_HID], fc_b[HF_HID], mproj_w[HF_HID * HF_C], mproj_b[HF_C];
    } h[HF_L];
    float lnf_w[HF_C], lnf_b[HF_C];
    float mask[HF_P * HF_P]; /* the attn.bias buffer: lower-triangular ones */
} hf_weights;

static void hf_fill(hf_weights *w, uint64_t seed) {
    float *all = (float *)w;
    size_t n   = sizeof *w / sizeof(float);
    tu_fill_random(all, n, seed, 1.0f);
    for (size_t i = 0; i < HF_V * HF_C; i++) w->wte[i] *= 0.5f;
    for (size_t i = 0; i < HF_P * HF_C; i++) w->wpe[i] *= 0.5f;
    for (int l = 0; l < HF_L; l++) {
        for (int i = 0; i < HF_C; i++) {
            w->h[l].ln1_w[i] = 1.0f + 0.1f * w->h[l].ln1_w[i];
            w->h[l].ln2_w[i] = 1.0f + 0.1f * w->h[l].ln2_w[i];
            w->h[l].ln1_b[i] *= 0.1f, w->h[l].ln2_b[i] *= 0.1f, w->h[l].proj_b[i] *= 0.1f, w->h[l].mproj_b[i] *= 0.1f;
        }
        for (int i = 0; i < HF_C * 3 * HF_C; i++) w->h[l].attn_w[i] *= 0.25f;
        for (int i = 0; i < HF_C * HF_C; i++) w->h[l].proj_w[i] *= 0.25f;
        for (int i = 0; i < HF_C * HF_HID; i++) w->h[l].fc_w[i] *= 0.25f;
        for (int i = 0; i < HF_HID * HF_C; i++) w->h[l].mproj_w[i] *= 0.125f;
        for (int i = 0; i < 3 * HF_C; i++) w->h[l].attn_b[i] *= 0.1f;
        for (int i = 0; i < HF_HID; i++) w->h[l].fc_b[i] *= 0.1f;
    }
    for (int i = 0; i < HF_C; i++) w->lnf_w[i] = 1.0f + 0.1f * w->lnf_w[i], w->lnf_b[i] *= 0.1f;
    for (int i = 0; i < HF_P; i++)
        for (int j = 0; j < HF_P; j++) w->mask[i * HF_P + j] = j <= i ? 1.0f : 0.0f;
    /* every value representable in bfloat16, so F32 and BF16 files hold the same numbers */
    for (size_t i = 0; i < n; i++) all[i] = round_to_bf16(all[i]);
}

/* raw_tensor list of an HF GPT-2 file; prefix "" or "transformer."; with_head adds lm_head.weight = wte */
static int hf_tensors(raw_tensor *r, const hf_weights *w, const char *prefix, int with_head, int with_mask) {
    int n = 0;
#define ADD(nm, ptr, nd, d0, d1, d2, d3)                                                         \
    do {                                                                                          \
        raw_tensor *t = &r[n++];                                                                  \
        memset(t, 0, sizeof *t);                                                                  \
        snprintf(t->name, sizeof t->name, "%s", nm);                                              \
        t->dtype = "F32", t->ndim = nd, t->shape[0] = d0, t->shape[1] = d1, t->shape[2] = d2, t->shape[3] = d3; \
        t->data = ptr;                                                                            \
        size_t numel = 1;                                                                         \
        for (int d = 0; d < nd; d++) numel *= (size_t)t->shape[d];                                \
        t->nbytes = 4 * numel;                                                                    \
    } while (0)
    char nm[96];
#define P(s) (snprintf(nm, sizeof nm, "%s%s", prefix, s), nm)
#define PL(s) (snprintf(nm, sizeof nm, "%sh.%d.%s", prefix, l, s), nm)
    ADD(P("wte.weight"), w->wte, 2, HF_V, HF_C, 0, 0);
    ADD(P("wpe.weight"), w->wpe, 2, HF_P, HF_C, 0, 0);
    for (int l = 0; l < HF_L; l++) {
        ADD(PL("ln_1.weight"), w->h[l].ln1_w, 1, HF_C, 0, 0, 0);
        ADD(PL("ln_1.bias"), w->h[l].ln1_b, 1, HF_C, 0, 0, 0);
        if (with_mask) ADD(PL("attn.bias"), w->mask, 4, 1, 1, HF_P, HF_P);
        if (with_mask && l == 0) ADD(PL("attn.masked_bias"), w->mask, 0, 0, 0, 0, 0); /* a scalar */
        ADD(PL("attn.c_attn.weight"), w->h[l].attn_w, 2, HF_C, 3 * HF_C, 0, 0);
        ADD(PL("attn.c_attn.bias"), w->h[l].attn_b, 1, 3 * HF_C, 0, 0, 0);
        ADD(PL("attn.c_proj.weight"), w->h[l].proj_w, 2, HF_C, HF_C, 0, 0);
        ADD(PL("attn.c_proj.bias"), w->h[l].proj_b, 1, HF_C, 0, 0, 0);
        ADD(PL("ln_2.weight"), w->h[l].ln2_w, 1, HF_C, 0, 0, 0);
        ADD(PL("ln_2.bias"), w->h[l].ln2_b, 1, HF_C, 0, 0, 0);
        ADD(PL("mlp.c_fc.weight"), w->h[l].fc_w, 2, HF_C, HF_HID, 0, 0);
        ADD(PL("mlp.c_fc.bias"), w->h[l].fc_b, 1, HF_HID, 0, 0, 0);
        ADD(PL("mlp.c_proj.weight"), w->h[l].mproj_w, 2, HF_HID, HF_C, 0, 0);
        ADD(PL("mlp.c_proj.bias"), w->h[l].mproj_b, 1, HF_C, 0, 0, 0);
    }
    ADD(P("ln_f.weight"), w->lnf_w, 1, HF_C, 0, 0, 0);
    ADD(P("ln_f.bias"), w->lnf_b, 1, HF_C, 0, 0, 0);
    if (with_head) ADD("lm_head.weight", w->wte, 2, HF_V, HF_C, 0, 0);
#undef P
#undef PL
#undef ADD
    return n;
}

static const char *HF_CONFIG =
    "{\n  \"_name_or_path\": \"tiny-gpt2\",\n  \"activation_function\": \"gelu_new\",\n"
    "  \"architectures\": [\"GPT2LMHeadModel\"],\n  \"attn_pdrop\": 0.1,\n  \"bos_token_id\": 49,\n"
    "  \"embd_pdrop\": 0.1,\n  \"eos_token_id\": 49,\n  \"initializer_range\": 0.02,\n"
    "  \"layer_norm_epsilon\": 1e-05,\n  \"model_type\": \"gpt2\",\n  \"n_ctx\": 24,\n  \"n_embd\": 16,\n"
    "  \"n_head\": 2,\n  \"n_inner\": null,\n  \"n_layer\": 2,\n  \"n_positions\": 24,\n"
    "  \"reorder_and_upcast_attn\": false,\n  \"resid_pdrop\": 0.1,\n  \"scale_attn_by_inverse_layer_idx\": false,\n"
    "  \"scale_attn_weights\": true,\n  \"summary_activation\": null,\n  \"summary_first_dropout\": 0.1,\n"
    "  \"summary_proj_to_labels\": true,\n  \"summary_type\": \"cls_index\",\n  \"summary_use_proj\": true,\n"
    "  \"task_specific_params\": {\"text-generation\": {\"do_sample\": true, \"max_length\": 50}},\n"
    "  \"torch_dtype\": \"float32\",\n  \"transformers_version\": \"4.40.0\",\n  \"use_cache\": true,\n"
    "  \"vocab_size\": 50\n}\n";

/* the same weights as a native model: Conv1D (in, out) transposed to (out, in), c_attn split */
static void hf_to_native(tu_tensors *t, model_config *c, const hf_weights *w) {
    *c = cfg_base();
    c->dim = HF_C, c->hidden_dim = HF_HID, c->n_layers = HF_L, c->n_heads = HF_NH, c->n_kv_heads = HF_NH;
    c->vocab_size = HF_V, c->seq_len = HF_P, c->norm = MODEL_NORM_LAYERNORM, c->pos = MODEL_POS_LEARNED;
    c->mlp = MODEL_MLP_GELU_TANH, c->bias = 1, c->head = MODEL_HEAD_LM_TIED, c->input = MODEL_INPUT_TOKENS;
    pe_err err = {0};
    assert_int_equal(tu_random_tensors(t, c, 1, &err), PE_OK);
#define DST(nm) (assert_true(tu_tensors_find(t, nm) >= 0), t->data[tu_tensors_find(t, nm)])
#define COPY(nm, src, n) memcpy(DST(nm), src, (size_t)(n) * sizeof(float))
    char nm[96];
    COPY("tok_emb.weight", w->wte, HF_V * HF_C);
    COPY("pos_emb.weight", w->wpe, HF_P * HF_C);
    for (int l = 0; l < HF_L; l++) {
#define NL(s) (snprintf(nm, sizeof nm, "layers.%d.%s", l, s), nm)
        COPY(NL("attn_norm.weight"), w->h[l].ln1_w, HF_C);
        COPY(NL("attn_norm.bias"), w->h[l].ln1_b, HF_C);
        COPY(NL("mlp_norm.weight"), w->h[l].ln2_w, HF_C);
        COPY(NL("mlp_norm.bias"), w->h[l].ln2_b, HF_C);
        static const char *qkv[3] = {"attn.wq", "attn.wk", "attn.wv"};
        for (int part = 0; part < 3; part++) {
            char wn[64], bn[64];
            snprintf(wn, sizeof wn, "%s.weight", qkv[part]);
            snprintf(bn, sizeof bn, "%s.bias", qkv[part]);
            float *dw = DST(NL(wn)), *db = DST(NL(bn));
            for (int o = 0; o < HF_C; o++) {
                db[o] = w->h[l].attn_b[part * HF_C + o];
                for (int i = 0; i < HF_C; i++) dw[o * HF_C + i] = w->h[l].attn_w[i * 3 * HF_C + part * HF_C + o];
            }
        }
        float *wo = DST(NL("attn.wo.weight")), *w1 = DST(NL("mlp.w1.weight")), *w2 = DST(NL("mlp.w2.weight"));
        for (int o = 0; o < HF_C; o++)
            for (int i = 0; i < HF_C; i++) wo[o * HF_C + i] = w->h[l].proj_w[i * HF_C + o];
        for (int o = 0; o < HF_HID; o++)
            for (int i = 0; i < HF_C; i++) w1[o * HF_C + i] = w->h[l].fc_w[i * HF_HID + o];
        for (int o = 0; o < HF_C; o++)
            for (int i = 0; i < HF_HID; i++) w2[o * HF_HID + i] = w->h[l].mproj_w[i * HF_C + o];
        COPY(NL("attn.wo.bias"), w->h[l].proj_b, HF_C);
        COPY(NL("mlp.w1.bias"), w->h[l].fc_b, HF_HID);
        COPY(NL("mlp.w2.bias"), w->h[l].mproj_b, HF_C);
#undef NL
    }
    COPY("final_norm.weight", w->lnf_w, HF_C);
    COPY("final_norm.bias", w->lnf_b, HF_C);
#undef COPY
#undef DST
}

static const int hf_lens[2] = {HF_P, HF_P - 7};

/* logits (B=2, T=HF_P) of a model dir, fast or naive, and the token-by-token loop of sequence 0 */
static void model_dir_logits(const char *dir, const int *tok, float *out, float *out_ref, float *out_seq, model *info) {
    ckpt_file ck;
    model     m;
    pe_err    err = {0};
    open_model(&ck, &m, dir, "auto");
    model_acts a;
    assert_int_equal(model_acts_init(&a, &m, 2, HF_P, &err), PE_OK);
    assert_int_equal(model_forward_tokens(out, &a, &m, tok, hf_lens, 2, HF_P, 0, &err), PE_OK);
    assert_int_equal(model_forward_tokens(out_ref, &a, &m, tok, hf_lens, 2, HF_P, 1, &err), PE_OK);
    model_acts_free(&a);
    model_seq_state s;
    assert_int_equal(model_seq_init(&s, &m, &err), PE_OK);
    for (int p = 0; p < HF_P; p++) model_forward_token_seq(out_seq + (size_t)p * HF_V, &s, &m, tok[p], p);
    model_seq_free(&s);
    *info = m;
    info->w.layers = NULL, info->owned = NULL; /* keep cfg, n_params, source */
    model_free(&m);
    ckpt_close(&ck);
}

static void test_hf_gpt2(void **state) {
    (void)state;
    hf_weights *w = malloc(sizeof *w);
    assert_non_null(w);
    hf_fill(w, 42);
    size_t NL = (size_t)2 * HF_P * HF_V;
    int    tok[2 * HF_P];
    uint64_t s = 99;
    for (int i = 0; i < 2 * HF_P; i++) tok[i] = (int)(lcg_next(&s) % HF_V);

    /* the native reference */
    char         ndir[4096];
    tu_tensors   nt;
    model_config nc;
    pe_err       err = {0};
    tmp_dir(ndir, sizeof ndir, "hf-native");
    hf_to_native(&nt, &nc, w);
    assert_int_equal(tu_write_model_dir(&nc, ndir, &nt, &err), PE_OK);
    float *nl = malloc(NL * sizeof *nl), *nlr = malloc(NL * sizeof *nl), *nls = malloc(NL * sizeof *nl);
    float *hl = malloc(NL * sizeof *hl), *hlr = malloc(NL * sizeof *hl), *hls = malloc(NL * sizeof *hl);
    model  ninfo, hinfo;
    model_dir_logits(ndir, tok, nl, nlr, nls, &ninfo);
    int64_t native_params = 0;
    for (int i = 0; i < nt.n; i++) native_params += (int64_t)tu_spec_numel(&nt.specs[i]);
    assert_int_equal(ninfo.n_params, native_params);

    /* HF variants: plain F32 via ckpt_write_safetensors; "transformer." prefix in BF16 with a
     * misaligned header; F32 misaligned with an explicit lm_head.weight */
    raw_tensor *r = calloc(64, sizeof *r);
    assert_non_null(r);
    for (int variant = 0; variant < 3; variant++) {
        char dir[4096], path[4200], tag[32];
        snprintf(tag, sizeof tag, "hf-%d", variant);
        tmp_dir(dir, sizeof dir, tag);
        snprintf(path, sizeof path, "%s/config.json", dir);
        write_text(path, HF_CONFIG);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        int n = hf_tensors(r, w, variant == 1 ? "transformer." : "", variant == 2, 1);
        assert_true(n <= 64);
        void **blobs = calloc((size_t)n, sizeof *blobs);
        if (variant == 0) {
            const char    *names[64];
            int            ndims[64];
            int64_t        shapes[64][4];
            const float   *data[64];
            for (int i = 0; i < n; i++) {
                names[i] = r[i].name, ndims[i] = r[i].ndim, data[i] = r[i].data;
                memcpy(shapes[i], r[i].shape, sizeof shapes[i]);
            }
            assert_int_equal(ckpt_write_safetensors(path, n, names, ndims, (const int64_t (*)[4])shapes, data, &err), PE_OK);
        } else {
            if (variant == 1)
                for (int i = 0; i < n; i++) {
                    size_t    numel = r[i].nbytes / 4;
                    uint16_t *h     = malloc(2 * numel + 2);
                    for (size_t k = 0; k < numel; k++) h[k] = f32_to_bf16_rne(((const float *)r[i].data)[k]);
                    blobs[i] = h, r[i].data = h, r[i].nbytes = 2 * numel, r[i].dtype = "BF16";
                }
            write_raw_safetensors(path, r, n, 1, 0);
        }
        model_dir_logits(dir, tok, hl, hlr, hls, &hinfo);
        free_blobs(blobs, n);
        assert_string_equal(hinfo.source, "safetensors-hf-gpt2");
        assert_int_equal(hinfo.cfg.head, variant == 2 ? MODEL_HEAD_LM : MODEL_HEAD_LM_TIED);
        /* same architecture as the native config (the head aside) and the same parameter count
         * (buffers are not parameters; an explicit lm_head adds V*C) */
        model_config hc = hinfo.cfg;
        hc.head = MODEL_HEAD_LM_TIED;
        assert_int_equal(hc.dim, nc.dim);
        assert_int_equal(hc.hidden_dim, nc.hidden_dim);
        assert_int_equal(hc.n_layers, nc.n_layers);
        assert_int_equal(hc.n_heads, nc.n_heads);
        assert_int_equal(hc.n_kv_heads, nc.n_kv_heads);
        assert_int_equal(hc.vocab_size, nc.vocab_size);
        assert_int_equal(hc.seq_len, nc.seq_len);
        assert_true(hc.norm == nc.norm && hc.pos == nc.pos && hc.mlp == nc.mlp && hc.causal == nc.causal &&
                    hc.bias == nc.bias && hc.norm_eps == nc.norm_eps && hc.input == nc.input);
        assert_int_equal(hinfo.n_params, native_params + (variant == 2 ? HF_V * HF_C : 0));
        char what[64];
        snprintf(what, sizeof what, "HF GPT-2 variant %d vs native (sgemm)", variant);
        check_valid_logits(hl, nl, hf_lens, 2, HF_P, HF_V, 1e-5f, what);
        snprintf(what, sizeof what, "HF GPT-2 variant %d vs native (naive)", variant);
        check_valid_logits(hlr, nlr, hf_lens, 2, HF_P, HF_V, 1e-5f, what);
        snprintf(what, sizeof what, "HF GPT-2 variant %d vs native (token by token)", variant);
        check_logits(hls, nls, (size_t)HF_P * HF_V, 1e-5f, what);
        snprintf(what, sizeof what, "HF GPT-2 variant %d: token by token vs batch", variant);
        check_logits(hls, hl, (size_t)HF_P * HF_V, 1e-4f, what);
    }

    /* broken HF files: a NaN in c_attn.bias (a weight, not a buffer), a missing c_attn, an
     * unsupported activation, a wrong Conv1D orientation */
    {
        char dir[4096], path[4200];
        tmp_dir(dir, sizeof dir, "hf-bad");
        snprintf(path, sizeof path, "%s/config.json", dir);
        write_text(path, HF_CONFIG);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        int   n    = hf_tensors(r, w, "", 0, 1);
        float *bad = malloc(3 * HF_C * sizeof *bad);
        memcpy(bad, w->h[1].attn_b, 3 * HF_C * sizeof *bad);
        bad[2 * HF_C + 3] = NAN;
        for (int i = 0; i < n; i++)
            if (!strcmp(r[i].name, "h.1.attn.c_attn.bias")) r[i].data = bad;
        write_raw_safetensors(path, r, n, 0, 0);
        ckpt_file ck;
        model     m;
        assert_int_equal(ckpt_open(&ck, path, "auto", NULL, &err), PE_OK);
        assert_int_equal(model_init(&m, &ck, &err), PE_ERR_INPUT);
        assert_contains(err.msg, path);
        assert_contains(err.msg, "h.1.attn.c_attn.bias");
        assert_contains(err.msg, "NaN");
        ckpt_close(&ck);
        free(bad);

        n = hf_tensors(r, w, "", 0, 0);
        for (int i = 0; i < n; i++)
            if (!strcmp(r[i].name, "h.0.attn.c_attn.weight")) { /* stored (out, in) instead of Conv1D (in, out) */
                r[i].shape[0] = 3 * HF_C, r[i].shape[1] = HF_C;
            }
        write_raw_safetensors(path, r, n, 0, 0);
        assert_int_equal(ckpt_open(&ck, path, "auto", NULL, &err), PE_OK);
        assert_int_equal(model_init(&m, &ck, &err), PE_ERR_INPUT);
        assert_contains(err.msg, "h.0.attn.c_attn.weight");
        assert_contains(err.msg, "[48, 16]");
        ckpt_close(&ck);

        n = hf_tensors(r, w, "", 0, 0);
        assert_string_equal(r[5].name, "h.0.attn.c_attn.bias");
        memmove(&r[5], &r[6], (size_t)(n - 6) * sizeof *r); /* drop h.0.attn.c_attn.bias */
        write_raw_safetensors(path, r, n - 1, 0, 0);
        assert_int_equal(ckpt_open(&ck, path, "auto", NULL, &err), PE_OK);
        assert_int_equal(model_init(&m, &ck, &err), PE_ERR_INPUT);
        assert_contains(err.msg, "h.0.attn.c_attn.bias");
        assert_contains(err.msg, "missing");
        ckpt_close(&ck);

        snprintf(path, sizeof path, "%s/config.json", dir);
        char cfg[4096];
        const char *p = strstr(HF_CONFIG, "gelu_new");
        snprintf(cfg, sizeof cfg, "%.*srelu%s", (int)(p - HF_CONFIG), HF_CONFIG, p + 8);
        write_text(path, cfg);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        assert_int_equal(ckpt_open(&ck, path, "auto", NULL, &err), PE_ERR_INPUT);
        assert_contains(err.msg, "config.json");
        assert_contains(err.msg, "relu");
    }
    free(r);
    free(nl), free(nlr), free(nls), free(hl), free(hlr), free(hls);
    tu_free_tensors(&nt);
    free(w);
}

/* ---- F16 / BF16 / alignment --------------------------------------------------------------- */

static void test_half_conversions_exhaustive(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        int    sign = (h >> 15) & 1;
        /* IEEE half: 5-bit exponent (bias 15), 10-bit mantissa */
        int    e = (h >> 10) & 0x1f, mant = h & 0x3ff;
        float  f = ckpt_f16_to_f32((uint16_t)h);
        if (e == 31) {
            assert_true(mant ? isnan(f) : isinf(f));
        } else {
            double v = e == 0 ? ldexp(mant, -24) : ldexp(1024 + mant, e - 25);
            if (sign) v = -v;
            if ((double)f != v) fail_msg("f16 0x%04x -> %.10g, expected %.10g", h, (double)f, v);
        }
        if (!isnan(f)) assert_int_equal(!!signbit(f), sign);
        /* bfloat16: 8-bit exponent (bias 127), 7-bit mantissa */
        e = (h >> 7) & 0xff, mant = h & 0x7f;
        f = ckpt_bf16_to_f32((uint16_t)h);
        if (e == 255) {
            assert_true(mant ? isnan(f) : isinf(f));
        } else {
            double v = e == 0 ? ldexp(mant, -133) : ldexp(128 + mant, e - 134);
            if (sign) v = -v;
            if ((double)f != v) fail_msg("bf16 0x%04x -> %.10g, expected %.10g", h, (double)f, v);
        }
        if (!isnan(f)) assert_int_equal(!!signbit(f), sign);
    }
    assert_true(ckpt_f16_to_f32(0x3c00) == 1.0f && ckpt_f16_to_f32(0xc000) == -2.0f);
    assert_true(ckpt_f16_to_f32(0x7bff) == 65504.0f && ckpt_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(ckpt_bf16_to_f32(0x3f80) == 1.0f && ckpt_bf16_to_f32(0x4049) == 3.140625f);
    assert_string_equal(ckpt_dtype_name(CKPT_DTYPE_F32), "F32");
    assert_string_equal(ckpt_dtype_name(CKPT_DTYPE_F16), "F16");
    assert_string_equal(ckpt_dtype_name(CKPT_DTYPE_BF16), "BF16");
}

/* a llama-style model whose tensors are F32, F16 and BF16 in turn: loads converted exactly */
static void test_mixed_dtypes(void **state) {
    (void)state;
    model_config c = cfg_llama();
    char         dir[4096], path[4200];
    tmp_dir(dir, sizeof dir, "mixed");
    tu_tensors t;
    pe_err     err = {0};
    assert_int_equal(tu_random_tensors(&t, &c, 21, &err), PE_OK);
    const char **dt = malloc((size_t)t.n * sizeof *dt);
    static const char *kinds[3] = {"F16", "BF16", "F32"};
    size_t converted = 0;
    for (int i = 0; i < t.n; i++) {
        dt[i] = kinds[i % 3];
        if (i % 3 != 2) converted += tu_spec_numel(&t.specs[i]);
    }
    void      **blobs;
    raw_tensor *r = encode_tensors(&t, dt, &blobs);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_raw_safetensors(path, r, t.n, 0, 0);
    write_config(dir, &c);
    ckpt_file ck;
    model     m;
    open_model(&ck, &m, dir, "auto");
    for (int i = 0; i < t.n; i++) {
        const ckpt_tensor *ct = ckpt_find(&ck, t.specs[i].name);
        assert_non_null(ct);
        assert_string_equal(ckpt_dtype_name(ct->dtype), dt[i]);
    }
    assert_non_null(m.owned);
    assert_int_equal(m.owned_floats, converted); /* only F16/BF16 tensors are copied */
    check_bound_exactly(&m, &t);
    check_token_model(&m, 22, "mixed dtypes");
    model_free(&m);
    ckpt_close(&ck);
    /* F16 NaN and Inf bit patterns are caught after conversion */
    for (int inf = 0; inf <= 1; inf++) {
        uint16_t *h = blobs[0]; /* tensor 0 (tok_emb.weight) is F16 */
        uint16_t  keep = h[7];
        h[7] = inf ? 0xfc00 : 0x7e00;
        write_raw_safetensors(path, r, t.n, 0, 0);
        assert_int_equal(ckpt_open(&ck, path, "auto", NULL, &err), PE_OK);
        assert_int_equal(model_init(&m, &ck, &err), PE_ERR_INPUT);
        assert_contains(err.msg, path);
        assert_contains(err.msg, "tok_emb.weight");
        assert_contains(err.msg, "element 7");
        assert_contains(err.msg, inf ? "Inf" : "NaN");
        ckpt_close(&ck);
        h[7] = keep;
    }
    free(r);
    free_blobs(blobs, t.n);
    free(dt);
    tu_free_tensors(&t);
}

/* F32 data after a header whose length is not a multiple of 4: copied (aligned), same values,
 * same logits as the aligned file; a [1, 1, C] cls_token is accepted for [C] */
static void test_misaligned_f32(void **state) {
    (void)state;
    model_config c = cfg_vit_cls();
    char         adir[4096], mdir[4096], path[4200];
    tmp_dir(adir, sizeof adir, "aligned");
    tmp_dir(mdir, sizeof mdir, "misaligned");
    tu_tensors t;
    pe_err     err = {0};
    assert_int_equal(tu_random_tensors(&t, &c, 31, &err), PE_OK);
    assert_int_equal(tu_write_model_dir(&c, adir, &t, &err), PE_OK);
    const char **dt = malloc((size_t)t.n * sizeof *dt);
    size_t total = 0;
    for (int i = 0; i < t.n; i++) dt[i] = "F32", total += tu_spec_numel(&t.specs[i]);
    void      **blobs;
    raw_tensor *r = encode_tensors(&t, dt, &blobs);
    int ic = tu_tensors_find(&t, "cls_token");
    assert_true(ic >= 0);
    r[ic].ndim = 3, r[ic].shape[0] = 1, r[ic].shape[1] = 1, r[ic].shape[2] = c.dim;
    snprintf(path, sizeof path, "%s/model.safetensors", mdir);
    write_raw_safetensors(path, r, t.n, 1, 0);
    write_config(mdir, &c);
    ckpt_file cka, ckm;
    model     ma, mm;
    open_model(&cka, &ma, adir, "auto");
    open_model(&ckm, &mm, mdir, "auto");
    assert_null(ma.owned);
    assert_non_null(mm.owned);
    assert_int_equal(mm.owned_floats, total);
    assert_int_not_equal((uintptr_t)ckpt_find(&ckm, "patch_emb.weight")->data & 3u, 0);
    check_bound_exactly(&mm, &t);
    float la[3 * 3], lm[3 * 3];
    uint8_t px[3 * 64];
    for (int i = 0; i < 3 * 64; i++) px[i] = (uint8_t)(i * 37 + 11);
    model_acts a;
    assert_int_equal(model_acts_init(&a, &ma, 3, model_image_seq_len(&c), &err), PE_OK);
    assert_int_equal(model_forward_images(la, &a, &ma, px, 3, 0, &err), PE_OK);
    assert_int_equal(model_forward_images(lm, &a, &mm, px, 3, 0, &err), PE_OK);
    check_logits(lm, la, 9, 1e-6f, "misaligned vs aligned");
    model_acts_free(&a);
    model_free(&ma), model_free(&mm);
    ckpt_close(&cka), ckpt_close(&ckm);
    free(r);
    free_blobs(blobs, t.n);
    free(dt);
    tu_free_tensors(&t);
}

/* ---- bad input ------------------------------------------------------------------------------- */

/* open (+ init); must fail with PE_ERR_INPUT and a message holding every needle */
static void expect_bad(const char *path, const char *format, const char *config_path, const char *const *needles) {
    pe_err    err = {0};
    ckpt_file ck;
    model     m;
    pe_status st = ckpt_open(&ck, path, format, config_path, &err);
    if (st == PE_OK) {
        st = model_init(&m, &ck, &err);
        if (st == PE_OK) model_free(&m);
        ckpt_close(&ck);
        if (st == PE_OK) fail_msg("%s loaded; expected an error containing '%s'", path, needles[0]);
    }
    if (st != PE_ERR_INPUT) fail_msg("%s: status %d (%s), expected PE_ERR_INPUT", path, (int)st, err.msg);
    for (int i = 0; needles[i]; i++) assert_contains(err.msg, needles[i]);
}

#define EXPECT_BAD(path, config, ...)                                  \
    do {                                                               \
        const char *needles_[] = {__VA_ARGS__, NULL};                  \
        expect_bad(path, "auto", config, needles_);                    \
    } while (0)

static void copy_prefix(const char *src, const char *dst, size_t n) {
    size_t len;
    char  *buf = read_bytes(src, &len);
    assert_true(n <= len);
    write_bytes(dst, buf, n);
    free(buf);
}

/* A tiny llama2.c checkpoint with random weights (format in docs/formats.md): dim 16, hidden 24,
 * 2 layers, 4 query / 2 KV heads, vocab 32 (shared classifier), seq_len 16. version 0: the legacy
 * 28-byte header, the tensors and the two RoPE tables; version 1: the 256-byte header, no tables.
 * Returns the file's length. */
static size_t write_llama2c(const char *path, int version, uint64_t seed) {
    const int32_t h[7] = {16, 24, 2, 4, 2, 32, 16}; /* dim hidden layers heads kv_heads vocab seq_len */
    const size_t d = 16, hid = 24, L = 2, kvd = 16 / 4 * 2, V = 32, S = 16, hs = 4;
    size_t n = V * d + 2 * L * d + 2 * L * d * d + 2 * L * kvd * d + 3 * L * hid * d + d; /* every tensor */
    size_t head = version == 1 ? 256 : sizeof h;
    if (version == 0) n += 2 * S * (hs / 2); /* freq_cis_real, freq_cis_imag */
    unsigned char *b = calloc(1, head + n * sizeof(float));
    assert_non_null(b);
    if (version == 1) {
        const uint32_t magic = 0x616b3432;
        const int32_t  one = 1;
        memcpy(b, &magic, 4);
        memcpy(b + 4, &one, 4);
        memcpy(b + 8, h, sizeof h);
        b[8 + sizeof h] = 1; /* shared classifier */
    } else {
        memcpy(b, h, sizeof h);
    }
    float *w = malloc(n * sizeof(float));
    assert_non_null(w);
    tu_fill_random(w, n, seed, 0.25f);
    memcpy(b + head, w, n * sizeof(float));
    write_bytes(path, b, head + n * sizeof(float));
    free(w);
    free(b);
    return head + n * sizeof(float);
}

static void test_bad_llama2c(void **state) {
    (void)state;
    char dir[4096], path[4200], v0[4200], v1[4200];
    tmp_dir(dir, sizeof dir, "bad-llama2c");
    snprintf(path, sizeof path, "%s/trunc.bin", dir);
    snprintf(v0, sizeof v0, "%s/good_v0.bin", dir);
    snprintf(v1, sizeof v1, "%s/good_v1.bin", dir);
    size_t len0 = write_llama2c(v0, 0, 5);
    write_llama2c(v1, 1, 6);
    const size_t cuts[] = {1000, len0 - 1, 28, 20};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        copy_prefix(v0, path, cuts[i]);
        EXPECT_BAD(path, NULL, path, "truncated");
    }
    copy_prefix(v0, path, 0);
    EXPECT_BAD(path, NULL, path, "empty");
    copy_prefix(v1, path, 100); /* inside the 256-byte header */
    EXPECT_BAD(path, NULL, path, "256 bytes", "truncated");
    copy_prefix(v1, path, 4096);
    EXPECT_BAD(path, NULL, path, "llama2c-v1", "truncated");
    /* one byte too many */
    size_t len;
    char  *buf = read_bytes(v0, &len);
    char  *big = malloc(len + 4);
    memcpy(big, buf, len);
    memset(big + len, 0, 4);
    write_bytes(path, big, len + 4);
    EXPECT_BAD(path, NULL, path, "too long");
    /* a version-2 (int8) v1-style header, and a header with a negative dimension */
    free(buf);
    buf = read_bytes(v1, &len);
    int32_t two = 2;
    memcpy(buf + 4, &two, 4);
    write_bytes(path, buf, len);
    EXPECT_BAD(path, NULL, path, "version 2");
    free(buf);
    buf = read_bytes(v0, &len);
    int32_t neg = -3;
    memcpy(buf + 8, &neg, 4); /* n_layers */
    write_bytes(path, buf, len);
    EXPECT_BAD(path, NULL, path, "is not a llama2.c", "n_layers -3");
    /* and the good files still load with format named (the real stories260K files: test_golden) */
    free(buf);
    free(big);
    pe_err err = {0};
    ckpt_file ck;
    model     m;
    assert_int_equal(ckpt_open(&ck, v0, "llama2c", NULL, &err), PE_OK);
    assert_string_equal(ck.format, "llama2c-v0");
    assert_int_equal(model_init(&m, &ck, &err), PE_OK);
    assert_int_equal(m.cfg.n_kv_heads, 2);
    model_free(&m);
    ckpt_close(&ck);
    assert_int_equal(ckpt_open(&ck, v1, "auto", NULL, &err), PE_OK);
    assert_string_equal(ck.format, "llama2c-v1");
    assert_int_equal(model_init(&m, &ck, &err), PE_OK);
    model_free(&m);
    ckpt_close(&ck);
    const char *needles[] = {"[model] format", "gguf", NULL};
    expect_bad(v0, "gguf", NULL, needles);
}

/* a valid gpt model in dir; returns its tensors in *t */
static void write_good(const char *dir, tu_tensors *t, model_config *c) {
    pe_err err = {0};
    *c = cfg_gpt();
    assert_int_equal(tu_random_tensors(t, c, 51, &err), PE_OK);
    assert_int_equal(tu_write_model_dir(c, dir, t, &err), PE_OK);
}

static void test_bad_safetensors(void **state) {
    (void)state;
    char dir[4096], path[4200], cpath[4200];
    tmp_dir(dir, sizeof dir, "bad-st");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    tu_tensors   t;
    model_config c;
    write_good(dir, &t, &c);
    size_t len;
    unsigned char *good = read_bytes(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | good[i];

    /* truncated: in the data, inside the header, inside the length */
    write_bytes(path, good, len / 2);
    EXPECT_BAD(path, NULL, path, "out of range", "truncated");
    write_bytes(path, good, len - 1);
    EXPECT_BAD(path, NULL, path, "out of range");
    write_bytes(path, good, 8 + hlen / 2);
    EXPECT_BAD(path, NULL, path, "header length", "past the end");
    write_bytes(path, good, 5);
    EXPECT_BAD(path, NULL, path, "8-byte", "truncated");
    /* header length past EOF (and absurdly large) */
    unsigned char *bad = malloc(len);
    memcpy(bad, good, len);
    bad[5] = 1; /* + 2^40 */
    write_bytes(path, bad, len);
    EXPECT_BAD(path, NULL, path, "header length", "past the end");
    memset(bad, 0xff, 8);
    write_bytes(path, bad, len);
    EXPECT_BAD(path, NULL, path, "header length", "past the end");
    /* header not JSON */
    memcpy(bad, good, len);
    bad[8] = '#';
    write_bytes(path, bad, len);
    EXPECT_BAD(path, NULL, path, "not a JSON object");
    free(bad);

    /* hand-written headers */
    const char **dt = malloc((size_t)t.n * sizeof *dt);
    for (int i = 0; i < t.n; i++) dt[i] = "F32";
    void      **blobs;
    raw_tensor *r = encode_tensors(&t, dt, &blobs);
    /* data_offsets out of range, reversed, and not matching the shape */
    raw_tensor keep = r[3];
    r[3].forge = 1, r[3].forged_offsets[0] = 16, r[3].forged_offsets[1] = 1e9;
    write_raw_safetensors(path, r, t.n, 0, 0);
    EXPECT_BAD(path, NULL, path, r[3].name, "data_offsets", "out of range");
    r[3].forged_offsets[0] = 64, r[3].forged_offsets[1] = 32;
    write_raw_safetensors(path, r, t.n, 0, 0);
    EXPECT_BAD(path, NULL, path, r[3].name, "data_offsets");
    r[3].forged_offsets[0] = 0, r[3].forged_offsets[1] = 4;
    write_raw_safetensors(path, r, t.n, 0, 0);
    EXPECT_BAD(path, NULL, path, r[3].name, "need", "bytes");
    r[3] = keep;
    /* unknown dtype */
    r[3].dtype = "I8", r[3].nbytes /= 4;
    write_raw_safetensors(path, r, t.n, 0, 0);
    EXPECT_BAD(path, NULL, path, r[3].name, "dtype I8");
    r[3] = keep;
    /* too many dims, a negative and a fractional dimension */
    r[3].ndim = 5, r[3].shape[0] = 1, r[3].shape[1] = 1, r[3].shape[2] = 1, r[3].shape[3] = 1;
    write_raw_safetensors(path, r, t.n, 0, 0);
    EXPECT_BAD(path, NULL, path, r[3].name, "dims");
    r[3] = keep;
    r[3].shape[0] = -r[3].shape[0];
    write_raw_safetensors(path, r, t.n, 0, 0);
    EXPECT_BAD(path, NULL, path, r[3].name, "shape");
    r[3] = keep;
    /* shape disagreeing with the config (same bytes, transposed) */
    int ie = tu_tensors_find(&t, "tok_emb.weight");
    keep = r[ie];
    r[ie].shape[0] = keep.shape[1], r[ie].shape[1] = keep.shape[0];
    write_raw_safetensors(path, r, t.n, 0, 0);
    EXPECT_BAD(path, NULL, path, "tok_emb.weight", "[16, 40]", "[40, 16]");
    r[ie] = keep;
    /* missing tensor, extra tensor */
    int im = tu_tensors_find(&t, "layers.1.mlp.w2.weight");
    raw_tensor *r2 = calloc((size_t)t.n + 1, sizeof *r2);
    memcpy(r2, r, (size_t)t.n * sizeof *r);
    memmove(&r2[im], &r2[im + 1], (size_t)(t.n - im - 1) * sizeof *r2);
    write_raw_safetensors(path, r2, t.n - 1, 0, 0);
    EXPECT_BAD(path, NULL, path, "layers.1.mlp.w2.weight", "missing");
    memcpy(r2, r, (size_t)t.n * sizeof *r);
    r2[t.n] = r[0];
    snprintf(r2[t.n].name, sizeof r2[t.n].name, "layers.7.attn.wq.weight");
    write_raw_safetensors(path, r2, t.n + 1, 0, 0);
    EXPECT_BAD(path, NULL, path, "unexpected tensor", "layers.7.attn.wq.weight");
    free(r2);
    /* NaN and Inf in a weight */
    int iw = tu_tensors_find(&t, "layers.0.attn.wv.weight");
    for (int inf = 0; inf <= 1; inf++) {
        float keepv = t.data[iw][5];
        t.data[iw][5] = inf ? -INFINITY : NAN;
        write_raw_safetensors(path, r, t.n, 0, 0);
        EXPECT_BAD(path, NULL, path, "layers.0.attn.wv.weight", "element 5", inf ? "Inf" : "NaN");
        t.data[iw][5] = keepv;
    }
    /* the unbroken hand-written file loads: the cases above failed for their own reason */
    write_raw_safetensors(path, r, t.n, 0, 0);
    {
        ckpt_file ck;
        model     m;
        open_model(&ck, &m, dir, "auto");
        model_free(&m);
        ckpt_close(&ck);
    }
    /* config.json: unknown key, missing, explicit path, shape disagreeing via the config */
    char *json = ckpt_config_to_json(&c), *bogus = malloc(strlen(json) + 64);
    snprintf(bogus, strlen(json) + 64, "{\"n_kv_head\": 4, %s", json + 1);
    write_text(cpath, bogus);
    EXPECT_BAD(path, NULL, cpath, "unknown config key", "n_kv_head");
    unlink(cpath);
    EXPECT_BAD(path, NULL, path, "config.json", "cannot read");
    char other[4200];
    snprintf(other, sizeof other, "%s/other.json", dir);
    write_text(other, json);
    {
        pe_err    err = {0};
        ckpt_file ck;
        model     m;
        assert_int_equal(ckpt_open(&ck, path, "safetensors", other, &err), PE_OK);
        assert_int_equal(model_init(&m, &ck, &err), PE_OK);
        model_free(&m);
        ckpt_close(&ck);
    }
    model_config c2 = c;
    c2.hidden_dim = 44;
    write_config(dir, &c2);
    EXPECT_BAD(path, NULL, path, "layers.0.mlp.w1.weight", "[44, 16]");
    c2 = c;
    c2.n_layers = 3;
    write_config(dir, &c2);
    EXPECT_BAD(path, NULL, path, "layers.2.", "missing");
    c2 = c;
    c2.head = MODEL_HEAD_LM;
    write_config(dir, &c2);
    EXPECT_BAD(path, NULL, path, "lm_head.weight", "missing");
    write_text(cpath, json);
    /* missing model file; a folder instead of a file */
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/nope.safetensors", dir);
    EXPECT_BAD(missing, NULL, missing, "cannot open model");
    { /* the folder itself: a model folder (config.json + model.safetensors) loads like its file */
        ckpt_file ck;
        pe_err    err = {0};
        model     m;
        if (ckpt_open(&ck, dir, "auto", NULL, &err) != PE_OK) fail_msg("ckpt_open: %s", err.msg);
        if (model_init(&m, &ck, &err) != PE_OK) fail_msg("model_init: %s", err.msg);
        assert_int_equal(ck.is_dir, 1);
        assert_int_equal(ck.n_shards, 1);
        model_free(&m);
        ckpt_close(&ck);
    }
    {
        const char *needles[] = {"format", "gguf", NULL};
        expect_bad(path, "gguf", NULL, needles);
    }
    free(json);
    free(bogus);
    free(r);
    free_blobs(blobs, t.n);
    free(dt);
    free(good);
    tu_free_tensors(&t);
}

/* no input crashes the reader: every truncation length of a small file, and random byte changes
 * in the header; each is either refused with PE_ERR_INPUT or loads and runs */
static void test_fuzz_safetensors(void **state) {
    (void)state;
    char dir[4096], path[4200];
    tmp_dir(dir, sizeof dir, "fuzz");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    model_config c = cfg_gpt();
    c.n_layers = 1, c.dim = 8, c.hidden_dim = 8, c.n_heads = 2, c.n_kv_heads = 1, c.vocab_size = 5, c.seq_len = 4;
    tu_tensors t;
    pe_err     err = {0};
    assert_int_equal(tu_random_tensors(&t, &c, 61, &err), PE_OK);
    assert_int_equal(tu_write_model_dir(&c, dir, &t, &err), PE_OK);
    size_t         len;
    unsigned char *good = read_bytes(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | good[i];
    unsigned char *bad = malloc(len);
    uint64_t s = 7;
    int n_ok = 0, n_bad = 0;
    for (int iter = 0; iter < 600; iter++) {
        size_t n = len;
        memcpy(bad, good, len);
        if (iter < 200) {
            n = (size_t)iter * len / 200; /* truncations */
        } else {
            int flips = 1 + (int)(lcg_next(&s) % 3);
            for (int f = 0; f < flips; f++) {
                size_t at = (size_t)(lcg_next(&s) % (8 + hlen));
                static const char pool[] = "0123456789[]{},:\"-.eE F";
                bad[at] = (lcg_next(&s) & 1) ? (unsigned char)pool[lcg_next(&s) % (sizeof pool - 1)]
                                             : (unsigned char)lcg_next(&s);
            }
        }
        write_bytes(path, bad, n);
        ckpt_file ck;
        model     m;
        memset(&err, 0, sizeof err);
        pe_status st = ckpt_open(&ck, path, "safetensors", NULL, &err);
        if (st == PE_OK) {
            st = model_init(&m, &ck, &err);
            if (st == PE_OK) {
                float      logits[4 * 5];
                int        tok[4] = {0, 1, 2, 3};
                model_acts a;
                assert_int_equal(model_acts_init(&a, &m, 1, 4, &err), PE_OK);
                assert_int_equal(model_forward_tokens(logits, &a, &m, tok, NULL, 1, 4, 0, &err), PE_OK);
                model_acts_free(&a);
                model_free(&m);
            }
            ckpt_close(&ck);
        }
        if (st != PE_OK && st != PE_ERR_INPUT) fail_msg("iteration %d: status %d: %s", iter, (int)st, err.msg);
        if (st == PE_OK) n_ok++;
        else {
            n_bad++;
            assert_true(strlen(err.msg) > 0);
        }
    }
    assert_true(n_bad > 200);
    printf("  fuzz: %d loaded, %d refused\n", n_ok, n_bad);
    free(bad);
    free(good);
    tu_free_tensors(&t);
}

/* ---- checked arithmetic, format sniffing, layout rules (the fuzz findings, in-process) -------- */

static void test_checked_arithmetic(void **state) {
    (void)state;
    uint64_t u = 77;
    assert_int_equal(ckpt_mul_u64(3, 4, &u), 0);
    assert_int_equal(u, 12);
    assert_int_equal(ckpt_mul_u64(UINT64_MAX, 2, &u), -1);
    assert_int_equal(u, 12); /* untouched on overflow */
    assert_int_equal(ckpt_mul_u64((uint64_t)1 << 32, (uint64_t)1 << 32, &u), -1);
    assert_int_equal(ckpt_mul_u64((uint64_t)1 << 32, ((uint64_t)1 << 31) - 1, &u), 0);
    assert_int_equal(ckpt_add_u64(UINT64_MAX, 1, &u), -1);
    assert_int_equal(ckpt_add_u64(UINT64_MAX - 1, 1, &u), 0);
    assert_true(u == UINT64_MAX);
    int64_t n = 5;
    const int64_t huge[2] = {1000000000000LL, 1000000000000LL}; /* st_shape_overflow: 1e24 elements */
    assert_int_equal(ckpt_numel(huge, 2, INT64_MAX, &n), -1);
    assert_int_equal(ckpt_numel(huge, 2, (int64_t)1 << 40, &n), -1);
    assert_int_equal(n, 5);
    const int64_t big3[3] = {(int64_t)1 << 31, (int64_t)1 << 31, (int64_t)1 << 31};
    assert_int_equal(ckpt_numel(big3, 3, INT64_MAX, &n), -1);
    assert_int_equal(ckpt_numel(NULL, 0, 1, &n), 0);
    assert_int_equal(n, 1); /* a scalar */
    const int64_t zero[3] = {2, 0, 3}, neg[1] = {-1}, edge[1] = {(int64_t)1 << 40}, over[1] = {((int64_t)1 << 40) + 1};
    assert_int_equal(ckpt_numel(zero, 3, 10, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ckpt_numel(neg, 1, 10, &n), -1);
    assert_int_equal(ckpt_numel(edge, 1, (int64_t)1 << 40, &n), 0);
    assert_int_equal(ckpt_numel(over, 1, (int64_t)1 << 40, &n), -1);
}

/* the llama2.c header rules: the real files' sizes, and every hostile field value */
static void test_llama2c_check(void **state) {
    (void)state;
    char   why[160];
    size_t len;
    char  *buf = read_bytes(tu_data_path("stories260K.bin"), &len);
    int32_t h[7];
    uint64_t bytes = 0;
    memcpy(h, buf, sizeof h);
    assert_int_equal(ckpt_llama2c_check(h, 7, 0, 0, &bytes, why, sizeof why), 0);
    assert_true(bytes == len);
    free(buf);
    buf = read_bytes(tu_data_path("stories260K_v1.bin"), &len);
    memcpy(h, buf + 8, sizeof h);
    assert_int_equal(ckpt_llama2c_check(h, 7, 1, buf[36], &bytes, why, sizeof why), 0);
    assert_true(bytes == len);
    free(buf);
    /* the 122-layer tiny model of the fuzz finding: 15700 bytes */
    const int32_t tiny[7] = {2, 2, 122, 1, 1, 4, 2};
    assert_int_equal(ckpt_llama2c_check(tiny, 7, 0, 0, &bytes, why, sizeof why), 0);
    assert_true(bytes == 15700);
    /* vocab_size INT32_MIN (negating it was undefined), and every field at hostile values */
    const int32_t intmin[7] = {64, 172, 5, 8, 4, INT32_MIN, 512};
    assert_int_equal(ckpt_llama2c_check(intmin, 7, 0, 0, NULL, why, sizeof why), -1);
    assert_contains(why, "vocab_size -2147483648");
    static const int32_t hostile[] = {INT32_MIN, INT32_MIN + 1, -1, 0, INT32_MAX, 1 << 30, 1 << 17};
    for (int f = 0; f < 7; f++)
        for (size_t v = 0; v < sizeof hostile / sizeof hostile[0]; v++) {
            int32_t x[7] = {64, 172, 5, 8, 4, 512, 512};
            x[f] = hostile[v];
            if ((f == 1 || f == 5 || f == 6) && hostile[v] == 1 << 17) continue; /* legal hidden_dim, vocab, seq_len */
            for (int v1 = 0; v1 <= 1; v1++) {
                if (f == 5 && !v1 && hostile[v] == -1) continue; /* v0: a separate classifier, legal */
                why[0] = 0;
                if (ckpt_llama2c_check(x, 7, v1, 1, &bytes, why, sizeof why) != -1)
                    fail_msg("field %d = %d accepted (v1 %d)", f, x[f], v1);
                assert_true(strlen(why) > 0);
            }
        }
    /* negative vocab: a separate classifier in v0, refused in v1 */
    int32_t sep[7] = {2, 2, 1, 1, 1, -4, 2};
    uint64_t b_sep, b_tied;
    assert_int_equal(ckpt_llama2c_check(sep, 7, 0, 0, &b_sep, why, sizeof why), 0);
    sep[5] = 4;
    assert_int_equal(ckpt_llama2c_check(sep, 7, 0, 0, &b_tied, why, sizeof why), 0);
    assert_true(b_sep == b_tied + 4 * 4 * 2);
    sep[5] = -4;
    assert_int_equal(ckpt_llama2c_check(sep, 7, 1, 0, NULL, why, sizeof why), -1);
    /* consistency rules */
    int32_t x[7] = {6, 4, 1, 4, 4, 8, 2};
    assert_int_equal(ckpt_llama2c_check(x, 7, 0, 0, NULL, why, sizeof why), -1);
    assert_contains(why, "not a multiple of n_heads");
    x[0] = 8, x[4] = 3;
    assert_int_equal(ckpt_llama2c_check(x, 7, 0, 0, NULL, why, sizeof why), -1);
    assert_contains(why, "not a multiple of n_kv_heads");
    x[0] = 12, x[3] = 4, x[4] = 4; /* head size 3 */
    assert_int_equal(ckpt_llama2c_check(x, 7, 0, 0, NULL, why, sizeof why), -1);
    assert_contains(why, "odd");
    /* a truncated header: only the fields present */
    const int32_t part[3] = {64, 172, 5};
    assert_int_equal(ckpt_llama2c_check(part, 3, 0, 0, NULL, why, sizeof why), 0);
    const int32_t partbad[2] = {64, -1};
    assert_int_equal(ckpt_llama2c_check(partbad, 2, 0, 0, NULL, why, sizeof why), -1);
    /* the largest legal header does not overflow the size computation */
    const int32_t maxed[7] = {MODEL_MAX_DIM, MODEL_MAX_HIDDEN, MODEL_MAX_LAYERS, MODEL_MAX_DIM / 2, MODEL_MAX_DIM / 2,
                              -MODEL_MAX_VOCAB, MODEL_MAX_SEQ};
    assert_int_equal(ckpt_llama2c_check(maxed, 7, 0, 0, &bytes, why, sizeof why), 0);
    assert_true(bytes > ((uint64_t)1 << 40));
}

/* a safetensors file of the given header text (padded with spaces to `pad` more bytes), then
 * data_len bytes */
static size_t st_bytes(unsigned char *out, size_t cap, const char *header, size_t pad, size_t data_len) {
    size_t hl = strlen(header) + pad, total = 8 + hl + data_len;
    assert_true(total <= cap);
    for (int i = 0; i < 8; i++) out[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(out + 8, header, strlen(header));
    memset(out + 8 + strlen(header), ' ', pad);
    for (size_t i = 0; i < data_len; i++) out[8 + hl + i] = (unsigned char)(i * 7);
    return total;
}

static void test_sniff(void **state) {
    (void)state;
    char why[768];
    unsigned char buf[8192];
    memset(buf, 0, sizeof buf);
    /* text: neither format, and the message says what each reading found */
    const char *text = "# pathens\n\nEvaluates transformers as dynamic self-ensembles.\n";
    assert_int_equal(ckpt_sniff(text, strlen(text), why, sizeof why), CKPT_KIND_UNKNOWN);
    assert_contains(why, "starts 23 20 70 61");
    assert_contains(why, "dim 1634738211");
    assert_contains(why, "header length");
    assert_int_equal(ckpt_sniff(text, 0, why, sizeof why), CKPT_KIND_UNKNOWN);
    assert_int_equal(ckpt_sniff(text, 3, NULL, 0), CKPT_KIND_UNKNOWN);
    /* llama2.c v1: the magic */
    memcpy(buf, "\x32\x34\x6b\x61", 4);
    assert_int_equal(ckpt_sniff(buf, 256, why, sizeof why), CKPT_KIND_LLAMA2C_V1);
    /* llama2.c v0 with every layer count: 123, 379, 635, 891 put '{' at byte 8 (123 was read as
     * safetensors); with hidden_dim >= 1 the safetensors reading has a header length >= 2^32 */
    for (int32_t L = 1; L <= MODEL_MAX_LAYERS; L++) {
        const int32_t h[7] = {2, 2, L, 1, 1, 256, 4};
        memcpy(buf, h, sizeof h);
        for (size_t i = 28; i < 64; i++) buf[i] = '}';
        if (ckpt_sniff(buf, 64, why, sizeof why) != CKPT_KIND_LLAMA2C_V0) fail_msg("%d layers: not sniffed as v0", L);
    }
    const int32_t h123[7] = {2, 2, 123, 1, 1, 256, 4};
    memcpy(buf, h123, sizeof h123);
    assert_int_equal(buf[8], '{');
    /* a v0 header cut short: still v0 (the reader calls it truncated) when what is there is plausible */
    assert_int_equal(ckpt_sniff(buf, 20, why, sizeof why), CKPT_KIND_LLAMA2C_V0);
    /* safetensors: the sane header, padded with spaces */
    const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t n = st_bytes(buf, sizeof buf, hdr, 5, 8);
    assert_int_equal(ckpt_sniff(buf, n, why, sizeof why), CKPT_KIND_SAFETENSORS);
    assert_int_equal(ckpt_sniff(buf, 8 + strlen(hdr) + 5, why, sizeof why), CKPT_KIND_SAFETENSORS); /* no data */
    /* ... and each way it stops being sane */
    assert_int_equal(ckpt_sniff(buf, 8 + strlen(hdr) - 1, why, sizeof why), CKPT_KIND_UNKNOWN); /* cut in the header */
    assert_contains(why, "past the end");
    n = st_bytes(buf, sizeof buf, "{\"a\":1}xyz", 0, 0);
    assert_int_equal(ckpt_sniff(buf, n, why, sizeof why), CKPT_KIND_UNKNOWN);
    assert_contains(why, "do not end with '}'");
    n = st_bytes(buf, sizeof buf, " {\"a\":1}", 0, 0);
    assert_int_equal(ckpt_sniff(buf, n, why, sizeof why), CKPT_KIND_UNKNOWN);
    assert_contains(why, "byte 8 is 0x20, not '{'");
    n = st_bytes(buf, sizeof buf, "{", 0, 0);
    assert_int_equal(ckpt_sniff(buf, n, why, sizeof why), CKPT_KIND_UNKNOWN);
    n = st_bytes(buf, sizeof buf, hdr, 0, 0);
    buf[4] = 1; /* header length + 2^32: past the end, and above the 100 MB cap */
    assert_int_equal(ckpt_sniff(buf, n, why, sizeof why), CKPT_KIND_UNKNOWN);
    assert_contains(why, "100000000");
    /* random bytes: never a crash, and only what the rules allow */
    uint64_t s = 99;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = (size_t)(lcg_next(&s) % 80);
        for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)lcg_next(&s);
        if (iter % 3 == 0 && len > 9) buf[8] = '{', buf[len - 1] = '}', buf[4] = buf[5] = buf[6] = buf[7] = 0;
        ckpt_kind k = ckpt_sniff(buf, len, why, sizeof why);
        if (k == CKPT_KIND_SAFETENSORS) {
            uint64_t hl = 0;
            for (int i = 7; i >= 0; i--) hl = hl << 8 | buf[i];
            assert_true(hl >= 2 && hl <= len - 8 && buf[8] == '{');
        }
    }
}

static void write_st(const char *path, const char *header, size_t pad, size_t data_len) {
    static unsigned char buf[1 << 14];
    write_bytes(path, buf, st_bytes(buf, sizeof buf, header, pad, data_len));
}

/* the safetensors rules the fuzz findings broke, on hand-written files (no config.json: a file
 * that passes every rule is refused for its missing config, which proves it got that far) */
static void test_safetensors_layout(void **state) {
    (void)state;
    char dir[4096], path[4200];
    tmp_dir(dir, sizeof dir, "layout");
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
#define T2(a, b, c, d) "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" a "," b "]}," \
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" c "," d "]}}"
    write_st(path, T2("0", "8", "8", "16"), 0, 16);
    EXPECT_BAD(path, NULL, "config.json", "cannot read"); /* the good layout */
    write_st(path, T2("0", "8", "8", "16"), 7, 16);
    EXPECT_BAD(path, NULL, "config.json", "cannot read"); /* space padding is allowed */
    write_st(path, T2("8", "16", "0", "8"), 0, 16);
    EXPECT_BAD(path, NULL, "config.json", "cannot read"); /* any order */
    write_st(path, T2("0", "8", "4", "12"), 0, 12);
    EXPECT_BAD(path, NULL, path, "\"a\"", "\"b\"", "overlap");
    write_st(path, T2("0", "8", "0", "8"), 0, 8);
    EXPECT_BAD(path, NULL, path, "overlap"); /* aliased */
    write_st(path, T2("0", "8", "12", "20"), 0, 20);
    EXPECT_BAD(path, NULL, path, "bytes [8, 12)", "no tensor");
    write_st(path, T2("4", "12", "12", "20"), 0, 20);
    EXPECT_BAD(path, NULL, path, "bytes [0, 4)", "no tensor");
    write_st(path, T2("0", "8", "8", "16"), 0, 20);
    EXPECT_BAD(path, NULL, path, "4 bytes after the last tensor");
    write_st(path, T2("0.5", "8.5", "8", "16"), 0, 16);
    EXPECT_BAD(path, NULL, path, "\"a\"", "integers");
    write_st(path, T2("0", "8", "8", "1e300"), 0, 16);
    EXPECT_BAD(path, NULL, path, "\"b\"", "integers");
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 0, 16);
    EXPECT_BAD(path, NULL, path, "\"a\" appears twice");
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x}", 0, 8);
    EXPECT_BAD(path, NULL, path, "0x78, not a padding space");
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}\n", 0, 8);
    EXPECT_BAD(path, NULL, path, "is not a safetensors checkpoint", "not a JSON object");
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1000000000000,1000000000000],\"data_offsets\":[0,0]}}", 0, 0);
    EXPECT_BAD(path, NULL, path, "\"a\" too large");
    write_st(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                   "\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]}}", 0, 4);
    EXPECT_BAD(path, NULL, "config.json", "cannot read"); /* a scalar and an empty tensor */
    write_st(path, "{}", 0, 0);
    EXPECT_BAD(path, NULL, "config.json", "cannot read");
    write_st(path, "{}", 0, 1);
    EXPECT_BAD(path, NULL, path, "1 bytes after the last tensor");
#undef T2
    /* config path that is a folder */
    write_st(path, "{}", 0, 0);
    {
        const char *needles[] = {"is a folder, not a config.json", NULL};
        expect_bad(path, "auto", dir, needles);
    }
    /* format = llama2c on a safetensors file, safetensors on text */
    {
        const char *needles[] = {"is not a llama2.c checkpoint", "safetensors file", NULL};
        expect_bad(path, "llama2c", NULL, needles);
    }
    write_text(path, "# pathens\n\nnot a model\n");
    {
        const char *needles[] = {"is not a safetensors checkpoint", "header length", NULL};
        expect_bad(path, "safetensors", NULL, needles);
    }
    snprintf(path, sizeof path, "%s/README.md", dir);
    write_text(path, "# pathens\n\nnot a model either\n");
    EXPECT_BAD(path, NULL, path, "is not a llama2.c / safetensors checkpoint", "starts 23 20 70 61", "docs/formats.md");
}

/* llama2.c files: more layers than the old 1024-tensor cap, the '{' at byte 8, INT_MIN vocab */
static void test_llama2c_layers(void **state) {
    (void)state;
    char dir[4096], path[4200];
    tmp_dir(dir, sizeof dir, "l2c-layers");
    snprintf(path, sizeof path, "%s/m.bin", dir);
    static const int32_t layers[] = {122, 123, 379, MODEL_MAX_LAYERS};
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        const int32_t h[7] = {2, 2, layers[i], 1, 1, 4, 2};
        uint64_t bytes;
        char why[160];
        assert_int_equal(ckpt_llama2c_check(h, 7, 0, 0, &bytes, why, sizeof why), 0);
        unsigned char *b = calloc(1, (size_t)bytes);
        memcpy(b, h, sizeof h);
        write_bytes(path, b, (size_t)bytes);
        pe_err    err = {0};
        ckpt_file ck;
        model     m;
        if (ckpt_open(&ck, path, "auto", NULL, &err) != PE_OK) fail_msg("%d layers: %s", layers[i], err.msg);
        assert_string_equal(ck.format, "llama2c-v0");
        assert_int_equal(ck.n_tensors, 1 + 9 * layers[i] + 1);
        assert_int_equal(model_init(&m, &ck, &err), PE_OK);
        assert_int_equal(m.cfg.n_layers, layers[i]);
        model_free(&m);
        ckpt_close(&ck);
        /* one float short, or one more: truncated / too long, never read as something else */
        write_bytes(path, b, (size_t)bytes - 4);
        EXPECT_BAD(path, NULL, path, "llama2c-v0", "truncated");
        free(b);
    }
    const int32_t intmin[7] = {64, 172, 5, 8, 4, INT32_MIN, 512};
    write_bytes(path, intmin, sizeof intmin);
    EXPECT_BAD(path, NULL, path, "is not a llama2.c / safetensors checkpoint", "vocab_size -2147483648");
    const char *needles[] = {"is not a llama2.c checkpoint", "vocab_size -2147483648", NULL};
    expect_bad(path, "llama2c", NULL, needles);
    const int32_t too_many[7] = {2, 2, MODEL_MAX_LAYERS + 1, 1, 1, 4, 2};
    write_bytes(path, too_many, sizeof too_many);
    EXPECT_BAD(path, NULL, path, "n_layers 1001");
}

/* config.json numbers: finite float32, sane ranges, sizes that cannot overflow */
static void test_config_limits(void **state) {
    (void)state;
#define VIT "{\"format\":\"pathens\",\"dim\":4,\"hidden_dim\":8,\"n_layers\":1,\"n_heads\":1,\"seq_len\":5," \
            "\"norm\":\"layernorm\",\"pos\":\"learned\",\"head\":\"cls_token\",\"n_classes\":2,\"input\":\"patches\"," \
            "\"channels\":1,"
    static const struct { const char *json, *needle; } cases[] = {
        {VIT "\"image_size\":4,\"patch_size\":2}", NULL},
        {VIT "\"image_size\":4,\"patch_size\":2,\"norm_eps\":1e300}", "\"norm_eps\" = 1e+300 is not a finite float32"},
        {VIT "\"image_size\":4,\"patch_size\":2,\"norm_eps\":1e39}", "\"norm_eps\" = 1e+39 is not a finite float32"},
        {VIT "\"image_size\":4,\"patch_size\":2,\"norm_eps\":-1e-5}", "norm_eps must be in (0, 1]"},
        {VIT "\"image_size\":4,\"patch_size\":2,\"norm_eps\":2}", "norm_eps must be in (0, 1]"},
        {VIT "\"image_size\":4,\"patch_size\":2,\"norm_eps\":1e-50}", "norm_eps must be in (0, 1]"}, /* 0 as float32 */
        {VIT "\"image_size\":4,\"patch_size\":2,\"pixel_std\":1e39}", "\"pixel_std\" = 1e+39 is not a finite float32"},
        {VIT "\"image_size\":4,\"patch_size\":2,\"pixel_mean\":-1e39}", "\"pixel_mean\" = -1e+39"},
        {VIT "\"image_size\":4,\"patch_size\":2,\"pixel_std\":1e30}", "pixel_std must be in [1e-6, 1000]"},
        {VIT "\"image_size\":4,\"patch_size\":2,\"pixel_std\":0}", "pixel_std must be in"},
        {VIT "\"image_size\":4,\"patch_size\":2,\"pixel_mean\":1e20}", "pixel_mean must be in [-1000, 1000]"},
        {VIT "\"image_size\":1000000000,\"patch_size\":1}", "image_size 1000000000"},
        {VIT "\"image_size\":65536,\"patch_size\":65536}", "image_size 65536"},
        {VIT "\"image_size\":8192,\"patch_size\":1}", "seq_len 5 is less than the 67108865 patch tokens"},
        {VIT "\"image_size\":4,\"patch_size\":2,\"n_classes\":1000000000}", "n_classes in [1, 2^24]"},
        {"{\"format\":\"pathens\",\"dim\":4,\"hidden_dim\":8,\"n_layers\":1,\"n_heads\":1,\"seq_len\":5,\"vocab_size\":9,"
         "\"pos\":\"rope\",\"rope_theta\":1e30}", "rope_theta must be in [1, 1e10]"},
        {"{\"format\":\"pathens\",\"dim\":4,\"hidden_dim\":8,\"n_layers\":1,\"n_heads\":1,\"seq_len\":5,\"vocab_size\":9,"
         "\"pos\":\"rope\",\"rope_theta\":0.5}", "rope_theta must be in [1, 1e10]"},
        {"{\"format\":\"pathens\",\"dim\":4,\"hidden_dim\":8,\"n_layers\":1001,\"n_heads\":1,\"seq_len\":5,\"vocab_size\":9}",
         "implausibly large"},
        {"{\"model_type\":\"gpt2\",\"n_embd\":1000000000,\"n_layer\":1,\"n_head\":1,\"n_positions\":4,\"vocab_size\":5}",
         "n_embd 1000000000 must be in [1, 65536]"},
        {"{\"model_type\":\"gpt2\",\"n_embd\":8,\"n_layer\":1,\"n_head\":1,\"n_positions\":4,\"vocab_size\":5,\"n_inner\":-4}",
         "n_inner -4 must be positive"},
        {"{\"model_type\":\"gpt2\",\"n_embd\":8,\"n_layer\":1,\"n_head\":1,\"n_positions\":4,\"vocab_size\":5,"
         "\"layer_norm_epsilon\":1e300}", "\"layer_norm_epsilon\" = 1e+300 is not a finite float32"},
        {"{\"model_type\":\"gpt2\",\"n_embd\":8,\"n_layer\":1,\"n_head\":1,\"n_positions\":4,\"vocab_size\":5}", NULL},
    };
#undef VIT
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        model_config c;
        int          hf;
        pe_err       err = {0};
        pe_status    st  = ckpt_parse_config_json(&c, &hf, cases[i].json, "cfg.json", &err);
        if (!cases[i].needle) {
            if (st != PE_OK) fail_msg("case %zu refused: %s", i, err.msg);
            continue;
        }
        if (st != PE_ERR_INPUT) fail_msg("case %zu: status %d, expected an error with '%s'", i, (int)st, cases[i].needle);
        assert_contains(err.msg, "cfg.json");
        assert_contains(err.msg, cases[i].needle);
    }
    /* model_image_seq_len saturates instead of overflowing on a config not yet checked */
    model_config c = cfg_vit_cls();
    c.image_size = 1000000000, c.patch_size = 1;
    assert_int_equal(model_image_seq_len(&c), INT32_MAX);
    c.image_size = 46341 * 2, c.patch_size = 2; /* 46341^2 + 1 > 2^31 - 1 */
    assert_int_equal(model_image_seq_len(&c), INT32_MAX);
    c.image_size = 8, c.patch_size = 4;
    assert_int_equal(model_image_seq_len(&c), 5);
}

/* ---- Hugging Face model folders (issue 11) ----------------------------------------------------
 * A native llama model (interleaved RoPE) written as an HF Llama folder: q/k rows permuted the way
 * transformers' convert_llama_weights_to_hf does (pairs (2i, 2i+1) of a head to (i, i + HS/2)),
 * names mapped, an HF config.json. With rotate_half RoPE it must compute what the native model
 * computes; one file or two shards + index, bit for bit the same; every broken folder refused. */

static const char *const HF_LLAMA_MAP[][2] = {
    {"attn_norm.weight", "input_layernorm.weight"}, {"attn.wq.weight", "self_attn.q_proj.weight"},
    {"attn.wk.weight", "self_attn.k_proj.weight"},  {"attn.wv.weight", "self_attn.v_proj.weight"},
    {"attn.wo.weight", "self_attn.o_proj.weight"},  {"mlp_norm.weight", "post_attention_layernorm.weight"},
    {"mlp.w1.weight", "mlp.gate_proj.weight"},      {"mlp.w2.weight", "mlp.down_proj.weight"},
    {"mlp.w3.weight", "mlp.up_proj.weight"},
};

/* the HF name of a native llama tensor */
static void hf_llama_name(char *out, size_t n, const char *native) {
    int l;
    char rest[96];
    if (!strcmp(native, "tok_emb.weight")) snprintf(out, n, "model.embed_tokens.weight");
    else if (!strcmp(native, "final_norm.weight")) snprintf(out, n, "model.norm.weight");
    else if (!strcmp(native, "lm_head.weight")) snprintf(out, n, "lm_head.weight");
    else {
        assert_int_equal(sscanf(native, "layers.%d.%95s", &l, rest), 2);
        for (size_t i = 0; i < sizeof HF_LLAMA_MAP / sizeof *HF_LLAMA_MAP; i++)
            if (!strcmp(rest, HF_LLAMA_MAP[i][0])) {
                snprintf(out, n, "model.layers.%d.%s", l, HF_LLAMA_MAP[i][1]);
                return;
            }
        fail_msg("no HF name for %s", native);
    }
}

/* rows (heads, hs, in): row h*hs + 2i + j -> h*hs + j*hs/2 + i (transformers' permute) */
static void permute_rows_half(float *dst, const float *src, int heads, int hs, int in) {
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < hs / 2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(dst + ((size_t)h * hs + (size_t)j * hs / 2 + i) * in, src + ((size_t)h * hs + 2 * i + j) * in,
                       (size_t)in * sizeof(float));
}

typedef struct {
    raw_tensor r[64];
    float     *perm[64];
    int        n;
} hf_folder;

/* the tensors of native llama model t under HF names (q/k permuted; F32, views into t) */
static void hf_llama_tensors(hf_folder *f, const model_config *c, const tu_tensors *t) {
    memset(f, 0, sizeof *f);
    assert_true(t->n <= 64);
    int HS = c->dim / c->n_heads;
    for (int i = 0; i < t->n; i++) {
        raw_tensor *r = &f->r[f->n++];
        hf_llama_name(r->name, sizeof r->name, t->specs[i].name);
        r->dtype = "F32";
        r->ndim  = t->specs[i].ndim;
        for (int d = 0; d < r->ndim; d++) r->shape[d] = t->specs[i].shape[d];
        r->nbytes = 4 * tu_spec_numel(&t->specs[i]);
        r->data   = t->data[i];
        const char *s = t->specs[i].name;
        size_t      k = strlen(s);
        int is_q = k > 15 && !strcmp(s + k - 15, ".attn.wq.weight"), is_k = k > 15 && !strcmp(s + k - 15, ".attn.wk.weight");
        if (is_q || is_k) {
            float *p = malloc(r->nbytes);
            assert_non_null(p);
            permute_rows_half(p, t->data[i], (int)(t->specs[i].shape[0] / HS), HS, (int)t->specs[i].shape[1]);
            r->data = f->perm[i] = p;
        }
    }
}

static void hf_folder_free(hf_folder *f) {
    for (int i = 0; i < 64; i++) free(f->perm[i]);
}

static void write_hf_llama_config(const char *dir, const model_config *c, const char *model_type, const char *extra) {
    char path[4200], json[2048];
    snprintf(json, sizeof json,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"%s\", \"hidden_size\": %d, "
             "\"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
             "\"num_key_value_heads\": %d, \"vocab_size\": %d, \"max_position_embeddings\": %d, \"rms_norm_eps\": %g, "
             "\"rope_theta\": %g, \"tie_word_embeddings\": false, \"torch_dtype\": \"float32\"%s%s}",
             model_type, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len,
             (double)c->norm_eps, (double)c->rope_theta, extra && strstr(extra, "hidden_act") ? "" : ", \"hidden_act\": \"silu\"",
             extra ? extra : "");
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, json);
}

/* a fresh folder PATHENS_TEST_TMP/ckpt-<tag> without the files a previous run left */
static void hf_dir(char *out, size_t n, const char *tag) {
    tmp_dir(out, n, tag);
    static const char *const files[] = {"model.safetensors.index.json", "model-00001-of-00002.safetensors",
                                        "model-00002-of-00002.safetensors", "pytorch_model.bin"};
    char p[4300];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        unlink(p);
    }
}

/* shards: 1 = model.safetensors; 2 = the first `split` tensors in shard 1, the rest in shard 2,
 * with an index (index_extra: more weight_map entries, "" for none) */
static void write_hf_tensors(const char *dir, const raw_tensor *r, int n, int shards, int split, const char *index_extra) {
    char path[4300];
    if (shards == 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        write_raw_safetensors(path, r, n, 0, 0);
        return;
    }
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", dir);
    write_raw_safetensors(path, r, split, 0, 0);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    write_raw_safetensors(path, r + split, n - split, 0, 0);
    size_t cap = 256 + (size_t)n * 160, len = 0;
    char  *js  = malloc(cap);
    assert_non_null(js);
    len += (size_t)snprintf(js + len, cap - len, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(js + len, cap - len, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "",
                                r[i].name, i < split ? 1 : 2);
    snprintf(js + len, cap - len, "%s}}", index_extra);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    write_text(path, js);
    free(js);
}

/* logits (B, T, V) of the model at path, fast (ref = 0) or naive (ref = 1) */
static float *path_logits(const char *path, const int *tok, const int *lens, int B, int T, int ref, ckpt_file *ck_out,
                          model *m_out) {
    pe_err err = {0};
    if (ckpt_open(ck_out, path, "auto", NULL, &err) != PE_OK) fail_msg("ckpt_open %s: %s", path, err.msg);
    if (model_init(m_out, ck_out, &err) != PE_OK) fail_msg("model_init %s: %s", path, err.msg);
    model_acts a;
    assert_int_equal(model_acts_init(&a, m_out, B, T, &err), PE_OK);
    float *lg = calloc((size_t)B * T * m_out->cfg.vocab_size, sizeof(float));
    assert_non_null(lg);
    assert_int_equal(model_forward_tokens(lg, &a, m_out, tok, lens, B, T, ref, &err), PE_OK);
    model_acts_free(&a);
    return lg;
}

static void test_hf_llama_folder(void **state) {
    (void)state;
    model_config c = cfg_llama();
    c.rope_theta   = 500000.0f;
    char native[4096], one[4096], two[4096];
    tmp_dir(native, sizeof native, "hf-native");
    hf_dir(one, sizeof one, "hf-llama-one");
    hf_dir(two, sizeof two, "hf-llama-two");
    tu_tensors t;
    pe_err     err = {0};
    assert_int_equal(tu_random_tensors(&t, &c, 31, &err), PE_OK);
    assert_int_equal(tu_write_model_dir(&c, native, &t, &err), PE_OK);
    hf_folder f;
    hf_llama_tensors(&f, &c, &t);
    write_hf_tensors(one, f.r, f.n, 1, 0, "");
    write_hf_llama_config(one, &c, "llama", NULL);
    write_hf_tensors(two, f.r, f.n, 2, f.n / 2, "");
    write_hf_llama_config(two, &c, "llama", NULL);
    enum { B = 2, T = 70 };
    int tok[B * T], lens[B] = {T, 37};
    uint64_t s = 5;
    for (int i = 0; i < B * T; i++) tok[i] = (int)(lcg_next(&s) % (uint64_t)c.vocab_size);
    ckpt_file ck[4];
    model     m[4];
    char      npath[4200];
    snprintf(npath, sizeof npath, "%s/model.safetensors", native);
    float *ln = path_logits(npath, tok, lens, B, T, 0, &ck[0], &m[0]);
    float *l1 = path_logits(one, tok, lens, B, T, 0, &ck[1], &m[1]);
    float *l2 = path_logits(two, tok, lens, B, T, 0, &ck[2], &m[2]);
    float *lr = path_logits(two, tok, lens, B, T, 1, &ck[3], &m[3]);
    assert_string_equal(m[1].source, "safetensors-hf-llama");
    assert_int_equal(ck[1].hf_family, CKPT_HF_LLAMA);
    assert_int_equal(m[1].cfg.rope_style, MODEL_ROPE_HALF);
    assert_null(m[1].owned); /* aligned F32: every weight a view into the mapping */
    assert_int_equal(ck[1].n_shards, 1);
    assert_int_equal(ck[2].n_shards, 2);
    assert_int_equal(ck[2].shards[0].n_tensors + ck[2].shards[1].n_tensors, f.n);
    assert_int_equal(m[1].n_params, m[0].n_params);
    /* rotate_half on permuted rows = interleaved pairs on the original ones (sums in another order) */
    check_valid_logits(l1, ln, lens, B, T, c.vocab_size, 2e-5f, "HF llama folder vs native");
    check_valid_logits(lr, ln, lens, B, T, c.vocab_size, 2e-5f, "HF llama folder (naive kernels) vs native");
    /* sharding changes nothing: the same bits */
    for (int b = 0; b < B; b++)
        assert_memory_equal(l1 + (size_t)b * T * c.vocab_size, l2 + (size_t)b * T * c.vocab_size,
                            (size_t)lens[b] * c.vocab_size * sizeof(float));
    for (int i = 0; i < 4; i++) {
        model_free(&m[i]);
        ckpt_close(&ck[i]);
    }
    free(ln), free(l1), free(l2), free(lr);
    hf_folder_free(&f);
    tu_free_tensors(&t);
}

/* a folder broken one way; every one refused with PE_ERR_INPUT naming the file and the problem */
static void test_hf_folder_refusals(void **state) {
    (void)state;
    model_config c = cfg_llama();
    char         dir[4096], path[4300], path2[4300];
    tu_tensors   t;
    pe_err       err = {0};
    assert_int_equal(tu_random_tensors(&t, &c, 32, &err), PE_OK);
    hf_folder f;
    hf_llama_tensors(&f, &c, &t);
    int n = f.n, half = n / 2;

    /* unknown model_type */
    hf_dir(dir, sizeof dir, "hf-bad-type");
    write_hf_tensors(dir, f.r, n, 1, 0, "");
    write_hf_llama_config(dir, &c, "mamba", NULL);
    EXPECT_BAD(dir, NULL, "config.json", "model_type \"mamba\" is not supported", "llama");
    /* an unsupported rope_scaling type; a hidden_act other than silu */
    write_hf_llama_config(dir, &c, "llama", ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}");
    EXPECT_BAD(dir, NULL, "config.json", "rope_scaling type \"linear\"");
    write_hf_llama_config(dir, &c, "llama", ", \"hidden_act\": \"gelu\"");
    EXPECT_BAD(dir, NULL, "config.json", "hidden_act \"gelu\"");
    /* a shape that disagrees with config.json: one layer fewer in the config is an extra tensor, a
     * wider intermediate_size a wrong shape */
    model_config c2 = c;
    c2.n_layers = 1;
    write_hf_llama_config(dir, &c2, "llama", NULL);
    EXPECT_BAD(dir, NULL, "model.safetensors", "unexpected tensor \"model.layers.1.", "config.json");
    c2 = c, c2.hidden_dim += 2;
    write_hf_llama_config(dir, &c2, "llama", NULL);
    EXPECT_BAD(dir, NULL, "model.safetensors", "model.layers.0.mlp.", "has shape", "config.json");

    /* a missing tensor, an extra tensor */
    write_hf_llama_config(dir, &c, "llama", NULL);
    raw_tensor r[66];
    memcpy(r, f.r, (size_t)n * sizeof *r);
    for (int i = 0; i < n; i++)
        if (!strcmp(r[i].name, "model.layers.1.mlp.up_proj.weight")) r[i] = r[--n];
    write_hf_tensors(dir, r, n, 1, 0, "");
    EXPECT_BAD(dir, NULL, "model.safetensors", "\"model.layers.1.mlp.up_proj.weight\" is missing");
    n = f.n;
    memcpy(r, f.r, (size_t)n * sizeof *r);
    r[n] = r[0];
    snprintf(r[n++].name, sizeof r[0].name, "model.layers.0.mlp.extra_proj.weight");
    write_hf_tensors(dir, r, n, 1, 0, "");
    EXPECT_BAD(dir, NULL, "model.safetensors", "unexpected tensor \"model.layers.0.mlp.extra_proj.weight\"");
    n = f.n;
    /* the transposed k_proj of a GQA model: [C, KVC] instead of [KVC, C] */
    memcpy(r, f.r, (size_t)n * sizeof *r);
    for (int i = 0; i < n; i++)
        if (!strcmp(r[i].name, "model.layers.0.self_attn.k_proj.weight")) {
            int64_t d = r[i].shape[0];
            r[i].shape[0] = r[i].shape[1], r[i].shape[1] = d;
        }
    write_hf_tensors(dir, r, n, 1, 0, "");
    EXPECT_BAD(dir, NULL, "model.safetensors", "\"model.layers.0.self_attn.k_proj.weight\" has shape [32, 16]", "[16, 32]");

    /* no weights at all; only a pickle */
    hf_dir(dir, sizeof dir, "hf-bad-empty");
    write_hf_llama_config(dir, &c, "llama", NULL);
    EXPECT_BAD(dir, NULL, dir, "no model.safetensors and no model.safetensors.index.json");
    snprintf(path, sizeof path, "%s/pytorch_model.bin", dir);
    write_text(path, "PK");
    EXPECT_BAD(dir, NULL, dir, "pytorch_model.bin");
    /* no config.json */
    hf_dir(dir, sizeof dir, "hf-bad-noconfig");
    write_hf_tensors(dir, f.r, f.n, 1, 0, "");
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    EXPECT_BAD(dir, NULL, dir, "no config.json");

    /* sharded: a missing shard, a truncated shard, the index and the shards disagreeing */
    hf_dir(dir, sizeof dir, "hf-bad-shards");
    write_hf_llama_config(dir, &c, "llama", NULL);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", dir);
    snprintf(path2, sizeof path2, "%s/model.safetensors.index.json", dir);
    write_hf_tensors(dir, f.r, f.n, 2, half, "");
    unlink(path);
    EXPECT_BAD(dir, NULL, path, "cannot open this shard", "model.safetensors.index.json");
    write_hf_tensors(dir, f.r, f.n, 2, half, "");
    {
        size_t len = 0;
        char  *b   = read_bytes(path, &len);
        write_bytes(path, b, len - 100);
        free(b);
    }
    EXPECT_BAD(dir, NULL, path, "truncated");
    /* one shard given as the model file: pointed at the folder */
    {
        char shard1[4300];
        snprintf(shard1, sizeof shard1, "%s/model-00001-of-00002.safetensors", dir);
        EXPECT_BAD(shard1, NULL, shard1, "is one shard of a sharded model", "set [model] path to the folder");
    }
    /* the index names a tensor that no shard holds */
    write_hf_tensors(dir, f.r, f.n, 2, half, ", \"model.layers.9.mlp.up_proj.weight\": \"model-00002-of-00002.safetensors\"");
    EXPECT_BAD(dir, NULL, "model.safetensors.index.json", "names tensor \"model.layers.9.mlp.up_proj.weight\"",
               "does not hold it");
    /* a shard holds a tensor the index does not list: shard 2 written with one tensor more */
    write_hf_tensors(dir, f.r, f.n, 2, half, "");
    write_raw_safetensors(path, f.r + half - 1, f.n - half + 1, 0, 0);
    EXPECT_BAD(dir, NULL, "model-00002-of-00002.safetensors", f.r[half - 1].name, "places in",
               "model-00001-of-00002.safetensors");
    /* index: not JSON; no weight_map; a shard name with a path; empty */
    write_text(path2, "{\"weight_map\": ");
    EXPECT_BAD(dir, NULL, path2, "not a safetensors index");
    write_text(path2, "{\"metadata\": {}}");
    EXPECT_BAD(dir, NULL, path2, "weight_map");
    write_text(path2, "{\"weight_map\": {\"model.norm.weight\": \"../elsewhere.safetensors\"}}");
    EXPECT_BAD(dir, NULL, path2, "no path");
    write_text(path2, "{\"weight_map\": {}}");
    EXPECT_BAD(dir, NULL, path2, "empty");

    /* a sliding window smaller than the context: loads, runs up to the window, refused past it */
    hf_dir(dir, sizeof dir, "hf-window");
    write_hf_tensors(dir, f.r, f.n, 1, 0, "");
    write_hf_llama_config(dir, &c, "mistral", ", \"sliding_window\": 16");
    {
        ckpt_file ck;
        model     m;
        model_acts a;
        assert_int_equal(ckpt_open(&ck, dir, "auto", NULL, &err), PE_OK);
        assert_int_equal(model_init(&m, &ck, &err), PE_OK);
        assert_int_equal(m.cfg.sliding_window, 16);
        assert_int_equal(model_acts_init(&a, &m, 1, 16, &err), PE_OK);
        model_acts_free(&a);
        assert_int_equal(model_acts_init(&a, &m, 1, 17, &err), PE_ERR_INPUT);
        assert_contains(err.msg, "sliding_window");
        assert_contains(err.msg, "context");
        model_free(&m);
        ckpt_close(&ck);
    }
    /* training refuses each HF switch (on a config it otherwise trains) instead of computing
     * something else */
    model_config g = cfg_gpt();
    g.pos = MODEL_POS_LEARNED, g.mlp = MODEL_MLP_GELU;
    assert_int_equal(train_check_config(&g, "gpt", &err), PE_OK);
    for (int k = 0; k < 5; k++) {
        model_config h = g;
        if (k == 0) h.parallel_residual = 1;
        if (k == 1) h.head_dim = 8;
        if (k == 2) h.sliding_window = 64;
        if (k == 3) h.qk_norm = 1;
        if (k == 4) h.rope_style = MODEL_ROPE_HALF;
        assert_int_equal(train_check_config(&h, "gpt", &err), PE_ERR_INPUT);
        assert_contains(err.msg, "Hugging Face switches");
    }
    hf_folder_free(&f);
    tu_free_tensors(&t);
}

/* RoPE: the fast kernel against its twin for both pair styles and partial rotary; rotate_half is
 * interleaved RoPE in a permuted basis; llama3 scaling against its formula */
static void test_hf_rope(void **state) {
    (void)state;
    enum { B = 2, T = 33, NH = 3, HS = 12 };
    size_t n = (size_t)B * T * NH * HS;
    float *x0 = malloc(n * sizeof(float)), *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    float *p = malloc(n * sizeof(float)), freq[HS / 2];
    assert_true(x0 && a && b && p);
    tu_fill_random(x0, n, 77, 1.0f);
    model_config c = cfg_llama();
    c.rope_theta = 10000.0f;
    c.dim = NH * HS, c.n_heads = NH, c.n_kv_heads = NH;
    for (int rot = 4; rot <= HS; rot += 8) /* partial (4 of 12) and full */
        for (int half = 0; half < 2; half++) {
            c.rotary_dim = rot == HS ? 0 : rot;
            model_rope_init_freq(freq, &c);
            for (int i = 0; i < rot / 2; i++) assert_true(fabs(freq[i] - pow(10000.0, -2.0 * i / rot)) < 1e-6 * freq[i]);
            memcpy(a, x0, n * sizeof(float));
            memcpy(b, x0, n * sizeof(float));
            kern_rope_freq(a, freq, B, T, NH, HS, rot, half);
            kern_rope_freq_ref(b, freq, B, T, NH, HS, rot, half);
            assert_true(tu_max_abs_diff(a, b, n) < 1e-5f);
            for (size_t k = 0; k < n; k++) /* dims >= R of every head untouched */
                if ((int)(k % HS) >= rot) assert_true(a[k] == x0[k]);
            if (!half) {
                /* the same rotation in the basis where pair i is (i, i + R/2) */
                for (size_t r = 0; r < n / HS; r++)
                    for (int i = 0; i < HS; i++) {
                        int j = i < rot ? (i % 2 ? rot / 2 + i / 2 : i / 2) : i; /* interleaved dim -> half dim */
                        p[r * HS + j] = x0[r * HS + i];
                    }
                kern_rope_freq(p, freq, B, T, NH, HS, rot, 1);
                for (size_t r = 0; r < n / HS; r++)
                    for (int i = 0; i < HS; i++) {
                        int j = i < rot ? (i % 2 ? rot / 2 + i / 2 : i / 2) : i;
                        assert_true(p[r * HS + j] == a[r * HS + i]);
                    }
            }
        }
    /* kern_rope (llama2.c's table) is kern_rope_freq over theta^(-2i/HS), bit for bit */
    c.rotary_dim = 0;
    model_rope_init_freq(freq, &c);
    memcpy(a, x0, n * sizeof(float));
    memcpy(b, x0, n * sizeof(float));
    kern_rope(a, B, T, NH, HS, 10000.0f);
    kern_rope_freq(b, freq, B, T, NH, HS, HS, 0);
    assert_memory_equal(a, b, n * sizeof(float));
    /* llama3 scaling (Llama 3.1 numbers: factor 8, low 1, high 4, original 8192; theta 500000, HS 128) */
    float f128[64];
    c.dim = 128, c.n_heads = 1, c.n_kv_heads = 1, c.rope_theta = 500000.0f;
    c.rope_scaling = MODEL_ROPE_SCALE_LLAMA3, c.rope_factor = 8.0f, c.rope_low_freq_factor = 1.0f;
    c.rope_high_freq_factor = 4.0f, c.rope_orig_ctx = 8192;
    pe_err err_dummy = {0};
    assert_int_equal(model_check_config(&c, "llama3", &err_dummy), PE_OK);
    model_rope_init_freq(f128, &c);
    int kept = 0, divided = 0, blended = 0;
    for (int i = 0; i < 64; i++) {
        double f = pow(500000.0, -2.0 * i / 128.0), wl = 2.0 * M_PI / f, want;
        if (wl < 8192.0 / 4.0) want = f, kept++;
        else if (wl > 8192.0 / 1.0) want = f / 8.0, divided++;
        else {
            double sm = (8192.0 / wl - 1.0) / (4.0 - 1.0);
            want = (1.0 - sm) * f / 8.0 + sm * f, blended++;
        }
        assert_true(fabs(f128[i] - want) <= 2e-6 * want);
    }
    assert_true(kept > 0 && divided > 0 && blended > 0); /* all three branches taken */
    free(x0), free(a), free(b), free(p);
}

/* per-channel pixel normalisation (a DeiT preprocessor_config.json's ImageNet mean / std) */
static void test_hf_pixels_per_channel(void **state) {
    (void)state;
    model_config c = cfg_vit_cls();
    c.channels = 3, c.image_size = 4, c.patch_size = 2, c.seq_len = 5;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    c.pixel_per_channel = 1;
    for (int ch = 0; ch < 3; ch++) c.pixel_mean_c[ch] = mean[ch], c.pixel_std_c[ch] = std[ch];
    pe_err err = {0};
    assert_int_equal(model_check_config(&c, "deit", &err), PE_OK);
    uint8_t px[3 * 16];
    for (int i = 0; i < 48; i++) px[i] = (uint8_t)(i * 5 + 3);
    float patches[4 * 12]; /* (NP = 4, 3 * 2 * 2) */
    model_image_patches(patches, &c, px, 1);
    for (int p = 0; p < 4; p++)
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < 2; y++)
                for (int x = 0; x < 2; x++) {
                    int   row = (p / 2) * 2 + y, col = (p % 2) * 2 + x;
                    float v = px[(ch * 4 + row) * 4 + col];
                    assert_true(patches[p * 12 + ch * 4 + y * 2 + x] == (v / 255.0f - mean[ch]) / std[ch]);
                }
    c.pixel_std_c[2] = 0.0f;
    assert_int_equal(model_check_config(&c, "deit", &err), PE_ERR_INPUT);
    assert_contains(err.msg, "channel 2");
}

/* GPT-NeoX's fused query_key_value, stored per head as (q, k, v) row blocks, is re-laid out once:
 * wq / wk / wv views read the right rows (F32 and BF16), the rest stay views into the mapping */
static void test_hf_neox_fused(void **state) {
    (void)state;
    enum { C = 16, NH = 2, HS = 8, HID = 32, V = 20, L = 1 };
    char dir[4096];
    hf_dir(dir, sizeof dir, "hf-neox");
    float qkv[3 * C * C], qkvb[3 * C], emb[V * C], out[V * C], ln[C], lnb[C], dw[C * C], db[C], w1[HID * C], b1[HID],
        w2[C * HID], b2[C];
    float *all[] = {qkv, qkvb, emb, out, ln, lnb, dw, db, w1, b1, w2, b2};
    size_t cnt[] = {3 * C * C, 3 * C, V * C, V * C, C, C, C * C, C, HID * C, HID, C * HID, C};
    for (int i = 0; i < 12; i++) tu_fill_random(all[i], cnt[i], 100 + i, 0.5f);
    for (int dt = 0; dt < 2; dt++) {
        const char *dtype = dt ? "BF16" : "F32";
        /* names and shapes as transformers writes a GPTNeoXForCausalLM */
        struct { const char *name; float *d; int nd; int64_t s0, s1; } spec[] = {
            {"gpt_neox.embed_in.weight", emb, 2, V, C},
            {"gpt_neox.layers.0.input_layernorm.weight", ln, 1, C, 0},
            {"gpt_neox.layers.0.input_layernorm.bias", lnb, 1, C, 0},
            {"gpt_neox.layers.0.post_attention_layernorm.weight", ln, 1, C, 0},
            {"gpt_neox.layers.0.post_attention_layernorm.bias", lnb, 1, C, 0},
            {"gpt_neox.layers.0.attention.query_key_value.weight", qkv, 2, 3 * C, C},
            {"gpt_neox.layers.0.attention.query_key_value.bias", qkvb, 1, 3 * C, 0},
            {"gpt_neox.layers.0.attention.dense.weight", dw, 2, C, C},
            {"gpt_neox.layers.0.attention.dense.bias", db, 1, C, 0},
            {"gpt_neox.layers.0.mlp.dense_h_to_4h.weight", w1, 2, HID, C},
            {"gpt_neox.layers.0.mlp.dense_h_to_4h.bias", b1, 1, HID, 0},
            {"gpt_neox.layers.0.mlp.dense_4h_to_h.weight", w2, 2, C, HID},
            {"gpt_neox.layers.0.mlp.dense_4h_to_h.bias", b2, 1, C, 0},
            {"gpt_neox.final_layer_norm.weight", ln, 1, C, 0},
            {"gpt_neox.final_layer_norm.bias", lnb, 1, C, 0},
            {"embed_out.weight", out, 2, V, C},
        };
        int        ns = (int)(sizeof spec / sizeof *spec);
        raw_tensor r[16];
        uint16_t  *blob[16] = {0};
        memset(r, 0, sizeof r);
        for (int i = 0; i < ns; i++) {
            size_t numel = (size_t)spec[i].s0 * (spec[i].nd > 1 ? (size_t)spec[i].s1 : 1);
            snprintf(r[i].name, sizeof r[i].name, "%s", spec[i].name);
            r[i].dtype = dtype, r[i].ndim = spec[i].nd, r[i].shape[0] = spec[i].s0, r[i].shape[1] = spec[i].s1;
            if (dt) { /* BF16: round the source so the expected values are exact */
                blob[i] = malloc(2 * numel);
                assert_non_null(blob[i]);
                for (size_t k = 0; k < numel; k++) {
                    blob[i][k]    = f32_to_bf16_rne(spec[i].d[k]);
                    spec[i].d[k] = ckpt_bf16_to_f32(blob[i][k]);
                }
                r[i].data = blob[i], r[i].nbytes = 2 * numel;
            } else {
                r[i].data = spec[i].d, r[i].nbytes = 4 * numel;
            }
        }
        write_hf_tensors(dir, r, ns, 1, 0, "");
        char path[4300];
        snprintf(path, sizeof path, "%s/config.json", dir);
        write_text(path, "{\"model_type\": \"gpt_neox\", \"hidden_size\": 16, \"intermediate_size\": 32, "
                         "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"vocab_size\": 20, "
                         "\"max_position_embeddings\": 32, \"rotary_pct\": 0.5, \"rotary_emb_base\": 10000, "
                         "\"use_parallel_residual\": true, \"hidden_act\": \"gelu\", \"layer_norm_eps\": 1e-5, "
                         "\"tie_word_embeddings\": false}");
        ckpt_file ck;
        model     m;
        pe_err    err = {0};
        if (ckpt_open(&ck, dir, "auto", NULL, &err) || model_init(&m, &ck, &err)) fail_msg("neox %s: %s", dtype, err.msg);
        assert_int_equal(m.cfg.rotary_dim, 4); /* int(8 * 0.5) */
        assert_int_equal(m.cfg.parallel_residual, 1);
        assert_int_equal(m.cfg.head, MODEL_HEAD_LM);
        const model_layer_weights *lw = &m.w.layers[0];
        const model_linear *part[3] = {&lw->wq, &lw->wk, &lw->wv};
        for (int j = 0; j < 3; j++)
            for (int h = 0; h < NH; h++)
                for (int d = 0; d < HS; d++) {
                    int src = h * 3 * HS + j * HS + d, dst = h * HS + d; /* fused row -> row of q, k or v */
                    assert_memory_equal(part[j]->w + (size_t)dst * part[j]->ld, qkv + (size_t)src * C, C * sizeof(float));
                    assert_true(part[j]->b[dst] == qkvb[src]);
                }
        /* the fused tensor (F32 too) is the only copy besides dtype conversion */
        assert_int_equal(m.owned_floats, dt ? (size_t)m.n_params : (size_t)(3 * C * C + 3 * C));
        if (!dt) assert_true(m.w.head.w == (const float *)ckpt_find(&ck, "embed_out.weight")->data);
        model_free(&m);
        ckpt_close(&ck);
        for (int i = 0; i < 16; i++) free(blob[i]);
    }
}

/* the loader's finiteness screen (blocks of 4096 with an exponent test): the first NaN or Inf
 * at block edges, in a later block, with two bad values, and none among the largest, smallest
 * and subnormal finite floats */
static void test_find_nonfinite(void **state) {
    (void)state;
    size_t n = 3 * 4096 + 17;
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t k = 0; k < n; k++) x[k] = (k % 3 == 0) ? FLT_MAX : (k % 3 == 1 ? -FLT_MIN : 1e-45f);
    assert_int_equal(model_find_nonfinite(x, n), n);
    assert_int_equal(model_find_nonfinite(x, 0), 0);
    const size_t at[] = {0, 1, 4095, 4096, 4097, 8191, 8192, 12287, 12288, n - 1};
    const float  bad[] = {NAN, INFINITY, -INFINITY, -NAN};
    for (size_t a = 0; a < sizeof at / sizeof at[0]; a++)
        for (size_t b = 0; b < 4; b++) {
            float keep = x[at[a]];
            x[at[a]] = bad[b];
            assert_int_equal(model_find_nonfinite(x, n), at[a]);
            assert_int_equal(model_find_nonfinite(x, at[a]), at[a]); /* not in the first at[a] values */
            assert_int_equal(model_find_nonfinite(x, at[a] + 1), at[a]);
            x[at[a]] = keep;
        }
    x[9000] = NAN, x[5000] = INFINITY;
    assert_int_equal(model_find_nonfinite(x, n), 5000);
    assert_int_equal(model_find_nonfinite(x + 5001, n - 5001), 9000 - 5001); /* unaligned start */
    free(x);
}

int main(void) {
    int stories = tu_have_data("stories260K.bin", "stories260K_v1.bin", NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_json),
        cmocka_unit_test(test_roundtrip_gpt),
        cmocka_unit_test(test_roundtrip_llama),
        cmocka_unit_test(test_roundtrip_vit_cls),
        cmocka_unit_test(test_roundtrip_vit_mean),
        cmocka_unit_test(test_roundtrip_vit_rope),
        cmocka_unit_test(test_roundtrip_bidir),
        cmocka_unit_test(test_hf_gpt2),
        cmocka_unit_test(test_half_conversions_exhaustive),
        cmocka_unit_test(test_mixed_dtypes),
        cmocka_unit_test(test_misaligned_f32),
        cmocka_unit_test(test_bad_llama2c),
        cmocka_unit_test(test_bad_safetensors),
        cmocka_unit_test(test_fuzz_safetensors),
        cmocka_unit_test(test_checked_arithmetic),
        tu_needs(stories, cmocka_unit_test(test_llama2c_check)),
        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_safetensors_layout),
        cmocka_unit_test(test_llama2c_layers),
        cmocka_unit_test(test_config_limits),
        cmocka_unit_test(test_hf_llama_folder),
        cmocka_unit_test(test_hf_folder_refusals),
        cmocka_unit_test(test_hf_rope),
        cmocka_unit_test(test_hf_neox_fused),
        cmocka_unit_test(test_hf_pixels_per_channel),
        cmocka_unit_test(test_find_nonfinite),
    };
    return tu_finish(cmocka_run_group_tests(tests, NULL, NULL)); /* 77 if a test skipped in tu_data_path */
}
