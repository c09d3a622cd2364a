/* ensemble.h: self-ensemble evaluation. One model, K sub-models ("members") that each sample
 * their own pathways (pathways.h), evaluated beside the dense model and combined.
 *
 * Combination (docs/metrics.md): prob  = mixture p̄ = (1/K) Σ_k p_k per token / image (default);
 *                                 logit = softmax of the mean logits.
 * Every sum is kept per unit (document, window or image) and reduced in the dataset's order,
 * so no number depends on batch composition or on the order in which work finished.
 */
#pragma once
#include "common.h"
#include "dataset.h"
#include "eval.h"
#include "model.h"
#include "importance.h"
#include "pathways.h"

typedef enum { ENS_COMBINE_PROB = 0, ENS_COMBINE_LOGIT = 1 } ens_combine;

/* paired difference accumulator over units: d_u = a_u - b_u with weight w_u (tokens, or 1) */
typedef struct {
    double  sum_d, sum_d2, sum_dw, sum_w, sum_w2;
    int64_t units;
} ens_paired;

/* calibration bins (15 equal-width confidence bins) for expected calibration error */
#define ENS_ECE_BINS 15
typedef struct {
    int64_t count[ENS_ECE_BINS];
    double  conf[ENS_ECE_BINS];
    double  correct[ENS_ECE_BINS];
} ens_calib;

typedef struct {
    ens_combine combine;
    int         batch;       /* sequences (images) per forward pass */
    int         per_example; /* 1: collect per-unit values as MessagePack */
    int         importance;  /* 1: dense attention statistics, and drop-one importance passes when imp_units > 0 */
    int         ablation;    /* 1: explicit ablations, every head and then every layer dropped alone; 2: and every
                              * (layer, distance band) */
    int64_t     imp_units;   /* drop-one importance members: units per component (importance.h); 0 = none */
} ens_options;



/* importance of (layer, head) and (layer, distance band); docs/importance.md */
typedef struct {
    int         L, NH, NB;
    int         has_sampled, has_attention, has_ablation;
    imp_slope  *head;      /* (L, NH) sampled: loss vs the head's kept fraction */
    double     *band_delta; /* (L, NB) sampled, joint over the bands of a layer: loss increase with the band dropped */
    double     *band_se;    /* (L, NB) its cluster-robust standard error */
    int64_t    *band_units; /* (L, NB) units where the band's kept fraction varied */
    ens_paired *abl_head;  /* (L, NH) loss with the head dropped minus dense, per unit */
    ens_paired *abl_layer; /* (L) loss with every head of the layer dropped minus dense */
    double     *att;       /* (L, NH, 3 + NB) dense attention: rows, Σ p|i-j|, Σ entropy, mass per band */
    int         has_drop;  /* drop-one importance members ran (importance.h) */
    int         has_band_ablation;
    imp_design  design;    /* their design: components and passes */
    ens_paired *drop;      /* (components) loss with the component dropped minus dense, on its units */
    ens_paired *abl_band;  /* (L, NB) loss with the band of the layer dropped minus dense (band >= design.b0) */
} ens_importance;

typedef struct {
    int          K, L, NH;
    eval_lm_acc  dense;
    eval_lm_acc  ensemble;
    eval_lm_acc  member_mean; /* unit value: mean over members of the member's unit NLL */
    ens_paired   diff;        /* ensemble minus dense, per unit, weighted by tokens */
    eval_lm_acc *member;      /* (K) */
    eval_lm_acc *curve;       /* (K) curve[k] = ensemble of members 0..k */
    double      *kl;          /* (K) Σ over scored targets of KL(dense || member), nats */
    int64_t     *agree;       /* (K) scored positions where member and dense argmax agree */
    int64_t     *kept;        /* (K, L, NH) attention connections kept */
    int64_t     *allowed;     /* (K, L, NH) connections allowed (causal / bidirectional) */
    int64_t      queries;     /* attention queries per (layer, head) per member: Σ sequence lengths */
    void        *per_example; /* msgpack_sbuffer* when requested, else NULL */
    ens_importance imp;
} ens_lm_result;

typedef struct {
    int          K, L, NH;
    eval_cls_acc dense, ensemble;
    eval_cls_acc *member;     /* (K) */
    eval_cls_acc *curve;      /* (K) */
    ens_calib    dense_cal, ensemble_cal;
    ens_calib   *member_cal;  /* (K) */
    ens_paired   diff_nll;    /* ensemble minus dense NLL per image */
    ens_paired   diff_acc;    /* ensemble minus dense correctness per image */
    double      *kl;          /* (K) */
    int64_t     *agree;       /* (K) */
    int64_t     *kept, *allowed; /* (K, L, NH) */
    int64_t      queries;     /* attention queries per (layer, head) per member */
    void        *per_example;
    ens_importance imp;
} ens_cls_result;

/* Evaluate dense + c->members members (c may have members == 0: dense only). */
pe_status ens_eval_text(ens_lm_result *r, const model *m, const text_dataset *d, const pw_config *c,
                        const ens_options *o, pe_err *err);
pe_status ens_eval_images(ens_cls_result *r, const model *m, const image_dataset *d, const pw_config *c,
                          const ens_options *o, pe_err *err);
void ens_free_lm(ens_lm_result *r);

/* ---- the same evaluation in pieces, for distributed runs (mpi/) -------------------------------
 * ens_rows holds the per-unit results of units [u0, u0 + n) of a dataset: documents or windows of
 * a text dataset, or images. A worker computes them (ens_text_rows_run / ens_images_rows_run) and
 * packs them (MessagePack map of raw little-endian arrays); the coordinator merges them into the
 * rows of every unit (ens_rows_merge checks every size first and changes nothing on a bad record)
 * and reduces once, in dataset order (ens_text_reduce / ens_images_reduce): the result is the same
 * bytes as ens_eval_text / ens_eval_images, which are these pieces run over all units at once. */
typedef struct ens_rows ens_rows;
ens_rows *ens_rows_new(const model *m, const text_dataset *d, const pw_config *c, const ens_options *o, int u0, int n,
                       pe_err *err);
/* the rows of members [k0, k0 + kb) only (a task of a split ensemble) */
ens_rows *ens_rows_new_block(const model *m, const text_dataset *d, const pw_config *c, const ens_options *o, int u0,
                             int n, int k0, int kb, pe_err *err);
/* images [u0, u0 + n), members [k0, k0 + kb); checks the images fit the model (size, classes) */
ens_rows *ens_rows_new_images(const model *m, const image_dataset *d, const pw_config *c, const ens_options *o, int u0,
                              int n, int k0, int kb, pe_err *err);
void      ens_rows_free(ens_rows *rw);
/* Text: the LM head and every per-token metric run over chunks of head_rows rows of one sequence
 * (model.h: a multiple of MODEL_HEAD_ROW_ALIGN; 0 = model_head_rows_auto, the default), never a
 * (B, T, V) buffer. A chunk holds (R, V) floats of dense logits, dense probabilities, member
 * logits and (combine = logit) the running sum of member logits; a batch also holds the final
 * hidden states (B, T, C) of the dense pass and of a group of members: group members (0 = as many
 * as ENS_HIDDEN_BUDGET floats hold, at least one; with combine = logit always every member, whose
 * running sum of logits must see them all within a chunk). use_ref = 1 runs the naive twins: the
 * reference kernels and the per-token metrics in double with libm exp (for tests). None of the
 * three changes a result (for use_ref: beyond rounding). */
void      ens_rows_set_head(ens_rows *rw, int head_rows, int group, int use_ref);
#define ENS_HIDDEN_BUDGET (1 << 25) /* floats of member hidden states a text batch holds at once */
pe_status ens_text_rows_run(ens_rows *rw, const model *m, const text_dataset *d, const pw_config *c,
                            const ens_options *o, pe_err *err);
pe_status ens_images_rows_run(ens_rows *rw, const model *m, const image_dataset *d, const pw_config *c,
                              const ens_options *o, pe_err *err);
void      ens_rows_pack(const ens_rows *rw, void *msgpack_packer);
/* The values of packed rows (object: a msgpack_object*) of units [u0, u0 + n) (documents or windows
 * of td, or images of m when td is NULL), before they are merged: every connection count is within
 * what the units can have (0 <= kept <= allowed <= the sum of T^2 over the units, so no sum can
 * overflow and no kept fraction can leave [0, 1]), agreement counts are within [0, longest T], and
 * with finite = 1 (a journal record) every loss, KL, confidence and attention statistic is finite:
 * a model that yields NaN does so again when the task is redone, so a NaN there in a journal can
 * only be damage. Used by the coordinator (mpi/dist.c) and the journal fuzz harness. */
pe_status ens_rows_check(const void *object, const model *m, const text_dataset *td, int u0, int n, int finite,
                         pe_err *err);
/* object: a msgpack_object* of a packed ens_rows; merged into `all` (rows of every unit) */
pe_status ens_rows_merge(ens_rows *all, const void *object, pe_err *err);
pe_status ens_text_reduce(ens_lm_result *r, ens_rows *all, const text_dataset *d, const ens_options *o, pe_err *err);
pe_status ens_images_reduce(ens_cls_result *r, ens_rows *all, const image_dataset *d, const ens_options *o,
                            pe_err *err);
void ens_free_cls(ens_cls_result *r);

/* derived numbers */
double ens_paired_mean(const ens_paired *p);   /* Σd / Σw */
double ens_paired_stderr(const ens_paired *p); /* cluster (delta-method) standard error */
double ens_calib_ece(const ens_calib *c);
/* per_example buffer as bytes (NULL/0 if none) */
const void *ens_per_example_data(const void *per_example, size_t *len);
