/* backward.h: training kernels: forward pieces that keep what the backward pass needs, and the
 * backward of every operation of the GPT-style LM and the ViT classifier (pathens train).
 * Each fast kernel has a naive reference twin (suffix _ref, loops in double) with the same
 * signature; tests check both against finite differences and against each other.
 *
 * Conventions: outputs first, then inputs, then weights, then sizes. N = rows (B*T).
 * Gradient outputs ACCUMULATE (+=) unless the comment says "written": the caller zeroes them.
 * Linear weights are nn.Linear layout W (OC, C) row-major (the native safetensors layout).
 */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "pathways.h"

/* ---- linear ------------------------------------------------------------------------------ */
/* Given dout (N, OC) of out = inp (N, C) . W^T + b:
 *   dinp (N, C)  += dout . W       (dinp may be NULL: not wanted)
 *   dw   (OC, C) += dout^T . inp
 *   db   (OC)    += Σ_n dout[n]    (db may be NULL: no bias); summed over n = 0..N-1 in order */
void bwd_matmul(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w, int N, int C,
                int OC);
void bwd_matmul_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w, int N,
                    int C, int OC);

/* ---- LayerNorm --------------------------------------------------------------------------- */
/* out (N, C) = (inp - mean) * rstd * w + b, written; mean, rstd (N) written (kept for the backward).
 * Same arithmetic as kern_norm (LayerNorm), so out is bit-identical to the inference forward. */
void fwd_layernorm(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b, int N, int C,
                   float eps);
/* dinp (N, C) += ..., dw (C) += ..., db (C) += ... (db may be NULL) */
void bwd_layernorm(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *mean,
                   const float *rstd, const float *w, int N, int C);
void bwd_layernorm_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *mean,
                       const float *rstd, const float *w, int N, int C);

/* ---- GELU (erf form, as kern_gelu with tanh_approx = 0) --------------------------------- */
/* dinp (n) += dout * gelu'(inp) */
void bwd_gelu(float *dinp, const float *dout, const float *inp, size_t n);
void bwd_gelu_ref(float *dinp, const float *dout, const float *inp, size_t n);

/* ---- softmax cross-entropy --------------------------------------------------------------- */
/* For rows n < N with targets[n] >= 0 (a negative target is not scored: its dlogits row is 0):
 *   loss_n = logsumexp(logits[n]) - logits[n][targets[n]]
 *   dlogits[n] = scale * (softmax(logits[n]) - onehot(targets[n]))   (written, every row)
 * Returns Σ_n loss_n in double (the caller divides). logits, dlogits (N, V); dlogits may alias logits. */
double bwd_crossentropy(float *dlogits, const float *logits, const int *targets, int N, int V, float scale);
double bwd_crossentropy_ref(float *dlogits, const float *logits, const int *targets, int N, int V, float scale);

/* ---- attention over a pathway sample, with a tape ---------------------------------------- */
/* The tape keeps, per attention call (layer, sequence, head), what the backward needs besides
 * q, k, v: the softmax probability of every kept connection and the keys they belong to. Memory
 * grows with the kept connections, never with T x T for a sparse sample. Two arenas, one of ints
 * (idx) and one of floats (val), hold one record per call at call_at[2c] (idx) and call_at[2c+1] (val).
 * val, every kind: one float per kept connection, the probabilities of query 0, 1, .., T-1 in turn,
 * each query's in ascending key order (so query i's start at val offset row_off[i] - row_off[0]).
 * idx, by sample kind:
 *   dropped head (PW_SAMPLE_NONE):  [ATT_REC_NONE].
 *   per-query lists (random-k, window, plan windows):  [ATT_REC_QUERY, then the kept keys of query
 *       0, 1, .., T-1, as val]: one int per kept connection.
 *   query windows (ALL = dense: one window of every key; WINDOWS: unbiased 1, local ρ windows):
 *       [ATT_REC_WINDOWS, causal, n_windows, then per window r0, r1, m, L (m)]: the window's queries
 *       [r0, r1) and its ascending key list; query i keeps the keys of L that are <= i (causal) or
 *       all of L, then (causal, i not in L) i itself: att_query_keys' rule, so its keys follow from
 *       L. About T + 6 ints per window record instead of one per connection.
 *   So dense attention stores 4 bytes per connection plus O(T) per call (the old keys + probs
 *   pairs took 8). The kernels compute over dense (rows, nk) blocks in a workspace: causal windows
 *   in blocks of ATT_TAPE_BLOCK queries over the keys <= the block's last query (masked 0).
 * row_off (n_calls, T + 1): connection counts, query i of call c kept
 *   row_off[c*(T+1)+i+1] - row_off[c*(T+1)+i] keys; row_off[c*(T+1)] = used before the call. */
#define ATT_TAPE_BLOCK 32 /* causal query blocks of the window kernels */
enum { ATT_REC_NONE = 0, ATT_REC_QUERY = 1, ATT_REC_WINDOWS = 2 };
typedef struct {
    int      T;          /* positions per sequence */
    int      n_calls;    /* capacity in calls (layers * B * NH) */
    int64_t *row_off;    /* (n_calls, T + 1) kept-connection offsets per query (bookkeeping, see above) */
    int64_t *call_at;    /* (n_calls, 2) offsets of call c's record in idx and in val */
    int64_t  used;       /* connections kept since the last att_tape_reset (Σ of the row counts) */
    int64_t  icap, iused; /* ints idx holds / has filled since the last reset (grows on demand) */
    int64_t  fcap, fused; /* floats val holds / has filled since the last reset (grows on demand) */
    int64_t  peak_bytes; /* largest memory reached: (icap + fcap) * 4 + row_off + call_at, for the memory report */
    int     *idx;        /* (icap) record ints */
    float   *val;        /* (fcap) record floats */
    float   *work;       /* (work_cap) kernel workspace, 4 T HS + 2 T^2 + T floats (gathered K, V and their
                            gradients, a block of scores / dP and one of probabilities); sized by the forward,
                            used by the backward; scratch, not a stored activation, so not in peak_bytes */
    int64_t  work_cap;
} att_tape;

/* initial_cap (connections; < 1 counts as 1): val starts with initial_cap floats, idx with
 * initial_cap / 4 + 64 ints (window records need few); both double (realloc) whenever a record
 * might not fit.
 * peak_bytes = largest (icap + fcap) * 4 + n_calls * (T + 3) * sizeof(int64_t). */
int  att_tape_init(att_tape *t, int n_calls, int T, int64_t initial_cap); /* 0 ok, -1 out of memory */
void att_tape_free(att_tape *t);
void att_tape_reset(att_tape *t); /* used = iused = fused = 0; keeps the memory (caps, peak_bytes) */

/* Sorted kept keys of query i in a drawn sample (pathways.h), after the causal rule (keys <= i
 * and always i itself): the keys kern_attention uses. Returns the count; keys (n) written. */
int att_query_keys(int *keys, const pw_sample *s, int i);

/* Forward of one attention layer for B sequences of T positions (all valid), recording the tape
 * for calls call0 + b*NH + h (T must equal tape->T). out, q, k, v (B, T, NH*HS); NKV == NH.
 * sample: drawn per (b, h) by the caller's rule: pw NULL, or scheme dense without head_keep = dense
 * (every allowed key; sample and seq_ids unused, may be NULL); else pw_draw(sample, pw, member,
 * layer, h, seq_ids[b], T, causal), sample->cap >= T. A dropped head (PW_SAMPLE_NONE) outputs 0 and stores
 * only its record tag.
 * Returns the number of kept connections (for the FLOP / memory report),
 * or -1 when the tape could not grow (out of memory). */
int64_t fwd_attention_tape(float *out, att_tape *tape, int call0, const float *q, const float *k, const float *v,
                           int B, int T, int NH, int HS, int causal, const pw_config *pw, pw_sample *sample,
                           int member, int layer, const int64_t *seq_ids);
/* Backward through the kept connections only: dq, dk, dv (B, T, NH*HS) += ..., from dout (B, T, NH*HS)
 * and the tape of calls call0 + b*NH + h (recorded by fwd_attention_tape with the same HS). Window
 * records run as sgemms per query block (dP = dO V_L^T, dS = P o (dP - rowsum(P o dP)),
 * dQ += s dS K_L, dK_L += s dS^T Q, dV_L += P^T dO, scattered back to the rows of L). */
void bwd_attention_tape(float *dq, float *dk, float *dv, const float *dout, const att_tape *tape, int call0,
                        const float *q, const float *k, const float *v, int B, int T, int NH, int HS);
/* Naive twin: dense attention with a 0/1 mask (B, NH, T, T) (mask[((b*NH+h)*T+i)*T+j] = 1: query i
 * attends to key j), recomputing the probabilities in double; a query with no kept key (dropped
 * head) outputs 0 and passes no gradient. out (B, T, NH*HS) written; dq, dk, dv += as above, accumulated
 * in double then added (each may be NULL to skip; dout may be NULL when all three are). */
void attention_masked_ref(float *out, float *dq, float *dk, float *dv, const float *dout, const uint8_t *mask,
                          const float *q, const float *k, const float *v, int B, int T, int NH, int HS);
