/* fuzz_util.c: scratch folder, input splitting and the status oracle of the harnesses (fuzz_util.h). */
#define _GNU_SOURCE /* memmem, nftw */
#include "fuzz_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The writers fsync every file (pe_write_file_atomic, the journal); on a scratch folder that only
 * costs time, so the harnesses replace fsync with a no-op (this definition wins at link time). */
int fsync(int fd) {
    (void)fd;
    return 0;
}

int fz_split(const uint8_t *data, size_t size, fz_part *parts, int max) {
    int k = 0;
    size_t at = 0;
    for (int i = 0; i < max; i++) parts[i].p = data, parts[i].n = 0;
    while (k < max - 1) {
        const uint8_t *s = size - at >= FZ_SEP_LEN ? memmem(data + at, size - at, FZ_SEP, FZ_SEP_LEN) : NULL;
        if (!s) break;
        parts[k].p = data + at;
        parts[k].n = (size_t)(s - (data + at));
        at = (size_t)(s - data) + FZ_SEP_LEN;
        k++;
    }
    parts[k].p = data + at;
    parts[k].n = size - at;
    return k + 1;
}

static char fz_root[4096];
static pid_t fz_owner;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag;
    if (ftw->level > 0 || !fz_root[0] || strcmp(path, fz_root)) remove(path);
    return 0;
}

static void fz_cleanup(void) {
    if (fz_root[0] && getpid() == fz_owner) {
        nftw(fz_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        rmdir(fz_root);
    }
}

const char *fz_dir(void) {
    if (fz_root[0]) return fz_root;
    const char *base = getenv("PATHENS_FUZZ_TMP");
    struct stat sb;
    if (!base || !*base) base = stat("/dev/shm", &sb) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NULL;
    if (!base) base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(fz_root, sizeof fz_root, "%s/pathens-fuzz-%ld-XXXXXX", base, (long)getpid());
    if (!mkdtemp(fz_root)) {
        fprintf(stderr, "fuzz: cannot create a scratch folder under %s: %s\n", base, strerror(errno));
        abort();
    }
    fz_owner = getpid();
    atexit(fz_cleanup);
    return fz_root;
}

void fz_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", fz_dir(), name); }

void fz_write(const char *name, const void *p, size_t n) {
    char path[4300];
    fz_path(path, sizeof path, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w <= 0) {
            fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
            abort();
        }
        b += w, n -= (size_t)w;
    }
    close(fd);
}

void fz_mkdir(const char *name) {
    char path[4300];
    fz_path(path, sizeof path, name);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "fuzz: cannot create %s: %s\n", path, strerror(errno));
        abort();
    }
}

void fz_reset(void) {
    fz_dir();
    nftw(fz_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void fz_check(pe_status st, const pe_err *err, const char *what) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("PATHENS_FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "fuzz: %s -> %d%s%s\n", what, (int)st, st ? ": " : "", st ? err->msg : "");
    if (st == PE_OK) return;
    if (st == PE_ERR_INPUT && err->msg[0]) return;
    fprintf(stderr, "fuzz oracle: %s returned %d (%s) for a bad input, message \"%s\"; bad input must give %d "
            "(PE_ERR_INPUT) with a message\n", what, (int)st, pe_status_str(st), err->msg, (int)PE_ERR_INPUT);
    abort();
}
