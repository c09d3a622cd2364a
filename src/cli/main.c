/* main.c: the pathens command line.
 *
 *   pathens inspect MODEL [--format F] [--config CONFIG.json]
 *   pathens eval CONFIG.ini [--set section.key=value ...] [--threads N] [--quiet]
 *   pathens train CONFIG.ini [--set ...] [--resume] [--threads N] [--quiet]   (src/cli/train.c)
 *
 * Exit codes (README): 0 ok, 1 usage, 2 bad input, 3 internal error, 75 checkpointed.
 * Outputs are written to a temporary name and renamed; results.json holds no timings. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "common.h"
#include "config.h"
#include "dataset.h"
#include "ensemble.h"
#include "eval.h"
#include "pathways.h"
#include "report.h"
#include "plan.h"
#include "results.h"
#include "model.h"
#include "tokenizer.h"
#include "version.h"
#include "cli.h"
#ifdef PATHENS_WITH_MPI
#include "dist.h"
#include "journal.h"
#include "shm.h"
#endif

static int g_rank = 0, g_size = 1; /* MPI rank and size (0, 1 without MPI) */

int cli_rank(void) { return g_rank; }
int cli_size(void) { return g_size; }

static int die(const pe_err *err) {
    if (g_rank == 0) fprintf(stderr, "pathens: error: %s\n", err->msg);
    return err->code ? (int)err->code : PE_ERR_INTERNAL;
}

/* a usage error (exit 1), said once: "pathens CMD: MESSAGE" and where the usage is */
static int vusage_error(const char *cmd, const char *fmt, va_list ap) {
    if (g_rank != 0) return PE_ERR_USAGE;
    fprintf(stderr, "pathens%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nRun 'pathens%s%s --help' for usage.\n", cmd ? " " : "", cmd ? cmd : "");
    return PE_ERR_USAGE;
}

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vusage_error(cmd, fmt, ap);
    va_end(ap);
    return rc;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vusage_error(cmd, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- inspect ------------------------------------------------------------------------------ */

static void help_inspect(FILE *f) {
    fprintf(f,
            "usage: pathens inspect MODEL [--format auto|llama2c|safetensors] [--config CONFIG.json]\n\n"
            "Prints the family, dtypes, shards, vocabulary, architecture, the parameter count and every\n"
            "tensor (name, dtype, shape) of a checkpoint, after checking every tensor against the\n"
            "architecture (shapes, dtypes, finiteness). MODEL: a llama2.c v0/v1 .bin, a safetensors file\n"
            "with its config.json (native, or Hugging Face), or a Hugging Face model folder (its\n"
            "config.json, and its model.safetensors or its index and shards; gpt2, llama, mistral,\n"
            "qwen2, qwen3, gpt_neox, vit); see docs/models.md and docs/formats.md.\n\n"
            "options:\n"
            "  --format F       checkpoint format (default auto: detected from the file)\n"
            "  --config FILE    the safetensors config.json (default: config.json next to MODEL)\n\n"
            "example (from the repository root):\n"
            "  pathens inspect models/fashion-vit/model.safetensors\n");
}

/* family, dtypes, shards, vocabulary, tokenizer, memory: what a user checks first about a folder */
static void inspect_print_summary(const ckpt_file *ck, const model *m) {
    const model_config *c = &m->cfg;
    printf("family: %s\n", ck->hf_family ? ckpt_hf_family_name(ck->hf_family)
                                        : !strncmp(ck->format, "llama2c", 7) ? "llama2.c" : "native pathens");
    int64_t count[5] = {0}; /* tensors per ckpt_dtype */
    for (int i = 0; i < ck->n_tensors; i++)
        if (ck->tensors[i].dtype >= 0 && ck->tensors[i].dtype < 5) count[ck->tensors[i].dtype]++;
    printf("dtype:");
    for (int d = 0; d < 5; d++)
        if (count[d]) printf(" %s (%lld tensors)", ckpt_dtype_name((ckpt_dtype)d), (long long)count[d]);
    printf("\n");
    if (ck->is_dir) {
        printf("shards: %d%s\n", ck->n_shards, ck->n_shards > 1 ? " (model.safetensors.index.json)" : "");
        for (int i = 0; i < ck->n_shards; i++)
            printf("  %s: %d tensors, %zu bytes\n", ck->shards[i].name, ck->shards[i].n_tensors, ck->shards[i].size);
    }
    if (c->input == MODEL_INPUT_TOKENS) printf("vocabulary: %d\n", c->vocab_size);
    else {
        printf("classes: %d (images %dx%dx%d, pixels x/255 normalised by mean / std", c->n_classes, c->channels,
               c->image_size, c->image_size);
        for (int ch = 0; ch < (c->pixel_per_channel ? c->channels : 1); ch++)
            printf(" %g/%g", (double)(c->pixel_per_channel ? c->pixel_mean_c[ch] : c->pixel_mean),
                   (double)(c->pixel_per_channel ? c->pixel_std_c[ch] : c->pixel_std));
        printf(")\n");
    }
    /* the tokenizer `[model] tokenizer = auto` would load (a folder's tokenizer.json or vocab.json +
     * merges.txt, or one beside the weights file); a file that does not load is reported, not fatal */
    if (m->cfg.input == MODEL_INPUT_TOKENS) {
        tokenizer tok;
        pe_err terr = {0};
        if (tok_init_for_model(&tok, "auto", ck->path, INT_MAX, &terr) == PE_OK) {
            printf("tokenizer: %s, %d tokens (%s)%s\n", tok_kind_name(&tok), tok.vocab_size,
                   tok_source(&tok)[0] ? tok_source(&tok) : "built in",
                   tok.vocab_size > c->vocab_size ? ": MORE than the model's vocabulary, eval refuses it" : "");
            tok_free(&tok);
        } else {
            printf("tokenizer: none loaded by [model] tokenizer = auto (%s)\n", terr.msg);
        }
    }
    size_t mapped = 0;
    for (int i = 0; i < ck->n_shards; i++) mapped += ck->shards[i].size;
    if (!ck->n_shards) mapped = ck->map_size;
    printf("memory: %.1f MiB mapped read-only (shared by the processes of a node), %.1f MiB converted per process "
           "(F16/BF16 to F32, fused q/k/v re-laid out)\n", (double)mapped / 1048576.0,
           (double)m->owned_floats * 4.0 / 1048576.0);
}

/* the Hugging Face switches of an architecture (the native config.json has no keys for them): what
 * results.json says beside the native fields, so that it describes the model that ran */
static void results_add_switches(cJSON *arch, const model_config *c) {
    if (!arch || (!model_uses_hf_switches(c) && !c->pixel_per_channel)) return;
    cJSON *o = cJSON_AddObjectToObject(arch, "switches");
    cJSON_AddNumberToObject(o, "head_size", model_head_size(c));
    if (c->pos == MODEL_POS_ROPE) {
        cJSON_AddStringToObject(o, "rope_pairs", c->rope_style == MODEL_ROPE_HALF ? "rotate_half" : "interleaved");
        cJSON_AddNumberToObject(o, "rotary_dims", model_rotary_dims(c));
    }
    if (c->rope_scaling == MODEL_ROPE_SCALE_LLAMA3) {
        cJSON *r = cJSON_AddObjectToObject(o, "rope_scaling_llama3");
        cJSON_AddNumberToObject(r, "factor", c->rope_factor);
        cJSON_AddNumberToObject(r, "low_freq_factor", c->rope_low_freq_factor);
        cJSON_AddNumberToObject(r, "high_freq_factor", c->rope_high_freq_factor);
        cJSON_AddNumberToObject(r, "original_max_position_embeddings", c->rope_orig_ctx);
    }
    cJSON_AddBoolToObject(o, "qkv_bias", c->qkv_bias || c->bias);
    cJSON_AddBoolToObject(o, "o_bias", c->o_bias || c->bias);
    cJSON_AddBoolToObject(o, "mlp_bias", c->mlp_bias || c->bias);
    cJSON_AddBoolToObject(o, "qk_norm", c->qk_norm);
    cJSON_AddBoolToObject(o, "parallel_residual", c->parallel_residual);
    cJSON_AddNumberToObject(o, "sliding_window", c->sliding_window);
    if (c->pixel_per_channel) {
        cJSON *mn = cJSON_AddArrayToObject(o, "pixel_mean"), *sd = cJSON_AddArrayToObject(o, "pixel_std");
        for (int ch = 0; ch < c->channels; ch++) {
            cJSON_AddItemToArray(mn, cJSON_CreateNumber(c->pixel_mean_c[ch]));
            cJSON_AddItemToArray(sd, cJSON_CreateNumber(c->pixel_std_c[ch]));
        }
    }
}

static void inspect_print_switches(const model_config *c) {
    if (!model_uses_hf_switches(c)) return;
    printf("  switches:");
    if (c->head_dim) printf(" head_dim %d (q width %d)", c->head_dim, c->n_heads * c->head_dim);
    if (c->pos == MODEL_POS_ROPE)
        printf(" RoPE %s theta %g over %d of %d dims", c->rope_style == MODEL_ROPE_HALF ? "rotate_half" : "interleaved",
               (double)c->rope_theta, model_rotary_dims(c), model_head_size(c));
    if (c->rope_scaling == MODEL_ROPE_SCALE_LLAMA3)
        printf(", llama3 scaling (factor %g, low %g, high %g, original %d)", (double)c->rope_factor,
               (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor, c->rope_orig_ctx);
    if (c->qkv_bias && !c->bias) printf(", q/k/v biases");
    if (c->o_bias && !c->bias) printf(", o bias");
    if (c->mlp_bias && !c->bias) printf(", MLP biases");
    if (c->qk_norm) printf(", q/k RMSNorm per head");
    if (c->parallel_residual) printf(", parallel residual");
    if (c->sliding_window) printf(", sliding window %d (contexts up to it only)", c->sliding_window);
    printf("\n");
}

static int cmd_inspect(int argc, char **argv) {
    const char *path = NULL, *format = "auto", *config = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help_inspect(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--format") && i + 1 < argc) {
            format = argv[++i];
        } else if (!strcmp(argv[i], "--config") && i + 1 < argc) {
            config = argv[++i];
        } else if (!strcmp(argv[i], "--format") || !strcmp(argv[i], "--config")) {
            return usage_error("inspect", "%s needs a value", argv[i]);
        } else if (argv[i][0] == '-') {
            return usage_error("inspect", "unknown option '%s'", argv[i]);
        } else if (!path) {
            path = argv[i];
        } else {
            return usage_error("inspect", "one MODEL at a time");
        }
    }
    if (!path) return usage_error("inspect", "missing MODEL");
    pe_err    err = {0};
    ckpt_file ck;
    model     m;
    if (ckpt_open(&ck, path, format, config, &err) || model_init(&m, &ck, &err)) {
        if (ck.map) ckpt_close(&ck);
        return die(&err);
    }
    char desc[512];
    model_describe(&m, desc, sizeof desc);
    printf("model: %s\n", path);
    printf("format: %s\n", m.source);
    inspect_print_summary(&ck, &m);
    printf("architecture: %s\n", desc);
    const model_config *c = &m.cfg;
    printf("  dim %d, hidden_dim %d, n_layers %d, n_heads %d, n_kv_heads %d, head_size %d\n", c->dim, c->hidden_dim,
           c->n_layers, c->n_heads, c->n_kv_heads, model_head_size(c));
    inspect_print_switches(c);
    printf("parameters: %lld\n", (long long)m.n_params);
    printf("tensors: %d\n", ck.n_tensors);
    for (int i = 0; i < ck.n_tensors; i++) {
        const ckpt_tensor *t = &ck.tensors[i];
        char shape[96] = "";
        for (int d = 0; d < t->ndim; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        printf("  %-40s %-5s [%s]\n", t->name, ckpt_dtype_name(t->dtype), shape);
    }
    model_free(&m);
    ckpt_close(&ck);
    return 0;
}

/* ---- eval --------------------------------------------------------------------------------- */

static void help_eval(FILE *f) {
    fprintf(f,
            "usage: pathens eval CONFIG.ini [--set section.key=value ...] [--threads N] [--overwrite] [--quiet]\n\n"
            "Evaluates [model] on [data] densely and, with pathways.members = K > 0, as K sub-models that\n"
            "each sample their own attention pathways ([pathways] scheme, ratio, ...), combined into a\n"
            "self-ensemble. Writes <run.out>/results.json (resolved config, version, git commit, \"dense\",\n"
            "\"ensemble\", \"member_mean\", \"members\", \"curve\"), members.csv, curve.csv, timing.json, and\n"
            "with run.per_example = 1 per_example.msgpack. Metrics: docs/metrics.md.\n\n"
            "options:\n"
            "  --set section.key=value  override one config key (repeatable; paths relative to the cwd)\n"
            "  --threads N              threads per rank (default: $OPENBLAS_NUM_THREADS, else 1); every number\n"
            "                           is the same for any N (OpenBLAS runs on 1 thread inside each)\n"
            "  --overwrite              replace the run that run.out holds (rerunning a finished config without\n"
            "                           it does nothing; another config into a used run.out is refused)\n"
            "  --quiet                  no start-up line or summary on stderr\n\n"
            "example (from the repository root; writes runs/stories260k/ with a drop-one importance estimate\n"
            "that pathens prune can plan from, about 3 s):\n"
            "  pathens eval configs/stories260k.ini --set data.limit=50 --set importance.units=25\n\n"
            "config keys (sections [model], [data], [run], [pathways], [importance]; docs/config.md):\n");
    cfg_print_keys(f, "model data run pathways importance");
}

static int detect_idx(const char *path) {
    size_t n = strlen(path);
    return (n > 8 && strstr(path, "-ubyte") != NULL) || (n > 4 && !strcmp(path + n - 4, ".idx"));
}

/* ---- run.out: rerun, resume, overwrite -----------------------------------------------------
 * A run folder holds at most one run. results.json, written last of the outputs, marks it finished
 * and echoes the resolved config; journal.msgpack (MPI builds) exists only while a run is
 * unfinished: it is deleted once the outputs are in place (a crash between leaves both, and the
 * rerun sees a finished run and removes the journal). Rerunning the config that finished is a
 * no-op (exit 0); another config is refused (exit 2) unless --overwrite, which removes the old
 * run's files first. */

/* the file names in a config, made canonical (realpath), so that configs/x.ini and
 * /abs/configs/x.ini, or a path spelled with "..", name the same run */
static void canon_paths(cJSON *j) {
    static const char *const keys[][2] = {{"model", "path"},   {"model", "tokenizer"}, {"model", "config"},
                                          {"data", "path"},    {"data", "labels"},     {"pathways", "plan"}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, keys[i][0]), keys[i][1]);
        char   rp[PATH_MAX];
        if (cJSON_IsString(v) && v->valuestring[0] && strcmp(v->valuestring, "bytes") && strcmp(v->valuestring, "none") &&
            realpath(v->valuestring, rp))
            cJSON_SetValuestring(v, rp);
    }
}

/* what identifies a finished run: its resolved config without run.out and run.batch (the batch
 * changes no number), with canonical paths, and the pathens version. Takes ownership of config. */
static cJSON *run_identity(cJSON *config, const char *version) {
    cfg_identity_trim(config); /* keys added later, at their default: as if absent (older runs) */
    cJSON *run = cJSON_GetObjectItemCaseSensitive(config, "run");
    cJSON_DeleteItemFromObjectCaseSensitive(run, "out");
    cJSON_DeleteItemFromObjectCaseSensitive(run, "batch");
    canon_paths(config);
    cJSON_AddStringToObject(config, "pathens_version", version ? version : "?");
    return config;
}

#ifdef PATHENS_WITH_MPI /* the journal exists in MPI builds only */
/* identity of a run for its journal: run_identity without run.per_example either (the journal's
 * rows do not depend on it); FNV-1a 64 of its JSON text */
static uint64_t config_fingerprint(const pe_config *c) {
    cJSON *j = run_identity((cJSON *)cfg_to_json(c), PATHENS_VERSION);
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "run"), "per_example");
    char *t = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    uint64_t h = pe_hash_str(t);
    free(t);
    return h;
}
#endif

/* the first few keys where two identities differ, as "section.key: A here, B in FILE" */
static void identity_diff(const cJSON *now, const cJSON *then, char *out, size_t n) {
    out[0] = '\0';
    int shown = 0;
    const cJSON *sec;
    cJSON_ArrayForEach(sec, now) {
        const cJSON *osec = cJSON_GetObjectItemCaseSensitive(then, sec->string), *k;
        if (!cJSON_IsObject(sec)) {
            if (!cJSON_Compare(sec, osec, 1) && shown++ < 3) {
                char *a = cJSON_PrintUnformatted(sec), *b = osec ? cJSON_PrintUnformatted(osec) : NULL;
                snprintf(out + strlen(out), n - strlen(out), "%s%s: %s here, %s there", shown > 1 ? "; " : "",
                         sec->string, a, b ? b : "(absent)");
                free(a);
                free(b);
            }
            continue;
        }
        cJSON_ArrayForEach(k, sec) {
            const cJSON *ok = cJSON_GetObjectItemCaseSensitive(osec, k->string);
            if (cJSON_Compare(k, ok, 1) || shown++ >= 3) continue;
            char *a = cJSON_PrintUnformatted(k), *b = ok ? cJSON_PrintUnformatted(ok) : NULL;
            snprintf(out + strlen(out), n - strlen(out), "%s%s.%s: %s here, %s there", shown > 1 ? "; " : "",
                     sec->string, k->string, a, b ? b : "(absent)");
            free(a);
            free(b);
        }
    }
    if (shown > 3) snprintf(out + strlen(out), n - strlen(out), "; and %d more", shown - 3);
    if (!out[0]) snprintf(out, n, "keys that the other pathens version did not have");
}

/* the files a run leaves in run.out (frontier.json: pathens prune's, it describes the old results) */
static const char *const run_files[] = {"results.json", "members.csv", "curve.csv",  "importance.csv", "per_example.msgpack",
                                        "timing.json",  "report.html", "frontier.json", "journal.msgpack"};

/* Rank 0, before anything is loaded: 0 go on, -1 run.out holds this config's finished run (said,
 * nothing to do), or an exit code with err set. overwrite: remove the old run's files first. */
static int run_out_check(const pe_config *cfg, int overwrite, int quiet, pe_err *err) {
    char path[CFG_PATH_MAX + 64];
    const char *out = cfg->run_out;
    if (overwrite) {
        int removed = 0;
        for (size_t i = 0; i < sizeof run_files / sizeof run_files[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", out, run_files[i]);
            struct stat sb;
            if (lstat(path, &sb) != 0) continue;
            if (S_ISDIR(sb.st_mode) || unlink(path) != 0)
                return pe_fail(err, PE_ERR_INPUT, "--overwrite: cannot remove %s (%s); remove it yourself", path,
                               S_ISDIR(sb.st_mode) ? "a directory" : strerror(errno));
            removed++;
        }
        if (removed && !quiet) fprintf(stderr, "--overwrite: removed %d file%s of the previous run in %s\n", removed,
                                       removed == 1 ? "" : "s", out);
        return 0;
    }
    snprintf(path, sizeof path, "%s/results.json", out);
    struct stat sb;
    if (stat(path, &sb) == 0) {
        char  *text = NULL;
        cJSON *old = NULL;
        if (S_ISREG(sb.st_mode) && pe_read_file(path, &text, NULL, NULL) == PE_OK) old = cJSON_Parse(text);
        free(text);
        const cJSON *oc = cJSON_GetObjectItemCaseSensitive(old, "config");
        const cJSON *ov = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(old, "pathens"), "version");
        if (!cJSON_IsObject(oc) || !cJSON_IsString(ov)) {
            cJSON_Delete(old);
            return pe_fail(err, PE_ERR_INPUT, "%s exists but is not a pathens results.json; to keep it, write this run "
                           "to another folder (--set run.out=DIR); to replace it, add --overwrite", path);
        }
        cJSON *then = run_identity(cJSON_Duplicate(oc, 1), ov->valuestring);
        cJSON *now  = run_identity((cJSON *)cfg_to_json(cfg), PATHENS_VERSION);
        int    same = cJSON_Compare(now, then, 1);
        char   diff[1024];
        if (!same) identity_diff(now, then, diff, sizeof diff);
        cJSON_Delete(now);
        cJSON_Delete(then);
        cJSON_Delete(old);
        if (!same)
            return pe_fail(err, PE_ERR_INPUT, "%s holds the finished run of another config (%s); to keep it, write "
                           "this run to another folder (--set run.out=DIR); to replace it, add --overwrite", out, diff);
        /* finished: tidy what a crash after results.json may have left, and say so */
        snprintf(path, sizeof path, "%s/journal.msgpack", out);
        if (lstat(path, &sb) == 0 && S_ISREG(sb.st_mode)) unlink(path);
        snprintf(path, sizeof path, "%s/report.html", out);
        int report = 0;
        if (access(path, F_OK) != 0) {
            char written[CFG_PATH_MAX + 32];
            pe_err rerr = {0};
            report = report_write(out, NULL, written, sizeof written, &rerr) == PE_OK;
        }
        fprintf(stderr, "pathens: %s already holds the finished run of this config (results.json); nothing to do%s. "
                "To compute it again, add --overwrite.\n", out, report ? " but rewrite the missing report.html" : "");
        return -1;
    }
#ifdef PATHENS_WITH_MPI
    int      exists = 0, have = 0, n_tasks = 0;
    uint64_t fp = 0;
    if (journal_peek(out, &exists, &have, &fp, &n_tasks, err)) return err->code;
    if (have && fp != config_fingerprint(cfg))
        return pe_fail(err, PE_ERR_INPUT, "%s/journal.msgpack holds an unfinished run of another config (fingerprint "
                       "%016llx, this config %016llx): to resume it, rerun the config that wrote it; to keep it, write "
                       "this run to another folder (--set run.out=DIR); to discard it, add --overwrite", out,
                       (unsigned long long)fp, (unsigned long long)config_fingerprint(cfg));
#else
    snprintf(path, sizeof path, "%s/journal.msgpack", out);
    if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return pe_fail(err, PE_ERR_INPUT, "%s is %s, not a journal file; remove it, or choose another run.out "
                       "(--set run.out=DIR)", path, S_ISDIR(sb.st_mode) ? "a directory" : "not a regular file");
    if (lstat(path, &sb) == 0)
        return pe_fail(err, PE_ERR_INPUT, "%s holds an unfinished run of an MPI build of pathens, which this build "
                       "(without MPI) cannot resume: resume it with the MPI build; to keep it, write this run to another "
                       "folder (--set run.out=DIR); to discard it, add --overwrite", path);
#endif
    return 0;
}

static int eval_run(const pe_config *cfg_in, int threads, int quiet, int overwrite);
int eval_config(const pe_config *cfg, int threads, int quiet) { return eval_run(cfg, threads, quiet, 0); }

int cmd_eval(int argc, char **argv) {
    const char *ini = NULL;
    int         threads = 0, quiet = 0, overwrite = 0;
    pe_err      err = {0};
    pe_config   cfg;
    cfg_init_defaults(&cfg);
    /* options first pass: help, ini */
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help_eval(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--set") || !strcmp(argv[i], "--threads")) {
            if (i + 1 >= argc) return usage_error("eval", "%s needs a value", argv[i]);
            i++;
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else if (!strcmp(argv[i], "--overwrite")) {
            overwrite = 1;
        } else if (argv[i][0] == '-') {
            return usage_error("eval", "unknown option '%s'", argv[i]);
        } else if (!ini) {
            ini = argv[i];
        } else {
            return usage_error("eval", "one CONFIG.ini at a time");
        }
    }
    if (!ini) return usage_error("eval", "missing CONFIG.ini");
    if (cfg_load_ini(&cfg, ini, &err)) return die(&err);
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--set")) {
            if (cfg_apply_set(&cfg, argv[++i], &err)) return die(&err);
        } else if (!strcmp(argv[i], "--threads")) {
            char *e;
            long  t = strtol(argv[++i], &e, 10);
            if (*e || t < 1 || t > 1024) return usage_error("eval", "--threads needs an integer in [1, 1024]");
            threads = (int)t;
        }
    }
    if (cfg_validate(&cfg, &err)) return die(&err);
    return eval_run(&cfg, threads, quiet, overwrite);
}

/* the summary's head importance line: only heads whose 95% interval lies above 0 (removing them raises the loss
 * distinguishably), ranked by the estimate, each with its interval; "none distinguishable" otherwise */
static void print_heads(const cJSON *heads, const char *src, const char *unit, const cJSON *dense_units) {
    enum { SHOW = 5 };
    int    n = cJSON_GetArraySize(heads), n_est = 0, n_pos = 0, best[SHOW];
    double units_lo = INFINITY, units_hi = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(heads, i), src);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "delta"), *ci = cJSON_GetObjectItemCaseSensitive(o, "ci95");
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "units");
        if (!cJSON_IsNumber(d)) continue;
        n_est++;
        double nu = cJSON_IsNumber(u) ? u->valuedouble : cJSON_IsNumber(dense_units) ? dense_units->valuedouble : NAN;
        if (nu < units_lo) units_lo = nu;
        if (nu > units_hi) units_hi = nu;
        const cJSON *lo = cJSON_GetArrayItem(ci, 0);
        if (!cJSON_IsNumber(lo) || !(lo->valuedouble > 0)) continue; /* interval touches 0 (or none: < 2 units) */
        /* insert into the top SHOW by estimate (ties: the earlier head) */
        int k = n_pos < SHOW ? n_pos : SHOW;
        n_pos++;
        while (k > 0) {
            const cJSON *pb = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(heads, best[k - 1]), src);
            if (cJSON_GetObjectItemCaseSensitive(pb, "delta")->valuedouble >= d->valuedouble) break;
            if (k < SHOW) best[k] = best[k - 1];
            k--;
        }
        if (k < SHOW) best[k] = i;
    }
    char units[64];
    if (!(units_hi > 0)) snprintf(units, sizeof units, "? units");
    else if (units_lo == units_hi) snprintf(units, sizeof units, "%.0f units", units_hi);
    else snprintf(units, sizeof units, "%.0f-%.0f units", units_lo, units_hi);
    const char *how = !strcmp(src, "ablation") ? "each head dropped alone on every unit"
                                               : "drop-one passes: each head dropped on a sample of the units";
    if (n_pos == 0) {
        fprintf(stderr, "  most important heads: none distinguishable at %s (no head's 95%% interval of the loss "
                "increase lies above 0; %s estimates, %s)\n", units, src, how);
        return;
    }
    fprintf(stderr, "  most important heads (%d of %d distinguishable from 0 at %s: loss increase in %s when the head is "
            "dropped, %s; 95%% CI):\n", n_pos, n_est, units, unit, how);
    for (int r = 0; r < n_pos && r < SHOW; r++) {
        const cJSON *h = cJSON_GetArrayItem(heads, best[r]), *o = cJSON_GetObjectItemCaseSensitive(h, src);
        const cJSON *ci = cJSON_GetObjectItemCaseSensitive(o, "ci95");
        fprintf(stderr, "    layer %d head %d: %+.4f [%+.4f, %+.4f]\n", cJSON_GetObjectItemCaseSensitive(h, "layer")->valueint,
                cJSON_GetObjectItemCaseSensitive(h, "head")->valueint, cJSON_GetObjectItemCaseSensitive(o, "delta")->valuedouble,
                cJSON_GetArrayItem(ci, 0)->valuedouble, cJSON_GetArrayItem(ci, 1)->valuedouble);
    }
}

/* The closing summary of an evaluation (rank 0): headline numbers with intervals, the ensemble
 * ensemble - dense, the most important heads, and where the report is. Read back from results.json's tree. */
static void print_summary(const cJSON *root, const char *report_path) {
    const cJSON *dense = cJSON_GetObjectItemCaseSensitive(root, "dense");
    const cJSON *ens   = cJSON_GetObjectItemCaseSensitive(root, "ensemble");
    int          img   = cJSON_GetObjectItemCaseSensitive(dense, "accuracy") != NULL;
    const char  *key   = img ? "accuracy" : "nll_per_token";
    char         ck[64];
    snprintf(ck, sizeof ck, "%s_ci95", key);
    const cJSON *dv = cJSON_GetObjectItemCaseSensitive(dense, key), *dc = cJSON_GetObjectItemCaseSensitive(dense, ck);
    fprintf(stderr, "\nsummary\n");
    if (cJSON_IsNumber(dv) && cJSON_GetArraySize(dc) == 2)
        fprintf(stderr, "  dense %-13s %.4f  95%% CI [%.4f, %.4f]\n", img ? "accuracy" : "nll/token", dv->valuedouble,
                cJSON_GetArrayItem(dc, 0)->valuedouble, cJSON_GetArrayItem(dc, 1)->valuedouble);
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(ens, key), *ec = cJSON_GetObjectItemCaseSensitive(ens, ck);
    /* the paired difference ensemble - dense of the headline metric (results.c: "minus_dense" for LMs) */
    const cJSON *emd = cJSON_GetObjectItemCaseSensitive(ens, img ? "accuracy_minus_dense" : "minus_dense");
    const cJSON *pw = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "config"), "pathways");
    if (cJSON_IsNumber(ev) && cJSON_GetArraySize(ec) == 2) {
        int members = cJSON_GetObjectItemCaseSensitive(pw, "members")->valueint;
        fprintf(stderr, "  ensemble %-10s %.4f  95%% CI [%.4f, %.4f]  (%d member%s, %s, ratio %g)\n",
                img ? "accuracy" : "nll/token", ev->valuedouble, cJSON_GetArrayItem(ec, 0)->valuedouble,
                cJSON_GetArrayItem(ec, 1)->valuedouble, members, members == 1 ? "" : "s",
                cJSON_GetObjectItemCaseSensitive(pw, "scheme")->valuestring,
                cJSON_GetObjectItemCaseSensitive(pw, "ratio")->valuedouble);
        const cJSON *gm = cJSON_GetObjectItemCaseSensitive(emd, "mean"), *gc = cJSON_GetObjectItemCaseSensitive(emd, "ci95");
        if (cJSON_IsNumber(gm) && cJSON_GetArraySize(gc) == 2)
            fprintf(stderr, "  ensemble - dense   %+.4f  95%% CI [%+.4f, %+.4f]  (paired difference; %s)\n",
                    gm->valuedouble, cJSON_GetArrayItem(gc, 0)->valuedouble, cJSON_GetArrayItem(gc, 1)->valuedouble,
                    img ? "> 0: the ensemble is more accurate" : "< 0: the ensemble has the lower NLL");
    }
    /* heads ranked by ablation (the loss increase when the head is dropped), else by the sampled slope */
    const cJSON *heads = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "importance"), "heads");
    const char  *src   = NULL;
    for (int pass = 0; pass < 2 && !src; pass++) {
        const char *field = pass == 0 ? "ablation" : "sampled";
        const cJSON *h;
        cJSON_ArrayForEach(h, heads) {
            if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(h, field))) { src = field; break; }
        }
    }
    if (src) print_heads(heads, src, img ? "nats/image" : "nats/token",
                         cJSON_GetObjectItemCaseSensitive(dense, img ? "examples" : "units"));
    /* sampled (drop-one) importance against the ablations, when both exist; else why there is none */
    const cJSON *imj = cJSON_GetObjectItemCaseSensitive(root, "importance");
    const cJSON *agh = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(imj, "agreement"), "heads");
    const cJSON *smj = cJSON_GetObjectItemCaseSensitive(imj, "sampled");
    const cJSON *sph = cJSON_GetObjectItemCaseSensitive(agh, "spearman"), *cvh = cJSON_GetObjectItemCaseSensitive(agh, "coverage");
    const cJSON *nh = cJSON_GetObjectItemCaseSensitive(agh, "n"), *ph = cJSON_GetObjectItemCaseSensitive(smj, "passes_heads"),
                *aph = cJSON_GetObjectItemCaseSensitive(smj, "ablation_passes_heads");
    if (cJSON_IsNumber(sph) && cJSON_IsNumber(cvh) && cJSON_IsNumber(nh) && cJSON_IsNumber(ph) && cJSON_IsNumber(aph))
        fprintf(stderr, "  sampled vs ablation, %d heads: Spearman %.3f, 95%% intervals containing the ablation value %.0f%% "
                "(%d drop-one passes vs %d)\n", nh->valueint, sph->valuedouble, 100.0 * cvh->valuedouble, ph->valueint,
                aph->valueint);
    const cJSON *nt = cJSON_GetObjectItemCaseSensitive(smj, "note");
    if (cJSON_IsString(nt) && !src) fprintf(stderr, "  head importance: %s\n", nt->valuestring);
    else if (cJSON_IsString(nt)) fprintf(stderr, "  sampled importance: %s\n", nt->valuestring);
    char tidy[CFG_PATH_MAX + 32];
    if (report_path) fprintf(stderr, "  report: %s\n", pe_path_tidy(report_path, tidy, sizeof tidy));
}

/* A model whose activations overflow float32 (finite but huge weights) gives NaN or infinite
 * losses; they are refused as results (exit 2), never written as nulls. */
static pe_status eval_check_finite(double dense_loss, const pe_config *cfg, pe_err *err) {
    if (isfinite(dense_loss)) return PE_OK;
    char mp[CFG_PATH_MAX], dp[CFG_PATH_MAX];
    return pe_fail(err, PE_ERR_INPUT,
                   "%s: the dense model's loss on %s is %s: its activations overflow float32 (weights too large, or a "
                   "damaged checkpoint: check them with 'pathens inspect'); no results written",
                   pe_path_tidy(cfg->model_path, mp, sizeof mp), pe_path_tidy(cfg->data_path, dp, sizeof dp),
                   isnan(dense_loss) ? "NaN" : "infinite");
}

pe_status cli_run_lock(const char *dir, int quiet, int *fd, pe_err *err) {
    int       warned = 0;
    pe_status st = pe_run_lock(dir, fd, &warned, err);
    if (!st && warned && !quiet)
        fprintf(stderr, "pathens: warning: %s: this file system has no flock(2); nothing keeps a second run from "
                "writing into this folder at the same time\n", dir);
    return st;
}

static int eval_run_held(const pe_config *cfg_in, int threads, int quiet, int overwrite);
/* eval_run with run.out held by rank 0 for the whole run: a second pathens into the same folder
 * (the same job submitted twice, a requeued job while the old one still runs) is refused before it
 * reads or writes anything there, whatever the two configs (every rank follows rank 0's verdict) */
static int eval_run(const pe_config *cfg, int threads, int quiet, int overwrite) {
    pe_err err = {0};
    int    fd = -1;
    int    lk = g_rank == 0 ? (int)cli_run_lock(cfg->run_out, quiet, &fd, &err) : 0;
#ifdef PATHENS_WITH_MPI
    if (g_size > 1) dist_bcast_int(&lk);
#endif
    if (lk) return g_rank == 0 ? die(&err) : lk;
    int rc = eval_run_held(cfg, threads, quiet, overwrite);
    pe_run_lock_free(fd);
    return rc;
}

static int eval_run_held(const pe_config *cfg_in, int threads, int quiet, int overwrite) {
    pe_err    err = {0};
    pe_config cfg = *cfg_in;
    if (g_rank != 0) quiet = 1; /* only the coordinator talks */
    /* run.out first: a finished run is not redone, another run is not mixed in (every rank follows rank 0) */
    int pre = g_rank == 0 ? run_out_check(&cfg, overwrite, quiet, &err) : 0;
#ifdef PATHENS_WITH_MPI
    if (g_size > 1) dist_bcast_int(&pre);
#endif
    if (pre < 0) return 0;
    if (pre > 0) return g_rank == 0 ? die(&err) : pre;
    if (threads == 0) {
        const char *env = getenv("OPENBLAS_NUM_THREADS");
        threads = env && atoi(env) > 0 ? atoi(env) : 1;
    }
    /* threads per rank run pathens' own loops, each calling OpenBLAS on 1 thread: OpenBLAS's own
     * threads split a call by the thread count and round differently (src/common.h) */
    openblas_set_num_threads(1);
    if (pe_threads_set(threads) < threads && !quiet)
        fprintf(stderr, "pathens: warning: --threads %d: this build has no OpenMP (PATHENS_WITH_OPENMP), running 1 "
                "thread per rank\n", threads);
    threads = pe_threads_get();

    /* model */
    double    t0 = pe_time_now(), c0 = pe_time_cpu();
    ckpt_file ck;
    model     m;
    if (ckpt_open(&ck, cfg.model_path, cfg.model_format, cfg.model_config, &err)) return die(&err);
#ifdef PATHENS_WITH_MPI
    pe_status mst = shm_model_init(&m, &ck, &err); /* converted weights: one copy per node (mpi/shm.c) */
#else
    pe_status mst = model_init(&m, &ck, &err);
#endif
    if (mst) {
        ckpt_close(&ck);
        return die(&err);
    }
    int is_lm = m.cfg.input == MODEL_INPUT_TOKENS;
    /* data kind */
    int use_idx = !strcmp(cfg.data_format, "idx") || (!strcmp(cfg.data_format, "auto") && detect_idx(cfg.data_path));
    int use_tokens = !strcmp(cfg.data_format, "tokens"); /* a token file: documents at eos, else windows */
    const char *mode = cfg.data_mode[0] ? cfg.data_mode
                                        : (use_idx ? "images" : use_tokens && cfg.data_eos < 0 ? "windows" : "documents");
    int rc = 0;
    if (use_idx != !is_lm || (use_idx && strcmp(mode, "images")) || (!use_idx && !strcmp(mode, "images"))) {
        pe_fail(&err, PE_ERR_INPUT, "data %s (%s, mode %s) does not fit the model (%s); check [data] path/format/mode",
                cfg.data_path, use_idx ? "IDX images" : use_tokens ? "token ids" : "text", mode, is_lm ? "a language model" : "an image classifier");
        rc = die(&err);
        goto done_model;
    }
    char          *members_csv = NULL, *curve_csv = NULL;
    const void    *pex = NULL;
    size_t         pex_len = 0;
    char          *imp_csv = NULL;
    ens_lm_result  lr;
    ens_cls_result cr;
    plan           pl;
    memset(&lr, 0, sizeof lr);
    memset(&cr, 0, sizeof cr);
    memset(&pl, 0, sizeof pl);
    tokenizer     tok;
    text_dataset  td;
    image_dataset id;
    int           have_tok = 0, have_td = 0, have_id = 0;
    memset(&td, 0, sizeof td);
    memset(&id, 0, sizeof id);
    char data_desc[512];
    if (is_lm) {
        /* [model] tokenizer: auto (a model folder's tokenizer.json / vocab.json + merges.txt, or bytes for
         * a vocab-256 model), bytes, a tokenizer.json or folder, or a llama2.c tokenizer.bin; a tokenizer
         * with more ids than the model's vocabulary is refused there. Token files need none: with
         * tokenizer = none, or auto finding none, bytes per target stay unknown. */
        const char *tk = cfg.model_tokenizer;
        int tk_auto = !tk[0] || !strcmp(tk, "auto");
        if (use_tokens && (!strcmp(tk, "none") || (tk_auto && !tok_auto_finds(cfg.model_path, m.cfg.vocab_size)))) {
            have_tok = 0;
        } else if (tok_init_for_model(&tok, tk, cfg.model_path, m.cfg.vocab_size, &err) == PE_OK) {
            have_tok = 1;
        } else {
            rc = die(&err);
            goto done_model;
        }
        int context = cfg.data_context ? cfg.data_context : m.cfg.seq_len;
        if (context > m.cfg.seq_len) {
            pe_fail(&err, PE_ERR_INPUT, "data.context = %d exceeds the model's seq_len %d", context, m.cfg.seq_len);
            rc = die(&err);
            goto done_data;
        }
        int stride = cfg.data_stride ? cfg.data_stride : context;
        data_text_mode tm = !strcmp(mode, "windows") ? DATA_MODE_WINDOWS : DATA_MODE_DOCUMENTS;
        double sb = 0.0, se = 1.0;
        cfg_parse_span(cfg.data_span, &sb, &se, NULL); /* validated */
        data_token_opts to = {!strcmp(cfg.data_dtype, "uint32") ? 4 : 2, m.cfg.vocab_size, cfg.data_eos};
        if (use_tokens ? data_load_tokens(&td, cfg.data_path, &to, have_tok ? &tok : NULL, tm, context, stride,
                                          cfg.data_limit, sb, se, &err)
                       : data_load_text_span(&td, cfg.data_path, &tok, tm, context, stride, cfg.data_limit, sb, se, &err)) {
            rc = die(&err);
            goto done_data;
        }
        have_td = 1;
        char tidy[CFG_PATH_MAX];
        char nbytes[64];
        if (use_tokens && !have_tok) snprintf(nbytes, sizeof nbytes, "bytes unknown (no tokenizer)");
        else snprintf(nbytes, sizeof nbytes, "%lld bytes", (long long)td.n_scored_bytes);
        snprintf(data_desc, sizeof data_desc, "%s: %s%s mode, %d sequences, %lld scored tokens, %s, context %d",
                 pe_path_tidy(cfg.data_path, tidy, sizeof tidy), use_tokens ? "token ids, " : "", mode, td.n_seqs,
                 (long long)td.n_scored, nbytes, context);
    } else {
        double sb = 0.0, se = 1.0;
        cfg_parse_span(cfg.data_span, &sb, &se, NULL); /* validated */
        if (data_load_idx_span(&id, cfg.data_path, cfg.data_labels, cfg.data_limit, sb, se, &err)) {
            rc = die(&err);
            goto done_data;
        }
        have_id = 1;
        char tidy[CFG_PATH_MAX];
        snprintf(data_desc, sizeof data_desc, "%s: %d images %dx%d, %d classes", pe_path_tidy(cfg.data_path, tidy, sizeof tidy),
                 id.n, id.rows, id.cols, id.n_classes);
    }
    if (!quiet) {
        char desc[512];
        model_describe(&m, desc, sizeof desc);
        fprintf(stderr, "pathens %s (%.12s): %d rank%s x %d thread%s (OpenBLAS %s, 1 BLAS thread each)\n",
                PATHENS_VERSION, PATHENS_GIT_COMMIT, g_size, g_size == 1 ? "" : "s", threads, threads == 1 ? "" : "s",
                openblas_get_corename());
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (ncpu > 0 && (long)threads * g_size > ncpu)
            fprintf(stderr, "pathens: warning: %d ranks x %d threads exceeds the %ld cores here (if the ranks "
                    "share this node); results are unchanged, only slower%s\n", g_size, threads, ncpu,
                    threads > 1 && !getenv("OMP_WAIT_POLICY") ? " (set OMP_WAIT_POLICY=passive: waiting threads then "
                    "sleep instead of spinning)" : "");
        const char *core = openblas_get_corename();
        if (!strcmp(core, "Prescott") || !strcmp(core, "Core2") || !strcmp(core, "Katmai") || !strcmp(core, "Atom"))
            fprintf(stderr, "pathens: warning: OpenBLAS chose the generic '%s' kernels (CPU not recognised); set "
                    "OPENBLAS_CORETYPE (e.g. SkylakeX or Haswell) for several times the speed\n", core);
        char tidy[CFG_PATH_MAX];
        fprintf(stderr, "model %s\n  %s\n", pe_path_tidy(cfg.model_path, tidy, sizeof tidy), desc);
#ifdef PATHENS_WITH_MPI
        char wline[192];
        if (shm_describe(wline, sizeof wline)) fprintf(stderr, "  %s\n", wline);
#endif
        fprintf(stderr, "data  %s\n", data_desc);
        if (cfg.pw_members > 0)
            fprintf(stderr, "plan  dense pass + %d members (%s, ratio %g, %s draws, %s combination), batch %d\n",
                    cfg.pw_members, cfg.pw_scheme, cfg.pw_ratio, cfg.pw_granularity, cfg.pw_combine, cfg.run_batch);
        else
            fprintf(stderr, "plan  dense pass, batch %d\n", cfg.run_batch);
    }

    /* evaluate */
    cJSON *root = cJSON_CreateObject();
    cJSON *pj   = cJSON_AddObjectToObject(root, "pathens");
    cJSON_AddStringToObject(pj, "version", PATHENS_VERSION);
    cJSON_AddStringToObject(pj, "git_commit", PATHENS_GIT_COMMIT);
    cJSON_AddItemToObject(root, "config", (cJSON *)cfg_to_json(&cfg));
    cJSON *mj = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(mj, "format", m.source);
    cJSON_AddNumberToObject(mj, "parameters", (double)m.n_params);
    char *arch = ckpt_config_to_json(&m.cfg);
    cJSON *aj   = cJSON_Parse(arch);
    free(arch);
    results_add_switches(aj, &m.cfg);
    cJSON_AddItemToObject(mj, "architecture", aj);
    cJSON *dj = cJSON_AddObjectToObject(root, "data");
    pw_config pc = {0};
    pc.scheme      = (pw_scheme)pw_scheme_parse(cfg.pw_scheme);
    pc.ratio       = cfg.pw_ratio;
    pc.sigma       = cfg.pw_sigma;
    pc.lambda      = cfg.pw_lambda;
    pc.keep        = cfg.pw_keep;
    pc.members     = cfg.pw_members;
    pc.seed        = (uint64_t)cfg.pw_seed;
    pc.granularity = (pw_granularity)pw_granularity_parse(cfg.pw_granularity);
    ens_options eo = {!strcmp(cfg.pw_combine, "logit") ? ENS_COMBINE_LOGIT : ENS_COMBINE_PROB, cfg.run_batch,
                      cfg.run_per_example, cfg.imp_statistics, cfg.imp_ablation, cfg.imp_units};
    if (pc.scheme == PW_SCHEME_PLAN) {
        if (!cfg.pw_plan[0]) {
            pe_fail(&err, PE_ERR_INPUT, "pathways.scheme = plan needs pathways.plan = FILE (written by pathens prune)");
        } else if (plan_load(&pl, cfg.pw_plan, m.cfg.n_layers, m.cfg.n_heads, &err) == PE_OK) {
            pc.n_heads     = m.cfg.n_heads;
            pc.head_keep   = pl.keep;
            pc.head_window = pl.window;
            if (pc.members == 0) pc.members = 1; /* a static plan is one deterministic sub-model */
        }
        if (err.code) {
            cJSON_Delete(root);
            rc = die(&err);
            goto done_data;
        }
    }
    if (pc.members > 0 && pw_config_check(&pc, &err)) {
        cJSON_Delete(root);
        rc = die(&err);
        goto done_data;
    }
#ifdef PATHENS_WITH_MPI
    if (g_size > 1) dist_barrier(); /* every rank has its model and data: start the clock together */
#endif
    double t1 = pe_time_now(), c1 = pe_time_cpu();
#ifdef PATHENS_WITH_MPI
    double *rt = calloc((size_t)g_size * 3, sizeof(double)); /* per rank: compute, wait, comm */
    int    *rn = calloc((size_t)g_size, sizeof(int));        /* per rank: tasks */
    dist_opts dopt = {cfg.run_out, 0, cfg.run_shard, cfg.run_member_block, quiet, rt, rt + g_size, rt + 2 * g_size, rn, 0,
                      0};
    /* rank 0 creates run.out and every rank learns whether it could: workers that entered the task
     * loop without it would wait for a task forever (the error is rank 0's to print) */
    int mk = g_rank == 0 ? (int)pe_mkdir_p(cfg.run_out, &err) : 0;
    if (g_size > 1) dist_bcast_int(&mk);
    if (g_rank != 0 && mk) err.code = (pe_status)mk;
#endif
    if (is_lm) {
        pe_status est;
#ifdef PATHENS_WITH_MPI
        dopt.fingerprint = config_fingerprint(&cfg);
        if (mk) est = (pe_status)mk;
        else est = dist_eval_text(&lr, &m, &td, &pc, &eo, &dopt, &err);
        if (g_rank != 0) { /* a worker: the coordinator writes everything */
            cJSON_Delete(root);
            free(rt);
            free(rn);
            rc = est ? die(&err) : 0;
            goto done_data;
        }
#else
        est = ens_eval_text(&lr, &m, &td, &pc, &eo, &err);
#endif
        if (!est) est = eval_check_finite(lr.dense.sum_nll, &cfg, &err);
        if (est) {
            cJSON_Delete(root);
#ifdef PATHENS_WITH_MPI
            free(rt);
            free(rn);
#endif
            rc = est == PE_ERR_CHECKPOINT ? (int)PE_ERR_CHECKPOINT : die(&err);
            goto done_data;
        }
        cJSON_AddStringToObject(dj, "kind", use_tokens ? "tokens" : "text");
        if (use_tokens && !have_tok)
            cJSON_AddStringToObject(dj, "bytes", "unknown: a token file without [model] tokenizer has no byte counts, "
                                                 "so every bits_per_byte is null");
        cJSON_AddStringToObject(dj, "mode", mode);
        cJSON_AddNumberToObject(dj, "sequences", td.n_seqs);
        cJSON_AddNumberToObject(dj, "context", td.context);
        if (td.mode == DATA_MODE_WINDOWS) cJSON_AddNumberToObject(dj, "stride", td.stride);
        results_add_lm(root, &lr);
        results_add_importance(root, &lr.imp, "nll_per_token");
        if (lr.imp.has_attention || lr.imp.has_ablation) imp_csv = results_importance_csv(&lr.imp);
        if (lr.K > 0) {
            members_csv = results_members_csv_lm(&lr);
            curve_csv   = results_curve_csv_lm(&lr);
        }
        pex = ens_per_example_data(lr.per_example, &pex_len);
        if (!quiet) {
            double nll = eval_lm_nll(&lr.dense), se = eval_lm_nll_stderr(&lr.dense);
            char bpb[32] = "unknown"; /* a token file without a tokenizer has no byte counts */
            if (lr.dense.bytes > 0) snprintf(bpb, sizeof bpb, "%.5f", lr.dense.sum_nll / (double)lr.dense.bytes / log(2.0));
            fprintf(stderr, "dense:    nll/token %.5f ± %.5f (standard error), perplexity %.4f, bits/byte %s over %lld tokens (%lld %s)\n",
                    nll, se, exp(nll), bpb, (long long)lr.dense.tokens,
                    (long long)lr.dense.units, td.mode == DATA_MODE_WINDOWS ? "windows" : "documents");
            if (lr.K > 0) {
                double en = eval_lm_nll(&lr.ensemble), es = eval_lm_nll_stderr(&lr.ensemble);
                double mm = eval_lm_nll(&lr.member_mean), ms = eval_lm_nll_stderr(&lr.member_mean);
                double dm = ens_paired_mean(&lr.diff), ds = ens_paired_stderr(&lr.diff);
                fprintf(stderr, "members:  mean nll/token %.5f ± %.5f (standard error; %d members, %s, ratio %g)\n", mm, ms, lr.K,
                        cfg.pw_scheme, cfg.pw_ratio);
                fprintf(stderr, "ensemble: nll/token %.5f ± %.5f (standard error); minus dense %+.5f, 95%% CI [%+.5f, %+.5f]\n", en, es, dm,
                        dm - 1.96 * ds, dm + 1.96 * ds);
            }
        }
    } else {
        pe_status est; /* the same distributed path as text: tasks of images x member blocks, journal, signals */
#ifdef PATHENS_WITH_MPI
        dopt.fingerprint = config_fingerprint(&cfg);
        if (mk) est = (pe_status)mk;
        else est = dist_eval_images(&cr, &m, &id, &pc, &eo, &dopt, &err);
        if (g_rank != 0) { /* a worker: the coordinator writes everything */
            cJSON_Delete(root);
            free(rt);
            free(rn);
            rc = est ? die(&err) : 0;
            goto done_data;
        }
#else
        est = ens_eval_images(&cr, &m, &id, &pc, &eo, &err);
#endif
        if (!est) est = eval_check_finite(cr.dense.sum_nll, &cfg, &err);
        if (est) {
            cJSON_Delete(root);
#ifdef PATHENS_WITH_MPI
            free(rt);
            free(rn);
#endif
            rc = est == PE_ERR_CHECKPOINT ? (int)PE_ERR_CHECKPOINT : die(&err);
            goto done_data;
        }
        cJSON_AddStringToObject(dj, "kind", "images");
        cJSON_AddNumberToObject(dj, "images", id.n);
        cJSON_AddNumberToObject(dj, "classes", id.n_classes);
        results_add_cls(root, &cr);
        results_add_importance(root, &cr.imp, "nll");
        if (cr.imp.has_attention || cr.imp.has_ablation) imp_csv = results_importance_csv(&cr.imp);
        if (cr.K > 0) {
            members_csv = results_members_csv_cls(&cr);
            curve_csv   = results_curve_csv_cls(&cr);
        }
        pex = ens_per_example_data(cr.per_example, &pex_len);
        if (!quiet) {
            double n = (double)cr.dense.examples, p = cr.dense.correct / n;
            fprintf(stderr, "dense:    accuracy %.4f ± %.4f (standard error), nll %.5f over %lld images\n", p, sqrt(p * (1 - p) / (n - 1)),
                    cr.dense.sum_nll / n, (long long)cr.dense.examples);
            if (cr.K > 0) {
                double pe = cr.ensemble.correct / n, dm = ens_paired_mean(&cr.diff_acc), ds = ens_paired_stderr(&cr.diff_acc);
                fprintf(stderr, "ensemble: accuracy %.4f ± %.4f (standard error), nll %.5f (%d members, %s, ratio %g); minus dense %+.4f, "
                        "95%% CI [%+.4f, %+.4f]\n", pe, sqrt(pe * (1 - pe) / (n - 1)), cr.ensemble.sum_nll / n, cr.K,
                        cfg.pw_scheme, cfg.pw_ratio, dm, dm - 1.96 * ds, dm + 1.96 * ds);
            }
        }
    }
    double t2 = pe_time_now(), c2 = pe_time_cpu();
    /* outputs */
    if (pe_mkdir_p(cfg.run_out, &err)) {
        cJSON_Delete(root);
        rc = die(&err);
        goto done_data;
    }
    char path[CFG_PATH_MAX + 32];
    /* results.json last: it marks the run finished (run_out_check) */
    struct { const char *name; const void *data; size_t len; } extra[4] = {
        {"members.csv", members_csv, members_csv ? strlen(members_csv) : 0},
        {"curve.csv", curve_csv, curve_csv ? strlen(curve_csv) : 0},
        {"importance.csv", imp_csv, imp_csv ? strlen(imp_csv) : 0},
        {"per_example.msgpack", pex, pex_len}};
    for (int i = 0; i < 4 && !rc; i++) {
        snprintf(path, sizeof path, "%s/%s", cfg.run_out, extra[i].name);
        if (!extra[i].data) { /* not an output of this config: no stale copy beside its results */
            unlink(path);
            continue;
        }
        if (pe_write_file_atomic(path, extra[i].data, extra[i].len, &err)) rc = die(&err);
    }
    if (rc) {
        cJSON_Delete(root);
        goto done_data;
    }
    cJSON *tj = cJSON_CreateObject();
    cJSON_AddNumberToObject(tj, "ranks", g_size);
#ifdef PATHENS_WITH_MPI
    {
        cJSON *ra = cJSON_AddArrayToObject(tj, "per_rank");
        for (int i = 0; i < g_size; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "rank", i);
            cJSON_AddStringToObject(e, "role", i == 0 ? "coordinator+worker" : "worker"); /* rank 0 computes too */
            cJSON_AddNumberToObject(e, "tasks", rn[i]);
            cJSON_AddNumberToObject(e, "compute_seconds", rt[i]);
            cJSON_AddNumberToObject(e, "wait_seconds", rt[g_size + i]);
            cJSON_AddNumberToObject(e, "comm_seconds", rt[2 * g_size + i]);
            const shm_weights_info *wi = shm_rank_info(i); /* its converted weights (mpi/shm.h) */
            if (wi) {
                cJSON *we = cJSON_AddObjectToObject(e, "weights");
                cJSON_AddNumberToObject(we, "converted_bytes", (double)wi->converted_bytes);
                cJSON_AddBoolToObject(we, "shared", wi->shared);
                cJSON_AddNumberToObject(we, "copy_ranks", wi->copy_ranks);
                cJSON_AddNumberToObject(we, "copy_leader", wi->copy_leader);
                cJSON_AddNumberToObject(we, "read_only_bytes", (double)wi->read_only_bytes);
            }
            cJSON_AddItemToArray(ra, e);
        }
        cJSON_AddNumberToObject(tj, "tasks_replayed_from_journal", dopt.replayed);
        cJSON_AddNumberToObject(tj, "journal_records_dropped", dopt.dropped);
    }
    free(rt);
    free(rn);
#endif
    cJSON_AddNumberToObject(tj, "threads", threads);
    cJSON_AddNumberToObject(tj, "blas_threads", 1);
    cJSON_AddStringToObject(tj, "openblas_core", openblas_get_corename());
    cJSON_AddNumberToObject(tj, "load_seconds", t1 - t0);
    cJSON_AddNumberToObject(tj, "eval_seconds", t2 - t1);
    cJSON_AddNumberToObject(tj, "load_cpu_seconds", c1 - c0); /* rank 0's process, all its threads */
    cJSON_AddNumberToObject(tj, "eval_cpu_seconds", c2 - c1);
    if (is_lm) cJSON_AddNumberToObject(tj, "scored_tokens_per_second", (double)td.n_scored * (1 + pc.members) / (t2 - t1));
    else cJSON_AddNumberToObject(tj, "images_per_second", (double)id.n * (1 + pc.members) / (t2 - t1));
    char *tt = cJSON_Print(tj);
    cJSON_Delete(tj);
    snprintf(path, sizeof path, "%s/timing.json", cfg.run_out);
    if (pe_write_file_atomic(path, tt, strlen(tt), &err)) rc = die(&err);
    free(tt);
    if (!rc) {
        char *text = cJSON_Print(root);
        snprintf(path, sizeof path, "%s/results.json", cfg.run_out);
        size_t tl = strlen(text);
        text = realloc(text, tl + 2);
        text[tl] = '\n';
        text[tl + 1] = 0;
        if (pe_write_file_atomic(path, text, tl + 1, &err)) rc = die(&err);
        free(text);
    }
    if (!rc && !quiet) fprintf(stderr, "wrote %s/results.json (%.2f s)\n", pe_path_tidy(cfg.run_out, path, sizeof path), t2 - t1);
    if (!rc) { /* the HTML report beside results.json; a failure here is a warning, the results stand */
        char written[CFG_PATH_MAX + 32] = "";
        pe_err rerr = {0};
        if (report_write(cfg.run_out, NULL, written, sizeof written, &rerr)) {
            fprintf(stderr, "pathens: warning: no report.html: %s\n", rerr.msg);
            written[0] = 0;
        }
        if (!quiet) print_summary(root, written[0] ? written : NULL);
        /* the outputs are in place: the journal has done its job (a crash before this line leaves it,
         * and the rerun, finding results.json, removes it) */
        snprintf(path, sizeof path, "%s/journal.msgpack", cfg.run_out);
        unlink(path);
    }
    cJSON_Delete(root);
done_data:
    free(members_csv);
    free(curve_csv);
    free(imp_csv);
    plan_free(&pl);
    ens_free_lm(&lr);
    ens_free_cls(&cr);
    if (have_td) data_free_text(&td);
    if (have_id) data_free_idx(&id);
    if (have_tok) tok_free(&tok);
done_model:
    model_free(&m);
    ckpt_close(&ck);
    return rc;
}

/* ---- report ------------------------------------------------------------------------------- */

static void help_report(FILE *f) {
    fprintf(f,
            "usage: pathens report RUN_DIR [--out FILE] [--quiet]\n\n"
            "Writes RUN_DIR/report.html (or FILE): one self-contained page (inline SVG and CSS, no scripts,\n"
            "no external resources) from RUN_DIR/results.json and, if present, RUN_DIR/frontier.json:\n"
            "model/data/pathways header, a summary table with 95%% intervals, the ensemble-size curve,\n"
            "the member-loss histogram, the layer x head importance heatmap, attention-distance profiles\n"
            "and the quality vs attention-FLOPs frontier. How to read each plot: docs/report.md.\n\n"
            "options:\n"
            "  --out FILE  write the page to FILE instead of RUN_DIR/report.html\n"
            "  --quiet     no 'wrote ...' line on stderr\n\n"
            "example (from the repository root, after the example of pathens eval --help):\n"
            "  pathens report runs/stories260k\n");
}

static int cmd_report(int argc, char **argv) {
    const char *dir = NULL, *out = NULL;
    int         quiet = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help_report(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else if (!strcmp(argv[i], "--out")) {
            return usage_error("report", "--out needs a value");
        } else if (argv[i][0] == '-') {
            return usage_error("report", "unknown option '%s'", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            return usage_error("report", "one RUN_DIR at a time");
        }
    }
    if (!dir) return usage_error("report", "missing RUN_DIR");
    pe_err err = {0};
    char   written[4096];
    if (report_write(dir, out, written, sizeof written, &err)) return die(&err);
    char tidy[4096];
    if (!quiet) fprintf(stderr, "wrote %s\n", pe_path_tidy(written, tidy, sizeof tidy));
    return 0;
}

/* ---- main --------------------------------------------------------------------------------- */

static void help_main(FILE *f) {
    fprintf(f,
            "pathens %s: transformers as dynamic self-ensembles of information pathways\n\n"
            "usage: pathens COMMAND [ARGS]   (pathens COMMAND --help for each)\n\n"
            "commands:\n"
            "  inspect MODEL         architecture, parameter count, tensors of a checkpoint\n"
            "  eval CONFIG.ini       evaluate a model on a dataset, write results.json\n"
            "  prune RUN_DIR         static pathway plans for FLOPs budgets from a run's importance\n"
            "  sweep SWEEP.ini       a grid of evaluations (list values), one folder per point\n"
            "  report RUN_DIR        write RUN_DIR/report.html (plots of results.json, no scripts)\n"
            "  train CONFIG.ini      train a GPT-style LM or a ViT in C, optionally with SSA (data-parallel)\n"
            "  version               print version and git commit\n\n"
            "example (from the repository root):\n"
            "  pathens eval configs/stories260k.ini --set data.limit=50\n"
            "  pathens report runs/stories260k\n\n"
            "exit codes: 0 ok, 1 usage error (unknown command or option, missing or malformed argument),\n"
            "            2 bad input (file, config, data), 3 internal error,\n"
            "            75 checkpointed after a signal (rerun to resume)\n",
            PATHENS_VERSION);
}

static void help_version(FILE *f) {
    fprintf(f,
            "usage: pathens version   (or: pathens --version)\n\n"
            "Prints the pathens version and the git commit the binary was built from (every results.json\n"
            "records the same two under \"pathens\").\n\n"
            "example:\n"
            "  pathens version\n");
}

static int cmd_version(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help_version(stdout);
            return 0;
        }
        if (argv[i][0] == '-') return usage_error("version", "unknown option '%s'", argv[i]);
        return usage_error("version", "takes no arguments ('%s')", argv[i]);
    }
    printf("pathens %s (git %s)\n", PATHENS_VERSION, PATHENS_GIT_COMMIT);
    return 0;
}

static int dispatch(int argc, char **argv);

#ifdef PATHENS_WITH_MPI
/* Commands that never communicate skip MPI_Init, which costs about 0.5 s in a singleton (a sweep's
 * --status must answer in well under 2 s): version, and sweep --count / --status / --aggregate,
 * unless a launcher (mpirun, srun) started this process. */
static int main_needs_mpi(int argc, char **argv) {
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK")) return 1;
    if (argc >= 2 && (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version"))) return 0;
    if (argc < 2 || strcmp(argv[1], "sweep")) return 1;
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--count") || !strcmp(argv[i], "--status") || !strcmp(argv[i], "--aggregate")) return 0;
    return 1;
}
#endif

int main(int argc, char **argv) {
#ifdef PATHENS_WITH_MPI
    if (!main_needs_mpi(argc, argv)) return dispatch(argc, argv); /* g_rank 0, g_size 1 */
    dist_init(&argc, &argv);
    g_rank = dist_rank();
    g_size = dist_size();
    int rc = dispatch(argc, argv);
    dist_finalize();
    return rc;
#else
    return dispatch(argc, argv);
#endif
}

static int dispatch(int argc, char **argv) {
    if (argc < 2) {
        help_main(stderr);
        return PE_ERR_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        help_main(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) return cmd_version(argc - 2, argv + 2);
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "report")) return cmd_report(argc - 2, argv + 2);
    if (!strcmp(cmd, "prune")) return cmd_prune(argc - 2, argv + 2);
    if (!strcmp(cmd, "sweep")) return cmd_sweep(argc - 2, argv + 2);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 2, argv + 2);
    return usage_error(NULL, "unknown command '%s' (commands: inspect, eval, prune, sweep, report, train, version)", cmd);
}
