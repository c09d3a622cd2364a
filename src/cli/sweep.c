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
#include <cblas.h>
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
#include "train.h"
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

#define SWEEP_MAX_EVAL_KEYS 64

typedef struct {
    char        path[4096];
    sweep_entry e[SWEEP_MAX_ENTRIES];
    int         n;
    /* sweep.kind = train (docs/sweeps.md, "Training sweeps"): each point trains, then evaluates */
    int         train;
    char        dense_scheme[16];           /* sweep.dense_scheme: the self-ensemble of a dense-trained point */
    sweep_entry ev[SWEEP_MAX_EVAL_KEYS];    /* [eval.<section>] keys (section without "eval."), one value each */
    int         nev;
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
static int sweep_handler_special(sweep_spec *sp, const char *section, const char *name, const char *value);

static int sweep_handler(void *user, const char *section, const char *name, const char *value) {
    sweep_spec *sp = user;
    if (sp->st) return 0;
    if (!strcmp(section, "sweep") || !strncmp(section, "eval.", 5)) return sweep_handler_special(sp, section, name, value);
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

/* [sweep] (kind, dense_scheme) and [eval.<section>] (the evaluation of a training sweep's points):
 * one value each, never a grid axis */
static int sweep_handler_special(sweep_spec *sp, const char *section, const char *name, const char *value) {
    int is_sweep = !strcmp(section, "sweep");
    if (strchr(value, ',')) {
        sp->st = pe_fail(sp->err, PE_ERR_INPUT, "%s: [%s] %s = '%s': a list is not allowed here; [sweep] and [eval.*] "
                         "keys take one value for every point (grid axes go in the other sections)", sp->path, section,
                         name, value);
        return 0;
    }
    if (is_sweep) {
        if (!strcmp(name, "kind")) {
            if (strcmp(value, "eval") && strcmp(value, "train")) {
                sp->st = pe_fail(sp->err, PE_ERR_INPUT, "%s: [sweep] kind = '%s' is not allowed; choose one of: eval "
                                 "(the points are evaluations), train (each point trains a model, then evaluates it)",
                                 sp->path, value);
                return 0;
            }
            sp->train = !strcmp(value, "train");
        } else if (!strcmp(name, "dense_scheme")) {
            static const char *const ok[] = {"unbiased", "local", "random-k", "window", "head-drop"};
            int found = 0;
            for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) found |= !strcmp(value, ok[i]);
            if (!found) {
                sp->st = pe_fail(sp->err, PE_ERR_INPUT, "%s: [sweep] dense_scheme = '%s' is not allowed; choose a "
                                 "sampling scheme: unbiased, local, random-k, window, head-drop", sp->path, value);
                return 0;
            }
            snprintf(sp->dense_scheme, sizeof sp->dense_scheme, "%s", value);
        } else {
            sp->st = pe_fail(sp->err, PE_ERR_INPUT, "%s: unknown key '%s' in section [sweep]; known keys: kind, "
                             "dense_scheme", sp->path, name);
            return 0;
        }
        return 1;
    }
    const char *sec = section + 5;
    if (strcmp(sec, "model") && strcmp(sec, "data") && strcmp(sec, "run") && strcmp(sec, "pathways") &&
        strcmp(sec, "importance")) {
        sp->st = pe_fail(sp->err, PE_ERR_INPUT, "%s: unknown section [%s]; the evaluation sections are [eval.model], "
                         "[eval.data], [eval.run], [eval.pathways], [eval.importance]", sp->path, section);
        return 0;
    }
    if ((!strcmp(sec, "model") && (!strcmp(name, "path") || !strcmp(name, "config"))) ||
        (!strcmp(sec, "run") && !strcmp(name, "out"))) {
        sp->st = pe_fail(sp->err, PE_ERR_INPUT, "%s: [%s] %s cannot be set: a training sweep evaluates each point's "
                         "own model (<point>/train/model.safetensors) into <point>/eval/; remove the key",
                         sp->path, section, name);
        return 0;
    }
    for (int i = 0; i < sp->nev; i++)
        if (!strcmp(sp->ev[i].section, sec) && !strcmp(sp->ev[i].key, name)) {
            sp->st = pe_fail(sp->err, PE_ERR_INPUT, "%s: [%s] %s is given twice (or continued on another line): "
                             "[eval.*] keys take one value for every point", sp->path, section, name);
            return 0;
        }
    if (sp->nev == SWEEP_MAX_EVAL_KEYS) {
        sp->st = pe_fail(sp->err, PE_ERR_INPUT, "%s: more than %d [eval.*] keys", sp->path, SWEEP_MAX_EVAL_KEYS);
        return 0;
    }
    sweep_entry *e = &sp->ev[sp->nev++];
    memset(e, 0, sizeof *e);
    snprintf(e->section, sizeof e->section, "%s", sec);
    snprintf(e->key, sizeof e->key, "%s", name);
    return sweep_push_value(sp, e, value);
}

/* the keys of a training sweep that only the evaluation reads: refused in the grid sections */
static int sweep_eval_only_key(const char *section, const char *key) {
    if (!strcmp(section, "importance")) return 1;
    if (!strcmp(section, "run")) return strcmp(key, "out") != 0;
    if (!strcmp(section, "pathways")) return !strcmp(key, "members") || !strcmp(key, "combine") || !strcmp(key, "plan");
    return 0;
}

/* combinations a sweep file cannot mean: exit 2 naming the key */
static pe_status sweep_check_kind(const sweep_spec *sp, pe_err *err) {
    if (sp->train) {
        int have_data = 0;
        for (int i = 0; i < sp->nev; i++) have_data |= !strcmp(sp->ev[i].section, "data") && !strcmp(sp->ev[i].key, "path");
        if (!have_data)
            return pe_fail(err, PE_ERR_INPUT, "%s: [sweep] kind = train needs the test data each trained model is "
                           "evaluated on: add [eval.data] path = FILE (and e.g. span, mode, context under [eval.data])",
                           sp->path);
        for (int i = 0; i < sp->n; i++)
            if (sweep_eval_only_key(sp->e[i].section, sp->e[i].key))
                return pe_fail(err, PE_ERR_INPUT, "%s: [%s] %s is an evaluation key, which training does not read: in a "
                               "[sweep] kind = train sweep put it under [eval.%s] (one value for every point)", sp->path,
                               sp->e[i].section, sp->e[i].key, sp->e[i].section);
        return PE_OK;
    }
    if (sp->nev)
        return pe_fail(err, PE_ERR_INPUT, "%s: [eval.%s] %s is for training sweeps: add [sweep] kind = train, or move "
                       "the key to [%s]", sp->path, sp->ev[0].section, sp->ev[0].key, sp->ev[0].section);
    if (sp->dense_scheme[0])
        return pe_fail(err, PE_ERR_INPUT, "%s: [sweep] dense_scheme is for training sweeps: add [sweep] kind = train, "
                       "or remove it", sp->path);
    for (int i = 0; i < sp->n; i++)
        if (!strcmp(sp->e[i].section, "train"))
            return pe_fail(err, PE_ERR_INPUT, "%s: [train] %s has no effect in an evaluation sweep: add [sweep] kind = "
                           "train to train a model per point, or remove it", sp->path, sp->e[i].key);
    return PE_OK;
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
    for (int i = 0; i < sp->nev; i++) {
        for (int v = 0; v < sp->ev[i].n; v++) free(sp->ev[i].values[v]);
        free(sp->ev[i].values);
    }
    sp->n = sp->nev = 0;
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

/* the config as hashed: every file path made canonical (realpath), run.out empty */
static char *sweep_canon_text(const pe_config *c) {
    static pe_config canon;
    canon = *c;
    char *paths[] = {canon.model_path, canon.model_tokenizer, canon.model_config, canon.data_path, canon.data_labels,
                     canon.pw_plan};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        const char *rp = paths[i][0] && strcmp(paths[i], "bytes") && strcmp(paths[i], "none") && strcmp(paths[i], "auto")
                             ? sweep_realpath(paths[i])
                             : NULL;
        if (rp) snprintf(paths[i], CFG_PATH_MAX, "%s", rp);
    }
    canon.run_out[0] = '\0';
    cJSON *j = cfg_to_json_identity(&canon);
    char  *t = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return t;
}

/* the evaluation of a training sweep's point (train: its resolved training config, run.out not yet
 * set): [model] defaults with the training tokenizer; [data], [run], [importance] defaults; the
 * point's own [pathways] (a dense-trained point: sweep.dense_scheme at the point's ratio); then the
 * [eval.*] keys and --set eval.section.key=value; a scheme still dense evaluates densely only
 * (members 0: dense members are all the dense model) */
static pe_status sweep_eval_config(pe_config *ec, const pe_config *train, const sweep_spec *sp, int argc, char **argv,
                                   pe_err *err) {
    cfg_init_defaults(ec);
    snprintf(ec->model_tokenizer, sizeof ec->model_tokenizer, "%s", train->model_tokenizer);
    memcpy(ec->pw_scheme, train->pw_scheme, sizeof ec->pw_scheme);
    ec->pw_ratio  = train->pw_ratio;
    ec->pw_sigma  = train->pw_sigma;
    ec->pw_lambda = train->pw_lambda;
    ec->pw_keep   = train->pw_keep;
    ec->pw_seed   = train->pw_seed;
    memcpy(ec->pw_granularity, train->pw_granularity, sizeof ec->pw_granularity);
    if (!strcmp(ec->pw_scheme, "dense") && sp->dense_scheme[0])
        snprintf(ec->pw_scheme, sizeof ec->pw_scheme, "%s", sp->dense_scheme);
    for (int j = 0; j < sp->nev; j++) {
        pe_status st = cfg_apply_value(ec, sp->ev[j].section, sp->ev[j].key, sp->ev[j].values[0], sp->path, err);
        if (st) return st;
    }
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--set") && i + 1 < argc && !strncmp(argv[++i], "eval.", 5)) {
            const char *a = argv[i] + 5;
            if (!strncmp(a, "model.path=", 11) || !strncmp(a, "model.config=", 13) || !strncmp(a, "run.out=", 8))
                return pe_fail(err, PE_ERR_USAGE, "--set %s: a training sweep evaluates each point's own model into "
                               "<point>/eval/; this key cannot be set", argv[i]);
            pe_status st = cfg_apply_set(ec, a, err);
            if (st) return st;
        }
    if (!strcmp(ec->pw_scheme, "dense")) ec->pw_members = 0;
    return PE_OK;
}

/* resolved config of point p; dir gets <out>/<hash>. A training sweep (sp->train): c is the training
 * config (run.out <dir>/train) and ec the evaluation (model <dir>/train/model.safetensors, run.out
 * <dir>/eval); the hash covers both. ec may be NULL otherwise. */
static pe_status sweep_point_config(pe_config *c, pe_config *ec, char *dir, size_t dirlen, const sweep_spec *sp, long p,
                                    int argc, char **argv, pe_err *err) {
    cfg_init_defaults(c);
    for (int j = 0; j < sp->n; j++) {
        const sweep_entry *e = &sp->e[j];
        pe_status st = cfg_apply_value(c, e->section, e->key, e->values[sweep_digit(sp, p, j)], sp->path, err);
        if (st) return st;
    }
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            if (sp->train && !strncmp(argv[i + 1], "eval.", 5)) { /* the evaluation's (sweep_eval_config) */
                i++;
                continue;
            }
            if (sp->train && strchr(argv[i + 1], '=') && strchr(argv[i + 1], '.') < strchr(argv[i + 1], '=')) {
                char sec[64], key[64];
                const char *a = argv[i + 1], *dot = strchr(a, '.'), *eq = strchr(a, '=');
                snprintf(sec, sizeof sec, "%.*s", (int)(dot - a) < 63 ? (int)(dot - a) : 63, a);
                snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1) < 63 ? (int)(eq - dot - 1) : 63, dot + 1);
                if (sweep_eval_only_key(sec, key))
                    return pe_fail(err, PE_ERR_USAGE, "--set %s: %s.%s is an evaluation key, which training does not "
                                   "read: in a training sweep write --set eval.%s", a, sec, key, a);
            }
            pe_status st = cfg_apply_set(c, argv[++i], err);
            if (st) return st;
        }
    if (sp->train) {
        pe_status st = sweep_eval_config(ec, c, sp, argc, argv, err);
        if (st) return st;
    }
    char base[CFG_PATH_MAX];
    snprintf(base, sizeof base, "%s", c->run_out);
    /* the folder name hashes the config with every file path made canonical (realpath), so the
     * same sweep spelled from another folder or with another path finds the same points; a training
     * sweep's, both configs (the evaluation's without its model path and run.out) */
    char *t = sweep_canon_text(c);
    if (!t) return pe_fail(err, PE_ERR_INTERNAL, "out of memory hashing sweep point %ld", p);
    if (sp->train) {
        ec->model_path[0] = '\0';
        char  *t2 = sweep_canon_text(ec);
        size_t n1 = strlen(t), n2 = t2 ? strlen(t2) : 0;
        char  *both = t2 ? malloc(n1 + n2 + 32) : NULL;
        if (both) snprintf(both, n1 + n2 + 32, "train %s eval %s", t, t2);
        free(t);
        free(t2);
        if (!both) return pe_fail(err, PE_ERR_INTERNAL, "out of memory hashing sweep point %ld", p);
        t = both;
    }
    uint64_t h = pe_hash_str(t);
    free(t);
    if (strlen(base) + 40 >= dirlen || strlen(base) + 40 >= sizeof c->run_out)
        return pe_fail(err, PE_ERR_INPUT, "%s: run.out '%s' is too long for a sweep", sp->path, base);
    snprintf(dir, dirlen, "%.4000s/%012llx", base, (unsigned long long)(h & 0xffffffffffffULL));
    if (!sp->train) {
        snprintf(c->run_out, sizeof c->run_out, "%s", dir);
        return cfg_validate(c, err);
    }
    snprintf(c->run_out, sizeof c->run_out, "%s/train", dir);
    snprintf(ec->model_path, sizeof ec->model_path, "%s/train/model.safetensors", dir);
    ec->model_config[0] = '\0';
    snprintf(ec->run_out, sizeof ec->run_out, "%s/eval", dir);
    pe_status st = cfg_validate_train(c, err);
    if (!st && (st = cfg_validate(ec, err))) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        st = pe_fail(err, st, "the evaluation ([eval.*] keys): %s", msg);
    }
    return st;
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

/* a training point: pathens train --resume into <dir>/train (skipped once train.json is there),
 * then the evaluation into <dir>/eval (which resumes from its journal). A signal during training
 * checkpoints it (75); one that arrives after training but before the evaluation stops there (75). */
static int sweep_train_point(const pe_config *tc, const pe_config *ec, const char *dir, int threads, int quiet) {
    int rank = cli_rank(), size = cli_size();
    int trained = rank == 0 ? file_exists(dir, "train/train.json") : 0;
#ifdef PATHENS_WITH_MPI
    if (size > 1) dist_bcast_int(&trained);
#endif
    if (!trained) {
        if (threads == 0) {
            const char *env = getenv("OPENBLAS_NUM_THREADS");
            threads = env && atoi(env) > 0 ? atoi(env) : 1;
        }
        openblas_set_num_threads(threads);
        if (rank == 0) {
            char pid[32];
            snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
            write_marker(dir, "train.pid", pid);
        }
        train_comm comm = {rank, size, NULL, NULL, NULL};
#ifdef PATHENS_WITH_MPI
        comm.sum_floats  = dist_sum_floats;
        comm.sum_doubles = dist_sum_doubles;
#endif
        pe_err    err = {0};
        pe_status st  = train_run(tc, &comm, 1, quiet || rank != 0, &sweep_stop, &err);
        if (rank == 0) {
            remove_marker(dir, "train.pid");
            if (st == PE_ERR_CHECKPOINT)
                fprintf(stderr, "pathens sweep: stopped by a signal during the training of %s (checkpoint in "
                        "train/checkpoint); rerun the same command to resume it; exit 75\n", dir);
            else if (st) fprintf(stderr, "pathens: error: %s\n", err.msg);
        }
#ifdef PATHENS_WITH_MPI
        if (st && st != PE_ERR_CHECKPOINT && size > 1) dist_fail(rank, (int)st, err.msg); /* none left waiting */
        int s0 = (int)st; /* every rank waits for rank 0's model files */
        if (size > 1) dist_bcast_int(&s0);
        st = (pe_status)s0;
#endif
        if (st) return (int)st;
    }
    int stop = sweep_stop;
#ifdef PATHENS_WITH_MPI
    if (size > 1) dist_bcast_int(&stop);
#endif
    if (stop) {
        if (rank == 0)
            fprintf(stderr, "pathens sweep: stopped by a signal after training %s/train (finished); rerun the same "
                    "command to evaluate it; exit 75\n", dir);
        return PE_ERR_CHECKPOINT;
    }
    return eval_config(ec, threads, quiet);
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
            "Training sweeps: with [sweep] kind = train each point is a pathens train of its config (the\n"
            "[model], [data], [pathways], [train] lists; --resume, into <point>/train/), then an evaluation\n"
            "of the trained model into <point>/eval/: dense and a self-ensemble with the point's own scheme\n"
            "and ratio ([sweep] dense_scheme for dense-trained points), on the data of [eval.data] (also\n"
            "[eval.model] tokenizer, [eval.run], [eval.pathways] members, [eval.importance]: one value\n"
            "each; --set eval.section.key=value overrides them). DONE once both are complete; a signal\n"
            "checkpoints the training (exit 75) and the rerun resumes it. --aggregate adds K = 1 and 4 of\n"
            "the ensemble-size curve, val_loss (train.val_span), the last training loss and the attention\n"
            "FLOPs of an SSA and a dense step.\n\n"
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

/* the last value of column `col` in the train_log.csv rows of phase `phase` (ssa | dense), NAN if none */
static double sweep_log_last(const char *log, const char *phase, const char *col) {
    const char *nl = strchr(log, '\n');
    if (!nl) return NAN;
    int ci = -1, n = 0;
    for (const char *q = log; q < nl; n++) { /* the header: which column */
        const char *c = memchr(q, ',', (size_t)(nl - q));
        size_t      len = c ? (size_t)(c - q) : (size_t)(nl - q);
        if (len == strlen(col) && !strncmp(q, col, len)) ci = n;
        q = c ? c + 1 : nl;
    }
    double v = NAN;
    for (const char *line = nl + 1; ci >= 0 && *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        const char *f = line;
        for (int k = 0; k < ci && f < end; k++) {
            f = memchr(f, ',', (size_t)(end - f));
            f = f ? f + 1 : end;
        }
        const char *ph = strchr(line, ',');
        if (ph && ph < end && !strncmp(ph + 1, phase, strlen(phase)) && ph[1 + strlen(phase)] == ',' && f < end)
            v = strtod(f, NULL);
        line = *end ? end + 1 : end;
    }
    return v;
}

/* a training point's figures for sweep.csv/json: K = 1 and 4 of the ensemble-size curve (with
 * intervals), the held-out validation of train.val_span, the last training loss, and the attention
 * FLOPs of one SSA step and one dense step (the last of each phase in train_log.csv: a step's own
 * count, the same however the run was interrupted); then the training keys (train.json's config:
 * scheme, ratio, steps, finetune_dense_steps, train seed), whether swept or not. Every figure is a
 * pure function of the finished point (no timings). */
static void sweep_train_figures(cJSON *row, const cJSON *r, const char *metric, const char *dir, double out[16],
                                char scheme[32]) {
    char ci[64];
    snprintf(ci, sizeof ci, "%s_ci95", metric);
    const cJSON *curve = cJSON_GetObjectItemCaseSensitive(r, "curve");
    cJSON       *mt    = cJSON_GetObjectItemCaseSensitive(row, "metrics");
    for (int q = 0; q < 2; q++) {
        int          K  = q ? 4 : 1;
        const cJSON *pt = cJSON_GetArrayItem(curve, K - 1);
        double       v = pt ? jget(pt, metric, NULL) : NAN, lo = NAN, hi = NAN;
        const cJSON *a = pt ? cJSON_GetObjectItemCaseSensitive(pt, ci) : NULL;
        if (cJSON_IsNumber(cJSON_GetArrayItem(a, 0))) lo = cJSON_GetArrayItem(a, 0)->valuedouble;
        if (cJSON_IsNumber(cJSON_GetArrayItem(a, 1))) hi = cJSON_GetArrayItem(a, 1)->valuedouble;
        out[3 * q] = v, out[3 * q + 1] = lo, out[3 * q + 2] = hi;
        char key[16];
        snprintf(key, sizeof key, "k%d", K);
        cJSON_AddItemToObject(mt, key, isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull());
        snprintf(key, sizeof key, "k%d_ci95", K);
        cJSON *arr = cJSON_AddArrayToObject(mt, key);
        cJSON_AddItemToArray(arr, isfinite(lo) ? cJSON_CreateNumber(lo) : cJSON_CreateNull());
        cJSON_AddItemToArray(arr, isfinite(hi) ? cJSON_CreateNumber(hi) : cJSON_CreateNull());
    }
    char   path[4400];
    snprintf(path, sizeof path, "%s/train/train.json", dir);
    cJSON *tj  = load_json_file(path);
    cJSON *val = cJSON_GetObjectItemCaseSensitive(tj, "validation");
    out[6] = val ? jget(val, "loss", NULL) : NAN;
    out[7] = val ? jget(val, "accuracy", NULL) : NAN;
    out[8] = tj ? jget(tj, "final_train_loss", NULL) : NAN;
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(tj, "config");
    const cJSON *sch = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "pathways"), "scheme");
    snprintf(scheme, 32, "%s", cJSON_IsString(sch) ? sch->valuestring : "");
    out[11] = NAN; /* the scheme's column */
    out[12] = jget(cJSON_GetObjectItemCaseSensitive(cfg, "pathways"), "ratio", NULL);
    out[13] = jget(cJSON_GetObjectItemCaseSensitive(cfg, "train"), "steps", NULL);
    out[14] = jget(cJSON_GetObjectItemCaseSensitive(cfg, "train"), "finetune_dense_steps", NULL);
    out[15] = jget(cJSON_GetObjectItemCaseSensitive(cfg, "train"), "seed", NULL);
    cJSON_Delete(tj);
    char *log = NULL;
    snprintf(path, sizeof path, "%s/train/train_log.csv", dir);
    if (pe_read_file(path, &log, NULL, NULL)) log = NULL;
    out[9]  = log ? sweep_log_last(log, "ssa", "att_flops") : NAN;
    out[10] = log ? sweep_log_last(log, "dense", "att_flops") : NAN;
    free(log);
    cJSON *tr = cJSON_AddObjectToObject(row, "train");
    cJSON_AddStringToObject(tr, "scheme", scheme);
    static const char *const names[] = {"val_loss", "val_accuracy", "train_loss", "att_flops_ssa_step",
                                        "att_flops_dense_step", NULL, "ratio", "steps", "finetune_dense_steps"};
    for (int i = 0; i < 9; i++)
        if (names[i])
            cJSON_AddItemToObject(tr, names[i], isfinite(out[6 + i]) ? cJSON_CreateNumber(out[6 + i]) : cJSON_CreateNull());
    cJSON_AddItemToObject(tr, "seed", isfinite(out[15]) ? cJSON_CreateNumber(out[15]) : cJSON_CreateNull());
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
                "ensemble_minus_dense,ensemble_minus_dense_lo,ensemble_minus_dense_hi,kept_fraction%s\n",
            sp->train ? ",k1,k1_lo,k1_hi,k4,k4_lo,k4_hi,val_loss,val_accuracy,train_loss,att_flops_ssa_step,"
                        "att_flops_dense_step,trained_scheme,trained_ratio,steps,finetune_dense_steps,train_seed" : "");
    int n_done = 0;
    for (long p = 0; p < np; p++) {
        const char *dir = dirs[p];
        if (!file_exists(dir, "DONE")) continue;
        char rp[4400];
        snprintf(rp, sizeof rp, sp->train ? "%s/eval/results.json" : "%s/results.json", dir);
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
        if (sp->train) {
            double tcells[16];
            char   scheme[32];
            sweep_train_figures(row, r, metric, dir, tcells, scheme);
            for (size_t c = 0; c < sizeof tcells / sizeof tcells[0]; c++) {
                if (c == 11) fprintf(cf, ",%s", scheme);
                else if (isfinite(tcells[c])) fprintf(cf, ",%.17g", tcells[c]);
                else fputc(',', cf);
            }
        }
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
    if (sweep_check_kind(&sp, &err)) {
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
    pe_config        c;
    static pe_config ec; /* a training sweep's evaluation */
    char             dir[CFG_PATH_MAX];
    char    **dirs = calloc((size_t)np, sizeof *dirs);
    long      v0 = 0, v1 = np - 1; /* the points this command builds: --index A[-B] (B past the end: the last) */
    if (index >= 0) v0 = index, v1 = index_last >= 0 ? (index_last < np ? index_last : np - 1) : index;
    if (index >= np)
        rc = cli_usage_error("sweep", "--index %ld but the sweep has %ld points (0..%ld)", index, np, np - 1);
    else if (!dirs) rc = pe_fail(&err, PE_ERR_INTERNAL, "out of memory listing %ld sweep points", np);
    for (long p = v0; p <= v1 && !rc; p++) {
        if (sweep_point_config(&c, &ec, dir, sizeof dir, &sp, p, argc, argv, &err)) {
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
                        /* a training point: training writes <point>/train.pid, its evaluation eval/coordinator.pid */
                        const char *pids[2] = {sp.train ? "train.pid" : "coordinator.pid", "eval/coordinator.pid"};
                        for (int q = 0; q < 1 + sp.train && k == 3; q++) {
                            char pidp[4400], *pidt = NULL;
                            snprintf(pidp, sizeof pidp, "%s/%s", d, pids[q]);
                            if (pe_read_file(pidp, &pidt, NULL, NULL) == PE_OK && atol(pidt) > 0 && kill((pid_t)atol(pidt), 0) == 0) k = 1;
                            free(pidt);
                        }
                        if (k == 3 && file_exists(d, "FAILED")) k = 2;
                    }
                    int partial = sp.train ? file_exists(d, "train/checkpoint/LATEST") || file_exists(d, "eval/journal.msgpack")
                                           : file_exists(d, "journal.msgpack");
                    fprintf(lf[k], "%s%ld%s", counts[k] ? " " : "", p, k == 3 && partial ? "(partial)" : "");
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
            if (sweep_point_config(&c, &ec, dir, sizeof dir, &sp, p, argc, argv, &err)) { /* passed above: cannot, but never run half a config */
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
                if (sp.train) { /* a training point: both configs */
                    cJSON *both = cJSON_CreateObject();
                    cJSON_AddItemToObject(both, "train", j);
                    cJSON_AddItemToObject(both, "eval", cfg_to_json(&ec));
                    j = both;
                }
                char  *t = cJSON_Print(j), cp[4400];
                cJSON_Delete(j);
                snprintf(cp, sizeof cp, "%s/config.json", dir);
                pe_write_file_atomic(cp, t, strlen(t), NULL);
                free(t);
                remove_marker(dir, "FAILED");
                char tidy[CFG_PATH_MAX];
                if (!quiet) fprintf(stderr, "sweep point %ld of %ld: %s\n", p, np, pe_path_tidy(dir, tidy, sizeof tidy));
            }
            int erc = sp.train ? sweep_train_point(&c, &ec, dir, threads, quiet) : eval_config(&c, threads, quiet);
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
        if (sweep_stop || rc == PE_ERR_CHECKPOINT) pe_signals_ignore_repeats(); /* exit 75 stays 75 */
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
