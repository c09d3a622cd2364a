/* train_loop.c: the training run (pathens train): data order, chunks, gradient summation,
 * AdamW, progress, train_log.csv, checkpoints and resume. docs/training.md.
 *
 * Determinism: a step's batch is `batch` global example slots e = step * batch + i. Slot e picks
 * its example (image: a per-epoch permutation keyed by (seed, epoch); text: a window start keyed
 * by (seed, e)) and its SSA draw (seq id e) by counter-based randomness, so nothing depends on
 * which rank computes it. The batch is cut into grad_chunks fixed chunks; rank r computes chunks
 * r, r + size, ... into its own slot of a (chunks, P) buffer, zero elsewhere; one sum over ranks
 * of that buffer is exact (every element has one non-zero term), and every rank then adds the
 * chunks in chunk order. So the weights are bit-identical for any rank count <= grad_chunks.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"
#include "eval.h"
#include "tokenizer.h"
#include "train.h"

typedef struct {
    int            images;     /* 1: image classifier, 0: LM */
    image_dataset  img;
    text_dataset   txt;        /* one token stream (txt.tokens, txt.n_tokens) */
    int            T;          /* LM: positions per training sequence */
    uint64_t       seed;
    int64_t        perm_epoch[2];
    int           *perm[2];    /* (img.n) cached epoch permutations */
} train_data;

/* permutation of epoch ep (Fisher-Yates keyed by (seed, ep)); two cached */
static const int *data_perm(train_data *d, int64_t ep) {
    for (int i = 0; i < 2; i++)
        if (d->perm_epoch[i] == ep) return d->perm[i];
    int slot = d->perm_epoch[0] < d->perm_epoch[1] ? 0 : 1; /* replace the older epoch */
    int *p = d->perm[slot];
    for (int i = 0; i < d->img.n; i++) p[i] = i;
    pw_rng r;
    pw_rng_init(&r, d->seed, 0x65706f63 /* "epoc" */, (uint64_t)ep, 0, 0, 0);
    for (int i = d->img.n - 1; i > 0; i--) {
        int j = (int)(pw_rng_u64(&r) % (uint64_t)(i + 1)), t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    d->perm_epoch[slot] = ep;
    return p;
}

/* ---- validation: a held-out span scored densely by the inference forward ------------------- */

typedef struct {
    int            images;
    image_dataset  img;        /* images: the units are images */
    text_dataset   txt;        /* LM: the units are eval-style windows of T tokens (train.val_span) */
    int            n_units, VB, T, n_chunks;
    model_acts     ma;
    float         *logits;     /* (VB, NC) or (VB, T, V) */
    int           *tok;        /* (VB, T) LM inputs */
    int           *lens;       /* (VB) */
    double        *sums;       /* (n_chunks, 3): Σ nll, targets, correct; one rank's chunks, zero elsewhere */
} train_val;

static void val_free(train_val *vd) {
    model_acts_free(&vd->ma);
    free(vd->logits); free(vd->tok); free(vd->lens); free(vd->sums);
    if (vd->images) data_free_idx(&vd->img);
    else if (vd->txt.tokens) data_free_text(&vd->txt);
    memset(vd, 0, sizeof *vd);
}

/* Load train.val_span of data.path: images, or the windows `pathens eval` makes of it with
 * data.context = T (stride T), so val_loss is the dense nll eval reports for that span. */
static pe_status val_init(train_val *vd, const pe_config *cfg, const train_params *p, int images, int T, int VB,
                          const tokenizer *tk, pe_err *err) {
    double vb, ve;
    memset(vd, 0, sizeof *vd);
    vd->images = images;
    vd->VB = VB;
    vd->T = T;
    pe_status st = cfg_parse_span(cfg->tr_val_span, &vb, &ve, err);
    if (st) return st;
    if (images) {
        if ((st = data_load_idx_span(&vd->img, cfg->data_path, cfg->data_labels, 0, vb, ve, err))) return st;
        vd->n_units = vd->img.n;
    } else {
        if ((st = data_load_text_span(&vd->txt, cfg->data_path, tk, DATA_MODE_WINDOWS, T, T, 0, vb, ve, err))) return st;
        vd->n_units = vd->txt.n_seqs;
    }
    if (vd->n_units < 1)
        return pe_fail(err, PE_ERR_INPUT, "%s: train.val_span = %s holds no %s; widen it", cfg->data_path,
                       cfg->tr_val_span, images ? "image" : "scored token");
    vd->n_chunks = (vd->n_units + VB - 1) / VB;
    size_t nl = images ? (size_t)VB * p->cfg.n_classes : (size_t)VB * T * p->cfg.vocab_size;
    vd->logits = pe_malloc(nl * sizeof(float), err, "validation logits");
    vd->tok    = pe_calloc((size_t)VB * T, sizeof(int), err, "validation tokens");
    vd->lens   = pe_calloc((size_t)VB, sizeof(int), err, "validation lengths");
    vd->sums   = pe_calloc((size_t)vd->n_chunks * 3, sizeof(double), err, "validation sums");
    if (!vd->logits || !vd->tok || !vd->lens || !vd->sums) return PE_ERR_INTERNAL;
    return model_acts_init(&vd->ma, &p->m, VB, T, err);
}

/* Dense nll per target and accuracy (images; NaN for an LM) of the weights in p over the val span.
 * Rank r scores chunks r, r + size, ...; the chunk sums are added in chunk order, so the figures
 * are the same for any rank count. */
static pe_status val_score(double *loss, double *acc, train_val *vd, const train_params *p, const train_comm *comm,
                           pe_err *err) {
    int rank = comm ? comm->rank : 0, size = comm ? comm->size : 1;
    memset(vd->sums, 0, (size_t)vd->n_chunks * 3 * sizeof(double));
    for (int c = rank; c < vd->n_chunks; c += size) {
        int u0 = c * vd->VB, nb = vd->n_units - u0 < vd->VB ? vd->n_units - u0 : vd->VB;
        double *sm = vd->sums + (size_t)c * 3;
        pe_status st;
        if (vd->images) {
            int NC = p->cfg.n_classes;
            st = model_forward_images(vd->logits, &vd->ma, &p->m, vd->img.pixels + (size_t)u0 * vd->img.rows * vd->img.cols,
                                      nb, 0, err);
            if (st) return st;
            for (int b = 0; b < nb; b++) {
                const float *lg = vd->logits + (size_t)b * NC;
                int y = vd->img.labels[u0 + b], best = 0;
                for (int j = 1; j < NC; j++) best = lg[j] > lg[best] ? j : best;
                sm[0] += eval_nll_of(lg, NC, y);
                sm[1] += 1;
                sm[2] += best == y;
            }
        } else {
            int V = p->cfg.vocab_size, T = vd->T;
            for (int b = 0; b < nb; b++) {
                const text_seq *q = &vd->txt.seqs[u0 + b];
                vd->lens[b] = q->len;
                memcpy(vd->tok + (size_t)b * T, vd->txt.tokens + q->start, (size_t)q->len * sizeof(int));
            }
            st = model_forward_tokens(vd->logits, &vd->ma, &p->m, vd->tok, vd->lens, nb, T, 0, err);
            if (st) return st;
            for (int b = 0; b < nb; b++) {
                const text_seq *q = &vd->txt.seqs[u0 + b];
                for (int t = q->score_begin; t < q->len - 1; t++) { /* position t predicts token t + 1 */
                    sm[0] += eval_nll_of(vd->logits + ((size_t)b * T + t) * V, V, vd->txt.tokens[q->start + t + 1]);
                    sm[1] += 1;
                }
            }
        }
    }
    if (size > 1) comm->sum_doubles(vd->sums, (size_t)vd->n_chunks * 3, comm->ctx);
    double s[3] = {0, 0, 0};
    for (int c = 0; c < vd->n_chunks; c++)
        for (int i = 0; i < 3; i++) s[i] += vd->sums[(size_t)c * 3 + i];
    *loss = s[1] > 0 ? s[0] / s[1] : NAN;
    *acc  = vd->images && s[1] > 0 ? s[2] / s[1] : NAN;
    return PE_OK;
}

/* ---- checkpoints ------------------------------------------------------------------------ */

static pe_status write_text(const char *path, const char *text, pe_err *err) {
    return pe_write_file_atomic(path, text, strlen(text), err);
}

static pe_status save_model_dir(const train_params *p, const char *dir, pe_err *err) {
    char path[4200];
    char *js = ckpt_config_to_json(&p->cfg);
    if (!js) return pe_fail(err, PE_ERR_INTERNAL, "out of memory writing config.json");
    snprintf(path, sizeof path, "%s/config.json", dir);
    pe_status st = write_text(path, js, err);
    free(js);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    return st ? st : train_params_save(p, NULL, path, "", err);
}

/* run.out/checkpoint/step-N/{model.safetensors, config.json, adam_m.safetensors,
 * adam_v.safetensors, state.json}, then
 * LATEST (atomic) names it, then the previous one is removed. A kill at any point leaves LATEST
 * naming a complete checkpoint. */
static pe_status save_checkpoint(const train_params *p, const float *m, const float *v, int64_t step,
                                 uint64_t fingerprint, const double *win, const char *out, pe_err *err) {
    char ck[4200], dir[4300], path[4400], prev[64] = "";
    snprintf(ck, sizeof ck, "%s/checkpoint", out);
    snprintf(dir, sizeof dir, "%s/step-%08lld", ck, (long long)step);
    snprintf(path, sizeof path, "%s/LATEST", ck);
    char *old = NULL;
    size_t n;
    if (pe_read_file(path, &old, &n, NULL) == PE_OK) {
        snprintf(prev, sizeof prev, "%s", old);
        free(old);
    }
    pe_status st = pe_mkdir_p(dir, err);
    if (!st) st = save_model_dir(p, dir, err);
    if (!st) { /* AdamW moments, one file each, in the model's layout */
        snprintf(path, sizeof path, "%s/adam_m.safetensors", dir);
        st = train_params_save(p, m, path, "adam_m.", err);
        snprintf(path, sizeof path, "%s/adam_v.safetensors", dir);
        if (!st) st = train_params_save(p, v, path, "adam_v.", err);
    }
    if (!st) {
        char js[512]; /* log_window: the sums of the log row in progress, so a resumed log is the same log */
        snprintf(js, sizeof js, "{\"format\": \"pathens-train-state-1\", \"step\": %lld, \"fingerprint\": \"%016llx\", "
                 "\"log_window\": [%.17g, %.17g, %.17g, %.17g, %.17g]}\n", (long long)step, (unsigned long long)fingerprint,
                 win[0], win[1], win[2], win[3], win[4]);
        snprintf(path, sizeof path, "%s/state.json", dir);
        st = write_text(path, js, err);
    }
    if (!st) {
        char name[64];
        snprintf(name, sizeof name, "step-%08lld", (long long)step);
        snprintf(path, sizeof path, "%s/LATEST", ck);
        st = write_text(path, name, err);
        /* the previous checkpoint goes, but only a folder named as this code names them (step-DIGITS):
         * a damaged LATEST must never make it remove anything else */
        prev[strcspn(prev, "\r\n")] = '\0';
        int ours = !strncmp(prev, "step-", 5) && prev[5] && strspn(prev + 5, "0123456789") == strlen(prev + 5);
        if (!st && ours && strcmp(prev, name)) {
            snprintf(path, sizeof path, "%s/%s", ck, prev);
            pe_remove_tree(path);
        }
    }
    return st;
}

/* Load run.out/checkpoint/LATEST into p, m, v; *step set. PE_OK with *step = -1 when there is none. */
static pe_status load_checkpoint(train_params *p, float *m, float *v, int64_t *step, int64_t max_step,
                                 uint64_t fingerprint, double *win, const char *out, pe_err *err) {
    char path[4400], dir[4300];
    char *name = NULL, *js = NULL;
    size_t n;
    *step = -1;
    snprintf(path, sizeof path, "%s/checkpoint/LATEST", out);
    if (access(path, F_OK) != 0) return PE_OK;
    pe_status st = pe_read_file(path, &name, &n, err);
    if (st) return st;
    while (n > 0 && (name[n - 1] == '\n' || name[n - 1] == '\r' || name[n - 1] == ' ')) name[--n] = '\0';
    if (n == 0 || strlen(name) != n || strchr(name, '/') || name[0] == '.') {
        free(name);
        return pe_fail(err, PE_ERR_INPUT, "%s: does not name a checkpoint folder (step-NNNNNNNN) beside it; remove "
                       "%s/checkpoint to start over", path, out);
    }
    snprintf(dir, sizeof dir, "%s/checkpoint/%s", out, name);
    free(name);
    snprintf(path, sizeof path, "%s/state.json", dir);
    st = pe_read_file(path, &js, &n, err);
    if (st) return st;
    cJSON *root = cJSON_Parse(js);
    free(js);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "step");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "fingerprint");
    char want[32];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)fingerprint);
    if (!cJSON_IsNumber(s) || !cJSON_IsString(f)) {
        st = pe_fail(err, PE_ERR_INPUT, "%s: not a pathens training state (step, fingerprint); remove the checkpoint "
                     "folder to start over", path);
    } else if (strcmp(f->valuestring, want)) {
        st = pe_fail(err, PE_ERR_INPUT, "%s: the checkpoint belongs to another training config (fingerprint %s, this "
                     "config %s); use another run.out or remove %s/checkpoint", path, f->valuestring, want, out);
    } else if (!(s->valuedouble >= 0 && s->valuedouble <= (double)max_step) || s->valuedouble != floor(s->valuedouble)) {
        st = pe_fail(err, PE_ERR_INPUT, "%s: step %g is not a whole number in [0, train.steps = %lld]; the training state "
                     "is damaged: remove %s/checkpoint to start over", path, s->valuedouble, (long long)max_step, out);
    } else {
        *step = (int64_t)s->valuedouble;
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "log_window");
        for (int i = 0; i < 5 && cJSON_GetArraySize(w) == 5; i++) {
            const cJSON *x = cJSON_GetArrayItem(w, i);
            if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) {
                st = pe_fail(err, PE_ERR_INPUT, "%s: log_window[%d] is not a finite number; the training state is "
                             "damaged: remove %s/checkpoint to start over", path, i, out);
                break;
            }
            win[i] = x->valuedouble;
        }
    }
    cJSON_Delete(root);
    if (st) return st;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st = train_params_load(p, NULL, path, "", err);
    snprintf(path, sizeof path, "%s/adam_m.safetensors", dir);
    if (!st) st = train_params_load(p, m, path, "adam_m.", err);
    snprintf(path, sizeof path, "%s/adam_v.safetensors", dir);
    if (!st) st = train_params_load(p, v, path, "adam_v.", err);
    for (int64_t k = 0; !st && k < p->n_params; k++) /* second moments: sqrt(v) in every update */
        if (v[k] < 0)
            st = pe_fail(err, PE_ERR_INPUT, "%s: second moment %lld is %g, below 0; the checkpoint is damaged: remove "
                         "%s/checkpoint to start over", path, (long long)k, (double)v[k], out);
    return st;
}

/* the config's identity for resuming: everything but where output goes and how often it is logged */
static uint64_t train_fingerprint(const pe_config *cfg) {
    cJSON *j = cfg_to_json_identity(cfg);
    cJSON *tr = cJSON_GetObjectItemCaseSensitive(j, "train");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "run");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "importance");
    cJSON_DeleteItemFromObjectCaseSensitive(tr, "checkpoint_minutes");
    cJSON_DeleteItemFromObjectCaseSensitive(tr, "checkpoint_steps");
    cJSON_DeleteItemFromObjectCaseSensitive(tr, "log_every");
    cJSON_DeleteItemFromObjectCaseSensitive(tr, "val_span");
    cJSON_DeleteItemFromObjectCaseSensitive(tr, "val_every");
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "pathways"), "members");
    char *s = cJSON_PrintUnformatted(j);
    uint64_t h = pe_hash_str(s ? s : "");
    free(s);
    cJSON_Delete(j);
    return h;
}

/* keep the rows of train_log.csv with step <= upto (a resumed run redoes the rest) */
static void log_truncate(const char *path, int64_t upto) {
    char *buf = NULL;
    size_t n;
    if (pe_read_file(path, &buf, &n, NULL)) return;
    size_t keep = 0;
    for (char *line = buf; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line + 1) : strlen(line);
        long long st;
        if (line == buf || (sscanf(line, "%lld,", &st) == 1 && st <= upto)) keep = (size_t)(line - buf) + len;
        else break;
        line += len;
    }
    pe_write_file_atomic(path, buf, keep, NULL);
    free(buf);
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (s < 0 || !isfinite(s)) snprintf(buf, n, "?");
    else if (s < 60) snprintf(buf, n, "%.0fs", s);
    else if (s < 3600) snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

/* ---- the run ---------------------------------------------------------------------------------- */

pe_status train_run(const pe_config *cfg, const train_comm *comm, int resume, int quiet,
                    volatile const sig_atomic_t *stop, pe_err *err) {
    int rank = comm ? comm->rank : 0, size = comm ? comm->size : 1;
    pe_status    st;
    model_config arch;
    train_params p;
    train_data   d;
    train_acts   a;
    float       *m = NULL, *v = NULL, *slots = NULL;
    uint8_t     *pix = NULL;
    int         *tok = NULL, *lab = NULL;
    int64_t     *seq_ids = NULL;
    FILE        *logf = NULL;
    train_val    vd;
    int          have_val = cfg->tr_val_span[0] != '\0';
    double       val_loss = NAN, val_acc = NAN;
    memset(&vd, 0, sizeof vd);
    memset(&p, 0, sizeof p);
    memset(&d, 0, sizeof d);
    memset(&a, 0, sizeof a);
    d.perm_epoch[0] = d.perm_epoch[1] = -1;

    /* architecture: a checkpoint to start from, or a new model from model.config */
    ckpt_file init;
    int       have_init = 0;
    if (cfg->model_path[0]) {
        st = ckpt_open(&init, cfg->model_path, cfg->model_format, cfg->model_config, err);
        if (st) return st;
        have_init = 1;
        arch = init.cfg;
    } else {
        char *js = NULL;
        size_t n;
        int hf = 0;
        st = pe_read_file(cfg->model_config, &js, &n, err);
        if (!st) st = ckpt_parse_config_json(&arch, &hf, js, cfg->model_config, err);
        free(js);
        if (st) return st;
    }
    const char *where = cfg->model_path[0] ? cfg->model_path : cfg->model_config;
    st = train_check_config(&arch, where, err);
    if (!st) st = train_params_init(&p, &arch, err);
    if (st) goto done;
    if (have_init) {
        /* copy by name from the opened checkpoint (F32 only) */
        for (int i = 0; !st && i < p.n_tensors; i++) {
            const ckpt_tensor *t = ckpt_find(&init, p.specs[i].name);
            size_t want = (size_t)(p.specs[i].shape[0] * (p.specs[i].ndim > 1 ? p.specs[i].shape[1] : 1));
            if (!t || t->dtype != CKPT_DTYPE_F32 || t->nbytes != want * sizeof(float))
                st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\" is missing or not float32 of %zu values; training "
                             "starts from native float32 checkpoints only", cfg->model_path, p.specs[i].name, want);
            else
                memcpy(p.params + p.offset[i], t->data, t->nbytes);
            for (size_t k = 0; !st && k < want; k++) /* NaN / Inf would reach the kernels as UB (kern_expf) */
                if (!isfinite(p.params[p.offset[i] + (int64_t)k]))
                    st = pe_fail(err, PE_ERR_INPUT, "%s: tensor \"%s\" element %zu is %g; training starts from finite "
                                 "weights only", cfg->model_path, p.specs[i].name, k,
                                 (double)p.params[p.offset[i] + (int64_t)k]);
        }
        ckpt_close(&init);
        have_init = 0;
        if (st) goto done;
    } else {
        train_params_seed(&p, (uint64_t)cfg->tr_seed);
    }

    /* data */
    double sb = 0.0, se = 1.0;
    if ((st = cfg_parse_span(cfg->data_span, &sb, &se, err))) goto done;
    d.images = arch.input == MODEL_INPUT_PATCHES;
    d.seed   = (uint64_t)cfg->tr_seed;
    if (d.images) {
        if ((st = data_load_idx_span(&d.img, cfg->data_path, cfg->data_labels, cfg->data_limit, sb, se, err))) goto done;
        if (d.img.rows != arch.image_size || d.img.cols != arch.image_size || arch.channels != 1) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: images are %dx%d but the model takes %dx%dx%d", cfg->data_path,
                         d.img.rows, d.img.cols, arch.channels, arch.image_size, arch.image_size);
            goto done;
        }
        if (d.img.n < 1) { st = pe_fail(err, PE_ERR_INPUT, "%s: no images in data.span", cfg->data_path); goto done; }
        d.perm[0] = pe_malloc((size_t)d.img.n * sizeof(int), err, "epoch permutation");
        d.perm[1] = pe_malloc((size_t)d.img.n * sizeof(int), err, "epoch permutation");
        if (!d.perm[0] || !d.perm[1]) { st = PE_ERR_INTERNAL; goto done; }
        d.T = model_image_seq_len(&arch);
        if (have_val && (st = val_init(&vd, cfg, &p, 1, d.T, cfg->tr_batch / cfg->tr_grad_chunks, NULL, err))) goto done;
    } else {
        if (cfg->tr_augment_crop || cfg->tr_augment_flip) {
            st = pe_fail(err, PE_ERR_INPUT, "train.augment_crop and train.augment_flip apply to images only; this model "
                         "reads tokens: set them to 0");
            goto done;
        }
        tokenizer tk;
        if (!strcmp(cfg->model_tokenizer, "bytes")) {
            tok_init_bytes(&tk);
        } else if (cfg->model_tokenizer[0] && strcmp(cfg->model_tokenizer, "none")) {
            if ((st = tok_init_llama2c(&tk, cfg->model_tokenizer, arch.vocab_size, err))) goto done;
        } else {
            st = pe_fail(err, PE_ERR_INPUT, "an LM needs a tokenizer: set model.tokenizer (a llama2.c tokenizer file, or "
                         "'bytes' for a byte-level model)");
            goto done;
        }
        d.T = cfg->tr_context ? cfg->tr_context : arch.seq_len;
        if (d.T > arch.seq_len || d.T < 2) {
            tok_free(&tk);
            st = pe_fail(err, PE_ERR_INPUT, "train.context = %d must be in [2, seq_len = %d]", d.T, arch.seq_len);
            goto done;
        }
        st = data_load_text_span(&d.txt, cfg->data_path, &tk, DATA_MODE_WINDOWS, d.T + 1, d.T + 1, 0, sb, se, err);
        if (!st && have_val) st = val_init(&vd, cfg, &p, 0, d.T, cfg->tr_batch / cfg->tr_grad_chunks, &tk, err);
        tok_free(&tk);
        if (st) goto done;
        if (d.txt.n_tokens < d.T + 1) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: %lld tokens in data.span, fewer than one training sequence of %d",
                         cfg->data_path, (long long)d.txt.n_tokens, d.T + 1);
            goto done;
        }
    }

    /* chunks, buffers */
    int G = cfg->tr_grad_chunks, B = cfg->tr_batch, Bc = B / G;
    if (size > G) {
        st = pe_fail(err, PE_ERR_USAGE, "%d ranks but train.grad_chunks = %d: each rank needs at least one chunk; run "
                     "with at most %d ranks or raise grad_chunks", size, G, G);
        goto done;
    }
    int64_t P = p.n_params;
    m     = pe_calloc((size_t)P, sizeof(float), err, "AdamW first moments");
    v     = pe_calloc((size_t)P, sizeof(float), err, "AdamW second moments");
    slots = pe_calloc((size_t)G * P, sizeof(float), err, "per-chunk gradients (grad_chunks x n_params)");
    seq_ids = pe_calloc((size_t)Bc, sizeof *seq_ids, err, "sequence ids");
    if (d.images) {
        pix = pe_malloc((size_t)Bc * d.img.rows * d.img.cols, err, "image chunk");
        lab = pe_malloc((size_t)Bc * sizeof(int), err, "label chunk");
    } else {
        tok = pe_malloc((size_t)Bc * (d.T + 1) * sizeof(int), err, "token chunk");
    }
    if (!m || !v || !slots || !seq_ids || (d.images ? !pix || !lab : !tok)) { st = PE_ERR_INTERNAL; goto done; }
    if ((st = train_acts_init(&a, &arch, Bc, d.T, err))) goto done;
    a.dropout      = (float)cfg->tr_dropout;
    a.dropout_seed = (uint64_t)cfg->tr_seed;

    /* SSA config */
    pw_config pw = {0};
    int ssa = strcmp(cfg->pw_scheme, "dense") != 0;
    if (ssa) {
        int sc = pw_scheme_parse(cfg->pw_scheme);
        if (sc != PW_SCHEME_UNBIASED && sc != PW_SCHEME_LOCAL && sc != PW_SCHEME_RANDOM_K && sc != PW_SCHEME_WINDOW &&
            sc != PW_SCHEME_HEAD_DROP) {
            st = pe_fail(err, PE_ERR_INPUT, "pathways.scheme = %s cannot drive SSA training; use dense, unbiased, local, "
                         "random-k, window or head-drop", cfg->pw_scheme);
            goto done;
        }
        pw.scheme = (pw_scheme)sc;
        pw.ratio = cfg->pw_ratio;
        pw.sigma = cfg->pw_sigma;
        pw.lambda = cfg->pw_lambda;
        pw.keep = cfg->pw_keep;
        pw.members = 1;
        pw.seed = (uint64_t)cfg->pw_seed;
        pw.granularity = (pw_granularity)pw_granularity_parse(cfg->pw_granularity);
        pw.n_heads = arch.n_heads;
        if ((st = pw_config_check(&pw, err))) goto done;
    }
    train_optim opt = {cfg->tr_lr, cfg->tr_min_lr, cfg->tr_warmup, cfg->tr_steps, cfg->tr_beta1, cfg->tr_beta2,
                       cfg->tr_eps, cfg->tr_weight_decay, cfg->tr_clip};

    double win[5] = {0}; /* loss sum, targets, correct, kept, allowed: since the last log line */
    /* output folder, resume */
    uint64_t fp = train_fingerprint(cfg);
    char     path[4400];
    int64_t  start = 0;
    if (rank == 0 && (st = pe_mkdir_p(cfg->run_out, err))) goto done;
    snprintf(path, sizeof path, "%s/checkpoint/LATEST", cfg->run_out);
    if (!resume && access(path, F_OK) == 0) {
        st = pe_fail(err, PE_ERR_INPUT, "%s exists: this run.out holds a training run; pass --resume to continue it, or "
                     "choose another run.out", path);
        goto done;
    }
    if (resume) {
        int64_t got;
        if ((st = load_checkpoint(&p, m, v, &got, cfg->tr_steps, fp, win, cfg->run_out, err))) goto done;
        if (got >= 0) start = got;
        if (!quiet && rank == 0) {
            if (got >= 0) fprintf(stderr, "resuming from step %lld (%s/checkpoint)\n", (long long)got, cfg->run_out);
            else fprintf(stderr, "no checkpoint in %s: starting at step 0\n", cfg->run_out);
        }
    }
    if (rank == 0) {
        snprintf(path, sizeof path, "%s/train_log.csv", cfg->run_out);
        if (start > 0) log_truncate(path, start);
        logf = fopen(path, start > 0 ? "a" : "w");
        if (!logf) {
            st = pe_fail(err, PE_ERR_INTERNAL, "cannot write %s: %s", path, strerror(errno));
            goto done;
        }
        if (start == 0)
            fprintf(logf, "step,phase,loss,accuracy,lr,grad_norm,examples_per_s,tokens_per_s,att_kept_frac,"
                          "att_tape_bytes,att_flops,elapsed_s,val_loss,val_accuracy\n");
        if (!quiet) {
            int np = (int)(P > 0 ? P : 0);
            fprintf(stderr, "train: %d parameters, %s, batch %d in %d chunks over %d rank%s, %d steps (%d dense "
                    "fine-tune), SSA %s", np, d.images ? "images" : "tokens", B, G, size, size == 1 ? "" : "s",
                    cfg->tr_steps, cfg->tr_finetune_dense, ssa ? cfg->pw_scheme : "off (dense)");
            if (ssa) fprintf(stderr, " rho=%g", cfg->pw_ratio);
            fprintf(stderr, "\n");
        }
    }

    int     HS = arch.dim / arch.n_heads;
    double  t0 = pe_time_now(), t_ck = t0, t_log = t0;
    int64_t ex_log = 0;
    int64_t peak_tape = 0;     /* attention activations held for the backward by one chunk, this log row */
    int64_t n_steps_run = 0;
    /* per phase (0 SSA, 1 dense fine-tune / dense training): steps, Σ kept fraction, Σ attention FLOPs,
     * the largest attention tape in use by a chunk (bytes actually stored, not arena capacity) */
    int64_t ph_steps[2] = {0, 0}, ph_tape[2] = {0, 0};
    double  ph_kept[2] = {0, 0}, ph_flops[2] = {0, 0};
    double  last_loss = NAN;
    for (int64_t s = start; s < cfg->tr_steps; s++) {
        int dense_now = !ssa || s >= cfg->tr_steps - cfg->tr_finetune_dense;
        if (rank == 0 && ssa && cfg->tr_finetune_dense > 0 && s == cfg->tr_steps - cfg->tr_finetune_dense) {
            /* the SSA-only model, before the dense fine-tune: run.out/pre_finetune/ */
            snprintf(path, sizeof path, "%s/pre_finetune", cfg->run_out);
            if ((st = pe_mkdir_p(path, err)) || (st = save_model_dir(&p, path, err))) goto done;
        }
        const pw_config *use = dense_now ? NULL : &pw;
        memset(slots, 0, (size_t)G * P * sizeof(float));
        train_stats tot = {0};
        float scale_img = 1.0f / (float)B, scale_tok = 1.0f / ((float)B * d.T);
        for (int g = rank; g < G; g += size) {
            train_stats cs = {0};
            for (int i = 0; i < Bc; i++) {
                int64_t e = s * B + (int64_t)g * Bc + i; /* global example slot */
                seq_ids[i] = e;
                if (d.images) {
                    int64_t n = d.img.n;
                    int idx = data_perm(&d, e / n)[e % n];
                    size_t         npx = (size_t)d.img.rows * d.img.cols;
                    const uint8_t *src = d.img.pixels + (size_t)idx * npx;
                    if (cfg->tr_augment_crop || cfg->tr_augment_flip)
                        train_augment_image(pix + (size_t)i * npx, src, d.img.rows, d.img.cols, cfg->tr_augment_crop,
                                            cfg->tr_augment_flip, d.seed, e);
                    else
                        memcpy(pix + (size_t)i * npx, src, npx);
                    lab[i] = d.img.labels[idx];
                } else {
                    pw_rng r;
                    pw_rng_init(&r, d.seed, 0x74657874 /* "text" */, (uint64_t)e, 0, 0, 0);
                    int64_t span = d.txt.n_tokens - (d.T + 1) + 1;
                    int64_t st0 = (int64_t)(pw_rng_u64(&r) % (uint64_t)span);
                    memcpy(tok + (size_t)i * (d.T + 1), d.txt.tokens + st0, (size_t)(d.T + 1) * sizeof(int));
                }
            }
            float *gs = slots + (size_t)g * P;
            st = d.images ? train_grad_images(gs, &cs, &a, &p, pix, lab, Bc, use, seq_ids, scale_img, err)
                          : train_grad_tokens(gs, &cs, &a, &p, tok, Bc, d.T, use, seq_ids, scale_tok, err);
            if (st) goto done;
            tot.loss_sum += cs.loss_sum;
            tot.n_targets += cs.n_targets;
            tot.n_correct += cs.n_correct;
            tot.att_kept += cs.att_kept;
            tot.att_allowed += cs.att_allowed;
            /* stored this chunk: the record ints and floats plus the per-call bookkeeping */
            int64_t held = (a.tape.iused + a.tape.fused) * 4 + (int64_t)a.tape.n_calls * (a.tape.T + 3) * 8;
            if (held > peak_tape) peak_tape = held;
            if (held > ph_tape[dense_now]) ph_tape[dense_now] = held;
        }
        double red[6] = {tot.loss_sum, (double)tot.n_targets, (double)tot.n_correct, (double)tot.att_kept,
                         (double)tot.att_allowed, stop && *stop ? 1.0 : 0.0};
        if (size > 1) {
            comm->sum_floats(slots, (size_t)G * P, comm->ctx);
            comm->sum_doubles(red, 6, comm->ctx);
        }
        for (int g = 1; g < G; g++) { /* the chunks in chunk order: the same sum for every rank count */
            const float *gs = slots + (size_t)g * P;
            for (int64_t k = 0; k < P; k++) slots[k] += gs[k];
        }
        double lr   = train_lr_at(&opt, s);
        double norm = train_adamw_step(&p, m, v, slots, &opt, s + 1, lr);
        if (!isfinite(norm)) {
            st = pe_fail(err, PE_ERR_INPUT, "step %lld: the gradient norm is %g: training diverged; lower train.lr or "
                         "raise train.warmup (the last checkpoint is in %s/checkpoint)", (long long)s, norm, cfg->run_out);
            goto done;
        }
        for (int i = 0; i < 5; i++) win[i] += red[i];
        ex_log += B;
        last_loss = red[0] / red[1];
        /* attention FLOPs of the step: kept connections x HS x (2 + 2 forward, 4 + 4 backward) */
        double flops = red[3] * HS * 12.0;
        ph_steps[dense_now]++;
        ph_kept[dense_now] += red[3] / red[4];
        ph_flops[dense_now] += flops;
        n_steps_run++;
        int last = s + 1 == cfg->tr_steps, stopping = red[5] > 0;
        int val_now = have_val && (last || (cfg->tr_val_every && (s + 1) % cfg->tr_val_every == 0));
        if (val_now && (st = val_score(&val_loss, &val_acc, &vd, &p, comm, err))) goto done;
        if (rank == 0 && ((s + 1) % cfg->tr_log_every == 0 || last || stopping || val_now)) {
            double now = pe_time_now(), dt = now - t_log, eps_ = dt > 0 ? ex_log / dt : 0.0;
            double tps = d.images ? eps_ * d.T : eps_ * d.T;
            double acc = d.images ? win[2] / win[1] : NAN;
            double rate = (now - t0) / (double)n_steps_run;
            char eta[32];
            fmt_eta(eta, sizeof eta, rate * (cfg->tr_steps - s - 1));
            fprintf(logf, "%lld,%s,%.6f,%.6f,%.6e,%.6f,%.1f,%.1f,%.6f,%lld,%.6e,%.3f,%.6f,%.6f\n", (long long)(s + 1),
                    dense_now ? "dense" : "ssa", win[0] / win[1], acc, lr, norm, eps_, tps, win[3] / win[4],
                    (long long)peak_tape, flops, now - t0, val_now ? val_loss : NAN, val_now ? val_acc : NAN);
            fflush(logf);
            if (!quiet) {
                fprintf(stderr, "step %6lld/%d %s | loss %.4f", (long long)(s + 1), cfg->tr_steps,
                        dense_now ? "dense" : "ssa  ", win[0] / win[1]);
                if (d.images) fprintf(stderr, " | acc %5.1f%%", 100.0 * acc);
                fprintf(stderr, " | lr %.2e | |g| %.3f | %.0f %s/s | att kept %.1f%% | ETA %s", lr, norm,
                        d.images ? eps_ : tps, d.images ? "img" : "tok", 100.0 * win[3] / win[4], eta);
                if (val_now && d.images) fprintf(stderr, " | val loss %.4f acc %5.2f%%", val_loss, 100.0 * val_acc);
                else if (val_now) fprintf(stderr, " | val loss %.4f (%.3f bits/token)", val_loss, val_loss / log(2.0));
                fprintf(stderr, "\n");
            }
            memset(win, 0, sizeof win);
            ex_log = 0;
            peak_tape = 0;
            t_log = now;
        }
        int want_ck = (cfg->tr_checkpoint_steps && (s + 1) % cfg->tr_checkpoint_steps == 0) ||
                      (cfg->tr_checkpoint_minutes > 0 && pe_time_now() - t_ck >= cfg->tr_checkpoint_minutes * 60.0) ||
                      last || stopping;
        if (rank == 0 && want_ck) {
            if ((st = save_checkpoint(&p, m, v, s + 1, fp, win, cfg->run_out, err))) goto done;
            t_ck = pe_time_now();
        }
        if (stopping && !last) {
            if (rank == 0 && !quiet)
                fprintf(stderr, "stopped by a signal after step %lld; checkpoint written; rerun with --resume\n",
                        (long long)(s + 1));
            st = pe_fail(err, PE_ERR_CHECKPOINT, "stopped by a signal after step %lld (checkpoint in %s/checkpoint); rerun "
                         "with --resume", (long long)(s + 1), cfg->run_out);
            goto done;
        }
    }
    /* resumed from the final checkpoint (a run killed after it, before train.json): no step ran, so
     * the final weights are scored on train.val_span here (train.json's validation was null) */
    if (have_val && start >= cfg->tr_steps && (st = val_score(&val_loss, &val_acc, &vd, &p, comm, err))) goto done;
    if (rank == 0) {
        if ((st = save_model_dir(&p, cfg->run_out, err))) goto done;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "format", "pathens-train-1");
        cJSON_AddNumberToObject(j, "n_params", (double)P);
        cJSON_AddNumberToObject(j, "steps", cfg->tr_steps);
        cJSON_AddNumberToObject(j, "resumed_at_step", (double)start);
        cJSON_AddNumberToObject(j, "ranks", size);
        cJSON_AddNumberToObject(j, "final_train_loss", last_loss);
        if (have_val) { /* the final weights on train.val_span (dense) */
            cJSON *o = cJSON_AddObjectToObject(j, "validation");
            cJSON_AddStringToObject(o, "span", cfg->tr_val_span);
            cJSON_AddNumberToObject(o, "units", vd.n_units);
            cJSON_AddNumberToObject(o, "loss", val_loss);
            if (d.images) cJSON_AddNumberToObject(o, "accuracy", val_acc);
        }
        cJSON_AddNumberToObject(j, "wall_s_this_process", pe_time_now() - t0);
        /* attention cost per phase, over the steps this process ran (a resumed run: since the resume) */
        for (int ph = 0; ph < 2; ph++) {
            if (!ph_steps[ph]) continue;
            cJSON *o = cJSON_AddObjectToObject(j, ph ? "attention_dense_steps" : "attention_ssa_steps");
            cJSON_AddNumberToObject(o, "steps", (double)ph_steps[ph]);
            cJSON_AddNumberToObject(o, "kept_fraction_mean", ph_kept[ph] / ph_steps[ph]);
            cJSON_AddNumberToObject(o, "flops_per_step_mean", ph_flops[ph] / ph_steps[ph]);
            cJSON_AddNumberToObject(o, "tape_bytes_per_chunk_max", (double)ph_tape[ph]);
            cJSON_AddNumberToObject(o, "examples_per_chunk", Bc);
        }
        cJSON_AddItemToObject(j, "config", cfg_to_json(cfg));
        char *txt = cJSON_Print(j);
        cJSON_Delete(j);
        snprintf(path, sizeof path, "%s/train.json", cfg->run_out);
        st = txt ? write_text(path, txt, err) : pe_fail(err, PE_ERR_INTERNAL, "out of memory writing train.json");
        free(txt);
        if (!st && !quiet)
            fprintf(stderr, "wrote %s/model.safetensors and config.json (%lld parameters), train_log.csv, train.json\n",
                    pe_path_tidy(cfg->run_out, path, sizeof path), (long long)P);
    }
done:
    if (have_init) ckpt_close(&init);
    if (logf) fclose(logf);
    train_acts_free(&a);
    val_free(&vd);
    train_params_free(&p);
    free(m); free(v); free(slots); free(seq_ids); free(pix); free(lab); free(tok);
    free(d.perm[0]); free(d.perm[1]);
    if (d.images) data_free_idx(&d.img);
    else if (d.txt.tokens) data_free_text(&d.txt);
    return st;
}
