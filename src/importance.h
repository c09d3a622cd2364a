/* importance.h: which pathways matter. Pure functions over member results, as mergeable sums.
 *
 * Distance bands: band 0 = distance 0 (a query's own position), band b >= 1 = distances
 * [2^(b-1), 2^b - 1]: 1, 2-3, 4-7, 8-15, ...
 *
 * Sampled importance (no extra forward passes; docs/importance.md): for a component c
 * (a (layer, head), or a (layer, distance band)) and member k of unit u, x_{k,u} is the fraction
 * of c's allowed connections that member k kept on unit u, and y_{k,u} the member's loss on u
 * (nats per token, or per image). Within each unit both are centred over the K members (this
 * removes how hard the unit is), and the pooled slope is
 *     β = Σ_u S_xy,u / Σ_u S_xx,u,   S_xy,u = Σ_k (x - x̄_u)(y - ȳ_u),   S_xx,u = Σ_k (x - x̄_u)^2
 * delta = -β is the loss increase when c goes from fully kept to fully dropped (for head-drop,
 * x ∈ {0, 1} and delta is exactly the within-unit mean loss of members that dropped c minus
 * those that kept it). Its standard error treats units as clusters:
 *     se = sqrt(n/(n-1) Σ_u (S_xy,u - β S_xx,u)^2) / Σ_u S_xx,u.
 * Independent random draws per component make the other components' effects noise that is
 * uncorrelated with x, so the marginal slope is unbiased for the average effect.
 */
#pragma once
#include "common.h"

#define IMP_MAX_BANDS 24

int imp_band_of(int distance);
/* number of bands needed for sequences of at most seq_len positions */
int imp_n_bands(int seq_len);
/* smallest / largest distance of a band */
int imp_band_lo(int band);
int imp_band_hi(int band);
/* connections with a distance in `band` that a sequence of n positions allows
 * (causal: Σ_{d in band} (n - d); bidirectional: d = 0: n, d > 0: 2 (n - d)) */
int64_t imp_band_allowed(int n, int band, int causal);

typedef struct {
    double  sxx, sxy;          /* Σ_u S_xx,u, Σ_u S_xy,u */
    double  sxy2, sxyxx, sxx2; /* Σ_u S_xy,u^2, Σ_u S_xy,u S_xx,u, Σ_u S_xx,u^2 */
    int64_t units;             /* units where x varied across members */
} imp_slope;

/* add one unit: x (K), y (K); entries with NaN x are skipped */
void   imp_slope_add_unit(imp_slope *s, const double *x, const double *y, int K);
void   imp_slope_merge(imp_slope *into, const imp_slope *from);
double imp_slope_delta(const imp_slope *s);  /* -β, NaN if x never varied */
double imp_slope_stderr(const imp_slope *s); /* NaN with fewer than 2 informative units */

/* Joint within-unit regression of the member losses on p features at once (for features that
 * are correlated by construction, like the kept fractions of the distance bands of one layer).
 * X(u, k, j) = X[u * x_unit + k * x_member + j] (NaN = feature not defined on that unit),
 * Y(u, k) = Y[u * K + k]. Centres both over the members of each unit, solves
 * (Σ_u X̃_uᵀX̃_u) β = Σ_u X̃_uᵀỹ_u and gives delta = -β with cluster-robust (sandwich) standard
 * errors, units as clusters. Features that never vary get NaN. units_out(j): units where feature j
 * varied. Returns PE_ERR_INTERNAL only on allocation failure. */
pe_status imp_joint_fit(double *delta, double *stderr_out, int64_t *units_out, int p, int N, int K, const double *X,
                        size_t x_unit, size_t x_member, const double *Y);

/* ---- drop-one importance members (docs/importance.md) -------------------------------------------
 * Components, numbered: c in [0, L*NH) is the head (c / NH, c % NH); c in [L*NH, L*NH + L) the whole
 * attention of layer c - L*NH; then the (layer, distance band) pairs (l, b) for b in [b0, NB), layer by
 * layer (b0 = 1 for causal models: a causal query always keeps distance 0). Two blocks of members:
 * the heads (C_h = L*NH components, M_h members) and the layers with their bands (C_r components,
 * M_r members). Member m of a block drops exactly one of the block's components on each unit (the
 * rest of the model dense): slot q = u*M + m of unit u walks the block's components in a seeded
 * permutation per cycle of C slots, so every component is dropped on about N*M/C units, on a
 * different random set of units each. M = ceil(C * min(units, floor(N/2)) / N), at most floor(C/2):
 * never more than half the passes of dropping every component alone. The estimate of a component is
 * the paired mean over its units of (loss with it dropped - dense loss of the same unit): a sample of
 * its single-component ablation, with a cluster standard error over those units. */
#include "pathways.h"

typedef struct {
    int      L, NH, NB, b0;
    int      C_h, C_r;   /* components of each block */
    int      M_h, M_r;   /* members (passes) of each block */
    int64_t  N;          /* units of the dataset */
    uint64_t seed;
} imp_design;

/* the design for N units, each component dropped on about `units` of them (0: no members) */
void imp_design_init(imp_design *d, int L, int NH, int NB, int causal, int64_t N, int64_t units, uint64_t seed);
int  imp_design_components(const imp_design *d); /* C_h + C_r */
/* the component that member m (0 .. M_h + M_r - 1; heads block first) drops on unit u */
int  imp_design_component(const imp_design *d, int m, int64_t u);
/* component number of a (layer, band) pair; -1 when the band has no component (b < b0) */
int  imp_design_band_component(const imp_design *d, int layer, int band);

/* The pw_config.drop hook (pathways.h): ctx is an imp_drop; seq_id is the unit index. Draws the
 * dropped head or layer as PW_SAMPLE_NONE, a dropped band as per-query key lists without that
 * band's distances; returns 0 (the scheme draws: dense) where this (layer, head) keeps everything. */
typedef struct {
    const imp_design *d;
    int               fixed; /* >= 0: every unit drops this component (an ablation); -1: the design */
    /* the design's component of the last (member, unit) asked for: every (layer, head) of a unit asks for the
     * same one; zero-initialise (valid = 0) and leave to imp_drop_draw */
    int               c_valid, c_member, c_comp;
    int64_t           c_seq;
} imp_drop;
int imp_drop_draw(const void *ctx, pw_sample *s, int member, int layer, int head, int64_t seq_id, int n, int causal);

/* Spearman rank correlation of (a_i, b_i) over the i where both are finite (average ranks for ties);
 * NaN with fewer than 3 such pairs or a constant side. *n_out: pairs used (may be NULL). */
double imp_spearman(const double *a, const double *b, int n, int *n_out);
