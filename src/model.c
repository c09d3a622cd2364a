/* model.c: config checks, the tensor size table, weight binding (views into the checkpoint's
 * mmap), the batched forward pass and the token-by-token reference loop. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "kernels.h"

/* ---- config ------------------------------------------------------------------------------ */

int model_image_seq_len(const model_config *c) {
    if (c->input != MODEL_INPUT_PATCHES || c->patch_size <= 0 || c->image_size <= 0) return 0;
    /* int64: a config not yet checked may hold image_size 1e9 with patch_size 1 */
    int64_t per = c->image_size / c->patch_size, n = per * per + (c->head == MODEL_HEAD_CLS_TOKEN ? 1 : 0);
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

pe_status model_check_config(const model_config *c, const char *where, pe_err *err) {
#define REQUIRE(cond, ...)                                       \
    do {                                                         \
        if (!(cond)) {                                           \
            char _m[512];                                        \
            snprintf(_m, sizeof _m, __VA_ARGS__);                \
            return pe_fail(err, PE_ERR_INPUT, "%s: %s", where, _m); \
        }                                                        \
    } while (0)
    /* positivity and bounds first: nothing below multiplies an unchecked number */
    REQUIRE(c->dim > 0 && c->n_layers > 0 && c->n_heads > 0 && c->hidden_dim > 0 && c->seq_len > 0,
            "dim (%d), hidden_dim (%d), n_layers (%d), n_heads (%d) and seq_len (%d) must be positive", c->dim,
            c->hidden_dim, c->n_layers, c->n_heads, c->seq_len);
    REQUIRE(c->dim <= MODEL_MAX_DIM && c->hidden_dim <= MODEL_MAX_HIDDEN && c->n_layers <= MODEL_MAX_LAYERS &&
                c->seq_len <= MODEL_MAX_SEQ,
            "implausibly large dims (dim %d, hidden_dim %d, n_layers %d, seq_len %d; the limits are %d, %d, %d, %d)",
            c->dim, c->hidden_dim, c->n_layers, c->seq_len, MODEL_MAX_DIM, MODEL_MAX_HIDDEN, MODEL_MAX_LAYERS,
            MODEL_MAX_SEQ);
    REQUIRE(c->head_dim > 0 || c->dim % c->n_heads == 0, "dim %d is not a multiple of n_heads %d", c->dim, c->n_heads);
    REQUIRE(c->head_dim >= 0 && c->head_dim <= MODEL_MAX_DIM && (int64_t)c->n_heads * model_head_size(c) <= MODEL_MAX_DIM,
            "head_dim %d x n_heads %d (the query width) must be at most %d", model_head_size(c), c->n_heads, MODEL_MAX_DIM);
    REQUIRE(c->n_kv_heads > 0 && c->n_heads % c->n_kv_heads == 0, "n_heads %d is not a multiple of n_kv_heads %d",
            c->n_heads, c->n_kv_heads);
    REQUIRE(isfinite(c->norm_eps) && c->norm_eps > 0.0f && c->norm_eps <= 1.0f, "norm_eps must be in (0, 1] (got %g)",
            (double)c->norm_eps);
    if (c->rotary_dim == 0)
        REQUIRE(c->pos != MODEL_POS_ROPE || model_head_size(c) % 2 == 0, "RoPE needs an even head size (got %d)",
                model_head_size(c));
    else
        REQUIRE(c->pos == MODEL_POS_ROPE && c->rotary_dim > 0 && c->rotary_dim % 2 == 0 && c->rotary_dim <= model_head_size(c),
                "rotary dims %d must be even, positive and at most the head size %d (RoPE models only)", c->rotary_dim,
                model_head_size(c));
    REQUIRE(c->pos != MODEL_POS_ROPE || (isfinite(c->rope_theta) && c->rope_theta >= 1.0f && c->rope_theta <= 1e10f),
            "rope_theta must be in [1, 1e10] (got %g)", (double)c->rope_theta);
    REQUIRE(c->rope_style == MODEL_ROPE_INTERLEAVED || c->rope_style == MODEL_ROPE_HALF, "unknown RoPE pair style %d",
            (int)c->rope_style);
    if (c->rope_scaling == MODEL_ROPE_SCALE_LLAMA3)
        REQUIRE(isfinite(c->rope_factor) && c->rope_factor >= 1.0f && c->rope_factor <= 1e6f &&
                    isfinite(c->rope_low_freq_factor) && isfinite(c->rope_high_freq_factor) && c->rope_low_freq_factor > 0.0f &&
                    c->rope_high_freq_factor > c->rope_low_freq_factor && c->rope_high_freq_factor <= 1e6f &&
                    c->rope_orig_ctx > 0,
                "llama3 rope_scaling needs factor in [1, 1e6], 0 < low_freq_factor < high_freq_factor and a positive "
                "original_max_position_embeddings (got factor %g, low %g, high %g, original %d)", (double)c->rope_factor,
                (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor, c->rope_orig_ctx);
    else
        REQUIRE(c->rope_scaling == MODEL_ROPE_SCALE_NONE, "unknown rope scaling %d", (int)c->rope_scaling);
    REQUIRE(c->sliding_window >= 0, "sliding_window must be positive or 0 (none); got %d", c->sliding_window);
    REQUIRE(!c->parallel_residual || c->causal, "parallel residual blocks are for causal LMs (GPT-NeoX)");
    if (c->input == MODEL_INPUT_TOKENS) {
        REQUIRE(c->vocab_size > 0 && c->vocab_size <= MODEL_MAX_VOCAB, "token input needs vocab_size in [1, 2^24] (got %d)",
                c->vocab_size);
    } else {
        REQUIRE(c->image_size > 0 && c->image_size <= MODEL_MAX_IMAGE && c->patch_size > 0 &&
                    c->image_size % c->patch_size == 0,
                "image_size %d must be a positive multiple of patch_size %d, at most %d", c->image_size, c->patch_size,
                MODEL_MAX_IMAGE);
        REQUIRE(c->channels > 0 && c->channels <= MODEL_MAX_CHANNELS, "channels must be in [1, %d] (got %d)",
                MODEL_MAX_CHANNELS, c->channels);
        REQUIRE(isfinite(c->pixel_mean) && fabsf(c->pixel_mean) <= 1000.0f, "pixel_mean must be in [-1000, 1000] (got %g)",
                (double)c->pixel_mean);
        REQUIRE(isfinite(c->pixel_std) && c->pixel_std >= 1e-6f && c->pixel_std <= 1000.0f,
                "pixel_std must be in [1e-6, 1000] (got %g)", (double)c->pixel_std);
        for (int ch = 0; c->pixel_per_channel && ch < c->channels; ch++)
            REQUIRE(isfinite(c->pixel_mean_c[ch]) && fabsf(c->pixel_mean_c[ch]) <= 1000.0f && isfinite(c->pixel_std_c[ch]) &&
                        c->pixel_std_c[ch] >= 1e-6f && c->pixel_std_c[ch] <= 1000.0f,
                    "channel %d: mean must be in [-1000, 1000] and std in [1e-6, 1000] (got %g, %g)", ch,
                    (double)c->pixel_mean_c[ch], (double)c->pixel_std_c[ch]);
        REQUIRE(c->head == MODEL_HEAD_CLS_TOKEN || c->head == MODEL_HEAD_CLS_MEAN,
                "patch input needs a classifier head (cls_token or cls_mean)");
        REQUIRE(model_image_seq_len(c) <= c->seq_len, "seq_len %d is less than the %d patch tokens (+CLS)", c->seq_len,
                model_image_seq_len(c));
    }
    if (c->head == MODEL_HEAD_LM || c->head == MODEL_HEAD_LM_TIED)
        REQUIRE(c->input == MODEL_INPUT_TOKENS, "an LM head needs token input");
    else
        REQUIRE(c->n_classes > 0 && c->n_classes <= MODEL_MAX_CLASSES, "a classifier head needs n_classes in [1, 2^24] (got %d)",
                c->n_classes);
#undef REQUIRE
    return PE_OK;
}

/* ---- the size table ---------------------------------------------------------------------- */

static void spec_add(model_tensor_spec *out, int max, int *n, const char *name, int ndim, int64_t d0, int64_t d1) {
    if (out && *n < max) {
        snprintf(out[*n].name, sizeof out[*n].name, "%s", name);
        out[*n].ndim     = ndim;
        out[*n].shape[0] = d0;
        out[*n].shape[1] = ndim > 1 ? d1 : 0;
    }
    (*n)++;
}

int model_list_tensors(const model_config *c, model_tensor_spec *out, int max) {
    int     n = 0, C = c->dim, HID = c->hidden_dim, HS = model_head_size(c), QC = c->n_heads * HS, KVC = c->n_kv_heads * HS;
    int     lnb = c->norm == MODEL_NORM_LAYERNORM && c->bias;
    int     qb = model_has_qkv_bias(c), ob = model_has_o_bias(c), mb = model_has_mlp_bias(c);
    char    nm[96];
    if (c->input == MODEL_INPUT_TOKENS) {
        spec_add(out, max, &n, "tok_emb.weight", 2, c->vocab_size, C);
    } else {
        spec_add(out, max, &n, "patch_emb.weight", 2, C, (int64_t)c->channels * c->patch_size * c->patch_size);
        if (c->bias) spec_add(out, max, &n, "patch_emb.bias", 1, C, 0);
        if (c->head == MODEL_HEAD_CLS_TOKEN) spec_add(out, max, &n, "cls_token", 1, C, 0);
    }
    if (c->pos == MODEL_POS_LEARNED) spec_add(out, max, &n, "pos_emb.weight", 2, c->seq_len, C);
    for (int l = 0; l < c->n_layers; l++) {
#define LAYER(suffix, nd, a, b)                                    \
    do {                                                           \
        snprintf(nm, sizeof nm, "layers.%d.%s", l, suffix);        \
        spec_add(out, max, &n, nm, nd, a, b);                      \
    } while (0)
        LAYER("attn_norm.weight", 1, C, 0);
        if (lnb) LAYER("attn_norm.bias", 1, C, 0);
        LAYER("attn.wq.weight", 2, QC, C);
        if (qb) LAYER("attn.wq.bias", 1, QC, 0);
        LAYER("attn.wk.weight", 2, KVC, C);
        if (qb) LAYER("attn.wk.bias", 1, KVC, 0);
        LAYER("attn.wv.weight", 2, KVC, C);
        if (qb) LAYER("attn.wv.bias", 1, KVC, 0);
        LAYER("attn.wo.weight", 2, C, QC);
        if (ob) LAYER("attn.wo.bias", 1, C, 0);
        if (c->qk_norm) {
            LAYER("attn.q_norm.weight", 1, HS, 0);
            LAYER("attn.k_norm.weight", 1, HS, 0);
        }
        LAYER("mlp_norm.weight", 1, C, 0);
        if (lnb) LAYER("mlp_norm.bias", 1, C, 0);
        LAYER("mlp.w1.weight", 2, HID, C);
        if (mb) LAYER("mlp.w1.bias", 1, HID, 0);
        LAYER("mlp.w2.weight", 2, C, HID);
        if (mb) LAYER("mlp.w2.bias", 1, C, 0);
        if (c->mlp == MODEL_MLP_SWIGLU) {
            LAYER("mlp.w3.weight", 2, HID, C);
            if (mb) LAYER("mlp.w3.bias", 1, HID, 0);
        }
#undef LAYER
    }
    spec_add(out, max, &n, "final_norm.weight", 1, C, 0);
    if (lnb) spec_add(out, max, &n, "final_norm.bias", 1, C, 0);
    if (c->head == MODEL_HEAD_LM) {
        spec_add(out, max, &n, "lm_head.weight", 2, c->vocab_size, C);
    } else if (c->head == MODEL_HEAD_CLS_TOKEN || c->head == MODEL_HEAD_CLS_MEAN) {
        spec_add(out, max, &n, "cls_head.weight", 2, c->n_classes, C);
        if (c->bias) spec_add(out, max, &n, "cls_head.bias", 1, c->n_classes, 0);
    }
    return n;
}

int model_uses_hf_switches(const model_config *c) {
    return c->head_dim > 0 || c->rope_style != MODEL_ROPE_INTERLEAVED || c->rotary_dim > 0 ||
           c->rope_scaling != MODEL_ROPE_SCALE_NONE || c->qkv_bias || c->o_bias || c->mlp_bias || c->qk_norm ||
           c->parallel_residual || c->sliding_window > 0;
}

void model_rope_init_freq(float *inv_freq, const model_config *c) {
    int R = model_rotary_dims(c);
    for (int i = 0; i < R; i += 2) inv_freq[i / 2] = 1.0f / powf(c->rope_theta, (float)i / (float)R);
    if (c->rope_scaling != MODEL_ROPE_SCALE_LLAMA3) return;
    /* HF _compute_llama3_parameters: long wavelengths divided by factor, short ones kept, a smooth
     * blend between (computed in double, stored as float) */
    double lo_wl = (double)c->rope_orig_ctx / c->rope_low_freq_factor, hi_wl = (double)c->rope_orig_ctx / c->rope_high_freq_factor;
    for (int i = 0; i < R / 2; i++) {
        double f = inv_freq[i], wl = 2.0 * M_PI / f, g;
        if (wl < hi_wl) g = f;
        else if (wl > lo_wl) g = f / c->rope_factor;
        else {
            double sm = ((double)c->rope_orig_ctx / wl - c->rope_low_freq_factor) /
                        ((double)c->rope_high_freq_factor - c->rope_low_freq_factor);
            g = (1.0 - sm) * f / c->rope_factor + sm * f;
        }
        inv_freq[i] = (float)g;
    }
}

/* ---- binding ----------------------------------------------------------------------------- */

typedef struct {
    const ckpt_tensor *t;
    const float      **dst;
    size_t             offset; /* floats into the tensor (column offset for sub-views) */
} bind_rec;

typedef struct {
    ckpt_file *ck;
    bind_rec  *recs;
    int        n, cap;
    int        flatten;  /* the next bind may flatten trailing dims into the second (a conv weight (C, ch, P, P)) */
} binder;

static pe_status bind_tensor(binder *bd, const char *name, int ndim, int64_t d0, int64_t d1, const float **dst,
                             size_t offset, pe_err *err) {
    const ckpt_tensor *t = ckpt_find(bd->ck, name);
    int flatten = bd->flatten;
    bd->flatten = 0;
    char file[4400];
    ckpt_tensor_file(bd->ck, t, file, sizeof file);
    if (!t)
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: tensor \"%s\" is missing (expected shape [%lld%s%lld]); the checkpoint does not match its "
                       "config%s%s%s", file, name, (long long)d0, ndim > 1 ? ", " : "", ndim > 1 ? (long long)d1 : 0LL,
                       bd->ck->config_path[0] ? " (" : "", bd->ck->config_path, bd->ck->config_path[0] ? ")" : "");
    if (t->dtype != CKPT_DTYPE_F32 && t->dtype != CKPT_DTYPE_F16 && t->dtype != CKPT_DTYPE_BF16)
        return pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\" has dtype %s; weights must be F32, F16 or BF16", file,
                       name, ckpt_dtype_name(t->dtype));
    /* leading dimensions of 1 are the only tolerated difference ([C] vs [1, C] or [1, 1, C] for cls_token,
     * [1, T, C] for ViT position embeddings), and flattening where the caller asks for it */
    int64_t g[4];
    int     gotn = t->ndim;
    for (int i = 0; i < gotn; i++) g[i] = t->shape[i];
    while (gotn > ndim && g[0] == 1) {
        for (int i = 1; i < gotn; i++) g[i - 1] = g[i];
        gotn--;
    }
    if (flatten && ndim == 2)
        while (gotn > 2) g[1] *= g[--gotn];
    int64_t got0 = gotn > 0 ? g[0] : 0, got1 = gotn > 1 ? g[1] : 0;
    if (gotn != ndim || got0 != d0 || (ndim > 1 && got1 != d1)) {
        char got[96] = "";
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: tensor \"%s\" has shape [%s] but the config needs [%lld%s%lld]; the checkpoint and its config "
                       "disagree%s%s%s", file, name, got, (long long)d0, ndim > 1 ? ", " : "", ndim > 1 ? (long long)d1 : 0LL,
                       bd->ck->config_path[0] ? " (" : "", bd->ck->config_path, bd->ck->config_path[0] ? ")" : "");
    }
    if (bd->n == bd->cap) {
        int       nc = bd->cap ? bd->cap * 2 : 256;
        bind_rec *r  = realloc(bd->recs, (size_t)nc * sizeof *r);
        if (!r) return pe_fail(err, PE_ERR_INTERNAL, "out of memory binding tensors");
        bd->recs = r;
        bd->cap  = nc;
    }
    ((ckpt_tensor *)t)->used = 1;
    bd->recs[bd->n++] = (bind_rec){t, dst, offset};
    return PE_OK;
}

static pe_status bind_linear(binder *bd, const char *wname, const char *bname, int64_t out, int64_t in,
                             model_linear *lin, pe_err *err) {
    lin->ld     = (int)in;
    lin->kmajor = 0;
    lin->b      = NULL;
    pe_status st = bind_tensor(bd, wname, 2, out, in, &lin->w, 0, err);
    if (!st && bname) st = bind_tensor(bd, bname, 1, out, 0, &lin->b, 0, err);
    return st;
}

static pe_status bind_native(binder *bd, model *m, pe_err *err) {
    const model_config *c = &m->cfg;
    model_weights      *w = &m->w;
    int C = c->dim, HID = c->hidden_dim, HS = model_head_size(c), QC = c->n_heads * HS, KVC = c->n_kv_heads * HS;
    int bias = c->bias, qb = model_has_qkv_bias(c), ob = model_has_o_bias(c), mb = model_has_mlp_bias(c);
    int lnb = c->norm == MODEL_NORM_LAYERNORM && c->bias;
    pe_status st = PE_OK;
    char a[96], b[96];
#define TRY(x) do { if ((st = (x)) != PE_OK) return st; } while (0)
    if (c->input == MODEL_INPUT_TOKENS) {
        TRY(bind_tensor(bd, "tok_emb.weight", 2, c->vocab_size, C, &w->tok_emb, 0, err));
    } else {
        int pp = c->channels * c->patch_size * c->patch_size; /* <= 16 * 8192^2: model_check_config */
        TRY(bind_linear(bd, "patch_emb.weight", bias ? "patch_emb.bias" : NULL, C, pp, &w->patch, err));
        if (c->head == MODEL_HEAD_CLS_TOKEN) TRY(bind_tensor(bd, "cls_token", 1, C, 0, &w->cls_token, 0, err));
    }
    if (c->pos == MODEL_POS_LEARNED) TRY(bind_tensor(bd, "pos_emb.weight", 2, c->seq_len, C, &w->pos_emb, 0, err));
    for (int l = 0; l < c->n_layers; l++) {
        model_layer_weights *lw = &w->layers[l];
#define NM(buf, s) (snprintf(buf, sizeof buf, "layers.%d.%s", l, s), buf)
        TRY(bind_tensor(bd, NM(a, "attn_norm.weight"), 1, C, 0, &lw->attn_norm_w, 0, err));
        if (lnb) TRY(bind_tensor(bd, NM(a, "attn_norm.bias"), 1, C, 0, &lw->attn_norm_b, 0, err));
        TRY(bind_linear(bd, NM(a, "attn.wq.weight"), qb ? NM(b, "attn.wq.bias") : NULL, QC, C, &lw->wq, err));
        TRY(bind_linear(bd, NM(a, "attn.wk.weight"), qb ? NM(b, "attn.wk.bias") : NULL, KVC, C, &lw->wk, err));
        TRY(bind_linear(bd, NM(a, "attn.wv.weight"), qb ? NM(b, "attn.wv.bias") : NULL, KVC, C, &lw->wv, err));
        TRY(bind_linear(bd, NM(a, "attn.wo.weight"), ob ? NM(b, "attn.wo.bias") : NULL, C, QC, &lw->wo, err));
        if (c->qk_norm) {
            TRY(bind_tensor(bd, NM(a, "attn.q_norm.weight"), 1, HS, 0, &lw->q_norm_w, 0, err));
            TRY(bind_tensor(bd, NM(a, "attn.k_norm.weight"), 1, HS, 0, &lw->k_norm_w, 0, err));
        }
        TRY(bind_tensor(bd, NM(a, "mlp_norm.weight"), 1, C, 0, &lw->mlp_norm_w, 0, err));
        if (lnb) TRY(bind_tensor(bd, NM(a, "mlp_norm.bias"), 1, C, 0, &lw->mlp_norm_b, 0, err));
        TRY(bind_linear(bd, NM(a, "mlp.w1.weight"), mb ? NM(b, "mlp.w1.bias") : NULL, HID, C, &lw->w1, err));
        TRY(bind_linear(bd, NM(a, "mlp.w2.weight"), mb ? NM(b, "mlp.w2.bias") : NULL, C, HID, &lw->w2, err));
        if (c->mlp == MODEL_MLP_SWIGLU)
            TRY(bind_linear(bd, NM(a, "mlp.w3.weight"), mb ? NM(b, "mlp.w3.bias") : NULL, HID, C, &lw->w3, err));
#undef NM
    }
    TRY(bind_tensor(bd, "final_norm.weight", 1, C, 0, &w->final_norm_w, 0, err));
    if (lnb) TRY(bind_tensor(bd, "final_norm.bias", 1, C, 0, &w->final_norm_b, 0, err));
    if (c->head == MODEL_HEAD_LM) {
        TRY(bind_linear(bd, "lm_head.weight", NULL, c->vocab_size, C, &w->head, err));
    } else if (c->head == MODEL_HEAD_CLS_TOKEN || c->head == MODEL_HEAD_CLS_MEAN) {
        TRY(bind_linear(bd, "cls_head.weight", bias ? "cls_head.bias" : NULL, c->n_classes, C, &w->head, err));
    }
    return PE_OK;
}

/* Hugging Face GPT-2: Conv1D weights are stored (in, out) and used k-major without copying;
 * c_attn holds Q|K|V side by side, so wq/wk/wv are column views into it. */
static pe_status bind_hf_gpt2(binder *bd, model *m, pe_err *err) {
    const model_config *c = &m->cfg;
    model_weights      *w = &m->w;
    int C = c->dim, HID = c->hidden_dim;
    pe_status st = PE_OK;
    const char *pre = ckpt_find(bd->ck, "wte.weight") ? "" : "transformer.";
    char a[128], b[128];
#define HF(buf, s) (snprintf(buf, sizeof buf, "%s%s", pre, s), buf)
#define HFL(buf, s) (snprintf(buf, sizeof buf, "%sh.%d.%s", pre, l, s), buf)
    TRY(bind_tensor(bd, HF(a, "wte.weight"), 2, c->vocab_size, C, &w->tok_emb, 0, err));
    TRY(bind_tensor(bd, HF(a, "wpe.weight"), 2, c->seq_len, C, &w->pos_emb, 0, err));
    for (int l = 0; l < c->n_layers; l++) {
        model_layer_weights *lw = &w->layers[l];
        TRY(bind_tensor(bd, HFL(a, "ln_1.weight"), 1, C, 0, &lw->attn_norm_w, 0, err));
        TRY(bind_tensor(bd, HFL(a, "ln_1.bias"), 1, C, 0, &lw->attn_norm_b, 0, err));
        model_linear *qkv[3] = {&lw->wq, &lw->wk, &lw->wv};
        for (int i = 0; i < 3; i++) {
            qkv[i]->ld = 3 * C;
            qkv[i]->kmajor = 1;
            TRY(bind_tensor(bd, HFL(a, "attn.c_attn.weight"), 2, C, 3 * C, &qkv[i]->w, (size_t)i * C, err));
            TRY(bind_tensor(bd, HFL(b, "attn.c_attn.bias"), 1, 3 * C, 0, &qkv[i]->b, (size_t)i * C, err));
        }
        lw->wo.ld = C; lw->wo.kmajor = 1;
        TRY(bind_tensor(bd, HFL(a, "attn.c_proj.weight"), 2, C, C, &lw->wo.w, 0, err));
        TRY(bind_tensor(bd, HFL(b, "attn.c_proj.bias"), 1, C, 0, &lw->wo.b, 0, err));
        TRY(bind_tensor(bd, HFL(a, "ln_2.weight"), 1, C, 0, &lw->mlp_norm_w, 0, err));
        TRY(bind_tensor(bd, HFL(a, "ln_2.bias"), 1, C, 0, &lw->mlp_norm_b, 0, err));
        lw->w1.ld = HID; lw->w1.kmajor = 1;
        TRY(bind_tensor(bd, HFL(a, "mlp.c_fc.weight"), 2, C, HID, &lw->w1.w, 0, err));
        TRY(bind_tensor(bd, HFL(b, "mlp.c_fc.bias"), 1, HID, 0, &lw->w1.b, 0, err));
        lw->w2.ld = C; lw->w2.kmajor = 1;
        TRY(bind_tensor(bd, HFL(a, "mlp.c_proj.weight"), 2, HID, C, &lw->w2.w, 0, err));
        TRY(bind_tensor(bd, HFL(b, "mlp.c_proj.bias"), 1, C, 0, &lw->w2.b, 0, err));
        /* causal-mask buffers some exports carry: not weights */
        for (int i = 0; i < bd->ck->n_tensors; i++) {
            ckpt_tensor *t = &bd->ck->tensors[i];
            if (!strcmp(t->name, HFL(a, "attn.bias")) || !strcmp(t->name, HFL(a, "attn.masked_bias"))) t->used = 2;
        }
    }
    TRY(bind_tensor(bd, HF(a, "ln_f.weight"), 1, C, 0, &w->final_norm_w, 0, err));
    TRY(bind_tensor(bd, HF(a, "ln_f.bias"), 1, C, 0, &w->final_norm_b, 0, err));
    if (ckpt_find(bd->ck, "lm_head.weight")) {
        m->cfg.head = MODEL_HEAD_LM;
        TRY(bind_linear(bd, "lm_head.weight", NULL, c->vocab_size, C, &w->head, err));
    }
#undef HF
#undef HFL
    return PE_OK;
}

/* The other Hugging Face families: the names of each role (a linear's name without .weight /
 * .bias; NULL = the family has none). Views straight into the mmap, except GPT-NeoX's fused
 * query_key_value, stored per head as (q, k, v) row blocks: re-laid out once into (q | k | v) in
 * the owned block (model_init), then viewed like separate projections. */
typedef struct {
    const char *emb, *patch, *cls, *pos;             /* global tensors */
    const char *layer;                               /* per-layer prefix, a %d for the layer */
    const char *attn_norm, *q, *k, *v, *qkv, *o, *q_norm, *k_norm, *mlp_norm, *w1, *w2, *w3;
    const char *final_norm, *head;
} hf_names;

static const hf_names HF_LLAMA_NAMES = { /* llama, mistral, qwen2, qwen3 */
    "model.embed_tokens", NULL, NULL, NULL, "model.layers.%d.", "input_layernorm", "self_attn.q_proj",
    "self_attn.k_proj", "self_attn.v_proj", NULL, "self_attn.o_proj", "self_attn.q_norm", "self_attn.k_norm",
    "post_attention_layernorm", "mlp.gate_proj", "mlp.down_proj", "mlp.up_proj", "model.norm", "lm_head"};
static const hf_names HF_NEOX_NAMES = {
    "gpt_neox.embed_in", NULL, NULL, NULL, "gpt_neox.layers.%d.", "input_layernorm", NULL, NULL, NULL,
    "attention.query_key_value", "attention.dense", NULL, NULL, "post_attention_layernorm", "mlp.dense_h_to_4h",
    "mlp.dense_4h_to_h", NULL, "gpt_neox.final_layer_norm", "embed_out"};
static const hf_names HF_VIT_NAMES = {
    NULL, "vit.embeddings.patch_embeddings.projection", "vit.embeddings.cls_token", "vit.embeddings.position_embeddings",
    "vit.encoder.layer.%d.", "layernorm_before", "attention.attention.query", "attention.attention.key",
    "attention.attention.value", NULL, "attention.output.dense", NULL, NULL, "layernorm_after", "intermediate.dense",
    "output.dense", NULL, "vit.layernorm", "classifier"};

/* buffers HF exports carry beside the weights (causal masks, RoPE tables): never weights */
static int is_hf_export_buffer(const char *name) {
    static const char *const suffixes[] = {".attn.bias", ".attn.masked_bias", ".attention.bias", ".attention.masked_bias",
                                           ".rotary_emb.inv_freq"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t k = strlen(suffixes[i]);
        if (n >= k && !strcmp(name + n - k, suffixes[i])) return 1;
    }
    return 0;
}

/* name + ".weight" / ".bias" of a role (in layer l, or global when l < 0) */
static const char *hf_name(char *buf, size_t n, const hf_names *nm, int l, const char *role, const char *suffix) {
    char pre[64] = "";
    if (l >= 0) snprintf(pre, sizeof pre, nm->layer, l);
    snprintf(buf, n, "%s%s%s", pre, role, suffix);
    return buf;
}

static pe_status bind_hf_linear(binder *bd, const hf_names *nm, int l, const char *role, int has_bias, int64_t out,
                                int64_t in, model_linear *lin, pe_err *err) {
    char a[160], b[160];
    return bind_linear(bd, hf_name(a, sizeof a, nm, l, role, ".weight"),
                       has_bias ? hf_name(b, sizeof b, nm, l, role, ".bias") : NULL, out, in, lin, err);
}

static pe_status bind_hf_norm(binder *bd, const hf_names *nm, int l, const char *role, int64_t n, const float **w,
                              const float **b, pe_err *err) {
    char a[160];
    pe_status st = bind_tensor(bd, hf_name(a, sizeof a, nm, l, role, ".weight"), 1, n, 0, w, 0, err);
    if (!st && b) st = bind_tensor(bd, hf_name(a, sizeof a, nm, l, role, ".bias"), 1, n, 0, b, 0, err);
    return st;
}

static pe_status bind_hf_family(binder *bd, model *m, pe_err *err) {
    const model_config *c = &m->cfg;
    model_weights      *w = &m->w;
    int fam = bd->ck->hf_family;
    const hf_names *nm = fam == CKPT_HF_GPT_NEOX ? &HF_NEOX_NAMES : fam == CKPT_HF_VIT ? &HF_VIT_NAMES : &HF_LLAMA_NAMES;
    int C = c->dim, HID = c->hidden_dim, HS = model_head_size(c), QC = c->n_heads * HS, KVC = c->n_kv_heads * HS;
    int qb = model_has_qkv_bias(c), ob = model_has_o_bias(c), mb = model_has_mlp_bias(c);
    int lnb = c->norm == MODEL_NORM_LAYERNORM && c->bias;
    pe_status st = PE_OK;
    char a[160];
    if (nm->emb) TRY(bind_tensor(bd, hf_name(a, sizeof a, nm, -1, nm->emb, ".weight"), 2, c->vocab_size, C, &w->tok_emb, 0, err));
    if (nm->patch) {
        bd->flatten = 1; /* conv weight (C, channels, P, P) = (C, channels*P*P) in model_image_patches' order */
        TRY(bind_hf_linear(bd, nm, -1, nm->patch, c->bias, C, (int64_t)c->channels * c->patch_size * c->patch_size,
                           &w->patch, err));
        TRY(bind_tensor(bd, nm->cls, 1, C, 0, &w->cls_token, 0, err));
        TRY(bind_tensor(bd, nm->pos, 2, c->seq_len, C, &w->pos_emb, 0, err));
    }
    for (int l = 0; l < c->n_layers; l++) {
        model_layer_weights *lw = &w->layers[l];
        TRY(bind_hf_norm(bd, nm, l, nm->attn_norm, C, &lw->attn_norm_w, lnb ? &lw->attn_norm_b : NULL, err));
        if (nm->qkv) {
            /* (3 QC, C) rows per head (q, k, v); the same after model_init's re-layout, as (q | k | v) */
            char b[160];
            ckpt_tensor *tw = (ckpt_tensor *)ckpt_find(bd->ck, hf_name(a, sizeof a, nm, l, nm->qkv, ".weight"));
            ckpt_tensor *tb = (ckpt_tensor *)ckpt_find(bd->ck, hf_name(b, sizeof b, nm, l, nm->qkv, ".bias"));
            model_linear *qkv[3] = {&lw->wq, &lw->wk, &lw->wv};
            for (int i = 0; i < 3; i++) {
                *qkv[i] = (model_linear){NULL, C, 0, NULL};
                TRY(bind_tensor(bd, a, 2, 3 * (int64_t)QC, C, &qkv[i]->w, (size_t)i * QC * C, err));
                if (qb) TRY(bind_tensor(bd, b, 1, 3 * (int64_t)QC, 0, &qkv[i]->b, (size_t)i * QC, err));
            }
            if (tw) tw->fused_heads = c->n_heads;
            if (tb && qb) tb->fused_heads = c->n_heads;
        } else {
            TRY(bind_hf_linear(bd, nm, l, nm->q, qb, QC, C, &lw->wq, err));
            TRY(bind_hf_linear(bd, nm, l, nm->k, qb, KVC, C, &lw->wk, err));
            TRY(bind_hf_linear(bd, nm, l, nm->v, qb, KVC, C, &lw->wv, err));
        }
        TRY(bind_hf_linear(bd, nm, l, nm->o, ob, C, QC, &lw->wo, err));
        if (c->qk_norm) {
            TRY(bind_hf_norm(bd, nm, l, nm->q_norm, HS, &lw->q_norm_w, NULL, err));
            TRY(bind_hf_norm(bd, nm, l, nm->k_norm, HS, &lw->k_norm_w, NULL, err));
        }
        TRY(bind_hf_norm(bd, nm, l, nm->mlp_norm, C, &lw->mlp_norm_w, lnb ? &lw->mlp_norm_b : NULL, err));
        TRY(bind_hf_linear(bd, nm, l, nm->w1, mb, HID, C, &lw->w1, err));
        TRY(bind_hf_linear(bd, nm, l, nm->w2, mb, C, HID, &lw->w2, err));
        if (c->mlp == MODEL_MLP_SWIGLU) TRY(bind_hf_linear(bd, nm, l, nm->w3, mb, HID, C, &lw->w3, err));
    }
    TRY(bind_hf_norm(bd, nm, -1, nm->final_norm, C, &w->final_norm_w, lnb ? &w->final_norm_b : NULL, err));
    const char *head = hf_name(a, sizeof a, nm, -1, nm->head, ".weight");
    if (c->head == MODEL_HEAD_LM) {
        TRY(bind_linear(bd, head, NULL, c->vocab_size, C, &w->head, err));
    } else if (c->head == MODEL_HEAD_LM_TIED) {
        /* tie_word_embeddings: HF points the head at the embedding whatever a stored copy holds */
        ckpt_tensor *t = (ckpt_tensor *)ckpt_find(bd->ck, head);
        if (t) t->used = 2;
    } else {
        TRY(bind_hf_linear(bd, nm, -1, nm->head, c->bias, c->n_classes, C, &w->head, err));
    }
    for (int i = 0; i < bd->ck->n_tensors; i++)
        if (!bd->ck->tensors[i].used && is_hf_export_buffer(bd->ck->tensors[i].name)) bd->ck->tensors[i].used = 2;
    return PE_OK;
}
#undef TRY

static int ptr_aligned(const void *p) { return ((uintptr_t)p & 3u) == 0; }

pe_status model_init(model *m, ckpt_file *ck, pe_err *err) { return model_init_with(m, ck, NULL, err); }

/* index of the first NaN or Inf in x (n), n if none: blocks of 4096 floats are screened by an
 * exponent test that vectorises (every exponent bit set), and only a flagged block is searched */
size_t model_find_nonfinite(const float *x, size_t n) {
    for (size_t k0 = 0; k0 < n; k0 += 4096) {
        size_t   nb  = n - k0 < 4096 ? n - k0 : 4096;
        uint32_t bad = 0;
        for (size_t k = 0; k < nb; k++) {
            uint32_t u;
            memcpy(&u, x + k0 + k, sizeof u);
            bad |= (u & 0x7f800000u) == 0x7f800000u;
        }
        if (bad)
            for (size_t k = 0; k < nb; k++)
                if (!isfinite(x[k0 + k])) return k0 + k;
    }
    return n;
}

pe_status model_init_with(model *m, ckpt_file *ck, const model_block_alloc *al, pe_err *err) {
    memset(m, 0, sizeof *m);
    m->cfg = ck->cfg;
    pe_status st = model_check_config(&m->cfg, ck->path, err);
    if (st) return st;
    snprintf(m->source, sizeof m->source, "%s%s%s", ck->format, ck->hf_family ? "-hf-" : "",
             ckpt_hf_family_name(ck->hf_family));
    m->w.layers = pe_calloc((size_t)m->cfg.n_layers, sizeof *m->w.layers, err, "layer weights");
    if (!m->w.layers) return PE_ERR_INTERNAL;
    for (int i = 0; i < ck->n_tensors; i++) ck->tensors[i].used = ck->tensors[i].fused_heads = 0;
    binder bd = {ck, NULL, 0, 0, 0};
    st = ck->hf_family == CKPT_HF_GPT2 ? bind_hf_gpt2(&bd, m, err)
         : ck->hf_family            ? bind_hf_family(&bd, m, err)
                                    : bind_native(&bd, m, err);
    char file[4400];
    for (int i = 0; !st && i < ck->n_tensors; i++)
        if (!ck->tensors[i].used)
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s: unexpected tensor \"%s\" (not part of the architecture in the config); the checkpoint and "
                         "its config%s%s%s disagree", ckpt_tensor_file(ck, &ck->tensors[i], file, sizeof file),
                         ck->tensors[i].name, ck->config_path[0] ? " (" : "", ck->config_path, ck->config_path[0] ? ")" : "");
    /* size table of the owned block: every bound tensor that is not float32, not aligned or
     * re-laid out */
    size_t *conv = NULL;
    if (!st) conv = pe_malloc((size_t)(ck->n_tensors ? ck->n_tensors : 1) * sizeof *conv, err, "conversion table");
    if (!st && !conv) st = PE_ERR_INTERNAL;
    size_t total = 0;
    for (int i = 0; !st && i < ck->n_tensors; i++) {
        const ckpt_tensor *t = &ck->tensors[i];
        size_t numel = t->nbytes / (t->dtype == CKPT_DTYPE_F32 ? 4 : 2);
        conv[i] = (size_t)-1;
        if (t->used != 1) continue;
        if (t->dtype != CKPT_DTYPE_F32 || !ptr_aligned(t->data) || t->fused_heads) {
            conv[i] = total;
            total += numel;
        }
    }
    /* the owned block: malloc'd and converted here whole, or from `al` (a node's shared block, of
     * which this process converts the tensors starting in its part) */
    int part = 0, parts = 1;
    if (!st && total && al) {
        void *h = NULL;
        m->owned = al->alloc(total * sizeof(float), al->ctx, &h, &part, &parts, err);
        if (!m->owned) st = err->code ? err->code : pe_fail(err, PE_ERR_INTERNAL, "converted weights: no block");
        else {
            m->owned_handle  = h;
            m->owned_release = al->release;
        }
    } else if (!st && total) {
        m->owned = pe_malloc(total * sizeof(float), err, "converted weights");
        if (!m->owned) st = PE_ERR_INTERNAL;
    }
    if (!st) m->owned_floats = total;
    if (!st && m->cfg.pos == MODEL_POS_ROPE) {
        m->rope_table = pe_malloc((size_t)model_rotary_dims(&m->cfg) / 2 * sizeof(float), err, "RoPE table");
        if (!m->rope_table) st = PE_ERR_INTERNAL;
        else model_rope_init_freq(m->rope_table, &m->cfg);
        m->w.rope_freq = m->rope_table;
    }
    for (int i = 0; !st && i < ck->n_tensors; i++) {
        const ckpt_tensor *t = &ck->tensors[i];
        /* only the tensors whose place starts in this process's piece of ceil(total / parts) floats */
        if (conv[i] == (size_t)-1 || conv[i] / ((total + (size_t)parts - 1) / (size_t)parts) != (size_t)part) continue;
        const uint8_t *src = t->data;
        size_t         numel = t->nbytes / (t->dtype == CKPT_DTYPE_F32 ? 4 : 2);
        /* fused (NH, 3, HS, in) rows to (3, NH, HS, in): source row r of head h = r / (3 HS), part
         * j = (r / HS) % 3, d = r % HS goes to row j NH HS + h HS + d; other tensors keep their rows */
        size_t rows = t->fused_heads ? (size_t)t->shape[0] : 1, rowlen = numel / rows;
        size_t HS3 = t->fused_heads ? rows / (size_t)t->fused_heads : 1, HS = HS3 / 3;
        for (size_t r = 0; r < rows; r++) {
            size_t dr = t->fused_heads ? ((r / HS) % 3) * (rows / 3) + (r / HS3) * HS + r % HS : r;
            float *dst = m->owned + conv[i] + dr * rowlen;
            for (size_t k = 0, at = r * rowlen; k < rowlen; k++, at++) {
                uint16_t h;
                if (t->dtype == CKPT_DTYPE_F32) memcpy(&dst[k], src + 4 * at, 4);
                else {
                    memcpy(&h, src + 2 * at, 2);
                    dst[k] = t->dtype == CKPT_DTYPE_F16 ? ckpt_f16_to_f32(h) : ckpt_bf16_to_f32(h);
                }
            }
        }
    }
    if (m->owned_handle) al->ready(m->owned_handle); /* every part written (also after an error: it may be collective) */
    /* point every view, check every value is finite, count parameters once per tensor */
    for (int r = 0; !st && r < bd.n; r++) {
        const ckpt_tensor *t   = bd.recs[r].t;
        size_t             idx = (size_t)(t - ck->tensors);
        const float       *base = conv[idx] == (size_t)-1 ? (const float *)t->data : m->owned + conv[idx];
        *bd.recs[r].dst = base + bd.recs[r].offset;
    }
    for (int i = 0; !st && i < ck->n_tensors; i++) {
        const ckpt_tensor *t = &ck->tensors[i];
        if (t->used != 1) continue;
        const float *base = conv[i] == (size_t)-1 ? (const float *)t->data : m->owned + conv[i];
        size_t numel = t->nbytes / (t->dtype == CKPT_DTYPE_F32 ? 4 : 2), k = model_find_nonfinite(base, numel);
        if (k < numel) {
            st = pe_fail(err, PE_ERR_INPUT,
                         "%s: tensor \"%s\" element %zu is %s; the checkpoint is corrupt or training diverged",
                         ckpt_tensor_file(ck, t, file, sizeof file), t->name, k, isnan(base[k]) ? "NaN" : "Inf");
            break;
        }
        m->n_params += (int64_t)numel;
    }
    free(conv);
    free(bd.recs);
    if (st) model_free(m);
    return st;
}

void model_free(model *m) {
    free(m->w.layers);
    if (m->owned_release) m->owned_release(m->owned_handle);
    else free(m->owned);
    free(m->rope_table);
    memset(m, 0, sizeof *m);
}

void model_describe(const model *m, char *buf, size_t n) {
    static const char *norms[] = {"LayerNorm", "RMSNorm"}, *poss[] = {"no-pos", "learned-pos", "RoPE"},
                      *mlps[] = {"GELU", "GELU-tanh", "SwiGLU"}, *heads[] = {"tied-LM", "LM", "CLS", "mean-pool"};
    const model_config *c = &m->cfg;
    snprintf(buf, n, "%s: %d layers, dim %d, hidden %d, %d heads (%d kv), %s, %s, %s, %s, %s, %s input, seq_len %d, %lld params",
             m->source, c->n_layers, c->dim, c->hidden_dim, c->n_heads, c->n_kv_heads, norms[c->norm], poss[c->pos],
             mlps[c->mlp], c->causal ? "causal" : "bidirectional", heads[c->head],
             c->input == MODEL_INPUT_TOKENS ? "tokens" : "patches", c->seq_len, (long long)m->n_params);
    if (c->input == MODEL_INPUT_TOKENS) {
        char tail[64];
        snprintf(tail, sizeof tail, " (vocab %d)", c->vocab_size);
        strncat(buf, tail, n - strlen(buf) - 1);
    } else {
        char tail[96];
        snprintf(tail, sizeof tail, " (%dx%dx%d images, %dx%d patches, %d classes)", c->channels, c->image_size,
                 c->image_size, c->patch_size, c->patch_size, c->n_classes);
        strncat(buf, tail, n - strlen(buf) - 1);
    }
}

/* ---- activations ------------------------------------------------------------------------- */

pe_status model_acts_init(model_acts *a, const model *m, int B, int T, pe_err *err) {
    memset(a, 0, sizeof *a);
    const model_config *c = &m->cfg;
    if (B <= 0 || T <= 0 || T > c->seq_len)
        return pe_fail(err, PE_ERR_INPUT, "batch %d x length %d is not valid for a model with seq_len %d", B, T, c->seq_len);
    if (c->sliding_window > 0 && T > c->sliding_window)
        return pe_fail(err, PE_ERR_INPUT,
                       "this model attends over a sliding window of %d tokens (config.json sliding_window) and the "
                       "context used is %d tokens; pathens runs such a model only where the window changes nothing: set "
                       "[data] context to at most %d", c->sliding_window, T, c->sliding_window);
    size_t HS = (size_t)model_head_size(c), QC = (size_t)c->n_heads * HS;
    size_t BT = (size_t)B * T, C = (size_t)c->dim, KVC = (size_t)c->n_kv_heads * HS,
           HID = (size_t)c->hidden_dim, PP = (size_t)c->channels * c->patch_size * c->patch_size;
    size_t NT = (size_t)pe_threads_get(); /* attention scratch per thread */
    /* the size table: one allocation carved into the named buffers */
    size_t sizes[13] = {BT * C, BT * C, BT * QC, BT * KVC, BT * KVC, BT * QC, BT * HID,
                        c->mlp == MODEL_MLP_SWIGLU ? BT * HID : 0, NT * ((size_t)T * T + T + 1),
                        c->input == MODEL_INPUT_PATCHES ? BT * PP : 0, (size_t)B * C, NT * 2 * (size_t)T * HS,
                        c->pos == MODEL_POS_ROPE ? (size_t)T * (model_rotary_dims(c) / 2) * 2 : 0};
    float **ptrs[13] = {&a->x, &a->xn, &a->q, &a->k, &a->v, &a->att, &a->h1, &a->h3, &a->scores, &a->patches,
                        &a->pooled, &a->gather, &a->rope_cs};
    size_t total = 0;
    for (int i = 0; i < 13; i++) total += sizes[i];
    a->block = pe_calloc(total, sizeof(float), err, "activations");
    if (!a->block) return PE_ERR_INTERNAL;
    float *p = a->block;
    for (int i = 0; i < 13; i++) {
        *ptrs[i] = sizes[i] ? p : NULL;
        p += sizes[i];
    }
    a->iscratch = pe_malloc(NT * T * sizeof(int), err, "attention index scratch");              /* (NT, T) */
    a->kept_b   = pe_malloc(2 * BT / T * (size_t)c->n_heads * sizeof(int64_t), err, "kept counts"); /* (2, B, NH) */
    a->samples  = pe_calloc(NT, sizeof(pw_sample), err, "pathway samples");                    /* (NT) */
    if (!a->iscratch || !a->kept_b || !a->samples) {
        model_acts_free(a);
        return PE_ERR_INTERNAL;
    }
    for (size_t i = 0; i < NT; i++, a->n_thr++)
        if (pw_sample_init(&a->samples[i], T, err) != PE_OK) {
            model_acts_free(a);
            return PE_ERR_INTERNAL;
        }
    a->B = B;
    a->T = T;
    return PE_OK;
}

void model_acts_free(model_acts *a) {
    free(a->block);
    free(a->iscratch);
    free(a->kept_b);
    for (int i = 0; a->samples && i < a->n_thr; i++) pw_sample_free(&a->samples[i]);
    free(a->samples);
    memset(a, 0, sizeof *a);
}

/* ---- forward ----------------------------------------------------------------------------- */

typedef struct {
    void (*matmul)(float *, const float *, const model_linear *, int, int, int);
    void (*norm)(float *, const float *, const float *, const float *, int, int, model_norm_kind, float);
    void (*rope)(float *, const float *, const float *, int, int, int, int, int, int); /* x, inv_freq, cs table */
    void (*attention)(float *, float *, float *, int *, const float *, const float *, const float *, const int *, int,
                      int, int, int, int, int, const kern_pathways *);
} kernel_set;

/* RoPE: the fast kernel rotates by the pass's table of cos/sin (kern_rope_table), the reference
 * twin by its own double cos/sin of inv_freq */
static void rope_fast(float *x, const float *inv_freq, const float *cs, int B, int T, int nh, int hs, int rot, int half) {
    (void)inv_freq;
    kern_rope_cs(x, cs, B, T, nh, hs, rot, half);
}
static void rope_ref(float *x, const float *inv_freq, const float *cs, int B, int T, int nh, int hs, int rot, int half) {
    (void)cs;
    kern_rope_freq_ref(x, inv_freq, B, T, nh, hs, rot, half);
}

static const kernel_set KERNELS_FAST = {kern_matmul, kern_norm, rope_fast, kern_attention};
static const kernel_set KERNELS_REF  = {kern_matmul_ref, kern_norm_ref, rope_ref, kern_attention_ref};

/* Projections run as sgemm calls per sequence over its [len, C] rows (B sequences per forward
 * call, never token by token). Not one [B*T, C] call: measured on OpenBLAS 0.3.21, the bits of a
 * row's result depend on the row's position inside the block (Haswell kernel: period 12) and on
 * the block's row count (tail kernels), so a batched call would make a sequence's numbers depend
 * on its batch-mates, the batch size and the rank count. Per-sequence calls make every number a
 * function of the sequence alone (docs/performance.md has the cost). A sequence's rows go in
 * blocks of MODEL_MATMUL_ROWS (a multiple of 48, the last block ending where the sequence does),
 * one task each for the threads: the same calls for any thread count (tests/test_threads.c), and
 * on the Zen, Haswell and Sandybridge kernels of OpenBLAS 0.3.21 the bits of one call over all the
 * rows (bench/bench_sgemm_blocks.c). A grid over output columns would not do: OpenBLAS rounds a
 * column differently when the call's column count changes. */
static void seq_matmul(const kernel_set *K, float *out, const float *inp, const model_linear *w, const int *lens, int B,
                       int T, int C, int OC) {
    int nblk = (T + MODEL_MATMUL_ROWS - 1) / MODEL_MATMUL_ROWS; /* row blocks per sequence */
    PE_PARALLEL_FOR
    for (int task = 0; task < B * nblk; task++) {
        int b = task / nblk, r0 = task % nblk * MODEL_MATMUL_ROWS, len = lens ? lens[b] : T;
        int n = len - r0 < MODEL_MATMUL_ROWS ? len - r0 : MODEL_MATMUL_ROWS;
        if (n > 0) K->matmul(out + ((size_t)b * T + r0) * OC, inp + ((size_t)b * T + r0) * C, w, n, C, OC);
    }
}

/* norm of N rows of C in tasks of 64 rows (each row alone, so any grid gives the same bits) */
static void par_norm(const kernel_set *K, float *out, const float *inp, const float *w, const float *bias, int N, int C,
                     model_norm_kind kind, float eps) {
    PE_PARALLEL_FOR
    for (int r0 = 0; r0 < N; r0 += 64)
        K->norm(out + (size_t)r0 * C, inp + (size_t)r0 * C, w, bias, N - r0 < 64 ? N - r0 : 64, C, kind, eps);
}

/* RoPE of x (B, T, nh*hs), one task per sequence (the positions are t within the sequence), with
 * the forward pass's table cs (T, R/2, 2) */
static void par_rope(const kernel_set *K, float *x, const float *inv_freq, const float *cs, int B, int T, int nh,
                     int hs, int rot, int half) {
    PE_PARALLEL_FOR
    for (int b = 0; b < B; b++) K->rope(x + (size_t)b * T * nh * hs, inv_freq, cs, 1, T, nh, hs, rot, half);
}

/* Element-wise kernels over n floats in tasks of PAR_ELEMS: every task starts at a multiple of
 * PAR_ELEMS and the last ends at n, so an element sits at the same offset modulo any vector width
 * (and in a vector tail or not) as in one call over all n */
#define PAR_ELEMS 16384
typedef enum { PAR_GELU, PAR_GELU_TANH, PAR_SWIGLU, PAR_ADD } par_op;
static void par_elementwise(par_op op, float *x, const float *y, size_t n) {
    PE_PARALLEL_FOR
    for (size_t i0 = 0; i0 < n; i0 += PAR_ELEMS) {
        size_t m = n - i0 < PAR_ELEMS ? n - i0 : PAR_ELEMS;
        if (op == PAR_GELU || op == PAR_GELU_TANH) kern_gelu(x + i0, m, op == PAR_GELU_TANH);
        else if (op == PAR_SWIGLU) kern_swiglu(x + i0, y + i0, m);
        else kern_add(x + i0, y + i0, m);
    }
}

/* Attention over (B, T) with one task per sequence: kern_attention on that sequence alone (B = 1)
 * with the calling thread's scratch and sample; the connection counts per sequence go to a->kept_b
 * and are added into kp->kept / kp->allowed after the loop, in sequence order. kp's per-(sequence,
 * head) statistics are written by the sequence's own task. */
static void par_attention(const kernel_set *K, model_acts *a, const int *lens, int B, int T, int NH, int NKV, int HS,
                          int causal, const kern_pathways *kp) {
    size_t   QC = (size_t)NH * HS, KVC = (size_t)NKV * HS, NB = (size_t)kp->n_bands;
    int64_t *kept_b = a->kept_b, *allowed_b = a->kept_b + (size_t)B * NH; /* (B, NH) each */
    int      nt = pe_threads_get() < a->n_thr ? pe_threads_get() : a->n_thr; /* threads with scratch */
    memset(a->kept_b, 0, 2 * (size_t)B * NH * sizeof(int64_t));
    PE_PARALLEL_FOR_N(nt)
    for (int b = 0; b < B; b++) {
        int           t  = pe_thread_index();
        kern_pathways p  = *kp;
        p.sample    = &a->samples[t];
        p.seq_ids   = kp->seq_ids ? kp->seq_ids + b : NULL;
        p.kept      = kp->kept ? kept_b + (size_t)b * NH : NULL;
        p.allowed   = kp->kept ? allowed_b + (size_t)b * NH : NULL;
        p.kept_bh   = kp->kept_bh ? kp->kept_bh + (size_t)b * NH : NULL;
        p.band_kept = kp->band_kept ? kp->band_kept + (size_t)b * NH * NB : NULL;
        p.att_stats = kp->att_stats ? kp->att_stats + (size_t)b * NH * (3 + NB) : NULL;
        p.stat_rows = kp->stat_rows ? kp->stat_rows + b : NULL;
        K->attention(a->att + (size_t)b * T * QC, a->scores + (size_t)t * ((size_t)T * T + T + 1),
                     a->gather + (size_t)t * 2 * T * HS, a->iscratch + (size_t)t * T, a->q + (size_t)b * T * QC,
                     a->k + (size_t)b * T * KVC, a->v + (size_t)b * T * KVC, lens ? lens + b : NULL, 1, T, NH, NKV, HS,
                     causal, &p);
    }
    for (int b = 0; kp->kept && b < B; b++)
        for (int h = 0; h < NH; h++) {
            kp->kept[h] += kept_b[(size_t)b * NH + h];
            kp->allowed[h] += allowed_b[(size_t)b * NH + h];
        }
}

/* transformer blocks + final norm over x (B, T, C); the normalised output goes to hidden (B, T, C),
 * which may be a->xn. Every loop inside runs on pe_threads_get() threads (the helpers above). */
static void model_forward_blocks(float *hidden, model_acts *a, const model *m, const int *lens, int B, int T,
                                 const kernel_set *K, const model_pathways *pw) {
    const model_config *c = &m->cfg;
    int    C = c->dim, NH = c->n_heads, NKV = c->n_kv_heads, HS = model_head_size(c), QC = NH * HS, KVC = NKV * HS;
    int    HID = c->hidden_dim, R = model_rotary_dims(c), half = c->rope_style == MODEL_ROPE_HALF;
    int    N = B * T;
    if (c->pos == MODEL_POS_ROPE) kern_rope_table(a->rope_cs, m->w.rope_freq, T, R); /* every layer's angles, once */
    for (int l = 0; l < c->n_layers; l++) {
        const model_layer_weights *lw = &m->w.layers[l];
        /* attention sub-layer: x += wo(attn(norm(x))) */
        par_norm(K, a->xn, a->x, lw->attn_norm_w, lw->attn_norm_b, N, C, c->norm, c->norm_eps);
        seq_matmul(K, a->q, a->xn, &lw->wq, lens, B, T, C, QC);  /* (B, T, QC) */
        seq_matmul(K, a->k, a->xn, &lw->wk, lens, B, T, C, KVC); /* (B, T, KVC) */
        seq_matmul(K, a->v, a->xn, &lw->wv, lens, B, T, C, KVC); /* (B, T, KVC) */
        if (c->qk_norm) { /* Qwen3: RMSNorm over each head's HS dims, (B*T*NH, HS) rows */
            par_norm(K, a->q, a->q, lw->q_norm_w, NULL, N * NH, HS, MODEL_NORM_RMSNORM, c->norm_eps);
            par_norm(K, a->k, a->k, lw->k_norm_w, NULL, N * NKV, HS, MODEL_NORM_RMSNORM, c->norm_eps);
        }
        if (c->pos == MODEL_POS_ROPE) {
            par_rope(K, a->q, m->w.rope_freq, a->rope_cs, B, T, NH, HS, R, half);
            par_rope(K, a->k, m->w.rope_freq, a->rope_cs, B, T, NKV, HS, R, half);
        }
        kern_pathways kp = {.cfg = NULL, .layer = l};
        if (pw && pw->cfg && (pw->cfg->scheme != PW_SCHEME_DENSE || pw->cfg->head_keep)) {
            kp.cfg     = pw->cfg;
            kp.member  = pw->member;
            kp.seq_ids = pw->seq_ids;
        }
        if (pw && pw->kept) {
            kp.kept    = pw->kept + (size_t)l * NH;
            kp.allowed = pw->allowed + (size_t)l * NH;
        }
        if (pw) {
            size_t BH  = (size_t)B * NH;
            kp.n_bands   = pw->n_bands;
            kp.stat_rows = pw->stat_rows;
            if (pw->kept_bh) kp.kept_bh = pw->kept_bh + (size_t)l * BH;
            if (pw->band_kept) kp.band_kept = pw->band_kept + (size_t)l * BH * pw->n_bands;
            if (pw->att_stats) kp.att_stats = pw->att_stats + (size_t)l * BH * (3 + (size_t)pw->n_bands);
        }
        par_attention(K, a, lens, B, T, NH, NKV, HS, c->causal, &kp);
        if (!c->parallel_residual) {
            seq_matmul(K, a->xn, a->att, &lw->wo, lens, B, T, QC, C);
            par_elementwise(PAR_ADD, a->x, a->xn, (size_t)N * C);
        }
        /* MLP sub-layer: x += w2(act(w1(norm(x))) [* w3(norm(x))]); parallel residual (NeoX): norm of
         * the block's input x, and wo(att) added after the MLP */
        par_norm(K, a->xn, a->x, lw->mlp_norm_w, lw->mlp_norm_b, N, C, c->norm, c->norm_eps);
        seq_matmul(K, a->h1, a->xn, &lw->w1, lens, B, T, C, HID); /* (B, T, HID) */
        if (c->mlp == MODEL_MLP_SWIGLU) {
            seq_matmul(K, a->h3, a->xn, &lw->w3, lens, B, T, C, HID);
            par_elementwise(PAR_SWIGLU, a->h1, a->h3, (size_t)N * HID);
        } else {
            par_elementwise(c->mlp == MODEL_MLP_GELU_TANH ? PAR_GELU_TANH : PAR_GELU, a->h1, NULL, (size_t)N * HID);
        }
        seq_matmul(K, a->xn, a->h1, &lw->w2, lens, B, T, HID, C);
        par_elementwise(PAR_ADD, a->x, a->xn, (size_t)N * C);
        if (c->parallel_residual) {
            seq_matmul(K, a->xn, a->att, &lw->wo, lens, B, T, QC, C);
            par_elementwise(PAR_ADD, a->x, a->xn, (size_t)N * C);
        }
    }
    par_norm(K, hidden, a->x, m->w.final_norm_w, m->w.final_norm_b, N, C, c->norm, c->norm_eps);
}

pe_status model_forward_tokens(float *logits, model_acts *a, const model *m, const int *tokens, const int *lens, int B,
                               int T, int use_ref, pe_err *err) {
    return model_forward_tokens_pw(logits, a, m, tokens, lens, B, T, NULL, use_ref, err);
}

pe_status model_forward_hidden_pw(float *hidden, model_acts *a, const model *m, const int *tokens, const int *lens,
                                  int B, int T, const model_pathways *pw, int use_ref, pe_err *err) {
    const model_config *c = &m->cfg;
    if (c->input != MODEL_INPUT_TOKENS || (c->head != MODEL_HEAD_LM && c->head != MODEL_HEAD_LM_TIED))
        return pe_fail(err, PE_ERR_INPUT, "model_forward_tokens needs a token-input LM; this model is an image classifier");
    if (B > a->B || T > a->T || B * T > a->B * a->T)
        return pe_fail(err, PE_ERR_INTERNAL, "forward of %d x %d exceeds the %d x %d activations", B, T, a->B, a->T);
    int C = c->dim;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int tok = tokens[(size_t)b * T + t];
            if (tok < 0 || tok >= c->vocab_size)
                return pe_fail(err, PE_ERR_INPUT, "token id %d at sequence %d position %d is outside the vocabulary [0, %d); "
                               "tokenizer and model disagree", tok, b, t, c->vocab_size);
            float *x = a->x + ((size_t)b * T + t) * C;
            memcpy(x, m->w.tok_emb + (size_t)tok * C, (size_t)C * sizeof(float));
            if (c->pos == MODEL_POS_LEARNED) kern_add(x, m->w.pos_emb + (size_t)t * C, (size_t)C);
        }
    model_forward_blocks(hidden, a, m, lens, B, T, use_ref ? &KERNELS_REF : &KERNELS_FAST, pw);
    return PE_OK;
}

int model_head_rows_auto(const model *m) {
    int64_t r = MODEL_HEAD_BUDGET / (m->cfg.vocab_size > 0 ? m->cfg.vocab_size : 1);
    r -= r % MODEL_HEAD_ROW_ALIGN;
    return r < MODEL_HEAD_ROW_ALIGN ? MODEL_HEAD_ROW_ALIGN : r > MODEL_HEAD_MAX_ROWS ? MODEL_HEAD_MAX_ROWS : (int)r;
}

void model_head_lm(float *logits, const model *m, const float *hidden, int n, int use_ref) {
    const model_config *c = &m->cfg;
    model_linear head = m->w.head;
    if (c->head == MODEL_HEAD_LM_TIED) head = (model_linear){m->w.tok_emb, c->dim, 0, NULL};
    if (n > 0) (use_ref ? KERNELS_REF : KERNELS_FAST).matmul(logits, hidden, &head, n, c->dim, c->vocab_size); /* (n, V) */
}

pe_status model_forward_tokens_pw(float *logits, model_acts *a, const model *m, const int *tokens, const int *lens,
                                  int B, int T, const model_pathways *pw, int use_ref, pe_err *err) {
    pe_status st = model_forward_hidden_pw(a->xn, a, m, tokens, lens, B, T, pw, use_ref, err);
    if (st) return st;
    int C = m->cfg.dim, V = m->cfg.vocab_size, R = model_head_rows_auto(m);
    for (int b = 0; b < B; b++) { /* the head over each sequence's chunk grid, as the evaluation runs it */
        int len = lens ? lens[b] : T;
        for (int r0 = 0; r0 < len; r0 += R)
            model_head_lm(logits + ((size_t)b * T + r0) * V, m, a->xn + ((size_t)b * T + r0) * C,
                          len - r0 < R ? len - r0 : R, use_ref); /* (n, V) */
    }
    return PE_OK;
}

void model_image_patches(float *patches, const model_config *c, const uint8_t *pixels, int B) {
    int P = c->patch_size, S = c->image_size, CH = c->channels, per = S / P, NP = per * per, PP = CH * P * P;
    for (int b = 0; b < B; b++)
        for (int py = 0; py < per; py++)
            for (int px = 0; px < per; px++) {
                float *dst = patches + ((size_t)b * NP + (size_t)py * per + px) * PP;
                for (int ch = 0; ch < CH; ch++) {
                    float mean = c->pixel_per_channel ? c->pixel_mean_c[ch] : c->pixel_mean;
                    float std  = c->pixel_per_channel ? c->pixel_std_c[ch] : c->pixel_std;
                    for (int y = 0; y < P; y++)
                        for (int x = 0; x < P; x++) {
                            uint8_t v = pixels[(((size_t)b * CH + ch) * S + (size_t)py * P + y) * S + (size_t)px * P + x];
                            *dst++ = ((float)v / 255.0f - mean) / std;
                        }
                }
            }
}

pe_status model_forward_images(float *logits, model_acts *a, const model *m, const uint8_t *pixels, int B, int use_ref,
                               pe_err *err) {
    return model_forward_images_pw(logits, a, m, pixels, B, NULL, use_ref, err);
}

pe_status model_forward_images_pw(float *logits, model_acts *a, const model *m, const uint8_t *pixels, int B,
                                  const model_pathways *pw, int use_ref, pe_err *err) {
    const model_config *c = &m->cfg;
    if (c->input != MODEL_INPUT_PATCHES)
        return pe_fail(err, PE_ERR_INPUT, "model_forward_images needs a patch-input model; this one takes tokens");
    int T = model_image_seq_len(c), C = c->dim, P = c->patch_size, S = c->image_size, CH = c->channels;
    int per = S / P, NP = per * per, PP = CH * P * P, off = c->head == MODEL_HEAD_CLS_TOKEN ? 1 : 0;
    if (B > a->B || T > a->T || B * T > a->B * a->T)
        return pe_fail(err, PE_ERR_INTERNAL, "forward of %d images exceeds the %d x %d activations", B, a->B, a->T);
    const kernel_set *K = use_ref ? &KERNELS_REF : &KERNELS_FAST;
    model_image_patches(a->patches, c, pixels, B); /* (B, NP, PP) */
    seq_matmul(K, a->xn, a->patches, &m->w.patch, NULL, B, NP, PP, C); /* (B, NP, C) */
    for (int b = 0; b < B; b++) {
        if (off) memcpy(a->x + (size_t)b * T * C, m->w.cls_token, (size_t)C * sizeof(float));
        memcpy(a->x + ((size_t)b * T + off) * C, a->xn + (size_t)b * NP * C, (size_t)NP * C * sizeof(float));
        if (c->pos == MODEL_POS_LEARNED)
            for (int t = 0; t < T; t++) kern_add(a->x + ((size_t)b * T + t) * C, m->w.pos_emb + (size_t)t * C, (size_t)C);
    }
    model_forward_blocks(a->xn, a, m, NULL, B, T, K, pw);
    for (int b = 0; b < B; b++) {
        float *pb = a->pooled + (size_t)b * C;
        if (c->head == MODEL_HEAD_CLS_TOKEN) {
            memcpy(pb, a->xn + (size_t)b * T * C, (size_t)C * sizeof(float));
        } else {
            for (int i = 0; i < C; i++) {
                double s = 0.0;
                for (int t = 0; t < T; t++) s += a->xn[((size_t)b * T + t) * C + i];
                pb[i] = (float)(s / T);
            }
        }
    }
    seq_matmul(K, logits, a->pooled, &m->w.head, NULL, B, 1, C, c->n_classes); /* (B, NC), one row per image */
    return PE_OK;
}

/* ---- token-by-token reference: llama2.c run.c's loop, generalised to the switches ---------- */

pe_status model_seq_init(model_seq_state *s, const model *m, pe_err *err) {
    memset(s, 0, sizeof *s);
    const model_config *c = &m->cfg;
    if (c->input != MODEL_INPUT_TOKENS || !c->causal)
        return pe_fail(err, PE_ERR_INPUT, "the token-by-token reference needs a causal token model");
    if (model_uses_hf_switches(c))
        return pe_fail(err, PE_ERR_INPUT, "the token-by-token reference implements the llama2.c / GPT-2 switches only; "
                       "this model uses Hugging Face ones (head_dim, rotate_half or partial RoPE, q/k norm, parallel "
                       "residual, ...): use model_forward_tokens with use_ref = 1");
    size_t C = (size_t)c->dim, HID = (size_t)c->hidden_dim, KVC = (size_t)c->n_kv_heads * (c->dim / c->n_heads),
           L = (size_t)c->n_layers, T = (size_t)c->seq_len, NH = (size_t)c->n_heads;
    size_t sizes[9] = {C, C, C, HID, HID, C, NH * T, L * T * KVC, L * T * KVC};
    float **ptrs[9] = {&s->x, &s->xb, &s->xb2, &s->hb, &s->hb2, &s->q, &s->att, &s->key_cache, &s->value_cache};
    size_t total = 0;
    for (int i = 0; i < 9; i++) total += sizes[i];
    s->block = pe_calloc(total, sizeof(float), err, "token-by-token state");
    if (!s->block) return PE_ERR_INTERNAL;
    float *p = s->block;
    for (int i = 0; i < 9; i++) {
        *ptrs[i] = p;
        p += sizes[i];
    }
    return PE_OK;
}

void model_seq_free(model_seq_state *s) {
    free(s->block);
    memset(s, 0, sizeof *s);
}

/* out (n_out) = W x + b, naive loop as run.c's matmul */
static void seq_matvec(float *out, const float *x, const model_linear *w, int n_in, int n_out) {
    for (int i = 0; i < n_out; i++) {
        float val = 0.0f;
        if (w->kmajor)
            for (int j = 0; j < n_in; j++) val += w->w[(size_t)j * w->ld + i] * x[j];
        else
            for (int j = 0; j < n_in; j++) val += w->w[(size_t)i * w->ld + j] * x[j];
        out[i] = val + (w->b ? w->b[i] : 0.0f);
    }
}

void model_forward_token_seq(float *logits, model_seq_state *s, const model *m, int token, int pos) {
    const model_config *c = &m->cfg;
    int C = c->dim, NH = c->n_heads, HS = C / NH, KVC = c->n_kv_heads * HS, group = NH / c->n_kv_heads;
    int HID = c->hidden_dim, T = c->seq_len;
    float *x = s->x;
    memcpy(x, m->w.tok_emb + (size_t)token * C, (size_t)C * sizeof(float));
    if (c->pos == MODEL_POS_LEARNED)
        for (int i = 0; i < C; i++) x[i] += m->w.pos_emb[(size_t)pos * C + i];
    for (int l = 0; l < c->n_layers; l++) {
        const model_layer_weights *lw = &m->w.layers[l];
        kern_norm(s->xb, x, lw->attn_norm_w, lw->attn_norm_b, 1, C, c->norm, c->norm_eps);
        float *kc = s->key_cache + ((size_t)l * T + pos) * KVC, *vc = s->value_cache + ((size_t)l * T + pos) * KVC;
        seq_matvec(s->q, s->xb, &lw->wq, C, C);
        seq_matvec(kc, s->xb, &lw->wk, C, KVC);
        seq_matvec(vc, s->xb, &lw->wv, C, KVC);
        if (c->pos == MODEL_POS_ROPE) {
            for (int i = 0; i < C; i += 2) {
                int   hd   = i % HS;
                float freq = 1.0f / powf(c->rope_theta, (float)hd / (float)HS);
                float val  = (float)pos * freq, fcr = cosf(val), fci = sinf(val);
                int   rotn = i < KVC ? 2 : 1;
                for (int v = 0; v < rotn; v++) {
                    float *vec = v == 0 ? s->q : kc;
                    float  v0 = vec[i], v1 = vec[i + 1];
                    vec[i]     = v0 * fcr - v1 * fci;
                    vec[i + 1] = v0 * fci + v1 * fcr;
                }
            }
        }
        for (int h = 0; h < NH; h++) {
            const float *q   = s->q + (size_t)h * HS;
            float       *att = s->att + (size_t)h * T;
            for (int t = 0; t <= pos; t++) {
                const float *k = s->key_cache + ((size_t)l * T + t) * KVC + (size_t)(h / group) * HS;
                float score = 0.0f;
                for (int i = 0; i < HS; i++) score += q[i] * k[i];
                att[t] = score / sqrtf((float)HS);
            }
            float mx = att[0], sum = 0.0f;
            for (int t = 1; t <= pos; t++) mx = att[t] > mx ? att[t] : mx;
            for (int t = 0; t <= pos; t++) {
                att[t] = expf(att[t] - mx);
                sum += att[t];
            }
            for (int t = 0; t <= pos; t++) att[t] /= sum;
            float *xb = s->xb + (size_t)h * HS;
            memset(xb, 0, (size_t)HS * sizeof(float));
            for (int t = 0; t <= pos; t++) {
                const float *v = s->value_cache + ((size_t)l * T + t) * KVC + (size_t)(h / group) * HS;
                for (int i = 0; i < HS; i++) xb[i] += att[t] * v[i];
            }
        }
        seq_matvec(s->xb2, s->xb, &lw->wo, C, C);
        for (int i = 0; i < C; i++) x[i] += s->xb2[i];
        kern_norm(s->xb, x, lw->mlp_norm_w, lw->mlp_norm_b, 1, C, c->norm, c->norm_eps);
        seq_matvec(s->hb, s->xb, &lw->w1, C, HID);
        if (c->mlp == MODEL_MLP_SWIGLU) {
            seq_matvec(s->hb2, s->xb, &lw->w3, C, HID);
            kern_swiglu(s->hb, s->hb2, (size_t)HID);
        } else {
            kern_gelu(s->hb, (size_t)HID, c->mlp == MODEL_MLP_GELU_TANH);
        }
        seq_matvec(s->xb, s->hb, &lw->w2, HID, C);
        for (int i = 0; i < C; i++) x[i] += s->xb[i];
    }
    kern_norm(s->xb, x, m->w.final_norm_w, m->w.final_norm_b, 1, C, c->norm, c->norm_eps);
    model_linear head = m->w.head;
    if (c->head == MODEL_HEAD_LM_TIED) head = (model_linear){m->w.tok_emb, C, 0, NULL};
    seq_matvec(logits, s->xb, &head, C, c->vocab_size);
}
