/* results.h: the evaluation results as JSON (results.json) and CSV (members.csv, curve.csv).
 * Pure functions of the result structs: no timings, hosts or dates, so equal results give
 * equal bytes. Field meanings: docs/metrics.md. */
#pragma once
#include "ensemble.h"

/* add "dense", and with members "ensemble", "member_mean", "members", "curve" to root (cJSON*) */
void results_add_lm(void *root, const ens_lm_result *r);
void results_add_cls(void *root, const ens_cls_result *r);
/* add "importance" (docs/importance.md); metric names the loss ("nll_per_token" or "nll") */
void results_add_importance(void *root, const ens_importance *imp, const char *metric);
char *results_importance_csv(const ens_importance *imp);
/* CSV texts (malloc'ed, caller frees) */
char *results_members_csv_lm(const ens_lm_result *r);
char *results_curve_csv_lm(const ens_lm_result *r);
char *results_members_csv_cls(const ens_cls_result *r);
char *results_curve_csv_cls(const ens_cls_result *r);
