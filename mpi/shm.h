/* shm.h: one copy of a model's converted weights per node (MPI-3 shared memory). This header does
 * not include mpi.h, so the CLI can call it without MPI types. docs/mpi.md describes it.
 *
 * Tensors stored as float32 and aligned are views into the checkpoint's read-only mmap, which the
 * page cache already shares between the ranks of a node. F16 / BF16 tensors (and re-laid-out or
 * unaligned ones) must be converted into an owned block: without sharing, every rank holds its own
 * copy. shm_model_init puts that block in one MPI_Win_allocate_shared window per node (ranks of a
 * node found by MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)); each rank of the node converts a piece
 * of it, and from then on the block is only read (read-only pages where mprotect allows). */
#pragma once
#include "ckpt.h"
#include "model.h"

/* What one rank holds (shm_rank_info). */
typedef struct {
    int     shared;          /* 1: this rank's converted block is a window shared with copy_ranks ranks */
    int     copy_ranks;      /* ranks reading this rank's copy (1: its own) */
    int     copy_leader;     /* world rank of the lowest rank sharing the copy (itself when not shared) */
    int64_t converted_bytes; /* bytes of the converted block (0: every tensor is a view into the file) */
    int64_t read_only_bytes; /* of those, mapped read-only in this rank (the whole pages of a shared block) */
} shm_weights_info;

/* model_init for every rank of MPI_COMM_WORLD, collectively (every rank calls it at the same point,
 * on the thread that calls MPI): with more than one rank on a node, the node's ranks share one
 * converted block; with one rank (or PATHENS_SHM_RANKS=1), plain model_init (malloc).
 * PATHENS_SHM_RANKS=K (rank 0's environment): at most K consecutive ranks of a node share a copy
 * (e.g. one per socket); 1 = a copy per rank, as before sharing existed. Results are byte-identical
 * either way. model_free gives the window back (collective over the ranks sharing it). */
pe_status shm_model_init(model *m, ckpt_file *ck, pe_err *err);
/* On rank 0 after shm_model_init: what rank r holds; NULL elsewhere, or when r is out of range. */
const shm_weights_info *shm_rank_info(int r);
/* On rank 0 after shm_model_init: one line on the converted weights of the whole job ("weights: 12.3 MB
 * converted to float32, 1 copy for 4 ranks (MPI shared memory, 4 ranks per copy)"); returns 0 (buf "") when nothing was
 * converted. */
int shm_describe(char *buf, size_t n);
