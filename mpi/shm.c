/* shm.c: one copy of the converted weights per node (shm.h, docs/mpi.md).
 *
 * shm_model_init splits MPI_COMM_WORLD into the ranks of each node (MPI_Comm_split_type, key = world
 * rank, so the node's lowest world rank is its rank 0; PATHENS_SHM_RANKS=K cuts a node into groups
 * of K consecutive ranks), then runs model_init_with over an allocator whose block is one
 * MPI_Win_allocate_shared window per group: group rank 0 allocates the whole block, the others 0
 * bytes, and every rank finds the block with MPI_Win_shared_query. Each rank converts its piece
 * (model.h: model_block_alloc), then MPI_Win_fence + MPI_Barrier make every piece visible to every
 * rank before anything reads the block. From then on the block is only read: each rank maps the
 * whole pages of the block PROT_READ (where mprotect allows it on the window's mapping; Open MPI's
 * osc/sm window is an mmap of a file in /dev/shm), so a stray store faults instead of changing
 * another rank's weights. model_free gives the window back (MPI_Win_free, collective over the
 * group), pages writable again first.
 *
 * Only the main thread calls this (MPI_THREAD_FUNNELED): the model is loaded before rank 0's compute
 * thread starts and freed after it has been joined (src/cli/main.c, mpi/dist.c). */
#include "shm.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    MPI_Comm comm;  /* the ranks sharing one copy (MPI_COMM_NULL: no sharing) */
    int      rank;  /* in comm */
    int      size;
} shm_group;

typedef struct {
    MPI_Win  win;
    MPI_Comm comm;   /* a duplicate of the group's communicator (the barrier after the fill) */
    char    *base;   /* the block: group rank 0's segment of the window */
    size_t   bytes;
    char    *ro;     /* first page mapped read-only here, or NULL */
    size_t   ro_len;
} shm_block;

static shm_weights_info *shm_info = NULL; /* (shm_info_n) on rank 0: what every rank holds */
static int               shm_info_n = 0;

/* A failure inside the collective allocation cannot be returned (the other ranks are inside it too):
 * say what failed and how to avoid it, then take every rank down. */
static void shm_die(const char *what, int rc, size_t bytes) {
    char msg[MPI_MAX_ERROR_STRING] = "";
    int  len = 0;
    if (rc != MPI_SUCCESS) MPI_Error_string(rc, msg, &len);
    int wrank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
    fprintf(stderr,
            "pathens: error: rank %d: %s for the converted weights (%.1f MB shared by the ranks of a node)%s%s; "
            "the window lives in /dev/shm (Open MPI: --mca osc_sm_backing_directory DIR): make room there, or give "
            "every rank its own copy with PATHENS_SHM_RANKS=1\n",
            wrank, what, (double)bytes / 1e6, len ? ": " : "", msg);
    MPI_Abort(MPI_COMM_WORLD, PE_ERR_INTERNAL);
}

static void *shm_alloc(size_t bytes, void *ctx, void **handle, int *part, int *parts, pe_err *err) {
    (void)err; /* every failure here aborts the job: the other ranks of the group wait in the same calls */
    const shm_group *g = ctx;
    shm_block       *b = calloc(1, sizeof *b);
    if (!b) shm_die("out of memory", MPI_SUCCESS, bytes);
    if (bytes > (size_t)INT64_MAX) shm_die("a block too large for MPI_Aint", MPI_SUCCESS, bytes);
    void *mine = NULL, *base = NULL;
    int   rc = MPI_Win_allocate_shared(g->rank == 0 ? (MPI_Aint)bytes : 0, (int)sizeof(float), MPI_INFO_NULL, g->comm,
                                       &mine, &b->win);
    if (rc != MPI_SUCCESS) shm_die("MPI_Win_allocate_shared failed", rc, bytes);
    MPI_Aint qsize = 0;
    int      disp  = 0;
    rc = MPI_Win_shared_query(b->win, 0, &qsize, &disp, &base);
    if (rc != MPI_SUCCESS) shm_die("MPI_Win_shared_query failed", rc, bytes);
    if ((size_t)qsize != bytes || !base || ((uintptr_t)base & (sizeof(float) - 1)))
        shm_die("the shared window has the wrong size or alignment", MPI_SUCCESS, bytes);
    MPI_Comm_dup(g->comm, &b->comm);
    MPI_Win_fence(MPI_MODE_NOPRECEDE, b->win); /* the fill's epoch: local stores into the window */
    b->base  = base;
    b->bytes = bytes;
    *handle  = b;
    *part    = g->rank;
    *parts   = g->size;
    return base;
}

static void shm_ready(void *handle) {
    shm_block *b = handle;
    MPI_Win_fence(MPI_MODE_NOSUCCEED, b->win); /* every rank's stores complete and visible */
    MPI_Barrier(b->comm);                      /* and nobody reads before every piece is in */
    long      pg = sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)b->base + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    uintptr_t hi = ((uintptr_t)b->base + b->bytes) & ~((uintptr_t)pg - 1);
    if (pg > 0 && hi > lo && mprotect((void *)lo, hi - lo, PROT_READ) == 0) {
        b->ro     = (char *)lo;
        b->ro_len = hi - lo;
    }
}

static void shm_release(void *handle) {
    shm_block *b = handle;
    if (b->ro) mprotect(b->ro, b->ro_len, PROT_READ | PROT_WRITE);
    MPI_Win_free(&b->win);
    MPI_Comm_free(&b->comm);
    free(b);
}

pe_status shm_model_init(model *m, ckpt_file *ck, pe_err *err) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) return model_init(m, ck, err);
    int wrank = 0, wsize = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
    MPI_Comm_size(MPI_COMM_WORLD, &wsize);
    /* rank 0's PATHENS_SHM_RANKS, for every rank: 0 unset (a copy per node), K >= 1, -1 not a number */
    int         k   = 0;
    const char *env = getenv("PATHENS_SHM_RANKS");
    if (wrank == 0 && env && *env) {
        char *end = NULL;
        long  v   = strtol(env, &end, 10);
        k         = *end || v < 1 || v > (1 << 24) ? -1 : (int)v;
    }
    if (wsize > 1) MPI_Bcast(&k, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (k < 0)
        return pe_fail(err, PE_ERR_USAGE, "PATHENS_SHM_RANKS='%s' is not a whole number >= 1 (ranks per shared copy of the "
                       "converted weights; 1: a copy per rank; unset: one copy per node)", env && wrank == 0 ? env : "?");
    shm_group g = {MPI_COMM_NULL, 0, 1};
    if (wsize > 1 && k != 1) {
        MPI_Comm node = MPI_COMM_NULL;
        int      nr   = 0;
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, wrank, MPI_INFO_NULL, &node);
        MPI_Comm_rank(node, &nr);
        if (k > 1) {
            MPI_Comm_split(node, nr / k, nr, &g.comm);
            MPI_Comm_free(&node);
        } else {
            g.comm = node;
        }
        MPI_Comm_rank(g.comm, &g.rank);
        MPI_Comm_size(g.comm, &g.size);
        MPI_Comm_set_errhandler(g.comm, MPI_ERRORS_RETURN); /* shm_die explains a failed allocation */
    }
    model_block_alloc al = {shm_alloc, shm_ready, shm_release, &g};
    pe_status         st = model_init_with(m, ck, g.size > 1 ? &al : NULL, err);
    int               leader = wrank;
    if (g.comm != MPI_COMM_NULL) {
        MPI_Bcast(&leader, 1, MPI_INT, 0, g.comm);
        MPI_Comm_free(&g.comm);
    }
    /* what this rank holds, gathered on rank 0 (every rank gets here, model_init_with failed or not) */
    int     shared = st == PE_OK && m->owned_handle != NULL;
    int64_t mine[5] = {shared, shared ? g.size : 1, shared ? leader : wrank,
                       st == PE_OK ? (int64_t)m->owned_floats * (int64_t)sizeof(float) : 0,
                       shared ? (int64_t)((const shm_block *)m->owned_handle)->ro_len : 0};
    int64_t *all = wrank == 0 ? calloc((size_t)wsize * 5, sizeof *all) : NULL;
    if (wrank == 0 && !all) {
        fprintf(stderr, "pathens: error: out of memory gathering what %d ranks hold\n", wsize);
        MPI_Abort(MPI_COMM_WORLD, PE_ERR_INTERNAL);
    }
    if (wsize > 1) MPI_Gather(mine, 5, MPI_INT64_T, all, 5, MPI_INT64_T, 0, MPI_COMM_WORLD);
    else memcpy(all, mine, sizeof mine);
    if (wrank == 0) {
        free(shm_info);
        shm_info   = calloc((size_t)wsize, sizeof *shm_info);
        shm_info_n = shm_info ? wsize : 0;
        for (int r = 0; r < shm_info_n; r++)
            shm_info[r] = (shm_weights_info){(int)all[5 * r], (int)all[5 * r + 1], (int)all[5 * r + 2], all[5 * r + 3],
                                             all[5 * r + 4]};
        free(all);
    }
    return st;
}

const shm_weights_info *shm_rank_info(int r) { return r >= 0 && r < shm_info_n ? &shm_info[r] : NULL; }

int shm_describe(char *buf, size_t n) {
    if (n) buf[0] = '\0';
    if (shm_info_n == 0 || shm_info[0].converted_bytes == 0) return 0;
    int copies = 0, lo = shm_info_n, hi = 0;
    for (int r = 0; r < shm_info_n; r++) {
        const shm_weights_info *w = &shm_info[r];
        if (!w->shared || w->copy_leader == r) copies++;
        if (w->copy_ranks < lo) lo = w->copy_ranks;
        if (w->copy_ranks > hi) hi = w->copy_ranks;
    }
    double mb = (double)shm_info[0].converted_bytes / 1e6;
    char   per[48];
    if (lo == hi) snprintf(per, sizeof per, "%d", lo);
    else snprintf(per, sizeof per, "%d-%d", lo, hi);
    if (hi > 1)
        snprintf(buf, n, "weights: %.1f MB converted to float32, %d cop%s for %d ranks (MPI shared memory, %s ranks per copy)",
                 mb, copies, copies == 1 ? "y" : "ies", shm_info_n, per);
    else
        snprintf(buf, n, "weights: %.1f MB converted to float32, %d cop%s for %d rank%s%s", mb, copies,
                 copies == 1 ? "y" : "ies", shm_info_n, shm_info_n == 1 ? "" : "s",
                 shm_info_n == 1 ? "" : " (one per rank: one rank per node, or PATHENS_SHM_RANKS=1)");
    return 1;
}
