/* train.h: training in C (pathens train): forward with a tape, backward, AdamW, SSA.
 *
 * Architectures (model.h switches): the GPT-style causal LM (token input, learned positions,
 * LayerNorm with biases, erf-GELU MLP, multi-head attention, tied or separate LM head) and the
 * ViT-style encoder classifier (patch input, learned positions, CLS token or mean pooling,
 * bidirectional). train_check_config names anything else.
 *
 * Parameters live in one float block carved by the model's size table (model_list_tensors, in
 * canonical order); gradients, AdamW moments and per-chunk gradient slots use the same layout,
 * so every optimizer operation is a loop over n_params floats. The model struct of a
 * train_params is a set of views into that block (model_init over an in-memory directory), so
 * the inference forward (model_forward_*) runs on the weights being trained.
 *
 * SSA: with a pathway config, the attention of every (layer, head, sequence) keeps only the
 * connections of a freshly drawn sample (pathways.h, counter-based: the draw of a training
 * example is keyed by its global slot step * batch + i), and the backward pass goes through the
 * kept connections only (backward.h's tape): attention memory and FLOPs scale with what is kept.
 *
 * Legend: B sequences (or images) in the chunk, T positions, C dim, NH heads, HS = C / NH,
 * HID hidden, V vocab, NC classes, L layers, P n_params.
 */
#pragma once
#include <signal.h>

#include "backward.h"
#include "ckpt.h"
#include "common.h"
#include "config.h"
#include "model.h"

/* Training supports the GPT-style LM and the ViT classifier; the message names the first switch
 * that is not supported. */
pe_status train_check_config(const model_config *c, const char *where, pe_err *err);

typedef struct {
    model_config       cfg;
    int                n_tensors;
    model_tensor_spec *specs;    /* (n_tensors) canonical order */
    int64_t           *offset;   /* (n_tensors) first float of each tensor in params */
    int64_t            n_params; /* P */
    float             *params;   /* (P) */
    ckpt_file          dir;      /* in-memory directory of views into params (what model_init binds) */
    model              m;        /* views into params */
} train_params;

pe_status train_params_init(train_params *p, const model_config *cfg, pe_err *err); /* params zeroed */
void      train_params_free(train_params *p);
/* Seeded initialisation (counter-based, so a pure function of seed): linear and embedding weights
 * N(0, 0.02), the residual output projections (attn.wo, mlp.w2) N(0, 0.02 / sqrt(2 L)); biases 0;
 * norm weights 1; cls_token N(0, 0.02). */
void      train_params_seed(train_params *p, uint64_t seed);
/* index of a tensor by name, or -1 */
int       train_params_find(const train_params *p, const char *name);
/* Copy every tensor from a native safetensors file (F32): each must be present with the right
 * shape (expected vs got in the message). prefix "" for a model file, e.g. "adam_m." for the
 * optimizer file's moments into dst (P) (dst NULL = p->params). */
pe_status train_params_load(train_params *p, float *dst, const char *path, const char *prefix, pe_err *err);
/* Write src (P) (NULL = p->params) as a native safetensors file with names prefix + name (atomic). */
pe_status train_params_save(const train_params *p, const float *src, const char *path, const char *prefix,
                            pe_err *err);

/* activations of one chunk (B sequences / images), one allocation carved by a size table */
typedef struct {
    int     B, T;       /* allocated for */
    float  *block;
    /* per layer l (each (L, B, T, C) unless noted): */
    float  *x_in;       /* residual stream entering layer l */
    float  *ln1, *ln1_mean, *ln1_rstd; /* normalised input of attention; mean, rstd (L, B, T) */
    float  *q, *k, *v;  /* projections */
    float  *att;        /* attention output before wo */
    float  *x_mid;      /* residual stream after attention */
    float  *ln2, *ln2_mean, *ln2_rstd;
    float  *h_pre;      /* (L, B, T, HID) MLP pre-activation */
    float  *h_act;      /* (L, B, T, HID) after GELU */
    /* after the blocks: */
    float  *x_out;      /* (B, T, C) */
    float  *lnf, *lnf_mean, *lnf_rstd; /* (B, T, C), (B, T), (B, T) */
    float  *patches;    /* (B, NP, PP) images only */
    float  *pooled;     /* (B, C) classifier input */
    float  *logits;     /* (B, T, V) LM or (B, NC) classifier; becomes dlogits in the backward */
    /* backward scratch */
    float  *dx;         /* (B, T, C) gradient of the residual stream */
    float  *dbuf;       /* (B, T, C) */
    float  *dq, *dk, *dv; /* (B, T, C) */
    float  *dh;         /* (B, T, HID) */
    float  *dpooled;    /* (B, C) */
    att_tape  tape;     /* kept connections of every (layer, sequence, head) */
    pw_sample sample;   /* cap T */
    int    *targets;    /* (B, T) LM targets or (B) labels */
    /* dropout (training only; set after train_acts_init, which leaves it off): each element of the
     * embeddings and of every attention / MLP output is zeroed with probability `dropout` (kept ones
     * scaled by 1 / (1 - dropout)), the decision a hash of (dropout_seed, site, sequence id, element):
     * the same masks for any chunking and rank count, and again in the backward */
    float    dropout;
    uint64_t dropout_seed;
} train_acts;

pe_status train_acts_init(train_acts *a, const model_config *cfg, int B, int T, pe_err *err);
void      train_acts_free(train_acts *a);
/* x (B, n) *= dropout mask of `site` (0 embeddings, 1 + 2l attention output of layer l, 2 + 2l MLP
 * output) for the B sequences seq_ids (NULL: 0 .. B-1); p in [0, 1); the backward applies the same
 * call to the gradient. */
void      train_dropout_apply(float *x, float p, uint64_t seed, int site, const int64_t *seq_ids, int B, size_t n);

/* What one forward/backward of a chunk reports. */
typedef struct {
    double  loss_sum;   /* Σ of per-target losses (nats) */
    int64_t n_targets;  /* targets scored */
    int64_t n_correct;  /* classifier: argmax == label */
    int64_t att_kept;   /* attention connections kept (all layers, sequences, heads) */
    int64_t att_allowed;/* connections dense attention would use */
} train_stats;

/* Loss and gradient of a chunk of token sequences. tokens (B, T + 1): inputs are tokens[:, :T],
 * targets tokens[:, 1:]. grad (P) += scale * d(Σ losses)/d(params) (scale = 1 / targets of the
 * whole batch gives the mean). pw NULL or scheme dense: dense attention; else SSA with the draw of
 * sequence b keyed by seq_ids[b] (member 0). Every number depends on the chunk alone. */
pe_status train_grad_tokens(float *grad, train_stats *st, train_acts *a, const train_params *p, const int *tokens,
                            int B, int T, const pw_config *pw, const int64_t *seq_ids, float scale, pe_err *err);
/* Same for images: pixels (B, channels, H, W) uint8, labels (B). */
pe_status train_grad_images(float *grad, train_stats *st, train_acts *a, const train_params *p,
                            const uint8_t *pixels, const int *labels, int B, const pw_config *pw,
                            const int64_t *seq_ids, float scale, pe_err *err);

/* Data augmentation of one single-channel training image (train.augment_crop, train.augment_flip):
 * dst (H, W) = src (H, W) shifted by (dy, dx), each drawn uniformly from [-crop, crop], zero fill
 * outside (the same as padding by crop and cropping H x W at a random offset), then mirrored
 * left-right when flip is 1 and a fair coin says so: dst(y, x) = shifted(y, W - 1 - x). The draws
 * are keyed by (seed, example slot e) only, so any rank count or resume sees the same images.
 * crop 0 and flip 0: dst = src. */
void train_augment_image(uint8_t *dst, const uint8_t *src, int H, int W, int crop, int flip, uint64_t seed, int64_t e);

/* ---- optimizer --------------------------------------------------------------------------- */
typedef struct {
    double lr, min_lr;       /* peak and final learning rate */
    int    warmup_steps;     /* linear warm-up from 0 */
    int    steps;            /* total steps (the cosine reaches min_lr at the last) */
    double beta1, beta2, eps;
    double weight_decay;     /* decoupled, matrices only (ndim == 2) */
    double clip;             /* global gradient norm clip (0 = off) */
} train_optim;

/* learning rate of step s (0-based): warm-up, then cosine from lr to min_lr */
double train_lr_at(const train_optim *o, int64_t s);
/* global L2 norm of grad (P), summed in double in index order */
double train_grad_norm(const float *grad, int64_t P);
/* One AdamW step t (1-based, for the bias correction) with learning rate lr: clips grad in place
 * when its norm exceeds o->clip (returns the norm before clipping), then updates params, m, v. */
double train_adamw_step(train_params *p, float *m, float *v, float *grad, const train_optim *o, int64_t t, double lr);

/* ---- the training run (pathens train) ---------------------------------------------------- */
/* How the ranks of a data-parallel run talk; the core never includes mpi.h (mpi/ fills this).
 * A single process passes size 1 and NULL functions. */
typedef struct {
    int   rank, size;
    void (*sum_floats)(float *buf, size_t n, void *ctx);   /* in place, over every rank */
    void (*sum_doubles)(double *buf, size_t n, void *ctx); /* in place, over every rank */
    void *ctx;
} train_comm;

/* Train per the config's [model] (model.config: architecture of a new model; or model.path: a
 * checkpoint to start from), [data] (training data and data.span), [pathways] (the SSA scheme; dense
 * = ordinary training), [train] and run.out. Writes run.out/{model.safetensors, config.json,
 * train_log.csv, train.json} and resumable checkpoints run.out/checkpoint/step-N/ (LATEST names the
 * newest). resume: continue from LATEST (a fresh start when there is none). *stop (set by a signal
 * handler; may be NULL) makes every rank stop at the next step boundary: rank 0 writes a checkpoint
 * and PE_ERR_CHECKPOINT (75) is returned. Every rank calls this with the same config. */
pe_status train_run(const pe_config *cfg, const train_comm *comm, int resume, int quiet, volatile const sig_atomic_t *stop,
                    pe_err *err);
