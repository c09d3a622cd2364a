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
