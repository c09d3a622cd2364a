/* fuzz_journal: the evaluation journal <run.out>/journal.msgpack (mpi/journal.c: the reader is
 * MPI-free, msgpack + zlib), replayed as the coordinator replays it (mpi/dist.c, one process):
 * journal_open with the coordinator's task check, then every task the journal did not hold is
 * computed, appended and merged, then the rows are reduced into results.json (results_add_lm).
 * The evaluation is a fixed tiny one: a 1-layer 2-head byte-level LM (seeded weights), six short
 * documents, 2 members, importance statistics and ablations on, run.shard = 2; once with each task
 * holding both members (fingerprint 0x70617468656e7301) and once with one member per task
 * (0x70617468656e7302: split ensembles, the "lp" rows). Whatever the journal held, a replay that
 * succeeds must give finite results (no NaN, no Inf, kept fractions in [0, 1]).
 * Input: journal.msgpack. PATHENS_FUZZ_SAVE=DIR copies the journal each run leaves to
 * DIR/journal-<1|2>.msgpack (an empty input gives the complete journal of each: seeds). */
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
    ens_rows *all;
    uint8_t  *done;
    int       shard, n_units, n_tasks, K, block, n_blocks;
} coord;

static train_params tp; /* the model: seeded weights in memory */
static text_dataset td;
static pw_config    pw;
static ens_options  eo;

static void setup(void) {
    model_config c = {0};
    c.dim = 4, c.hidden_dim = 8, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 2, c.vocab_size = 256, c.seq_len = 16;
    c.norm = MODEL_NORM_LAYERNORM, c.norm_eps = 1e-5f, c.pos = MODEL_POS_LEARNED, c.mlp = MODEL_MLP_GELU;
    c.causal = 1, c.bias = 1, c.head = MODEL_HEAD_LM_TIED, c.input = MODEL_INPUT_TOKENS, c.pixel_std = 1.0f;
    pe_err err = {0};
    if (train_params_init(&tp, &c, &err)) goto fail;
    train_params_seed(&tp, 7);
    fz_write("data.txt", TEXT, sizeof TEXT - 1);
    char path[4300];
    fz_path(path, sizeof path, "data.txt");
    tokenizer tk;
    tok_init_bytes(&tk);
    if (data_load_text(&td, path, &tk, DATA_MODE_DOCUMENTS, 16, 0, 0, &err)) goto fail;
    tok_free(&tk);
    pw.scheme = PW_SCHEME_UNBIASED, pw.ratio = 2.0, pw.lambda = INFINITY, pw.members = 2, pw.seed = 3;
    pw.granularity = PW_GRAN_HEAD, pw.n_heads = c.n_heads;
    if (pw_config_check(&pw, &err)) goto fail;
    eo.combine = ENS_COMBINE_PROB, eo.batch = 4, eo.importance = 1, eo.ablation = 1;
    return;
fail:
    fprintf(stderr, "fuzz_journal setup: %s\n", err.msg);
    abort();
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
    pe_status st = ens_rows_merge(cs->all, rows_object, err);
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

static void run(const uint8_t *data, size_t size, int block, uint64_t fp) {
    fz_reset();
    if (size) fz_write("journal.msgpack", data, size);
    coord cs = {0};
    cs.shard = 2, cs.n_units = td.n_seqs, cs.K = pw.members, cs.block = block;
    cs.n_blocks = (cs.K + cs.block - 1) / cs.block;
    cs.n_tasks = (cs.n_units + cs.shard - 1) / cs.shard * cs.n_blocks;
    pe_err err = {0};
    cs.all = ens_rows_new_block(&tp.m, &td, &pw, &eo, 0, cs.n_units, 0, cs.K, &err);
    cs.done = calloc((size_t)cs.n_tasks + 1, 1);
    if (!cs.all || !cs.done) {
        fprintf(stderr, "fuzz_journal: %s\n", err.msg);
        abort();
    }
    journal jn;
    pe_status st = journal_open(&jn, fz_dir(), fp, cs.n_tasks, accept_rows, &cs, &err);
    fz_check(st, &err, "journal_open");
    for (int task = 0; !st && task < cs.n_tasks; task++) {
        if (cs.done[task]) continue;
        int u0, n, k0, kb;
        task_range(&cs, task, &u0, &n, &k0, &kb);
        ens_rows *rw = ens_rows_new_block(&tp.m, &td, &pw, &eo, u0, n, k0, kb, &err);
        if (!rw || ens_text_rows_run(rw, &tp.m, &td, &pw, &eo, &err)) {
            fprintf(stderr, "fuzz_journal: computing task %d: %s\n", task, err.msg);
            abort();
        }
        msgpack_sbuffer rb, rec;
        msgpack_sbuffer_init(&rb);
        msgpack_sbuffer_init(&rec);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &rb, msgpack_sbuffer_write);
        ens_rows_pack(rw, &pk);
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        msgpack_unpack_next(&up, rb.data, rb.size, &off);
        msgpack_packer_init(&pk, &rec, msgpack_sbuffer_write); /* mpi/dist.c pack_task_record */
        msgpack_pack_map(&pk, 3);
        msgpack_pack_str_with_body(&pk, "t", 1);
        msgpack_pack_str_with_body(&pk, "task", 4);
        msgpack_pack_str_with_body(&pk, "task", 4);
        msgpack_pack_int(&pk, task);
        msgpack_pack_str_with_body(&pk, "rows", 4);
        msgpack_pack_object(&pk, up.data);
        st = journal_append(&jn, rec.data, rec.size, &err);
        if (!st) st = accept_rows(&cs, task, &up.data, &err);
        if (st) {
            fprintf(stderr, "fuzz_journal: task %d computed here was refused: %s\n", task, err.msg);
            abort();
        }
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&rec);
        msgpack_sbuffer_destroy(&rb);
        ens_rows_free(rw);
    }
    if (!st) {
        journal_close(&jn);
        ens_lm_result r;
        memset(&r, 0, sizeof r);
        st = ens_text_reduce(&r, cs.all, &td, &eo, &err);
        fz_check(st, &err, "ens_text_reduce");
        if (!st) {
            cJSON *root = cJSON_CreateObject();
            results_add_lm(root, &r);
            check_finite(root, "results"); /* (importance estimates may be null: too few members) */
            results_add_importance(root, &r.imp, "nll_per_token");
            for (int i = 0; i < r.K * r.L * r.NH; i++)
                if (r.kept[i] < 0 || r.kept[i] > r.allowed[i]) {
                    fprintf(stderr, "fuzz oracle: replayed journal gave %lld of %lld connections kept\n",
                            (long long)r.kept[i], (long long)r.allowed[i]);
                    abort();
                }
            char *csv = results_members_csv_lm(&r);
            free(csv);
            cJSON_Delete(root);
            ens_free_lm(&r);
        }
        const char *save = getenv("PATHENS_FUZZ_SAVE");
        if (save) {
            char src[4300], dst[4300], *buf = NULL;
            size_t len = 0;
            fz_path(src, sizeof src, "journal.msgpack");
            snprintf(dst, sizeof dst, "%s/journal-%d.msgpack", save, block == cs.K ? 1 : 2);
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
    run(data, size, 2, 0x70617468656e7301ull);
    run(data, size, 1, 0x70617468656e7302ull);
    return 0;
}
