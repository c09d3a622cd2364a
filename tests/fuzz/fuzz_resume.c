/* fuzz_resume: training checkpoints and the --resume state (src/train_loop.c load_checkpoint,
 * src/train.c train_params_load), read by the real entry point train_run(resume = 1) of a fixed
 * tiny training run: a 1-layer byte-level GPT (arch.json), a short text, train.steps = 3, batch 2,
 * context 8 (a resumed run trains steps 2 and 3 from the loaded state). The checkpoint folder
 * run.out/checkpoint/step-00000001/ and LATEST come from the input;
 * "@FP@" in state.json is replaced by this config's fingerprint (learnt once per process from a
 * real checkpoint that train_run writes), so mutations get past the fingerprint check.
 * Input parts (FZ_SEP between): LATEST, state.json, config.json, model.safetensors,
 * adam_m.safetensors, adam_v.safetensors, train_log.csv (missing parts: no such file).
 * A resumed run that succeeds must leave a model.safetensors that loads (ckpt_open + model_init)
 * and a train_log.csv of finite losses.
 * The same model.safetensors + config.json also start a fresh run (model.path), which must leave a
 * model that loads too.
 * PATHENS_FUZZ_SAVE=DIR writes the real checkpoint as DIR/resume-seed (a seed). */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "config.h"
#include "fuzz_util.h"
#include "train.h"

static const char ARCH[] = "{\"format\": \"pathens\", \"version\": 1, \"input\": \"tokens\", \"vocab_size\": 256, "
                           "\"seq_len\": 8, \"dim\": 4, \"hidden_dim\": 8, \"n_layers\": 1, \"n_heads\": 2, "
                           "\"n_kv_heads\": 2, \"norm\": \"layernorm\", \"norm_eps\": 1e-5, \"pos\": \"learned\", "
                           "\"mlp\": \"gelu\", \"causal\": true, \"bias\": true, \"head\": \"lm_tied\"}\n";
static const char TEXT[] = "the quick brown fox jumps over the lazy dog; the end of a short training text.\n";
static const char *const PARTS[] = {"checkpoint/LATEST", "checkpoint/step-00000001/state.json",
                                    "checkpoint/step-00000001/config.json",
                                    "checkpoint/step-00000001/model.safetensors",
                                    "checkpoint/step-00000001/adam_m.safetensors",
                                    "checkpoint/step-00000001/adam_v.safetensors", "train_log.csv"};
#define N_PARTS ((int)(sizeof PARTS / sizeof PARTS[0]))

static pe_config cfg;
static char      fingerprint[64];

static void fixed_files(void) {
    fz_write("arch.json", ARCH, sizeof ARCH - 1);
    fz_write("data.txt", TEXT, sizeof TEXT - 1);
    fz_mkdir("run");
}

static char *slurp(const char *name, size_t *len) {
    char path[4300], *buf = NULL;
    fz_path(path, sizeof path, name);
    pe_err err = {0};
    if (pe_read_file(path, &buf, len, &err)) {
        fprintf(stderr, "fuzz_resume setup: %s\n", err.msg);
        abort();
    }
    return buf;
}

static void setup(void) {
    openblas_set_num_threads(1);
    fz_reset();
    fixed_files();
    cfg_init_defaults(&cfg);
    char p[4300];
    pe_err err = {0};
    fz_path(p, sizeof p, "arch.json");
    snprintf(cfg.model_config, sizeof cfg.model_config, "%s", p);
    snprintf(cfg.model_tokenizer, sizeof cfg.model_tokenizer, "bytes");
    fz_path(p, sizeof p, "data.txt");
    snprintf(cfg.data_path, sizeof cfg.data_path, "%s", p);
    fz_path(p, sizeof p, "run");
    snprintf(cfg.run_out, sizeof cfg.run_out, "%s", p);
    cfg.tr_steps = 3, cfg.tr_batch = 2, cfg.tr_grad_chunks = 1, cfg.tr_context = 8, cfg.tr_warmup = 1;
    cfg.tr_checkpoint_steps = 1, cfg.tr_log_every = 1, cfg.tr_finetune_dense = 0;
    /* stopped (as by a signal) after step 1: writes checkpoint/step-00000001, returns 75 */
    volatile sig_atomic_t stop = 1;
    if (cfg_validate_train(&cfg, &err) || train_run(&cfg, NULL, 0, 1, &stop, &err) != PE_ERR_CHECKPOINT) {
        fprintf(stderr, "fuzz_resume setup: the reference training run failed: %s\n", err.msg);
        abort();
    }
    size_t n;
    char *state = slurp("run/checkpoint/step-00000001/state.json", &n);
    cJSON *j = cJSON_Parse(state);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "fingerprint");
    if (!cJSON_IsString(f) || strlen(f->valuestring) >= sizeof fingerprint) {
        fprintf(stderr, "fuzz_resume setup: no fingerprint in the reference state.json\n");
        abort();
    }
    snprintf(fingerprint, sizeof fingerprint, "%s", f->valuestring);
    cJSON_Delete(j);
    free(state);
    const char *save = getenv("PATHENS_FUZZ_SAVE");
    if (save) { /* the real checkpoint as one seed, fingerprint as "@FP@" */
        char out[4300];
        snprintf(out, sizeof out, "%s/resume-seed", save);
        FILE *o = fopen(out, "wb");
        for (int i = 0; o && i < N_PARTS; i++) {
            char name[256];
            snprintf(name, sizeof name, "run/%s", PARTS[i]);
            char *b = slurp(name, &n);
            char *at = strstr(b, fingerprint);
            if (i == 1 && at) {
                fwrite(b, 1, (size_t)(at - b), o);
                fputs("@FP@", o);
                fputs(at + strlen(fingerprint), o);
            } else {
                fwrite(b, 1, n, o);
            }
            if (i + 1 < N_PARTS) fwrite(FZ_SEP, 1, FZ_SEP_LEN, o);
            free(b);
        }
        if (o) fclose(o);
    }
}

/* a training run that succeeds leaves a model that loads (finite weights, every tensor) */
static void must_load(const char *name, const char *what) {
    char path[4300];
    fz_path(path, sizeof path, name);
    ckpt_file ck;
    model m;
    memset(&m, 0, sizeof m);
    pe_err err = {0};
    pe_status st = ckpt_open(&ck, path, "safetensors", "", &err);
    if (!st) {
        st = model_init(&m, &ck, &err);
        if (!st) model_free(&m);
        ckpt_close(&ck);
    }
    if (st) {
        fprintf(stderr, "fuzz oracle: %s succeeded but wrote a model that does not load: %s\n", what, err.msg);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    fz_part p[N_PARTS];
    int n = fz_split(data, size, p, N_PARTS);
    fz_reset();
    fixed_files();
    fz_mkdir("run/checkpoint");
    fz_mkdir("run/checkpoint/step-00000001");
    for (int i = 0; i < n; i++) {
        char name[256];
        snprintf(name, sizeof name, "run/%s", PARTS[i]);
        if (i != 1) {
            fz_write(name, p[i].p, p[i].n);
            continue;
        }
        /* state.json: "@FP@" -> this config's fingerprint */
        size_t cap = p[i].n * 8 + 1, o = 0;
        char *s = malloc(cap);
        for (size_t k = 0; k < p[i].n;) {
            if (p[i].n - k >= 4 && !memcmp(p[i].p + k, "@FP@", 4)) {
                memcpy(s + o, fingerprint, strlen(fingerprint));
                o += strlen(fingerprint), k += 4;
            } else {
                s[o++] = (char)p[i].p[k++];
            }
        }
        fz_write(name, s, o);
        free(s);
    }
    pe_err err = {0};
    /* first, the checkpoint's model.safetensors + config.json as model.path of a fresh training run
     * (before the resume, which removes the step-00000001 folder once it checkpoints step 3) */
    static pe_config start;
    start = cfg;
    fz_path(start.model_path, sizeof start.model_path, "run/checkpoint/step-00000001/model.safetensors");
    start.model_config[0] = '\0';
    fz_path(start.run_out, sizeof start.run_out, "start");
    pe_status st = train_run(&start, NULL, 0, 1, NULL, &err);
    fz_check(st, &err, "train_run from model.path");
    if (!st) must_load("start/model.safetensors", "train_run from model.path");
    st = train_run(&cfg, NULL, 1, 1, NULL, &err);
    fz_check(st, &err, "train_run --resume");
    if (!st) { /* a resumed run that succeeds leaves a model that loads (finite weights, every tensor) */
        char path[4300];
        must_load("run/model.safetensors", "train_run --resume");
        char *log = NULL; /* nor a train_log.csv with a non-finite loss (column 3; accuracy is nan for an LM) */
        fz_path(path, sizeof path, "run/train_log.csv");
        if (pe_read_file(path, &log, NULL, &err) == PE_OK) {
            for (char *line = strchr(log, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
                const char *c = strchr(line + 1, ',');
                c = c ? strchr(c + 1, ',') : NULL;
                if (c && !isfinite(strtod(c + 1, NULL))) {
                    fprintf(stderr, "fuzz oracle: train_run --resume succeeded with a non-finite loss in train_log.csv:\n%s",
                            log);
                    abort();
                }
            }
        }
        free(log);
    }
    return 0;
}
