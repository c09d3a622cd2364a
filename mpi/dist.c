/* dist.c: coordinator and workers (dist.h, docs/mpi.md). Rank 0's main thread coordinates while
 * its second thread computes tasks like a worker (local_main), so every rank computes.
 *
 * Protocol: every message is one MessagePack map with "t" (type) and "v" (version 1), sent as
 * MPI_BYTE with tag DIST_TAG.
 *   worker -> coordinator   {"t":"ready"}                         first request for work
 *                           {"t":"result","task":id,"rows":{..},  a finished task (ens_rows_pack)
 *                            "compute":s,"wait":s,"comm":s}       and the worker's cumulative times
 *                           {"t":"error","msg":"..."}             the worker could not compute
 *   coordinator -> worker   {"t":"task","task":id,"u0":u,"n":n,   units [u, u + n),
 *                            "k0":k,"kb":b}                       members [k, k + b)
 *                           {"t":"stop"}                          no more work
 * Work is pulled: a worker gets its next task in reply to each result, so fast and slow ranks
 * balance. Every received message is checked (type, version, task id, unit range, every array
 * size) before it is used. Results are merged into per-unit rows and reduced once, in dataset
 * order, so results.json does not depend on the number of ranks or the order tasks finished.
 * Units are documents / windows of a text dataset, or images (dist_eval_images): the same tasks,
 * messages, journal and signals; only the rows' fields differ (ensemble.h). */
#include "dist.h"

#include <math.h>
#include <mpi.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "proto.h"

#define DIST_TAG 7
#define DIST_VERSION 1

/* ---- signals ---------------------------------------------------------------------------------
 * SIGINT (Ctrl-C), SIGTERM, SIGUSR1 and SIGUSR2 (as in train) all mean "stop and keep what is done": the coordinator stops
 * handing out work, journals the tasks in flight and exits 75. The handler only sets a flag, writes
 * one line (write(2) is async-signal-safe) and removes coordinator.pid (unlink(2) too), so even a
 * second Ctrl-C (SIGINT is one-shot: the next one kills at once) or mpirun's SIGKILL after its
 * 1 s grace leaves no pid file behind; every finished task is already fsynced in the journal. */
static volatile sig_atomic_t dist_stop_signal = 0;
static char dist_pid_path[4300]; /* "" when there is no pid file */

static const char *dist_signal_name(int sig) {
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : sig == SIGUSR2 ? "SIGUSR2" : "a signal";
}

static void dist_on_signal(int sig) {
    if (!dist_stop_signal) {
        const char *name = dist_signal_name(sig);
        static const char tail[] = ": stopping; the tasks in progress are finished and journaled first "
                                   "(finished tasks are already saved; Ctrl-C again stops at once)\n";
        ssize_t r = write(2, "\npathens: ", 10);
        r = write(2, name, strlen(name));
        r = write(2, tail, sizeof tail - 1);
        (void)r;
        if (dist_pid_path[0]) unlink(dist_pid_path);
    }
    dist_stop_signal = sig;
}

typedef struct {
    struct sigaction intr, term, usr1, usr2;
} saved_signals;

static void signals_install(saved_signals *old, void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &old->term);
    sigaction(SIGUSR1, &sa, &old->usr1);
    sigaction(SIGUSR2, &sa, &old->usr2);
    if (handler != SIG_IGN) sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C kills at once */
    sigaction(SIGINT, NULL, &old->intr);
    if (old->intr.sa_handler != SIG_IGN) /* ignored from the start (a background job of a script, nohup): */
        sigaction(SIGINT, &sa, NULL);    /* stays ignored, as the shell meant */
}

static void signals_restore(const saved_signals *old) {
    sigaction(SIGTERM, &old->term, NULL);
    sigaction(SIGUSR1, &old->usr1, NULL);
    sigaction(SIGUSR2, &old->usr2, NULL);
    sigaction(SIGINT, &old->intr, NULL);
}

/* rank 0 computes tasks on a second thread while its main thread coordinates; only the main thread
 * calls MPI, which MPI_THREAD_FUNNELED allows (Open MPI 4.1 provides up to MPI_THREAD_MULTIPLE).
 * Should an MPI library give less, rank 0 only coordinates, as before (same results, one rank fewer
 * computing). */
static int dist_funneled = 0;

void dist_init(int *argc, char ***argv) {
    int provided = MPI_THREAD_SINGLE;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    dist_funneled = provided >= MPI_THREAD_FUNNELED;
}
void dist_finalize(void) { MPI_Finalize(); }
int dist_rank(void) {
    int r = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}
int dist_size(void) {
    int s = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
}
void dist_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
void dist_fail(int rank, int code, const char *msg) {
    if (rank != 0) {
        struct timespec ts = {DIST_FAIL_GRACE_S, 0};
        while (nanosleep(&ts, &ts) == -1) {} /* EINTR: the rest of the wait */
        fprintf(stderr, "pathens: error on rank %d: %s\n", rank, msg);
    }
    MPI_Abort(MPI_COMM_WORLD, code);
}
void dist_barrier(void) { MPI_Barrier(MPI_COMM_WORLD); }
void dist_bcast_int(int *v) { MPI_Bcast(v, 1, MPI_INT, 0, MPI_COMM_WORLD); }

/* in-place sums over every rank, in pieces of at most 2^30 elements (MPI counts are int) */
void dist_sum_floats(float *buf, size_t n, void *ctx) {
    (void)ctx;
    for (size_t off = 0; off < n; off += (size_t)1 << 30) {
        size_t k = n - off < ((size_t)1 << 30) ? n - off : (size_t)1 << 30;
        MPI_Allreduce(MPI_IN_PLACE, buf + off, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

void dist_sum_doubles(double *buf, size_t n, void *ctx) {
    (void)ctx;
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

/* ---- messages -------------------------------------------------------------------------------- */


static int mtype(const msgpack_object *m, const char *t) {
    const msgpack_object *x = proto_map_get(m, "t"), *v = proto_map_get(m, "v");
    return x && x->type == MSGPACK_OBJECT_STR && x->via.str.size == strlen(t) && !memcmp(x->via.str.ptr, t, strlen(t)) &&
           v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 == DIST_VERSION;
}

static int64_t mint(const msgpack_object *m, const char *key, int64_t dflt) {
    const msgpack_object *x = proto_map_get(m, key);
    if (x && x->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return (int64_t)x->via.u64;
    if (x && x->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) return x->via.i64;
    return dflt;
}

static double mdouble(const msgpack_object *m, const char *key) {
    const msgpack_object *x = proto_map_get(m, key);
    return x && (x->type == MSGPACK_OBJECT_FLOAT64 || x->type == MSGPACK_OBJECT_FLOAT32) ? x->via.f64 : 0.0;
}

static void pack_head(msgpack_packer *pk, const char *t, int fields) {
    msgpack_pack_map(pk, (size_t)fields + 2);
    msgpack_pack_str_with_body(pk, "t", 1);
    msgpack_pack_str_with_body(pk, t, strlen(t));
    msgpack_pack_str_with_body(pk, "v", 1);
    msgpack_pack_int(pk, DIST_VERSION);
}

static void send_buf(const msgpack_sbuffer *sb, int dest) { MPI_Send(sb->data, (int)sb->size, MPI_BYTE, dest, DIST_TAG, MPI_COMM_WORLD); }

/* receive one message (blocking) from src (or any): returns the malloc'ed bytes, *from, *len */
static char *recv_msg(int src, int *from, int *len) {
    MPI_Status s;
    MPI_Probe(src, DIST_TAG, MPI_COMM_WORLD, &s);
    int n = 0;
    MPI_Get_count(&s, MPI_BYTE, &n);
    char *buf = malloc(n > 0 ? (size_t)n : 1);
    MPI_Recv(buf, n, MPI_BYTE, s.MPI_SOURCE, DIST_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    *from = s.MPI_SOURCE;
    *len  = n;
    return buf;
}

/* ---- the evaluation being distributed: text or images ------------------------------------------ */

typedef struct {
    const model         *m;
    const text_dataset  *td; /* exactly one of td, id */
    const image_dataset *id;
    const pw_config     *c;
    const ens_options   *o;
} dist_job;

static int job_units(const dist_job *j) { return j->td ? j->td->n_seqs : j->id->n; }

static ens_rows *job_rows(const dist_job *j, int u0, int n, int k0, int kb, pe_err *err) {
    return j->td ? ens_rows_new_block(j->m, j->td, j->c, j->o, u0, n, k0, kb, err)
                 : ens_rows_new_images(j->m, j->id, j->c, j->o, u0, n, k0, kb, err);
}

static pe_status job_run(const dist_job *j, ens_rows *rw, pe_err *err) {
    return j->td ? ens_text_rows_run(rw, j->m, j->td, j->c, j->o, err) : ens_images_rows_run(rw, j->m, j->id, j->c, j->o, err);
}

/* ---- coordinator ----------------------------------------------------------------------------- */

typedef struct {
    ens_rows *all;
    uint8_t  *done;  /* (n_tasks) */
    int       shard, n_units, n_tasks;
    int       K, block, n_blocks; /* members, members per task, tasks per shard */
    const dist_job *jb;
    int       live; /* 0 while replaying the journal (its records must hold finite numbers) */
} coord_state;

/* task t = (shard t / n_blocks, member block t % n_blocks) */
static void task_range(const coord_state *cs, int task, int *u0, int *n) {
    *u0 = task / cs->n_blocks * cs->shard;
    *n  = cs->n_units - *u0 < cs->shard ? cs->n_units - *u0 : cs->shard;
}

static void task_members(const coord_state *cs, int task, int *k0, int *kb) {
    *k0 = task % cs->n_blocks * cs->block;
    *kb = cs->K - *k0 < cs->block ? cs->K - *k0 : cs->block;
}

/* accept the rows of one task (from the journal or a worker), after checking they are that task */
static pe_status accept_rows(void *ctx, int task, const void *rows_object, pe_err *err) {
    coord_state *cs = ctx;
    if (task < 0 || task >= cs->n_tasks || cs->done[task])
        return pe_fail(err, PE_ERR_INPUT, "task %d is out of range or already done", task);
    int u0, n, k0, kb;
    task_range(cs, task, &u0, &n);
    task_members(cs, task, &k0, &kb);
    const msgpack_object *o = rows_object;
    if (mint(o, "u0", -1) != u0 || mint(o, "n", -1) != n || mint(o, "k0", -1) != k0 || mint(o, "kb", -1) != kb)
        return pe_fail(err, PE_ERR_INPUT, "task %d: rows cover units [%lld, +%lld) members [%lld, +%lld), expected "
                       "[%d, +%d) and [%d, +%d)", task, (long long)mint(o, "u0", -1), (long long)mint(o, "n", -1),
                       (long long)mint(o, "k0", -1), (long long)mint(o, "kb", -1), u0, n, k0, kb);
    /* the values (ens_rows_check); a journal record's numbers must also be finite */
    pe_status st = ens_rows_check(o, cs->jb->m, cs->jb->td, u0, n, !cs->live, err);
    if (!st) st = ens_rows_merge(cs->all, rows_object, err);
    if (!st) cs->done[task] = 1;
    return st;
}

typedef struct {
    double t0, last;
    int    tty, quiet, shown; /* shown: 1 + the done count last printed (0: none) */
} progress;

static void progress_show(progress *p, int done, int total, int replayed, int final) {
    if (p->quiet || (final && !p->tty && p->shown == done + 1)) return; /* that line is out already */
    double now = pe_time_now();
    if (!final && !p->tty && now - p->last < 5.0) return;
    if (!final && p->tty && now - p->last < 0.2) return;
    p->last = now;
    int    fresh = done - replayed;
    double el = now - p->t0, eta = fresh > 0 ? el / fresh * (total - done) : 0.0;
    fprintf(stderr, "%s[%d/%d tasks, %.0f%%] %.1f s elapsed, ETA %.1f s%s", p->tty ? "\r" : "", done, total,
            total ? 100.0 * done / total : 100.0, el, eta, p->tty && !final ? "   " : "\n");
    p->shown = done + 1;
    fflush(stderr);
}

/* ---- rank 0's compute thread ------------------------------------------------------------------
 * Under mpirun, rank 0's main thread coordinates (MPI, journal, progress, signals) and this thread
 * computes tasks as a worker does, without MPI and with the four stop signals blocked: the
 * coordinator gives it a task, it hands back the packed rows, and the coordinator checks, merges
 * and journals them exactly as a worker's result. So N ranks are N computing ranks. */
typedef struct {
    const dist_job *jb;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    int             task, u0, n, k0, kb; /* the task given (task -1: none) */
    int             quit;                /* no more tasks: return */
    int             done_task;           /* >= 0: that task's result is in st, err, rows */
    pe_status       st;
    pe_err          err;
    msgpack_sbuffer rows;                /* ens_rows_pack of the result */
    double          compute, wait;       /* seconds computing, waiting for a task */
} local_worker;

static void *local_main(void *arg) {
    local_worker *lw = arg;
    pthread_mutex_lock(&lw->mu);
    for (;;) {
        double w0 = pe_time_now();
        while (lw->task < 0 && !lw->quit) pthread_cond_wait(&lw->cv, &lw->mu);
        lw->wait += pe_time_now() - w0;
        if (lw->task < 0) break; /* quit */
        int task = lw->task, u0 = lw->u0, n = lw->n, k0 = lw->k0, kb = lw->kb;
        pthread_mutex_unlock(&lw->mu);
        double          c0 = pe_time_now();
        pe_err          e  = {0};
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        ens_rows *rw = job_rows(lw->jb, u0, n, k0, kb, &e);
        pe_status st = rw ? job_run(lw->jb, rw, &e) : (e.code ? e.code : pe_fail(&e, PE_ERR_INTERNAL, "out of memory"));
        if (!st) {
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            ens_rows_pack(rw, &pk);
        }
        ens_rows_free(rw);
        double dt = pe_time_now() - c0;
        pthread_mutex_lock(&lw->mu);
        lw->compute += dt;
        lw->st        = st;
        lw->err       = e;
        lw->rows      = sb;
        lw->done_task = task;
        lw->task      = -1;
    }
    pthread_mutex_unlock(&lw->mu);
    return NULL;
}

/* lr (text) or cr (images) receives the reduced result */
static pe_status coordinator(ens_lm_result *lr, ens_cls_result *cr, const dist_job *jb, dist_opts *opt, int size,
                             pe_err *err) {
    const pw_config   *c = jb->c;
    const ens_options *o = jb->o;
    coord_state cs = {0};
    cs.shard    = opt->shard > 0 ? opt->shard : 16;
    cs.n_units  = job_units(jb);
    cs.K        = c ? c->members : 0;
    cs.block    = opt->member_block > 0 && opt->member_block < cs.K ? opt->member_block : (cs.K > 0 ? cs.K : 1);
    cs.n_blocks = cs.K > 0 ? (cs.K + cs.block - 1) / cs.block : 1;
    if (cs.K == 0) cs.block = 0;
    cs.n_tasks  = (cs.n_units + cs.shard - 1) / cs.shard * cs.n_blocks;
    pe_status st = PE_OK;
    if (cs.n_blocks > 1 && o->combine == ENS_COMBINE_LOGIT)
        st = pe_fail(err, PE_ERR_INPUT, "run.member_block = %d splits the %d members across tasks, which the logit "
                     "combination cannot (it needs every member's full logits together); use pathways.combine = prob "
                     "or run.member_block = 0", opt->member_block, cs.K);
    if (!st) {
        cs.all  = job_rows(jb, 0, cs.n_units, 0, cs.K, err);
        cs.done = calloc((size_t)cs.n_tasks + 1, 1);
        if (!cs.all || !cs.done) st = err->code ? err->code : pe_fail(err, PE_ERR_INTERNAL, "out of memory");
    }
    double  tc = pe_time_now(), t_comm = 0.0, t_wait = 0.0;
    journal jn;
    cs.jb = jb;
    if (!st) st = journal_open(&jn, opt->out_dir, opt->fingerprint, cs.n_tasks, accept_rows, &cs, err);
    if (st) {
        ens_rows_free(cs.all);
        free(cs.done);
        if (size > 1) { /* the workers wait for a task: take every rank down with the message */
            fprintf(stderr, "pathens: error: %s\n", err->msg);
            dist_abort(st);
        }
        return st;
    }
    cs.live       = 1;
    opt->replayed = jn.replayed;
    opt->dropped  = jn.dropped;
    if (jn.dropped) /* damage is worth a word even with --quiet: say what was wrong */
        fprintf(stderr, "pathens: warning: journal %s: %d damaged record%s dropped (%s redone), %d finished task%s "
                "replayed\n", jn.path, jn.dropped, jn.dropped == 1 ? "" : "s", jn.dropped == 1 ? "its task is" : "their tasks are",
                jn.replayed, jn.replayed == 1 ? "" : "s");
    for (int i = 0; i < 3 && jn.why[i][0]; i++) fprintf(stderr, "  dropped %s\n", jn.why[i]);
    if (jn.dropped > 3) fprintf(stderr, "  (and %d more)\n", jn.dropped - 3);
    if (!opt->quiet && jn.replayed && !jn.dropped) {
        char tidy[sizeof jn.path + 8];
        fprintf(stderr, "journal %s: %d finished tasks replayed\n", pe_path_tidy(jn.path, tidy, sizeof tidy), jn.replayed);
    }
    /* SIGINT / SIGTERM / SIGUSR1 / SIGUSR2: stop and keep what is done. <out>/coordinator.pid: where to send them
     * (mpirun forwards only SIGUSR1/2; SIGINT or SIGTERM to mpirun makes it SIGTERM every rank) */
    saved_signals old_sig;
    char          pidtxt[32];
    snprintf(dist_pid_path, sizeof dist_pid_path, "%s/coordinator.pid", opt->out_dir);
    dist_stop_signal = 0;
    signals_install(&old_sig, dist_on_signal);
    snprintf(pidtxt, sizeof pidtxt, "%ld\n", (long)getpid());
    if (pe_write_file_atomic(dist_pid_path, pidtxt, strlen(pidtxt), NULL) || dist_stop_signal) {
        unlink(dist_pid_path); /* a signal between install and write: no pid file left */
    }
    progress pg = {pe_time_now(), 0.0, isatty(2), opt->quiet, 0};
    int n_done = 0, next = 0, rank0_computes = 0;
    for (int t = 0; t < cs.n_tasks; t++) n_done += cs.done[t];
    /* next task not yet done */
    #define ADVANCE() while (next < cs.n_tasks && cs.done[next]) next++
    ADVANCE();
    if (size == 1) { /* one process does everything: the same tasks, journal and signals, no MPI calls */
        while (!st && next < cs.n_tasks && !dist_stop_signal) {
            int u0, n, k0, kb, task = next++;
            task_range(&cs, task, &u0, &n);
            task_members(&cs, task, &k0, &kb);
            double t0 = pe_time_now();
            ens_rows *rw = job_rows(jb, u0, n, k0, kb, err);
            if (!rw) {
                st = err->code ? err->code : PE_ERR_INTERNAL;
                break;
            }
            st = job_run(jb, rw, err);
            if (opt->rank_compute) opt->rank_compute[0] += pe_time_now() - t0;
            if (!st) { /* packed and unpacked as a worker's result would be: the journal needs the bytes,
                        * and merging the unpacked object is exactly what a replay does */
                msgpack_sbuffer rb;
                msgpack_sbuffer_init(&rb);
                msgpack_packer pk;
                msgpack_packer_init(&pk, &rb, msgpack_sbuffer_write);
                ens_rows_pack(rw, &pk);
                msgpack_unpacked up;
                msgpack_unpacked_init(&up);
                size_t off = 0;
                msgpack_unpack_next(&up, rb.data, rb.size, &off);
                msgpack_sbuffer rec;
                msgpack_sbuffer_init(&rec);
                journal_pack_task(&rec, task, &up.data);
                st = journal_append(&jn, rec.data, rec.size, err);
                if (!st) st = accept_rows(&cs, task, &up.data, err);
                msgpack_sbuffer_destroy(&rec);
                msgpack_unpacked_destroy(&up);
                msgpack_sbuffer_destroy(&rb);
            }
            ens_rows_free(rw);
            if (!st) {
                n_done++;
                if (opt->rank_tasks) opt->rank_tasks[0]++;
            }
            ADVANCE();
            progress_show(&pg, n_done, cs.n_tasks, opt->replayed, 0);
        }
    } else {
        int *busy = malloc(sizeof(int) * (size_t)size), active = size - 1; /* busy[r]: task of rank r, -1 idle */
        for (int i = 0; i < size; i++) busy[i] = -1;
        /* rank 0 computes too, on a second thread (busy[0]: its task); the stop signals stay with
         * this thread, which alone calls MPI and writes the journal */
        local_worker lw;
        memset(&lw, 0, sizeof lw);
        lw.jb        = jb;
        lw.task      = -1;
        lw.done_task = -1;
        pthread_t lw_thread;
        int       local_on = 0;
        if (dist_funneled && !pthread_mutex_init(&lw.mu, NULL)) {
            if (!pthread_cond_init(&lw.cv, NULL)) {
                sigset_t block, keep;
                sigemptyset(&block);
                sigaddset(&block, SIGINT);
                sigaddset(&block, SIGTERM);
                sigaddset(&block, SIGUSR1);
                sigaddset(&block, SIGUSR2);
                pthread_sigmask(SIG_BLOCK, &block, &keep); /* the new thread inherits the mask */
                local_on = !pthread_create(&lw_thread, NULL, local_main, &lw);
                pthread_sigmask(SIG_SETMASK, &keep, NULL);
                if (!local_on) pthread_cond_destroy(&lw.cv);
            }
            if (!local_on) pthread_mutex_destroy(&lw.mu);
        }
        rank0_computes = local_on;
        while (!st && (active > 0 || busy[0] >= 0)) {
            int event = 0;
            if (local_on) { /* rank 0's own task: take its result, give it the next task first, then journal */
                double          c0  = pe_time_now();
                int             got = -1;
                pe_status       lst = PE_OK;
                pe_err          lerr;
                msgpack_sbuffer rows;
                msgpack_sbuffer_init(&rows);
                pthread_mutex_lock(&lw.mu);
                if (lw.done_task >= 0) {
                    got  = lw.done_task;
                    lst  = lw.st;
                    lerr = lw.err;
                    rows = lw.rows;
                    msgpack_sbuffer_init(&lw.rows);
                    lw.done_task = -1;
                    busy[0]      = -1;
                }
                ADVANCE();
                if (!lst && busy[0] < 0 && next < cs.n_tasks && !dist_stop_signal) {
                    busy[0] = lw.task = next++;
                    task_range(&cs, lw.task, &lw.u0, &lw.n);
                    task_members(&cs, lw.task, &lw.k0, &lw.kb);
                    pthread_cond_signal(&lw.cv);
                    event = 1;
                }
                pthread_mutex_unlock(&lw.mu);
                if (lst) {
                    st = pe_fail(err, lst, "rank 0: %s", lerr.msg);
                } else if (got >= 0) { /* checked, merged and journaled as a worker's result is */
                    msgpack_unpacked up;
                    msgpack_unpacked_init(&up);
                    size_t off = 0;
                    if (msgpack_unpack_next(&up, rows.data, rows.size, &off) != MSGPACK_UNPACK_SUCCESS) {
                        st = pe_fail(err, PE_ERR_INTERNAL, "rank 0: the rows of task %d do not unpack", got);
                    } else {
                        msgpack_sbuffer rec;
                        msgpack_sbuffer_init(&rec);
                        journal_pack_task(&rec, got, &up.data);
                        pe_err e2 = {0};
                        st = accept_rows(&cs, got, &up.data, &e2);
                        if (st) st = pe_fail(err, PE_ERR_INTERNAL, "rank 0: result of task %d rejected: %s", got, e2.msg);
                        if (!st) st = journal_append(&jn, rec.data, rec.size, err);
                        msgpack_sbuffer_destroy(&rec);
                        if (!st) {
                            n_done++;
                            if (opt->rank_tasks) opt->rank_tasks[0]++;
                        }
                    }
                    msgpack_unpacked_destroy(&up);
                    event = 1;
                }
                msgpack_sbuffer_destroy(&rows);
                if (st) break;
                if (got >= 0) {
                    t_comm += pe_time_now() - c0;
                    progress_show(&pg, n_done, cs.n_tasks, opt->replayed, 0);
                }
                if (active == 0) { /* only rank 0's task is left: wait for it without spinning */
                    struct timespec ts = {0, 500000};
                    double w0 = pe_time_now();
                    nanosleep(&ts, NULL);
                    t_wait += pe_time_now() - w0;
                    continue;
                }
            }
            int flag = 0;
            MPI_Status ps;
            MPI_Iprobe(MPI_ANY_SOURCE, DIST_TAG, MPI_COMM_WORLD, &flag, &ps);
            if (!flag) { /* poll gently: the coordinator must not steal a computing thread's core */
                if (event) continue;
                struct timespec ts = {0, 500000};
                double w0 = pe_time_now();
                nanosleep(&ts, NULL);
                t_wait += pe_time_now() - w0;
                continue;
            }
            double c0 = pe_time_now();
            int from, len;
            char *buf = recv_msg(ps.MPI_SOURCE, &from, &len);
            msgpack_unpacked up;
            msgpack_unpacked_init(&up);
            size_t off = 0;
            int ok = proto_msgpack_bounded(buf, (size_t)len) &&
                     msgpack_unpack_next(&up, buf, (size_t)len, &off) == MSGPACK_UNPACK_SUCCESS;
            int is_result = ok && mtype(&up.data, "result");
            if (!ok || (!is_result && !mtype(&up.data, "ready") && !mtype(&up.data, "error"))) {
                st = pe_fail(err, PE_ERR_INTERNAL, "rank %d sent a message that is not a pathens v%d message", from,
                             DIST_VERSION);
            } else if (mtype(&up.data, "error")) {
                const msgpack_object *msg = proto_map_get(&up.data, "msg");
                st = pe_fail(err, PE_ERR_INPUT, "rank %d: %.*s", from,
                             msg && msg->type == MSGPACK_OBJECT_STR ? (int)msg->via.str.size : 7,
                             msg && msg->type == MSGPACK_OBJECT_STR ? msg->via.str.ptr : "unknown");
            } else if (is_result && ((int)mint(&up.data, "task", -1) != busy[from] || !proto_map_get(&up.data, "rows"))) {
                st = pe_fail(err, PE_ERR_INTERNAL, "rank %d sent a result for task %d but was given task %d", from,
                             (int)mint(&up.data, "task", -1), busy[from]);
            }
            int task_done = is_result && !st ? busy[from] : -1;
            if (!st) { /* reply first (the next task, or stop), so the worker computes while we journal */
                busy[from] = -1;
                ADVANCE();
                msgpack_sbuffer sb;
                msgpack_sbuffer_init(&sb);
                msgpack_packer pk;
                msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
                if (next < cs.n_tasks && !dist_stop_signal) {
                    int u0, n, k0, kb, task = next++;
                    task_range(&cs, task, &u0, &n);
                    task_members(&cs, task, &k0, &kb);
                    pack_head(&pk, "task", 5);
                    msgpack_pack_str_with_body(&pk, "task", 4);
                    msgpack_pack_int(&pk, task);
                    msgpack_pack_str_with_body(&pk, "u0", 2);
                    msgpack_pack_int(&pk, u0);
                    msgpack_pack_str_with_body(&pk, "n", 1);
                    msgpack_pack_int(&pk, n);
                    msgpack_pack_str_with_body(&pk, "k0", 2);
                    msgpack_pack_int(&pk, k0);
                    msgpack_pack_str_with_body(&pk, "kb", 2);
                    msgpack_pack_int(&pk, kb);
                    busy[from] = task;
                } else {
                    pack_head(&pk, "stop", 0);
                    active--;
                }
                send_buf(&sb, from);
                msgpack_sbuffer_destroy(&sb);
            }
            if (task_done >= 0) { /* check and merge, then journal: only an accepted result counts */
                const msgpack_object *rows = proto_map_get(&up.data, "rows");
                msgpack_sbuffer rec;
                msgpack_sbuffer_init(&rec);
                journal_pack_task(&rec, task_done, rows);
                pe_err e2 = {0};
                st = accept_rows(&cs, task_done, rows, &e2);
                if (st) st = pe_fail(err, PE_ERR_INTERNAL, "rank %d: result of task %d rejected: %s", from, task_done, e2.msg);
                if (!st) st = journal_append(&jn, rec.data, rec.size, err);
                msgpack_sbuffer_destroy(&rec);
                if (!st) {
                    n_done++;
                    if (opt->rank_compute) {
                        opt->rank_compute[from] = mdouble(&up.data, "compute");
                        opt->rank_wait[from]    = mdouble(&up.data, "wait");
                        opt->rank_comm[from]    = mdouble(&up.data, "comm");
                        opt->rank_tasks[from]++;
                    }
                }
            }
            msgpack_unpacked_destroy(&up);
            free(buf);
            if (st) break;
            t_comm += pe_time_now() - c0;
            progress_show(&pg, n_done, cs.n_tasks, opt->replayed, 0);
        }
        free(busy);
        if (local_on && !st) { /* rank 0's thread is idle (the loop ran until busy[0] < 0): let it return */
            pthread_mutex_lock(&lw.mu);
            lw.quit = 1;
            pthread_cond_signal(&lw.cv);
            pthread_mutex_unlock(&lw.mu);
            pthread_join(lw_thread, NULL);
            pthread_cond_destroy(&lw.cv);
            pthread_mutex_destroy(&lw.mu);
            msgpack_sbuffer_destroy(&lw.rows);
            if (opt->rank_compute) {
                opt->rank_compute[0] = lw.compute;
                opt->rank_wait[0]    = lw.wait;
            }
        }
        if (st) { /* a fatal error: the journal holds what is done; take every rank down (rank 0's thread too) */
            journal_close(&jn);
            unlink(dist_pid_path);
            dist_pid_path[0] = '\0';
            fprintf(stderr, "pathens: error: %s\n", err->msg);
            dist_abort(st);
        }
    }
    #undef ADVANCE
    journal_close(&jn);
    unlink(dist_pid_path);
    dist_pid_path[0] = '\0';
    int stopped_by = dist_stop_signal;
    signals_restore(&old_sig);
    if (stopped_by) pe_signals_ignore_repeats(); /* a repeat of the signal must not kill the exit 75 */
    if (stopped_by && n_done == cs.n_tasks) { /* finished anyway (the last tasks were in flight): a caller */
        struct sigaction cur;                  /* with its own handler (pathens sweep: stop before the next */
        sigaction(stopped_by, NULL, &cur);     /* point) still gets the signal */
        if (cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN) raise(stopped_by);
    }
    progress_show(&pg, n_done, cs.n_tasks, opt->replayed, 1);
    if (!st && n_done < cs.n_tasks && stopped_by) { /* said even with --quiet: the run did not finish */
        fprintf(stderr, "pathens: stopped by %s after %d of %d tasks; all %d are saved in %s: rerun the same command "
                "(with any number of ranks) to resume; exit 75\n", dist_signal_name(stopped_by), n_done, cs.n_tasks,
                n_done, jn.path);
        st = pe_fail(err, PE_ERR_CHECKPOINT, "checkpointed after %s: %d of %d tasks done; rerun to resume",
                     dist_signal_name(stopped_by), n_done, cs.n_tasks);
    }
    if (!st) st = jb->td ? ens_text_reduce(lr, cs.all, jb->td, o, err) : ens_images_reduce(cr, cs.all, jb->id, o, err);
    if (opt->rank_comm) { /* rank 0: its compute thread's compute and wait, the coordinator's comm */
        opt->rank_comm[0] += t_comm;
        if (!rank0_computes) { /* one process (timed in its loop), or a coordinator without a compute thread */
            opt->rank_wait[0] += t_wait;
            opt->rank_compute[0] += size > 1 ? pe_time_now() - tc - t_comm - t_wait : 0.0;
        }
    }
    ens_rows_free(cs.all);
    free(cs.done);
    return st;
}

/* ---- worker ---------------------------------------------------------------------------------- */

static pe_status worker(const dist_job *jb, pe_err *err) {
    saved_signals old_sig; /* the coordinator decides when to stop; it then says so */
    signals_install(&old_sig, SIG_IGN);
    double t_compute = 0.0, t_wait = 0.0, t_comm = 0.0;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_head(&pk, "ready", 0);
    send_buf(&sb, 0);
    for (;;) {
        double w0 = pe_time_now();
        int    from, len;
        char  *buf = recv_msg(0, &from, &len);
        t_wait += pe_time_now() - w0;
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        int ok = proto_msgpack_bounded(buf, (size_t)len) &&
                 msgpack_unpack_next(&up, buf, (size_t)len, &off) == MSGPACK_UNPACK_SUCCESS;
        if (ok && mtype(&up.data, "stop")) {
            msgpack_unpacked_destroy(&up);
            free(buf);
            break;
        }
        int task = ok ? (int)mint(&up.data, "task", -1) : -1, u0 = ok ? (int)mint(&up.data, "u0", -1) : -1,
            n = ok ? (int)mint(&up.data, "n", -1) : -1, k0 = ok ? (int)mint(&up.data, "k0", -1) : -1,
            kb = ok ? (int)mint(&up.data, "kb", -1) : -1;
        int K = jb->c ? jb->c->members : 0;
        msgpack_unpacked_destroy(&up);
        free(buf);
        msgpack_sbuffer_clear(&sb);
        pe_status st = PE_OK;
        ens_rows *rw = NULL;
        if (!ok || task < 0 || u0 < 0 || n <= 0 || u0 + n > job_units(jb) || k0 < 0 || kb < 0 || k0 + kb > K) {
            st = pe_fail(err, PE_ERR_INTERNAL, "bad task message (task %d, units [%d, +%d), members [%d, +%d))", task, u0,
                         n, k0, kb);
        } else {
            double c0 = pe_time_now();
            rw = job_rows(jb, u0, n, k0, kb, err);
            st = rw ? job_run(jb, rw, err) : (err->code ? err->code : PE_ERR_INTERNAL);
            t_compute += pe_time_now() - c0;
        }
        double m0 = pe_time_now();
        if (st) {
            pack_head(&pk, "error", 1);
            msgpack_pack_str_with_body(&pk, "msg", 3);
            msgpack_pack_str_with_body(&pk, err->msg, strlen(err->msg));
        } else {
            pack_head(&pk, "result", 5);
            msgpack_pack_str_with_body(&pk, "task", 4);
            msgpack_pack_int(&pk, task);
            msgpack_pack_str_with_body(&pk, "compute", 7);
            msgpack_pack_double(&pk, t_compute);
            msgpack_pack_str_with_body(&pk, "wait", 4);
            msgpack_pack_double(&pk, t_wait);
            msgpack_pack_str_with_body(&pk, "comm", 4);
            msgpack_pack_double(&pk, t_comm + (pe_time_now() - m0));
            msgpack_pack_str_with_body(&pk, "rows", 4);
            ens_rows_pack(rw, &pk);
        }
        ens_rows_free(rw);
        send_buf(&sb, 0);
        t_comm += pe_time_now() - m0;
        if (st) break; /* the coordinator aborts the job */
    }
    msgpack_sbuffer_destroy(&sb);
    signals_restore(&old_sig);
    /* the worker ignored stop signals (the coordinator decides); it cannot tell whether one came, and
     * it is about to finalise: a TERM meant for the stop that is still on its way must not kill it */
    pe_signals_ignore_repeats();
    return PE_OK;
}

pe_status dist_eval_text(ens_lm_result *r, const model *m, const text_dataset *d, const pw_config *c,
                         const ens_options *o, dist_opts *opt, pe_err *err) {
    dist_job jb = {m, d, NULL, c, o};
    if (dist_rank() == 0) return coordinator(r, NULL, &jb, opt, dist_size(), err);
    return worker(&jb, err);
}

pe_status dist_eval_images(ens_cls_result *r, const model *m, const image_dataset *d, const pw_config *c,
                           const ens_options *o, dist_opts *opt, pe_err *err) {
    dist_job jb = {m, NULL, d, c, o};
    if (dist_rank() == 0) return coordinator(NULL, r, &jb, opt, dist_size(), err);
    return worker(&jb, err);
}
