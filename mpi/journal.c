/* journal.c: checksummed, fsynced, append-only task journal (journal.h). */
#include "journal.h"

#include <errno.h>
#include <msgpack.h>
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

pe_status journal_open(journal *j, const char *dir, uint64_t fingerprint, int n_tasks, journal_task_fn on_task,
                       void *ctx, pe_err *err) {
    memset(j, 0, sizeof *j);
    snprintf(j->path, sizeof j->path, "%s/journal.msgpack", dir);
    char *buf = NULL;
    size_t len = 0;
    FILE *in = fopen(j->path, "rb");
    if (in) {
        fclose(in);
        pe_status st = pe_read_file(j->path, &buf, &len, err);
        if (st) return st;
    }
    /* good records kept, in order: (offset, size) of the whole framed record */
    size_t *keep_off = NULL, *keep_len = NULL;
    int n_keep = 0, cap = 0, have_header = 0;
    pe_status st = PE_OK;
    size_t pos = 0;
    while (buf && pos < len) {
        if (len - pos < 12 || memcmp(buf + pos, JREC_MAGIC, 4) != 0) { /* framing lost: the rest is dropped */
            j->dropped++;
            break;
        }
        uint32_t n = get_u32((unsigned char *)buf + pos + 4), crc = get_u32((unsigned char *)buf + pos + 8);
        if (n > JREC_MAX || n > len - pos - 12) { /* torn tail */
            j->dropped++;
            break;
        }
        const char *payload = buf + pos + 12;
        size_t rec = 12 + (size_t)n;
        int good = (uint32_t)crc32(0L, (const Bytef *)payload, n) == crc;
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        if (good && msgpack_unpack_next(&up, payload, n, &off) != MSGPACK_UNPACK_SUCCESS) good = 0;
        if (good && !have_header) {
            const msgpack_object *t = proto_map_get(&up.data, "t"), *fp = proto_map_get(&up.data, "fingerprint"),
                                 *nt = proto_map_get(&up.data, "tasks");
            if (!t || t->type != MSGPACK_OBJECT_STR || t->via.str.size != 15 ||
                memcmp(t->via.str.ptr, "pathens-journal", 15) || !fp || fp->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                !nt || nt->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                good = 0;
            } else if (fp->via.u64 != fingerprint || (int)nt->via.u64 != n_tasks) {
                st = pe_fail(err, PE_ERR_INPUT,
                             "%s was written by a different config (fingerprint %016llx, %d tasks; this config: %016llx, "
                             "%d tasks); rerun with the config that wrote it, or choose another run.out, or delete the "
                             "journal to start over", j->path, (unsigned long long)fp->via.u64, (int)nt->via.u64,
                             (unsigned long long)fingerprint, n_tasks);
            } else {
                have_header = 1;
            }
            if (!good && !st) { /* no usable header: nothing here can be trusted */
                j->dropped++;
                msgpack_unpacked_destroy(&up);
                break;
            }
        } else if (good) {
            const msgpack_object *t = proto_map_get(&up.data, "t"), *id = proto_map_get(&up.data, "task"),
                                 *rows = proto_map_get(&up.data, "rows");
            pe_err e2 = {0};
            if (!t || t->type != MSGPACK_OBJECT_STR || t->via.str.size != 4 || memcmp(t->via.str.ptr, "task", 4) || !id ||
                id->type != MSGPACK_OBJECT_POSITIVE_INTEGER || id->via.u64 >= (uint64_t)n_tasks || !rows ||
                on_task(ctx, (int)id->via.u64, rows, &e2) != PE_OK)
                good = 0;
        }
        msgpack_unpacked_destroy(&up);
        if (st) break;
        if (good) {
            if (n_keep == cap) {
                cap = cap ? 2 * cap : 64;
                keep_off = realloc(keep_off, sizeof(size_t) * cap);
                keep_len = realloc(keep_len, sizeof(size_t) * cap);
            }
            keep_off[n_keep] = pos;
            keep_len[n_keep] = rec;
            n_keep++;
            if (have_header && n_keep > 1) j->replayed++;
        } else {
            j->dropped++;
        }
        pos += rec;
    }
    if (!st && (j->dropped > 0 || !buf)) {
        /* (re)write: header + the good records, atomically */
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        size_t total = 0;
        char *out = NULL;
        if (have_header) {
            for (int i = 0; i < n_keep; i++) total += keep_len[i];
            out = malloc(total ? total : 1);
            size_t at = 0;
            for (int i = 0; i < n_keep; i++) {
                memcpy(out + at, buf + keep_off[i], keep_len[i]);
                at += keep_len[i];
            }
        } else {
            pack_header(&sb, fingerprint, n_tasks);
            total = 12 + sb.size;
            out = malloc(total);
            memcpy(out, JREC_MAGIC, 4);
            put_u32((unsigned char *)out + 4, (uint32_t)sb.size);
            put_u32((unsigned char *)out + 8, (uint32_t)crc32(0L, (const Bytef *)sb.data, (uInt)sb.size));
            memcpy(out + 12, sb.data, sb.size);
        }
        st = pe_write_file_atomic(j->path, out, total, err);
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
