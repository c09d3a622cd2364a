/* eval.h: mergeable accumulators of evaluation metrics (the evaluation itself: ensemble.h).
 *
 * Accumulators are plain sums (mergeable across shards/ranks by eval_*_merge, in a fixed order),
 * with per-unit (document / window / image) second moments so that standard errors use the
 * unit, not the token, as the independent sample (cluster / delta-method; docs/metrics.md).
 */
#pragma once
#include "common.h"

typedef struct {
    double  sum_nll;      /* Σ over scored targets of -ln p(target), nats */
    int64_t tokens;       /* scored targets */
    int64_t bytes;        /* UTF-8 bytes of the scored targets */
    int64_t units;        /* sequences (documents or windows) with >= 1 scored target */
    double  sum_a2;       /* Σ_units (nll_u)^2            nll_u = Σ nll of unit u */
    double  sum_ab;       /* Σ_units nll_u * tokens_u */
    double  sum_b2;       /* Σ_units tokens_u^2 */
} eval_lm_acc;

typedef struct {
    int64_t examples;
    int64_t correct;
    double  sum_nll;
    double  sum_nll2;
} eval_cls_acc;

void eval_lm_add_unit(eval_lm_acc *a, double nll_u, int64_t tokens_u, int64_t bytes_u);
void eval_lm_merge(eval_lm_acc *into, const eval_lm_acc *from);
/* nll per token and its standard error (units as samples; ratio estimator, delta method) */
double eval_lm_nll(const eval_lm_acc *a);
double eval_lm_nll_stderr(const eval_lm_acc *a);

void eval_cls_add(eval_cls_acc *a, double nll, int correct);
void eval_cls_merge(eval_cls_acc *into, const eval_cls_acc *from);

/* -ln softmax(logits)[target], computed in double: logits (V) */
double eval_nll_of(const float *logits, int V, int target);
