/* common.c: status codes, error messages, checked allocation, atomic file output, threads per rank. */
#include "common.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

pe_status pe_fail(pe_err *err, pe_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

const char *pe_status_str(pe_status s) {
    switch (s) {
    case PE_OK: return "ok";
    case PE_ERR_USAGE: return "usage error";
    case PE_ERR_INPUT: return "bad input";
    case PE_ERR_INTERNAL: return "internal error";
    case PE_ERR_CHECKPOINT: return "checkpointed after a signal, rerun to resume";
    }
    return "unknown status";
}

void *pe_malloc(size_t n, pe_err *err, const char *what) {
    void *p = malloc(n ? n : 1);
    if (!p) pe_fail(err, PE_ERR_INTERNAL, "out of memory allocating %zu bytes for %s", n, what);
    return p;
}

void *pe_calloc(size_t n, size_t size, pe_err *err, const char *what) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) pe_fail(err, PE_ERR_INTERNAL, "out of memory allocating %zu x %zu bytes for %s", n, size, what);
    return p;
}

pe_status pe_write_file_atomic(const char *path, const void *data, size_t len, pe_err *err) {
    size_t plen = strlen(path);
    char *tmp = pe_malloc(plen + 32, err, "temporary file name");
    if (!tmp) return PE_ERR_INTERNAL;
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        pe_fail(err, PE_ERR_INPUT, "%s: cannot create (%s); check that the output folder exists and is writable",
                tmp, strerror(errno));
        free(tmp);
        return PE_ERR_INPUT;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            pe_fail(err, PE_ERR_INTERNAL, "%s: write failed (%s); is the disk full?", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            free(tmp);
            return PE_ERR_INTERNAL;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        pe_fail(err, PE_ERR_INTERNAL, "%s: fsync/close failed (%s)", tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return PE_ERR_INTERNAL;
    }
    if (rename(tmp, path) != 0) {
        pe_fail(err, PE_ERR_INTERNAL, "cannot rename %s to %s (%s)", tmp, path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return PE_ERR_INTERNAL;
    }
    free(tmp);
    return PE_OK;
}

pe_status pe_read_file(const char *path, char **out, size_t *len, pe_err *err) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return pe_fail(err, PE_ERR_INPUT, "%s: cannot open (%s); check the path", path, strerror(errno));
    /* the size from fstat, never from fseek/ftell: a directory opens fine on Linux and "has"
     * LONG_MAX bytes; pipes and other non-regular files are read to their end in chunks */
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return pe_fail(err, PE_ERR_INPUT, "%s: cannot stat (%s); check the path", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(f);
        return pe_fail(err, PE_ERR_INPUT, "%s: is a directory, where a file is expected; check the path", path);
    }
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size : 65536, n = 0;
    if (S_ISREG(st.st_mode) && (st.st_size < 0 || (uint64_t)st.st_size >= (uint64_t)SIZE_MAX)) {
        fclose(f);
        return pe_fail(err, PE_ERR_INPUT, "%s: %lld bytes is too large to read into memory", path, (long long)st.st_size);
    }
    char *buf = pe_malloc(cap + 1, err, path);
    if (!buf) {
        fclose(f);
        return PE_ERR_INTERNAL;
    }
    for (;;) {
        if (n == cap) { /* a non-regular file, or a regular one that grew while we read it */
            if (S_ISREG(st.st_mode)) {
                int c = fgetc(f);
                if (c == EOF) break;
                ungetc(c, f);
            }
            size_t ncap = cap < SIZE_MAX / 4 ? cap * 2 + 4096 : 0;
            char  *nb   = ncap ? realloc(buf, ncap + 1) : NULL;
            if (!nb) {
                fclose(f);
                free(buf);
                return pe_fail(err, PE_ERR_INTERNAL, "out of memory reading %s (more than %zu bytes)", path, cap);
            }
            buf = nb;
            cap = ncap;
        }
        size_t want = cap - n, r = fread(buf + n, 1, want, f);
        n += r;
        if (r < want) break; /* end of file or a read error (ferror below) */
    }
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        free(buf);
        return pe_fail(err, PE_ERR_INPUT, "%s: read error (%s); is it a regular, readable file?", path, strerror(e));
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    if (len) *len = n;
    return PE_OK;
}

pe_status pe_mkdir_p(const char *path, pe_err *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return pe_fail(err, PE_ERR_INPUT, "output folder name '%s' is empty or too long", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return pe_fail(err, PE_ERR_INPUT, "%s: cannot create folder (%s); check permissions", buf, strerror(errno));
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return pe_fail(err, PE_ERR_INPUT, "%s: exists but is not a folder; choose another run.out", path);
    return PE_OK;
}

pe_status pe_run_lock(const char *dir, int *fd, int *warned, pe_err *err) {
    *fd = -1, *warned = 0;
    pe_status st = pe_mkdir_p(dir, err);
    if (st) return st;
    char path[4200];
    snprintf(path, sizeof path, "%s/.pathens.lock", dir);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0) return pe_fail(err, PE_ERR_INPUT, "%s: cannot open the run folder's lock file (%s); check permissions", path,
                              strerror(errno));
    int r;
    while ((r = flock(f, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {}
    if (r != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            char    who[256] = "";
            ssize_t n = pread(f, who, sizeof who - 1, 0);
            who[n > 0 ? n : 0] = '\0';
            who[strcspn(who, "\n")] = '\0';
            close(f);
            return pe_fail(err, PE_ERR_INPUT, "%s is in use by another pathens run (%s, per %s); wait for it to end, or "
                           "write this run to another folder (--set run.out=DIR)", dir, who[0] ? who : "holder unknown",
                           path);
        }
        close(f); /* ENOLCK, EOPNOTSUPP, ENOSYS, EINVAL: this file system has no flock */
        *warned = 1;
        return PE_OK;
    }
    char host[128] = "?", when[64] = "?", line[320];
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    time_t    now = time(NULL);
    struct tm tmv;
    if (gmtime_r(&now, &tmv)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    int len = snprintf(line, sizeof line, "pid %ld on %s since %s\n", (long)getpid(), host, when);
    if (ftruncate(f, 0) != 0 || pwrite(f, line, (size_t)len, 0) != len) { /* the lock holds without the note */ }
    *fd = f;
    return PE_OK;
}

void pe_run_lock_free(int fd) {
    if (fd >= 0) close(fd); /* closing the only descriptor releases the flock */
}

void pe_signals_ignore_repeats(void) {
    const int sigs[3] = {SIGTERM, SIGUSR1, SIGUSR2};
    for (int k = 0; k < 3; k++) {
        struct sigaction cur;
        if (sigaction(sigs[k], NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL)
            signal(sigs[k], SIG_IGN);
    }
}

double pe_time_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double pe_time_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t pe_hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) h = (h ^ *p) * 1099511628211ULL;
    return h;
}

const char *pe_path_tidy(const char *path, char *buf, size_t n) {
    if (!n) return buf;
    size_t len = strlen(path), used = 0;
    int    abs_ = path[0] == '/';
    size_t *starts = malloc(sizeof(size_t) * (len / 2 + 2)); /* where each kept component begins in buf */
    int     depth = 0, ups = 0;                              /* kept components; leading ".." among them */
    if (!starts || len + 2 > n) {
        free(starts);
        snprintf(buf, n, "%s", path);
        return buf;
    }
    if (abs_) buf[used++] = '/';
    for (const char *p = path; *p;) {
        while (*p == '/') p++;
        size_t c = strcspn(p, "/");
        if (c == 0) break;
        if (c == 1 && p[0] == '.') {
        } else if (c == 2 && p[0] == '.' && p[1] == '.' && depth > ups) {
            used = starts[--depth]; /* drop the previous component (and its slash) */
            if (used > (size_t)abs_) used--;
        } else if (c == 2 && p[0] == '.' && p[1] == '.' && abs_) {
        } else {
            if (used > (size_t)abs_) buf[used++] = '/';
            starts[depth++] = used;
            if (c == 2 && p[0] == '.' && p[1] == '.') ups++;
            memcpy(buf + used, p, c);
            used += c;
        }
        p += c;
    }
    free(starts);
    if (used == 0) buf[used++] = '.';
    buf[used] = '\0';
    return buf;
}

pe_status pe_read_file_for(const char *path, char **out, size_t *len, const char *what, pe_err *err) {
    pe_status st = pe_read_file(path, out, len, err);
    if (st != PE_OK && err) {
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        pe_fail(err, st, "%s (%s)", msg, what);
    }
    return st;
}

int pe_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int pe_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int pe_remove_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(sb.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    if (!d) return -1;
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char  *sub = malloc(n);
        if (!sub) {
            errno = ENOMEM;
            rc = -1;
            break;
        }
        snprintf(sub, n, "%s/%s", path, e->d_name);
        rc = pe_remove_tree(sub);
        free(sub);
    }
    closedir(d);
    return rc ? rc : rmdir(path);
}

/* ---- threads per rank ------------------------------------------------------------------------ */

static int pe_threads_n = 1; /* set once at start-up by the CLI (pe_threads_set), read by the loops */

int pe_threads_max(void) {
#ifdef _OPENMP
    return PE_THREADS_MAX;
#else
    return 1;
#endif
}

int pe_threads_set(int n) {
    pe_threads_n = n < 1 ? 1 : n > pe_threads_max() ? pe_threads_max() : n;
    return pe_threads_n;
}

int pe_threads_get(void) { return pe_threads_n; }

int pe_thread_index(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}
