/* pathways.c: sampling information pathways (subsets of attention connections), counter-based.
 *
 * Formulas, the causal rule, the key derivation of the random streams and the expected kept
 * fractions are in docs/pathways.md; the API contract is in pathways.h. Every draw is a pure
 * function of (seed, member, layer', head', sequence id, scheme) where (layer', head') follow the
 * granularity, and, for random-k, of the query index (one sub-stream per query). Nothing here
 * uses rand() or any global state, so draws do not depend on call order, batch composition,
 * thread count or rank.
 */
#include "pathways.h"

#include "kernels.h" /* kern_simd_active: the AVX2 switch the tests flip */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PW_HAVE_AVX2 1
#endif

/* ---- counter-based randomness ----------------------------------------------------------- */

#define PW_GAMMA 0x9e3779b97f4a7c15ULL /* golden-ratio increment of SplitMix64 */

/* SplitMix64 / Stafford "Mix13" finalizer: a bijection on 64 bits with full avalanche */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* one odd multiplier and one offset per input slot, so (a, b) and (b, a) give different keys */
static const uint64_t PW_SLOT_MUL[6] = {0xd6e8feb86659fd93ULL, 0xa0761d6478bd642fULL, 0xe7037ed1a0b428dbULL,
                                        0x8ebc6af09c88c6e3ULL, 0x589965cc75374cc3ULL, 0x1d8e4e27c47d124fULL};
static const uint64_t PW_SLOT_ADD[6] = {0x2545f4914f6cdd1dULL, 0x9fb21c651e98df25ULL, 0xc2b2ae3d27d4eb4fULL,
                                        0x165667b19e3779f9ULL, 0x27d4eb2f165667c5ULL, 0xff51afd7ed558ccdULL};

void pw_rng_init(pw_rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e) {
    const uint64_t in[6] = {seed, a, b, c, d, e};
    uint64_t       h = 0x6a09e667f3bcc909ULL; /* sqrt(2) fraction: any fixed start */
    for (int t = 0; t < 6; t++) h = mix64(h ^ mix64(in[t] * PW_SLOT_MUL[t] + PW_SLOT_ADD[t]));
    r->key = h;
    r->counter = 0;
}

uint64_t pw_rng_u64(pw_rng *r) {
    /* SplitMix64 evaluated at position `counter` of the sequence seeded with `key` */
    uint64_t x = mix64(r->key + (r->counter + 1) * PW_GAMMA);
    r->counter++;
    return x;
}

double pw_rng_uniform(pw_rng *r) {
    uint64_t m;
    do m = pw_rng_u64(r) >> 11; /* top 53 bits */
    while (m == 0);              /* probability 2^-53: keeps the result > 0 */
    return (double)m * 0x1p-53;  /* in [2^-53, 1 - 2^-53] */
}

double pw_rng_normal(pw_rng *r) {
    /* Box-Muller, cosine branch only: no cached state, two uniforms per normal */
    double u1 = pw_rng_uniform(r), u2 = pw_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

/* unbiased integer in [0, m), 1 <= m <= 2^32 (Lemire's multiply-shift with rejection) */
static inline uint32_t rng_below(pw_rng *r, uint32_t m) {
    uint64_t x = (pw_rng_u64(r) >> 32) * (uint64_t)m;
    uint32_t l = (uint32_t)x;
    if (l < m) {
        uint32_t thresh = (uint32_t)(-m) % m; /* 2^32 mod m */
        while (l < thresh) {
            x = (pw_rng_u64(r) >> 32) * (uint64_t)m;
            l = (uint32_t)x;
        }
    }
    return (uint32_t)(x >> 32);
}

/* independent sub-stream number `idx` of a stream (random-k: one per query) */
static void rng_substream(pw_rng *sub, const pw_rng *base, uint64_t idx) {
    sub->key = mix64(base->key ^ mix64(idx * 0xc2b2ae3d27d4eb4fULL + 0x165667b19e3779f9ULL));
    sub->counter = 0;
}

/* ---- names, config ---------------------------------------------------------------------- */

static const char *const SCHEME_NAMES[] = {"dense", "unbiased", "local", "random-k", "window", "head-drop", "plan"};
static const char *const GRAN_NAMES[] = {"head", "layer", "sequence"};

int pw_scheme_parse(const char *s) {
    if (!s) return -1;
    for (int i = 0; i < (int)(sizeof SCHEME_NAMES / sizeof SCHEME_NAMES[0]); i++)
        if (!strcmp(s, SCHEME_NAMES[i])) return i;
    return -1;
}

const char *pw_scheme_name(pw_scheme s) {
    if ((int)s < 0 || (int)s >= (int)(sizeof SCHEME_NAMES / sizeof SCHEME_NAMES[0])) return "unknown";
    return SCHEME_NAMES[s];
}

int pw_granularity_parse(const char *s) {
    if (!s) return -1;
    for (int i = 0; i < (int)(sizeof GRAN_NAMES / sizeof GRAN_NAMES[0]); i++)
        if (!strcmp(s, GRAN_NAMES[i])) return i;
    return -1;
}

const char *pw_granularity_name(pw_granularity g) {
    if ((int)g < 0 || (int)g >= (int)(sizeof GRAN_NAMES / sizeof GRAN_NAMES[0])) return "unknown";
    return GRAN_NAMES[g];
}

pe_status pw_config_check(const pw_config *c, pe_err *err) {
    if ((int)c->scheme < PW_SCHEME_DENSE || (int)c->scheme > PW_SCHEME_PLAN)
        return pe_fail(err, PE_ERR_INPUT,
                       "pathways.scheme: unknown scheme %d; use dense, unbiased, local, random-k, window, head-drop "
                       "or plan", (int)c->scheme);
    if (c->scheme == PW_SCHEME_PLAN && (!c->head_keep || !c->head_window || c->n_heads < 1))
        return pe_fail(err, PE_ERR_INPUT, "pathways.scheme = plan needs a plan file: set pathways.plan = FILE "
                       "(written by pathens prune)");
    if ((int)c->granularity < PW_GRAN_HEAD || (int)c->granularity > PW_GRAN_SEQUENCE)
        return pe_fail(err, PE_ERR_INPUT, "pathways.granularity: unknown granularity %d; use head, layer or sequence",
                       (int)c->granularity);
    if (!(c->ratio >= 1.0) || !isfinite(c->ratio))
        return pe_fail(err, PE_ERR_INPUT,
                       "pathways.ratio = %g: the subsampling ratio must be a finite number >= 1 (1 = dense)", c->ratio);
    if (!(c->sigma >= 0.0) || !isfinite(c->sigma))
        return pe_fail(err, PE_ERR_INPUT,
                       "pathways.sigma = %g: the locality width must be a finite number >= 0 (0 = block-diagonal)",
                       c->sigma);
    if (!(c->lambda > 0.0)) /* INFINITY allowed (uniform), NaN rejected */
        return pe_fail(err, PE_ERR_INPUT, "pathways.lambda = %g: the distance decay must be > 0 (inf = uniform)",
                       c->lambda);
    if (!(c->keep >= 0.0 && c->keep <= 1.0))
        return pe_fail(err, PE_ERR_INPUT,
                       "pathways.keep = %g: the head keep probability must be in [0, 1] (0 = 1/ratio)", c->keep);
    if (c->members < 1)
        return pe_fail(err, PE_ERR_INPUT, "pathways.members = %d: an ensemble needs at least 1 member", c->members);
    return PE_OK;
}

/* ---- sample storage --------------------------------------------------------------------- */

#define PW_MAX_N 46340 /* n*n must fit in an int (key offsets) */
#define PW_GEO_K 1024  /* slots of the random-k alias table (geo_build) */
#define PW_MARK_STRIDE(cap) (((size_t)(cap) + 31) & ~(size_t)31) /* bytes of one query's Floyd marks */

pe_status pw_sample_init(pw_sample *s, int max_n, pe_err *err) {
    memset(s, 0, sizeof *s);
    if (max_n < 1 || max_n > PW_MAX_N)
        return pe_fail(err, PE_ERR_INPUT, "pathways: sequence length %d out of range [1, %d] for a sample", max_n,
                       PW_MAX_N);
    size_t n = (size_t)max_n;
    s->cap = max_n;
    s->win_start = pe_malloc((n + 1) * sizeof(int), err, "pathways window starts");
    s->key_start = pe_malloc((n + 1) * sizeof(int), err, "pathways key offsets");
    s->keys = pe_malloc((n * n + 8) * sizeof(int), err, "pathways keys"); /* + marks_collect's overrun */
    s->work = pe_malloc((4 * n + 3) * sizeof(double), err, "pathways scratch"); /* n + three (n+1) tables */
    s->perm = pe_malloc(n * sizeof(int), err, "pathways permutation");
    s->marks = pe_calloc(2 * PW_MARK_STRIDE(n), 1, err, "pathways pick marks");
    s->geo_thr = pe_malloc(PW_GEO_K * sizeof(uint64_t), err, "pathways alias thresholds");
    s->geo_alias = pe_malloc(2 * PW_GEO_K * sizeof(int), err, "pathways alias table");
    s->geo_p = pe_malloc(PW_GEO_K * sizeof(double), err, "pathways alias scratch");
    if (!s->win_start || !s->key_start || !s->keys || !s->work || !s->perm || !s->marks || !s->geo_thr ||
        !s->geo_alias || !s->geo_p) {
        pw_sample_free(s);
        return PE_ERR_INTERNAL;
    }
    s->geo_lambda = NAN; /* no alias table yet */
    s->kind = PW_SAMPLE_ALL;
    return PE_OK;
}

void pw_sample_free(pw_sample *s) {
    if (!s) return;
    free(s->win_start);
    free(s->key_start);
    free(s->keys);
    free(s->work);
    free(s->perm);
    free(s->marks);
    free(s->geo_thr);
    free(s->geo_alias);
    free(s->geo_p);
    memset(s, 0, sizeof *s);
}

/* A sample that is too small for n is a bug in the caller; writing past the buffers would be
 * worse than stopping. */
static void check_cap(const pw_sample *s, int n, const char *fn) {
    if (n > s->cap || !s->keys) {
        fprintf(stderr, "pathens: internal error: %s with n = %d on a sample allocated for %d positions\n", fn, n,
                s->cap);
        abort();
    }
}

/* ---- helpers ---------------------------------------------------------------------------- */

/* keys per query: ceil(nv / ρ) in [1, nv] (the 1e-9 absorbs the rounding of nv/ρ when the exact
 * quotient is an integer, e.g. 11 / 1.1) */
static int keys_for(int nv, double ratio) {
    if (nv <= 0) return 0;
    double q = ceil((double)nv / ratio - 1e-9);
    int    k = q < 1.0 ? 1 : (q > nv ? nv : (int)q);
    return k;
}

/* local: number of windows W = ceil(ρ) (ρ rounded up, so never more than n^2/ρ connections),
 * clamped to [1, n] */
static int local_windows(int n, double ratio) {
    double w = ceil(ratio - 1e-9);
    int    W = w < 1.0 ? 1 : (w > n ? n : (int)w);
    return W;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* total order on indices by (val[index], index): stable argsort semantics */
static int key_less(const double *val, int a, int b) { return val[a] < val[b] || (val[a] == val[b] && a < b); }

static void sift_down(int *idx, int root, int end, const double *val) {
    for (;;) {
        int child = 2 * root + 1;
        if (child >= end) return;
        if (child + 1 < end && key_less(val, idx[child], idx[child + 1])) child++;
        if (!key_less(val, idx[root], idx[child])) return;
        int t = idx[root];
        idx[root] = idx[child];
        idx[child] = t;
        root = child;
    }
}

/* in-place heapsort of idx[0..m) by key_less (deterministic, O(m log m), no extra memory) */
static void argsort_heap(int *idx, int m, const double *val) {
    for (int start = m / 2 - 1; start >= 0; start--) sift_down(idx, start, m, val);
    for (int end = m - 1; end > 0; end--) {
        int t = idx[0];
        idx[0] = idx[end];
        idx[end] = t;
        sift_down(idx, 0, end, val);
    }
}

/* rearrange idx[0..m) so that idx[0..t) are the t smallest by key_less (quickselect, median of 3) */
static void select_smallest(int *idx, int m, int t, const double *val) {
    int lo = 0, hi = m - 1;
    if (t <= 0 || t >= m) return;
    while (hi > lo) {
        int mid = lo + (hi - lo) / 2;
        /* median of three to idx[mid] */
        if (key_less(val, idx[mid], idx[lo])) { int x = idx[mid]; idx[mid] = idx[lo]; idx[lo] = x; }
        if (key_less(val, idx[hi], idx[lo])) { int x = idx[hi]; idx[hi] = idx[lo]; idx[lo] = x; }
        if (key_less(val, idx[hi], idx[mid])) { int x = idx[hi]; idx[hi] = idx[mid]; idx[mid] = x; }
        int pivot = idx[mid];
        int i = lo, j = hi;
        while (i <= j) {
            while (key_less(val, idx[i], pivot)) i++;
            while (key_less(val, pivot, idx[j])) j--;
            if (i <= j) { int x = idx[i]; idx[i] = idx[j]; idx[j] = x; i++; j--; }
        }
        /* now [lo, j] <= pivot <= [i, hi] */
        if (t - 1 <= j) hi = j;
        else if (t - 1 >= i) lo = i;
        else break;
    }
}

/* ---- unbiased and local from an explicit permutation (Fig. 3) --------------------------- */

void pw_draw_unbiased_from_perm(pw_sample *s, const int *perm, int n, double ratio, int causal) {
    check_cap(s, n, "pw_draw_unbiased_from_perm");
    int k = keys_for(n, ratio);
    s->kind = PW_SAMPLE_WINDOWS;
    s->n = n;
    s->causal = causal;
    s->n_windows = 1;
    s->win_start[0] = 0;
    s->win_start[1] = n;
    s->key_start[0] = 0;
    s->key_start[1] = k;
    if (s->keys != perm) memmove(s->keys, perm, (size_t)k * sizeof(int));
    qsort(s->keys, (size_t)k, sizeof(int), cmp_int);
}

void pw_draw_local_from_perm(pw_sample *s, const int *perm, int n, double ratio, int causal) {
    check_cap(s, n, "pw_draw_local_from_perm");
    int W = n > 0 ? local_windows(n, ratio) : 0;
    s->kind = PW_SAMPLE_WINDOWS;
    s->n = n;
    s->causal = causal;
    s->n_windows = W;
    for (int w = 0; w <= W; w++) {
        int b = (int)((int64_t)w * n / W); /* b_w = floor(w n / W) */
        s->win_start[w] = b;
        s->key_start[w] = b; /* window w keeps |chunk w| = b_{w+1} - b_w keys */
    }
    if (s->keys != perm) memmove(s->keys, perm, (size_t)n * sizeof(int));
    for (int w = 0; w < W; w++)
        qsort(s->keys + s->key_start[w], (size_t)(s->key_start[w + 1] - s->key_start[w]), sizeof(int), cmp_int);
}

/* ---- random-k ----------------------------------------------------------------------------- */

/* Sort out[0..cnt) ascending; mark[] holds `stamp` exactly at the picked positions, all inside
 * [lo, hi]. Scans the marks when that is cheaper than sorting. */
static void finish_sorted(int *out, int cnt, const int *mark, int stamp, int lo, int hi) {
    if (cnt <= 1) return;
    if ((int64_t)(hi - lo + 1) <= 16 * (int64_t)cnt) {
        int c = 0;
        for (int j = lo; j <= hi; j++)
            if (mark[j] == stamp) out[c++] = j;
    } else {
        qsort(out, (size_t)cnt, sizeof(int), cmp_int);
    }
}

/* PW_POS8[b]: the positions of b's set bits, ascending, one per byte from the lowest (the rest
 * 0); generated by: for b in 0..255, the bytes k with bit k of b set. */
static const uint64_t PW_POS8[256] = {
    0x0ULL, 0x0ULL, 0x1ULL, 0x100ULL, 0x2ULL, 0x200ULL, 0x201ULL, 0x20100ULL,
    0x3ULL, 0x300ULL, 0x301ULL, 0x30100ULL, 0x302ULL, 0x30200ULL, 0x30201ULL, 0x3020100ULL,
    0x4ULL, 0x400ULL, 0x401ULL, 0x40100ULL, 0x402ULL, 0x40200ULL, 0x40201ULL, 0x4020100ULL,
    0x403ULL, 0x40300ULL, 0x40301ULL, 0x4030100ULL, 0x40302ULL, 0x4030200ULL, 0x4030201ULL, 0x403020100ULL,
    0x5ULL, 0x500ULL, 0x501ULL, 0x50100ULL, 0x502ULL, 0x50200ULL, 0x50201ULL, 0x5020100ULL,
    0x503ULL, 0x50300ULL, 0x50301ULL, 0x5030100ULL, 0x50302ULL, 0x5030200ULL, 0x5030201ULL, 0x503020100ULL,
    0x504ULL, 0x50400ULL, 0x50401ULL, 0x5040100ULL, 0x50402ULL, 0x5040200ULL, 0x5040201ULL, 0x504020100ULL,
    0x50403ULL, 0x5040300ULL, 0x5040301ULL, 0x504030100ULL, 0x5040302ULL, 0x504030200ULL, 0x504030201ULL, 0x50403020100ULL,
    0x6ULL, 0x600ULL, 0x601ULL, 0x60100ULL, 0x602ULL, 0x60200ULL, 0x60201ULL, 0x6020100ULL,
    0x603ULL, 0x60300ULL, 0x60301ULL, 0x6030100ULL, 0x60302ULL, 0x6030200ULL, 0x6030201ULL, 0x603020100ULL,
    0x604ULL, 0x60400ULL, 0x60401ULL, 0x6040100ULL, 0x60402ULL, 0x6040200ULL, 0x6040201ULL, 0x604020100ULL,
    0x60403ULL, 0x6040300ULL, 0x6040301ULL, 0x604030100ULL, 0x6040302ULL, 0x604030200ULL, 0x604030201ULL, 0x60403020100ULL,
    0x605ULL, 0x60500ULL, 0x60501ULL, 0x6050100ULL, 0x60502ULL, 0x6050200ULL, 0x6050201ULL, 0x605020100ULL,
    0x60503ULL, 0x6050300ULL, 0x6050301ULL, 0x605030100ULL, 0x6050302ULL, 0x605030200ULL, 0x605030201ULL, 0x60503020100ULL,
    0x60504ULL, 0x6050400ULL, 0x6050401ULL, 0x605040100ULL, 0x6050402ULL, 0x605040200ULL, 0x605040201ULL, 0x60504020100ULL,
    0x6050403ULL, 0x605040300ULL, 0x605040301ULL, 0x60504030100ULL, 0x605040302ULL, 0x60504030200ULL, 0x60504030201ULL, 0x6050403020100ULL,
    0x7ULL, 0x700ULL, 0x701ULL, 0x70100ULL, 0x702ULL, 0x70200ULL, 0x70201ULL, 0x7020100ULL,
    0x703ULL, 0x70300ULL, 0x70301ULL, 0x7030100ULL, 0x70302ULL, 0x7030200ULL, 0x7030201ULL, 0x703020100ULL,
    0x704ULL, 0x70400ULL, 0x70401ULL, 0x7040100ULL, 0x70402ULL, 0x7040200ULL, 0x7040201ULL, 0x704020100ULL,
    0x70403ULL, 0x7040300ULL, 0x7040301ULL, 0x704030100ULL, 0x7040302ULL, 0x704030200ULL, 0x704030201ULL, 0x70403020100ULL,
    0x705ULL, 0x70500ULL, 0x70501ULL, 0x7050100ULL, 0x70502ULL, 0x7050200ULL, 0x7050201ULL, 0x705020100ULL,
    0x70503ULL, 0x7050300ULL, 0x7050301ULL, 0x705030100ULL, 0x7050302ULL, 0x705030200ULL, 0x705030201ULL, 0x70503020100ULL,
    0x70504ULL, 0x7050400ULL, 0x7050401ULL, 0x705040100ULL, 0x7050402ULL, 0x705040200ULL, 0x705040201ULL, 0x70504020100ULL,
    0x7050403ULL, 0x705040300ULL, 0x705040301ULL, 0x70504030100ULL, 0x705040302ULL, 0x70504030200ULL, 0x70504030201ULL, 0x7050403020100ULL,
    0x706ULL, 0x70600ULL, 0x70601ULL, 0x7060100ULL, 0x70602ULL, 0x7060200ULL, 0x7060201ULL, 0x706020100ULL,
    0x70603ULL, 0x7060300ULL, 0x7060301ULL, 0x706030100ULL, 0x7060302ULL, 0x706030200ULL, 0x706030201ULL, 0x70603020100ULL,
    0x70604ULL, 0x7060400ULL, 0x7060401ULL, 0x706040100ULL, 0x7060402ULL, 0x706040200ULL, 0x706040201ULL, 0x70604020100ULL,
    0x7060403ULL, 0x706040300ULL, 0x706040301ULL, 0x70604030100ULL, 0x706040302ULL, 0x70604030200ULL, 0x70604030201ULL, 0x7060403020100ULL,
    0x70605ULL, 0x7060500ULL, 0x7060501ULL, 0x706050100ULL, 0x7060502ULL, 0x706050200ULL, 0x706050201ULL, 0x70605020100ULL,
    0x7060503ULL, 0x706050300ULL, 0x706050301ULL, 0x70605030100ULL, 0x706050302ULL, 0x70605030200ULL, 0x70605030201ULL, 0x7060503020100ULL,
    0x7060504ULL, 0x706050400ULL, 0x706050401ULL, 0x70605040100ULL, 0x706050402ULL, 0x70605040200ULL, 0x70605040201ULL, 0x7060504020100ULL,
    0x706050403ULL, 0x70605040300ULL, 0x70605040301ULL, 0x7060504030100ULL, 0x70605040302ULL, 0x7060504030200ULL, 0x7060504030201ULL, 0x706050403020100ULL,
};

#ifdef PW_HAVE_AVX2
/* marks_collect, 32 marks a step: vpmovzxbd widens a PW_POS8 entry to 8 ints in one go */
__attribute__((target("avx2,popcnt"))) static int marks_collect_avx2(int *out, unsigned char *mk, int from, int m) {
    int           c = 0;
    const __m256i z = _mm256_setzero_si256();
    for (int w = from & ~31; w < m; w += 32) {
        __m256i  b = _mm256_loadu_si256((const __m256i *)(mk + w));
        unsigned f = ~(unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, z)); /* bit e: mark w + e set */
        _mm256_storeu_si256((__m256i *)(mk + w), z);
        for (int q = 0; q < 4; q++) {
            unsigned g = (f >> (8 * q)) & 0xffu;
            __m256i  p = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)&PW_POS8[g]));
            _mm256_storeu_si256((__m256i *)(out + c), _mm256_add_epi32(p, _mm256_set1_epi32(w + 8 * q)));
            c += _mm_popcnt_u32(g);
        }
    }
    return c;
}
#endif

/* The same for a byte per key (0 or 1; mk must be zero from m up to m rounded up to 32): the
 * ascending indices of the set marks of [from, m) into out (from rounded down to a multiple of
 * 32: marks below from must be 0 from there), the marks cleared; returns how many. Branch-free
 * per 8 marks (a ctz loop per block mispredicts its exit once per block): the 8 marks' positions
 * from PW_POS8 are written as 8 ints at out + c, and c advances by the marks' sum, so out must
 * have room for 7 ints past the last index written. The AVX2 path (kern_simd_active) writes the
 * same ints. */
static int marks_collect(int *out, unsigned char *mk, int from, int m) {
#ifdef PW_HAVE_AVX2
    if (kern_simd_active()) return marks_collect_avx2(out, mk, from, m);
#endif
    int c = 0;
#if defined(PW_HAVE_AVX2) && defined(__SSE2__) /* x86-64: SSE2 is the baseline */
    const __m128i z = _mm_setzero_si128();
    for (int w = from & ~31; w < m; w += 16) {
        __m128i  b = _mm_loadu_si128((const __m128i *)(mk + w));
        unsigned f = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(b, z)) ^ 0xffffu; /* bit e: mark w + e set */
        uint64_t half[2]; /* the marks as two words: a word times 0x01...01 sums its bytes in its top byte */
        memcpy(half, mk + w, 16);
        _mm_storeu_si128((__m128i *)(mk + w), z);
        for (int h = 0; h < 2; h++) {
            unsigned g = (f >> (8 * h)) & 0xffu;
            __m128i  p = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)&PW_POS8[g]), z); /* 8 x u16 */
            __m128i  base = _mm_set1_epi32(w + 8 * h);
            _mm_storeu_si128((__m128i *)(out + c), _mm_add_epi32(_mm_unpacklo_epi16(p, z), base));
            _mm_storeu_si128((__m128i *)(out + c + 4), _mm_add_epi32(_mm_unpackhi_epi16(p, z), base));
            c += (int)((half[h] * 0x0101010101010101ULL) >> 56); /* the set marks of the 8 */
        }
    }
#else
    for (int j = from; j < m; j++)
        if (mk[j]) out[c++] = j, mk[j] = 0;
#endif
    return c;
}

/* One step of Floyd's algorithm on byte marks: x = rng_below(v + 1) from the stream whose next
 * draw is mix64(*z + PW_GAMMA) (pw_rng_u64 at its counter, the position kept as a running sum
 * instead of a product), then x, or v when x is already picked, is marked. The same draws and
 * decisions as rng_below; its rejection (probability < (v + 1) / 2^32) stays out of line. */
static inline void floyd_step(unsigned char *mk, uint64_t *z, int v) {
    uint32_t m = (uint32_t)v + 1;
    *z += PW_GAMMA;
    uint64_t x = (mix64(*z) >> 32) * (uint64_t)m;
    if ((uint32_t)x < m) {
        uint32_t thresh = (uint32_t)(-m) % m; /* 2^32 mod m */
        while ((uint32_t)x < thresh) {
            *z += PW_GAMMA;
            x = (mix64(*z) >> 32) * (uint64_t)m;
        }
    }
    int j = (int)(x >> 32);
    j += (v - j) & -(int)mk[j]; /* taken: v (branch-free) */
    mk[j] = 1;
}

/* Floyd's algorithm: a uniform t-subset of [0, m) in O(t), 0 < t < m, as marks of mk (all 0 on
 * entry). For v = m-t ... m-1: x uniform in [0, v], and v instead when x is already picked. One
 * byte per key, so a pick's test and mark touch only its own byte: consecutive picks do not
 * read-modify-write a shared word (the 64-bit bitmap's store-to-load chain), and the picks,
 * whose draws are counter-based, overlap. */
static inline void floyd_marks(unsigned char *mk, const pw_rng *r, int m, int t) {
    uint64_t z = r->key + r->counter * PW_GAMMA;
    for (int v = m - t; v < m; v++) floyd_step(mk, &z, v);
}

/* truncated geometric by inversion: offset o in [0, len) with P(o) ∝ exp(-o/λ), from a uniform
 * v in [0, 1) and g = expm1(-len/λ) */
static int trunc_geom(double v, int len, double g, double lambda) {
    if (v > 0.99999999999999989) v = 0.99999999999999989; /* a rescaled uniform may round up to 1 */
    double y = -lambda * log(1.0 + v * g); /* log, not log1p: 3x faster, error ~1e-16 λ */
    int    o = !(y > 0.0) ? 0 : (y >= len ? len - 1 : (int)y);
    return o;
}

/* The alias table (Walker; Vose's construction) of the geometric law P(o) ∝ e^{-o/λ} on
 * o >= 0, folded into PW_GEO_K slots: slot o < K-1 is the offset o (probability q^o (1-q),
 * q = e^{-1/λ}), slot K-1 is "o >= K-1" (probability q^{K-1}; by memorylessness the offset is
 * then K-1 plus a fresh draw). thr[o] = P(keep o | column o) in units of 2^-48, alias[o] the
 * other outcome of column o. A fixed K (never a function of n) keeps causal draws prefix-stable. */
static void geo_build(pw_sample *s, double lambda) {
    if (s->geo_lambda == lambda) return;
    const int K = PW_GEO_K;
    double   *p = s->geo_p, q = exp(-1.0 / lambda), w = 1.0;
    int      *alias = s->geo_alias, *lst = alias + K, nsm = 0, big = K; /* small from the front, large from the back */
    for (int o = 0; o < K - 1; o++) p[o] = w * -expm1(-1.0 / lambda), w *= q;
    p[K - 1] = w; /* q^{K-1} */
    for (int o = 0; o < K; o++) {
        p[o] *= (double)K;
        alias[o] = o;
        if (p[o] < 1.0) lst[nsm++] = o;
        else lst[--big] = o;
    }
    while (nsm > 0 && big < K) {
        int l = lst[--nsm], g = lst[big++];
        alias[l] = g;
        s->geo_thr[l] = (uint64_t)(p[l] * 0x1p48);
        p[g] = (p[g] + p[l]) - 1.0;
        if (p[g] < 1.0) lst[nsm++] = g;
        else lst[--big] = g;
    }
    while (nsm > 0) s->geo_thr[lst[--nsm]] = (uint64_t)1 << 48; /* rounding leftovers: probability 1 */
    while (big < K) s->geo_thr[lst[big++]] = (uint64_t)1 << 48;
    s->geo_lambda = lambda;
}

/* offset o in [0, len) with P(o) ∝ e^{-o/λ}. When λ <= K / 2 (so the slot "o >= K-1" has
 * probability <= e^{-2}) and the truncation keeps at least 1/4 of the geometric's mass
 * (G[len] = 1 - e^{-len/λ} >= 1/4): alias-table draws (one u64 each: the low 10 bits pick the
 * column, the top 48 bits the coin) until the offset is < len; else the inversion trunc_geom (a
 * log). */
static inline int geo_offset(const pw_sample *s, pw_rng *r, int len, const double *G, double lambda) {
    if (lambda <= 0.5 * PW_GEO_K && G[len] >= 0.25) {
        for (;;) {
            int o = 0, slot;
            do {
                uint64_t x = pw_rng_u64(r);
                slot = (int)(x & (PW_GEO_K - 1));
                if ((x >> 16) >= s->geo_thr[slot]) slot = s->geo_alias[slot];
                o += slot;
            } while (slot == PW_GEO_K - 1 && o < len);
            if (o < len) return o;
        }
    }
    return trunc_geom(pw_rng_uniform(r), len, -G[len], lambda);
}

static inline uint64_t key_bits(double x) { /* order-preserving for x >= 0 */
    uint64_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

/* Random-k with finite λ: Efraimidis-Spirakis over the near keys, exponential jumps beyond. The
 * law is successive sampling's, exactly: the t picks are the t smallest keys κ_j = E_j / w_j,
 * E_j ~ Exp(1) iid, w_j = e^{-|i-j|/λ}.
 * - The near zone is the K nearest candidates (distance order, left before right at equal
 *   distance), K = min(m, t + min(ceil(PW_NEAR_MARGIN λ), t + 32)); each gets its key (one
 *   uniform, one log), and the t smallest are found by a histogram of the keys' binary exponents
 *   (keys >= 0: the bit pattern is monotone) and an exact selection inside the exponent that
 *   holds the t-th. Keys are stored scaled by e^{-dref/λ}, dref = max(0, radius - 600 λ), so
 *   none overflows (near keys that underflow to 0 are smaller than the t-th key by e^{-745} and
 *   fewer than t: picks either way).
 * - τ = the largest of the t picks. A candidate beyond the zone can be a pick only if κ_j < τ,
 *   which happens independently with probability 1 - e^{-w_j τ}: on each side, the next such
 *   distance is found in closed form from one X ~ Exp(1) (the first d with
 *   τ Σ_{cur < e <= d} w_e >= X, a geometric sum: the first success of independent trials), its
 *   key is drawn given κ < τ, it replaces the largest pick (a max-heap, built at the first
 *   entrant) and τ falls (A-ExpJ). Entrants are rare (~0.01 per pick at λ = 16, n = 1024).
 * Randomness, in order: the zone's keys left to right, then the left side's entrants outward,
 * then the right side's. Writes the sorted picks to out (room for m ints); key (n) scratch;
 * A[d] = e^{-d/λ}, Bt[d] = e^{d/λ} for d <= n (Bt is read up to 600 λ only). Returns t. */
#define PW_NEAR_MARGIN 2.5
static int random_k_finite(int *out, unsigned char *mk, double *key, const double *A, const double *Bt, pw_rng *r, int i,
                           int m, int t, int causal, int DR, double lambda) {
    double mg = ceil(PW_NEAR_MARGIN * lambda), cap = (double)t + 32.0, Kd = (double)t + (mg < cap ? mg : cap);
    int    K = Kd < (double)m ? (int)Kd : m, DL = i, RL = 0, RR = 0, cnt = !causal;
    while (cnt < K) { /* the zone: j = i - d for d in [1, RL], i + d for d in [1, RR], and i (bidirectional) */
        if (RL < DL) RL++, cnt++;
        if (cnt < K && RR < DR) RR++, cnt++;
    }
    int    far = RL > RR ? RL : RR;
    double dr = (double)far - 600.0 * lambda;
    int    dref = dr > 0.0 ? (int)ceil(dr) : 0; /* (d - dref) / λ <= 600 for every d <= far: no overflow */
    /* keys (scaled by e^{-dref/λ}), their exponent range, then the histogram */
    int hist[2048], elo = 2047, ehi = 0, j0 = i - RL, j1 = i + RR;
    for (int j = j0; j <= j1; j++) {
        if (causal && j == i) continue;
        int    d  = abs(i - j);
        double kj = -log(pw_rng_uniform(r)) * (d >= dref ? Bt[d - dref] : A[dref - d]);
        int    e  = (int)(key_bits(kj) >> 52);
        key[j]    = kj;
        elo = e < elo ? e : elo;
        ehi = e > ehi ? e : ehi;
    }
    if (ehi >= elo) memset(hist + elo, 0, (size_t)(ehi - elo + 1) * sizeof(int));
    for (int j = j0; j <= j1; j++)
        if (!(causal && j == i)) hist[key_bits(key[j]) >> 52]++;
    /* the exponent B of the t-th smallest key: keys below it are picks, keys in it are ordered exactly */
    int B = elo, below = 0;
    while (B < ehi && below + hist[B] < t) below += hist[B++]; /* the count reaches t by ehi */
    /* out[0, below): the picks below B, by exponent (a counting sort: exponent e's picks end at
     * pos[e] after the loop); out[t, c): the keys of exponent B */
    int pos[2048], c = t;
    for (int e = elo, a = 0; e < B; e++) pos[e] = a, a += hist[e];
    for (int j = j0; j <= j1; j++) {
        if (causal && j == i) continue;
        int e = (int)(key_bits(key[j]) >> 52);
        if (e < B) out[pos[e]++] = j;
        else if (e == B) out[c++] = j;
    }
    select_smallest(out + t, c - t, t - below, key);
    memmove(out + below, out + t, (size_t)(t - below) * sizeof(int)); /* out[0, t): the t smallest */
    if (K < m) {
        /* τ is the largest pick, and an entrant replaces it. Only out[h, t) is searched for it:
         * the picks out[0, h) have exponents under L (initially B: h = below), each smaller than
         * any key of exponent L, so while the largest of out[h, t) has exponent >= L it is the
         * largest of all. When it falls below (entrants' keys are smaller than the τ they
         * replace), L drops to the next exponent that holds picks and h to that exponent's first
         * pick in out[0, below) (ordered by exponent). The replaced pick is the one a search of
         * every pick finds (key_less is a total order), so the lists are the same. */
        int      h = below, L = B;
        int      heap = 0; /* out[h, t) a max-heap by key_less from the 9th entrant on (before: a scan per entrant,
                            * cheaper than building the heap for the one or two entrants of most queries) */
        int      top = h;  /* out[top] holds τ */
        int      nent = 0;
        double   q1 = -expm1(-1.0 / lambda); /* 1 - e^{-1/λ} */
        for (int u = h + 1; u < t; u++) top = key_less(key, out[top], out[u]) ? u : top;
        for (int side = 0; side < 2; side++) {
            int cur = side ? RR : RL, dmax = side ? DR : DL;
            while (cur < dmax) {
                double tau = key[out[top]];
                /* S = τ Σ_{e > cur} w_e = τ e^{-(cur + 1)/λ} / (1 - e^{-1/λ}), in the scaled units */
                double S = tau * exp(-(double)(cur + 1 - dref) / lambda) / q1, X = -log(pw_rng_uniform(r));
                if (!(X < S)) break;                      /* no entrant on this side */
                double k = ceil(-lambda * log1p(-X / S)); /* the smallest k with S (1 - e^{-k/λ}) >= X */
                if (k < 1.0) k = 1.0;
                if (k > (double)(dmax - cur)) break;
                int    d  = cur + (int)k, j = side ? i + d : i - d;
                double wt = tau * exp(-(double)(d - dref) / lambda);  /* w_d τ */
                if (!(wt > 0.0)) break; /* underflow: probability 0 here and beyond */
                double e  = -log1p(-pw_rng_uniform(r) * -expm1(-wt)); /* Exp(1) given E < w_d τ */
                key[j] = e / wt * tau;                                /* E / w_d, scaled */
                if (!heap && ++nent > 8) {
                    for (int u = (t - h) / 2 - 1; u >= 0; u--) sift_down(out + h, u, t - h, key);
                    heap = 1, top = h;
                }
                if (heap) {
                    out[h] = j; /* replaces the largest pick */
                    sift_down(out + h, 0, t - h, key);
                } else { /* the same: the largest by key_less is unique */
                    out[top] = j;
                    top = h;
                    for (int u = h + 1; u < t; u++) top = key_less(key, out[top], out[u]) ? u : top;
                }
                if (h > 0 && key_bits(key[out[top]]) < (uint64_t)L << 52) { /* out[h, t) fell below exponent L */
                    int e = L - 1; /* the next exponent below L that holds picks: out[pos[e] - hist[e], pos[e]) */
                    while (e >= elo && hist[e] == 0) e--;
                    if (e >= elo) L = e, h = pos[e] - hist[e];
                    else h = 0;
                    if (heap)
                        for (int u = (t - h) / 2 - 1; u >= 0; u--) sift_down(out + h, u, t - h, key);
                    top = h;
                    if (!heap)
                        for (int u = h + 1; u < t; u++) top = key_less(key, out[top], out[u]) ? u : top;
                }
                cur = d;
            }
        }
    }
    int lo = m; /* the sorted list from the marks (the picks lie mostly in the zone: the scan starts at the lowest) */
    for (int u = 0; u < t; u++) {
        mk[out[u]] = 1;
        lo = out[u] < lo ? out[u] : lo;
    }
    return marks_collect(out, mk, lo, m);
}

/* One random-k query i. Candidates: causal [0, i-1] (the self key i is always kept and counts
 * toward k), bidirectional [0, n-1]. Draws t keys without replacement, each pick ∝ exp(-|i-j|/λ)
 * among the keys not yet picked (successive sampling). Writes the sorted list to out and returns
 * its length. mark[j] == i means "picked for query i" (mark must not hold i elsewhere). */
static int random_k_query(const pw_sample *s, int *out, int *mark, double *work, const double *A,
                          const double *G, const double *Bt, const pw_rng *base, int i, int n, int causal, double ratio,
                          double lambda) {
    int nv = causal ? i + 1 : n;
    int k = keys_for(nv, ratio);
    int m = causal ? i : n;      /* candidates, all in [0, m) */
    int t = causal ? k - 1 : k;  /* picks among the candidates */
    pw_rng r;
    rng_substream(&r, base, (uint64_t)i);
    int cnt = 0;
    if (t <= 0) {
        out[0] = i; /* causal, k == 1 */
        return 1;
    }
    if (t >= m) { /* everything (ρ close to 1 for this query) */
        for (int j = 0; j < m; j++) out[j] = j;
        if (causal) out[m] = i;
        return causal ? m + 1 : m;
    }
    if (isinf(lambda)) {
        /* Floyd's algorithm: a uniform t-subset of [0, m) in O(t); the picks are byte marks (all
         * 0 between queries), read in order into the sorted list in O(t + m/16) */
        floyd_marks(s->marks, &r, m, t);
        cnt = marks_collect(out, s->marks, 0, m);
    } else if (3.0 * ceil(PW_NEAR_MARGIN * lambda) <= (double)t && (!causal || lambda >= 2.0)) {
        /* where it is the cheaper (measured at n = 1024: λ = 16, 25-45 ns per pick against 37
         * for the rejection sampler with one tail and 52-60 with two; λ = 2.5, 22 against 29 / 43;
         * λ = 0.7, 21 against 27 with two tails, but 22 against 17 with one; λ >= 100, where t is
         * small against the zone's margin, the rejection sampler): queries whose zone margin is
         * at most t/3, causal ones only for λ >= 2 */
        cnt = random_k_finite(out, s->marks, work, A, Bt, &r, i, m, t, causal, causal ? 0 : n - 1 - i, lambda);
    } else if (causal ? 4 * (int64_t)t > 3 * (int64_t)m : 5 * (int64_t)t > 2 * (int64_t)m) {
        /* (the cheaper of the two, measured: Efraimidis-Spirakis ~27 ns per candidate, the
         * rejection sampler ~37 ns per pick with one tail (causal), ~60 with two; n = 1024, λ = 16) */
        /* Efraimidis-Spirakis with exponential keys: the t smallest E_j exp(|i-j|/λ), E ~ Exp(1),
         * in log form; same law as successive sampling; O(m) */
        for (int j = 0; j < m; j++) {
            work[j] = log(-log(pw_rng_uniform(&r))) + fabs((double)(i - j)) / lambda;
            out[j] = j;
        }
        select_smallest(out, m, t, work);
        cnt = t;
        for (int c = 0; c < t; c++) mark[out[c]] = i;
        finish_sorted(out, cnt, mark, i, 0, m - 1);
    } else {
        /* O(t) expected: successive sampling by rejection. The picked keys contiguous with the
         * query form a core that is excluded exactly: proposals come from the two truncated
         * geometric tails outside it (left: distances [eL, DL], right: [eR, DR]) plus, if still
         * free, the query itself (bidirectional). A part is chosen in proportion to its exact
         * mass (one uniform, only when two or more parts remain), the offset inside it by
         * geo_offset (the alias table: no log). Scattered earlier picks are rejected; after 64
         * rejections in a row, one exact O(m) inversion over the free keys makes the pick (the law
         * of every pick is the same either way). */
        int    center = !causal;                 /* d = 0 still available */
        int    eL = 1, DL = i;                   /* left tail: j = i - d, d in [eL, DL] */
        int    eR = 1, DR = causal ? 0 : n - 1 - i; /* right tail: j = i + d, d in [eR, DR] */
        int    lo = m, hi = -1;
        int    lenL = -1, lenR = -1, e0 = 0, parts = 0;
        double mC = 0, mL = 0, mR = 0, tot = 0;
        int    dirty = 1;
        for (int c = 0; c < t; c++) {
            int x = -1;
            if (dirty) {
                /* masses relative to the nearest free distance e0, so they never all underflow;
                 * a tail's mass is A[e - e0] Σ_{o<len} e^{-o/λ}, the common factor 1/G[1] left out
                 * of all three (the centre's mass 1 becomes G[1]) */
                lenL = DL - eL + 1, lenR = DR - eR + 1;
                e0 = center ? 0 : (lenL > 0 && lenR > 0 ? (eL < eR ? eL : eR) : (lenL > 0 ? eL : eR));
                mC = center ? G[1] : 0.0;
                mL = lenL > 0 ? A[eL - e0] * G[lenL] : 0.0;
                mR = lenR > 0 ? A[eR - e0] * G[lenR] : 0.0;
                tot = mC + mL + mR;
                parts = center + (lenL > 0) + (lenR > 0);
                dirty = 0;
            }
            for (int tries = 0; tries < 64; tries++) {
                int part; /* 0 centre, 1 left, 2 right */
                if (parts == 1) part = center ? 0 : (lenL > 0 ? 1 : 2);
                else {
                    double u = pw_rng_uniform(&r) * tot;
                    part = u < mC ? 0 : (lenL > 0 && (u < mC + mL || lenR <= 0) ? 1 : 2);
                }
                int j = part == 0 ? i
                      : part == 1 ? i - (eL + geo_offset(s, &r, lenL, G, lambda))
                                  : i + (eR + geo_offset(s, &r, lenR, G, lambda));
                if (mark[j] != i) {
                    x = j;
                    break;
                }
            }
            if (x < 0) {
                /* exact inversion over the free keys of [0, m) */
                double total = 0.0;
                for (int j = 0; j < m; j++)
                    if (mark[j] != i) total += A[abs(i - j) - e0];
                double u = pw_rng_uniform(&r) * total, acc = 0.0;
                for (int j = 0; j < m; j++) {
                    if (mark[j] == i) continue;
                    x = j;
                    acc += A[abs(i - j) - e0];
                    if (u < acc) break;
                }
            }
            mark[x] = i;
            out[cnt++] = x;
            if (x < lo) lo = x;
            if (x > hi) hi = x;
            /* grow the core */
            if (x == i) center = 0, dirty = 1;
            while (eL <= DL && mark[i - eL] == i) eL++, dirty = 1;
            while (eR <= DR && mark[i + eR] == i) eR++, dirty = 1;
        }
        finish_sorted(out, cnt, mark, i, lo, hi);
    }
    if (causal) out[cnt++] = i; /* larger than every candidate: stays sorted */
    return cnt;
}

/* Floyd's draws of the queries a = i and b = i + 1 (both with 0 < t < m) at once: each query
 * keeps its own sub-stream, marks and sequence of steps, exactly random_k_query's, so the lists
 * are the same; the two queries' picks interleave. */
static void floyd_pair(int *outa, int *outb, unsigned char *ka, unsigned char *kb, const pw_rng *base, int i, int ma,
                       int ta, int mb, int tb, int causal) {
    pw_rng ra, rb;
    rng_substream(&ra, base, (uint64_t)i);
    rng_substream(&rb, base, (uint64_t)i + 1);
    uint64_t za = ra.key, zb = rb.key; /* counters 0 */
    int      both = ta < tb ? ta : tb, s = 0;
    for (; s < both; s++) {
        floyd_step(ka, &za, ma - ta + s);
        floyd_step(kb, &zb, mb - tb + s);
    }
    for (int u = s; u < ta; u++) floyd_step(ka, &za, ma - ta + u);
    for (int u = s; u < tb; u++) floyd_step(kb, &zb, mb - tb + u);
    int ca = marks_collect(outa, ka, 0, ma), cb = marks_collect(outb, kb, 0, mb);
    if (causal) outa[ca] = i, outb[cb] = i + 1;
}

/* ---- the draw ------------------------------------------------------------------------------ */

#define PW_SHARED_INDEX 0xffffffffffffffffULL /* layer'/head' when the granularity shares the draw */

void pw_draw(pw_sample *s, const pw_config *c, int member, int layer, int head, int64_t seq_id, int n, int causal) {
    check_cap(s, n, "pw_draw");
    if (n < 0) n = 0;
    s->n = n;
    s->causal = causal;
    s->n_windows = 0;
    s->kind = PW_SAMPLE_ALL;
    if (n > 0 && c->head_keep && !c->head_keep[layer * c->n_heads + head]) {
        s->kind = PW_SAMPLE_NONE; /* statically dropped head (ablation, plan) */
        return;
    }
    if (n > 0 && c->drop && c->drop(c->drop_ctx, s, member, layer, head, seq_id, n, causal)) return;
    if (c->scheme == PW_SCHEME_PLAN) {
        int w = c->head_window ? c->head_window[layer * c->n_heads + head] : 0;
        if (n == 0 || w <= 0 || w >= n) return; /* every key */
        s->kind = PW_SAMPLE_PER_QUERY;
        int off = 0;
        for (int i = 0; i < n; i++) {
            s->key_start[i] = off;
            int k  = causal ? (w < i + 1 ? w : i + 1) : w;
            int st = causal ? i - k + 1 : i - k / 2;
            if (st < 0) st = 0;
            if (st > n - k) st = n - k;
            for (int j = 0; j < k; j++) s->keys[off++] = st + j;
        }
        s->key_start[n] = off;
        return;
    }
    if (n == 0 || c->scheme == PW_SCHEME_DENSE) return;

    uint64_t L = (uint64_t)(int64_t)layer, H = (uint64_t)(int64_t)head;
    if (c->granularity == PW_GRAN_LAYER) H = PW_SHARED_INDEX;
    if (c->granularity == PW_GRAN_SEQUENCE) L = H = PW_SHARED_INDEX;
    pw_rng r;
    pw_rng_init(&r, c->seed, (uint64_t)(int64_t)member, L, H, (uint64_t)seq_id, 0x5057000000000000ULL + (uint64_t)c->scheme);

    switch (c->scheme) {
    case PW_SCHEME_DENSE:
    case PW_SCHEME_PLAN: return;
    case PW_SCHEME_UNBIASED: {
        int k = keys_for(n, c->ratio);
        int *p = s->perm;
        for (int j = 0; j < n; j++) p[j] = j;
        /* forward Fisher-Yates; its first k entries are final after k steps */
        for (int a = 0; a < k && a < n - 1; a++) {
            int b = a + (int)rng_below(&r, (uint32_t)(n - a));
            int x = p[a]; p[a] = p[b]; p[b] = x;
        }
        pw_draw_unbiased_from_perm(s, p, n, c->ratio, causal);
        return;
    }
    case PW_SCHEME_LOCAL: {
        int *p = s->perm;
        for (int j = 0; j < n; j++) p[j] = j;
        if (c->sigma > 0.0 && local_windows(n, c->ratio) > 1) {
            for (int j = 0; j < n; j++) s->work[j] = (double)j + c->sigma * pw_rng_normal(&r);
            argsort_heap(p, n, s->work); /* π = argsort(key), ties by j */
        }
        pw_draw_local_from_perm(s, p, n, c->ratio, causal);
        return;
    }
    case PW_SCHEME_RANDOM_K: {
        if (c->ratio <= 1.0) return; /* ALL */
        s->kind = PW_SAMPLE_PER_QUERY;
        for (int j = 0; j < n; j++) s->perm[j] = -1;
        /* tables after the n scratch doubles: A[d] = e^{-d/λ}, G[len] = -expm1(-len/λ), Bt[d] = e^{d/λ}
         * for d, len <= n (Bt is inf past 709 λ; random_k_finite reads it up to 600 λ only) */
        double *A = s->work + n, *G = A + n + 1, *Bt = G + n + 1;
        if (!isinf(c->lambda)) {
            for (int d = 0; d <= n; d++) {
                A[d] = exp(-(double)d / c->lambda);
                G[d] = -expm1(-(double)d / c->lambda);
                Bt[d] = exp((double)d / c->lambda);
            }
            geo_build(s, c->lambda);
        }
        int off = 0, i = 0;
        if (isinf(c->lambda)) /* Floyd, two queries at a time where both draw (same lists, overlapped) */
            for (; i + 1 < n; i += 2) {
                int ka = keys_for(causal ? i + 1 : n, c->ratio), kb = keys_for(causal ? i + 2 : n, c->ratio);
                int ma = causal ? i : n, mb = causal ? i + 1 : n, ta = causal ? ka - 1 : ka, tb = causal ? kb - 1 : kb;
                s->key_start[i] = off;
                s->key_start[i + 1] = off + ka; /* a list holds k keys in every case (random_k_query) */
                if (ta > 0 && ta < ma && tb > 0 && tb < mb) {
                    floyd_pair(s->keys + off, s->keys + off + ka, s->marks, s->marks + PW_MARK_STRIDE(s->cap), &r, i, ma, ta, mb,
                               tb, causal);
                } else {
                    random_k_query(s, s->keys + off, s->perm, s->work, A, G, Bt, &r, i, n, causal, c->ratio, c->lambda);
                    random_k_query(s, s->keys + off + ka, s->perm, s->work, A, G, Bt, &r, i + 1, n, causal, c->ratio,
                                   c->lambda);
                }
                off += ka + kb;
            }
        for (; i < n; i++) {
            s->key_start[i] = off;
            off += random_k_query(s, s->keys + off, s->perm, s->work, A, G, Bt, &r, i, n, causal, c->ratio, c->lambda);
        }
        s->key_start[n] = off;
        return;
    }
    case PW_SCHEME_WINDOW: {
        if (c->ratio <= 1.0) return; /* ALL */
        s->kind = PW_SAMPLE_PER_QUERY;
        int off = 0;
        int kb = keys_for(n, c->ratio);
        for (int i = 0; i < n; i++) {
            s->key_start[i] = off;
            int k = causal ? keys_for(i + 1, c->ratio) : kb;
            int st = causal ? i - k + 1 : i - k / 2;
            if (st < 0) st = 0;
            if (st > n - k) st = n - k;
            for (int j = 0; j < k; j++) s->keys[off++] = st + j;
        }
        s->key_start[n] = off;
        return;
    }
    case PW_SCHEME_HEAD_DROP: {
        double q = c->keep > 0.0 ? c->keep : 1.0 / c->ratio;
        if (q >= 1.0) return; /* ALL */
        if (!(pw_rng_uniform(&r) < q)) s->kind = PW_SAMPLE_NONE;
        return;
    }
    }
}

/* ---- applying the causal rule --------------------------------------------------------------- */

/* Calls visit(ctx, i, j) for every kept connection of s, in row order, j ascending. */
typedef void (*pw_visit_fn)(void *ctx, int i, int j);

static void visit_kept(const pw_sample *s, pw_visit_fn visit, void *ctx) {
    int n = s->n;
    switch (s->kind) {
    case PW_SAMPLE_NONE: return;
    case PW_SAMPLE_ALL:
        for (int i = 0; i < n; i++)
            for (int j = 0, je = s->causal ? i : n - 1; j <= je; j++) visit(ctx, i, j);
        return;
    case PW_SAMPLE_WINDOWS:
    case PW_SAMPLE_PER_QUERY: {
        int nl = s->kind == PW_SAMPLE_WINDOWS ? s->n_windows : n;
        for (int w = 0; w < nl; w++) {
            int qa = s->kind == PW_SAMPLE_WINDOWS ? s->win_start[w] : w;
            int qb = s->kind == PW_SAMPLE_WINDOWS ? s->win_start[w + 1] : w + 1;
            const int *L = s->keys + s->key_start[w];
            int        len = s->key_start[w + 1] - s->key_start[w];
            for (int i = qa; i < qb; i++) {
                if (!s->causal) {
                    for (int p = 0; p < len; p++) visit(ctx, i, L[p]);
                    continue;
                }
                /* keys before the query, then the query itself (kept whether sampled or not) */
                for (int p = 0; p < len && L[p] < i; p++) visit(ctx, i, L[p]);
                visit(ctx, i, i);
            }
        }
        return;
    }
    }
}

void pw_count_kept(const pw_sample *s, int64_t *kept, int64_t *allowed) {
    int64_t n = s->n;
    int64_t al = s->causal ? n * (n + 1) / 2 : n * n;
    int64_t k = 0;
    switch (s->kind) {
    case PW_SAMPLE_NONE: k = 0; break;
    case PW_SAMPLE_ALL: k = al; break;
    case PW_SAMPLE_WINDOWS:
    case PW_SAMPLE_PER_QUERY: {
        int nl = s->kind == PW_SAMPLE_WINDOWS ? s->n_windows : s->n;
        for (int w = 0; w < nl; w++) {
            int qa = s->kind == PW_SAMPLE_WINDOWS ? s->win_start[w] : w;
            int qb = s->kind == PW_SAMPLE_WINDOWS ? s->win_start[w + 1] : w + 1;
            const int *L = s->keys + s->key_start[w];
            int        len = s->key_start[w + 1] - s->key_start[w];
            if (!s->causal) {
                k += (int64_t)len * (qb - qa);
                continue;
            }
            /* queries ascend, so one pointer walks the sorted key list once */
            int p = 0;
            for (int i = qa; i < qb; i++) {
                while (p < len && L[p] <= i) p++;
                int self = p > 0 && L[p - 1] == i;
                k += p + (self ? 0 : 1);
            }
        }
        break;
    }
    }
    if (kept) *kept = k;
    if (allowed) *allowed = al;
}

typedef struct {
    int      n;
    uint8_t *mask;
} mask_ctx;

static void set_mask(void *ctx, int i, int j) {
    mask_ctx *m = ctx;
    m->mask[(size_t)i * m->n + j] = 1;
}

void pw_mask_dense(const pw_sample *s, uint8_t *mask) {
    memset(mask, 0, (size_t)s->n * s->n);
    mask_ctx m = {s->n, mask};
    visit_kept(s, set_mask, &m);
}
