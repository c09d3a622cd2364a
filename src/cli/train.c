/* train.c (CLI): pathens train CONFIG.ini [--set section.key=value ...] [--resume] [--threads N] [--quiet]
 *
 * Every rank of an mpirun runs this; train_run (src/train_loop.c) does the work, data-parallel
 * over the ranks through train_comm (mpi/dist.c fills it). SIGTERM, SIGUSR1 and SIGUSR2 set a flag:
 * every rank stops at the next step boundary, rank 0 writes a checkpoint, the exit code is 75. */
#include <cblas.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "train.h"
#include "version.h"
#ifdef PATHENS_WITH_MPI
#include "dist.h"
#endif

static volatile sig_atomic_t train_stop = 0;
static void train_on_signal(int sig) { train_stop = sig; }

/* the config keys pathens train reads (src/train_loop.c) */
#define TRAIN_KEYS                                                                                                  \
    "model data.path data.labels data.limit data.span run.out pathways.scheme pathways.ratio pathways.sigma "         \
    "pathways.lambda pathways.keep pathways.seed pathways.granularity train"

static void help_train(FILE *f) {
    fprintf(f,
            "usage: pathens train CONFIG.ini [--set section.key=value ...] [--resume] [--threads N] [--quiet]\n\n"
            "Trains a GPT-style LM or a ViT classifier in C with AdamW (warm-up + cosine, gradient clipping),\n"
            "optionally with SSA: [pathways] scheme/ratio pick the attention sample each training sequence\n"
            "uses (dense = ordinary training); train.finetune_dense_steps ends with dense attention.\n"
            "Under mpirun each rank takes its chunks of every batch (train.grad_chunks); the weights are the\n"
            "same for any rank count up to grad_chunks. Writes run.out/{model.safetensors, config.json,\n"
            "train_log.csv, train.json} and resumable checkpoints every train.checkpoint_minutes.\n\n"
            "options:\n"
            "  --set section.key=value  override one config key (repeatable; paths relative to the cwd)\n"
            "  --resume      continue from run.out/checkpoint (start fresh when there is none)\n"
            "  --threads N   BLAS threads per rank (default: OPENBLAS_NUM_THREADS, else 1)\n"
            "  --quiet       no progress on stderr\n\n"
            "example (from the repository root; a 10-step smoke run of the shipped character LM, a few\n"
            "seconds, into runs/shakespeare-char-train/; without the --set options it is the full run):\n"
            "  pathens train configs/shakespeare-char-train.ini --set train.steps=10 --set train.batch=8 "
            "--set train.warmup=2 --set train.finetune_dense_steps=2\n\n"
            "exit codes: 0 ok, 1 usage, 2 bad input, 3 internal, 75 stopped by a signal after a checkpoint\n"
            "(rerun with --resume). docs/training.md.\n\n"
            "config keys (docs/config.md):\n");
    cfg_print_keys(f, TRAIN_KEYS);
}

int cmd_train(int argc, char **argv) {
    const char *ini = NULL;
    int         threads = 0, quiet = 0, resume = 0;
    pe_err      err = {0};
    pe_config   cfg;
    cfg_init_defaults(&cfg);
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help_train(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--set") || !strcmp(argv[i], "--threads")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "pathens train: %s needs a value\n", argv[i]);
                return PE_ERR_USAGE;
            }
            i++;
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else if (!strcmp(argv[i], "--resume")) {
            resume = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "pathens train: unknown option '%s'\nRun 'pathens train --help' for usage.\n", argv[i]);
            return PE_ERR_USAGE;
        } else if (!ini) {
            ini = argv[i];
        } else {
            fprintf(stderr, "pathens train: one CONFIG.ini at a time\n");
            return PE_ERR_USAGE;
        }
    }
    if (!ini) {
        fprintf(stderr, "pathens train: missing CONFIG.ini\nRun 'pathens train --help' for usage.\n");
        return PE_ERR_USAGE;
    }
    int rank = cli_rank(), size = cli_size();
    pe_status st = cfg_load_ini(&cfg, ini, &err);
    for (int i = 0; !st && i < argc; i++) {
        if (!strcmp(argv[i], "--set")) {
            st = cfg_apply_set(&cfg, argv[++i], &err);
        } else if (!strcmp(argv[i], "--threads")) {
            char *e;
            long  t = strtol(argv[++i], &e, 10);
            if (*e || t < 1 || t > 1024) st = pe_fail(&err, PE_ERR_USAGE, "--threads needs an integer in [1, 1024]");
            threads = (int)t;
        }
    }
    if (!st) st = cfg_validate_train(&cfg, &err);
    if (st) {
        if (rank == 0) fprintf(stderr, "pathens: error: %s\n", err.msg);
        return (int)st;
    }
    if (threads == 0) {
        const char *env = getenv("OPENBLAS_NUM_THREADS");
        threads = env && atoi(env) > 0 ? atoi(env) : 1;
    }
    openblas_set_num_threads(threads);
    if (rank == 0 && !quiet)
        fprintf(stderr, "pathens %s (%.12s) train: %d rank%s x %d BLAS thread%s (OpenBLAS %s)\n", PATHENS_VERSION,
                PATHENS_GIT_COMMIT, size, size == 1 ? "" : "s", threads, threads == 1 ? "" : "s",
                openblas_get_corename());
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = train_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    train_comm comm = {rank, size, NULL, NULL, NULL};
#ifdef PATHENS_WITH_MPI
    comm.sum_floats  = dist_sum_floats;
    comm.sum_doubles = dist_sum_doubles;
#endif
    st = train_run(&cfg, &comm, resume, quiet || rank != 0, &train_stop, &err);
    if (st && rank == 0) fprintf(stderr, "pathens: %s: %s\n", st == PE_ERR_CHECKPOINT ? "stopped" : "error", err.msg);
#ifdef PATHENS_WITH_MPI
    /* an error on one rank only (e.g. rank 0 cannot write) must not leave the others in a collective */
    if (st && st != PE_ERR_CHECKPOINT && size > 1) dist_abort((int)st);
#endif
    return (int)st;
}
