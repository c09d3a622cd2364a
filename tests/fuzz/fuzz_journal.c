/* fuzz_journal: the evaluation journal <run.out>/journal.msgpack (mpi/journal.c: the reader is
 * MPI-free, msgpack + zlib), replayed as the coordinator replays it (mpi/dist.c, one process):
 * journal_open with the coordinator's task check, then every task the journal did not hold is
 * computed, appended and merged, then the rows are reduced into results.json (results_add_lm /
 * results_add_cls). The evaluations are fixed tiny ones (2 members, importance statistics and
 * ablations on, run.shard = 2), each with its own journal fingerprint 0x70617468656e73NN:
 *   01 text documents, both members per task      02 the same, one member per task ("lp" rows)
 *   03 text windows (context 8, stride 4)          04 images (ViT), both members per task
 *   05 images, one member per task
 * on a 1-layer 2-head byte-level LM and a 1-layer ViT on 6 random 4x4 images (seeded weights).
 * Whatever the journal held, a replay that succeeds must give finite results (no NaN / null, no
 * Inf) with kept connections in [0, allowed].
 * Input: journal.msgpack. PATHENS_FUZZ_SAVE=DIR copies the journal each evaluation leaves to
 * DIR/journal-NN.msgpack (an empty input gives the complete journal of each: seeds). */
#include <cjson/cJSON.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "ensemble.h"
#include "fuzz_util.h"
#include "journal.h"
#include "results.h"
#include "tokenizer.h"
#include "train.h"

static const char TEXT[] = "the cat sat on the mat\n\nthe dog ran\n\nabcabcabc abc\n\nx\n\nhello there, world\n\n"
                           "a b c d e f g h i j\n";

typedef struct {
    const model         *m;
    const text_dataset  *td; /* exactly one of td, id */
    const image_dataset *id;
    int                  block;
    uint64_t             fp;
} setup_t;

typedef struct {
    ens_rows *all;
    uint8_t  *done;
    int       shard, n_units, n_tasks, K, block, n_blocks;
    const setup_t *su;
} coord;

static train_params lm, vit; /* the models: seeded weights in memory */
static text_dataset docs, wins;
static image_dataset imgs;
static pw_config    pw;
static ens_options  eo;
static setup_t      setups[5];
static msgpack_sbuffer rows_cache[5][16]; /* packed rows of each setup's tasks, computed on first use */

static void model_of(train_params *p, int images, pe_err *err) {
    model_config c = {0};
    c.dim = 4, c.hidden_dim = 8, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 2, c.vocab_size = 256, c.seq_len = 16;
    c.norm = MODEL_NORM_LAYERNORM, c.norm_eps = 1e-5f, c.pos = MODEL_POS_LEARNED, c.mlp = MODEL_MLP_GELU;
    c.causal = 1, c.bias = 1, c.head = MODEL_HEAD_LM_TIED, c.input = MODEL_INPUT_TOKENS, c.pixel_std = 1.0f;
    if (images) {
        c.vocab_size = 0, c.seq_len = 5, c.causal = 0, c.head = MODEL_HEAD_CLS_TOKEN, c.n_classes = 3;
        c.input = MODEL_INPUT_PATCHES, c.image_size = 4, c.patch_size = 2, c.channels = 1, c.pixel_mean = 0.5f;
        c.pixel_std = 0.25f;
    }
    if (train_params_init(p, &c, err)) {
        fprintf(stderr, "fuzz_journal setup: %s\n", err->msg);
        abort();
    }
    train_params_seed(p, images ? 11 : 7);
}

static void setup(void) {
    pe_err err = {0};
    model_of(&lm, 0, &err);
    model_of(&vit, 1, &err);
    fz_write("data.txt", TEXT, sizeof TEXT - 1);
    char path[4300];
    fz_path(path, sizeof path, "data.txt");
    tokenizer tk;
    tok_init_bytes(&tk);
    if (data_load_text(&docs, path, &tk, DATA_MODE_DOCUMENTS, 16, 0, 0, &err) ||
        data_load_text(&wins, path, &tk, DATA_MODE_WINDOWS, 8, 4, 5, &err))
        goto fail;
    tok_free(&tk);
    imgs.n = 6, imgs.rows = 4, imgs.cols = 4, imgs.n_classes = 3;
    imgs.pixels = malloc(6 * 16);
    imgs.labels = malloc(6);
    for (int i = 0; i < 6 * 16; i++) imgs.pixels[i] = (uint8_t)(i * 37 + 11);
    for (int i = 0; i < 6; i++) imgs.labels[i] = (uint8_t)(i % 3);
    pw.scheme = PW_SCHEME_UNBIASED, pw.ratio = 2.0, pw.lambda = INFINITY, pw.members = 2, pw.seed = 3;
    pw.granularity = PW_GRAN_HEAD, pw.n_heads = 2;
    if (pw_config_check(&pw, &err)) goto fail;
    eo.combine = ENS_COMBINE_PROB, eo.batch = 4, eo.importance = 1, eo.ablation = 1;
    setups[0] = (setup_t){&lm.m, &docs, NULL, 2, 0x70617468656e7301ull};
    setups[1] = (setup_t){&lm.m, &docs, NULL, 1, 0x70617468656e7302ull};
    setups[2] = (setup_t){&lm.m, &wins, NULL, 2, 0x70617468656e7303ull};
    setups[3] = (setup_t){&vit.m, NULL, &imgs, 2, 0x70617468656e7304ull};
    setups[4] = (setup_t){&vit.m, NULL, &imgs, 1, 0x70617468656e7305ull};
    return;
fail:
    fprintf(stderr, "fuzz_journal setup: %s\n", err.msg);
    abort();
}

static ens_rows *rows_of(const setup_t *su, int u0, int n, int k0, int kb, pe_err *err) {
    return su->td ? ens_rows_new_block(su->m, su->td, &pw, &eo, u0, n, k0, kb, err)
                  : ens_rows_new_images(su->m, su->id, &pw, &eo, u0, n, k0, kb, err);
}

static void task_range(const coord *cs, int task, int *u0, int *n, int *k0, int *kb) {
    *u0 = task / cs->n_blocks * cs->shard;
    *n  = cs->n_units - *u0 < cs->shard ? cs->n_units - *u0 : cs->shard;
    *k0 = task % cs->n_blocks * cs->block;
    *kb = cs->K - *k0 < cs->block ? cs->K - *k0 : cs->block;
}

static int64_t mint(const msgpack_object *m, const char *key) {
    if (m->type != MSGPACK_OBJECT_MAP) return -1;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key, *v = &m->via.map.ptr[i].val;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) && !memcmp(k->via.str.ptr, key, strlen(key)))
            return v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)v->via.u64
                   : v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? v->via.i64 : -1;
    }
    return -1;
}

/* mpi/dist.c accept_rows: the rows must be the task's */
static pe_status accept_rows(void *ctx, int task, const void *rows_object, pe_err *err) {
    coord *cs = ctx;
    if (task < 0 || task >= cs->n_tasks || cs->done[task])
        return pe_fail(err, PE_ERR_INPUT, "task %d is out of range or already done", task);
    int u0, n, k0, kb;
    task_range(cs, task, &u0, &n, &k0, &kb);
    const msgpack_object *o = rows_object;
    if (mint(o, "u0") != u0 || mint(o, "n") != n || mint(o, "k0") != k0 || mint(o, "kb") != kb)
        return pe_fail(err, PE_ERR_INPUT, "task %d: rows of another task", task);
    pe_status st = ens_rows_check(rows_object, cs->su->m, cs->su->td, u0, n, 1, err); /* as mpi/dist.c */
    if (!st) st = ens_rows_merge(cs->all, rows_object, err);
    if (!st) cs->done[task] = 1;
    return st;
}

static void check_finite(const cJSON *j, const char *where) {
    if (cJSON_IsNumber(j) && !isfinite(j->valuedouble)) {
        fprintf(stderr, "fuzz oracle: replayed journal gave a non-finite %s\n", where);
        abort();
    }
    if (cJSON_IsNull(j)) {
        fprintf(stderr, "fuzz oracle: replayed journal gave null (NaN) for %s\n", where);
        abort();
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, j) check_finite(c, c->string ? c->string : where);
}

static void run(const uint8_t *data, size_t size, const setup_t *su, int which) {
    fz_reset();
    if (size) fz_write("journal.msgpack", data, size);
    coord cs = {0};
    cs.shard = 2, cs.n_units = su->td ? su->td->n_seqs : su->id->n, cs.K = pw.members, cs.block = su->block;
    cs.su = su;
    cs.n_blocks = (cs.K + cs.block - 1) / cs.block;
    cs.n_tasks = (cs.n_units + cs.shard - 1) / cs.shard * cs.n_blocks;
    if (cs.n_tasks > 16) abort(); /* rows_cache */
    pe_err err = {0};
    cs.all = rows_of(su, 0, cs.n_units, 0, cs.K, &err);
    cs.done = calloc((size_t)cs.n_tasks + 1, 1);
    if (!cs.all || !cs.done) {
        fprintf(stderr, "fuzz_journal: %s\n", err.msg);
        abort();
    }
    journal jn;
    pe_status st = journal_open(&jn, fz_dir(), su->fp, cs.n_tasks, accept_rows, &cs, &err);
    fz_check(st, &err, "journal_open");
    for (int task = 0; !st && task < cs.n_tasks; task++) {
        if (cs.done[task]) continue;
        int u0, n, k0, kb;
        task_range(&cs, task, &u0, &n, &k0, &kb);
        /* a worker's packed rows (computed once per task: the evaluation is deterministic, and the
         * fuzzing is about the journal, not the forward passes) */
        msgpack_sbuffer *rb = &rows_cache[which][task];
        if (!rb->data) {
            ens_rows *rw = rows_of(su, u0, n, k0, kb, &err);
            if (!rw || (su->td ? ens_text_rows_run(rw, su->m, su->td, &pw, &eo, &err)
                               : ens_images_rows_run(rw, su->m, su->id, &pw, &eo, &err))) {
                fprintf(stderr, "fuzz_journal: computing task %d: %s\n", task, err.msg);
                abort();
            }
            msgpack_sbuffer_init(rb);
            msgpack_packer pk0;
            msgpack_packer_init(&pk0, rb, msgpack_sbuffer_write);
            ens_rows_pack(rw, &pk0);
            ens_rows_free(rw);
        }
        msgpack_sbuffer rec;
        msgpack_sbuffer_init(&rec);
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        msgpack_unpack_next(&up, rb->data, rb->size, &off);
        journal_pack_task(&rec, task, &up.data); /* as the coordinator does */
        st = journal_append(&jn, rec.data, rec.size, &err);
        if (!st) st = accept_rows(&cs, task, &up.data, &err);
        if (st) {
            fprintf(stderr, "fuzz_journal: task %d computed here was refused: %s\n", task, err.msg);
            abort();
        }
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&rec);
    }
    if (!st) {
        journal_close(&jn);
        cJSON *root = cJSON_CreateObject();
        int64_t *kept = NULL, *allowed = NULL;
        int nk = 0;
        ens_lm_result lr;
        ens_cls_result cr;
        memset(&lr, 0, sizeof lr);
        memset(&cr, 0, sizeof cr);
        if (su->td) {
            st = ens_text_reduce(&lr, cs.all, su->td, &eo, &err);
            fz_check(st, &err, "ens_text_reduce");
            if (!st) {
                results_add_lm(root, &lr);
                free(results_members_csv_lm(&lr));
                free(results_curve_csv_lm(&lr));
                kept = lr.kept, allowed = lr.allowed, nk = lr.K * lr.L * lr.NH;
            }
        } else {
            st = ens_images_reduce(&cr, cs.all, su->id, &eo, &err);
            fz_check(st, &err, "ens_images_reduce");
            if (!st) {
                results_add_cls(root, &cr);
                free(results_members_csv_cls(&cr));
                free(results_curve_csv_cls(&cr));
                kept = cr.kept, allowed = cr.allowed, nk = cr.K * cr.L * cr.NH;
            }
        }
        if (!st) {
            check_finite(root, "results"); /* (importance estimates may be null: too few members) */
            for (int i = 0; i < nk; i++)
                if (kept[i] < 0 || kept[i] > allowed[i]) {
                    fprintf(stderr, "fuzz oracle: replayed journal gave %lld of %lld connections kept\n",
                            (long long)kept[i], (long long)allowed[i]);
                    abort();
                }
            if (su->td) results_add_importance(root, &lr.imp, "nll_per_token");
            else results_add_importance(root, &cr.imp, "nll");
            free(cJSON_PrintUnformatted(root));
            if (su->td) ens_free_lm(&lr);
            else ens_free_cls(&cr);
        }
        cJSON_Delete(root);
        const char *save = getenv("PATHENS_FUZZ_SAVE");
        if (save) {
            char src[4300], dst[4300], *buf = NULL;
            size_t len = 0;
            fz_path(src, sizeof src, "journal.msgpack");
            snprintf(dst, sizeof dst, "%s/journal-%02d.msgpack", save, which + 1);
            if (!pe_read_file(src, &buf, &len, &err)) pe_write_file_atomic(dst, buf, len, &err);
            free(buf);
        }
    }
    ens_rows_free(cs.all);
    free(cs.done);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        fz_reset();
        setup();
        ready = 1;
    }
    for (int i = 0; i < (int)(sizeof setups / sizeof setups[0]); i++) run(data, size, &setups[i], i);
    return 0;
}
