/* config.h: run configuration from an INI file (parsed by inih) plus --set overrides.
 *
 * Table-driven: every key is declared once in config.c (section, key, type, default, help);
 * an unknown section or key is an error that names the file, line and the known keys.
 * Paths in the INI file are resolved relative to the INI file's folder; paths given with
 * --set are relative to the current directory. The resolved config (every key, defaults
 * included) is echoed into results.json by cfg_to_json.
 *
 * Sections and keys (docs/config.md lists them all):
 *   [model] path, format (auto|llama2c|safetensors), tokenizer (auto | bytes | none | path), config
 *   [data]  path, format (auto|text|idx|tokens), mode (documents|windows|images), labels, limit,
 *           context (0 = model seq_len), stride (0 = context), dtype (uint16|uint32), eos, span
 *   [run]   out, batch, shard, member_block, per_example
 *   [pathways] scheme, ratio, sigma, lambda, keep, members, seed, granularity, plan, combine
 *   [importance] statistics, ablation
 *   [train] steps, batch, grad_chunks, context, lr, min_lr, warmup, weight_decay, beta1, beta2, eps,
 *           clip, finetune_dense_steps, seed, checkpoint_minutes, checkpoint_steps, log_every
 */
#pragma once
#include "common.h"

#define CFG_PATH_MAX 4096

typedef struct {
    /* [model] */
    char model_path[CFG_PATH_MAX];
    char model_format[32];          /* auto | llama2c | safetensors */
    char model_tokenizer[CFG_PATH_MAX]; /* path | "bytes" | "none" | "auto" = "" (tok_init_for_model) */
    char model_config[CFG_PATH_MAX];    /* safetensors config.json; "" = <model dir>/config.json */
    /* [data] */
    char data_path[CFG_PATH_MAX];
    char data_format[32];           /* auto | text | idx | tokens */
    char data_mode[32];             /* documents | windows | images ("" = auto: images for idx, documents for text) */
    char data_labels[CFG_PATH_MAX]; /* idx labels file; "" = derived from path (images-idx3 -> labels-idx1) */
    long data_limit;                /* 0 = all */
    int  data_context;              /* 0 = model seq_len */
    int  data_stride;               /* 0 = context */
    char data_dtype[16];            /* tokens: uint16 | uint32 */
    int  data_eos;                  /* tokens, documents: separator id; -1 = none */
    char data_span[64];             /* "begin:end" fractions of the file (text: bytes, idx: images); "0:1" = all */
    /* [run] */
    char run_out[CFG_PATH_MAX];
    int  run_batch;                 /* sequences (or images) per forward pass */
    int  run_per_example;           /* 1 = write per_example.msgpack */
    int  run_shard;                 /* units per task (MPI runs, journal) */
    int  run_member_block;          /* members per task, 0 = all */
    /* [pathways] */
    char   pw_scheme[16];           /* dense | unbiased | local | random-k | window | head-drop */
    double pw_ratio;                /* rho >= 1 */
    double pw_sigma;                /* local: width */
    double pw_lambda;               /* random-k: decay (inf = uniform) */
    double pw_keep;                 /* head-drop: keep probability (0 = 1/rho) */
    int    pw_members;              /* K, 0 = dense only */
    long   pw_seed;
    char   pw_granularity[16];      /* head | layer | sequence */
    char   pw_combine[16];          /* prob | logit */
    char   pw_plan[CFG_PATH_MAX];   /* scheme = plan: plan JSON */
    /* [importance] */
    int    imp_statistics;          /* sampled importance + dense attention statistics */
    int    imp_ablation;            /* explicit head / layer ablations */
    long   imp_units;               /* drop-one importance passes: units per component (0 = none) */
    /* [train] (pathens train; docs/training.md) */
    int    tr_steps;                /* optimizer steps in all (SSA steps + dense fine-tune steps) */
    int    tr_batch;                /* examples per step (global, over every rank) */
    int    tr_grad_chunks;          /* fixed chunks of a batch: the unit of work and of gradient summation */
    int    tr_context;              /* LM: tokens per training sequence; 0 = the model's seq_len */
    double tr_lr, tr_min_lr;        /* peak and final learning rate (cosine) */
    int    tr_warmup;               /* linear warm-up steps */
    double tr_weight_decay, tr_beta1, tr_beta2, tr_eps, tr_clip;
    int    tr_finetune_dense;       /* the last N steps train with dense attention */
    long   tr_seed;                 /* initialisation and data order */
    double tr_checkpoint_minutes;   /* write a checkpoint at least this often (rank 0) */
    int    tr_checkpoint_steps;     /* and every N steps (0 = by time only) */
    int    tr_log_every;            /* progress line and train_log.csv row every N steps */
    char   tr_val_span[64];         /* held-out part of data.path scored densely ("" = none) */
    int    tr_val_every;            /* score it every N steps and at the last (0 = at the last only) */
    int    tr_augment_crop;         /* images: random shift by up to N pixels each way, zero fill */
    int    tr_augment_flip;         /* images: 1 = random left-right mirror */
    double tr_dropout;              /* embedding + residual-branch dropout probability (0 = off) */
} pe_config;

/* Set every key to its default. */
void cfg_init_defaults(pe_config *c);
/* Parse an INI file into c (on top of the defaults already there). */
pe_status cfg_load_ini(pe_config *c, const char *path, pe_err *err);
/* Apply one "section.key=value" override (value paths relative to the cwd). */
pe_status cfg_apply_set(pe_config *c, const char *assignment, pe_err *err);
/* Set one key as if read from the INI file ini_path (paths relative to its folder; NULL: cwd). */
pe_status cfg_apply_value(pe_config *c, const char *section, const char *key, const char *value, const char *ini_path,
                          pe_err *err);
/* Check ranges and enums after everything is applied (e.g. batch >= 1, mode known). */
pe_status cfg_validate(const pe_config *c, pe_err *err);
/* The same for pathens train: model.path may be empty (a new model from model.config). */
pe_status cfg_validate_train(const pe_config *c, pe_err *err);
/* data.span parsed: 0 <= *begin < *end <= 1 */
pe_status cfg_parse_span(const char *span, double *begin, double *end, pe_err *err);
/* The resolved config as a cJSON object { "model": {...}, "data": {...}, "run": {...} }.
 * Returned as void* (a cJSON*) so this header does not need cJSON.h. */
void *cfg_to_json(const pe_config *c);
/* The same, as run identities hash it (sweep point folders, training checkpoints, a run's
 * config.json check): keys added later are left out while at their default, so a new key does not
 * move the folders or refuse the checkpoints of runs made before it existed. */
void *cfg_to_json_identity(const pe_config *c);
/* The same trimming on a config object read back (a results.json's "config", a cJSON*). */
void cfg_identity_trim(void *json);
/* Print the key table (section, key, default, help) for --help: only the keys named in `only`
 * (space-separated "section" or "section.key" words), every key when it is NULL. */
void cfg_print_keys(FILE *f, const char *only);
