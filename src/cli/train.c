/* train.c (CLI): pathens train CONFIG.ini [--set section.key=value ...] [--resume | --overwrite]
 *                                         [--threads N] [--quiet]
 *
 * Every rank of an mpirun runs this; train_run (src/train_loop.c) does the work, data-parallel
 * over the ranks through train_comm (mpi/dist.c fills it). SIGINT (Ctrl-C), SIGTERM, SIGUSR1 and
 * SIGUSR2 set a flag: every rank stops at the next step boundary, rank 0 writes a checkpoint, the
 * exit code is 75 (a second Ctrl-C stops at once: the last checkpoint stands). A run.out that holds
 * a training run is continued with --resume, replaced with --overwrite, or refused (exit 2). */
#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "train.h"
#include "version.h"
#ifdef PATHENS_WITH_MPI
#include "dist.h"
#endif

static volatile sig_atomic_t train_stop = 0;
static int train_talks = 0; /* rank 0 acknowledges the signal */
static void train_on_signal(int sig) {
    if (!train_stop && train_talks) {
        static const char msg[] = "\npathens: signal received: stopping after this step with a checkpoint "
                                  "(Ctrl-C again stops at once; the last checkpoint stands)\n";
        ssize_t r = write(2, msg, sizeof msg - 1);
        (void)r;
    }
    train_stop = sig;
}

/* rank 0: what run.out holds decides: 0 go on, or an exit code (message printed) */
static int train_run_out(const pe_config *cfg, int resume, int overwrite, int quiet) {
    char path[4400];
    if (overwrite) { /* the files a training run leaves (train_loop.c), and nothing else */
        static const char *const names[] = {"checkpoint", "pre_finetune", "model.safetensors", "config.json",
                                            "train_log.csv", "train.json"};
        int removed = 0;
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", cfg->run_out, names[i]);
            if (access(path, F_OK) != 0) continue;
            if (pe_remove_tree(path) != 0) {
                fprintf(stderr, "pathens: error: --overwrite: cannot remove %s (%s); remove it yourself\n", path,
                        strerror(errno));
                return PE_ERR_INPUT;
            }
            removed++;
        }
        if (removed && !quiet) fprintf(stderr, "--overwrite: removed %d item%s of the previous training run in %s\n",
                                       removed, removed == 1 ? "" : "s", cfg->run_out);
        return 0;
    }
    snprintf(path, sizeof path, "%s/checkpoint/LATEST", cfg->run_out);
    if (!resume && access(path, F_OK) == 0) {
        fprintf(stderr, "pathens: error: %s exists: %s holds a training run (finished or not); to continue it, add "
                "--resume; to keep it, write this run to another folder (--set run.out=DIR); to replace it, add "
                "--overwrite\n", path, cfg->run_out);
        return PE_ERR_INPUT;
    }
    return 0;
}

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
            "  --overwrite   start over: remove the training run in run.out first (checkpoint/, model, logs)\n"
            "  --threads N   BLAS threads per rank (default: OPENBLAS_NUM_THREADS, else 1)\n"
            "  --quiet       no progress on stderr\n\n"
            "example (from the repository root; a 10-step smoke run of the shipped character LM, a few\n"
            "seconds, into runs/shakespeare-char-train/; without the --set options it is the full run):\n"
            "  pathens train configs/shakespeare-char-train.ini --set train.steps=10 --set train.batch=8 "
            "--set train.warmup=2 --set train.finetune_dense_steps=2\n\n"
            "exit codes: 0 ok, 1 usage, 2 bad input, 3 internal, 75 stopped by a signal (Ctrl-C, SIGTERM,\n"
            "SIGUSR1/2) after a checkpoint (rerun with --resume). docs/training.md.\n\n"
            "config keys (docs/config.md):\n");
    cfg_print_keys(f, TRAIN_KEYS);
}

int cmd_train(int argc, char **argv) {
    const char *ini = NULL;
    int         threads = 0, quiet = 0, resume = 0, overwrite = 0;
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
        } else if (!strcmp(argv[i], "--overwrite")) {
            overwrite = 1;
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
    if (resume && overwrite) {
        fprintf(stderr, "pathens train: --resume continues a run, --overwrite replaces it: give one of them\n");
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
    /* run.out: held by rank 0 until the end (pe_run_lock: a second run into it is refused), then
     * continue, replace or refuse; rank 0 decides for every rank */
    int lock_fd = -1, pre = 0;
    if (rank == 0) {
        if (cli_run_lock(cfg.run_out, quiet, &lock_fd, &err)) {
            fprintf(stderr, "pathens: error: %s\n", err.msg);
            pre = (int)err.code;
        } else
            pre = train_run_out(&cfg, resume, overwrite, quiet);
    }
#ifdef PATHENS_WITH_MPI
    if (size > 1) dist_bcast_int(&pre);
#endif
    if (pre) {
        pe_run_lock_free(lock_fd);
        return pre;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = train_on_signal;
    sigemptyset(&sa.sa_mask);
    train_talks = rank == 0;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C stops at once */
    struct sigaction was;
    sigaction(SIGINT, NULL, &was);
    if (was.sa_handler != SIG_IGN) sigaction(SIGINT, &sa, NULL); /* ignored from the start (a script's background
                                                                    * job, nohup): stays ignored */
    train_comm comm = {rank, size, NULL, NULL, NULL};
#ifdef PATHENS_WITH_MPI
    comm.sum_floats  = dist_sum_floats;
    comm.sum_doubles = dist_sum_doubles;
#endif
    st = train_run(&cfg, &comm, resume, quiet || rank != 0, &train_stop, &err);
    if (st && rank == 0) fprintf(stderr, "pathens: %s: %s\n", st == PE_ERR_CHECKPOINT ? "stopped" : "error", err.msg);
#ifdef PATHENS_WITH_MPI
    /* an error on one rank only (e.g. rank 0 cannot write) must not leave the others in a collective */
    if (st && st != PE_ERR_CHECKPOINT && size > 1) dist_fail(rank, (int)st, err.msg);
#endif
    pe_run_lock_free(lock_fd);
    return (int)st;
}
