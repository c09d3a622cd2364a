/* test_train.c: training in C (train.h) on tiny models.
 *
 *   - the training forward equals the inference forward: the loss train_grad_* reports equals the
 *     cross-entropy (in double) of model_forward_* on the weights being trained (p.m, views into
 *     p.params), dense and with SSA (unbiased ratio 2: the inference forward with member 0 and the
 *     same sequence ids draws the same samples), for the LM and both ViT heads;
 *   - the keep-all invariant: a pathway config that keeps every connection (unbiased / local,
 *     ratio 1) gives the dense gradient and loss bit for bit;
 *   - chunk additivity (grad +=): one chunk of 4 = two chunks of 2 (same sequences and ids);
 *     a repeated call is bit-identical;
 *   - every tensor's gradient is right in sign and size: the loss slope along g_t (central
 *     difference, only tensor t moved) equals |g_t|^2, dense and SSA, for all four tiny models;
 *   - the optimizer: train_lr_at's schedule, train_grad_norm, and train_adamw_step against a plain
 *     double implementation written here (bias correction, decoupled weight decay on ndim == 2
 *     tensors only, clipping, the pre-clip norm returned) over 3 steps;
 *   - training learns: 30 AdamW steps on a fixed batch (16 real Fashion-MNIST images with a ViT;
 *     a repeated byte string with an LM) at least halve the loss, dense and with SSA;
 *   - train_params_save / train_params_load round trip (model and "adam_m." prefix), and a file
 *     missing a tensor (or with a wrong shape) refused with PE_ERR_INPUT naming the tensor;
 *   - train_check_config refuses RMSNorm, RoPE, SwiGLU, GQA and a non-causal LM, naming the switch.
 *
 * Tolerances:
 *   train vs inference loss: 1e-5 relative. Both forwards are float with the same kernels up to
 *   summation order (one chunk sgemm vs per-sequence work); the loss sums O(10) terms of O(1).
 *   chunk additivity: 1e-6 of max|g| (weight gradients sum over the chunk's rows in another order;
 *   float rounding ~1e-7 relative); the loss sums: 1e-9 relative (doubles).
 *   AdamW: params, m and v within 1e-6 of the reference's max magnitude per tensor block; the
 *   returned norm within 1e-12 relative (both sum the same floats in double, index order).
 *   lr schedule: 1e-12 relative (closed forms in double).
 *   directional derivative: 1e-2 relative (observed <= 2e-3).
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backward.h"
#include "ckpt.h"
#include "dataset.h"
#include "model.h"
#include "pathways.h"
#include "train.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- helpers ---------------------------------------------------------------------------- */

/* tiny configs as tests/gradtool.c: "lm" (tied), "lm-untied", "vit" (CLS token), "vit-mean" */
static model_config tiny_config(const char *kind) {
    model_config c;
    memset(&c, 0, sizeof c);
    c.norm_eps   = 1e-5f;
    c.rope_theta = 10000.0f;
    c.pixel_std  = 1.0f;
    c.dim = 16, c.hidden_dim = 32, c.n_layers = 2, c.n_heads = 2, c.n_kv_heads = 2;
    c.norm = MODEL_NORM_LAYERNORM, c.pos = MODEL_POS_LEARNED, c.mlp = MODEL_MLP_GELU, c.bias = 1;
    if (!strncmp(kind, "lm", 2)) {
        c.vocab_size = 11, c.seq_len = 8, c.causal = 1;
        c.head  = strcmp(kind, "lm") ? MODEL_HEAD_LM : MODEL_HEAD_LM_TIED;
        c.input = MODEL_INPUT_TOKENS;
    } else {
        c.causal = 0, c.input = MODEL_INPUT_PATCHES, c.image_size = 8, c.patch_size = 4, c.channels = 1;
        c.head       = strcmp(kind, "vit") ? MODEL_HEAD_CLS_MEAN : MODEL_HEAD_CLS_TOKEN;
        c.n_classes  = 3;
        c.pixel_mean = 0.5f, c.pixel_std = 0.25f;
        c.seq_len    = 5;
    }
    return c;
}

/* train_params with the seeded init, then tu_random_tensors' larger values copied by name (so
 * attention is far from uniform and no gradient is trivially tiny) */
static void params_random(train_params *p, const model_config *c, uint64_t seed) {
    pe_err err = {0};
    assert_int_equal(train_check_config(c, "test", &err), PE_OK);
    assert_int_equal(train_params_init(p, c, &err), PE_OK);
    train_params_seed(p, 1);
    tu_tensors rt;
    assert_int_equal(tu_random_tensors(&rt, c, seed, &err), PE_OK);
    assert_int_equal(rt.n, p->n_tensors);
    for (int i = 0; i < rt.n; i++) {
        int j = train_params_find(p, rt.specs[i].name);
        assert_true(j >= 0);
        memcpy(p->params + p->offset[j], rt.data[i], tu_spec_numel(&rt.specs[i]) * sizeof(float));
    }
    tu_free_tensors(&rt);
}

static pw_config make_pw(pw_scheme scheme, double ratio, int n_heads) {
    pw_config w;
    memset(&w, 0, sizeof w);
    w.scheme = scheme, w.ratio = ratio, w.sigma = 1.0, w.lambda = INFINITY, w.keep = 0.0;
    w.members = 1, w.seed = 7, w.granularity = PW_GRAN_HEAD, w.n_heads = n_heads;
    pe_err err = {0};
    assert_int_equal(pw_config_check(&w, &err), PE_OK);
    return w;
}

static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* a batch for a tiny config: tokens (B, T + 1) or pixels (B, CH, S, S) + labels (B) */
typedef struct {
    int      B, T, image;
    int     *tokens;
    uint8_t *pixels;
    int     *labels;
} batch;

static batch make_batch(const model_config *c, int B, uint64_t seed) {
    batch b = {B, 0, c->input == MODEL_INPUT_PATCHES, NULL, NULL, NULL};
    uint64_t s = seed;
    if (b.image) {
        size_t npix = (size_t)B * c->channels * c->image_size * c->image_size;
        b.T         = model_image_seq_len(c);
        b.pixels    = malloc(npix);
        b.labels    = malloc((size_t)B * sizeof(int));
        assert_non_null(b.pixels);
        assert_non_null(b.labels);
        for (size_t i = 0; i < npix; i++) b.pixels[i] = (uint8_t)(lcg(&s) >> 20);
        for (int i = 0; i < B; i++) b.labels[i] = (int)(lcg(&s) % (uint64_t)c->n_classes);
    } else {
        b.T      = c->seq_len - 1;
        b.tokens = malloc((size_t)B * (b.T + 1) * sizeof(int));
        assert_non_null(b.tokens);
        for (int i = 0; i < B * (b.T + 1); i++) b.tokens[i] = (int)(lcg(&s) % (uint64_t)c->vocab_size);
    }
    return b;
}

static void batch_free(batch *b) {
    free(b->tokens), free(b->pixels), free(b->labels);
    memset(b, 0, sizeof *b);
}

/* train_grad_* on sequences [first, first + n) of the batch */
static pe_status grad_call(float *grad, train_stats *st, train_acts *a, const train_params *p, const batch *b, int first,
                           int n, const pw_config *pw, const int64_t *seq_ids, float scale, pe_err *err) {
    const model_config *c = &p->cfg;
    if (b->image) {
        size_t per = (size_t)c->channels * c->image_size * c->image_size;
        return train_grad_images(grad, st, a, p, b->pixels + first * per, b->labels + first, n, pw, seq_ids + first,
                                 scale, err);
    }
    return train_grad_tokens(grad, st, a, p, b->tokens + (size_t)first * (b->T + 1), n, b->T, pw, seq_ids + first,
                             scale, err);
}

/* -log softmax(row)[target] in double */
static double xent(const float *row, int n, int target) {
    double mx = row[0];
    for (int j = 1; j < n; j++) mx = fmax(mx, (double)row[j]);
    double s = 0.0;
    for (int j = 0; j < n; j++) s += exp((double)row[j] - mx);
    return log(s) + mx - (double)row[target];
}

static double max_abs(const float *x, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)x[i]));
    return m;
}

/* ---- 1. training forward == inference forward -------------------------------------------- */

static void check_train_vs_inference(const char *kind, const pw_config *pw) {
    model_config c = tiny_config(kind);
    train_params p;
    params_random(&p, &c, 20240611u);
    const int B = 3;
    batch     bt = make_batch(&c, B, 99);
    int       T  = bt.T;
    int64_t   seq_ids[3] = {100, 101, 102};
    pe_err    err = {0};

    train_acts a;
    assert_int_equal(train_acts_init(&a, &c, B, T, &err), PE_OK);
    float *grad = calloc((size_t)p.n_params, sizeof(float));
    assert_non_null(grad);
    train_stats st;
    memset(&st, 0, sizeof st);
    pe_status rc = grad_call(grad, &st, &a, &p, &bt, 0, B, pw, seq_ids, 1.0f, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, PE_OK);
    int64_t n_targets = bt.image ? B : (int64_t)B * T;
    assert_int_equal(st.n_targets, n_targets);

    /* the inference forward on the same weights (p.m views p.params) */
    const int L = c.n_layers, NH = c.n_heads;
    model_acts ma;
    assert_int_equal(model_acts_init(&ma, &p.m, B, T, &err), PE_OK);
    int64_t        kept[16], allowed[16];
    memset(kept, 0, sizeof kept), memset(allowed, 0, sizeof allowed);
    model_pathways mp;
    memset(&mp, 0, sizeof mp);
    mp.cfg = pw, mp.member = 0, mp.seq_ids = seq_ids, mp.kept = kept, mp.allowed = allowed;
    assert_true(L * NH <= 16);
    double ref = 0.0;
    if (bt.image) {
        int    NCL    = c.n_classes;
        float *logits = calloc((size_t)B * NCL, sizeof(float));
        assert_non_null(logits);
        rc = pw ? model_forward_images_pw(logits, &ma, &p.m, bt.pixels, B, &mp, 0, &err)
                : model_forward_images(logits, &ma, &p.m, bt.pixels, B, 0, &err);
        assert_int_equal(rc, PE_OK);
        int64_t correct = 0;
        for (int b = 0; b < B; b++) {
            ref += xent(logits + (size_t)b * NCL, NCL, bt.labels[b]);
            int best = 0;
            for (int j = 1; j < NCL; j++) best = logits[b * NCL + j] > logits[b * NCL + best] ? j : best;
            correct += best == bt.labels[b];
        }
        assert_int_equal(st.n_correct, correct);
        free(logits);
    } else {
        int    V      = c.vocab_size;
        int   *in     = malloc((size_t)B * T * sizeof(int));
        float *logits = calloc((size_t)B * T * V, sizeof(float));
        assert_non_null(in);
        assert_non_null(logits);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) in[b * T + t] = bt.tokens[b * (T + 1) + t];
        rc = pw ? model_forward_tokens_pw(logits, &ma, &p.m, in, NULL, B, T, &mp, 0, &err)
                : model_forward_tokens(logits, &ma, &p.m, in, NULL, B, T, 0, &err);
        assert_int_equal(rc, PE_OK);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                ref += xent(logits + ((size_t)b * T + t) * V, V, bt.tokens[b * (T + 1) + t + 1]);
        free(in), free(logits);
    }
    double rel = fabs(st.loss_sum - ref) / fabs(ref);
    printf("  %-9s %-8s loss train %.9f inference %.9f (rel %.2e), attention kept %lld of %lld\n", kind,
           pw ? pw_scheme_name(pw->scheme) : "dense", st.loss_sum, ref, rel, (long long)st.att_kept,
           (long long)st.att_allowed);
    assert_true(ref > 0.0 && isfinite(ref));
    assert_true(rel <= 1e-5);
    int64_t allowed_expect = (c.causal ? (int64_t)T * (T + 1) / 2 : (int64_t)T * T) * B * NH * L;
    assert_int_equal(st.att_allowed, allowed_expect);
    if (pw) {
        /* SSA really dropped connections, and the same ones the inference forward kept */
        int64_t k = 0;
        for (int i = 0; i < L * NH; i++) k += kept[i];
        assert_int_equal(st.att_kept, k);
        assert_true(st.att_kept < st.att_allowed);
    } else {
        assert_int_equal(st.att_kept, st.att_allowed);
    }
    model_acts_free(&ma);
    free(grad);
    train_acts_free(&a);
    batch_free(&bt);
    train_params_free(&p);
}

static void test_forward_matches_inference(void **state) {
    (void)state;
    const char *kinds[] = {"lm", "lm-untied", "vit", "vit-mean"};
    for (int k = 0; k < 4; k++) {
        model_config c  = tiny_config(kinds[k]);
        pw_config    pw = make_pw(PW_SCHEME_UNBIASED, 2.0, c.n_heads);
        check_train_vs_inference(kinds[k], NULL);
        check_train_vs_inference(kinds[k], &pw);
    }
}

/* ---- 2. keep-all pathway configs == dense, bit for bit ----------------------------------- */

static void test_keep_all_is_dense(void **state) {
    (void)state;
    const char *kinds[] = {"lm", "vit"};
    for (int k = 0; k < 2; k++) {
        model_config c = tiny_config(kinds[k]);
        train_params p;
        params_random(&p, &c, 777);
        const int B = 3;
        batch     bt = make_batch(&c, B, 5);
        int64_t   ids[3] = {7, 8, 9};
        pe_err    err = {0};
        train_acts a;
        assert_int_equal(train_acts_init(&a, &c, B, bt.T, &err), PE_OK);
        float *g0 = calloc((size_t)p.n_params, sizeof(float)), *g1 = calloc((size_t)p.n_params, sizeof(float));
        float *g2 = calloc((size_t)p.n_params, sizeof(float));
        assert_true(g0 && g1 && g2);
        float       scale = 0.25f;
        train_stats s0, s1, s2;
        memset(&s0, 0, sizeof s0), memset(&s1, 0, sizeof s1), memset(&s2, 0, sizeof s2);
        pw_config un1 = make_pw(PW_SCHEME_UNBIASED, 1.0, c.n_heads), lo1 = make_pw(PW_SCHEME_LOCAL, 1.0, c.n_heads);
        pw_config un2 = make_pw(PW_SCHEME_UNBIASED, 2.0, c.n_heads);
        assert_int_equal(grad_call(g0, &s0, &a, &p, &bt, 0, B, NULL, ids, scale, &err), PE_OK);
        assert_int_equal(grad_call(g1, &s1, &a, &p, &bt, 0, B, &un1, ids, scale, &err), PE_OK);
        assert_int_equal(grad_call(g2, &s2, &a, &p, &bt, 0, B, &lo1, ids, scale, &err), PE_OK);
        size_t nb = (size_t)p.n_params * sizeof(float);
        assert_true(max_abs(g0, p.n_params) > 1e-3); /* a real gradient */
        assert_memory_equal(g0, g1, nb);
        assert_memory_equal(g0, g2, nb);
        assert_memory_equal(&s0.loss_sum, &s1.loss_sum, sizeof(double));
        assert_memory_equal(&s0.loss_sum, &s2.loss_sum, sizeof(double));
        assert_int_equal(s1.att_kept, s0.att_allowed);
        assert_int_equal(s2.att_kept, s0.att_allowed);
        /* the comparison can fail: ratio 2 gives another gradient */
        memset(g2, 0, nb);
        memset(&s2, 0, sizeof s2);
        assert_int_equal(grad_call(g2, &s2, &a, &p, &bt, 0, B, &un2, ids, scale, &err), PE_OK);
        assert_true(memcmp(g0, g2, nb) != 0);
        assert_true(s2.att_kept < s2.att_allowed);
        printf("  %-4s keep-all (unbiased 1, local 1) == dense bit for bit; loss %.9f\n", kinds[k], s0.loss_sum);
        free(g0), free(g1), free(g2);
        train_acts_free(&a);
        batch_free(&bt);
        train_params_free(&p);
    }
}

/* ---- 3. chunk additivity and determinism ------------------------------------------------ */

static void test_chunk_additivity(void **state) {
    (void)state;
    const char *kinds[] = {"lm", "lm-untied", "vit", "vit-mean"};
    for (int k = 0; k < 4; k++)
        for (int mode = 0; mode < 3; mode++) { /* dense, unbiased SSA, dense + dropout 0.25 */
            int ssa = mode == 1;
            model_config c = tiny_config(kinds[k]);
            train_params p;
            params_random(&p, &c, 4242 + k);
            const int B = 4;
            batch     bt = make_batch(&c, B, 31 + k);
            int64_t   ids[4] = {1000, 1001, 1002, 1003};
            pw_config pwc = make_pw(PW_SCHEME_UNBIASED, 2.0, c.n_heads);
            const pw_config *pw = ssa ? &pwc : NULL;
            pe_err    err = {0};
            train_acts a;
            assert_int_equal(train_acts_init(&a, &c, B, bt.T, &err), PE_OK);
            if (mode == 2) a.dropout = 0.25f, a.dropout_seed = 77;
            size_t nb = (size_t)p.n_params * sizeof(float);
            float *g1 = calloc(1, nb), *g2 = calloc(1, nb), *g3 = calloc(1, nb);
            assert_true(g1 && g2 && g3);
            float scale = (float)(1.0 / (bt.image ? B : B * bt.T));
            train_stats s1, s2, s3;
            memset(&s1, 0, sizeof s1), memset(&s2, 0, sizeof s2), memset(&s3, 0, sizeof s3);
            assert_int_equal(grad_call(g1, &s1, &a, &p, &bt, 0, 4, pw, ids, scale, &err), PE_OK);
            assert_int_equal(grad_call(g2, &s2, &a, &p, &bt, 0, 2, pw, ids, scale, &err), PE_OK);
            assert_int_equal(grad_call(g2, &s2, &a, &p, &bt, 2, 2, pw, ids, scale, &err), PE_OK);
            assert_int_equal(grad_call(g3, &s3, &a, &p, &bt, 0, 4, pw, ids, scale, &err), PE_OK);
            double gmax = max_abs(g1, p.n_params), dmax = 0.0;
            for (int64_t i = 0; i < p.n_params; i++) dmax = fmax(dmax, fabs((double)g1[i] - (double)g2[i]));
            printf("  %-9s %-8s B=4 vs 2+2: max|dg| %.2e of max|g| %.2e; loss %.9f vs %.9f\n", kinds[k],
                   mode == 2 ? "dropout" : ssa ? "unbiased" : "dense", dmax, gmax, s1.loss_sum, s2.loss_sum);
            assert_true(gmax > 1e-3);
            assert_true(dmax <= 1e-6 * gmax);
            /* float32 per-token losses from sgemms of 4 vs 2 rows (OpenBLAS Zen: 2.9e-9 relative) */
            assert_true(fabs(s1.loss_sum - s2.loss_sum) <= 1e-7 * fabs(s1.loss_sum));
            assert_int_equal(s1.n_targets, s2.n_targets);
            assert_int_equal(s1.att_kept, s2.att_kept);
            assert_int_equal(s1.att_allowed, s2.att_allowed);
            assert_int_equal(s1.n_correct, s2.n_correct);
            /* repeat: bit-identical */
            assert_memory_equal(g1, g3, nb);
            assert_memory_equal(&s1.loss_sum, &s3.loss_sum, sizeof(double));
            /* grad += : a second call on g3 doubles it (up to rounding: the backward accumulates
             * partial sums into grad as it goes) */
            assert_int_equal(grad_call(g3, &s3, &a, &p, &bt, 0, 4, pw, ids, scale, &err), PE_OK);
            for (int64_t i = 0; i < p.n_params; i++) assert_true(fabs(g3[i] - 2.0 * g1[i]) <= 1e-6 * gmax);
            free(g1), free(g2), free(g3);
            train_acts_free(&a);
            batch_free(&bt);
            train_params_free(&p);
        }
}

/* ---- 3b. every tensor's gradient points uphill: directional derivative ------------------ */

/* For each tensor t, the central difference of the loss along d = g_t (only tensor t moved, step
 * norm 0.03) must equal |g_t|^2 within 1% (a wrong sign or a missing term in one tensor's gradient
 * is an O(1) error; float loss noise and curvature stay below 0.2% here). SSA draws are keyed by the
 * sequence ids, so the SSA loss is a smooth function of the weights too. */
static double loss_at(train_acts *a, const train_params *p, const batch *bt, const pw_config *pw, const int64_t *ids,
                      float *scratch) {
    pe_err      err = {0};
    train_stats st;
    memset(&st, 0, sizeof st);
    assert_int_equal(grad_call(scratch, &st, a, p, bt, 0, bt->B, pw, ids, 0.0f, &err), PE_OK);
    return st.loss_sum;
}

static void test_directional_derivative(void **state) {
    (void)state;
    const char *kinds[] = {"lm", "lm-untied", "vit", "vit-mean"};
    for (int k = 0; k < 4; k++)
        for (int mode = 0; mode < 3; mode++) { /* dense, unbiased SSA, dense + dropout 0.25 */
            int ssa = mode == 1;
            model_config c = tiny_config(kinds[k]);
            train_params p;
            params_random(&p, &c, 808 + k);
            const int B = 3;
            batch     bt = make_batch(&c, B, 61 + k);
            int64_t   ids[3] = {5, 6, 7};
            pw_config pwc = make_pw(PW_SCHEME_UNBIASED, 2.0, c.n_heads);
            const pw_config *pw = ssa ? &pwc : NULL;
            pe_err    err = {0};
            train_acts a;
            assert_int_equal(train_acts_init(&a, &c, B, bt.T, &err), PE_OK);
            if (mode == 2) a.dropout = 0.25f, a.dropout_seed = 77;
            size_t nb = (size_t)p.n_params * sizeof(float);
            float *g = calloc(1, nb), *scratch = calloc(1, nb), *w0 = malloc(nb);
            assert_true(g && scratch && w0);
            memcpy(w0, p.params, nb);
            train_stats st;
            memset(&st, 0, sizeof st);
            assert_int_equal(grad_call(g, &st, &a, &p, &bt, 0, B, pw, ids, 1.0f, &err), PE_OK);
            double worst = 0.0;
            int    checked = 0;
            for (int t = 0; t < p.n_tensors; t++) {
                int64_t o = p.offset[t], n = (int64_t)tu_spec_numel(&p.specs[t]);
                double  g2 = 0.0;
                for (int64_t i = 0; i < n; i++) g2 += (double)g[o + i] * g[o + i];
                if (strstr(p.specs[t].name, "attn.wk.bias")) {
                    /* softmax is shift-invariant per query: the key bias gets (nearly) no gradient */
                    assert_true(g2 <= 1e-10);
                    continue;
                }
                if (g2 < 1e-8) fail_msg("%s: tensor %s has no gradient (|g|^2 = %.3g)", kinds[k], p.specs[t].name, g2);
                double h = 0.03 / sqrt(g2), l[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    for (int64_t i = 0; i < n; i++) p.params[o + i] = (float)(w0[o + i] + (sgn ? -h : h) * g[o + i]);
                    l[sgn] = loss_at(&a, &p, &bt, pw, ids, scratch);
                }
                memcpy(p.params + o, w0 + o, (size_t)n * sizeof(float));
                double fd = (l[0] - l[1]) / (2 * h), rel = fabs(fd - g2) / g2;
                if (rel > 1e-2)
                    fail_msg("%s %s tensor %s: loss slope along its gradient %.6g, |g|^2 %.6g", kinds[k],
                             mode == 2 ? "dropout" : ssa ? "unbiased" : "dense", p.specs[t].name, fd, g2);
                worst = fmax(worst, rel);
                checked++;
            }
            assert_int_equal(checked, p.n_tensors - c.n_layers);
            printf("  %-9s %-8s %d tensors: slope along the gradient = |g|^2 within %.2e\n", kinds[k],
                   mode == 2 ? "dropout" : ssa ? "unbiased" : "dense", checked, worst);
            free(g), free(scratch), free(w0);
            train_acts_free(&a);
            batch_free(&bt);
            train_params_free(&p);
        }
}

/* ---- 3c. dropout masks -------------------------------------------------------------------- */

/* train_dropout_apply: P(drop) = p (binomial, 5 sigma), kept values scaled by exactly 1/(1-p) in
 * float, the mask a function of (seed, site, sequence id) only; and a training loss with dropout is
 * another loss than without (the masks are applied), the same again with the same ids. */
static void test_dropout_mask(void **state) {
    (void)state;
    const size_t n = 200000;
    const int    B = 3;
    float       *x = malloc(B * n * sizeof(float)), *y = malloc(B * n * sizeof(float));
    assert_true(x && y);
    for (size_t i = 0; i < B * n; i++) x[i] = 1.0f;
    int64_t ids[3] = {40, 41, 42};
    train_dropout_apply(x, 0.25f, 9, 3, ids, B, n);
    const float kept = (float)(1.0 / 0.75);
    size_t      zeros = 0;
    for (size_t i = 0; i < B * n; i++) {
        if (x[i] == 0.0f) zeros++;
        else assert_true(x[i] == kept);
    }
    double frac = (double)zeros / (double)(B * n), sd = sqrt(0.25 * 0.75 / (double)(B * n));
    printf("  dropout 0.25: %zu of %zu zeroed (%.5f, sd %.5f)\n", zeros, B * n, frac, sd);
    assert_true(fabs(frac - 0.25) < 5 * sd);
    /* sequence 41 alone (a chunk of 1) gets the same mask as inside the chunk of 3 */
    for (size_t i = 0; i < n; i++) y[i] = 1.0f;
    train_dropout_apply(y, 0.25f, 9, 3, ids + 1, 1, n);
    assert_memory_equal(y, x + n, n * sizeof(float));
    /* another site, seed or sequence: another mask (about 3/8 of the entries differ) */
    int64_t other[1] = {40};
    const struct { uint64_t seed; int site; const int64_t *id; } alt[] = {{9, 4, ids + 1}, {10, 3, ids + 1}, {9, 3, other}};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < n; i++) y[i] = 1.0f;
        train_dropout_apply(y, 0.25f, alt[k].seed, alt[k].site, alt[k].id, 1, n);
        size_t diff = 0;
        for (size_t i = 0; i < n; i++) diff += y[i] != x[n + i];
        assert_true(diff > n / 4 && diff < n / 2);
    }
    free(x), free(y);

    /* the training forward applies it: the loss moves, and repeats bit for bit */
    model_config c = tiny_config("lm");
    train_params p;
    params_random(&p, &c, 31337);
    batch      bt = make_batch(&c, 2, 5);
    int64_t    sid[2] = {8, 9};
    pe_err     err = {0};
    train_acts a;
    assert_int_equal(train_acts_init(&a, &c, 2, bt.T, &err), PE_OK);
    float *g = calloc((size_t)p.n_params, sizeof(float));
    assert_non_null(g);
    double loss[3];
    for (int k = 0; k < 3; k++) {
        a.dropout = k ? 0.3f : 0.0f, a.dropout_seed = 5;
        train_stats st;
        memset(&st, 0, sizeof st);
        assert_int_equal(grad_call(g, &st, &a, &p, &bt, 0, 2, NULL, sid, 0.0f, &err), PE_OK);
        loss[k] = st.loss_sum;
    }
    printf("  tiny LM loss: no dropout %.9f, dropout 0.3 %.9f (again %.9f)\n", loss[0], loss[1], loss[2]);
    assert_true(fabs(loss[1] - loss[0]) > 1e-4 * fabs(loss[0]));
    assert_memory_equal(&loss[1], &loss[2], sizeof(double));
    free(g);
    train_acts_free(&a);
    batch_free(&bt);
    train_params_free(&p);
}

/* ---- 4. optimizer --------------------------------------------------------------------------- */

static void test_lr_schedule(void **state) {
    (void)state;
    train_optim o;
    memset(&o, 0, sizeof o);
    o.lr = 1e-3, o.min_lr = 1e-4, o.warmup_steps = 5, o.steps = 46;
    /* warm-up: lr (s + 1) / warmup */
    assert_true(fabs(train_lr_at(&o, 0) - o.lr / o.warmup_steps) <= 1e-12 * o.lr);
    for (int s = 0; s < o.warmup_steps; s++)
        assert_true(fabs(train_lr_at(&o, s) - o.lr * (s + 1) / o.warmup_steps) <= 1e-12 * o.lr);
    assert_true(fabs(train_lr_at(&o, o.warmup_steps - 1) - o.lr) <= 1e-12 * o.lr);
    assert_true(fabs(train_lr_at(&o, o.warmup_steps) - o.lr) <= 1e-12 * o.lr);
    /* cosine: midpoint of the 41 post-warm-up steps is the mean, the last step is min_lr */
    assert_true(fabs(train_lr_at(&o, o.warmup_steps + 20) - 0.5 * (o.lr + o.min_lr)) <= 1e-12 * o.lr);
    assert_true(fabs(train_lr_at(&o, o.steps - 1) - o.min_lr) <= 1e-12 * o.lr);
    assert_true(fabs(train_lr_at(&o, o.steps + 10) - o.min_lr) <= 1e-12 * o.lr);
    for (int s = o.warmup_steps; s < o.steps - 1; s++) {
        double a = train_lr_at(&o, s), b = train_lr_at(&o, s + 1);
        assert_true(b <= a);
        assert_true(b >= o.min_lr - 1e-15);
        /* the closed form */
        double frac = (double)(s - o.warmup_steps) / (o.steps - o.warmup_steps - 1);
        assert_true(fabs(a - (o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + cos(M_PI * frac)))) <= 1e-12 * o.lr);
    }
    /* strictly decreasing somewhere (not constant) */
    assert_true(train_lr_at(&o, o.warmup_steps + 1) < train_lr_at(&o, o.warmup_steps));
    /* no warm-up: step 0 is the peak */
    o.warmup_steps = 0, o.steps = 30;
    assert_true(fabs(train_lr_at(&o, 0) - o.lr) <= 1e-12 * o.lr);
    assert_true(fabs(train_lr_at(&o, 29) - o.min_lr) <= 1e-12 * o.lr);
}

static void test_grad_norm(void **state) {
    (void)state;
    const int64_t n = 10007;
    float *g = malloc((size_t)n * sizeof(float));
    assert_non_null(g);
    tu_fill_random(g, (size_t)n, 3, 2.0f);
    long double s = 0.0L;
    for (int64_t i = 0; i < n; i++) s += (long double)g[i] * (long double)g[i];
    double ref = sqrt((double)s), got = train_grad_norm(g, n);
    assert_true(fabs(got - ref) <= 1e-12 * ref);
    assert_true(train_grad_norm(g, 0) == 0.0);
    g[0] = 3.0f, g[1] = -4.0f;
    assert_true(train_grad_norm(g, 2) == 5.0);
    free(g);
}

/* plain double AdamW over the tensor table (the reference); returns the pre-clip norm */
static double adamw_ref(const train_params *p, double *w, double *m, double *v, const float *grad_in,
                        const train_optim *o, int64_t t, double lr) {
    int64_t P = p->n_params;
    double  sq = 0.0;
    for (int64_t i = 0; i < P; i++) sq += (double)grad_in[i] * (double)grad_in[i];
    double norm = sqrt(sq), f = (o->clip > 0 && norm > o->clip) ? o->clip / norm : 1.0;
    for (int i = 0; i < p->n_tensors; i++) {
        const model_tensor_spec *s = &p->specs[i];
        int64_t n  = s->shape[0] * (s->ndim > 1 ? s->shape[1] : 1);
        double  wd = s->ndim == 2 ? o->weight_decay : 0.0;
        for (int64_t k = p->offset[i]; k < p->offset[i] + n; k++) {
            double g = (double)grad_in[k] * f;
            m[k]     = o->beta1 * m[k] + (1 - o->beta1) * g;
            v[k]     = o->beta2 * v[k] + (1 - o->beta2) * g * g;
            double mh = m[k] / (1 - pow(o->beta1, (double)t)), vh = v[k] / (1 - pow(o->beta2, (double)t));
            w[k] -= lr * (mh / (sqrt(vh) + o->eps) + wd * w[k]);
        }
    }
    return norm;
}

static void test_adamw_vs_reference(void **state) {
    (void)state;
    model_config c = tiny_config("lm-untied");
    train_params p;
    params_random(&p, &c, 11);
    int64_t P = p.n_params;
    float  *m = calloc((size_t)P, sizeof(float)), *v = calloc((size_t)P, sizeof(float));
    float  *g = malloc((size_t)P * sizeof(float)), *g0 = malloc((size_t)P * sizeof(float));
    double *wr = malloc((size_t)P * sizeof(double)), *mr = calloc((size_t)P, sizeof(double));
    double *vr = calloc((size_t)P, sizeof(double));
    assert_true(m && v && g && g0 && wr && mr && vr);
    for (int64_t i = 0; i < P; i++) wr[i] = p.params[i];
    train_optim o;
    memset(&o, 0, sizeof o);
    o.lr = 1e-2, o.min_lr = 1e-3, o.warmup_steps = 1, o.steps = 3;
    o.beta1 = 0.9, o.beta2 = 0.95, o.eps = 1e-8, o.weight_decay = 0.1, o.clip = 1.0;
    /* step 1: norm >> clip; step 2: norm < clip (no clipping); step 3: >> clip again */
    const float gscale[3] = {0.5f, 0.001f, 0.2f};
    int         clipped = 0;
    for (int t = 1; t <= 3; t++) {
        tu_fill_random(g0, (size_t)P, 100 + t, gscale[t - 1]);
        memcpy(g, g0, (size_t)P * sizeof(float));
        double lr   = train_lr_at(&o, t - 1);
        double nref = adamw_ref(&p, wr, mr, vr, g0, &o, t, lr);
        double ngot = train_adamw_step(&p, m, v, g, &o, t, lr);
        assert_true(fabs(ngot - nref) <= 1e-12 * nref);
        if (nref > o.clip) {
            clipped++;
            /* clipped in place to norm clip */
            assert_true(fabs(train_grad_norm(g, P) - o.clip) <= 1e-5 * o.clip);
        } else {
            assert_memory_equal(g, g0, (size_t)P * sizeof(float));
        }
        /* per tensor: params, m, v within 1e-6 of the reference's max magnitude */
        for (int i = 0; i < p.n_tensors; i++) {
            int64_t a = p.offset[i], e = a + (int64_t)tu_spec_numel(&p.specs[i]);
            double  wm = 0, mm = 0, vm = 0, dw = 0, dm = 0, dv = 0;
            for (int64_t k = a; k < e; k++) {
                wm = fmax(wm, fabs(wr[k])), mm = fmax(mm, fabs(mr[k])), vm = fmax(vm, fabs(vr[k]));
                dw = fmax(dw, fabs(p.params[k] - wr[k]));
                dm = fmax(dm, fabs(m[k] - mr[k]));
                dv = fmax(dv, fabs(v[k] - vr[k]));
            }
            if (dw > 1e-6 * wm || dm > 1e-6 * mm || dv > 1e-6 * vm)
                fail_msg("step %d tensor %s: |dparam| %.3g (max %.3g), |dm| %.3g (max %.3g), |dv| %.3g (max %.3g)", t,
                         p.specs[i].name, dw, wm, dm, mm, dv, vm);
        }
        printf("  adamw step %d: lr %.4g, norm %.6f (%s)\n", t, lr, ngot, nref > o.clip ? "clipped" : "not clipped");
    }
    assert_int_equal(clipped, 2);
    /* the parameters moved by a visible amount (the comparison above is not vacuous) */
    tu_tensors rt;
    pe_err     err = {0};
    assert_int_equal(tu_random_tensors(&rt, &c, 11, &err), PE_OK);
    double moved = 0.0;
    for (int i = 0; i < rt.n; i++) {
        int j = train_params_find(&p, rt.specs[i].name);
        for (size_t k = 0; k < tu_spec_numel(&rt.specs[i]); k++)
            moved = fmax(moved, fabs((double)p.params[p.offset[j] + k] - rt.data[i][k]));
    }
    tu_free_tensors(&rt);
    assert_true(moved > 1e-3);
    free(m), free(v), free(g), free(g0), free(wr), free(mr), free(vr);
    train_params_free(&p);
}

/* weight decay alone (zero gradient): matrices shrink by exactly (1 - lr wd), vectors stay */
static void test_adamw_decay_matrices_only(void **state) {
    (void)state;
    model_config c = tiny_config("vit");
    train_params p;
    params_random(&p, &c, 12);
    int64_t P = p.n_params;
    float  *m = calloc((size_t)P, sizeof(float)), *v = calloc((size_t)P, sizeof(float));
    float  *g = calloc((size_t)P, sizeof(float)), *w0 = malloc((size_t)P * sizeof(float));
    assert_true(m && v && g && w0);
    memcpy(w0, p.params, (size_t)P * sizeof(float));
    train_optim o;
    memset(&o, 0, sizeof o);
    o.lr = 0.1, o.min_lr = 0.1, o.steps = 1, o.beta1 = 0.9, o.beta2 = 0.999, o.eps = 1e-8, o.weight_decay = 0.5;
    o.clip = 1.0;
    assert_true(train_adamw_step(&p, m, v, g, &o, 1, 0.1) == 0.0);
    int n2 = 0, n1 = 0;
    for (int i = 0; i < p.n_tensors; i++) {
        int64_t a = p.offset[i], e = a + (int64_t)tu_spec_numel(&p.specs[i]);
        for (int64_t k = a; k < e; k++) {
            if (p.specs[i].ndim == 2)
                assert_true(fabs(p.params[k] - w0[k] * (1.0 - 0.1 * 0.5)) <= 1e-6 * fabs(w0[k]) + 1e-12);
            else
                assert_true(p.params[k] == w0[k]);
        }
        n2 += p.specs[i].ndim == 2, n1 += p.specs[i].ndim != 2;
    }
    assert_true(n2 > 0 && n1 > 0);
    free(m), free(v), free(g), free(w0);
    train_params_free(&p);
}

/* ---- 5. training learns ------------------------------------------------------------------- */

/* 30 AdamW steps (lr 3e-3, no warm-up) on one fixed batch; returns first and last loss (mean) */
static void train_fixed_batch(train_params *p, const batch *bt, const pw_config *pw, double *first, double *last,
                              int64_t *correct_last) {
    const model_config *c = &p->cfg;
    const int B = bt->B, steps = 30;
    pe_err    err = {0};
    train_acts a;
    assert_int_equal(train_acts_init(&a, c, B, bt->T, &err), PE_OK);
    int64_t P = p->n_params;
    float  *g = calloc((size_t)P, sizeof(float)), *m = calloc((size_t)P, sizeof(float));
    float  *v = calloc((size_t)P, sizeof(float));
    int64_t *ids = malloc((size_t)B * sizeof(int64_t));
    assert_true(g && m && v && ids);
    train_optim o;
    memset(&o, 0, sizeof o);
    o.lr = 3e-3, o.min_lr = 3e-3, o.warmup_steps = 0, o.steps = steps;
    o.beta1 = 0.9, o.beta2 = 0.95, o.eps = 1e-8, o.weight_decay = 0.1, o.clip = 1.0;
    float scale = (float)(1.0 / (bt->image ? B : B * bt->T));
    for (int s = 0; s <= steps; s++) {
        for (int i = 0; i < B; i++) ids[i] = (int64_t)s * B + i; /* as train_run: global slot step * batch + i */
        memset(g, 0, (size_t)P * sizeof(float));
        train_stats st;
        memset(&st, 0, sizeof st);
        pe_status rc = grad_call(g, &st, &a, p, bt, 0, B, pw, ids, scale, &err);
        if (rc) fprintf(stderr, "%s\n", err.msg);
        assert_int_equal(rc, PE_OK);
        double loss = st.loss_sum / (double)st.n_targets;
        assert_true(isfinite(loss));
        if (s == 0) *first = loss;
        if (s == steps) {
            *last         = loss;
            *correct_last = st.n_correct;
            break;
        }
        double lr = train_lr_at(&o, s);
        assert_true(lr == o.lr || fabs(lr - o.lr) <= 1e-15);
        train_adamw_step(p, m, v, g, &o, s + 1, lr);
    }
    free(g), free(m), free(v), free(ids);
    train_acts_free(&a);
}

static void test_training_learns_fashion(void **state) {
    (void)state;
    image_dataset d;
    pe_err        err = {0};
    pe_status     rc  = data_load_idx(&d, PATHENS_FASHION_DIR "/train-images-idx3-ubyte.gz",
                                      PATHENS_FASHION_DIR "/train-labels-idx1-ubyte.gz", 16, &err);
    if (rc) fail_msg("Fashion-MNIST: %s", err.msg);
    assert_int_equal(d.n, 16);
    assert_int_equal(d.rows, 28);
    model_config c = tiny_config("vit");
    c.image_size = 28, c.patch_size = 7, c.n_classes = 10, c.seq_len = 17, c.dim = 32, c.hidden_dim = 64;
    c.pixel_mean = 0.2860f, c.pixel_std = 0.3530f;
    batch bt = {16, model_image_seq_len(&c), 1, NULL, d.pixels, malloc(16 * sizeof(int))};
    assert_non_null(bt.labels);
    for (int i = 0; i < 16; i++) bt.labels[i] = d.labels[i];
    for (int ssa = 0; ssa < 2; ssa++) {
        train_params p;
        assert_int_equal(train_check_config(&c, "fashion", &err), PE_OK);
        assert_int_equal(train_params_init(&p, &c, &err), PE_OK);
        train_params_seed(&p, 5);
        pw_config pw = make_pw(PW_SCHEME_UNBIASED, 2.0, c.n_heads);
        double    first = 0.0, last = 0.0;
        int64_t   correct = 0;
        train_fixed_batch(&p, &bt, ssa ? &pw : NULL, &first, &last, &correct);
        printf("  vit fashion %-8s 30 steps: loss %.4f -> %.4f, %lld/16 correct\n", ssa ? "unbiased" : "dense", first,
               last, (long long)correct);
        assert_true(first > 1.5); /* about ln 10 at init */
        assert_true(last <= 0.5 * first);
        train_params_free(&p);
    }
    free(bt.labels);
    data_free_idx(&d);
}

static void test_training_learns_lm(void **state) {
    (void)state;
    model_config c = tiny_config("lm");
    c.vocab_size = 128, c.seq_len = 17, c.dim = 32, c.hidden_dim = 64;
    const char *text = "the cat sat on the mat. ";
    size_t      tl   = strlen(text);
    const int   B = 8, T = 16;
    batch bt = {B, T, 0, malloc((size_t)B * (T + 1) * sizeof(int)), NULL, NULL};
    assert_non_null(bt.tokens);
    for (int b = 0; b < B; b++)
        for (int t = 0; t <= T; t++) bt.tokens[b * (T + 1) + t] = (unsigned char)text[(size_t)(b * 3 + t) % tl];
    pe_err err = {0};
    for (int ssa = 0; ssa < 2; ssa++) {
        train_params p;
        assert_int_equal(train_check_config(&c, "lm", &err), PE_OK);
        assert_int_equal(train_params_init(&p, &c, &err), PE_OK);
        train_params_seed(&p, 6);
        pw_config pw = make_pw(PW_SCHEME_UNBIASED, 2.0, c.n_heads);
        double    first = 0.0, last = 0.0;
        int64_t   correct = 0;
        train_fixed_batch(&p, &bt, ssa ? &pw : NULL, &first, &last, &correct);
        printf("  lm bytes    %-8s 30 steps: loss %.4f -> %.4f\n", ssa ? "unbiased" : "dense", first, last);
        assert_true(first > 4.0); /* about ln 128 at init */
        assert_true(last <= 0.5 * first);
        train_params_free(&p);
    }
    batch_free(&bt);
}

/* ---- 6. save / load ------------------------------------------------------------------------ */

/* naive twin of train_augment_image's transforms: pad the image by `crop` zeros on every side, cut
 * the H x W window at (crop + dy, crop + dx), then mirror it left-right when flip */
static void augment_reference(uint8_t *dst, const uint8_t *src, int H, int W, int crop, int dy, int dx, int flip) {
    int      PH = H + 2 * crop, PW = W + 2 * crop;
    uint8_t *pad = calloc((size_t)PH * PW, 1), *cut = malloc((size_t)H * W);
    assert_non_null(pad);
    assert_non_null(cut);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) pad[(size_t)(y + crop) * PW + x + crop] = src[(size_t)y * W + x];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) cut[(size_t)y * W + x] = pad[(size_t)(y + crop + dy) * PW + x + crop + dx];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) dst[(size_t)y * W + x] = cut[(size_t)y * W + (flip ? W - 1 - x : x)];
    free(pad);
    free(cut);
}

/* train_augment_image: every output is one of the (2c+1)^2 x 2 shifted / mirrored images the naive
 * reference makes, each of them drawn about equally often, the same for the same (seed, slot), and
 * crop 0 flip 0 is the identity. The image (7 x 9, not square) has distinct non-zero pixels, so
 * the transform is identifiable. */
static void test_augment_image(void **state) {
    (void)state;
    enum { H = 7, W = 9, C = 2, NCAND = (2 * C + 1) * (2 * C + 1) * 2, DRAWS = 4000 };
    uint8_t src[H * W], out[H * W], again[H * W], ref[NCAND][H * W];
    for (int i = 0; i < H * W; i++) src[i] = (uint8_t)(1 + i * 3);
    for (int dy = -C; dy <= C; dy++)
        for (int dx = -C; dx <= C; dx++)
            for (int f = 0; f < 2; f++)
                augment_reference(ref[((dy + C) * (2 * C + 1) + dx + C) * 2 + f], src, H, W, C, dy, dx, f);
    int seen[NCAND] = {0}, differs_by_seed = 0;
    for (int64_t e = 0; e < DRAWS; e++) {
        train_augment_image(out, src, H, W, C, 1, 7, e);
        int which = -1;
        for (int k = 0; k < NCAND && which < 0; k++)
            if (!memcmp(out, ref[k], sizeof out)) which = k;
        assert_true(which >= 0); /* a transform of the reference, not anything else */
        seen[which]++;
        train_augment_image(again, src, H, W, C, 1, 7, e);
        assert_memory_equal(out, again, sizeof out); /* a pure function of (seed, slot) */
        train_augment_image(again, src, H, W, C, 1, 8, e);
        differs_by_seed += memcmp(out, again, sizeof out) != 0;
    }
    for (int k = 0; k < NCAND; k++) /* 4000 / 50 = 80 expected each; 40..120 is > 4.5 sigma */
        assert_true(seen[k] >= 40 && seen[k] <= 120);
    assert_true(differs_by_seed > DRAWS * 9 / 10);
    /* flip only: the image or its mirror, both; crop only: never mirrored */
    int mirrored = 0;
    for (int64_t e = 0; e < 1000; e++) {
        train_augment_image(out, src, H, W, 0, 1, 7, e);
        int m = !memcmp(out, ref[(C * (2 * C + 1) + C) * 2 + 1], sizeof out);
        assert_true(m || !memcmp(out, src, sizeof out));
        mirrored += m;
        train_augment_image(out, src, H, W, C, 0, 7, e);
        int un = 0;
        for (int k = 0; k < NCAND; k += 2) un |= !memcmp(out, ref[k], sizeof out);
        assert_true(un);
    }
    assert_true(mirrored > 400 && mirrored < 600);
    train_augment_image(out, src, H, W, 0, 0, 7, 123);
    assert_memory_equal(out, src, sizeof out);
}

static void write_config(const model_config *c, const char *dir) {
    char *js = ckpt_config_to_json(c), path[4300];
    assert_non_null(js);
    snprintf(path, sizeof path, "%s/config.json", dir);
    pe_err err = {0};
    assert_int_equal(pe_write_file_atomic(path, js, strlen(js), &err), PE_OK);
    free(js);
}

static void test_save_load(void **state) {
    (void)state;
    model_config c = tiny_config("vit");
    train_params p, q;
    params_random(&p, &c, 21);
    pe_err err = {0};
    assert_int_equal(train_params_init(&q, &c, &err), PE_OK);
    train_params_seed(&q, 2);
    size_t nb = (size_t)p.n_params * sizeof(float);
    assert_true(memcmp(p.params, q.params, nb) != 0);
    const char *dir = tu_tmp_dir("train_save_load");
    write_config(&c, dir);
    char mpath[4300], opath[4300], bpath[4300];
    snprintf(mpath, sizeof mpath, "%s/model.safetensors", dir);
    snprintf(opath, sizeof opath, "%s/optim.safetensors", dir);
    snprintf(bpath, sizeof bpath, "%s/broken.safetensors", dir);

    /* the model */
    assert_int_equal(train_params_save(&p, NULL, mpath, "", &err), PE_OK);
    assert_int_equal(train_params_load(&q, NULL, mpath, "", &err), PE_OK);
    assert_memory_equal(p.params, q.params, nb);

    /* moments under "adam_m." */
    float *mom = malloc(nb), *back = calloc(1, nb);
    assert_true(mom && back);
    tu_fill_random(mom, (size_t)p.n_params, 77, 0.3f);
    assert_int_equal(train_params_save(&p, mom, opath, "adam_m.", &err), PE_OK);
    assert_int_equal(train_params_load(&p, back, opath, "adam_m.", &err), PE_OK);
    assert_memory_equal(mom, back, nb);
    assert_memory_equal(p.params, q.params, nb); /* dst given: params untouched */
    /* the prefix matters: the moments file has no "cls_token" etc. */
    memset(&err, 0, sizeof err);
    assert_int_equal(train_params_load(&p, back, opath, "", &err), PE_ERR_INPUT);
    {
        char quoted[128];
        snprintf(quoted, sizeof quoted, "\"%s\"", p.specs[0].name); /* the first tensor in canonical order */
        if (!strstr(err.msg, quoted)) fail_msg("message does not name %s: %s", quoted, err.msg);
    }

    /* a file missing one tensor */
    int          n = p.n_tensors;
    const char **names = calloc((size_t)n, sizeof *names);
    int         *ndims = calloc((size_t)n, sizeof *ndims);
    int64_t    (*shapes)[4] = calloc((size_t)n, sizeof *shapes);
    const float **data = calloc((size_t)n, sizeof *data);
    assert_true(names && ndims && shapes && data);
    int miss = train_params_find(&p, "layers.1.mlp.w2.weight");
    assert_true(miss >= 0);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (i == miss) continue;
        names[k] = p.specs[i].name, ndims[k] = p.specs[i].ndim;
        shapes[k][0] = p.specs[i].shape[0], shapes[k][1] = p.specs[i].shape[1];
        data[k] = p.params + p.offset[i];
        k++;
    }
    assert_int_equal(ckpt_write_safetensors(bpath, k, names, ndims, (const int64_t(*)[4])shapes, data, &err), PE_OK);
    memset(&err, 0, sizeof err);
    assert_int_equal(train_params_load(&q, NULL, bpath, "", &err), PE_ERR_INPUT);
    printf("  missing tensor: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "layers.1.mlp.w2.weight"));

    /* a tensor of the wrong shape (one row short) */
    k = 0;
    for (int i = 0; i < n; i++) {
        names[k] = p.specs[i].name, ndims[k] = p.specs[i].ndim;
        shapes[k][0] = p.specs[i].shape[0] - (i == miss), shapes[k][1] = p.specs[i].shape[1];
        data[k] = p.params + p.offset[i];
        k++;
    }
    assert_int_equal(ckpt_write_safetensors(bpath, k, names, ndims, (const int64_t(*)[4])shapes, data, &err), PE_OK);
    memset(&err, 0, sizeof err);
    assert_int_equal(train_params_load(&q, NULL, bpath, "", &err), PE_ERR_INPUT);
    printf("  wrong shape: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "layers.1.mlp.w2.weight"));

    free(names), free(ndims), free(shapes), free(data), free(mom), free(back);
    train_params_free(&p);
    train_params_free(&q);
}

/* ---- 7. train_check_config ----------------------------------------------------------------- */

static void expect_refused(const model_config *c, const char *what, const char *needle) {
    pe_err err = {0};
    assert_int_equal(model_check_config(c, what, &err), PE_OK); /* a valid model, just not trainable */
    memset(&err, 0, sizeof err);
    assert_int_equal(train_check_config(c, what, &err), PE_ERR_INPUT);
    printf("  %s: %s\n", what, err.msg);
    if (!strstr(err.msg, needle)) fail_msg("%s: message does not name \"%s\": %s", what, needle, err.msg);
    assert_non_null(strstr(err.msg, what));
}

static void test_check_config(void **state) {
    (void)state;
    pe_err err = {0};
    const char *kinds[] = {"lm", "lm-untied", "vit", "vit-mean"};
    assert_int_equal(train_check_config(&(model_config){0}, "zero", &err), PE_ERR_INPUT); /* model_check_config first */
    for (int k = 0; k < 4; k++) {
        model_config c = tiny_config(kinds[k]);
        assert_int_equal(train_check_config(&c, kinds[k], &err), PE_OK); /* the bidirectional ViT is fine */
    }
    model_config c;
    c = tiny_config("lm"), c.norm = MODEL_NORM_RMSNORM;
    expect_refused(&c, "rmsnorm", "norm must be layernorm");
    c = tiny_config("vit"), c.norm = MODEL_NORM_RMSNORM;
    expect_refused(&c, "vit-rmsnorm", "norm must be layernorm");
    c = tiny_config("lm"), c.pos = MODEL_POS_ROPE;
    expect_refused(&c, "rope", "pos must be learned");
    c = tiny_config("lm"), c.mlp = MODEL_MLP_SWIGLU;
    expect_refused(&c, "swiglu", "mlp must be gelu");
    c = tiny_config("lm"), c.n_kv_heads = 1;
    expect_refused(&c, "gqa", "n_kv_heads");
    c = tiny_config("lm"), c.causal = 0;
    expect_refused(&c, "bidirectional-lm", "must be causal");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_inference),
        cmocka_unit_test(test_keep_all_is_dense),
        cmocka_unit_test(test_chunk_additivity),
        cmocka_unit_test(test_directional_derivative),
        cmocka_unit_test(test_dropout_mask),
        cmocka_unit_test(test_lr_schedule),
        cmocka_unit_test(test_grad_norm),
        cmocka_unit_test(test_adamw_vs_reference),
        cmocka_unit_test(test_adamw_decay_matrices_only),
        tu_needs(tu_have_fashion(), cmocka_unit_test(test_training_learns_fashion)),
        cmocka_unit_test(test_training_learns_lm),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_check_config),
        cmocka_unit_test(test_augment_image),
    };
    return tu_finish(cmocka_run_group_tests(tests, NULL, NULL));
}
