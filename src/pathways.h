/* pathways.h: sampling information pathways = subsets of attention connections.
 *
 * One draw is the sampled structure of one attention call: (member, layer, head, sequence) over
 * the n positions of a sequence. Draws are counter-based: a draw is a pure function of
 * (seed, member, layer, head, sequence id) (through the granularity), never of batch
 * composition, thread count, process or rank. docs/pathways.md has the formulas.
 *
 * Schemes (ratio ρ >= 1):
 *   dense      every allowed connection
 *   unbiased   one uniformly random subset S of ceil(n/ρ) sources shared by all queries (Fig. 3a)
 *   local      π = argsort_j(j + σ ε_j), ε ~ N(0,1); queries in natural order cut into W windows,
 *              window w attends to source chunk w = {π[b_w] .. π[b_{w+1}-1]}, b_w = floor(w n / W),
 *              W = ceil(ρ) clamped to [1, n] (non-integer ρ rounds up) (Fig. 3b)
 *   random-k   each query keeps k = ceil(n_valid/ρ) of its n_valid allowed keys, drawn without
 *              replacement with probability ∝ exp(-|i-j|/λ) (λ = inf: uniform)
 *   window     static: query i keeps its k = ceil(n_valid/ρ) nearest allowed keys (causal: the last
 *              k positions up to i; bidirectional: a centred window, shifted inside [0, n))
 *   head-drop  the whole head is kept with probability q (keep; default 1/ρ); a dropped head
 *              contributes nothing (its attention output is 0)
 *   plan       static: per (layer, head) kept or dropped, and a window of w nearest keys
 *              (head_keep, head_window; written by `pathens prune`)
 * Causal rule, every scheme: a query i keeps only keys j <= i of its sample, and always keeps
 * j = i, so no query is ever left without a key. (Bidirectional: the sample as drawn.)
 */
#pragma once
#include "common.h"

typedef enum {
    PW_SCHEME_DENSE     = 0,
    PW_SCHEME_UNBIASED  = 1,
    PW_SCHEME_LOCAL     = 2,
    PW_SCHEME_RANDOM_K  = 3,
    PW_SCHEME_WINDOW    = 4,
    PW_SCHEME_HEAD_DROP = 5,
    PW_SCHEME_PLAN      = 6, /* static plan: head_keep and head_window below (pathens prune) */
} pw_scheme;

typedef enum {
    PW_GRAN_HEAD     = 0, /* independent draw per (member, layer, head, sequence): the default */
    PW_GRAN_LAYER    = 1, /* one draw per (member, layer, sequence), shared by the heads of a layer */
    PW_GRAN_SEQUENCE = 2, /* one draw per (member, sequence), shared by every layer and head */
} pw_granularity;

typedef struct pw_sample pw_sample;

typedef struct {
    pw_scheme      scheme;
    double         ratio;       /* ρ >= 1 */
    double         sigma;       /* local: width of the locality noise, in positions (>= 0) */
    double         lambda;      /* random-k: distance decay (> 0; INFINITY = uniform) */
    double         keep;        /* head-drop: keep probability q in (0, 1]; <= 0 means 1/ρ */
    int            members;     /* K */
    uint64_t       seed;
    pw_granularity granularity;
    /* static structure, applied on top of any scheme (NULL = none); indexed [layer * n_heads + head]:
     * head_keep 0 drops the head (its output is 0: ablations and plans);
     * head_window w > 0 (scheme plan) keeps, per query, the w nearest allowed keys (the window
     * scheme's rule with k = min(w, n_valid)); 0 = every key */
    int            n_heads;
    const uint8_t *head_keep;
    const int     *head_window;
    /* importance.h (drop-one importance members, band ablations): when set, called first for every
     * draw with seq_id; returns 1 when it drew s itself, 0 to let the scheme draw */
    int          (*drop)(const void *ctx, pw_sample *s, int member, int layer, int head, int64_t seq_id, int n,
                         int causal);
    const void    *drop_ctx;
} pw_config;

typedef enum {
    PW_SAMPLE_ALL       = 0, /* every key (then the causal rule) */
    PW_SAMPLE_WINDOWS   = 1, /* query windows [win_start[w], win_start[w+1]) with sorted key lists
                                keys[key_start[w] .. key_start[w+1]); unbiased = 1 window, local = ρ */
    PW_SAMPLE_PER_QUERY = 2, /* query i: sorted keys[key_start[i] .. key_start[i+1]) (random-k, window) */
    PW_SAMPLE_NONE      = 3, /* head dropped: output 0 */
} pw_sample_kind;

struct pw_sample {
    pw_sample_kind kind;
    int   n;          /* positions in the sequence */
    int   causal;
    int   n_windows;  /* WINDOWS */
    int  *win_start;  /* (n + 1) window starts, last = n */
    int  *key_start;  /* (n + 1) offsets into keys (per window, or per query) */
    int  *keys;       /* (n * n) worst case; sorted ascending within each list */
    /* scratch for the samplers */
    int    cap;       /* max n this sample was allocated for */
    double *work;     /* (4 cap + 3) sampler scratch */
    int    *perm;     /* (n) */
    unsigned char *marks; /* (2, cap rounded up to 32) random-k pick marks (0/1; the second half: Floyd's
                           * pairs), all zero between draws */
    /* random-k, finite λ: the Walker/Vose alias table of the geometric law P(o) ∝ e^{-o/λ}
     * (pathways.c geo_build), rebuilt when λ changes */
    double    geo_lambda; /* NaN: not built */
    uint64_t *geo_thr;    /* (PW_GEO_K) acceptance thresholds in units of 2^-48 */
    int      *geo_alias;  /* (2, PW_GEO_K) aliases, then the builder's work list */
    double   *geo_p;      /* (PW_GEO_K) the builder's scaled probabilities */
};

pe_status pw_sample_init(pw_sample *s, int max_n, pe_err *err);
void pw_sample_free(pw_sample *s);

/* Check a config (ratio >= 1, sigma >= 0, lambda > 0, keep in [0,1], members >= 1). */
pe_status pw_config_check(const pw_config *c, pe_err *err);
/* parse / name schemes and granularities ("dense", "unbiased", "local", "random-k", "window",
 * "head-drop"; "head", "layer", "sequence"); -1 when unknown */
int pw_scheme_parse(const char *s);
const char *pw_scheme_name(pw_scheme s);
int pw_granularity_parse(const char *s);
const char *pw_granularity_name(pw_granularity g);

/* Draw the sample of (member, layer, head, sequence seq_id) over n <= s->cap positions. */
void pw_draw(pw_sample *s, const pw_config *c, int member, int layer, int head, int64_t seq_id, int n, int causal);

/* Number of connections the sample keeps after the causal rule, and the number allowed
 * (causal: n(n+1)/2, bidirectional: n*n). */
void pw_count_kept(const pw_sample *s, int64_t *kept, int64_t *allowed);
/* Materialise the sample as a mask (n, n): mask[i*n + j] = 1 if query i attends to key j, after
 * the causal rule (the naive twin of what the attention kernel does). */
void pw_mask_dense(const pw_sample *s, uint8_t *mask);

/* ---- counter-based randomness ----------------------------------------------------------- */
/* A stream keyed by up to 6 integers; every draw is a pure function of (key, counter). */
typedef struct {
    uint64_t key;
    uint64_t counter;
} pw_rng;

void     pw_rng_init(pw_rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e);
uint64_t pw_rng_u64(pw_rng *r);
double   pw_rng_uniform(pw_rng *r);  /* in (0, 1) exclusive */
double   pw_rng_normal(pw_rng *r);   /* standard normal */

/* Fig. 3 of the paper (tests): local scheme given an explicit permutation perm (n) */
void pw_draw_local_from_perm(pw_sample *s, const int *perm, int n, double ratio, int causal);
/* Fig. 3a: unbiased scheme given an explicit permutation */
void pw_draw_unbiased_from_perm(pw_sample *s, const int *perm, int n, double ratio, int causal);
