/* prune.c: `pathens prune RUN_DIR --budget F ... [--evaluate]`: static pathway plans from a run's
 * importance statistics (docs/importance.md), and the quality-vs-attention-FLOPs frontier. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "importance.h"
#include "plan.h"

#define PRUNE_MAX_BUDGETS 32
#define PRUNE_COVERAGE 0.9 /* a kept head's window covers this much of its dense attention mass */

static void help_prune(FILE *f) {
    fprintf(f,
            "usage: pathens prune RUN_DIR --budget F [--budget F ...] [--evaluate] [--threads N] [--quiet]\n\n"
            "From the importance statistics in RUN_DIR/results.json (a run with importance.ablation = 1,\n"
            "or with importance.units > 0: the sampled drop-one estimate), writes a static pathway plan\n"
            "RUN_DIR/plan_F.json for each budget F in (0, 1]: the heads to keep and a distance window per\n"
            "head, using about a fraction F of the dense attention FLOPs (at the run's mean sequence length).\n"
            "Heads are taken in order of importance (ablation delta, else sampled delta), each with the\n"
            "smallest power-of-two window that covers %.0f%% of its dense attention mass, shrunk if needed\n"
            "to fit the budget.\n"
            "--evaluate runs `pathens eval` with scheme = plan for every plan (same model and data as the\n"
            "run) into RUN_DIR/plan_F/ and writes RUN_DIR/frontier.json: quality vs attention FLOPs for the\n"
            "plans, the dense model and the run's random members. Evaluate with `pathways.scheme = plan`,\n"
            "`pathways.plan = RUN_DIR/plan_F.json`. docs/importance.md.\n\n"
            "options:\n"
            "  --budget F   a fraction of the dense attention FLOPs in (0, 1]; repeatable (at most %d)\n"
            "  --evaluate   evaluate every plan and write RUN_DIR/frontier.json\n"
            "  --threads N  threads per rank of --evaluate (pathens eval --threads; the same numbers for any N)\n"
            "  --quiet      no 'plan ...' or 'wrote ...' lines on stderr\n\n"
            "example (from the repository root, after the example of pathens eval --help):\n"
            "  pathens prune runs/stories260k --budget 0.25 --budget 0.5 --evaluate\n",
            100.0 * PRUNE_COVERAGE, PRUNE_MAX_BUDGETS);
}

static int fail(const pe_err *err) {
    fprintf(stderr, "pathens: error: %s\n", err->msg);
    return err->code ? (int)err->code : PE_ERR_INTERNAL;
}

static cJSON *load_json(const char *path, pe_err *err) {
    char *text = NULL;
    if (pe_read_file(path, &text, NULL, err)) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) pe_fail(err, PE_ERR_INPUT, "%s: not valid JSON", path);
    return j;
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

/* importance of a head: ablation delta, else sampled delta */
static double head_importance(const cJSON *h) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(h, "ablation"), *s = cJSON_GetObjectItemCaseSensitive(h, "sampled");
    if (cJSON_IsObject(a)) return jnum(a, "delta");
    if (cJSON_IsObject(s)) return jnum(s, "delta");
    return NAN;
}

/* smallest power-of-two window whose bands cover PRUNE_COVERAGE of the head's attention mass */
static int head_window(const cJSON *h, int n) {
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(h, "attention"), *mb = at ? cJSON_GetObjectItemCaseSensitive(at, "mass_by_band") : NULL;
    if (!cJSON_IsArray(mb)) return 0;
    double cum = 0.0;
    int    b = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, mb) {
        cum += cJSON_IsNumber(x) ? x->valuedouble : 0.0;
        if (cum >= PRUNE_COVERAGE || b >= 30) { /* band 30 reaches 2^30 - 1 > any length */
            int w = imp_band_hi(b) + 1; /* distances 0 .. hi kept */
            return w >= n ? 0 : w;
        }
        b++;
    }
    return 0;
}

typedef struct {
    int    idx;
    double imp;
} ranked;

static int by_importance(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->imp != y->imp) return x->imp > y->imp ? -1 : 1;
    return x->idx - y->idx;
}

/* plan for budget F; returns its FLOPs fraction at length n */
static double build_plan(plan *p, const cJSON *heads, int L, int NH, int n, int causal, double F) {
    int     H = L * NH;
    int64_t dense_one = plan_head_connections(n, 0, causal), budget = (int64_t)floor(F * (double)dense_one * H), used = 0;
    ranked *r = malloc(sizeof(ranked) * H);
    int    *win = malloc(sizeof(int) * H);
    const cJSON *h;
    int i = 0;
    cJSON_ArrayForEach(h, heads) {
        if (i >= H) break;
        int l = (int)jnum(h, "layer"), hd = (int)jnum(h, "head");
        int c = l * NH + hd;
        r[i].idx = c;
        r[i].imp = head_importance(h);
        if (isnan(r[i].imp)) r[i].imp = -INFINITY;
        win[c] = head_window(h, n);
        i++;
    }
    qsort(r, (size_t)i, sizeof *r, by_importance);
    memset(p->keep, 0, (size_t)H);
    memset(p->window, 0, sizeof(int) * H);
    for (int k = 0; k < i; k++) {
        if (!(r[k].imp > 0)) break; /* dropping it does not hurt: leave it out */
        int c = r[k].idx, w = win[c];
        for (;;) {
            int64_t cost = plan_head_connections(n, w, causal);
            if (used + cost <= budget) {
                p->keep[c] = 1;
                p->window[c] = w;
                used += cost;
                break;
            }
            int next = w == 0 ? (n > 2 ? (1 << (31 - __builtin_clz((unsigned)(n - 1)))) : 1) : w / 2;
            if (next < 1 || next == w) break;
            w = next;
        }
    }
    free(r);
    free(win);
    return (double)used / ((double)dense_one * H);
}

int cmd_prune(int argc, char **argv) {
    const char *dir = NULL;
    double      budgets[PRUNE_MAX_BUDGETS];
    int         nb = 0, evaluate = 0, quiet = 0;
    const char *threads = NULL; /* --threads, handed to pathens eval as given */
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help_prune(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--budget") && i + 1 < argc) {
            char  *e;
            double f = strtod(argv[++i], &e);
            if (*e || e == argv[i] || !(f > 0 && f <= 1) || nb == PRUNE_MAX_BUDGETS)
                return cli_usage_error("prune", "--budget needs a number in (0, 1], not '%s' (at most %d budgets)", argv[i],
                                       PRUNE_MAX_BUDGETS);
            budgets[nb++] = f;
        } else if (!strcmp(argv[i], "--evaluate")) {
            evaluate = 1;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            char *e;
            long  t = strtol(argv[++i], &e, 10);
            if (*e || e == argv[i] || t < 1 || t > PE_THREADS_MAX)
                return cli_usage_error("prune", "--threads needs an integer in [1, %d], not '%s'", PE_THREADS_MAX, argv[i]);
            threads = argv[i];
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else if (!strcmp(argv[i], "--budget") || !strcmp(argv[i], "--threads")) {
            return cli_usage_error("prune", "%s needs a value", argv[i]);
        } else if (argv[i][0] == '-') {
            return cli_usage_error("prune", "unknown option '%s'", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            return cli_usage_error("prune", "one RUN_DIR at a time ('%s' too)", argv[i]);
        }
    }
    if (!dir) return cli_usage_error("prune", "missing RUN_DIR");
    if (nb == 0) return cli_usage_error("prune", "needs at least one --budget F");
    pe_err err = {0};
    char   path[4400];
    snprintf(path, sizeof path, "%s/results.json", dir);
    cJSON *res = load_json(path, &err);
    if (!res) return fail(&err);
    const cJSON *imp = cJSON_GetObjectItemCaseSensitive(res, "importance"), *cfg = cJSON_GetObjectItemCaseSensitive(res, "config");
    const cJSON *heads = imp ? cJSON_GetObjectItemCaseSensitive(imp, "heads") : NULL;
    const cJSON *dense = cJSON_GetObjectItemCaseSensitive(res, "dense");
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(res, "model"), "architecture");
    if (!cJSON_IsArray(heads) || !cJSON_IsObject(cfg) || !cJSON_IsObject(dense) || !cJSON_IsObject(arch)) {
        cJSON_Delete(res);
        pe_fail(&err, PE_ERR_INPUT, "%s: no importance statistics; rerun pathens eval with importance.statistics = 1 "
                "(and importance.units = 150 or importance.ablation = 1)", path);
        return fail(&err);
    }
    double Ld = jnum(imp, "n_layers"), NHd = jnum(imp, "n_heads"), nd;
    int causal = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(arch, "causal"));
    const char *metric = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(dense, "nll_per_token")) ? "nll_per_token" : "nll";
    /* mean sequence length of the run: LMs from scored tokens per unit, images from the architecture */
    const cJSON *hk = cJSON_GetObjectItemCaseSensitive(arch, "head");
    if (!strcmp(metric, "nll_per_token")) nd = round(jnum(dense, "tokens") / jnum(dense, "units")) + 1;
    else {
        double per = floor(jnum(arch, "image_size") / jnum(arch, "patch_size"));
        nd = per * per + (cJSON_IsString(hk) && !strcmp(hk->valuestring, "cls_token") ? 1 : 0);
    }
    /* every number the plans are built from is checked before use: a damaged results.json is exit 2 */
    const char *bad = NULL;
    if (!(Ld >= 1 && Ld <= 4096 && Ld == floor(Ld) && NHd >= 1 && NHd <= 4096 && NHd == floor(NHd)) ||
        cJSON_GetArraySize(heads) != (int)(Ld * NHd))
        bad = "importance.n_layers / n_heads (whole numbers in [1, 4096], one heads[] entry per layer x head)";
    else if (!(nd >= 1 && nd <= 1 << 24))
        bad = strcmp(metric, "nll") ? "dense.tokens / dense.units (a mean length in [0, 2^24))"
                                    : "model.architecture.image_size / patch_size (at most 2^24 patches)";
    const cJSON *hh;
    cJSON_ArrayForEach(hh, heads) {
        double l = jnum(hh, "layer"), k = jnum(hh, "head");
        if (!bad && !(l >= 0 && l < Ld && l == floor(l) && k >= 0 && k < NHd && k == floor(k)))
            bad = "importance.heads[].layer / head (whole numbers below n_layers / n_heads)";
    }
    if (bad) {
        cJSON_Delete(res);
        pe_fail(&err, PE_ERR_INPUT, "%s: %s: missing or out of range; the file is damaged: rerun pathens eval with "
                "importance.statistics = 1", path, bad);
        return fail(&err);
    }
    int L = (int)Ld, NH = (int)NHd, n = (int)nd;
    plan p = {L, NH, malloc((size_t)L * NH), malloc(sizeof(int) * L * NH), 0, 0};
    cJSON *frontier = cJSON_CreateObject(), *plans = NULL;
    cJSON_AddStringToObject(frontier, "metric", metric);
    cJSON_AddNumberToObject(frontier, "mean_length", n);
    int rc = 0;
    for (int b = 0; b < nb && !rc; b++) {
        p.budget = budgets[b];
        p.flops_fraction = build_plan(&p, heads, L, NH, n, causal, budgets[b]);
        char *text = plan_to_json(&p, dir);
        char  ppath[4200];
        snprintf(ppath, sizeof ppath, "%s/plan_%g.json", dir, budgets[b]);
        if (pe_write_file_atomic(ppath, text, strlen(text), &err)) rc = fail(&err);
        free(text);
        int kept = 0;
        for (int c = 0; c < L * NH; c++) kept += p.keep[c];
        char tidy[4200];
        if (!quiet && !rc)
            fprintf(stderr, "plan %s: budget %g, %d of %d heads kept, attention FLOPs %.3f of dense (at length %d)\n",
                    pe_path_tidy(ppath, tidy, sizeof tidy), budgets[b], kept, L * NH, p.flops_fraction, n);
        if (!evaluate || rc) continue;
        /* evaluate: the run's resolved config, scheme = plan, one member, no importance passes */
        char ini[4200], out[4200];
        snprintf(ini, sizeof ini, "%s/prune_eval.ini", dir);
        snprintf(out, sizeof out, "%s/plan_%g", dir, budgets[b]);
        static const char ini_text[] = "; written by pathens prune: every key comes from --set\n";
        if (pe_write_file_atomic(ini, ini_text, sizeof ini_text - 1, &err)) { /* no NUL byte in an INI file */
            rc = fail(&err);
            break;
        }
        char  *args[128];
        char   sets[128][4400];
        int    na = 0;
        args[na++] = ini;
        const cJSON *sec, *kv;
        cJSON_ArrayForEach(sec, cfg) cJSON_ArrayForEach(kv, sec) {
            if (na >= 120) break;
            const char *s = sec->string, *k = kv->string;
            char val[4200];
            if (cJSON_IsString(kv)) snprintf(val, sizeof val, "%s", kv->valuestring);
            else if (cJSON_IsNumber(kv)) snprintf(val, sizeof val, "%.17g", kv->valuedouble);
            else continue;
            if (!strcmp(s, "pathways") && !strcmp(k, "scheme")) snprintf(val, sizeof val, "plan");
            if (!strcmp(s, "pathways") && !strcmp(k, "plan")) snprintf(val, sizeof val, "%s", ppath);
            if (!strcmp(s, "pathways") && !strcmp(k, "members")) snprintf(val, sizeof val, "1");
            if (!strcmp(s, "importance")) snprintf(val, sizeof val, "0");
            if (!strcmp(s, "run") && !strcmp(k, "out")) snprintf(val, sizeof val, "%s", out);
            if (!strcmp(s, "run") && !strcmp(k, "per_example")) snprintf(val, sizeof val, "0");
            args[na++] = "--set";
            snprintf(sets[na], sizeof sets[na], "%s.%s=%s", s, k, val);
            args[na] = sets[na];
            na++;
        }
        if (threads) {
            args[na++] = "--threads";
            args[na++] = (char *)threads;
        }
        args[na++] = "--quiet";
        args[na++] = "--overwrite"; /* the plan file was just rewritten: its old evaluation is not this one */
        if ((rc = cmd_eval(na, args)) != 0) break;
        char rpath[4400];
        snprintf(rpath, sizeof rpath, "%s/results.json", out);
        cJSON *pr = load_json(rpath, &err);
        const cJSON *mem = pr ? cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pr, "members"), 0) : NULL;
        if (!mem) {
            cJSON_Delete(pr);
            rc = fail(&err);
            break;
        }
        if (!plans) plans = cJSON_AddArrayToObject(frontier, "plans");
        cJSON *e = cJSON_CreateObject();
        char   ci_key[64];
        snprintf(ci_key, sizeof ci_key, "%s_ci95", metric);
        cJSON_AddNumberToObject(e, "budget", budgets[b]);
        cJSON_AddNumberToObject(e, "flops_fraction", jnum(mem, "kept_fraction")); /* measured on the data */
        cJSON_AddNumberToObject(e, "planned_flops_fraction", p.flops_fraction);
        cJSON_AddNumberToObject(e, "value", jnum(mem, metric));
        cJSON_AddItemToObject(e, "ci95", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(mem, ci_key), 1));
        cJSON_AddNumberToObject(e, "heads_kept", kept);
        snprintf(ppath, sizeof ppath, "plan_%g.json", budgets[b]);
        cJSON_AddStringToObject(e, "plan", ppath);
        cJSON_AddItemToArray(plans, e);
        if (!quiet)
            fprintf(stderr, "  evaluated: %s %.5f, attention FLOPs %.3f of dense (measured)\n", metric, jnum(mem, metric),
                    jnum(mem, "kept_fraction"));
        cJSON_Delete(pr);
    }
    if (!rc && evaluate) {
        char ci_key[64];
        snprintf(ci_key, sizeof ci_key, "%s_ci95", metric);
        cJSON *d = cJSON_AddObjectToObject(frontier, "dense");
        cJSON_AddNumberToObject(d, "flops_fraction", 1.0);
        cJSON_AddNumberToObject(d, "value", jnum(dense, metric));
        cJSON_AddItemToObject(d, "ci95", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(dense, ci_key), 1));
        cJSON *samples = cJSON_AddArrayToObject(frontier, "samples");
        const cJSON *mems = cJSON_GetObjectItemCaseSensitive(res, "members"), *mm;
        const cJSON *pw = cJSON_GetObjectItemCaseSensitive(cfg, "pathways");
        int k = 0;
        cJSON_ArrayForEach(mm, mems) {
            cJSON *e = cJSON_CreateObject();
            char   label[160];
            snprintf(label, sizeof label, "%s rho=%g member %d",
                     cJSON_GetObjectItemCaseSensitive(pw, "scheme")->valuestring, jnum(pw, "ratio"), k++);
            cJSON_AddStringToObject(e, "label", label);
            cJSON_AddNumberToObject(e, "flops_fraction", jnum(mm, "kept_fraction"));
            cJSON_AddNumberToObject(e, "value", jnum(mm, metric));
            cJSON_AddItemToArray(samples, e);
        }
        char *text = cJSON_Print(frontier);
        snprintf(path, sizeof path, "%s/frontier.json", dir);
        char tidy[4400];
        if (pe_write_file_atomic(path, text, strlen(text), &err)) rc = fail(&err);
        else if (!quiet) fprintf(stderr, "wrote %s\n", pe_path_tidy(path, tidy, sizeof tidy));
        free(text);
    }
    cJSON_Delete(frontier);
    cJSON_Delete(res);
    plan_free(&p);
    return rc;
}
