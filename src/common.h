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

/* FNV-1a 64-bit hash of a NUL-terminated string (run fingerprints, sweep point folders) */
uint64_t pe_hash_str(const char *s);

/* wall clock in seconds (monotonic) */
double pe_time_now(void);

/* `path` with "." and "dir/.." collapsed lexically, for messages only (a symlinked dir/.. can name
 * another folder, so never open the result): "configs/../runs/x" -> "runs/x"; into buf, returned */
const char *pe_path_tidy(const char *path, char *buf, size_t n);
