/* cli.h: subcommands of the pathens command line, each returning the process exit code. */
#pragma once

#include "config.h"

int cmd_eval(int argc, char **argv);
/* the evaluation of a resolved config (threads 0: OPENBLAS_NUM_THREADS or 1); every rank calls it */
int eval_config(const pe_config *cfg, int threads, int quiet);
int cmd_sweep(int argc, char **argv);
/* MPI rank and size (0 and 1 without MPI) */
int cli_rank(void);
int cli_size(void);
int cmd_prune(int argc, char **argv);
/* pe_run_lock on run.out for this process (rank 0 only), with the warning for a file system
 * without flock said here unless quiet; the status, err set on failure (not printed) */
pe_status cli_run_lock(const char *dir, int quiet, int *fd, pe_err *err);
int cmd_train(int argc, char **argv);
/* a usage error (exit code 1), printed once on rank 0: "pathens CMD: MESSAGE" + where the help is */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
