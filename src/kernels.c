/* kernels.c: forward kernels (cblas_sgemm for every projection and for attention blocks) and
 * their naive reference twins. */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- matmul ------------------------------------------------------------------------------ */

void kern_matmul(float *out, const float *inp, const model_linear *w, int N, int C, int OC) {
    /* out (N, OC) = inp (N, C) . W^T where W is (OC, C) [kmajor=0] or stored as (C, OC) [kmajor=1] */
    float beta = 0.0f;
    if (w->b) {
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, w->b, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, w->kmajor ? CblasNoTrans : CblasTrans, N, OC, C, 1.0f, inp, C,
                w->w, w->ld, beta, out, OC);
}

void kern_matmul_ref(float *out, const float *inp, const model_linear *w, int N, int C, int OC) {
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < OC; o++) {
            double s = w->b ? w->b[o] : 0.0;
            for (int c = 0; c < C; c++) {
                float wv = w->kmajor ? w->w[(size_t)c * w->ld + o] : w->w[(size_t)o * w->ld + c];
                s += (double)inp[(size_t)n * C + c] * wv;
            }
            out[(size_t)n * OC + o] = (float)s;
        }
    }
}

/* ---- norms ------------------------------------------------------------------------------- */

void kern_norm(float *out, const float *inp, const float *w, const float *b, int N, int C,
               model_norm_kind kind, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float       *y = out + (size_t)n * C;
        if (kind == MODEL_NORM_RMSNORM) {
            float ss = 0.0f;
            for (int c = 0; c < C; c++) ss += x[c] * x[c];
            float r = 1.0f / sqrtf(ss / (float)C + eps);
            for (int c = 0; c < C; c++) y[c] = w[c] * (r * x[c]);
        } else {
            float m = 0.0f;
            for (int c = 0; c < C; c++) m += x[c];
            m /= (float)C;
            float var = 0.0f;
            for (int c = 0; c < C; c++) var += (x[c] - m) * (x[c] - m);
            float r = 1.0f / sqrtf(var / (float)C + eps);
            for (int c = 0; c < C; c++) y[c] = (x[c] - m) * r * w[c] + (b ? b[c] : 0.0f);
        }
    }
}

void kern_norm_ref(float *out, const float *inp, const float *w, const float *b, int N, int C,
                   model_norm_kind kind, float eps) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        double       m = 0.0, ss = 0.0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        for (int c = 0; c < C; c++) {
            double d = kind == MODEL_NORM_RMSNORM ? x[c] : x[c] - m;
            ss += d * d;
        }
        double r = 1.0 / sqrt(ss / C + eps);
        for (int c = 0; c < C; c++) {
            double d = kind == MODEL_NORM_RMSNORM ? x[c] : x[c] - m;
            double bb = (kind == MODEL_NORM_LAYERNORM && b) ? b[c] : 0.0;
            out[(size_t)n * C + c] = (float)(d * r * w[c] + bb);
        }
    }
}

/* ---- RoPE -------------------------------------------------------------------------------- */

void kern_rope_table(float *cs, const float *inv_freq, int T, int rot) {
    int np = rot / 2;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < np; i++) {
            float val = (float)t * inv_freq[i];
            cs[((size_t)t * np + i) * 2]     = cosf(val);
            cs[((size_t)t * np + i) * 2 + 1] = sinf(val);
        }
}

void kern_rope_freq(float *x, const float *inv_freq, int B, int T, int nh, int hs, int rot, int half) {
    /* the angle table is shared by every sequence and head: one (T, R/2) pass of cos/sin */
    float *cs = malloc(((size_t)T * (rot / 2) * 2 + 1) * sizeof(float)); /* (T, R/2, 2) */
    if (!cs) abort();
    kern_rope_table(cs, inv_freq, T, rot);
    kern_rope_cs(x, cs, B, T, nh, hs, rot, half);
    free(cs);
}

void kern_rope_cs(float *x, const float *cs, int B, int T, int nh, int hs, int rot, int half) {
    int np = rot / 2;
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < np; i++) {
            float fcr = cs[((size_t)t * np + i) * 2], fci = cs[((size_t)t * np + i) * 2 + 1];
            int   i0 = half ? i : 2 * i, i1 = half ? i + np : 2 * i + 1; /* the pair's two dims */
            for (int b = 0; b < B; b++) {
                float *xt = x + ((size_t)b * T + t) * (size_t)nh * hs;
                for (int h = 0; h < nh; h++) {
                    float *p  = xt + (size_t)h * hs;
                    float  v0 = p[i0], v1 = p[i1];
                    p[i0] = v0 * fcr - v1 * fci;
                    p[i1] = v0 * fci + v1 * fcr;
                }
            }
        }
    }
}

void kern_rope_freq_ref(float *x, const float *inv_freq, int B, int T, int nh, int hs, int rot, int half) {
    int np = rot / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++)
                for (int i = 0; i < np; i++) {
                    double ang = (double)t * inv_freq[i];
                    float *p   = x + (((size_t)b * T + t) * nh + h) * hs;
                    int    i0 = half ? i : 2 * i, i1 = half ? i + np : 2 * i + 1;
                    double v0 = p[i0], v1 = p[i1];
                    p[i0] = (float)(v0 * cos(ang) - v1 * sin(ang));
                    p[i1] = (float)(v0 * sin(ang) + v1 * cos(ang));
                }
}

void kern_rope(float *x, int B, int T, int nh, int hs, float theta) {
    float *inv_freq = malloc((size_t)(hs / 2 + 1) * sizeof(float)); /* (hs/2) */
    if (!inv_freq) abort();
    for (int i = 0; i < hs; i += 2) inv_freq[i / 2] = 1.0f / powf(theta, (float)i / (float)hs);
    kern_rope_freq(x, inv_freq, B, T, nh, hs, hs, 0);
    free(inv_freq);
}

void kern_rope_ref(float *x, int B, int T, int nh, int hs, float theta) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < nh; h++)
                for (int i = 0; i < hs; i += 2) {
                    double ang = (double)t * pow((double)theta, -(double)i / hs);
                    float *p   = x + (((size_t)b * T + t) * nh + h) * hs + i;
                    double v0 = p[0], v1 = p[1];
                    p[0] = (float)(v0 * cos(ang) - v1 * sin(ang));
                    p[1] = (float)(v0 * sin(ang) + v1 * cos(ang));
                }
}

/* ---- attention --------------------------------------------------------------------------- */

#define ATT_ROW_BLOCK 64   /* causal: queries in blocks of 64 rows only touch keys < block end */

/* ---- attention over sampled pathways ------------------------------------------------------ */

/* distance band: 0 for d = 0, else 1 + floor(log2 d) (importance.h) */
static inline int kern_band(int d) { return d <= 0 ? 0 : 32 - __builtin_clz((unsigned)d); }

/* statistics of one softmax row: probabilities p[0..m) over keys L[0..m), plus p_self for key i */
typedef struct {
    int      nb;
    int64_t *band_kept; /* (nb) or NULL */
    double  *att;       /* (3 + nb) or NULL */
    int      rows;      /* queries i < rows enter band_kept and kept */
    int64_t  kept;      /* kept connections of those queries */
} row_stats;

/* ent: the row's attention entropy, computed by the caller from the softmax pieces */
static void row_stats_add(row_stats *rs, int i, const int *L, const float *p, int m, float p_self, double ent) {
    if (i < rs->rows) rs->kept += m + (p_self != 0.0f);
    if (rs->band_kept && i < rs->rows) {
        int cur = -1, run = 0; /* runs of keys in one band, as above */
        for (int j = 0; j < m; j++) {
            int b = kern_band(abs(i - L[j]));
            b = b < rs->nb ? b : rs->nb - 1;
            if (b != cur) {
                if (cur >= 0) rs->band_kept[cur] += run;
                cur = b, run = 0;
            }
            run++;
        }
        if (cur >= 0) rs->band_kept[cur] += run;
        if (p_self != 0.0f) rs->band_kept[0]++;
    }
    if (rs->att) {
        /* the band masses are summed in a register over each run of keys in one band (sorted
         * lists: a band is one or two runs), then stored: the same additions in the same order
         * as adding into att[] key by key, without a store-to-load chain per key */
        double dist = 0.0, *band = rs->att + 3;
        int    cur = -1;
        double acc = 0.0;
        for (int j = 0; j < m; j++) {
            double pj = p[j];
            int    d  = abs(i - L[j]), b = kern_band(d);
            b = b < rs->nb ? b : rs->nb - 1;
            dist += pj * d;
            if (b != cur) {
                if (cur >= 0) band[cur] = acc;
                cur = b;
                acc = band[b];
            }
            acc += pj;
        }
        if (cur >= 0) band[cur] = acc;
        if (p_self > 0.0f) rs->att[3] += p_self;
        rs->att[0] += 1.0;
        rs->att[1] += dist;
        rs->att[2] += ent;
    }
}

/* One softmax row in place: s[j] = exp(s[j] - mx) for j < m in a loop that vectorises, then the
 * sum in the fixed order j = 0..m-1. With es != NULL also Σ_j e_j (s_j - mx) in double (for the
 * entropy), keeping s_j - mx in zbuf (m). */
#if defined(__GNUC__) || defined(__clang__)
#define KERN_ALWAYS_INLINE inline __attribute__((always_inline)) /* so the AVX2 callers get it 8 lanes wide */
#else
#define KERN_ALWAYS_INLINE inline
#endif
static KERN_ALWAYS_INLINE float exp_row(float *s, int m, float mx, float *zbuf, double *es) {
    float sum = 0.0f;
    if (es) {
        for (int j = 0; j < m; j++) zbuf[j] = s[j] - mx;
        for (int j = 0; j < m; j++) s[j] = kern_expf(zbuf[j]);
        double e = 0.0;
        for (int j = 0; j < m; j++) {
            sum += s[j];
            e += (double)s[j] * zbuf[j];
        }
        *es = e;
        return sum;
    }
    for (int j = 0; j < m; j++) s[j] = kern_expf(s[j] - mx);
    for (int j = 0; j < m; j++) sum += s[j];
    return sum;
}

/* One query window [r0, r1) of one (sequence, head) against the sorted key list L (m):
 * gather K[L], V[L] into contiguous buffers, then per block of 64 queries two sgemms over the
 * causal prefix of L. Causal queries whose own position is not in L get it as an extra key
 * (scored and added outside the sgemms). Dense attention is the window [0, n) with L = 0..n-1,
 * so a sample that keeps everything runs exactly the dense arithmetic. */
static int64_t att_window(float *ob, float *scratch, float *zbuf, float *kg, float *vg, const float *qb,
                          const float *kb, const float *vb, int C, int KVC, int HS, float scale, int r0, int r1,
                          const int *L, int m, int causal, row_stats *rs) {
    int64_t kept = 0;
    for (int s = 0; s < m; s++) { /* gather: kg, vg (m, HS) */
        memcpy(kg + (size_t)s * HS, kb + (size_t)L[s] * KVC, (size_t)HS * sizeof(float));
        memcpy(vg + (size_t)s * HS, vb + (size_t)L[s] * KVC, (size_t)HS * sizeof(float));
    }
    for (int i0 = r0; i0 < r1; i0 += ATT_ROW_BLOCK) {
        int rows = r1 - i0 < ATT_ROW_BLOCK ? r1 - i0 : ATT_ROW_BLOCK;
        int nk   = causal ? kern_upper_bound(L, m, i0 + rows - 1) : m; /* keys usable by this block: L[0, nk) */
        float self_p[ATT_ROW_BLOCK]; /* probability of the extra self key per row, 0 if none */
        if (nk > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, HS, scale, qb + (size_t)i0 * C, C, kg, HS,
                        0.0f, scratch, nk);
        for (int r = 0; r < rows; r++) {
            int    i   = i0 + r;
            float *s   = scratch + (size_t)r * nk;
            int    lim = causal ? kern_upper_bound(L, nk, i) : nk; /* L[0, lim) are <= i */
            int    has_self = causal && !(lim > 0 && L[lim - 1] == i);
            float  s_self = 0.0f;
            if (has_self) {
                const float *qi = qb + (size_t)i * C, *ki = kb + (size_t)i * KVC;
                float d = 0.0f;
                for (int t = 0; t < HS; t++) d += qi[t] * ki[t];
                s_self = d * scale;
            }
            float mx = has_self ? s_self : s[0];
            for (int j = 0; j < lim; j++) mx = s[j] > mx ? s[j] : mx;
            double es  = 0.0; /* Σ e_j (s_j - mx), for the entropy */
            float  sum = exp_row(s, lim, mx, zbuf, rs && rs->att ? &es : NULL);
            float e_self = has_self ? kern_expf(s_self - mx) : 0.0f;
            sum += e_self;
            es += (double)e_self * (s_self - mx);
            float inv = 1.0f / sum;
            for (int j = 0; j < lim; j++) s[j] *= inv;
            for (int j = lim; j < nk; j++) s[j] = 0.0f;
            self_p[r] = e_self * inv;
            kept += lim + has_self;
            if (rs) row_stats_add(rs, i, L, s, lim, self_p[r], log((double)sum) - es / sum);
        }
        if (nk > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, nk, 1.0f, scratch, nk, vg, HS, 0.0f,
                        ob + (size_t)i0 * C, C);
        else
            for (int r = 0; r < rows; r++) memset(ob + (size_t)(i0 + r) * C, 0, (size_t)HS * sizeof(float));
        for (int r = 0; r < rows; r++)
            if (self_p[r] != 0.0f) {
                const float *vi = vb + (size_t)(i0 + r) * KVC;
                float       *o  = ob + (size_t)(i0 + r) * C;
                for (int t = 0; t < HS; t++) o[t] += self_p[r] * vi[t];
            }
    }
    return kept;
}

/* do the per-query lists of ps qualify for att_ranges? */
static int lists_are_ranges(const pw_sample *ps, int n, int causal) {
    for (int i = 0; i < n; i++) {
        int a = ps->key_start[i], b = ps->key_start[i + 1];
        if (b <= a || ps->keys[b - 1] - ps->keys[a] != b - a - 1) return 0;
        if (causal && ps->keys[b - 1] != i) return 0; /* causal: the range must end at the query itself */
    }
    return 1;
}

/* ---- per-query key lists (random-k) ------------------------------------------------------- */

/* The arithmetic of a per-query row is fixed (results are byte-identical across the portable C
 * and the AVX2 path): score_j = kern_dot8(q_i, k_{L[j]}) * scale in list order (the causal self
 * key last when the list lacks it), the max, exp_row (exp, then the sum in list order), p_j =
 * e_j / sum (a division), then o = (((0 + p_0 v_0) + p_1 v_1) + ...) element-wise in list order. */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define KERN_HAVE_AVX2 1

#ifndef PQ_QBLOCK /* -D overrides: bench/pq_block_grid.sh times other shapes; 1..64 (items keep r in 6 bits) */
#define PQ_QBLOCK 64 /* queries per block of the AVX2 path */
#endif
#ifndef PQ_CHUNK_FLOATS
#define PQ_CHUNK_FLOATS 4096 /* a key chunk's rows: at most this many floats (16 KB), at least 8 rows */
#endif
#define PQ_MAXCH 64  /* key chunks per block at most */

/* res[u] = kern_dot8(qi, r[u]) * scale for U = 8 or 4 rows: each key's 8 partial sums are one
 * register; hadd rounds and one add of the 128-bit halves form ((a0+a1)+(a2+a3))+((a4+a5)+(a6+a7))
 * for all the keys at once, exactly kern_dot8's tree (IEEE adds commute exactly); mul then add,
 * never an FMA, as the C (no contraction under -std=c11). Lanes are independent, so a row
 * repeated to fill a block does not change the others. */
#define PQ_ACC(x, rr) x = _mm256_add_ps(x, _mm256_mul_ps(qv, _mm256_loadu_ps((rr) + t)))
__attribute__((target("avx2"))) static inline void pq_dot8rows(float *res, const float *qi, const float *const r[8],
                                                               int HS, float scale) {
    int    HS8 = HS & ~7;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int t = 0; t < HS8; t += 8) {
        __m256 qv = _mm256_loadu_ps(qi + t);
        PQ_ACC(a0, r[0]); PQ_ACC(a1, r[1]); PQ_ACC(a2, r[2]); PQ_ACC(a3, r[3]);
        PQ_ACC(a4, r[4]); PQ_ACC(a5, r[5]); PQ_ACC(a6, r[6]); PQ_ACC(a7, r[7]);
    }
    /* hadd(x, y) = [x0+x1, x2+x3, y0+y1, y2+y3, x4+x5, x6+x7, y4+y5, y6+y7] */
    __m256 g1 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3)); /* lo sums of keys 0-3 | hi sums */
    __m256 g2 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7)); /* keys 4-7 */
    __m256 d  = _mm256_add_ps(_mm256_permute2f128_ps(g1, g2, 0x20), _mm256_permute2f128_ps(g1, g2, 0x31));
    if (HS8 == HS) {
        _mm256_storeu_ps(res, _mm256_mul_ps(d, _mm256_set1_ps(scale)));
        return;
    }
    _mm256_storeu_ps(res, d);
    for (int u = 0; u < 8; u++) {
        for (int t = HS8; t < HS; t++) res[u] += qi[t] * r[u][t];
        res[u] *= scale;
    }
}

__attribute__((target("avx2"))) static inline void pq_dot4rows(float *res, const float *qi, const float *const r[4],
                                                               int HS, float scale) {
    int    HS8 = HS & ~7;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int t = 0; t < HS8; t += 8) {
        __m256 qv = _mm256_loadu_ps(qi + t);
        PQ_ACC(a0, r[0]); PQ_ACC(a1, r[1]); PQ_ACC(a2, r[2]); PQ_ACC(a3, r[3]);
    }
    __m256 g = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    __m128 d = _mm_add_ps(_mm256_castps256_ps128(g), _mm256_extractf128_ps(g, 1));
    if (HS8 == HS) {
        _mm_storeu_ps(res, _mm_mul_ps(d, _mm_set1_ps(scale)));
        return;
    }
    _mm_storeu_ps(res, d);
    for (int u = 0; u < 4; u++) {
        for (int t = HS8; t < HS; t++) res[u] += qi[t] * r[u][t];
        res[u] *= scale;
    }
}
#undef PQ_ACC

/* sc[c] = kern_dot8(qi, k_{L[c]}) * scale for c in [a, b): blocks of 8 keys, the rest in one
 * block of 8 or 4 with its last row repeated (a single key: kern_dot8) */
__attribute__((target("avx2"))) static void pq_dots_avx2(float *sc, const float *qi, const float *kb, int KVC,
                                                         const int *L, int a, int b, int HS, float scale) {
    const float *r[8];
    int          c = a;
    for (; c + 8 <= b; c += 8) {
        for (int u = 0; u < 8; u++) r[u] = kb + (size_t)L[c + u] * KVC;
        pq_dot8rows(sc + c, qi, r, HS, scale);
    }
    int rem = b - c;
    if (rem >= 2) {
        float res[8];
        int   U = rem > 4 ? 8 : 4;
        for (int u = 0; u < U; u++) r[u] = kb + (size_t)L[c + (u < rem ? u : rem - 1)] * KVC;
        if (U == 8) pq_dot8rows(res, qi, r, HS, scale);
        else pq_dot4rows(res, qi, r, HS, scale);
        for (int u = 0; u < rem; u++) sc[c + u] = res[u];
    } else if (rem == 1) {
        sc[c] = kern_dot8(qi, kb + (size_t)L[c] * KVC, HS) * scale;
    }
}

/* res[u] = kern_dot8(qi, k_{L[u]}) * scale for u < len (1 <= len <= 8) as one block of 8 (the last
 * row repeated past len; lanes are independent): written straight to res when all 8 fit (wide),
 * else through a copy of the len */
__attribute__((target("avx2"))) static inline void pq_dots8_avx2(float *res, int wide, const float *qi, const float *kb,
                                                                 int KVC, const int *L, int len, int HS, float scale) {
    const float *r[8];
    for (int u = 0; u < 8; u++) r[u] = kb + (size_t)L[u < len ? u : len - 1] * KVC;
    if (wide) {
        pq_dot8rows(res, qi, r, HS, scale);
        return;
    }
    float tmp[8];
    pq_dot8rows(tmp, qi, r, HS, scale);
    memcpy(res, tmp, (size_t)len * sizeof(float));
}

/* o (HS) += Σ_{c in [a, b)} p[c] v_{L[c]} in list order, W registers of 8 columns kept across the keys */
#define PQ_OUT_CHUNK(W)                                                                                            \
    for (; t + 8 * (W) <= HS8; t += 8 * (W)) {                                                                     \
        __m256 acc[W];                                                                                             \
        for (int w = 0; w < (W); w++) acc[w] = _mm256_loadu_ps(o + t + 8 * w);                                     \
        for (int c = a; c < b; c++) {                                                                              \
            const float *vr = vb + (size_t)L[c] * KVC + t;                                                         \
            __m256       pv = _mm256_set1_ps(p[c]);                                                                \
            for (int w = 0; w < (W); w++) acc[w] = _mm256_add_ps(acc[w], _mm256_mul_ps(pv, _mm256_loadu_ps(vr + 8 * w))); \
        }                                                                                                          \
        for (int w = 0; w < (W); w++) _mm256_storeu_ps(o + t + 8 * w, acc[w]);                                     \
    }

__attribute__((target("avx2"))) static void pq_out_avx2(float *o, const float *p, const float *vb, int KVC,
                                                        const int *L, int a, int b, int HS) {
    int HS8 = HS & ~7, t = 0;
    PQ_OUT_CHUNK(8)
    PQ_OUT_CHUNK(4)
    PQ_OUT_CHUNK(1)
    for (; t < HS; t++) {
        float acc = o[t];
        for (int c = a; c < b; c++) acc += p[c] * vb[(size_t)L[c] * KVC + t];
        o[t] = acc;
    }
}
#undef PQ_OUT_CHUNK

/* kern_expf on 8 lanes, operation for operation (so the same bits): the clamps are vmaxps /
 * vminps (x > c ? x : c and x < c ? x : c, NaN taking the clamp), (int) is vcvttps2dq, and every
 * a * b + c is a mul then an add, as in the C (no FMA). GCC does not if-convert kern_expf's
 * selects inside a target("avx2") function, hence the intrinsics. */
__attribute__((target("avx2"))) static inline __m256 pq_expf8(__m256 x0) {
    __m256  x  = _mm256_min_ps(_mm256_max_ps(x0, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    __m256  fx = _mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _mm256_set1_ps(0.5f));
    __m256i t  = _mm256_cvttps_epi32(fx);
    __m256i n  = _mm256_add_epi32(t, _mm256_castps_si256(_mm256_cmp_ps(fx, _mm256_cvtepi32_ps(t), _CMP_LT_OQ)));
    __m256  fn = _mm256_cvtepi32_ps(n);
    __m256  r  = _mm256_add_ps(_mm256_sub_ps(x, _mm256_mul_ps(fn, _mm256_set1_ps(0.693359375f))),
                               _mm256_mul_ps(fn, _mm256_set1_ps(2.12194440e-4f)));
    __m256  p  = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, r), r), r), _mm256_set1_ps(1.0f));
    __m256 sc = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
    return _mm256_blendv_ps(x0, _mm256_mul_ps(p, sc), _mm256_cmp_ps(x0, x0, _CMP_EQ_OQ));
}

/* y = pq_expf8 over x (n floats), for kern_expf_lanes */
__attribute__((target("avx2"))) static void pq_expf_rows(float *y, const float *x, int n) {
    int j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, pq_expf8(_mm256_loadu_ps(x + j)));
    for (; j < n; j++) y[j] = kern_expf(x[j]);
}

/* max of sc[0..cnt) with the C loop's rule mx = x > mx ? x : mx from -INF: vmaxps(x, mx) is that
 * rule per lane, and the max of the non-NaN values does not depend on the order (a zero max of
 * either sign gives the same s - mx and exp(s - mx) for every s) */
__attribute__((target("avx2"))) static float pq_max_avx2(const float *sc, int cnt) {
    __m256 m8 = _mm256_set1_ps(-INFINITY);
    int    c = 0;
    for (; c + 8 <= cnt; c += 8) m8 = _mm256_max_ps(_mm256_loadu_ps(sc + c), m8);
    float l[8], mx = -INFINITY;
    _mm256_storeu_ps(l, m8);
    for (int u = 0; u < 8; u++) mx = l[u] > mx ? l[u] : mx;
    for (; c < cnt; c++) mx = sc[c] > mx ? sc[c] : mx;
    return mx;
}

/* s[j] = kern_expf(s[j] - mx); with z != NULL also z[j] = s[j] - mx first (exp_row's loops) */
__attribute__((target("avx2"))) static void pq_exp_sub(float *s, float *z, int m, float mx) {
    __m256 m8 = _mm256_set1_ps(mx);
    int    j = 0;
    for (; j + 8 <= m; j += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(s + j), m8);
        if (z) _mm256_storeu_ps(z + j, d);
        _mm256_storeu_ps(s + j, pq_expf8(d));
    }
    for (; j < m; j++) {
        float d = s[j] - mx;
        if (z) z[j] = d;
        s[j] = kern_expf(d);
    }
}

/* The softmax of G <= 4 rows (exp_row, then p = e / sum). exp_row's sum is one dependent chain of
 * float adds in key order (4 cycles each): the rows' chains run interleaved, each in its own
 * order. With es (G = 1 only) also exp_row's Σ e_j (s_j - mx) in double, z (cnt) as scratch. */
__attribute__((target("avx2"))) static void pq_softmax_avx2(int G, float *const sc[4], const int cnt[4], float sum[4],
                                                            float *z, double *es) {
    for (int g = 0; g < G; g++) pq_exp_sub(sc[g], es ? z : NULL, cnt[g], pq_max_avx2(sc[g], cnt[g]));
    if (es) {
        float  s0 = 0.0f;
        double e  = 0.0;
        for (int c = 0; c < cnt[0]; c++) {
            s0 += sc[0][c];
            e += (double)sc[0][c] * z[c];
        }
        sum[0] = s0;
        *es = e;
    } else if (G == 4) {
        int mn = cnt[0];
        for (int g = 1; g < 4; g++) mn = cnt[g] < mn ? cnt[g] : mn;
        float        s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        const float *a0 = sc[0], *a1 = sc[1], *a2 = sc[2], *a3 = sc[3];
        for (int c = 0; c < mn; c++) {
            s0 += a0[c];
            s1 += a1[c];
            s2 += a2[c];
            s3 += a3[c];
        }
        sum[0] = s0, sum[1] = s1, sum[2] = s2, sum[3] = s3;
        for (int g = 0; g < 4; g++) {
            float sg = sum[g];
            for (int c = mn; c < cnt[g]; c++) sg += sc[g][c];
            sum[g] = sg;
        }
    } else {
        for (int g = 0; g < G; g++) {
            float sg = 0.0f;
            for (int c = 0; c < cnt[g]; c++) sg += sc[g][c];
            sum[g] = sg;
        }
    }
    for (int g = 0; g < G; g++) {
        __m256 s8 = _mm256_set1_ps(sum[g]);
        float *s = sc[g];
        int    c = 0;
        for (; c + 8 <= cnt[g]; c += 8) _mm256_storeu_ps(s + c, _mm256_div_ps(_mm256_loadu_ps(s + c), s8));
        for (; c < cnt[g]; c++) s[c] = s[c] / sum[g];
    }
}

/* The AVX2 path of att_per_query: blocks of PQ_QBLOCK queries; keys in chunks of KC rows (16 KB
 * of K or V, a power of 2, at most PQ_MAXCH chunks); for each chunk, every query of the block computes its keys inside the chunk (a
 * segment of its sorted list), so a K or V row is read from L2 once per block and reused from L1
 * by every query of the block that kept it. Scores land at their list positions and the output
 * accumulates the segments in list order, so each row's arithmetic is the portable C's. Where the
 * segments are short (ρ > 4 or so), the chunk's work is a flat list of blocks of 8 list
 * positions instead (one 8-key dot each, no branch on a segment's length), taken in chunk order
 * and, per query, in list order. */
__attribute__((target("avx2"))) static int64_t att_per_query_avx2(float *ob, float *scores, float *zbuf,
                                                                  const float *qb, const float *kb, const float *vb,
                                                                  int C, int KVC, int HS, float scale, int n,
                                                                  const pw_sample *ps, int causal, row_stats *rs) {
    int64_t kept = 0;
    int     sh = 3; /* chunks of KC = 2^sh keys: 16 KB of rows, at least 8 keys and at most PQ_MAXCH chunks */
    while ((1 << (sh + 1)) * HS <= PQ_CHUNK_FLOATS) sh++;
    while (((n + (1 << sh) - 1) >> sh) > PQ_MAXCH) sh++;
    int QB = n < PQ_QBLOCK ? n : PQ_QBLOCK; /* QB * n <= n * n <= T * T scores */
    /* the block's list blocks (items) after its QB rows of scores, where the n * n floats hold them
     * (n >= 72); else (short sequences) segments per query and chunk */
    int *items = (size_t)QB * (size_t)(n + (n + 7) / 8) <= (size_t)n * (size_t)n ? (int *)(scores + (size_t)QB * n) : NULL;
    for (int i0 = 0; i0 < n; i0 += QB) {
        int        R = n - i0 < QB ? n - i0 : QB, kmax = 0;
        const int *Ls[PQ_QBLOCK];
        int        lim[PQ_QBLOCK], self[PQ_QBLOCK], cnt[PQ_QBLOCK];
        int        seg[PQ_QBLOCK][PQ_MAXCH + 1]; /* query r's keys in chunk ch: list positions [seg[r][ch], seg[r][ch+1]) */
        float     *sc[PQ_QBLOCK], sum[PQ_QBLOCK];
        double     es[PQ_QBLOCK];
        for (int r = 0; r < R; r++) {
            int q = i0 + r, m = ps->key_start[q + 1] - ps->key_start[q];
            Ls[r]   = ps->keys + ps->key_start[q];
            lim[r]  = causal ? kern_upper_bound(Ls[r], m, q) : m;
            self[r] = causal && !(lim[r] > 0 && Ls[r][lim[r] - 1] == q);
            cnt[r]  = lim[r] + self[r];
            sc[r]   = scores + (size_t)r * n;
            if (lim[r] > 0 && Ls[r][lim[r] - 1] + 1 > kmax) kmax = Ls[r][lim[r] - 1] + 1;
        }
        int nch = (kmax + (1 << sh) - 1) >> sh, nit = 0;
        /* short segments (under 16 keys per segment on average: uniform lists at ρ > 4 with chunks
         * of 64 keys) by blocks of 8 list positions: one block-of-8 dot each, where segments cost a
         * mispredicted branch or two each (their lengths vary) and partial blocks; longer ones by
         * segments (several blocks per call: measured faster for uniform lists at ρ = 2 and for
         * λ = 16's local lists). The segments are counted at the blocks' first keys. */
        int64_t nkeys = 0, nseg = 0;
        for (int r = 0; r < R; r++) {
            nkeys += lim[r];
            for (int c = 0; c < lim[r]; c += 8) nseg += c == 0 || (Ls[r][c] >> sh) != (Ls[r][c - 8] >> sh);
        }
        int *its = items && nkeys < 16 * nseg ? items : NULL;
        if (its) {
            /* the blocks of 8 list positions of every query of the block (the last one of a list
             * shorter), ordered by the chunk of their first key (a counting sort, stable: for each
             * query its blocks stay in list order); an item is (block start << 6) | r */
            int bst[PQ_MAXCH + 2];
            memset(bst, 0, (size_t)(nch + 2) * sizeof(int));
            for (int r = 0; r < R; r++)
                for (int c = 0; c < lim[r]; c += 8) bst[(Ls[r][c] >> sh) + 2]++;
            for (int ch = 1; ch <= nch; ch++) bst[ch + 1] += bst[ch]; /* bst[ch + 1]: start of chunk ch */
            for (int r = 0; r < R; r++)
                for (int c = 0; c < lim[r]; c += 8) {
                    int it = (c << 6) | r;
                    memcpy(its + bst[(Ls[r][c] >> sh) + 1]++, &it, sizeof it);
                }
            nit = bst[nch];
        } else
            for (int r = 0; r < R; r++) { /* segment ends: the last key of a chunk writes it; empty chunks take the
                                              * previous end (no branch on the data, no chain of increments) */
                int *sg = seg[r];
                memset(sg, 0, (size_t)(nch + 1) * sizeof(int));
                for (int e = 0; e < lim[r]; e++) sg[(Ls[r][e] >> sh) + 1] = e + 1;
                for (int ch = 0; ch < nch; ch++) sg[ch + 1] = sg[ch + 1] > sg[ch] ? sg[ch + 1] : sg[ch];
            }
        /* scores, chunk by chunk */
        if (its)
            for (int e = 0; e < nit; e++) {
                int it;
                memcpy(&it, its + e, sizeof it);
                int r = it & 63, c = it >> 6, len = lim[r] - c < 8 ? lim[r] - c : 8;
                pq_dots8_avx2(sc[r] + c, c + 8 <= n, qb + (size_t)(i0 + r) * C, kb, KVC, Ls[r] + c, len, HS, scale);
            }
        else
            for (int ch = 0; ch < nch; ch++)
                for (int r = 0; r < R; r++)
                    if (seg[r][ch + 1] > seg[r][ch])
                        pq_dots_avx2(sc[r], qb + (size_t)(i0 + r) * C, kb, KVC, Ls[r], seg[r][ch], seg[r][ch + 1], HS,
                                     scale);
        for (int r = 0; r < R; r++)
            if (self[r]) sc[r][lim[r]] = kern_dot8(qb + (size_t)(i0 + r) * C, kb + (size_t)(i0 + r) * KVC, HS) * scale;
        /* softmax rows */
        int r = 0;
        if (rs && rs->att)
            for (; r < R; r++) pq_softmax_avx2(1, sc + r, cnt + r, sum + r, zbuf, es + r);
        for (; r + 4 <= R; r += 4) pq_softmax_avx2(4, sc + r, cnt + r, sum + r, NULL, NULL);
        if (r < R) pq_softmax_avx2(R - r, sc + r, cnt + r, sum + r, NULL, NULL);
        /* outputs, chunk by chunk, then the self key last */
        for (r = 0; r < R; r++) memset(ob + (size_t)(i0 + r) * C, 0, (size_t)HS * sizeof(float));
        if (its)
            for (int e = 0; e < nit; e++) {
                int it;
                memcpy(&it, its + e, sizeof it);
                int q = it & 63, c = it >> 6, len = lim[q] - c < 8 ? lim[q] - c : 8;
                pq_out_avx2(ob + (size_t)(i0 + q) * C, sc[q], vb, KVC, Ls[q], c, c + len, HS);
            }
        else
            for (int ch = 0; ch < nch; ch++)
                for (r = 0; r < R; r++)
                    if (seg[r][ch + 1] > seg[r][ch])
                        pq_out_avx2(ob + (size_t)(i0 + r) * C, sc[r], vb, KVC, Ls[r], seg[r][ch], seg[r][ch + 1], HS);
        for (r = 0; r < R; r++) {
            if (self[r]) {
                float       *o  = ob + (size_t)(i0 + r) * C, p = sc[r][lim[r]];
                const float *vi = vb + (size_t)(i0 + r) * KVC;
                for (int t = 0; t < HS; t++) o[t] += p * vi[t];
            }
            kept += cnt[r];
            if (rs)
                row_stats_add(rs, i0 + r, Ls[r], sc[r], lim[r], self[r] ? sc[r][lim[r]] : 0.0f,
                              rs->att ? log((double)sum[r]) - es[r] / sum[r] : 0.0);
        }
    }
    return kept;
}
#endif

static int kern_simd_mode = 1; /* 1: use AVX2 paths when the CPU has AVX2; 0: portable C only */

void kern_set_simd(int on) { kern_simd_mode = on ? 1 : 0; }

int kern_simd_active(void) {
#ifdef KERN_HAVE_AVX2
    return kern_simd_mode && __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

void kern_expf_lanes(float *y, const float *x, int n) {
#ifdef KERN_HAVE_AVX2
    if (kern_simd_active()) {
        pq_expf_rows(y, x, n);
        return;
    }
#endif
    for (int j = 0; j < n; j++) y[j] = kern_expf(x[j]);
}

/* ---- contiguous per-query ranges (window scheme, plan windows): the band kernel ------------- */

/* Query i keeps the keys [a_i, a_i + m_i) (causal: a_i + m_i = i + 1). Each row's arithmetic is
 * fixed, so the AVX2 path and the portable C give the same bits, and a row's result does not
 * depend on the other rows (nor on n, the group it runs in, or the sequence it is batched with):
 *   s_j = ((((0 + q_0 k_j0) + q_1 k_j1) + ...) + q_{HS-1} k_j,HS-1) * scale   (mul then add, t in order)
 *   mx  = max_j s_j;  e_j = kern_expf(s_j - mx);
 *   sum = ((l_0 + l_1) + (l_2 + l_3)) + ((l_4 + l_5) + (l_6 + l_7)),  l_u = e_u + e_{u+8} + ... in order
 *   p_j = e_j * (1 / sum);  o_t = (((0 + p_0 v_0t) + p_1 v_1t) + ...) in key order.
 * (Version 2 of the window kernel, 2026-11-30; version 1 ran two sgemms per block of 32 queries
 * over the union of their ranges, whose bits depended on OpenBLAS's kernel and the block.)
 * The AVX2 path runs queries in groups of BAND_ROWS over the union [lo, hi) of their ranges:
 * window + 3 keys per row for a sliding window, instead of window + 31. The scores read K
 * transposed, kt (HS, ldk), so 16 keys of one dimension are one load; the output adds the union's
 * keys with p = 0 outside a row's range, which leaves its sum unchanged (0 * v = ±0 for finite v,
 * and x + ±0 = x for a sum that starts at +0 and never becomes -0). */
#define BAND_ROWS 4

/* row stride of kt: a multiple of 16 floats plus 16 from n = 32 on, so the HS rows of a tile do
 * not fall into one L1 set (a stride of 4 KB would); HS * ldk <= 2 T HS floats (the gather) */
static int band_ldk(int n) { return n >= 32 ? ((n + 15) & ~15) + 16 : n; }

/* kt (HS, ldk) = K^T of the head's rows kb (n, HS) stride KVC */
static void band_transpose_c(float *kt, int ldk, const float *kb, int KVC, int HS, int n) {
    for (int j0 = 0; j0 < n; j0 += 16) {
        int j1 = n - j0 < 16 ? n : j0 + 16;
        for (int t = 0; t < HS; t++)
            for (int j = j0; j < j1; j++) kt[(size_t)t * ldk + j] = kb[(size_t)j * KVC + t];
    }
}

/* the band kernel's softmax of the scores s (m), in place: p_j; returns sum; with es, also
 * Σ_j e_j (s_j - mx) in double in key order (z (m) scratch), for the entropy */
static float band_softmax_c(float *s, int m, float *z, double *es) {
    float mx = -INFINITY, l[8] = {0};
    for (int j = 0; j < m; j++) mx = s[j] > mx ? s[j] : mx;
    if (es) {
        for (int j = 0; j < m; j++) z[j] = s[j] - mx;
        for (int j = 0; j < m; j++) s[j] = kern_expf(z[j]);
    } else {
        for (int j = 0; j < m; j++) s[j] = kern_expf(s[j] - mx);
    }
    for (int j = 0; j < m; j++) l[j & 7] += s[j];
    float sum = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
    if (es) {
        double e = 0.0;
        for (int j = 0; j < m; j++) e += (double)s[j] * z[j];
        *es = e;
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < m; j++) s[j] *= inv;
    return sum;
}

/* One query of the band kernel, the definition the AVX2 groups reproduce: o (HS) for query i,
 * keys L (m) = [L[0], L[0] + m); s (m) scratch */
static int64_t band_row_c(float *o, float *s, float *zbuf, const float *qi, const float *kt, int ldk, const float *vb,
                          int KVC, int HS, float scale, int i, const int *L, int m, row_stats *rs) {
    int a = L[0];
    for (int j = 0; j < m; j++) s[j] = 0.0f;
    for (int t = 0; t < HS; t++) { /* lanes j independent: vectorises with each lane's order kept */
        float        qt = qi[t];
        const float *kr = kt + (size_t)t * ldk + a;
        for (int j = 0; j < m; j++) s[j] += qt * kr[j];
    }
    for (int j = 0; j < m; j++) s[j] *= scale;
    double es  = 0.0;
    float  sum = band_softmax_c(s, m, zbuf, rs && rs->att ? &es : NULL);
    memset(o, 0, (size_t)HS * sizeof(float));
    for (int j = 0; j < m; j++) {
        const float *vr = vb + (size_t)(a + j) * KVC;
        float        p  = s[j];
        for (int t = 0; t < HS; t++) o[t] += p * vr[t];
    }
    if (rs) row_stats_add(rs, i, L, s, m, 0.0f, log((double)sum) - es / sum);
    return m;
}

#ifdef KERN_HAVE_AVX2
/* band_transpose_c in 8 x 8 blocks of registers (copies: the same floats) */
__attribute__((target("avx2"))) static void band_transpose_avx2(float *kt, int ldk, const float *kb, int KVC, int HS,
                                                                int n) {
    int n8 = n & ~7, HS8 = HS & ~7;
    for (int j = 0; j < n8; j += 8)
        for (int t = 0; t < HS8; t += 8) {
            const float *src = kb + (size_t)j * KVC + t;
            __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + KVC), r2 = _mm256_loadu_ps(src + 2 * KVC),
                   r3 = _mm256_loadu_ps(src + 3 * KVC), r4 = _mm256_loadu_ps(src + 4 * KVC),
                   r5 = _mm256_loadu_ps(src + 5 * KVC), r6 = _mm256_loadu_ps(src + 6 * KVC),
                   r7 = _mm256_loadu_ps(src + 7 * KVC);
            __m256 u0 = _mm256_unpacklo_ps(r0, r1), u1 = _mm256_unpackhi_ps(r0, r1), u2 = _mm256_unpacklo_ps(r2, r3),
                   u3 = _mm256_unpackhi_ps(r2, r3), u4 = _mm256_unpacklo_ps(r4, r5), u5 = _mm256_unpackhi_ps(r4, r5),
                   u6 = _mm256_unpacklo_ps(r6, r7), u7 = _mm256_unpackhi_ps(r6, r7);
            __m256 s0 = _mm256_shuffle_ps(u0, u2, 0x44), s1 = _mm256_shuffle_ps(u0, u2, 0xEE),
                   s2 = _mm256_shuffle_ps(u1, u3, 0x44), s3 = _mm256_shuffle_ps(u1, u3, 0xEE),
                   s4 = _mm256_shuffle_ps(u4, u6, 0x44), s5 = _mm256_shuffle_ps(u4, u6, 0xEE),
                   s6 = _mm256_shuffle_ps(u5, u7, 0x44), s7 = _mm256_shuffle_ps(u5, u7, 0xEE);
            float *dst = kt + (size_t)t * ldk + j;
            _mm256_storeu_ps(dst, _mm256_permute2f128_ps(s0, s4, 0x20));
            _mm256_storeu_ps(dst + ldk, _mm256_permute2f128_ps(s1, s5, 0x20));
            _mm256_storeu_ps(dst + 2 * (size_t)ldk, _mm256_permute2f128_ps(s2, s6, 0x20));
            _mm256_storeu_ps(dst + 3 * (size_t)ldk, _mm256_permute2f128_ps(s3, s7, 0x20));
            _mm256_storeu_ps(dst + 4 * (size_t)ldk, _mm256_permute2f128_ps(s0, s4, 0x31));
            _mm256_storeu_ps(dst + 5 * (size_t)ldk, _mm256_permute2f128_ps(s1, s5, 0x31));
            _mm256_storeu_ps(dst + 6 * (size_t)ldk, _mm256_permute2f128_ps(s2, s6, 0x31));
            _mm256_storeu_ps(dst + 7 * (size_t)ldk, _mm256_permute2f128_ps(s3, s7, 0x31));
        }
    for (int j = 0; j < n; j++) /* the last n mod 8 keys, and the last HS mod 8 dimensions */
        for (int t = j < n8 ? HS8 : 0; t < HS; t++) kt[(size_t)t * ldk + j] = kb[(size_t)j * KVC + t];
}

/* scores of BAND_ROWS queries q[r] (HS) against the W = 16 or 8 keys at kt[., j]: s + r * ws */
#define BAND_SC_ACC(x, kv, r) x = _mm256_add_ps(x, _mm256_mul_ps(_mm256_broadcast_ss(q[r] + t), kv))
__attribute__((target("avx2"))) static inline void band_scores16(float *s, int ws, const float *const q[4],
                                                                 const float *kt, int ldk, int HS, __m256 sc8) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
    for (int t = 0; t < HS; t++, kt += ldk) {
        __m256 k0 = _mm256_loadu_ps(kt), k1 = _mm256_loadu_ps(kt + 8);
        BAND_SC_ACC(a00, k0, 0); BAND_SC_ACC(a01, k1, 0);
        BAND_SC_ACC(a10, k0, 1); BAND_SC_ACC(a11, k1, 1);
        BAND_SC_ACC(a20, k0, 2); BAND_SC_ACC(a21, k1, 2);
        BAND_SC_ACC(a30, k0, 3); BAND_SC_ACC(a31, k1, 3);
    }
    _mm256_storeu_ps(s, _mm256_mul_ps(a00, sc8));
    _mm256_storeu_ps(s + 8, _mm256_mul_ps(a01, sc8));
    _mm256_storeu_ps(s + ws, _mm256_mul_ps(a10, sc8));
    _mm256_storeu_ps(s + ws + 8, _mm256_mul_ps(a11, sc8));
    _mm256_storeu_ps(s + 2 * ws, _mm256_mul_ps(a20, sc8));
    _mm256_storeu_ps(s + 2 * ws + 8, _mm256_mul_ps(a21, sc8));
    _mm256_storeu_ps(s + 3 * ws, _mm256_mul_ps(a30, sc8));
    _mm256_storeu_ps(s + 3 * ws + 8, _mm256_mul_ps(a31, sc8));
}

__attribute__((target("avx2"))) static inline void band_scores8(float *s, int ws, const float *const q[4],
                                                                const float *kt, int ldk, int HS, __m256 sc8) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int t = 0; t < HS; t++, kt += ldk) {
        __m256 k0 = _mm256_loadu_ps(kt);
        BAND_SC_ACC(a0, k0, 0); BAND_SC_ACC(a1, k0, 1); BAND_SC_ACC(a2, k0, 2); BAND_SC_ACC(a3, k0, 3);
    }
    _mm256_storeu_ps(s, _mm256_mul_ps(a0, sc8));
    _mm256_storeu_ps(s + ws, _mm256_mul_ps(a1, sc8));
    _mm256_storeu_ps(s + 2 * ws, _mm256_mul_ps(a2, sc8));
    _mm256_storeu_ps(s + 3 * ws, _mm256_mul_ps(a3, sc8));
}
#undef BAND_SC_ACC

/* s (BAND_ROWS, w) = scores of the queries q[r] against the keys [lo, lo + w): tiles of 16 keys,
 * the rest as one tile of 16 or 8 ending at the last key (a lane's score depends on its query
 * and key only, so keys computed twice get the same bits), w < 8 lane by lane */
__attribute__((target("avx2"))) static void band_scores_avx2(float *s, int w, const float *const q[4], const float *kt,
                                                             int ldk, int lo, int HS, float scale) {
    __m256 sc8 = _mm256_set1_ps(scale);
    kt += lo;
    int j = 0;
    for (; j + 16 <= w; j += 16) band_scores16(s + j, w, q, kt + j, ldk, HS, sc8);
    if (j == w) return;
    if (w - j > 8 && w >= 16) band_scores16(s + w - 16, w, q, kt + w - 16, ldk, HS, sc8);
    else if (w >= 8) {
        if (w - j > 8) band_scores8(s + j, w, q, kt + j, ldk, HS, sc8);
        band_scores8(s + w - 8, w, q, kt + w - 8, ldk, HS, sc8);
    } else
        for (int r = 0; r < BAND_ROWS; r++)
            for (int c = 0; c < w; c++) {
                float acc = 0.0f;
                for (int t = 0; t < HS; t++) acc += q[r][t] * kt[(size_t)t * ldk + c];
                s[(size_t)r * w + c] = acc * scale;
            }
}

/* o[r] (HS) = Σ_{c < w} p[r][c] v_c for BAND_ROWS rows (o[r] = ob + r * C), v_c = vb + c * KVC, in
 * key order from 0: 16, then 8 columns in registers, then the last HS mod 8 columns one by one */
#define BAND_OUT_ACC(x, vv, r) x = _mm256_add_ps(x, _mm256_mul_ps(_mm256_broadcast_ss(p + (size_t)(r) * w + c), vv))
__attribute__((target("avx2"))) static void band_out_avx2(float *ob, int C, const float *p, int w, const float *vb,
                                                          int KVC, int HS) {
    int t = 0;
    for (; t + 16 <= HS; t += 16) {
        __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        const float *vr = vb + t;
        for (int c = 0; c < w; c++, vr += KVC) {
            __m256 v0 = _mm256_loadu_ps(vr), v1 = _mm256_loadu_ps(vr + 8);
            BAND_OUT_ACC(a00, v0, 0); BAND_OUT_ACC(a01, v1, 0);
            BAND_OUT_ACC(a10, v0, 1); BAND_OUT_ACC(a11, v1, 1);
            BAND_OUT_ACC(a20, v0, 2); BAND_OUT_ACC(a21, v1, 2);
            BAND_OUT_ACC(a30, v0, 3); BAND_OUT_ACC(a31, v1, 3);
        }
        _mm256_storeu_ps(ob + t, a00), _mm256_storeu_ps(ob + t + 8, a01);
        _mm256_storeu_ps(ob + C + t, a10), _mm256_storeu_ps(ob + C + t + 8, a11);
        _mm256_storeu_ps(ob + 2 * (size_t)C + t, a20), _mm256_storeu_ps(ob + 2 * (size_t)C + t + 8, a21);
        _mm256_storeu_ps(ob + 3 * (size_t)C + t, a30), _mm256_storeu_ps(ob + 3 * (size_t)C + t + 8, a31);
    }
    if (t + 8 <= HS) {
        __m256       a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const float *vr = vb + t;
        for (int c = 0; c < w; c++, vr += KVC) {
            __m256 v0 = _mm256_loadu_ps(vr);
            BAND_OUT_ACC(a0, v0, 0); BAND_OUT_ACC(a1, v0, 1); BAND_OUT_ACC(a2, v0, 2); BAND_OUT_ACC(a3, v0, 3);
        }
        _mm256_storeu_ps(ob + t, a0), _mm256_storeu_ps(ob + C + t, a1);
        _mm256_storeu_ps(ob + 2 * (size_t)C + t, a2), _mm256_storeu_ps(ob + 3 * (size_t)C + t, a3);
        t += 8;
    }
    for (; t < HS; t++)
        for (int r = 0; r < BAND_ROWS; r++) {
            float acc = 0.0f;
            for (int c = 0; c < w; c++) acc += p[(size_t)r * w + c] * vb[(size_t)c * KVC + t];
            ob[(size_t)r * C + t] = acc;
        }
}
#undef BAND_OUT_ACC

/* band_softmax_c with the max, the exponentials, the 8 lane sums and the scaling in registers */
__attribute__((target("avx2"))) static float band_softmax_avx2(float *s, int m, float *z, double *es) {
    pq_exp_sub(s, es ? z : NULL, m, pq_max_avx2(s, m));
    __m256 acc = _mm256_setzero_ps();
    int    j = 0;
    for (; j + 8 <= m; j += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(s + j));
    float l[8];
    _mm256_storeu_ps(l, acc);
    for (int u = 0; j < m; j++, u++) l[u] += s[j];
    float sum = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
    if (es) {
        double e = 0.0;
        for (j = 0; j < m; j++) e += (double)s[j] * z[j];
        *es = e;
    }
    float  inv = 1.0f / sum;
    __m256 i8  = _mm256_set1_ps(inv);
    for (j = 0; j + 8 <= m; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), i8));
    for (; j < m; j++) s[j] *= inv;
    return sum;
}

/* the AVX2 path of att_ranges: groups of BAND_ROWS queries over the union of their ranges; a
 * group whose union is much wider than its ranges (ranges far apart), and the last n mod 4
 * queries, run row by row (band_row_c: the same bits) */
__attribute__((target("avx2"))) static int64_t att_ranges_avx2(float *ob, float *scratch, float *zbuf, const float *qb,
                                                               const float *kt, int ldk, const float *vb, int C,
                                                               int KVC, int HS, float scale, int n, const pw_sample *ps,
                                                               row_stats *rs) {
    int64_t kept = 0;
    int     i0 = 0;
    for (; i0 + BAND_ROWS <= n; i0 += BAND_ROWS) {
        int a[BAND_ROWS], m[BAND_ROWS], lo = n, hi = 0, mmax = 0;
        for (int r = 0; r < BAND_ROWS; r++) {
            int ks = ps->key_start[i0 + r];
            a[r] = ps->keys[ks];
            m[r] = ps->key_start[i0 + r + 1] - ks;
            lo = a[r] < lo ? a[r] : lo;
            hi = a[r] + m[r] > hi ? a[r] + m[r] : hi;
            mmax = m[r] > mmax ? m[r] : mmax;
        }
        int w = hi - lo; /* the group's keys [lo, hi) */
        if (w > 2 * mmax + 16) {
            for (int r = 0; r < BAND_ROWS; r++) {
                int i = i0 + r;
                kept += band_row_c(ob + (size_t)i * C, scratch, zbuf, qb + (size_t)i * C, kt, ldk, vb, KVC, HS, scale, i,
                                   ps->keys + ps->key_start[i], m[r], rs);
            }
            continue;
        }
        const float *q[BAND_ROWS];
        for (int r = 0; r < BAND_ROWS; r++) q[r] = qb + (size_t)(i0 + r) * C;
        band_scores_avx2(scratch, w, q, kt, ldk, lo, HS, scale); /* scratch (BAND_ROWS, w) */
        for (int r = 0; r < BAND_ROWS; r++) {
            float *srow = scratch + (size_t)r * w, *sv = srow + (a[r] - lo);
            double es  = 0.0;
            float  sum = band_softmax_avx2(sv, m[r], zbuf, rs && rs->att ? &es : NULL);
            for (float *x = srow; x < sv; x++) *x = 0.0f;
            for (float *x = sv + m[r]; x < srow + w; x++) *x = 0.0f;
            kept += m[r];
            if (rs)
                row_stats_add(rs, i0 + r, ps->keys + ps->key_start[i0 + r], sv, m[r], 0.0f,
                              log((double)sum) - es / sum);
        }
        band_out_avx2(ob + (size_t)i0 * C, C, scratch, w, vb + (size_t)lo * KVC, KVC, HS);
    }
    for (; i0 < n; i0++)
        kept += band_row_c(ob + (size_t)i0 * C, scratch, zbuf, qb + (size_t)i0 * C, kt, ldk, vb, KVC, HS, scale, i0,
                           ps->keys + ps->key_start[i0], ps->key_start[i0 + 1] - ps->key_start[i0], rs);
    return kept;
}
#endif

/* Per-query key lists that are contiguous ranges (lists_are_ranges): the band kernel above.
 * kt: the gather buffer, (HS, band_ldk(n)) <= (2, T, HS) floats; *kv_in_gather = -2 - kvh marks
 * it as holding K^T of KV head kvh (GQA query heads of one KV head transpose once). */
static int64_t att_ranges(float *ob, float *scratch, float *zbuf, float *kt, int *kv_in_gather, int kvh, const float *qb,
                          const float *kb, const float *vb, int C, int KVC, int HS, float scale, int n,
                          const pw_sample *ps, row_stats *rs) {
    int ldk = band_ldk(n);
#ifdef KERN_HAVE_AVX2
    if (kern_simd_active()) {
        if (*kv_in_gather != -2 - kvh) band_transpose_avx2(kt, ldk, kb, KVC, HS, n);
        *kv_in_gather = -2 - kvh;
        return att_ranges_avx2(ob, scratch, zbuf, qb, kt, ldk, vb, C, KVC, HS, scale, n, ps, rs);
    }
#endif
    if (*kv_in_gather != -2 - kvh) band_transpose_c(kt, ldk, kb, KVC, HS, n);
    *kv_in_gather = -2 - kvh;
    int64_t kept = 0;
    for (int i = 0; i < n; i++)
        kept += band_row_c(ob + (size_t)i * C, scratch, zbuf, qb + (size_t)i * C, kt, ldk, vb, KVC, HS, scale, i,
                           ps->keys + ps->key_start[i], ps->key_start[i + 1] - ps->key_start[i], rs);
    return kept;
}

/* *kv_in_gather: the KV head whose rows kg, vg hold (-1: none); GQA query heads of one KV head
 * gather once */
static int64_t att_per_query(float *ob, float *scores, float *zbuf, float *kg, float *vg, int *kv_in_gather, int kvh,
                             const float *qb, const float *kb, const float *vb, int C, int KVC, int HS, float scale, int n,
                             const pw_sample *ps, int causal, row_stats *rs) {
#ifdef KERN_HAVE_AVX2
    if (kern_simd_active()) {
        /* the head's K and V rows contiguous, (n, HS) each: a quarter of the cache footprint */
        for (int j = 0; j < n && *kv_in_gather != kvh; j++) {
            memcpy(kg + (size_t)j * HS, kb + (size_t)j * KVC, (size_t)HS * sizeof(float));
            memcpy(vg + (size_t)j * HS, vb + (size_t)j * KVC, (size_t)HS * sizeof(float));
        }
        *kv_in_gather = kvh;
        return att_per_query_avx2(ob, scores, zbuf, qb, kg, vg, C, HS, HS, scale, n, ps, causal, rs);
    }
#else
    (void)kg, (void)vg, (void)kv_in_gather, (void)kvh;
#endif
    int64_t kept = 0;
    for (int i = 0; i < n; i++) {
        const int   *L   = ps->keys + ps->key_start[i];
        int          m   = ps->key_start[i + 1] - ps->key_start[i];
        int          lim = causal ? kern_upper_bound(L, m, i) : m;
        int          has_self = causal && !(lim > 0 && L[lim - 1] == i);
        int          cnt = lim + has_self;
        const float *qi  = qb + (size_t)i * C;
        float       *o   = ob + (size_t)i * C;
        double       es  = 0.0;
        float        mx  = -INFINITY;
        for (int j = 0; j < cnt; j++) {
            scores[j] = kern_dot8(qi, kb + (size_t)(j < lim ? L[j] : i) * KVC, HS) * scale;
            mx = scores[j] > mx ? scores[j] : mx;
        }
        float sum = exp_row(scores, cnt, mx, zbuf, rs && rs->att ? &es : NULL);
        memset(o, 0, (size_t)HS * sizeof(float));
        for (int j = 0; j < cnt; j++) {
            const float *vj = vb + (size_t)(j < lim ? L[j] : i) * KVC;
            float p = scores[j] / sum;
            for (int t = 0; t < HS; t++) o[t] += p * vj[t];
            scores[j] = p;
        }
        kept += cnt;
        if (rs) row_stats_add(rs, i, L, scores, lim, has_self ? scores[lim] : 0.0f, log((double)sum) - es / sum);
    }
    return kept;
}

void kern_attention(float *out, float *scratch, float *gather, int *iscratch, const float *q, const float *k,
                    const float *v, const int *lens, int B, int T, int NH, int NKV, int HS, int causal,
                    const kern_pathways *pw) {
    int   C = NH * HS, KVC = NKV * HS, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
    float *kg = gather, *vg = gather + (size_t)T * HS; /* (T, HS) each */
    float *zbuf = scratch + (size_t)T * T;             /* (T + 1): past what any path uses of scratch */
    pw_sample *ps = pw && pw->cfg ? pw->sample : NULL;
    for (int b = 0; b < B; b++) {
        int n = lens ? lens[b] : T, kv_in_gather = -1; /* gather holds no KV head of sequence b yet */
        for (int h = 0; h < NH; h++) {
            const float *qb = q + (size_t)b * T * C + (size_t)h * HS;             /* (T, HS) stride C */
            const float *kb = k + (size_t)b * T * KVC + (size_t)(h / group) * HS; /* (T, HS) stride KVC */
            const float *vb = v + (size_t)b * T * KVC + (size_t)(h / group) * HS;
            float       *ob = out + (size_t)b * T * C + (size_t)h * HS;
            for (int i = n; i < T; i++) memset(ob + (size_t)i * C, 0, (size_t)HS * sizeof(float)); /* padding */
            if (pw && pw->kept_bh) pw->kept_bh[(size_t)b * NH + h] = 0;
            if (n <= 0) continue;
            int64_t kept = 0;
            if (ps) pw_draw(ps, pw->cfg, pw->member, pw->layer, h, pw->seq_ids[b], n, causal);
            pw_sample_kind kind = ps ? ps->kind : PW_SAMPLE_ALL;
            row_stats rsv = {pw ? pw->n_bands : 0, NULL, NULL, n, 0}, *rs = NULL;
            if (pw && pw->stat_rows) rsv.rows = pw->stat_rows[b] < n ? pw->stat_rows[b] : n;
            if (pw && pw->kept_bh) rs = &rsv;
            if (pw && pw->band_kept) {
                rsv.band_kept = pw->band_kept + ((size_t)b * NH + h) * pw->n_bands;
                memset(rsv.band_kept, 0, (size_t)pw->n_bands * sizeof(int64_t));
                rs = &rsv;
            }
            if (pw && pw->att_stats) {
                rsv.att = pw->att_stats + ((size_t)b * NH + h) * (3 + (size_t)pw->n_bands);
                memset(rsv.att, 0, (3 + (size_t)pw->n_bands) * sizeof(double));
                rs = &rsv;
            }
            if (kind == PW_SAMPLE_NONE) {
                for (int i = 0; i < n; i++) memset(ob + (size_t)i * C, 0, (size_t)HS * sizeof(float));
            } else if (kind == PW_SAMPLE_PER_QUERY && lists_are_ranges(ps, n, causal)) {
                kept = att_ranges(ob, scratch, zbuf, kg, &kv_in_gather, h / group, qb, kb, vb, C, KVC, HS, scale, n, ps, rs);
            } else if (kind == PW_SAMPLE_PER_QUERY) {
                kept = att_per_query(ob, scratch, zbuf, kg, vg, &kv_in_gather, h / group, qb, kb, vb, C, KVC, HS, scale,
                                     n, ps, causal, rs);
            } else if (kind == PW_SAMPLE_WINDOWS) {
                kv_in_gather = -1; /* att_window gathers its own key lists */
                for (int w = 0; w < ps->n_windows; w++)
                    kept += att_window(ob, scratch, zbuf, kg, vg, qb, kb, vb, C, KVC, HS, scale, ps->win_start[w],
                                       ps->win_start[w + 1], ps->keys + ps->key_start[w],
                                       ps->key_start[w + 1] - ps->key_start[w], causal, rs);
            } else { /* ALL: one window over every key */
                kv_in_gather = -1;
                for (int j = 0; j < n; j++) iscratch[j] = j;
                kept = att_window(ob, scratch, zbuf, kg, vg, qb, kb, vb, C, KVC, HS, scale, 0, n, iscratch, n, causal, rs);
            }
            if (pw && pw->kept_bh) pw->kept_bh[(size_t)b * NH + h] = rsv.kept;
            if (pw && pw->kept) {
                pw->kept[h] += kept;
                pw->allowed[h] += causal ? (int64_t)n * (n + 1) / 2 : (int64_t)n * n;
            }
        }
    }
}

void kern_attention_ref(float *out, float *scratch, float *gather, int *iscratch, const float *q, const float *k,
                        const float *v, const int *lens, int B, int T, int NH, int NKV, int HS, int causal,
                        const kern_pathways *pw) {
    (void)scratch; (void)gather; (void)iscratch;
    int      C = NH * HS, KVC = NKV * HS, group = NH / NKV;
    uint8_t *mask = malloc((size_t)T * T); /* (T, T) 0/1: query i attends to key j */
    double  *sc   = malloc((size_t)T * sizeof(double));
    if (!mask || !sc) abort(); /* test-only twin */
    pw_sample *ps = pw && pw->cfg ? pw->sample : NULL;
    for (int b = 0; b < B; b++) {
        int n = lens ? lens[b] : T;
        for (int h = 0; h < NH; h++) {
            int kvh = h / group;
            for (int i = 0; i < T; i++) memset(out + ((size_t)b * T + i) * C + (size_t)h * HS, 0, (size_t)HS * sizeof(float));
            if (n <= 0) continue;
            if (ps) {
                pw_draw(ps, pw->cfg, pw->member, pw->layer, h, pw->seq_ids[b], n, causal);
                pw_mask_dense(ps, mask);
            } else {
                for (int i = 0; i < n; i++)
                    for (int j = 0; j < n; j++) mask[(size_t)i * n + j] = !causal || j <= i;
            }
            int64_t kept = 0;
            for (int i = 0; i < n; i++) {
                const float *qi = q + ((size_t)b * T + i) * C + (size_t)h * HS;
                double       mx = -INFINITY;
                for (int j = 0; j < n; j++) {
                    if (!mask[(size_t)i * n + j]) continue;
                    const float *kj = k + ((size_t)b * T + j) * KVC + (size_t)kvh * HS;
                    double       s  = 0.0;
                    for (int d = 0; d < HS; d++) s += (double)qi[d] * kj[d];
                    sc[j] = s / sqrt((double)HS);
                    if (sc[j] > mx) mx = sc[j];
                    kept++;
                }
                if (mx == -INFINITY) continue; /* no key (dropped head): output 0 */
                double sum = 0.0;
                for (int j = 0; j < n; j++)
                    if (mask[(size_t)i * n + j]) sum += exp(sc[j] - mx);
                float *oi = out + ((size_t)b * T + i) * C + (size_t)h * HS;
                for (int d = 0; d < HS; d++) {
                    double acc = 0.0;
                    for (int j = 0; j < n; j++)
                        if (mask[(size_t)i * n + j])
                            acc += exp(sc[j] - mx) / sum * v[((size_t)b * T + j) * KVC + (size_t)kvh * HS + d];
                    oi[d] = (float)acc;
                }
            }
            if (pw && pw->kept) {
                pw->kept[h] += kept;
                pw->allowed[h] += causal ? (int64_t)n * (n + 1) / 2 : (int64_t)n * n;
            }
        }
    }
    free(mask);
    free(sc);
}

/* ---- activations ------------------------------------------------------------------------- */

/* GELU, tanh form: 0.5 u (1 + tanh(z)) = u * sigmoid(2 z) = u / (1 + exp(-2 z)),
 * z = sqrt(2/pi) (u + 0.044715 u^3), through kern_expf (so the loop vectorises and the AVX2 lanes
 * give the same bits): -2 z is formed as c2 * (u + 0.044715f * ((u * u) * u)), c2 = -2 sqrt(2/pi)
 * in float, then u / (1 + e); a few ulp from the exact formula (tests/test_kernels.c). */
#define KERN_GELU_C2 -1.5957691216057308f /* -2 sqrt(2/pi) */
static inline float gelu_tanh1(float u) {
    float u3 = (u * u) * u;
    float e  = kern_expf(KERN_GELU_C2 * (u + 0.044715f * u3));
    return u / (1.0f + e);
}

static void gelu_tanh_c(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = gelu_tanh1(x[i]);
}

#ifdef KERN_HAVE_AVX2
/* gelu_tanh1 on 8 lanes, operation for operation (pq_expf8 is kern_expf's bits) */
__attribute__((target("avx2"))) static void gelu_tanh_avx2(float *x, size_t n) {
    const __m256 c2 = _mm256_set1_ps(KERN_GELU_C2), c3 = _mm256_set1_ps(0.044715f), one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 u  = _mm256_loadu_ps(x + i);
        __m256 u3 = _mm256_mul_ps(_mm256_mul_ps(u, u), u);
        __m256 e  = pq_expf8(_mm256_mul_ps(c2, _mm256_add_ps(u, _mm256_mul_ps(c3, u3))));
        _mm256_storeu_ps(x + i, _mm256_div_ps(u, _mm256_add_ps(one, e)));
    }
    for (; i < n; i++) x[i] = gelu_tanh1(x[i]);
}
#endif

void kern_gelu(float *x, size_t n, int tanh_approx) {
    if (tanh_approx) {
#ifdef KERN_HAVE_AVX2
        if (kern_simd_active()) {
            gelu_tanh_avx2(x, n);
            return;
        }
#endif
        gelu_tanh_c(x, n);
    } else {
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.7071067811865476f));
    }
}

void kern_gelu_ref(float *x, size_t n, int tanh_approx) {
    for (size_t i = 0; i < n; i++) {
        double u = x[i];
        /* tanh form as u / (1 + e^{-2z}): 0.5 u (1 + tanh z) loses every digit to 1 + tanh z in the
         * negative tail, even in double (z = -16: 1 + tanh z = 2.5e-14) */
        x[i] = (float)(tanh_approx ? u / (1.0 + exp(-1.5957691216057308 * (u + 0.044715 * u * u * u)))
                                   : 0.5 * u * (1.0 + erf(u * 0.7071067811865476)));
    }
}

static void swiglu_c(float *h1, const float *h3, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = h1[i];
        h1[i] = g * (1.0f / (1.0f + kern_expf(-g))) * h3[i];
    }
}

#ifdef KERN_HAVE_AVX2
/* swiglu_c on 8 lanes, operation for operation (pq_expf8 is kern_expf's bits; -g is a sign flip) */
__attribute__((target("avx2"))) static void swiglu_avx2(float *h1, const float *h3, size_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(h1 + i);
        __m256 e = pq_expf8(_mm256_xor_ps(g, sign));
        __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
        _mm256_storeu_ps(h1 + i, _mm256_mul_ps(_mm256_mul_ps(g, s), _mm256_loadu_ps(h3 + i)));
    }
    swiglu_c(h1 + i, h3 + i, n - i);
}
#endif

void kern_swiglu(float *h1, const float *h3, size_t n) {
#ifdef KERN_HAVE_AVX2
    if (kern_simd_active()) {
        swiglu_avx2(h1, h3, n);
        return;
    }
#endif
    swiglu_c(h1, h3, n);
}

void kern_add(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}
