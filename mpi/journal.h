/* journal.h: the append-only record of finished tasks that makes runs resumable.
 *
 * File <run.out>/journal.msgpack: a sequence of records, each
 *     "PJR1" (4 bytes) | length u32 LE | crc32 u32 LE (zlib, of the payload) | payload (MessagePack)
 * The first payload is the header {"t": "pathens-journal", "v": 1, "fingerprint": u64, "tasks": n};
 * every other payload is one finished task {"t": "task", "task": id, "rows": {...}} (ens_rows_pack).
 * Each append is flushed and fsynced before the task counts as done. On open, records are read
 * in order; a record whose magic, length or checksum is wrong, or whose content does not parse or
 * fit, is dropped (its task is redone), and when anything was dropped the journal is rewritten
 * with only the good records (tmp + rename); the first reasons are kept for the warning. Every
 * payload is checked before it is unpacked (proto_msgpack_bounded: no container may claim more
 * elements than the record has bytes). A header written by a different config is refused, and so
 * is a journal.msgpack that is not a regular file. Once a run's results are written the journal
 * is deleted (src/cli/main.c): it exists only while a run is unfinished. */
#pragma once
#include <stdio.h>

#include "common.h"

typedef struct {
    FILE *f;
    char  path[4200];
    int   dropped; /* records dropped on open (damaged / torn) */
    int   replayed; /* records accepted on open */
    char  why[3][256]; /* why the first dropped records were dropped ("" when fewer) */
} journal;

/* called for each intact task record; return PE_OK to accept it (the task is done) */
typedef pe_status (*journal_task_fn)(void *ctx, int task, const void *rows_object, pe_err *err);

pe_status journal_open(journal *j, const char *dir, uint64_t fingerprint, int n_tasks, journal_task_fn on_task,
                       void *ctx, pe_err *err);
/* The header of <dir>/journal.msgpack without reading the rest: *exists 0 (no journal), or 1 with
 * *have_header 1 and its fingerprint and task count when the first record is an intact header
 * (0 when it is damaged: journal_open then drops it). PE_ERR_INPUT when the path is not a
 * regular file. */
pe_status journal_peek(const char *dir, int *exists, int *have_header, uint64_t *fingerprint, int *n_tasks,
                       pe_err *err);
/* payload: a packed {"t": "task", "task": id, "rows": ...} (journal_pack_task) */
pe_status journal_append(journal *j, const void *payload, size_t len, pe_err *err);
/* append to sb (a msgpack_sbuffer*) the task record of task with its rows (a msgpack_object*) */
void      journal_pack_task(void *sb, int task, const void *rows);
void      journal_close(journal *j);
