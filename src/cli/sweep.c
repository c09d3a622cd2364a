/* sweep.c: `pathens sweep SWEEP.ini`: the grid of evaluations an ablation study needs.
 *
 * SWEEP.ini is an eval config in which any value may be a comma-separated list; the grid is the
 * product of the lists (the last listed key varies fastest). Point i runs in
 * <run.out>/<hash>/ (hash: 12 hex digits of the point's resolved config without run.out), with
 * config.json (its resolved config), the usual outputs and journal, and DONE once results.json is
 * complete (FAILED with the exit code if it failed; nothing after a checkpoint, exit 75).
 * A list may go on over several lines (indented continuation lines, or the key repeated): the
 * values are appended. Every point's config is built once per command (the file paths made
 * canonical once per distinct path), so --status and --aggregate of 10,000 points take about a
 * second (docs/performance.md). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <ini.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "config.h"
#include "report.h"
#ifdef PATHENS_WITH_MPI
#include "dist.h"
#endif

#define SWEEP_MAX_ENTRIES 256
#define SWEEP_MAX_VALUES 100000
#define SWEEP_MAX_LINE 199 /* Debian's libinih reads lines of at most INI_MAX_LINE - 1 = 199 characters */

typedef struct {
    char   section[32];
    char   key[64];
    char **values; /* (n) */
    int    n, cap;
} sweep_entry;

typedef struct {
    char        path[4096];
    sweep_entry e[SWEEP_MAX_ENTRIES];
    int         n;
    pe_err     *err;
    pe_status   st;
} sweep_spec;

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = '\0';
    return s;
}

static int sweep_push_value(sweep_spec *sp, sweep_entry *e, const char *v) {
    if (e->n == SWEEP_MAX_VALUES) {
        sp->st = pe_fail(sp->err, PE_ERR_INPUT, "%s: [%s] %s has more than %d values", sp->path, e->section, e->key,
                         SWEEP_MAX_VALUES);
        return 0;
    }
    if (e->n == e->cap) {
        int    c = e->cap ? 2 * e->cap : 8;
        char **vs = realloc(e->values, (size_t)c * sizeof *vs);
        if (!vs) {
            sp->st = pe_fail(sp->err, PE_ERR_INTERNAL, "out of memory reading %s", sp->path);
            return 0;
        }
        e->values = vs;
        e->cap = c;
    }
    e->values[e->n] = strdup(v);
    if (!e->values[e->n]) {
        sp->st = pe_fail(sp->err, PE_ERR_INTERNAL, "out of memory reading %s", sp->path);
        return 0;
    }
    e->n++;
    return 1;
}

/* one key = value line; the same key again (an indented continuation line, which inih passes as
 * the key once more, or the key repeated) appends its values to the list */
static int sweep_handler(void *user, const char *section, const char *name, const char *value) {
    sweep_spec *sp = user;
    if (sp->st) return 0;
    sweep_entry *e = NULL;
    for (int i = 0; i < sp->n && !e; i++)
        if (!strcmp(sp->e[i].section, section) && !strcmp(sp->e[i].key, name)) e = &sp->e[i];
    int cont = e != NULL;
    if (!e) {
        if (sp->n == SWEEP_MAX_ENTRIES) {
            sp->st = pe_fail(sp->err, PE_ERR_INPUT, "%s: more than %d keys", sp->path, SWEEP_MAX_ENTRIES);
            return 0;
        }
        e = &sp->e[sp->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->section, sizeof e->section, "%s", section);
        snprintf(e->key, sizeof e->key, "%s", name);
    }
    char *copy = strdup(value), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && !sp->st; tok = strtok_r(NULL, ",", &save))
        sweep_push_value(sp, e, trim(tok));
    if (!cont && e->n == 0) sweep_push_value(sp, e, "");
    free(copy);
    return sp->st ? 0 : 1;
}

/* libinih cuts a line longer than SWEEP_MAX_LINE and reads the rest as another line: refuse it */
static pe_status sweep_check_lines(const char *path, pe_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return PE_OK; /* ini_parse says it */
    long line = 1, len = 0;
    int  c;
    while ((c = getc(f)) != EOF) {
        if (c == '\n') {
            line++;
            len = 0;
        } else if (++len > SWEEP_MAX_LINE) {
            fclose(f);
            return pe_fail(err, PE_ERR_INPUT, "%s: line %ld is longer than %d characters, the most the INI reader "
                           "takes; go on with the list on the next line, indented (a line 'ratio = 1, 2, 3,' then a line "
                           "'    4, 5')",
                           path, line, SWEEP_MAX_LINE);
        }
    }
    fclose(f);
    return PE_OK;
}

static void sweep_free(sweep_spec *sp) {
    for (int i = 0; i < sp->n; i++) {
        for (int v = 0; v < sp->e[i].n; v++) free(sp->e[i].values[v]);
        free(sp->e[i].values);
    }
    sp->n = 0;
}

/* the most points one sweep may have: every point is validated up front and gets a folder */
#define SWEEP_MAX_POINTS 1000000L

/* points of the grid (the product of the value counts), or -1 past SWEEP_MAX_POINTS */
static long sweep_points(const sweep_spec *sp) {
    long n = 1;
    for (int i = 0; i < sp->n; i++) {
        if (sp->e[i].n > SWEEP_MAX_POINTS / n) return -1; /* n * count would pass the cap (no overflow) */
        n *= sp->e[i].n;
    }
    return n;
}

/* the value index of entry j for point p (mixed radix, the last entry fastest) */
static int sweep_digit(const sweep_spec *sp, long p, int j) {
    for (int i = sp->n - 1; i > j; i--) p /= sp->e[i].n;
    return (int)(p % sp->e[j].n);
}

/* realpath of the few distinct file names of a sweep, each resolved once per command */
#define SWEEP_RP_CACHE 64
static struct {
    char *in, *out; /* out NULL: realpath failed (the name is kept as it is) */
} sweep_rp[SWEEP_RP_CACHE];
static int sweep_rp_n;

static const char *sweep_realpath(const char *in) {
    for (int i = 0; i < sweep_rp_n; i++)
        if (!strcmp(sweep_rp[i].in, in)) return sweep_rp[i].out;
    static char rp[PATH_MAX];
    if (sweep_rp_n == SWEEP_RP_CACHE) return realpath(in, rp); /* a sweep over many files: past 64, uncached */
    const char *res = realpath(in, rp);
    char       *key = strdup(in), *out = res ? strdup(res) : NULL;
    if (!key || (res && !out)) { /* out of memory: the answer, uncached */
        free(key), free(out);
        return res;
    }
    sweep_rp[sweep_rp_n].in  = key;
    sweep_rp[sweep_rp_n].out = out;
    return sweep_rp[sweep_rp_n++].out;
}

static void sweep_realpath_free(void) {
    for (int i = 0; i < sweep_rp_n; i++) {
        free(sweep_rp[i].in);
        free(sweep_rp[i].out);
    }
    sweep_rp_n = 0;
}

/* resolved config of point p; dir gets <out>/<hash> */
static pe_status sweep_point_config(pe_config *c, char *dir, size_t dirlen, const sweep_spec *sp, long p, int argc,
                                    char **argv, pe_err *err) {
    cfg_init_defaults(c);
    for (int j = 0; j < sp->n; j++) {
        const sweep_entry *e = &sp->e[j];
        pe_status st = cfg_apply_value(c, e->section, e->key, e->values[sweep_digit(sp, p, j)], sp->path, err);
        if (st) return st;
    }
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            pe_status st = cfg_apply_set(c, argv[++i], err);
            if (st) return st;
        }
    char base[CFG_PATH_MAX];
    snprintf(base, sizeof base, "%s", c->run_out);
    /* the folder name hashes the config with every file path made canonical (realpath), so the
     * same sweep spelled from another folder or with another path finds the same points */
    pe_config canon = *c;
    char *paths[] = {canon.model_path, canon.model_tokenizer, canon.model_config, canon.data_path, canon.data_labels,
                     canon.pw_plan};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        const char *rp = paths[i][0] && strcmp(paths[i], "bytes") && strcmp(paths[i], "none") && strcmp(paths[i], "auto")
                             ? sweep_realpath(paths[i])
                             : NULL;
        if (rp) snprintf(paths[i], CFG_PATH_MAX, "%s", rp);
    }
    canon.run_out[0] = '\0';
    cJSON *j = cfg_to_json(&canon);
    char  *t = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    uint64_t h = pe_hash_str(t);
    free(t);
    if (strlen(base) + 14 >= dirlen || strlen(base) + 14 >= sizeof c->run_out)
        return pe_fail(err, PE_ERR_INPUT, "%s: run.out '%s' is too long for a sweep", sp->path, base);
    snprintf(dir, dirlen, "%.4000s/%012llx", base, (unsigned long long)(h & 0xffffffffffffULL));
    snprintf(c->run_out, sizeof c->run_out, "%s", dir);
    return cfg_validate(c, err);
}

/* SIGINT / SIGTERM / SIGUSR1 / SIGUSR2 while points run: the point in progress stops as pathens eval
 * stops (journal, exit 75) or, when it finishes anyway, the sweep stops before the next point
 * (exit 75) instead of going on with the rest of its range (a preempted array task would run until
 * its time limit kills it). eval installs its own handlers while it runs and passes the signal on. */
static volatile sig_atomic_t sweep_stop = 0;
static void sweep_on_signal(int sig) { sweep_stop = sig; }

static int file_exists(const char *dir, const char *name) {
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static void write_marker(const char *dir, const char *name, const char *text) {
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    pe_write_file_atomic(p, text, strlen(text), NULL);
}

static void remove_marker(const char *dir, const char *name) {
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unlink(p);
}

static void help_sweep(FILE *f) {
    fprintf(f,
            "usage: pathens sweep SWEEP.ini [--set section.key=value ...] [--index I|A-B | --count | --status |\n"
            "                     --aggregate] [--threads N] [--quiet]\n\n"
            "SWEEP.ini is an eval config in which any value may be a comma-separated list\n"
            "(ratio = 1, 2, 4, 8; scheme = unbiased, local); the grid is the product of the lists, the last\n"
            "listed key varying fastest. Point I runs in <run.out>/<hash>/ with config.json, the eval outputs\n"
            "and a DONE marker once results.json is complete.\n\n"
            "  (no mode)     run every point in order, skipping finished ones, resuming interrupted ones\n"
            "  --index I     run only point I (0-based; for job arrays: --index $SLURM_ARRAY_TASK_ID)\n"
            "  --index A-B   run points A to B in order (B past the last point: up to the last one);\n"
            "                jobs/submit-sweep.sh --points-per-task K gives each array task such a range\n"
            "  --count       print the number of points\n"
            "  --status      census: done / running / failed / missing, with their indices\n"
            "  --aggregate   collect the finished points into <run.out>/sweep.csv, sweep.json and\n"
            "                sweep_report.html (metric vs ratio per scheme, ensemble - dense vs K); the\n"
            "                column ensemble_minus_dense is the paired difference ensemble - dense of the\n"
            "                metric (NLL: < 0 means the ensemble is better; accuracy: > 0 means it is)\n"
            "  --set section.key=value  override a key for every point (give the same to --status and\n"
            "                --aggregate: it changes the points' folders)\n"
            "  --threads N   threads per rank (default: $OPENBLAS_NUM_THREADS, else 1); the same numbers for any N\n"
            "  --quiet       no start-up lines or summaries on stderr\n\n"
            "Keys: those of pathens eval --help ([model], [data], [run], [pathways], [importance]);\n"
            "docs/sweeps.md.\n\n"
            "example (from the repository root; the 18-point grid of docs/sweeps.md, one point here):\n"
            "  pathens sweep configs/sweep-stories260k.ini --count\n"
            "  pathens sweep configs/sweep-stories260k.ini --index 0\n"
            "  pathens sweep configs/sweep-stories260k.ini --aggregate\n\n"
            "exit codes: as pathens eval (75: a point was checkpointed after a signal; rerun to resume);\n"
            "--status exits 0 when every point is done, 1 otherwise.\n");
}

static cJSON *load_json_file(const char *path) {
    char *text = NULL;
    if (pe_read_file(path, &text, NULL, NULL)) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

static double jget(const cJSON *o, const char *a, const char *b) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static double jci(const cJSON *o, const char *a, const char *key, int i) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, a), key);
    x = cJSON_GetArrayItem(x, i);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static int sweep_aggregate(const sweep_spec *sp, char *const *dirs, const char *base_out, pe_err *err) {
    long   np = sweep_points(sp);
    cJSON *rows = cJSON_CreateArray();
    char  *csv = NULL;
    size_t csvlen = 0;
    FILE  *cf = open_memstream(&csv, &csvlen);
    if (!cf) {
        cJSON_Delete(rows);
        return pe_fail(err, PE_ERR_INTERNAL, "out of memory writing sweep.csv");
    }
    fprintf(cf, "index,dir");
    for (int j = 0; j < sp->n; j++)
        if (sp->e[j].n > 1) fprintf(cf, ",%s.%s", sp->e[j].section, sp->e[j].key);
    fprintf(cf, ",metric,members,dense,dense_lo,dense_hi,member_mean,ensemble,ensemble_lo,ensemble_hi,"
                "ensemble_minus_dense,ensemble_minus_dense_lo,ensemble_minus_dense_hi,kept_fraction\n");
    int n_done = 0;
    for (long p = 0; p < np; p++) {
        const char *dir = dirs[p];
        if (!file_exists(dir, "DONE")) continue;
        char rp[4400];
        snprintf(rp, sizeof rp, "%s/results.json", dir);
        cJSON *r = load_json_file(rp);
        if (!r) continue;
        n_done++;
        int lm = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "dense"), "nll_per_token") != NULL;
        const char *metric = lm ? "nll_per_token" : "accuracy";
        char ci[64];
        snprintf(ci, sizeof ci, "%s_ci95", metric);
        const cJSON *mem = cJSON_GetObjectItemCaseSensitive(r, "members");
        int K = cJSON_GetArraySize(mem);
        double kept = 0.0;
        const cJSON *mm;
        cJSON_ArrayForEach(mm, mem) kept += jget(mm, "kept_fraction", NULL) / K;
        const char *gk = lm ? "minus_dense" : "accuracy_minus_dense";
        const cJSON *gain = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "ensemble"), gk);
        cJSON *row = cJSON_CreateObject(), *params = cJSON_AddObjectToObject(row, "params"), *mt;
        cJSON_AddNumberToObject(row, "index", (double)p);
        const char *slash = strrchr(dir, '/');
        cJSON_AddStringToObject(row, "dir", slash ? slash + 1 : dir);
        fprintf(cf, "%ld,%s", p, slash ? slash + 1 : dir);
        for (int j = 0; j < sp->n; j++) {
            if (sp->e[j].n < 2) continue;
            char key[128];
            snprintf(key, sizeof key, "%s.%s", sp->e[j].section, sp->e[j].key);
            const char *v = sp->e[j].values[sweep_digit(sp, p, j)];
            cJSON_AddStringToObject(params, key, v);
            fprintf(cf, ",%s", v);
        }
        mt = cJSON_AddObjectToObject(row, "metrics");
        cJSON_AddStringToObject(mt, "metric", metric);
        cJSON_AddNumberToObject(mt, "members", K);
        double dv = jget(r, "dense", metric), dl = jci(r, "dense", ci, 0), dh = jci(r, "dense", ci, 1);
        double ev = K ? jget(r, "ensemble", metric) : NAN, el = K ? jci(r, "ensemble", ci, 0) : NAN,
               eh = K ? jci(r, "ensemble", ci, 1) : NAN;
        double mmv = K && lm ? jget(r, "member_mean", metric) : NAN;
        if (K && !lm) { /* classifiers: mean member accuracy */
            mmv = 0.0;
            cJSON_ArrayForEach(mm, mem) mmv += jget(mm, "accuracy", NULL) / K;
        }
        double gv = gain ? jget(gain, "mean", NULL) : NAN;
        const cJSON *gci = gain ? cJSON_GetObjectItemCaseSensitive(gain, "ci95") : NULL;
        const cJSON *g0 = cJSON_GetArrayItem(gci, 0), *g1 = cJSON_GetArrayItem(gci, 1); /* NULL-safe: any ci95 */
        double gl = cJSON_IsNumber(g0) ? g0->valuedouble : NAN, gh = cJSON_IsNumber(g1) ? g1->valuedouble : NAN;
#define NUM(o, k, x) (isfinite(x) ? cJSON_AddNumberToObject(o, k, x) : cJSON_AddNullToObject(o, k))
        NUM(mt, "dense", dv);
        cJSON *a = cJSON_AddArrayToObject(mt, "dense_ci95");
        cJSON_AddItemToArray(a, isfinite(dl) ? cJSON_CreateNumber(dl) : cJSON_CreateNull());
        cJSON_AddItemToArray(a, isfinite(dh) ? cJSON_CreateNumber(dh) : cJSON_CreateNull());
        NUM(mt, "member_mean", mmv);
        NUM(mt, "ensemble", ev);
        a = cJSON_AddArrayToObject(mt, "ensemble_ci95");
        cJSON_AddItemToArray(a, isfinite(el) ? cJSON_CreateNumber(el) : cJSON_CreateNull());
        cJSON_AddItemToArray(a, isfinite(eh) ? cJSON_CreateNumber(eh) : cJSON_CreateNull());
        NUM(mt, "ensemble_minus_dense", gv);
        a = cJSON_AddArrayToObject(mt, "ensemble_minus_dense_ci95");
        cJSON_AddItemToArray(a, isfinite(gl) ? cJSON_CreateNumber(gl) : cJSON_CreateNull());
        cJSON_AddItemToArray(a, isfinite(gh) ? cJSON_CreateNumber(gh) : cJSON_CreateNull());
        NUM(mt, "kept_fraction", K ? kept : NAN);
#undef NUM
        fprintf(cf, ",%s,%d", metric, K);
        const double cells[] = {dv, dl, dh, mmv, ev, el, eh, gv, gl, gh, K ? kept : NAN};
        for (size_t c = 0; c < sizeof cells / sizeof cells[0]; c++) /* a missing value is an empty cell */
            if (isfinite(cells[c])) fprintf(cf, ",%.17g", cells[c]);
            else fputc(',', cf);
        fputc('\n', cf);
        cJSON_AddItemToArray(rows, row);
        cJSON_Delete(r);
    }
    fclose(cf);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "sweep", sp->path);
    cJSON_AddNumberToObject(root, "points", (double)np);
    cJSON_AddNumberToObject(root, "done", n_done);
    cJSON_AddItemToObject(root, "rows", rows);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    char path[4400];
    int  rc = 0;
    snprintf(path, sizeof path, "%s/sweep.json", base_out);
    if (pe_write_file_atomic(path, text, strlen(text), err)) rc = err->code;
    snprintf(path, sizeof path, "%s/sweep.csv", base_out);
    if (!rc && pe_write_file_atomic(path, csv, csvlen, err)) rc = err->code;
    free(text);
    free(csv);
    if (!rc) {
        snprintf(path, sizeof path, "%s/sweep_report.html", base_out);
        if (report_write_sweep(base_out, path, err)) rc = err->code;
    }
    char tidy[CFG_PATH_MAX];
    if (!rc) fprintf(stderr, "aggregated %d of %ld points into %s/sweep.csv, sweep.json, sweep_report.html\n", n_done, np,
                     pe_path_tidy(base_out, tidy, sizeof tidy));
    return rc;
}

int cmd_sweep(int argc, char **argv) {
    const char *ini = NULL;
    long index = -1, index_last = -1;
    int  count = 0, status = 0, aggregate = 0, quiet = 0, threads = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help_sweep(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            i++;
        } else if (!strcmp(argv[i], "--index") && i + 1 < argc) {
            char *e;
            index = strtol(argv[++i], &e, 10);
            if (*e == '-' && e != argv[i]) { /* a range A-B */
                char *e2;
                index_last = strtol(e + 1, &e2, 10);
                if (*e2 || e2 == e + 1 || index_last < index)
                    return cli_usage_error("sweep", "--index needs a point number >= 0 or a range A-B with A <= B, not '%s'", argv[i]);
                e = e2;
            }
            if (*e || e == argv[i] || index < 0)
                return cli_usage_error("sweep", "--index needs a point number >= 0 or a range A-B with A <= B, not '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            char *e;
            long  t = strtol(argv[++i], &e, 10);
            if (*e || e == argv[i] || t < 1 || t > 1024) return cli_usage_error("sweep", "--threads needs an integer in [1, 1024], not '%s'", argv[i]);
            threads = (int)t;
        } else if (!strcmp(argv[i], "--count")) count = 1;
        else if (!strcmp(argv[i], "--status")) status = 1;
        else if (!strcmp(argv[i], "--aggregate")) aggregate = 1;
        else if (!strcmp(argv[i], "--quiet")) quiet = 1;
        else if (!strcmp(argv[i], "--set") || !strcmp(argv[i], "--index") || !strcmp(argv[i], "--threads"))
            return cli_usage_error("sweep", "%s needs a value", argv[i]);
        else if (argv[i][0] == '-') return cli_usage_error("sweep", "unknown option '%s'", argv[i]);
        else if (!ini) ini = argv[i];
        else return cli_usage_error("sweep", "one SWEEP.ini at a time ('%s' too)", argv[i]);
    }
    if (!ini) return cli_usage_error("sweep", "missing SWEEP.ini");
    if (count + status + aggregate + (index >= 0) > 1)
        return cli_usage_error("sweep", "at most one of --index, --count, --status, --aggregate");
    pe_err err = {0};
    static sweep_spec sp;
    memset(&sp, 0, sizeof sp);
    snprintf(sp.path, sizeof sp.path, "%s", ini);
    sp.err = &err;
    int r = sweep_check_lines(ini, &err) ? -2 : ini_parse(ini, sweep_handler, &sp);
    if (r != 0 || sp.st) {
        if (!sp.st && r != -2) pe_fail(&err, PE_ERR_INPUT, "%s: %s (line %d)", ini, r < 0 ? "cannot open" : "syntax error", r);
        if (cli_rank() == 0) fprintf(stderr, "pathens: error: %s\n", err.msg);
        sweep_free(&sp);
        return PE_ERR_INPUT;
    }
    long np = sweep_points(&sp);
    if (np < 0) {
        if (cli_rank() == 0)
            fprintf(stderr, "pathens: error: %s: the grid has more than %ld points (the product of the value counts of "
                    "its %d keys); split it into several sweep files\n", ini, SWEEP_MAX_POINTS, sp.n);
        sweep_free(&sp);
        return PE_ERR_INPUT;
    }
    int  rc = 0;
    /* every point's config, validated up front (a typo fails now, not in point 37); its folder kept.
     * --index builds only its own points (an array task of a 10,000-point sweep need not build them
     * all: submit-sweep.sh has checked them with --count) */
    pe_config c;
    char      dir[CFG_PATH_MAX];
    char    **dirs = calloc((size_t)np, sizeof *dirs);
    long      v0 = 0, v1 = np - 1; /* the points this command builds: --index A[-B] (B past the end: the last) */
    if (index >= 0) v0 = index, v1 = index_last >= 0 ? (index_last < np ? index_last : np - 1) : index;
    if (index >= np)
        rc = cli_usage_error("sweep", "--index %ld but the sweep has %ld points (0..%ld)", index, np, np - 1);
    else if (!dirs) rc = pe_fail(&err, PE_ERR_INTERNAL, "out of memory listing %ld sweep points", np);
    for (long p = v0; p <= v1 && !rc; p++) {
        if (sweep_point_config(&c, dir, sizeof dir, &sp, p, argc, argv, &err)) {
            if (cli_rank() == 0) fprintf(stderr, "pathens: error: sweep point %ld: %s\n", p, err.msg);
            rc = err.code;
        } else if (!(dirs[p] = strdup(dir))) {
            rc = pe_fail(&err, PE_ERR_INTERNAL, "out of memory listing %ld sweep points", np);
        }
    }
    char base[CFG_PATH_MAX];
    if (!rc) {
        const char *sl = strrchr(dir, '/');
        snprintf(base, sizeof base, "%.*s", sl ? (int)(sl - dir) : 1, sl ? dir : ".");
    }
    if (rc) {
    } else if (count) {
        if (cli_rank() == 0) printf("%ld\n", np);
    } else if (status) {
        if (cli_rank() == 0) {
            char  *lists[4] = {NULL};
            size_t lens[4]  = {0};
            FILE  *lf[4];
            long   counts[4] = {0};
            const char *names[4] = {"done", "running", "failed", "missing"};
            int    lf_ok = 1;
            for (int k = 0; k < 4; k++) lf_ok &= (lf[k] = open_memstream(&lists[k], &lens[k])) != NULL;
            if (!lf_ok) { /* out of memory: say so, list nothing */
                for (int k = 0; k < 4; k++) {
                    if (lf[k]) fclose(lf[k]);
                    free(lists[k]);
                }
                fprintf(stderr, "pathens: error: out of memory listing %ld sweep points\n", np);
                rc = PE_ERR_INTERNAL;
            } else {
                for (long p = 0; p < np; p++) {
                    const char *d = dirs[p];
                    int k = 3;
                    if (file_exists(d, "DONE")) {
                        k = 0;
                    } else {
                        char pidp[4400], *pidt = NULL;
                        snprintf(pidp, sizeof pidp, "%s/coordinator.pid", d);
                        if (pe_read_file(pidp, &pidt, NULL, NULL) == PE_OK && atol(pidt) > 0 && kill((pid_t)atol(pidt), 0) == 0) k = 1;
                        else if (file_exists(d, "FAILED")) k = 2;
                        free(pidt);
                    }
                    fprintf(lf[k], "%s%ld%s", counts[k] ? " " : "", p,
                            k == 3 && file_exists(d, "journal.msgpack") ? "(partial)" : "");
                    counts[k]++;
                }
                printf("sweep %s: %ld points\n", ini, np);
                for (int k = 0; k < 4; k++) {
                    fclose(lf[k]);
                    printf("%-8s %4ld  %s\n", names[k], counts[k], lists[k] ? lists[k] : "");
                    free(lists[k]);
                }
                rc = counts[0] == np ? 0 : 1;
            }
        }
    } else if (aggregate) {
        if (cli_rank() == 0) rc = sweep_aggregate(&sp, dirs, base, &err);
    } else {
        long first = v0, last = v1; /* built and checked above */
        struct sigaction sa, old_sig[4];
        const int        sigs[4] = {SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = sweep_on_signal;
        sigemptyset(&sa.sa_mask);
        sweep_stop = 0;
        for (int k = 0; k < 4; k++) {
            sigaction(sigs[k], NULL, &old_sig[k]);
            if (old_sig[k].sa_handler != SIG_IGN) sigaction(sigs[k], &sa, NULL); /* ignored stays ignored */
        }
        long stopped_after = -1;
        for (long p = first; p <= last && !rc; p++) {
            if (sweep_point_config(&c, dir, sizeof dir, &sp, p, argc, argv, &err)) { /* passed above: cannot, but never run half a config */
                if (cli_rank() == 0) fprintf(stderr, "pathens: error: sweep point %ld: %s\n", p, err.msg);
                rc = err.code;
                break;
            }
            if (file_exists(dir, "DONE")) {
                char tidy[CFG_PATH_MAX];
                if (!quiet && cli_rank() == 0)
                    fprintf(stderr, "sweep point %ld (%s): done already\n", p, pe_path_tidy(dir, tidy, sizeof tidy));
                continue;
            }
            if (cli_rank() == 0) {
                if (pe_mkdir_p(dir, &err)) {
                    fprintf(stderr, "pathens: error: %s\n", err.msg);
                    rc = err.code;
                    break;
                }
                cJSON *j = cfg_to_json(&c);
                char  *t = cJSON_Print(j), cp[4400];
                cJSON_Delete(j);
                snprintf(cp, sizeof cp, "%s/config.json", dir);
                pe_write_file_atomic(cp, t, strlen(t), NULL);
                free(t);
                remove_marker(dir, "FAILED");
                char tidy[CFG_PATH_MAX];
                if (!quiet) fprintf(stderr, "sweep point %ld of %ld: %s\n", p, np, pe_path_tidy(dir, tidy, sizeof tidy));
            }
            int erc = eval_config(&c, threads, quiet);
            if (cli_rank() == 0) {
                if (erc == 0) write_marker(dir, "DONE", "done\n");
                else if (erc != PE_ERR_CHECKPOINT) {
                    char t[32];
                    snprintf(t, sizeof t, "exit %d\n", erc);
                    write_marker(dir, "FAILED", t);
                }
            }
            rc = erc;
            int stop = sweep_stop; /* every rank follows rank 0 */
#ifdef PATHENS_WITH_MPI
            if (cli_size() > 1) dist_bcast_int(&stop);
#endif
            if (!rc && stop && p < last) {
                stopped_after = p;
                rc = PE_ERR_CHECKPOINT;
            }
        }
        for (int k = 0; k < 4; k++) sigaction(sigs[k], &old_sig[k], NULL);
        if (stopped_after >= 0 && cli_rank() == 0)
            fprintf(stderr, "pathens sweep: stopped by a signal after point %ld (done); points %ld to %ld are left: "
                    "rerun the same command to do them; exit 75\n", stopped_after, stopped_after + 1, last);
    }
    for (long p = 0; dirs && p < np; p++) free(dirs[p]);
    free(dirs);
    sweep_realpath_free();
    sweep_free(&sp);
    return rc;
}
