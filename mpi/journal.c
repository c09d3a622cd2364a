/* journal.c: checksummed, fsynced, append-only task journal (journal.h). */
#include "journal.h"

#include <errno.h>
#include <msgpack.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "proto.h"

#define JREC_MAGIC "PJR1"
#define JREC_MAX (1u << 30)

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static pe_status write_record(FILE *f, const void *payload, size_t len, const char *path, pe_err *err) {
    unsigned char hdr[12];
    memcpy(hdr, JREC_MAGIC, 4);
    put_u32(hdr + 4, (uint32_t)len);
    put_u32(hdr + 8, (uint32_t)crc32(0L, payload, (uInt)len));
    if (fwrite(hdr, 1, 12, f) != 12 || fwrite(payload, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0)
        return pe_fail(err, PE_ERR_INTERNAL, "%s: cannot write the journal (%s); is the disk full?", path, strerror(errno));
    return PE_OK;
}


static void pack_header(msgpack_sbuffer *sb, uint64_t fingerprint, int n_tasks) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "t", 1);
    msgpack_pack_str_with_body(&pk, "pathens-journal", 15);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str_with_body(&pk, "fingerprint", 11);
    msgpack_pack_uint64(&pk, fingerprint);
    msgpack_pack_str_with_body(&pk, "tasks", 5);
    msgpack_pack_int(&pk, n_tasks);
}

/* the fingerprint and task count of a header payload; 0 if it is not an intact header */
static int parse_header(const char *payload, size_t n, uint64_t *fingerprint, int *n_tasks) {
    if (!proto_msgpack_bounded(payload, n)) return 0;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int    ok = msgpack_unpack_next(&up, payload, n, &off) == MSGPACK_UNPACK_SUCCESS;
    const msgpack_object *t = ok ? proto_map_get(&up.data, "t") : NULL, *fp = ok ? proto_map_get(&up.data, "fingerprint") : NULL,
                         *nt = ok ? proto_map_get(&up.data, "tasks") : NULL;
    ok = t && t->type == MSGPACK_OBJECT_STR && t->via.str.size == 15 && !memcmp(t->via.str.ptr, "pathens-journal", 15) &&
         fp && fp->type == MSGPACK_OBJECT_POSITIVE_INTEGER && nt && nt->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
         nt->via.u64 <= (uint64_t)INT32_MAX;
    if (ok) {
        *fingerprint = fp->via.u64;
        *n_tasks     = (int)nt->via.u64;
    }
    msgpack_unpacked_destroy(&up);
    return ok;
}

/* a journal.msgpack that is a directory (or a device, a fifo) is not ours to read or replace */
static pe_status check_regular(const char *path, int *exists, pe_err *err) {
    struct stat sb;
    *exists = 0;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT) return PE_OK;
        return pe_fail(err, PE_ERR_INPUT, "%s: cannot read (%s)", path, strerror(errno));
    }
    if (!S_ISREG(sb.st_mode))
        return pe_fail(err, PE_ERR_INPUT, "%s is %s, not a journal file; remove it, or choose another run.out "
                       "(--set run.out=DIR)", path, S_ISDIR(sb.st_mode) ? "a directory" : "not a regular file");
    *exists = 1;
    return PE_OK;
}

pe_status journal_peek(const char *dir, int *exists, int *have_header, uint64_t *fingerprint, int *n_tasks,
                       pe_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/journal.msgpack", dir);
    *have_header = 0;
    pe_status st = check_regular(path, exists, err);
    if (st || !*exists) return st;
    FILE *f = fopen(path, "rb");
    if (!f) return pe_fail(err, PE_ERR_INPUT, "%s: cannot open (%s)", path, strerror(errno));
    unsigned char hdr[12], payload[1024];
    if (fread(hdr, 1, 12, f) == 12 && !memcmp(hdr, JREC_MAGIC, 4)) {
        uint32_t n = get_u32(hdr + 4), crc = get_u32(hdr + 8);
        if (n <= sizeof payload && fread(payload, 1, n, f) == n && (uint32_t)crc32(0L, payload, n) == crc)
            *have_header = parse_header((const char *)payload, n, fingerprint, n_tasks);
    }
    fclose(f);
    return PE_OK;
}

static void note_drop(journal *j, const char *fmt, ...) {
    int i = j->dropped; /* called before the count goes up */
    if (i >= 3) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->why[i], sizeof j->why[i], fmt, ap);
    va_end(ap);
}

pe_status journal_open(journal *j, const char *dir, uint64_t fingerprint, int n_tasks, journal_task_fn on_task,
                       void *ctx, pe_err *err) {
    memset(j, 0, sizeof *j);
    snprintf(j->path, sizeof j->path, "%s/journal.msgpack", dir);
    char *buf = NULL;
    size_t len = 0;
    int exists = 0;
    pe_status st = check_regular(j->path, &exists, err);
    if (!st && exists) st = pe_read_file(j->path, &buf, &len, err);
    if (st) return st;
    /* good records kept, in order: (offset, size) of the whole framed record */
    size_t *keep_off = NULL, *keep_len = NULL;
    int n_keep = 0, cap = 0, have_header = 0, rec_no = 0;
    size_t pos = 0;
    while (buf && pos < len) {
        rec_no++;
        if (len - pos < 12 || memcmp(buf + pos, JREC_MAGIC, 4) != 0) { /* framing lost: the rest is dropped */
            note_drop(j, "record %d (byte %zu): %s; it and the %zu bytes after it are dropped", rec_no, pos,
                      len - pos < 12 ? "torn (the file ends inside its frame)" : "no record starts here",
                      len - pos);
            j->dropped++;
            break;
        }
        uint32_t n = get_u32((unsigned char *)buf + pos + 4), crc = get_u32((unsigned char *)buf + pos + 8);
        if (n > JREC_MAX || n > len - pos - 12) { /* torn tail */
            note_drop(j, "record %d (byte %zu): torn (it claims %u bytes, %zu are left)", rec_no, pos, n, len - pos - 12);
            j->dropped++;
            break;
        }
        const char *payload = buf + pos + 12;
        size_t rec = 12 + (size_t)n;
        char why[256] = "";
        int good = (uint32_t)crc32(0L, (const Bytef *)payload, n) == crc;
        if (!good) snprintf(why, sizeof why, "checksum mismatch");
        if (good && !proto_msgpack_bounded(payload, n)) { /* never let a crafted count size an allocation */
            good = 0;
            snprintf(why, sizeof why, "not well-formed MessagePack (a container claims more elements than the "
                     "record's %u bytes hold)", n);
        }
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        if (good && msgpack_unpack_next(&up, payload, n, &off) != MSGPACK_UNPACK_SUCCESS) {
            good = 0;
            snprintf(why, sizeof why, "not valid MessagePack");
        }
        if (good && !have_header) {
            uint64_t fp = 0;
            int      nt = 0;
            if (!parse_header(payload, n, &fp, &nt)) {
                good = 0;
                snprintf(why, sizeof why, "the first record is not a pathens journal header");
            } else if (fp != fingerprint || nt != n_tasks) {
                st = pe_fail(err, PE_ERR_INPUT,
                             "%s holds an unfinished run of another config (fingerprint %016llx, %d tasks; this "
                             "config: %016llx, %d tasks): to resume it, rerun the config that wrote it; to keep it, "
                             "write this run to another folder (--set run.out=DIR); to discard it, add --overwrite",
                             j->path, (unsigned long long)fp, nt, (unsigned long long)fingerprint, n_tasks);
            } else {
                have_header = 1;
            }
            if (!good && !st) { /* no usable header: nothing here can be trusted */
                note_drop(j, "record 1: %s; the whole journal is dropped", why);
                j->dropped++;
                msgpack_unpacked_destroy(&up);
                break;
            }
        } else if (good) {
            const msgpack_object *t = proto_map_get(&up.data, "t"), *id = proto_map_get(&up.data, "task"),
                                 *rows = proto_map_get(&up.data, "rows");
            pe_err e2 = {0};
            if (!t || t->type != MSGPACK_OBJECT_STR || t->via.str.size != 4 || memcmp(t->via.str.ptr, "task", 4) || !id ||
                id->type != MSGPACK_OBJECT_POSITIVE_INTEGER || id->via.u64 >= (uint64_t)n_tasks || !rows) {
                good = 0;
                snprintf(why, sizeof why, "not a task record of this run");
            } else if (on_task(ctx, (int)id->via.u64, rows, &e2) != PE_OK) {
                good = 0;
                snprintf(why, sizeof why, "task %d: %.200s", (int)id->via.u64, e2.msg);
            }
        }
        msgpack_unpacked_destroy(&up);
        if (st) break;
        if (good) {
            if (n_keep == cap) {
                cap = cap ? 2 * cap : 64;
                size_t *ko = realloc(keep_off, sizeof(size_t) * cap), *kl = ko ? realloc(keep_len, sizeof(size_t) * cap) : NULL;
                if (ko) keep_off = ko;
                if (kl) keep_len = kl;
                if (!ko || !kl) {
                    st = pe_fail(err, PE_ERR_INTERNAL, "out of memory reading %s", j->path);
                    break;
                }
            }
            keep_off[n_keep] = pos;
            keep_len[n_keep] = rec;
            n_keep++;
            if (have_header && n_keep > 1) j->replayed++;
        } else {
            note_drop(j, "record %d (byte %zu): %s", rec_no, pos, why);
            j->dropped++;
        }
        pos += rec;
    }
    if (!st && (j->dropped > 0 || !have_header)) { /* damaged, empty or new */
        /* (re)write: header + the good records, atomically */
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        size_t total = 0;
        char *out = NULL;
        if (have_header) {
            for (int i = 0; i < n_keep; i++) total += keep_len[i];
            out = malloc(total ? total : 1);
            size_t at = 0;
            for (int i = 0; out && i < n_keep; i++) {
                memcpy(out + at, buf + keep_off[i], keep_len[i]);
                at += keep_len[i];
            }
        } else {
            pack_header(&sb, fingerprint, n_tasks);
            total = 12 + sb.size;
            out = malloc(total);
        }
        if (!out) {
            st = pe_fail(err, PE_ERR_INTERNAL, "out of memory rewriting %s", j->path);
        } else if (!have_header) {
            memcpy(out, JREC_MAGIC, 4);
            put_u32((unsigned char *)out + 4, (uint32_t)sb.size);
            put_u32((unsigned char *)out + 8, (uint32_t)crc32(0L, (const Bytef *)sb.data, (uInt)sb.size));
            memcpy(out + 12, sb.data, sb.size);
        }
        if (!st) st = pe_write_file_atomic(j->path, out, total, err);
        free(out);
        msgpack_sbuffer_destroy(&sb);
    }
    free(buf);
    free(keep_off);
    free(keep_len);
    if (st) return st;
    j->f = fopen(j->path, "ab");
    if (!j->f) return pe_fail(err, PE_ERR_INPUT, "%s: cannot open for append (%s)", j->path, strerror(errno));
    return PE_OK;
}

pe_status journal_append(journal *j, const void *payload, size_t len, pe_err *err) {
    return write_record(j->f, payload, len, j->path, err);
}

void journal_close(journal *j) {
    if (j->f) fclose(j->f);
    j->f = NULL;
}

void journal_pack_task(void *sb, int task, const void *rows) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "t", 1);
    msgpack_pack_str_with_body(&pk, "task", 4);
    msgpack_pack_str_with_body(&pk, "task", 4);
    msgpack_pack_int(&pk, task);
    msgpack_pack_str_with_body(&pk, "rows", 4);
    msgpack_pack_object(&pk, *(const msgpack_object *)rows);
}
