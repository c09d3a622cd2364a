/* gradtool.c: pathens_gradtool, the C side of the whole-model gradient check against PyTorch
 * (tests/cli_train_torch.sh runs it, tests/torch_grads.py recomputes everything in float64).
 *
 *   pathens_gradtool KIND OUTDIR [SCHEME RATIO]
 *
 * KIND   lm         GPT-style causal LM: dim 16, 2 layers, 2 heads, hidden 32, vocab 11, seq_len 8,
 *                   LayerNorm with biases, learned positions, erf GELU, tied LM head
 *        lm-untied  the same with a separate lm_head.weight
 *        vit        8x8x1 images, 4x4 patches (4 + CLS = 5 positions), dim 16, 2 layers, 2 heads,
 *                   hidden 32, 3 classes, bidirectional, CLS-token head, pixel mean 0.5 / std 0.25
 *        vit-mean   the same with mean pooling (4 positions)
 * SCHEME dense (default) | unbiased | local | ... (pathways.h), RATIO >= 1 (default 1): SSA draws
 *        with seed 7, sigma 1, member 0, sequence ids 100, 101, 102.
 *
 * Writes into OUTDIR (created if missing):
 *   config.json, model.safetensors  the model (random weights, deterministic)
 *   batch.safetensors               LM: "tokens" (3, 8); images: "pixels" (3, 1, 8, 8), "labels" (3); F32
 *   grads.safetensors               d(mean loss)/d(every parameter) under the model's tensor names,
 *                                   plus "loss" (1) = mean loss
 *   masks.safetensors               (SSA only) "mask.<l>" (3, NH, T, T): 1 where query i attends to key j,
 *                                   from the draws train.c makes (pw_draw + pw_mask_dense)
 * Exit 0 on success, 1 on bad usage, 3 on a library failure (message on stderr). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "model.h"
#include "pathways.h"
#include "testutil.h"
#include "train.h"

#define B_SEQ 3

static void usage(FILE *f) {
    fprintf(f, "usage: pathens_gradtool lm|lm-untied|vit|vit-mean OUTDIR [SCHEME RATIO]\n");
}

static int kind_config(model_config *c, const char *kind) {
    memset(c, 0, sizeof *c);
    c->norm_eps   = 1e-5f;
    c->rope_theta = 10000.0f;
    c->pixel_std  = 1.0f;
    c->dim = 16, c->hidden_dim = 32, c->n_layers = 2, c->n_heads = 2, c->n_kv_heads = 2;
    c->norm = MODEL_NORM_LAYERNORM, c->pos = MODEL_POS_LEARNED, c->mlp = MODEL_MLP_GELU, c->bias = 1;
    if (!strcmp(kind, "lm") || !strcmp(kind, "lm-untied")) {
        c->vocab_size = 11, c->seq_len = 8, c->causal = 1;
        c->head  = strcmp(kind, "lm") ? MODEL_HEAD_LM : MODEL_HEAD_LM_TIED;
        c->input = MODEL_INPUT_TOKENS;
    } else if (!strcmp(kind, "vit") || !strcmp(kind, "vit-mean")) {
        c->causal = 0, c->input = MODEL_INPUT_PATCHES, c->image_size = 8, c->patch_size = 4, c->channels = 1;
        c->head       = strcmp(kind, "vit") ? MODEL_HEAD_CLS_MEAN : MODEL_HEAD_CLS_TOKEN;
        c->n_classes  = 3;
        c->pixel_mean = 0.5f, c->pixel_std = 0.25f;
        c->seq_len    = 5; /* 4 patches + CLS (vit-mean uses 4: its last position row gets no gradient) */
    } else {
        return 0;
    }
    return 1;
}

static int gt_fail(const char *what, const pe_err *err) {
    fprintf(stderr, "pathens_gradtool: %s: %s\n", what, err->msg);
    return 3;
}

/* write n tensors of a train_params-like table (names, specs) */
static pe_status write_st(const char *dir, const char *file, int n, const char *const *names, const int *ndims,
                          const int64_t (*shapes)[4], const float *const *data, pe_err *err) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return ckpt_write_safetensors(path, n, names, ndims, shapes, data, err);
}

int main(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 3 && argc != 5) {
        usage(stderr);
        return 1;
    }
    const char *kind = argv[1], *dir = argv[2];
    model_config c;
    if (!kind_config(&c, kind)) {
        fprintf(stderr, "pathens_gradtool: KIND %s is not one of: lm, lm-untied, vit, vit-mean\n", kind);
        return 1;
    }
    pw_config pwc;
    memset(&pwc, 0, sizeof pwc);
    pwc.scheme = PW_SCHEME_DENSE, pwc.ratio = 1.0, pwc.sigma = 1.0, pwc.lambda = INFINITY, pwc.keep = 0.0;
    pwc.members = 1, pwc.seed = 7, pwc.granularity = PW_GRAN_HEAD, pwc.n_heads = c.n_heads;
    if (argc == 5) {
        int s = pw_scheme_parse(argv[3]);
        char *end;
        errno = 0;
        double r = strtod(argv[4], &end);
        if (s < 0 || errno || end == argv[4] || *end) {
            fprintf(stderr, "pathens_gradtool: bad SCHEME %s or RATIO %s\n", argv[3], argv[4]);
            return 1;
        }
        pwc.scheme = (pw_scheme)s, pwc.ratio = r;
    }
    const int ssa = pwc.scheme != PW_SCHEME_DENSE;
    pe_err    err = {0};
    if (ssa && pw_config_check(&pwc, &err) != PE_OK) return gt_fail("pathway config", &err);
    if (model_check_config(&c, kind, &err) != PE_OK) return gt_fail("model_check_config", &err);
    if (train_check_config(&c, kind, &err) != PE_OK) return gt_fail("train_check_config", &err);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "pathens_gradtool: cannot create %s: %s\n", dir, strerror(errno));
        return 3;
    }

    /* parameters: the seeded init (exercised), then tu_random_tensors' larger, non-trivial values
     * (norm weights 1 +- 0.1, biases +- 0.1, embeddings +- 0.5, matrices +- 1/sqrt(in)) so that
     * attention is far from uniform and no gradient is trivially tiny */
    train_params p;
    if (train_params_init(&p, &c, &err) != PE_OK) return gt_fail("train_params_init", &err);
    train_params_seed(&p, 1);
    tu_tensors rt;
    if (tu_random_tensors(&rt, &c, 20240611u, &err) != PE_OK) return gt_fail("tu_random_tensors", &err);
    if (rt.n != p.n_tensors) {
        fprintf(stderr, "pathens_gradtool: train_params has %d tensors, model_list_tensors %d\n", p.n_tensors, rt.n);
        return 3;
    }
    for (int i = 0; i < rt.n; i++) {
        int j = train_params_find(&p, rt.specs[i].name);
        if (j < 0) {
            fprintf(stderr, "pathens_gradtool: train_params has no tensor %s\n", rt.specs[i].name);
            return 3;
        }
        memcpy(p.params + p.offset[j], rt.data[i], tu_spec_numel(&rt.specs[i]) * sizeof(float));
    }
    tu_free_tensors(&rt);
    {
        char *js = ckpt_config_to_json(&c), path[4300];
        if (!js) return 3;
        snprintf(path, sizeof path, "%s/config.json", dir);
        pe_status st = pe_write_file_atomic(path, js, strlen(js), &err);
        free(js);
        if (st) return gt_fail("config.json", &err);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (train_params_save(&p, NULL, path, "", &err) != PE_OK) return gt_fail("train_params_save", &err);
    }

    /* the batch */
    const int     B = B_SEQ;
    const int64_t seq_ids[B_SEQ] = {100, 101, 102};
    const int     image = c.input == MODEL_INPUT_PATCHES;
    const int     T     = image ? model_image_seq_len(&c) : c.seq_len - 1;
    int           tokens[B_SEQ * 8], labels[B_SEQ];
    uint8_t       pixels[B_SEQ * 64];
    float         ftok[B_SEQ * 8], fpix[B_SEQ * 64], flab[B_SEQ];
    uint64_t      s = 12345;
    for (int i = 0; i < B * (T + 1) && !image; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        tokens[i] = (int)((s >> 33) % (uint64_t)c.vocab_size), ftok[i] = (float)tokens[i];
    }
    for (int i = 0; i < B * 64 && image; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        pixels[i] = (uint8_t)(s >> 40), fpix[i] = (float)pixels[i];
    }
    for (int b = 0; b < B && image; b++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        labels[b] = (int)((s >> 33) % (uint64_t)c.n_classes), flab[b] = (float)labels[b];
    }
    {
        const char   *bn_tok[] = {"tokens"}, *bn_img[] = {"pixels", "labels"};
        int           nd_tok[] = {2}, nd_img[] = {4, 1};
        int64_t       sh_tok[1][4] = {{B, T + 1}}, sh_img[2][4] = {{B, c.channels, c.image_size, c.image_size}, {B}};
        const float  *d_tok[] = {ftok}, *d_img[] = {fpix, flab};
        pe_status     st = image ? write_st(dir, "batch.safetensors", 2, bn_img, nd_img, (const int64_t(*)[4])sh_img,
                                            d_img, &err)
                                 : write_st(dir, "batch.safetensors", 1, bn_tok, nd_tok, (const int64_t(*)[4])sh_tok,
                                            d_tok, &err);
        if (st) return gt_fail("batch.safetensors", &err);
    }

    /* loss and gradients of the mean loss */
    train_acts a;
    if (train_acts_init(&a, &c, B, T, &err) != PE_OK) return gt_fail("train_acts_init", &err);
    float *grad = calloc((size_t)p.n_params, sizeof *grad);
    if (!grad) return 3;
    train_stats     stt;
    memset(&stt, 0, sizeof stt);
    const int64_t   n_targets = image ? B : (int64_t)B * T;
    const float     scale     = (float)(1.0 / (double)n_targets);
    const pw_config *pw       = ssa ? &pwc : NULL;
    pe_status st = image ? train_grad_images(grad, &stt, &a, &p, pixels, labels, B, pw, seq_ids, scale, &err)
                         : train_grad_tokens(grad, &stt, &a, &p, tokens, B, T, pw, seq_ids, scale, &err);
    if (st) return gt_fail("train_grad", &err);
    if (stt.n_targets != n_targets) {
        fprintf(stderr, "pathens_gradtool: train_stats.n_targets = %lld, expected %lld\n", (long long)stt.n_targets,
                (long long)n_targets);
        return 3;
    }
    float loss = (float)(stt.loss_sum / (double)stt.n_targets);

    /* the same batch again, whole (must be bit-identical: a pure function of the chunk) and as B
     * chunks of one sequence accumulated into one gradient (grad += semantics; the SSA draw of a
     * sequence is keyed by its id, not its place in the chunk): equal up to summation order */
    {
        float *g2 = calloc((size_t)p.n_params, sizeof *g2), *g3 = calloc((size_t)p.n_params, sizeof *g3);
        if (!g2 || !g3) return 3;
        train_stats s2, s3;
        memset(&s2, 0, sizeof s2);
        st = image ? train_grad_images(g2, &s2, &a, &p, pixels, labels, B, pw, seq_ids, scale, &err)
                   : train_grad_tokens(g2, &s2, &a, &p, tokens, B, T, pw, seq_ids, scale, &err);
        if (st) return gt_fail("train_grad (repeat)", &err);
        if (memcmp(g2, grad, (size_t)p.n_params * sizeof *g2) || s2.loss_sum != stt.loss_sum) {
            fprintf(stderr, "pathens_gradtool: a repeated train_grad call gave different numbers\n");
            return 3;
        }
        double loss3 = 0.0, gmax = 0.0, dmax = 0.0;
        for (int b = 0; b < B; b++) {
            memset(&s3, 0, sizeof s3);
            st = image ? train_grad_images(g3, &s3, &a, &p, pixels + (size_t)b * c.channels * c.image_size * c.image_size, labels + b, 1, pw, seq_ids + b,
                                           scale, &err)
                       : train_grad_tokens(g3, &s3, &a, &p, tokens + (size_t)b * (T + 1), 1, T, pw, seq_ids + b,
                                           scale, &err);
            if (st) return gt_fail("train_grad (one sequence)", &err);
            loss3 += s3.loss_sum;
        }
        for (int64_t i = 0; i < p.n_params; i++) {
            gmax = fmax(gmax, fabs((double)grad[i]));
            dmax = fmax(dmax, fabs((double)grad[i] - (double)g3[i]));
        }
        if (dmax > 1e-5 * gmax || fabs(loss3 - stt.loss_sum) > 1e-5 * fabs(stt.loss_sum)) {
            fprintf(stderr,
                    "pathens_gradtool: %d chunks of one sequence give max|dgrad| %.3g (max|grad| %.3g), loss sum %.9g "
                    "vs %.9g for the whole chunk\n", B, dmax, gmax, loss3, stt.loss_sum);
            return 3;
        }
        printf("chunks of 1 vs chunk of %d: max|dgrad| %.2e (max|grad| %.2e); repeat bit-identical\n", B, dmax, gmax);
        free(g2), free(g3);
    }
    {
        int           n      = p.n_tensors + 1;
        const char  **names  = calloc((size_t)n, sizeof *names);
        int          *ndims  = calloc((size_t)n, sizeof *ndims);
        int64_t     (*shapes)[4] = calloc((size_t)n, sizeof *shapes);
        const float **data   = calloc((size_t)n, sizeof *data);
        if (!names || !ndims || !shapes || !data) return 3;
        for (int i = 0; i < p.n_tensors; i++) {
            names[i] = p.specs[i].name, ndims[i] = p.specs[i].ndim;
            shapes[i][0] = p.specs[i].shape[0], shapes[i][1] = p.specs[i].shape[1];
            data[i] = grad + p.offset[i];
        }
        names[n - 1] = "loss", ndims[n - 1] = 1, shapes[n - 1][0] = 1, data[n - 1] = &loss;
        if (write_st(dir, "grads.safetensors", n, names, ndims, (const int64_t(*)[4])shapes, data, &err))
            return gt_fail("grads.safetensors", &err);
        free(names), free(ndims), free(shapes), free(data);
    }

    /* the SSA masks: the draw train.c makes for (member 0, layer l, head h, sequence seq_ids[b]) */
    if (ssa) {
        const int NH = c.n_heads, L = c.n_layers;
        pw_sample smp;
        if (pw_sample_init(&smp, T, &err) != PE_OK) return gt_fail("pw_sample_init", &err);
        uint8_t *m8   = malloc((size_t)T * T);
        float   *mask = malloc((size_t)L * B * NH * T * T * sizeof *mask);
        if (!m8 || !mask) return 3;
        char          nmbuf[8][32];
        const char   *names[8];
        int           ndims[8];
        int64_t       shapes[8][4];
        const float  *data[8];
        if (L > 8) return 3;
        for (int l = 0; l < L; l++) {
            for (int b = 0; b < B; b++)
                for (int h = 0; h < NH; h++) {
                    pw_draw(&smp, &pwc, 0, l, h, seq_ids[b], T, c.causal);
                    pw_mask_dense(&smp, m8);
                    float *dst = mask + ((((size_t)l * B + b) * NH + h) * T) * T;
                    for (int i = 0; i < T * T; i++) dst[i] = m8[i] ? 1.0f : 0.0f;
                }
            snprintf(nmbuf[l], sizeof nmbuf[l], "mask.%d", l);
            names[l] = nmbuf[l], ndims[l] = 4;
            shapes[l][0] = B, shapes[l][1] = NH, shapes[l][2] = T, shapes[l][3] = T;
            data[l] = mask + (size_t)l * B * NH * T * T;
        }
        if (write_st(dir, "masks.safetensors", L, names, ndims, (const int64_t(*)[4])shapes, data, &err))
            return gt_fail("masks.safetensors", &err);
        free(m8), free(mask);
        pw_sample_free(&smp);
    }
    printf("%s %s ratio %g: loss %.9g over %lld targets, attention kept %lld of %lld\n", kind,
           pw_scheme_name(pwc.scheme), pwc.ratio, (double)loss, (long long)stt.n_targets, (long long)stt.att_kept,
           (long long)stt.att_allowed);
    free(grad);
    train_acts_free(&a);
    train_params_free(&p);
    return 0;
}
