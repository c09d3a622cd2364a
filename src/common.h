/* common.h: status codes, error reporting and small helpers shared by every module of the core.
 *
 * Conventions (docs/design.md):
 *   - library functions never exit; they return a pe_status and fill a pe_err with a message
 *     that names the file or key, says what is wrong and what to do;
 *   - the CLI turns a pe_status into the process exit code (the enum values ARE the exit codes).
 */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    PE_OK             = 0,  /* success */
    PE_ERR_USAGE      = 1,  /* bad command line */
    PE_ERR_INPUT      = 2,  /* bad input: file, config, data, checkpoint */
    PE_ERR_INTERNAL   = 3,  /* a bug or an OS failure (out of memory, I/O) */
    PE_ERR_CHECKPOINT = 75, /* stopped by a signal after checkpointing; rerun to resume */
} pe_status;

typedef struct {
    pe_status code;
    char      msg[2048];
} pe_err;

/* Set err (if not NULL) to code + printf-style message; returns code so callers can
 * `return pe_fail(err, PE_ERR_INPUT, "...")`. */
pe_status pe_fail(pe_err *err, pe_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *pe_status_str(pe_status s);

/* checked allocation: NULL on failure with a message in err */
void *pe_malloc(size_t n, pe_err *err, const char *what);
void *pe_calloc(size_t n, size_t size, pe_err *err, const char *what);

/* Write a whole buffer to `path` atomically: write path.tmp.<pid>, fsync, rename.
 * No half-written file is ever left under `path`. */
pe_status pe_write_file_atomic(const char *path, const void *data, size_t len, pe_err *err);
/* rm -r path: a file, or a folder and everything under it (symbolic links are removed, never
 * followed). 0 on success or when path does not exist; -1 with errno set otherwise. */
int pe_remove_tree(const char *path);
/* 1 when path names a regular file (after symbolic links), a folder: pe_is_dir; 0 otherwise */
int pe_is_file(const char *path);
int pe_is_dir(const char *path);
/* Read a whole file into a malloc'ed, NUL-terminated buffer. */
pe_status pe_read_file(const char *path, char **out, size_t *len, pe_err *err);
/* pe_read_file, and on failure the message ends with " (" what ")": which setting named the file,
 * e.g. "the text dataset set by [data] path" */
pe_status pe_read_file_for(const char *path, char **out, size_t *len, const char *what, pe_err *err);
/* mkdir -p */
pe_status pe_mkdir_p(const char *path, pe_err *err);

/* One process per run folder: create dir (mkdir -p) and take an exclusive flock(2) on
 * dir/.pathens.lock, held until pe_run_lock_free or the process ends (the kernel releases it on
 * any exit, kill -9 included); the file then says "pid P on HOST since TIME". Another holder:
 * PE_ERR_INPUT, the message naming it. A file system without flock (some Lustre mounts): *fd = -1,
 * PE_OK, and warned set to 1 (the caller says so). Otherwise *fd >= 0. */
pe_status pe_run_lock(const char *dir, int *fd, int *warned, pe_err *err);
void      pe_run_lock_free(int fd);
/* After a stop signal (the run checkpoints and exits 75): SIGTERM, SIGUSR1 and SIGUSR2 whose
 * handler is the default become ignored, so the same signal sent again (SLURM's TERM to every
 * process of the job plus a batch script's forwarded one, mpirun's repeats) cannot turn exit 75
 * into a death by signal while the process winds down. Custom handlers are left alone. */
void      pe_signals_ignore_repeats(void);

/* FNV-1a 64-bit hash of a NUL-terminated string (run fingerprints, sweep point folders) */
uint64_t pe_hash_str(const char *s);

/* wall clock in seconds (monotonic) */
double pe_time_now(void);
double pe_time_cpu(void); /* CPU seconds of this process, all its threads (CLOCK_PROCESS_CPUTIME_ID) */

/* `path` with "." and "dir/.." collapsed lexically, for messages only (a symlinked dir/.. can name
 * another folder, so never open the result): "configs/../runs/x" -> "runs/x"; into buf, returned */
const char *pe_path_tidy(const char *path, char *buf, size_t n);

/* ---- threads per rank (--threads N) ----------------------------------------------------------
 * pathens' own loops (projections, attention, norms, activations in model.c; the LM head and
 * its per-token metrics in ensemble.c) run on pe_threads_get() OpenMP threads; OpenBLAS stays on
 * one thread per caller. Every threaded loop walks a task grid that depends on the shapes only,
 * never on the thread count, each task writes its own outputs in the serial arithmetic order, and
 * sums across tasks are added in task order after the loop: every number is the same for any N.
 * Built without OpenMP (a compiler without it, or -DPATHENS_WITH_OPENMP=OFF) it is 1 thread. */
#define PE_THREADS_MAX 1024
/* set the threads per rank, clamped to [1, pe_threads_max()]; returns the number in effect.
 * Call it before model_acts_init (which sizes per-thread scratch) and outside any threaded loop. */
int pe_threads_set(int n);
int pe_threads_get(void);
/* PE_THREADS_MAX with OpenMP, 1 without */
int pe_threads_max(void);
/* index of the calling thread inside a threaded loop, in [0, pe_threads_get()); 0 outside */
int pe_thread_index(void);
/* before a for loop: its iterations are tasks handed to pe_threads_get() (or n) threads, one
 * at a time in iteration order; which thread runs a task changes nothing it computes */
#ifdef _OPENMP
#define PE_PRAGMA(x) _Pragma(#x)
#define PE_PARALLEL_FOR_N(n) PE_PRAGMA(omp parallel for schedule(dynamic, 1) num_threads(n))
#else
#define PE_PARALLEL_FOR_N(n) (void)(n); /* a statement before the loop: n is used, no warning */
#endif
#define PE_PARALLEL_FOR PE_PARALLEL_FOR_N(pe_threads_get())
