/* plan.h: static pathway plans (which heads to keep, a distance window per head), the
 * lightweight sub-models that `pathens prune` derives from importance statistics.
 *
 * JSON (docs/importance.md): {"format": "pathens-plan", "version": 1, "n_layers": L, "n_heads": H,
 *   "budget": F, "flops_fraction": f, "source": "...",
 *   "heads": [{"layer": l, "head": h, "keep": true|false, "window": w}, ...]}   w = 0: every key */
#pragma once
#include "common.h"

typedef struct {
    int      L, NH;
    uint8_t *keep;   /* (L, NH) */
    int     *window; /* (L, NH) 0 = every key */
    double   budget, flops_fraction;
} plan;

pe_status plan_load(plan *p, const char *path, int L, int NH, pe_err *err);
/* JSON text (malloc'ed) */
char *plan_to_json(const plan *p, const char *source);
void plan_free(plan *p);
/* attention connections of one head with window w on a causal sequence of n positions */
int64_t plan_head_connections(int n, int w, int causal);

/* ---- a plan judged against chance (pathens prune --evaluate, docs/importance.md) ---------------
 * Per unit u (a document or an image) of the same data: a_u, the plan's loss (nats summed over the
 * unit's scored tokens, or the image's NLL), b_u, the mean over K random sub-models of theirs, w_u the
 * unit's weight (scored tokens, or 1). Ratio estimates Σa/Σw, Σb/Σw and the paired Σ(a-b)/Σw, each
 * with a cluster (delta-method) standard error, units as clusters. */
typedef struct {
    double  sa, sb, sw;          /* Σa, Σb, Σw */
    double  saa, sbb, sdd;       /* Σa², Σb², Σd² (d = a - b) */
    double  saw, sbw, sdw, sww;  /* Σaw, Σbw, Σdw, Σw² */
    int64_t units;
} plan_paired;

typedef struct {
    double value, value_se;   /* the plan: Σa/Σw */
    double chance, chance_se; /* the random sub-models: Σb/Σw */
    double diff, diff_se;     /* plan - chance, paired */
    double diff_lo, diff_hi;  /* its 95% interval */
    int64_t units;
    int    verdict;           /* PLAN_BEAT_CHANCE, PLAN_LOST_TO_CHANCE, PLAN_INDISTINGUISHABLE */
} plan_vs_chance;

enum { PLAN_INDISTINGUISHABLE = 0, PLAN_BEAT_CHANCE = 1, PLAN_LOST_TO_CHANCE = 2 };

void plan_paired_add(plan_paired *p, double a, double b, double w);
/* lower is better (a loss): beat chance when the whole 95% interval of plan - chance is below 0 */
void plan_paired_finish(const plan_paired *p, plan_vs_chance *out);
const char *plan_verdict_name(int verdict); /* "beat chance", "lost to chance", "indistinguishable from chance" */
/* The same from two per_example.msgpack buffers (ensemble.h) of evaluations of the same units: a_u, the
 * mean member loss of the first (the plan: one member), b_u, that of the second (K random sub-models);
 * w_u the unit's scored tokens (lm = 1) or 1 (images). Units must match one for one (exit 2 otherwise). */
pe_status plan_compare_per_example(plan_vs_chance *out, const void *plan_pex, size_t plan_len, const void *chance_pex,
                                   size_t chance_len, int lm, pe_err *err);
