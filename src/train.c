/* train.c: parameters as one block, forward with a tape, backward, AdamW (train.h). */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

pe_status train_check_config(const model_config *c, const char *where, pe_err *err) {
    pe_status st = model_check_config(c, where, err);
    if (st) return st;
    const char *bad = NULL;
    if (c->norm != MODEL_NORM_LAYERNORM) bad = "norm must be layernorm";
    else if (!c->bias) bad = "bias must be true (LayerNorm and linear biases)";
    else if (c->pos != MODEL_POS_LEARNED) bad = "pos must be learned";
    else if (c->mlp != MODEL_MLP_GELU) bad = "mlp must be gelu (erf form)";
    else if (c->n_kv_heads != c->n_heads) bad = "n_kv_heads must equal n_heads (no grouped-query attention)";
    else if (model_uses_hf_switches(c))
        bad = "it uses Hugging Face switches (head_dim, rotate_half or partial RoPE, q/k norm, parallel residual, "
              "separate q/k/v/o/MLP biases, sliding window), which pathens evaluates but does not train";
    else if (c->input == MODEL_INPUT_TOKENS && !(c->head == MODEL_HEAD_LM || c->head == MODEL_HEAD_LM_TIED))
        bad = "a token-input model needs an LM head (tied or separate)";
    else if (c->input == MODEL_INPUT_TOKENS && !c->causal) bad = "a token-input LM must be causal";
    else if (c->input == MODEL_INPUT_PATCHES && !(c->head == MODEL_HEAD_CLS_TOKEN || c->head == MODEL_HEAD_CLS_MEAN))
        bad = "an image model needs a classifier head (cls token or mean pooling)";
    if (bad)
        return pe_fail(err, PE_ERR_INPUT,
                       "%s: pathens train supports the GPT-style causal LM and the ViT classifier (LayerNorm with "
                       "biases, learned positions, erf-GELU MLP, multi-head attention); this config is not one: %s",
                       where, bad);
    return PE_OK;
}

/* ---- parameters ------------------------------------------------------------------------- */

static int64_t spec_numel(const model_tensor_spec *s) { return s->shape[0] * (s->ndim > 1 ? s->shape[1] : 1); }

pe_status train_params_init(train_params *p, const model_config *cfg, pe_err *err) {
    memset(p, 0, sizeof *p);
    p->cfg       = *cfg;
    p->n_tensors = model_list_tensors(cfg, NULL, 0);
    p->specs     = pe_calloc((size_t)p->n_tensors, sizeof *p->specs, err, "tensor table");
    p->offset    = pe_calloc((size_t)p->n_tensors, sizeof *p->offset, err, "tensor offsets");
    if (!p->specs || !p->offset) goto fail;
    model_list_tensors(cfg, p->specs, p->n_tensors);
    for (int i = 0; i < p->n_tensors; i++) {
        p->offset[i] = p->n_params;
        p->n_params += spec_numel(&p->specs[i]);
    }
    p->params = pe_calloc((size_t)p->n_params, sizeof(float), err, "parameters");
    p->dir.tensors = pe_calloc((size_t)p->n_tensors, sizeof *p->dir.tensors, err, "tensor views");
    if (!p->params || !p->dir.tensors) goto fail;
    /* an in-memory checkpoint directory whose tensors are views into params: model_init binds it */
    snprintf(p->dir.path, sizeof p->dir.path, "(training parameters)");
    snprintf(p->dir.format, sizeof p->dir.format, "safetensors");
    p->dir.cfg       = *cfg;
    p->dir.n_tensors = p->n_tensors;
    for (int i = 0; i < p->n_tensors; i++) {
        ckpt_tensor *t = &p->dir.tensors[i];
        snprintf(t->name, sizeof t->name, "%s", p->specs[i].name);
        t->dtype    = CKPT_DTYPE_F32;
        t->ndim     = p->specs[i].ndim;
        t->shape[0] = p->specs[i].shape[0];
        t->shape[1] = p->specs[i].shape[1];
        t->data     = p->params + p->offset[i];
        t->nbytes   = (size_t)spec_numel(&p->specs[i]) * sizeof(float);
    }
    if (model_init(&p->m, &p->dir, err)) goto fail;
    return PE_OK;
fail:
    train_params_free(p);
    return err ? err->code : PE_ERR_INTERNAL;
}

void train_params_free(train_params *p) {
    model_free(&p->m);
    free(p->specs);
    free(p->offset);
    free(p->params);
    free(p->dir.tensors);
    memset(p, 0, sizeof *p);
}

int train_params_find(const train_params *p, const char *name) {
    for (int i = 0; i < p->n_tensors; i++)
        if (!strcmp(p->specs[i].name, name)) return i;
    return -1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

void train_params_seed(train_params *p, uint64_t seed) {
    double resid = 0.02 / sqrt(2.0 * p->cfg.n_layers);
    for (int i = 0; i < p->n_tensors; i++) {
        const model_tensor_spec *s = &p->specs[i];
        float  *x = p->params + p->offset[i];
        int64_t n = spec_numel(s);
        pw_rng  r;
        pw_rng_init(&r, seed, 0x7472616e /* "tran" */, (uint64_t)i, 0, 0, 0);
        if (ends_with(s->name, ".bias")) {
            memset(x, 0, (size_t)n * sizeof(float));
        } else if (ends_with(s->name, "norm.weight")) {
            for (int64_t k = 0; k < n; k++) x[k] = 1.0f;
        } else {
            double sd = (strstr(s->name, "attn.wo.") || strstr(s->name, "mlp.w2.")) ? resid : 0.02;
            for (int64_t k = 0; k < n; k++) x[k] = (float)(sd * pw_rng_normal(&r));
        }
    }
}

pe_status train_params_load(train_params *p, float *dst, const char *path, const char *prefix, pe_err *err) {
    if (!dst) dst = p->params;
    /* the optimizer file has no config of its own: parse it with a config.json written for it */
    ckpt_file ck;
    char      cfg_path[4200];
    const char *slash = strrchr(path, '/');
    snprintf(cfg_path, sizeof cfg_path, "%.*sconfig.json", slash ? (int)(slash - path + 1) : 0, path);
    pe_status st = ckpt_open(&ck, path, "safetensors", cfg_path, err);
    if (st) return st;
    char name[160];
    for (int i = 0; !st && i < p->n_tensors; i++) {
        snprintf(name, sizeof name, "%s%s", prefix, p->specs[i].name);
        const ckpt_tensor *t = ckpt_find(&ck, name);
        int64_t n = spec_numel(&p->specs[i]);
        if (!t) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\" is missing; the file does not belong to this model", path,
                         name);
        } else if (t->dtype != CKPT_DTYPE_F32 || t->nbytes != (size_t)n * sizeof(float)) {
            char got[96] = "";
            for (int k = 0; k < t->ndim; k++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", k ? ", " : "", (long long)t->shape[k]);
            char want[64];
            if (p->specs[i].ndim > 1)
                snprintf(want, sizeof want, "%lld, %lld", (long long)p->specs[i].shape[0], (long long)p->specs[i].shape[1]);
            else
                snprintf(want, sizeof want, "%lld", (long long)p->specs[i].shape[0]);
            st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\" is %s [%s], expected F32 [%s]; the file belongs to another "
                         "architecture", path, name, ckpt_dtype_name(t->dtype), got, want);
        } else {
            float *x = dst + p->offset[i];
            memcpy(x, t->data, t->nbytes);
            for (int64_t k = 0; k < n; k++) /* NaN / Inf would reach the kernels as UB (kern_expf) */
                if (!isfinite(x[k])) {
                    st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\" element %lld is %g; the checkpoint is damaged: "
                                 "resume from another one or remove it", path, name, (long long)k, (double)x[k]);
                    break;
                }
        }
    }
    ckpt_close(&ck);
    return st;
}

pe_status train_params_save(const train_params *p, const float *src, const char *path, const char *prefix,
                            pe_err *err) {
    if (!src) src = p->params;
    int           n      = p->n_tensors;
    const char  **names  = calloc((size_t)n, sizeof *names);
    char         *store  = calloc((size_t)n, 160);
    int          *ndims  = calloc((size_t)n, sizeof *ndims);
    int64_t     (*shapes)[4] = calloc((size_t)n, sizeof *shapes);
    const float **data   = calloc((size_t)n, sizeof *data);
    pe_status     st;
    if (!names || !store || !ndims || !shapes || !data) {
        st = pe_fail(err, PE_ERR_INTERNAL, "out of memory writing %s", path);
    } else {
        for (int i = 0; i < n; i++) {
            snprintf(store + (size_t)i * 160, 160, "%s%s", prefix, p->specs[i].name);
            names[i]     = store + (size_t)i * 160;
            ndims[i]     = p->specs[i].ndim;
            shapes[i][0] = p->specs[i].shape[0];
            shapes[i][1] = p->specs[i].shape[1];
            data[i]      = src + p->offset[i];
        }
        st = ckpt_write_safetensors(path, n, names, ndims, (const int64_t(*)[4])shapes, data, err);
    }
    free(names); free(store); free(ndims); free(shapes); free(data);
    return st;
}

/* ---- activations -------------------------------------------------------------------------- */

pe_status train_acts_init(train_acts *a, const model_config *c, int B, int T, pe_err *err) {
    memset(a, 0, sizeof *a);
    a->B = B;
    a->T = T;
    size_t L = (size_t)c->n_layers, N = (size_t)B * T, C = (size_t)c->dim, HID = (size_t)c->hidden_dim;
    size_t PP = (size_t)c->channels * c->patch_size * c->patch_size;
    size_t out = c->input == MODEL_INPUT_TOKENS ? N * (size_t)c->vocab_size : (size_t)B * c->n_classes;
    /* the size table: every buffer carved from one block */
    struct { float **p; size_t n; } tab[] = {
        {&a->x_in, L * N * C},   {&a->ln1, L * N * C},   {&a->ln1_mean, L * N}, {&a->ln1_rstd, L * N},
        {&a->q, L * N * C},      {&a->k, L * N * C},     {&a->v, L * N * C},    {&a->att, L * N * C},
        {&a->x_mid, L * N * C},  {&a->ln2, L * N * C},   {&a->ln2_mean, L * N}, {&a->ln2_rstd, L * N},
        {&a->h_pre, L * N * HID},{&a->h_act, L * N * HID},
        {&a->x_out, N * C},      {&a->lnf, N * C},       {&a->lnf_mean, N},     {&a->lnf_rstd, N},
        {&a->patches, c->input == MODEL_INPUT_PATCHES ? N * PP : 0},
        {&a->pooled, (size_t)B * C}, {&a->logits, out},
        {&a->dx, N * C}, {&a->dbuf, N * C}, {&a->dq, N * C}, {&a->dk, N * C}, {&a->dv, N * C},
        {&a->dh, N * HID}, {&a->dpooled, (size_t)B * C},
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) total += tab[i].n;
    a->block = pe_calloc(total, sizeof(float), err, "training activations");
    if (!a->block) return PE_ERR_INTERNAL;
    float *cur = a->block;
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        *tab[i].p = cur;
        cur += tab[i].n;
    }
    a->targets = pe_calloc(N, sizeof(int), err, "targets");
    if (!a->targets) goto fail;
    /* initial arena: a quarter of dense causal attention; it grows on demand */
    if (att_tape_init(&a->tape, (int)(L * B * c->n_heads), T, (int64_t)L * B * c->n_heads * T * (T + 1) / 8 + 64)) {
        pe_fail(err, PE_ERR_INTERNAL, "out of memory for the attention tape");
        goto fail;
    }
    if (pw_sample_init(&a->sample, T, err)) goto fail;
    return PE_OK;
fail:
    train_acts_free(a);
    return err ? err->code : PE_ERR_INTERNAL;
}

void train_acts_free(train_acts *a) {
    free(a->block);
    free(a->targets);
    att_tape_free(&a->tape);
    pw_sample_free(&a->sample);
    memset(a, 0, sizeof *a);
}

/* ---- forward and backward of the blocks ------------------------------------------------- */

/* writable pointer to a tensor of base (params or grad layout) */
static float *tptr(const train_params *p, float *base, const char *fmt, int l) {
    char name[96];
    snprintf(name, sizeof name, fmt, l);
    int i = train_params_find(p, name);
    return i < 0 ? NULL : base + p->offset[i];
}

typedef struct {
    float *ln1w, *ln1b, *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *ln2w, *ln2b, *w1, *b1, *w2, *b2;
} layer_ptrs;

static layer_ptrs layer_at(const train_params *p, float *base, int l) {
    layer_ptrs r = {
        tptr(p, base, "layers.%d.attn_norm.weight", l), tptr(p, base, "layers.%d.attn_norm.bias", l),
        tptr(p, base, "layers.%d.attn.wq.weight", l),   tptr(p, base, "layers.%d.attn.wq.bias", l),
        tptr(p, base, "layers.%d.attn.wk.weight", l),   tptr(p, base, "layers.%d.attn.wk.bias", l),
        tptr(p, base, "layers.%d.attn.wv.weight", l),   tptr(p, base, "layers.%d.attn.wv.bias", l),
        tptr(p, base, "layers.%d.attn.wo.weight", l),   tptr(p, base, "layers.%d.attn.wo.bias", l),
        tptr(p, base, "layers.%d.mlp_norm.weight", l),  tptr(p, base, "layers.%d.mlp_norm.bias", l),
        tptr(p, base, "layers.%d.mlp.w1.weight", l),    tptr(p, base, "layers.%d.mlp.w1.bias", l),
        tptr(p, base, "layers.%d.mlp.w2.weight", l),    tptr(p, base, "layers.%d.mlp.w2.bias", l),
    };
    return r;
}

void train_dropout_apply(float *x, float p, uint64_t seed, int site, const int64_t *seq_ids, int B, size_t n) {
    /* keep when the 32-bit draw >= p 2^32: P(drop) = p within 2^-32; two draws per 64-bit word */
    uint32_t thr   = (uint32_t)fmin((double)p * 4294967296.0, 4294967295.0);
    float    scale = (float)(1.0 / (1.0 - (double)p));
    for (int b = 0; b < B; b++) {
        pw_rng r;
        pw_rng_init(&r, seed, 0x64726f70 /* "drop" */, (uint64_t)site, (uint64_t)(seq_ids ? seq_ids[b] : b), 0, 0);
        float *xb = x + (size_t)b * n;
        for (size_t i = 0; i < n; i += 2) {
            uint64_t u = pw_rng_u64(&r);
            xb[i] = (uint32_t)u >= thr ? xb[i] * scale : 0.0f;
            if (i + 1 < n) xb[i + 1] = (uint32_t)(u >> 32) >= thr ? xb[i + 1] * scale : 0.0f;
        }
    }
}

/* x (B, n) through the chunk's dropout mask of `site`, when dropout is on */
static void acts_dropout(const train_acts *a, float *x, int site, const int64_t *seq_ids, int B, size_t n) {
    if (a->dropout > 0) train_dropout_apply(x, a->dropout, a->dropout_seed, site, seq_ids, B, n);
}

static void linear_fwd(float *out, const float *inp, const float *w, const float *b, int N, int C, int OC) {
    model_linear lin = {w, C, 0, b};
    kern_matmul(out, inp, &lin, N, C, OC); /* one sgemm over the chunk's N rows */
}

/* Blocks over a->x_in[0] (B, T, C); final norm into a->lnf. Returns kept connections or -1. */
static int64_t blocks_forward(train_acts *a, const train_params *p, int B, int T, const pw_config *pw,
                              const int64_t *seq_ids) {
    const model_config *c = &p->cfg;
    int     C = c->dim, NH = c->n_heads, HS = C / NH, HID = c->hidden_dim, L = c->n_layers;
    size_t  N = (size_t)B * T, NC = N * C, NHID = N * HID;
    int64_t kept = 0;
    float  *params = p->params;
    const pw_config *use_pw = pw && (pw->scheme != PW_SCHEME_DENSE || pw->head_keep) ? pw : NULL;
    for (int l = 0; l < L; l++) {
        layer_ptrs w   = layer_at(p, params, l);
        float     *xin = a->x_in + l * NC, *xmid = a->x_mid + l * NC;
        float     *xnext = l + 1 < L ? a->x_in + (l + 1) * NC : a->x_out;
        float     *ln1 = a->ln1 + l * NC, *q = a->q + l * NC, *k = a->k + l * NC, *v = a->v + l * NC;
        float     *att = a->att + l * NC, *ln2 = a->ln2 + l * NC;
        float     *hpre = a->h_pre + l * NHID, *hact = a->h_act + l * NHID;
        fwd_layernorm(ln1, a->ln1_mean + l * N, a->ln1_rstd + l * N, xin, w.ln1w, w.ln1b, (int)N, C, c->norm_eps);
        linear_fwd(q, ln1, w.wq, w.bq, (int)N, C, C);
        linear_fwd(k, ln1, w.wk, w.bk, (int)N, C, C);
        linear_fwd(v, ln1, w.wv, w.bv, (int)N, C, C);
        int64_t kl = fwd_attention_tape(att, &a->tape, l * B * NH, q, k, v, B, T, NH, HS, c->causal, use_pw, &a->sample,
                                        0, l, seq_ids);
        if (kl < 0) return -1;
        kept += kl;
        linear_fwd(a->dbuf, att, w.wo, w.bo, (int)N, C, C);
        acts_dropout(a, a->dbuf, 1 + 2 * l, seq_ids, B, (size_t)T * C);
        for (size_t i = 0; i < NC; i++) xmid[i] = xin[i] + a->dbuf[i];
        fwd_layernorm(ln2, a->ln2_mean + l * N, a->ln2_rstd + l * N, xmid, w.ln2w, w.ln2b, (int)N, C, c->norm_eps);
        linear_fwd(hpre, ln2, w.w1, w.b1, (int)N, C, HID);
        memcpy(hact, hpre, NHID * sizeof(float));
        kern_gelu(hact, NHID, 0);
        linear_fwd(a->dbuf, hact, w.w2, w.b2, (int)N, HID, C);
        acts_dropout(a, a->dbuf, 2 + 2 * l, seq_ids, B, (size_t)T * C);
        for (size_t i = 0; i < NC; i++) xnext[i] = xmid[i] + a->dbuf[i];
    }
    fwd_layernorm(a->lnf, a->lnf_mean, a->lnf_rstd, a->x_out, tptr(p, params, "final_norm.weight", 0),
                  tptr(p, params, "final_norm.bias", 0), (int)N, C, c->norm_eps);
    return kept;
}

/* Backward of the blocks: on entry a->dbuf holds d(lnf) (B, T, C); on exit a->dx holds d(x_in[0]).
 * With dropout, d(branch output) = mask ⊙ d(residual) / (1 - p): the forward's masks, redrawn. */
static void blocks_backward(float *grad, train_acts *a, const train_params *p, int B, int T, const int64_t *seq_ids) {
    const model_config *c = &p->cfg;
    int    C = c->dim, NH = c->n_heads, HS = C / NH, HID = c->hidden_dim, L = c->n_layers;
    size_t N = (size_t)B * T, NC = N * C, NHID = N * HID;
    memset(a->dx, 0, NC * sizeof(float));
    bwd_layernorm(a->dx, tptr(p, grad, "final_norm.weight", 0), tptr(p, grad, "final_norm.bias", 0), a->dbuf, a->x_out,
                  a->lnf_mean, a->lnf_rstd, tptr(p, p->params, "final_norm.weight", 0), (int)N, C);
    for (int l = L - 1; l >= 0; l--) {
        layer_ptrs w = layer_at(p, p->params, l), g = layer_at(p, grad, l);
        float *xin = a->x_in + l * NC, *xmid = a->x_mid + l * NC;
        float *ln1 = a->ln1 + l * NC, *q = a->q + l * NC, *k = a->k + l * NC, *v = a->v + l * NC;
        float *att = a->att + l * NC, *ln2 = a->ln2 + l * NC;
        float *hpre = a->h_pre + l * NHID, *hact = a->h_act + l * NHID;
        /* MLP: x_next = x_mid + w2(gelu(w1(ln2(x_mid)))); a->dx is d(x_next) and stays on the residual path */
        const float *dmlp = a->dx; /* d(MLP output) */
        if (a->dropout > 0) {
            memcpy(a->dbuf, a->dx, NC * sizeof(float));
            acts_dropout(a, a->dbuf, 2 + 2 * l, seq_ids, B, (size_t)T * C);
            dmlp = a->dbuf;
        }
        memset(a->dh, 0, NHID * sizeof(float));
        bwd_matmul(a->dh, g.w2, g.b2, dmlp, hact, w.w2, (int)N, HID, C);
        memset(hact, 0, NHID * sizeof(float)); /* h_act is no longer needed: it becomes d(h_pre) */
        bwd_gelu(hact, a->dh, hpre, NHID);
        memset(a->dbuf, 0, NC * sizeof(float));
        bwd_matmul(a->dbuf, g.w1, g.b1, hact, ln2, w.w1, (int)N, C, HID);
        bwd_layernorm(a->dx, g.ln2w, g.ln2b, a->dbuf, xmid, a->ln2_mean + l * N, a->ln2_rstd + l * N, w.ln2w, (int)N, C);
        /* attention: x_mid = x_in + wo(attn(q, k, v)); a->dx is now d(x_mid) */
        const float *datt = a->dx; /* d(attention output after wo) */
        if (a->dropout > 0) {
            memcpy(a->dq, a->dx, NC * sizeof(float)); /* dq is free until the attention backward */
            acts_dropout(a, a->dq, 1 + 2 * l, seq_ids, B, (size_t)T * C);
            datt = a->dq;
        }
        memset(a->dbuf, 0, NC * sizeof(float));
        bwd_matmul(a->dbuf, g.wo, g.bo, datt, att, w.wo, (int)N, C, C);
        memset(a->dq, 0, NC * sizeof(float));
        memset(a->dk, 0, NC * sizeof(float));
        memset(a->dv, 0, NC * sizeof(float));
        bwd_attention_tape(a->dq, a->dk, a->dv, a->dbuf, &a->tape, l * B * NH, q, k, v, B, T, NH, HS);
        memset(a->dbuf, 0, NC * sizeof(float));
        bwd_matmul(a->dbuf, g.wq, g.bq, a->dq, ln1, w.wq, (int)N, C, C);
        bwd_matmul(a->dbuf, g.wk, g.bk, a->dk, ln1, w.wk, (int)N, C, C);
        bwd_matmul(a->dbuf, g.wv, g.bv, a->dv, ln1, w.wv, (int)N, C, C);
        bwd_layernorm(a->dx, g.ln1w, g.ln1b, a->dbuf, xin, a->ln1_mean + l * N, a->ln1_rstd + l * N, w.ln1w, (int)N, C);
    }
}

static void count_allowed(train_stats *st, const model_config *c, int B, int T) {
    int64_t per = c->causal ? (int64_t)T * (T + 1) / 2 : (int64_t)T * T;
    st->att_allowed += per * B * c->n_heads * c->n_layers;
}

pe_status train_grad_tokens(float *grad, train_stats *st, train_acts *a, const train_params *p, const int *tokens,
                            int B, int T, const pw_config *pw, const int64_t *seq_ids, float scale, pe_err *err) {
    const model_config *c = &p->cfg;
    if (c->input != MODEL_INPUT_TOKENS) return pe_fail(err, PE_ERR_INPUT, "train_grad_tokens needs a token-input LM");
    if (B > a->B || T > a->T || T > c->seq_len)
        return pe_fail(err, PE_ERR_INTERNAL, "chunk %d x %d exceeds the activations (%d x %d) or seq_len %d", B, T, a->B,
                       a->T, c->seq_len);
    int    C = c->dim, V = c->vocab_size;
    size_t N = (size_t)B * T;
    const float *tok_emb = tptr(p, p->params, "tok_emb.weight", 0), *pos_emb = tptr(p, p->params, "pos_emb.weight", 0);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int tok = tokens[(size_t)b * (T + 1) + t], tgt = tokens[(size_t)b * (T + 1) + t + 1];
            if (tok < 0 || tok >= V || tgt < 0 || tgt >= V)
                return pe_fail(err, PE_ERR_INPUT, "token id %d at sequence %d position %d is outside [0, %d)",
                               tok < 0 || tok >= V ? tok : tgt, b, t, V);
            float *x = a->x_in + ((size_t)b * T + t) * C;
            for (int i = 0; i < C; i++) x[i] = tok_emb[(size_t)tok * C + i] + pos_emb[(size_t)t * C + i];
            a->targets[(size_t)b * T + t] = tgt;
        }
    acts_dropout(a, a->x_in, 0, seq_ids, B, (size_t)T * C);
    att_tape_reset(&a->tape);
    int64_t kept = blocks_forward(a, p, B, T, pw, seq_ids);
    if (kept < 0) return pe_fail(err, PE_ERR_INTERNAL, "out of memory growing the attention tape");
    int          tied = c->head == MODEL_HEAD_LM_TIED;
    const float *wh   = tied ? tok_emb : tptr(p, p->params, "lm_head.weight", 0);
    float       *gwh  = tied ? tptr(p, grad, "tok_emb.weight", 0) : tptr(p, grad, "lm_head.weight", 0);
    linear_fwd(a->logits, a->lnf, wh, NULL, (int)N, C, V); /* (B, T, V) */
    st->loss_sum += bwd_crossentropy(a->logits, a->logits, a->targets, (int)N, V, scale);
    st->n_targets += (int64_t)N;
    st->att_kept += kept;
    count_allowed(st, c, B, T);
    memset(a->dbuf, 0, N * C * sizeof(float));
    bwd_matmul(a->dbuf, gwh, NULL, a->logits, a->lnf, wh, (int)N, C, V);
    blocks_backward(grad, a, p, B, T, seq_ids);
    acts_dropout(a, a->dx, 0, seq_ids, B, (size_t)T * C);
    float *gtok = tptr(p, grad, "tok_emb.weight", 0), *gpos = tptr(p, grad, "pos_emb.weight", 0);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int          tok = tokens[(size_t)b * (T + 1) + t];
            const float *dx  = a->dx + ((size_t)b * T + t) * C;
            for (int i = 0; i < C; i++) {
                gtok[(size_t)tok * C + i] += dx[i];
                gpos[(size_t)t * C + i] += dx[i];
            }
        }
    return PE_OK;
}

pe_status train_grad_images(float *grad, train_stats *st, train_acts *a, const train_params *p,
                            const uint8_t *pixels, const int *labels, int B, const pw_config *pw,
                            const int64_t *seq_ids, float scale, pe_err *err) {
    const model_config *c = &p->cfg;
    if (c->input != MODEL_INPUT_PATCHES) return pe_fail(err, PE_ERR_INPUT, "train_grad_images needs a patch-input model");
    int T = model_image_seq_len(c), C = c->dim, P = c->patch_size, S = c->image_size, CH = c->channels;
    int per = S / P, NP = per * per, PP = CH * P * P, off = c->head == MODEL_HEAD_CLS_TOKEN ? 1 : 0, NCL = c->n_classes;
    if (B > a->B || T > a->T) return pe_fail(err, PE_ERR_INTERNAL, "chunk of %d images exceeds the activations", B);
    size_t N = (size_t)B * T;
    for (int b = 0; b < B; b++) {
        if (labels[b] < 0 || labels[b] >= NCL)
            return pe_fail(err, PE_ERR_INPUT, "label %d of image %d is outside [0, %d)", labels[b], b, NCL);
        a->targets[b] = labels[b];
    }
    model_image_patches(a->patches, c, pixels, B); /* (B, NP, PP), as model_forward_images */
    const float *pw_w = tptr(p, p->params, "patch_emb.weight", 0), *pw_b = tptr(p, p->params, "patch_emb.bias", 0);
    const float *pos = tptr(p, p->params, "pos_emb.weight", 0), *cls = tptr(p, p->params, "cls_token", 0);
    linear_fwd(a->dbuf, a->patches, pw_w, pw_b, B * NP, PP, C); /* (B, NP, C) */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float       *x   = a->x_in + ((size_t)b * T + t) * C;
            const float *src = t < off ? cls : a->dbuf + ((size_t)b * NP + t - off) * C;
            for (int i = 0; i < C; i++) x[i] = src[i] + pos[(size_t)t * C + i];
        }
    acts_dropout(a, a->x_in, 0, seq_ids, B, (size_t)T * C);
    att_tape_reset(&a->tape);
    int64_t kept = blocks_forward(a, p, B, T, pw, seq_ids);
    if (kept < 0) return pe_fail(err, PE_ERR_INTERNAL, "out of memory growing the attention tape");
    for (int b = 0; b < B; b++) { /* pooled (B, C): as model_forward_images */
        float *pb = a->pooled + (size_t)b * C;
        if (off) {
            memcpy(pb, a->lnf + (size_t)b * T * C, (size_t)C * sizeof(float));
        } else {
            for (int i = 0; i < C; i++) {
                double s = 0.0;
                for (int t = 0; t < T; t++) s += a->lnf[((size_t)b * T + t) * C + i];
                pb[i] = (float)(s / T);
            }
        }
    }
    const float *wc = tptr(p, p->params, "cls_head.weight", 0), *bc = tptr(p, p->params, "cls_head.bias", 0);
    linear_fwd(a->logits, a->pooled, wc, bc, B, C, NCL); /* (B, NC) */
    for (int b = 0; b < B; b++) {
        const float *lg = a->logits + (size_t)b * NCL;
        int best = 0;
        for (int j = 1; j < NCL; j++) best = lg[j] > lg[best] ? j : best;
        st->n_correct += best == labels[b];
    }
    st->loss_sum += bwd_crossentropy(a->logits, a->logits, a->targets, B, NCL, scale);
    st->n_targets += B;
    st->att_kept += kept;
    count_allowed(st, c, B, T);
    memset(a->dpooled, 0, (size_t)B * C * sizeof(float));
    bwd_matmul(a->dpooled, tptr(p, grad, "cls_head.weight", 0), tptr(p, grad, "cls_head.bias", 0), a->logits, a->pooled,
               wc, B, C, NCL);
    memset(a->dbuf, 0, N * C * sizeof(float)); /* d(lnf) */
    for (int b = 0; b < B; b++) {
        const float *dp = a->dpooled + (size_t)b * C;
        for (int t = 0; t < (off ? 1 : T); t++) {
            float *d = a->dbuf + ((size_t)b * T + t) * C;
            for (int i = 0; i < C; i++) d[i] = off ? dp[i] : (float)(dp[i] / (double)T);
        }
    }
    blocks_backward(grad, a, p, B, T, seq_ids);
    acts_dropout(a, a->dx, 0, seq_ids, B, (size_t)T * C);
    float *gpos = tptr(p, grad, "pos_emb.weight", 0), *gcls = tptr(p, grad, "cls_token", 0);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *dx = a->dx + ((size_t)b * T + t) * C;
            for (int i = 0; i < C; i++) gpos[(size_t)t * C + i] += dx[i];
            if (t < off)
                for (int i = 0; i < C; i++) gcls[i] += dx[i];
        }
    /* d(patch embedding output) (B, NP, C) into dbuf, then the patch projection's weight gradient */
    for (int b = 0; b < B; b++)
        memcpy(a->dbuf + (size_t)b * NP * C, a->dx + ((size_t)b * T + off) * C, (size_t)NP * C * sizeof(float));
    bwd_matmul(NULL, tptr(p, grad, "patch_emb.weight", 0), tptr(p, grad, "patch_emb.bias", 0), a->dbuf, a->patches, pw_w,
               B * NP, PP, C);
    return PE_OK;
}

/* ---- optimizer ------------------------------------------------------------------------------ */

double train_lr_at(const train_optim *o, int64_t s) {
    if (o->warmup_steps > 0 && s < o->warmup_steps) return o->lr * (double)(s + 1) / o->warmup_steps;
    int64_t span = o->steps - o->warmup_steps;
    if (span <= 1) return o->lr;
    double frac = (double)(s - o->warmup_steps) / (double)(span - 1);
    if (frac > 1.0) frac = 1.0;
    return o->min_lr + 0.5 * (o->lr - o->min_lr) * (1.0 + cos(M_PI * frac));
}

double train_grad_norm(const float *grad, int64_t P) {
    double s = 0.0;
    for (int64_t i = 0; i < P; i++) s += (double)grad[i] * grad[i];
    return sqrt(s);
}

double train_adamw_step(train_params *p, float *m, float *v, float *grad, const train_optim *o, int64_t t, double lr) {
    double norm = train_grad_norm(grad, p->n_params);
    if (o->clip > 0 && norm > o->clip) {
        float f = (float)(o->clip / norm);
        for (int64_t i = 0; i < p->n_params; i++) grad[i] *= f;
    }
    double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
    float  b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    for (int i = 0; i < p->n_tensors; i++) {
        float   wd = p->specs[i].ndim == 2 ? (float)o->weight_decay : 0.0f; /* matrices and embeddings only */
        int64_t a = p->offset[i], e = a + spec_numel(&p->specs[i]);
        for (int64_t k = a; k < e; k++) {
            float g = grad[k];
            m[k] = b1 * m[k] + (1.0f - b1) * g;
            v[k] = b2 * v[k] + (1.0f - b2) * g * g;
            float mh = (float)(m[k] / bc1), vh = (float)(v[k] / bc2);
            p->params[k] -= (float)lr * (mh / (sqrtf(vh) + eps) + wd * p->params[k]);
        }
    }
    return norm;
}

/* ---- data augmentation ------------------------------------------------------------------ */

void train_augment_image(uint8_t *dst, const uint8_t *src, int H, int W, int crop, int flip, uint64_t seed, int64_t e) {
    pw_rng r;
    pw_rng_init(&r, seed, 0x6175676d /* "augm" */, (uint64_t)e, 0, 0, 0);
    int dy = 0, dx = 0, mirror = 0;
    if (crop > 0) {
        dy = (int)(pw_rng_u64(&r) % (uint64_t)(2 * crop + 1)) - crop;
        dx = (int)(pw_rng_u64(&r) % (uint64_t)(2 * crop + 1)) - crop;
    }
    if (flip) mirror = (int)(pw_rng_u64(&r) & 1);
    for (int y = 0; y < H; y++) {
        int sy = y + dy;
        for (int x = 0; x < W; x++) {
            int sx = (mirror ? W - 1 - x : x) + dx; /* mirror the shifted image: out(y, x) = shifted(y, W-1-x) */
            dst[(size_t)y * W + x] = sy >= 0 && sy < H && sx >= 0 && sx < W ? src[(size_t)sy * W + sx] : 0;
        }
    }
}
