/* fuzz_util.h: what every libFuzzer harness of tests/fuzz shares.
 *
 * The readers take paths, so a harness writes the fuzz input into a per-process scratch folder
 * (fz_dir(): under $PATHENS_FUZZ_TMP, else /dev/shm when there is one, else $TMPDIR or /tmp;
 * removed at a normal exit, left behind by a crash) and calls the real
 * reader API on it. Inputs that stand for several files are split on FZ_SEP (one part per file,
 * in the order the harness documents); tests/fuzz/mkcorpus.py writes such files.
 *
 * Oracle (fz_check): a reader of a bad file must return PE_OK or PE_ERR_INPUT with a message;
 * PE_ERR_INTERNAL (exit 3) or an empty message for a bad input is reported as a crash. Crashes,
 * sanitizer reports (ASan + UBSan, no recovery) and leaks are libFuzzer's own findings.
 * The readers' own error messages go to stderr: run with -close_fd_mask=2 (run_fuzz.sh does). */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "common.h"

#define FZ_SEP "\n=====8<=====\n"
#define FZ_SEP_LEN (sizeof FZ_SEP - 1)

typedef struct {
    const uint8_t *p;
    size_t         n;
} fz_part;

/* Split data on FZ_SEP into at most max parts (the last part takes the rest, separators and all).
 * Returns the number of parts found (>= 1); parts past it are set empty. */
int fz_split(const uint8_t *data, size_t size, fz_part *parts, int max);
/* The per-process scratch folder (created on first use, removed at exit). */
const char *fz_dir(void);
/* buf = fz_dir()/name */
void fz_path(char *buf, size_t n, const char *name);
/* Write n bytes to fz_dir()/name (folders in name must exist: fz_mkdir). Aborts on an OS error. */
void fz_write(const char *name, const void *p, size_t n);
void fz_mkdir(const char *name);
/* Remove everything inside fz_dir() (not the folder itself): each input starts from nothing. */
void fz_reset(void);
/* The oracle above; what names the reader in the crash message. PATHENS_FUZZ_VERBOSE=1 prints
 * every status and message (to see how far an input gets). */
void fz_check(pe_status st, const pe_err *err, const char *what);
