/* eval.c: mergeable accumulators of evaluation metrics. */
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void eval_lm_add_unit(eval_lm_acc *a, double nll_u, int64_t tokens_u, int64_t bytes_u) {
    if (tokens_u <= 0) return;
    a->sum_nll += nll_u;
    a->tokens += tokens_u;
    a->bytes += bytes_u;
    a->units += 1;
    a->sum_a2 += nll_u * nll_u;
    a->sum_ab += nll_u * (double)tokens_u;
    a->sum_b2 += (double)tokens_u * (double)tokens_u;
}

void eval_lm_merge(eval_lm_acc *into, const eval_lm_acc *from) {
    into->sum_nll += from->sum_nll;
    into->tokens += from->tokens;
    into->bytes += from->bytes;
    into->units += from->units;
    into->sum_a2 += from->sum_a2;
    into->sum_ab += from->sum_ab;
    into->sum_b2 += from->sum_b2;
}

double eval_lm_nll(const eval_lm_acc *a) { return a->tokens ? a->sum_nll / (double)a->tokens : NAN; }

double eval_lm_nll_stderr(const eval_lm_acc *a) {
    /* r = Σa/Σb; Var(r) ≈ n/(n-1) Σ (a_u - r b_u)^2 / (Σb)^2 */
    if (a->units < 2) return NAN;
    double r = eval_lm_nll(a), n = (double)a->units, B = (double)a->tokens;
    double ss = a->sum_a2 - 2.0 * r * a->sum_ab + r * r * a->sum_b2;
    if (ss < 0) ss = 0;
    return sqrt(n / (n - 1.0) * ss) / B;
}

void eval_cls_add(eval_cls_acc *a, double nll, int correct) {
    a->examples++;
    a->correct += correct ? 1 : 0;
    a->sum_nll += nll;
    a->sum_nll2 += nll * nll;
}

void eval_cls_merge(eval_cls_acc *into, const eval_cls_acc *from) {
    into->examples += from->examples;
    into->correct += from->correct;
    into->sum_nll += from->sum_nll;
    into->sum_nll2 += from->sum_nll2;
}

double eval_nll_of(const float *logits, int V, int target) {
    double mx = logits[0];
    for (int v = 1; v < V; v++)
        if (logits[v] > mx) mx = logits[v];
    double s = 0.0;
    for (int v = 0; v < V; v++) s += exp((double)logits[v] - mx);
    return -((double)logits[target] - mx - log(s));
}
