/* config.c: run configuration, driven by one table of keys (cfg_keys below).
 *
 * Defaults, INI parsing (inih), --set overrides, validation, the JSON echo and the --help
 * listing all iterate cfg_keys: adding a key (or a whole new section) is one row there plus
 * the field in pe_config.
 */
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum {
    CFG_STRING, /* free text */
    CFG_PATH,   /* file name; from an INI file, relative names are joined to the INI's folder */
    CFG_INT,    /* int, in [min, max] */
    CFG_LONG,   /* long, in [min, max] */
    CFG_ENUM,   /* one of `choices` ("a|b|c"); "" is allowed too when the default is "" (auto) */
    CFG_DOUBLE, /* double in [dmin, dmax] ("inf" allowed when dmax is INFINITY) */
} cfg_type;

typedef struct {
    const char *section;
    const char *key;
    cfg_type    type;
    size_t      offset;   /* where the value lives in pe_config */
    size_t      size;     /* its size (buffer size for strings) */
    const char *def;      /* default, as the text one would write in the INI file */
    const char *choices;  /* CFG_ENUM: allowed values, '|'-separated */
    long        min, max; /* CFG_INT/CFG_LONG range; max 0 = the type's maximum */
    double      dmin, dmax; /* CFG_DOUBLE range */
    int         required; /* cfg_validate fails while the value is "" */
    const char *help;     /* one line for --help and docs/config.md */
    int         late;     /* added after run folders and checkpoints were keyed by the config: left out of
                           * cfg_to_json_identity while at its default, so older runs keep their keys */
} cfg_key;

#define CFG_AT(field) .offset = offsetof(pe_config, field), .size = sizeof(((pe_config *)0)->field)

static const cfg_key cfg_keys[] = {
    {"model", "path", CFG_PATH, CFG_AT(model_path), .def = "", .required = 1,
     .help = "model checkpoint: llama2.c .bin, .safetensors, or a Hugging Face model folder (docs/models.md)"},
    {"model", "format", CFG_ENUM, CFG_AT(model_format), .def = "auto", .choices = "auto|llama2c|safetensors",
     .help = "checkpoint format; auto = detect from the file"},
    {"model", "tokenizer", CFG_PATH, CFG_AT(model_tokenizer), .def = "",
     .help = "auto (empty: a model folder's tokenizer.json or vocab.json + merges.txt; bytes for a vocab-256 model), "
             "bytes, a tokenizer.json or a folder holding one, or a llama2.c tokenizer.bin"},
    {"model", "config", CFG_PATH, CFG_AT(model_config), .def = "",
     .help = "safetensors config.json; empty = config.json next to the model (in the model folder)"},
    {"data", "path", CFG_PATH, CFG_AT(data_path), .def = "", .required = 1,
     .help = "evaluation data: text file or idx images file"},
    {"data", "format", CFG_ENUM, CFG_AT(data_format), .def = "auto", .choices = "auto|text|idx|tokens",
     .help = "data format; auto = text or idx, detected from the file; tokens = a flat file of token ids"},
    {"data", "mode", CFG_ENUM, CFG_AT(data_mode), .def = "", .choices = "documents|windows|images",
     .help = "how items are formed; empty = auto (images for idx, documents for text; tokens: documents with eos, else windows)"},
    {"data", "dtype", CFG_ENUM, CFG_AT(data_dtype), .def = "uint16", .choices = "uint16|uint32",
     .help = "format = tokens: little-endian size of each id (uint32 for vocabularies over 65,535)"},
    {"data", "eos", CFG_INT, CFG_AT(data_eos), .def = "-1", .min = -1,
     .help = "format = tokens, documents: the id that starts each document (e.g. 50256 for GPT-2); -1 = none"},
    {"data", "labels", CFG_PATH, CFG_AT(data_labels), .def = "",
     .help = "idx labels file; empty = derived from data.path (images-idx3 -> labels-idx1)"},
    {"data", "limit", CFG_LONG, CFG_AT(data_limit), .def = "0", .min = 0,
     .help = "evaluate only the first N documents / windows / images; 0 = all"},
    {"data", "context", CFG_INT, CFG_AT(data_context), .def = "0", .min = 0,
     .help = "max tokens per sequence; 0 = the model's seq_len"},
    {"data", "stride", CFG_INT, CFG_AT(data_stride), .def = "0", .min = 0,
     .help = "windows mode: tokens between window starts; 0 = context"},
    {"data", "span", CFG_STRING, CFG_AT(data_span), .def = "0:1",
     .help = "part of the file used, as begin:end fractions (text: bytes, idx: images), e.g. 0:0.9 train, 0.9:1 test"},
    {"run", "out", CFG_PATH, CFG_AT(run_out), .def = "runs/default",
     .help = "output folder (results.json, checkpoints)"},
    {"run", "batch", CFG_INT, CFG_AT(run_batch), .def = "8", .min = 1,
     .help = "sequences (or images) per forward pass"},
    {"run", "shard", CFG_INT, CFG_AT(run_shard), .def = "16", .min = 1,
     .help = "documents (windows) per task handed to a rank; part of the journal's identity"},
    {"run", "member_block", CFG_INT, CFG_AT(run_member_block), .def = "0", .min = 0,
     .help = "members per task (0 = all members of a shard in one task); smaller spreads one shard's members over ranks"},
    {"run", "per_example", CFG_INT, CFG_AT(run_per_example), .def = "0", .min = 0, .max = 1,
     .help = "1 = also write per_example.msgpack (per document/image: dense, members, ensemble)"},
    {"pathways", "scheme", CFG_ENUM, CFG_AT(pw_scheme), .def = "unbiased",
     .choices = "dense|unbiased|local|random-k|window|head-drop|plan",
     .help = "how each member samples attention connections (docs/pathways.md)"},
    {"pathways", "ratio", CFG_DOUBLE, CFG_AT(pw_ratio), .def = "4", .dmin = 1.0, .dmax = 1e9,
     .help = "subsampling ratio rho >= 1: a member keeps about 1/rho of the connections"},
    {"pathways", "sigma", CFG_DOUBLE, CFG_AT(pw_sigma), .def = "4", .dmin = 0.0, .dmax = 1e9,
     .help = "local: locality width of the source shuffle, in positions"},
    {"pathways", "lambda", CFG_DOUBLE, CFG_AT(pw_lambda), .def = "inf", .dmin = 1e-9, .dmax = INFINITY,
     .help = "random-k: distance decay, p ~ exp(-|i-j|/lambda); inf = uniform"},
    {"pathways", "keep", CFG_DOUBLE, CFG_AT(pw_keep), .def = "0", .dmin = 0.0, .dmax = 1.0,
     .help = "head-drop: probability a head is kept; 0 = 1/ratio"},
    {"pathways", "members", CFG_INT, CFG_AT(pw_members), .def = "0", .min = 0, .max = 100000,
     .help = "ensemble size K (sampled sub-models, besides the dense pass); 0 = dense only"},
    {"pathways", "seed", CFG_LONG, CFG_AT(pw_seed), .def = "1234", .min = 0,
     .help = "seed of the counter-based sampler"},
    {"pathways", "granularity", CFG_ENUM, CFG_AT(pw_granularity), .def = "head", .choices = "head|layer|sequence",
     .help = "independent draws per head (default), shared across a layer's heads, or across all layers"},
    {"pathways", "plan", CFG_PATH, CFG_AT(pw_plan), .def = "",
     .help = "scheme = plan: the plan JSON written by pathens prune"},
    {"pathways", "combine", CFG_ENUM, CFG_AT(pw_combine), .def = "prob", .choices = "prob|logit",
     .help = "ensemble rule: prob = mean of probabilities (mixture), logit = softmax of mean logits"},
    {"importance", "statistics", CFG_INT, CFG_AT(imp_statistics), .def = "1", .min = 0, .max = 1,
     .help = "1 = importance statistics: dense attention statistics, and the sampled importance when units > 0 "
             "(docs/importance.md)"},
    {"importance", "ablation", CFG_INT, CFG_AT(imp_ablation), .def = "0", .min = 0, .max = 2,
     .help = "1 = also drop each head, then each layer, alone: L*H + L extra passes over the data; 2 = and each "
             "(layer, distance band): L*NB more"},
    {"importance", "units", CFG_LONG, CFG_AT(imp_units), .def = "0", .min = 0,
     .help = "sampled importance by drop-one passes: each head, layer and (layer, distance band) is dropped alone on "
             "about this many units (at most half: at most half the passes of the ablations); 150 agrees with the "
             "ablations (docs/importance.md); 0 = none"},
    {"train", "steps", CFG_INT, CFG_AT(tr_steps), .def = "1000", .min = 1,
     .help = "optimizer steps in all, the dense fine-tune steps included"},
    {"train", "batch", CFG_INT, CFG_AT(tr_batch), .def = "64", .min = 1,
     .help = "examples (sequences or images) per step, over all ranks; a multiple of grad_chunks"},
    {"train", "grad_chunks", CFG_INT, CFG_AT(tr_grad_chunks), .def = "4", .min = 1, .max = 4096,
     .help = "fixed chunks of a batch (work unit, summed in chunk order): same weights for any rank count <= this"},
    {"train", "context", CFG_INT, CFG_AT(tr_context), .def = "0", .min = 0,
     .help = "LM: tokens per training sequence; 0 = the model's seq_len"},
    {"train", "lr", CFG_DOUBLE, CFG_AT(tr_lr), .def = "1e-3", .dmin = 0.0, .dmax = 10.0,
     .help = "peak learning rate (AdamW)"},
    {"train", "min_lr", CFG_DOUBLE, CFG_AT(tr_min_lr), .def = "1e-4", .dmin = 0.0, .dmax = 10.0,
     .help = "learning rate at the last step (cosine decay after the warm-up)"},
    {"train", "warmup", CFG_INT, CFG_AT(tr_warmup), .def = "100", .min = 0,
     .help = "linear warm-up steps"},
    {"train", "weight_decay", CFG_DOUBLE, CFG_AT(tr_weight_decay), .def = "0.05", .dmin = 0.0, .dmax = 10.0,
     .help = "decoupled weight decay on matrices and embeddings (not on biases or norms)"},
    {"train", "beta1", CFG_DOUBLE, CFG_AT(tr_beta1), .def = "0.9", .dmin = 0.0, .dmax = 0.999999,
     .help = "AdamW beta1"},
    {"train", "beta2", CFG_DOUBLE, CFG_AT(tr_beta2), .def = "0.99", .dmin = 0.0, .dmax = 0.999999,
     .help = "AdamW beta2"},
    {"train", "eps", CFG_DOUBLE, CFG_AT(tr_eps), .def = "1e-8", .dmin = 0.0, .dmax = 1.0,
     .help = "AdamW epsilon"},
    {"train", "clip", CFG_DOUBLE, CFG_AT(tr_clip), .def = "1", .dmin = 0.0, .dmax = 1e9,
     .help = "clip the global gradient norm to this (0 = no clipping)"},
    {"train", "finetune_dense_steps", CFG_INT, CFG_AT(tr_finetune_dense), .def = "0", .min = 0,
     .help = "the last N steps train with dense attention (consolidates SSA-trained pathways)"},
    {"train", "seed", CFG_LONG, CFG_AT(tr_seed), .def = "1", .min = 0,
     .help = "seed of the initialisation and the data order (SSA draws use pathways.seed)"},
    {"train", "checkpoint_minutes", CFG_DOUBLE, CFG_AT(tr_checkpoint_minutes), .def = "5", .dmin = 0.0, .dmax = 1e9,
     .help = "write a resumable checkpoint at least this often (0 = only by steps and at the end)"},
    {"train", "checkpoint_steps", CFG_INT, CFG_AT(tr_checkpoint_steps), .def = "0", .min = 0,
     .help = "also write one every N steps (0 = by time only)"},
    {"train", "log_every", CFG_INT, CFG_AT(tr_log_every), .def = "50", .min = 1,
     .help = "progress line and a train_log.csv row every N steps"},
    {"train", "val_span", CFG_STRING, CFG_AT(tr_val_span), .def = "",
     .help = "held-out part of data.path (begin:end, not overlapping data.span) scored densely: val_loss in train_log.csv"},
    {"train", "val_every", CFG_INT, CFG_AT(tr_val_every), .def = "0", .min = 0,
     .help = "score train.val_span every N steps and at the last (0 = at the last step only)"},
    {"train", "augment_crop", CFG_INT, CFG_AT(tr_augment_crop), .def = "0", .min = 0, .max = 64,
     .help = "images: shift each training image by up to N pixels each way, zero fill (pad N + random crop)"},
    {"train", "augment_flip", CFG_INT, CFG_AT(tr_augment_flip), .def = "0", .min = 0, .max = 1,
     .help = "images: 1 = mirror each training image left-right with probability 1/2"},
    {"train", "dropout", CFG_DOUBLE, CFG_AT(tr_dropout), .def = "0", .dmin = 0.0, .dmax = 0.9,
     .help = "dropout on the embeddings and on each block's attention and MLP outputs (training only; 0 = off)",
     .late = 1},
};
#define CFG_N_KEYS (sizeof cfg_keys / sizeof cfg_keys[0])

/* ---- table helpers ------------------------------------------------------------------------ */

static void *cfg_field_ptr(pe_config *c, const cfg_key *k) { return (char *)c + k->offset; }
static const void *cfg_field_cptr(const pe_config *c, const cfg_key *k) { return (const char *)c + k->offset; }

static long cfg_max_value(const cfg_key *k) {
    if (k->max) return k->max;
    return k->type == CFG_INT ? INT_MAX : LONG_MAX;
}

/* first row of `section` (NULL if the section is unknown) */
static const cfg_key *cfg_find_section(const char *section) {
    for (size_t i = 0; i < CFG_N_KEYS; i++)
        if (strcmp(cfg_keys[i].section, section) == 0) return &cfg_keys[i];
    return NULL;
}

static const cfg_key *cfg_find_key(const char *section, const char *key) {
    for (size_t i = 0; i < CFG_N_KEYS; i++)
        if (strcmp(cfg_keys[i].section, section) == 0 && strcmp(cfg_keys[i].key, key) == 0) return &cfg_keys[i];
    return NULL;
}

/* "path, format, ..." (the keys of one section) or "[model], [data], ..." (section == NULL) */
static const char *cfg_list_names(const char *section, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        if (section ? strcmp(k->section, section) != 0 : cfg_find_section(k->section) != k) continue;
        int w = section ? snprintf(buf + used, n - used, "%s%s", used ? ", " : "", k->key)
                        : snprintf(buf + used, n - used, "%s[%s]", used ? ", " : "", k->section);
        if (w < 0 || (size_t)w >= n - used) break;
        used += (size_t)w;
    }
    return buf;
}

static int cfg_has_choice(const cfg_key *k, const char *value) {
    if (value[0] == '\0') return k->def[0] == '\0';
    size_t len = strlen(value);
    for (const char *p = k->choices; *p;) {
        size_t tok = strcspn(p, "|");
        if (tok == len && strncmp(p, value, len) == 0) return 1;
        p += tok + (p[tok] == '|');
    }
    return 0;
}

static pe_status cfg_fail_enum(const cfg_key *k, const char *value, const char *ctx, pe_err *err) {
    return pe_fail(err, PE_ERR_INPUT, "%s: %s.%s = '%s' is not allowed; choose one of: %s%s", ctx, k->section,
                   k->key, value, k->choices, k->def[0] ? "" : " (or leave it empty for auto)");
}

static pe_status cfg_fail_range(const cfg_key *k, long v, const char *ctx, pe_err *err) {
    if (k->max == 0)
        return pe_fail(err, PE_ERR_INPUT, "%s: %s.%s = %ld is out of range; it must be >= %ld", ctx, k->section,
                       k->key, v, k->min);
    return pe_fail(err, PE_ERR_INPUT, "%s: %s.%s = %ld is out of range; it must be between %ld and %ld", ctx,
                   k->section, k->key, v, k->min, k->max);
}

/* Check `value` for row k and store it. base_dir (may be NULL) is the folder that relative
 * paths are joined to; ctx ("file:line" or "--set") starts every error message. */
static pe_status cfg_store_value(pe_config *c, const cfg_key *k, const char *value, const char *base_dir,
                                 const char *ctx, pe_err *err) {
    void *dst = cfg_field_ptr(c, k);
    if (k->type == CFG_INT || k->type == CFG_LONG) {
        char *end = NULL;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (value[0] == '\0' || *end != '\0' || errno == ERANGE || (k->type == CFG_INT && (v < INT_MIN || v > INT_MAX)))
            return pe_fail(err, PE_ERR_INPUT, "%s: %s.%s = '%s' is not an integer", ctx, k->section, k->key, value);
        if (v < k->min || v > cfg_max_value(k)) return cfg_fail_range(k, v, ctx, err);
        if (k->type == CFG_INT) *(int *)dst = (int)v;
        else *(long *)dst = v;
        return PE_OK;
    }
    if (k->type == CFG_DOUBLE) {
        char *end = NULL;
        errno = 0;
        double v = strtod(value, &end);
        int    range = errno == ERANGE;
        if (value[0] == '\0' || *end != '\0')
            return pe_fail(err, PE_ERR_INPUT, "%s: %s.%s = '%s' is not a number", ctx, k->section, k->key, value);
        if (isnan(v))
            return pe_fail(err, PE_ERR_INPUT, "%s: %s.%s = '%s' is NaN (not a number); give a number between %g and %g",
                           ctx, k->section, k->key, value, k->dmin, k->dmax);
        /* finite after the conversion to double (1e999 overflows to inf, 1e-999 underflows), and
         * inf only where the key means something by it (pathways.lambda = inf: uniform) */
        if (range && fabs(v) > 1.0)
            return pe_fail(err, PE_ERR_INPUT, "%s: %s.%s = '%s' overflows a double (it would be %sinf); give a number "
                           "between %g and %g", ctx, k->section, k->key, value, v < 0 ? "-" : "", k->dmin, k->dmax);
        if (range)
            return pe_fail(err, PE_ERR_INPUT, "%s: %s.%s = '%s' underflows a double (too close to 0 to represent); "
                           "write 0 or a number between %g and %g", ctx, k->section, k->key, value, k->dmin, k->dmax);
        if (isinf(v) && !(v > 0 && isinf(k->dmax)))
            return pe_fail(err, PE_ERR_INPUT, "%s: %s.%s = '%s' is infinite; give a finite number between %g and %g",
                           ctx, k->section, k->key, value, k->dmin, k->dmax);
        if (v < k->dmin || v > k->dmax)
            return pe_fail(err, PE_ERR_INPUT, "%s: %s.%s = %s is out of range; it must be between %g and %g", ctx,
                           k->section, k->key, value, k->dmin, k->dmax);
        *(double *)dst = v;
        return PE_OK;
    }
    if (k->type == CFG_ENUM && !cfg_has_choice(k, value)) return cfg_fail_enum(k, value, ctx, err);
    const char *slash = base_dir ? strrchr(base_dir, '/') : NULL;
    int join = k->type == CFG_PATH && slash && value[0] != '\0' && value[0] != '/' &&
               strcmp(value, "bytes") != 0 && strcmp(value, "none") != 0 && strcmp(value, "auto") != 0;
    int dir_len = join ? (int)(slash - base_dir) : 0;
    size_t need = strlen(value) + (join ? (size_t)dir_len + 1 : 0);
    if (need >= k->size)
        return pe_fail(err, PE_ERR_INPUT, "%s: %s.%s value is too long (%zu characters%s, at most %zu)", ctx,
                       k->section, k->key, need, join ? " after joining the INI file's folder" : "", k->size - 1);
    if (join) snprintf(dst, k->size, "%.*s/%s", dir_len, base_dir, value);
    else memcpy(dst, value, strlen(value) + 1);
    return PE_OK;
}

/* Look up section.key and store value (see cfg_store_value). */
static pe_status cfg_set_value(pe_config *c, const char *section, const char *key, const char *value,
                               const char *base_dir, const char *ctx, pe_err *err) {
    char names[512];
    if (!cfg_find_section(section)) {
        if (section[0] == '\0')
            return pe_fail(err, PE_ERR_INPUT, "%s: key '%s' is outside any section; put it under one of %s", ctx,
                           key, cfg_list_names(NULL, names, sizeof names));
        return pe_fail(err, PE_ERR_INPUT, "%s: unknown section [%s]; known sections: %s", ctx, section,
                       cfg_list_names(NULL, names, sizeof names));
    }
    const cfg_key *k = cfg_find_key(section, key);
    if (!k)
        return pe_fail(err, PE_ERR_INPUT, "%s: unknown key '%s' in section [%s]; known keys: %s", ctx, key, section,
                       cfg_list_names(section, names, sizeof names));
    return cfg_store_value(c, k, value, base_dir, ctx, err);
}

/* ---- public API --------------------------------------------------------------------------- */

pe_status cfg_apply_value(pe_config *c, const char *section, const char *key, const char *value, const char *ini_path,
                          pe_err *err) {
    return cfg_set_value(c, section, key, value, ini_path, ini_path ? ini_path : "--set", err);
}

void cfg_init_defaults(pe_config *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < CFG_N_KEYS; i++) cfg_store_value(c, &cfg_keys[i], cfg_keys[i].def, NULL, "default", NULL);
}

typedef struct {
    pe_config  *cfg;
    const char *path;
    FILE       *fp;
    int         line;     /* physical line last handed to inih */
    int         err_line; /* line of the first error we recorded (0 = none) */
    pe_status   status;
    pe_err     *err;
    int         key_line[CFG_N_KEYS]; /* line that set each key (0 = not set in this file) */
} cfg_ini_state;

/* record the first error of the file (later ones are usually consequences): "path:line: ..." */
static void cfg_ini_error(cfg_ini_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cfg_ini_error(cfg_ini_state *s, const char *fmt, ...) {
    if (s->status != PE_OK) return;
    char    what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    s->status = pe_fail(s->err, PE_ERR_INPUT, "%s:%d: %s", s->path, s->line, what);
    s->err_line = s->line;
}

/* fgets-style reader for ini_parse_stream: counts lines (this inih has no line numbers in the
 * handler), rejects lines too long for inih's buffer instead of letting it split them, rejects
 * NUL bytes (fgets would silently cut the line there: "path = a.bin\0junk" read as a.bin), and
 * strips leading blanks so an indented line is a plain key, never a multi-line continuation. */
static char *cfg_read_line(char *str, int num, void *stream) {
    cfg_ini_state *s = stream;
    int n = 0, ch = EOF, nul_at = -1;
    while (n < num - 1 && (ch = getc(s->fp)) != EOF) {
        if (ch == '\0' && nul_at < 0) nul_at = n;
        str[n++] = (char)ch;
        if (ch == '\n') break;
    }
    if (n == 0) return NULL; /* end of file (or a read error: cfg_load_ini checks ferror) */
    str[n] = '\0';
    s->line++;
    if (nul_at >= 0) {
        cfg_ini_error(s, "NUL byte at column %d: a config file is plain text; the file is corrupt or not an INI "
                      "file (re-save it as text)", nul_at + 1);
        str[0] = '\0';
        return str;
    }
    if (str[n - 1] != '\n' && n == num - 1) {
        ch = getc(s->fp);
        if (ch != EOF && ch != '\n') {
            while (ch != EOF && ch != '\n') ch = getc(s->fp);
            cfg_ini_error(s, "line is too long (at most %d characters); shorten it (paths may be relative to the "
                          "INI file) or give the value with --set", num - 3);
            str[0] = '\0';
            return str;
        }
    }
    size_t lead = strspn(str, " \t");
    memmove(str, str + lead, (size_t)n - lead + 1);
    return str;
}

static int cfg_ini_handler(void *user, const char *section, const char *name, const char *value) {
    cfg_ini_state *s = user;
    if (s->status != PE_OK) return 1; /* report only the first error */
    const cfg_key *k = cfg_find_key(section, name);
    if (k && s->key_line[k - cfg_keys]) { /* inih would let the last one win silently */
        cfg_ini_error(s, "%s.%s is set twice (first on line %d, again here); keep one of the two lines (a repeated "
                      "[%s] header does not start a new scope)", section, name, s->key_line[k - cfg_keys], section);
        return 0;
    }
    char ctx[CFG_PATH_MAX + 32];
    snprintf(ctx, sizeof ctx, "%s:%d", s->path, s->line);
    s->status = cfg_set_value(s->cfg, section, name, value, s->path, ctx, s->err);
    if (s->status != PE_OK) s->err_line = s->line;
    else if (k) s->key_line[k - cfg_keys] = s->line;
    return s->status == PE_OK;
}

pe_status cfg_load_ini(pe_config *c, const char *path, pe_err *err) {
    FILE *fp = fopen(path, "r");
    if (!fp)
        return pe_fail(err, PE_ERR_INPUT, "%s: cannot open config file (%s); check the path", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(fp);
        return pe_fail(err, PE_ERR_INPUT, "%s: is a directory, not a config file; give the path of an INI file", path);
    }
    pe_config *tmp = pe_malloc(sizeof *tmp, err, "config");
    if (!tmp) {
        fclose(fp);
        return PE_ERR_INTERNAL;
    }
    *tmp = *c; /* parse into a copy: c is left untouched on error */
    cfg_ini_state s = {.cfg = tmp, .path = path, .fp = fp, .status = PE_OK, .err = err};
    int rc = ini_parse_stream(cfg_read_line, &s, cfg_ini_handler, &s);
    if (ferror(fp) && s.status == PE_OK)
        s.status = pe_fail(err, PE_ERR_INPUT, "%s: cannot read config file; is it a regular file?", path);
    else if (rc < 0 && s.status == PE_OK)
        s.status = pe_fail(err, PE_ERR_INTERNAL, "%s: out of memory while parsing", path);
    else if (rc > 0 && (s.status == PE_OK || rc < s.err_line))
        s.status = pe_fail(err, PE_ERR_INPUT, "%s:%d: syntax error; expected [section], key = value, or a comment "
                           "starting with ; or #", path, rc);
    fclose(fp);
    if (s.status == PE_OK) *c = *tmp;
    free(tmp);
    return s.status;
}

pe_status cfg_apply_set(pe_config *c, const char *assignment, pe_err *err) {
    const char *eq = strchr(assignment, '=');
    const char *dot = eq ? memchr(assignment, '.', (size_t)(eq - assignment)) : NULL;
    if (!dot || dot == assignment || dot + 1 == eq) /* malformed argument: a usage error (exit 1) */
        return pe_fail(err, PE_ERR_USAGE, "--set '%s': expected the form --set section.key=value, e.g. --set "
                       "model.path=model.bin (run with --help to list the keys)", assignment);
    char section[64], key[64];
    size_t sec_len = (size_t)(dot - assignment), key_len = (size_t)(eq - dot - 1);
    if (sec_len >= sizeof section || key_len >= sizeof key)
        return pe_fail(err, PE_ERR_INPUT, "--set '%s': unknown key; run with --help to list the keys", assignment);
    memcpy(section, assignment, sec_len);
    section[sec_len] = '\0';
    memcpy(key, dot + 1, key_len);
    key[key_len] = '\0';
    return cfg_set_value(c, section, key, eq + 1, NULL, "--set", err);
}

static pe_status cfg_validate_keys(const pe_config *c, int train, pe_err *err) {
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        if (train && !strcmp(k->section, "model") && !strcmp(k->key, "path") && !c->model_path[0]) continue;
        const void *p = cfg_field_cptr(c, k);
        if (k->type == CFG_INT || k->type == CFG_LONG) {
            long v = k->type == CFG_INT ? *(const int *)p : *(const long *)p;
            if (v < k->min || v > cfg_max_value(k)) return cfg_fail_range(k, v, "config", err);
        } else if (k->type == CFG_DOUBLE) {
            double v = *(const double *)p;
            if (!(v >= k->dmin && v <= k->dmax))
                return pe_fail(err, PE_ERR_INPUT, "config: %s.%s = %g is out of range; it must be between %g and %g",
                               k->section, k->key, v, k->dmin, k->dmax);
        } else if (memchr(p, '\0', k->size) == NULL) {
            return pe_fail(err, PE_ERR_INTERNAL, "config: %s.%s is not NUL-terminated", k->section, k->key);
        } else if (k->required && ((const char *)p)[0] == '\0') {
            return pe_fail(err, PE_ERR_INPUT, "config: %s.%s is not set; set it in the INI file ([%s] %s = ...) "
                           "or with --set %s.%s=...", k->section, k->key, k->section, k->key, k->section, k->key);
        } else if (k->type == CFG_ENUM && !cfg_has_choice(k, p)) {
            return cfg_fail_enum(k, p, "config", err);
        }
    }
    return PE_OK;
}

pe_status cfg_parse_span(const char *span, double *begin, double *end, pe_err *err) {
    char *e1 = NULL, *e2 = NULL;
    *begin = strtod(span, &e1);
    if (e1 && *e1 == ':') *end = strtod(e1 + 1, &e2);
    if (!e1 || *e1 != ':' || !e2 || *e2 != '\0' || !(*begin >= 0.0 && *begin < *end && *end <= 1.0))
        return pe_fail(err, PE_ERR_INPUT, "config: data.span = \"%s\" is not begin:end with 0 <= begin < end <= 1 "
                       "(e.g. 0:0.9 for the first 90%%)", span);
    return PE_OK;
}

pe_status cfg_validate(const pe_config *c, pe_err *err) {
    pe_status st = cfg_validate_keys(c, 0, err);
    double    b, e;
    return st ? st : cfg_parse_span(c->data_span, &b, &e, err);
}

pe_status cfg_validate_train(const pe_config *c, pe_err *err) {
    pe_status st = cfg_validate_keys(c, 1, err);
    double    b, e;
    if (!st) st = cfg_parse_span(c->data_span, &b, &e, err);
    if (!st && !c->model_path[0] && !c->model_config[0])
        st = pe_fail(err, PE_ERR_INPUT, "config: a new model needs its architecture: set model.config (a config.json), "
                     "or model.path to start from a checkpoint");
    if (!st && c->tr_batch % c->tr_grad_chunks)
        st = pe_fail(err, PE_ERR_INPUT, "config: train.batch = %d is not a multiple of train.grad_chunks = %d",
                     c->tr_batch, c->tr_grad_chunks);
    if (!st && c->tr_finetune_dense > c->tr_steps)
        st = pe_fail(err, PE_ERR_INPUT, "config: train.finetune_dense_steps = %d exceeds train.steps = %d",
                     c->tr_finetune_dense, c->tr_steps);
    if (!st && c->tr_val_span[0]) { /* the held-out part must not be trained on */
        double vb, ve;
        st = cfg_parse_span(c->tr_val_span, &vb, &ve, err);
        if (st) pe_fail(err, PE_ERR_INPUT, "config: train.val_span = \"%s\" is not begin:end with 0 <= begin < end <= 1 "
                        "(e.g. 0.9:1 with data.span = 0:0.9)", c->tr_val_span);
        else if (vb < e && b < ve)
            st = pe_fail(err, PE_ERR_INPUT, "config: train.val_span = %s overlaps data.span = %s: the held-out part "
                         "must not be trained on (e.g. data.span = 0:0.9 with train.val_span = 0.9:1)",
                         c->tr_val_span, c->data_span);
    }
    return st;
}

void *cfg_to_json(const pe_config *c) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        const void *p = cfg_field_cptr(c, k);
        cJSON *sec = cJSON_GetObjectItemCaseSensitive(root, k->section);
        if (!sec) sec = cJSON_AddObjectToObject(root, k->section);
        cJSON *item = NULL;
        if (sec && k->type == CFG_INT) item = cJSON_AddNumberToObject(sec, k->key, *(const int *)p);
        else if (sec && k->type == CFG_LONG) item = cJSON_AddNumberToObject(sec, k->key, (double)*(const long *)p);
        else if (sec && k->type == CFG_DOUBLE && isinf(*(const double *)p))
            item = cJSON_AddStringToObject(sec, k->key, "inf"); /* JSON has no infinity */
        else if (sec && k->type == CFG_DOUBLE) item = cJSON_AddNumberToObject(sec, k->key, *(const double *)p);
        else if (sec) item = cJSON_AddStringToObject(sec, k->key, p);
        if (!item) {
            cJSON_Delete(root);
            return NULL;
        }
    }
    return root;
}

void cfg_identity_trim(void *json) {
    cJSON *root = json;
    for (size_t i = 0; root && i < CFG_N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        if (!k->late) continue;
        cJSON *sec = cJSON_GetObjectItemCaseSensitive(root, k->section);
        cJSON *it  = cJSON_GetObjectItemCaseSensitive(sec, k->key);
        if (!it) continue;
        const char *d = k->def ? k->def : "";
        int at_def = k->type == CFG_INT || k->type == CFG_LONG || k->type == CFG_DOUBLE
                         ? cJSON_IsNumber(it) && it->valuedouble == strtod(d, NULL)
                         : cJSON_IsString(it) && !strcmp(it->valuestring, d);
        if (at_def) cJSON_DeleteItemFromObjectCaseSensitive(sec, k->key);
    }
}

void *cfg_to_json_identity(const pe_config *c) {
    cJSON *j = cfg_to_json(c);
    cfg_identity_trim(j);
    return j;
}

/* does the key match the filter: space-separated "section" or "section.key" words; NULL = every key */
static int cfg_key_listed(const cfg_key *k, const char *only) {
    if (!only) return 1;
    size_t ls = strlen(k->section), lk = strlen(k->key);
    for (const char *p = only; *p;) {
        while (*p == ' ') p++;
        size_t n = strcspn(p, " ");
        if (n == ls && !strncmp(p, k->section, ls)) return 1;
        if (n == ls + 1 + lk && !strncmp(p, k->section, ls) && p[ls] == '.' && !strncmp(p + ls + 1, k->key, lk)) return 1;
        p += n;
    }
    return 0;
}

void cfg_print_keys(FILE *f, const char *only) {
    int w_name = 3, w_def = 7;
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        if (!cfg_key_listed(&cfg_keys[i], only)) continue;
        int n = (int)(strlen(cfg_keys[i].section) + 1 + strlen(cfg_keys[i].key));
        int d = cfg_keys[i].required ? 10 : cfg_keys[i].def[0] ? (int)strlen(cfg_keys[i].def) : 2;
        if (n > w_name) w_name = n;
        if (d > w_def) w_def = d;
    }
    fprintf(f, "%-*s  %-*s  %s\n", w_name, "key", w_def, "default", "meaning");
    for (size_t i = 0; i < CFG_N_KEYS; i++) {
        const cfg_key *k = &cfg_keys[i];
        if (!cfg_key_listed(k, only)) continue;
        char name[128];
        snprintf(name, sizeof name, "%s.%s", k->section, k->key);
        const char *def = k->required ? "(required)" : k->def[0] ? k->def : "\"\"";
        fprintf(f, "%-*s  %-*s  %s", w_name, name, w_def, def, k->help);
        if (k->type == CFG_ENUM) fprintf(f, " [%s]", k->choices);
        fputc('\n', f);
    }
}
