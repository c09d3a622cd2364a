/* dist.h: running an evaluation over MPI ranks (every rank computes; rank 0 also coordinates, on its
 * main thread), resumable through a journal and preemption-safe. This header does not include mpi.h, so the CLI can
 * call it without MPI types. docs/mpi.md describes the design. */
#pragma once
#include "ensemble.h"

/* MPI_Init / MPI_Finalize around the whole program; single-process runs work without mpirun */
void dist_init(int *argc, char ***argv);
void dist_finalize(void);
int  dist_rank(void);
int  dist_size(void);
/* every rank waits here (start the clock together) */
void dist_barrier(void);
/* rank 0's *v to every rank (a decision only rank 0 can take, e.g. that run.out is already done) */
void dist_bcast_int(int *v);
/* in-place element-wise sums over every rank (train_comm's functions; ctx unused) */
void dist_sum_floats(float *buf, size_t n, void *ctx);
void dist_sum_doubles(double *buf, size_t n, void *ctx);
/* abort every rank (fatal error on one of them) */
void dist_abort(int code);
/* A fatal error of a collective command (train, sweep training) on this rank, whose message rank 0
 * has already printed if it is rank 0: take every rank down. Another rank waits DIST_FAIL_GRACE_S
 * first, then prints its own message with its rank: when every rank hit the error (a config
 * refused everywhere), rank 0's abort ends the job during that wait with one message and no
 * race (an immediate abort could kill rank 0 before it printed); when only this rank did (rank 0
 * waits in a collective), its message still reaches the user. */
#define DIST_FAIL_GRACE_S 3
void dist_fail(int rank, int code, const char *msg);

typedef struct {
    const char *out_dir;     /* journal.msgpack lives here (coordinator only) */
    uint64_t    fingerprint; /* of the resolved config: a journal from another config is refused */
    int         shard;       /* units per task */
    int         member_block; /* members per task (0: all); the curve is then combined on the coordinator */
    int         quiet;       /* no progress on stderr */
    /* filled by dist_eval_text / dist_eval_images on the coordinator: timing per rank, for timing.json */
    double     *rank_compute; /* (size) seconds computing */
    double     *rank_wait;    /* (size) seconds waiting for work / results */
    double     *rank_comm;    /* (size) seconds packing, sending, receiving */
    int        *rank_tasks;   /* (size) tasks done */
    int         replayed;     /* tasks taken from the journal */
    int         dropped;      /* damaged journal records redone */
} dist_opts;

/* Every rank calls this. The coordinator returns the reduced result in r (PE_OK), or
 * PE_ERR_CHECKPOINT (75) after SIGINT / SIGTERM / SIGUSR1 / SIGUSR2 once the journal holds every finished
 * task (it prints what was saved and how to resume, --quiet or not).
 * Workers return PE_OK with r untouched. */
pe_status dist_eval_text(ens_lm_result *r, const model *m, const text_dataset *d, const pw_config *c,
                         const ens_options *o, dist_opts *opt, pe_err *err);
/* the same for an image classifier: units are images, r gets what ens_eval_images gives */
pe_status dist_eval_images(ens_cls_result *r, const model *m, const image_dataset *d, const pw_config *c,
                           const ens_options *o, dist_opts *opt, pe_err *err);
