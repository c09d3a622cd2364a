/* kernels.h: the compute kernels of the forward pass. Each fast kernel has a naive reference
 * twin (suffix _ref) with the same signature, used by the tests (and model_forward's use_ref).
 * Outputs first, then inputs, then weights, then sizes. N = number of rows (B*T). */
#pragma once
#include <string.h>

#include "model.h"
#include "pathways.h"

/* out (N, OC) = inp (N, C) . W^T + b ; W per model_linear (either layout) */
void kern_matmul(float *out, const float *inp, const model_linear *w, int N, int C, int OC);
void kern_matmul_ref(float *out, const float *inp, const model_linear *w, int N, int C, int OC);

/* out (N, C) = norm(inp (N, C)) * w + b  (LayerNorm, or RMSNorm ignoring b) */
void kern_norm(float *out, const float *inp, const float *w, const float *b, int N, int C,
               model_norm_kind kind, float eps);
void kern_norm_ref(float *out, const float *inp, const float *w, const float *b, int N, int C,
                   model_norm_kind kind, float eps);

/* rotate adjacent pairs (x[2i], x[2i+1]) of each head of x (B, T, nh*hs) in place by angle
 * pos * theta^(-2i/hs), pos = t (the position inside the sequence); kern_rope_freq with the
 * llama2.c table (the same bits) */
void kern_rope(float *x, int B, int T, int nh, int hs, float theta);
void kern_rope_ref(float *x, int B, int T, int nh, int hs, float theta);
/* RoPE of every head of x (B, T, nh*hs) in place: the first R = rot dims of a head as R/2 pairs,
 * pair i = (x[2i], x[2i+1]) (half = 0, llama2.c) or (x[i], x[i + R/2]) (half = 1, HF rotate_half),
 * rotated by the angle t * inv_freq[i] (inv_freq (R/2), model_rope_init_freq); dims >= R untouched.
 * The _ref twin takes the angle's cosine and sine in double. */
void kern_rope_freq(float *x, const float *inv_freq, int B, int T, int nh, int hs, int rot, int half);
/* kern_rope_freq in two steps, the same bits: the angles' table cs (T, R/2, 2) = (cosf, sinf) of
 * t * inv_freq[i] for t < T, then the rotation with it (a forward pass builds the table once for
 * every layer and sequence) */
void kern_rope_table(float *cs, const float *inv_freq, int T, int rot);
void kern_rope_cs(float *x, const float *cs, int B, int T, int nh, int hs, int rot, int half);
void kern_rope_freq_ref(float *x, const float *inv_freq, int B, int T, int nh, int hs, int rot, int half);

/* Which pathways an attention call uses: cfg NULL = dense. Per (sequence, head) the kernel draws
 * the sample of (member, layer, head, seq_ids[b]) (pathways.h) and attends over the kept keys
 * only: cost proportional to the kept connections, never masked dense attention. */
typedef struct {
    const pw_config *cfg;     /* NULL: dense */
    pw_sample       *sample;  /* scratch with cap >= T */
    int              member;
    int              layer;
    const int64_t   *seq_ids; /* (B) sequence ids for the counter-based sampler */
    int64_t         *kept;    /* (NH) connections kept, accumulated; or NULL */
    int64_t         *allowed; /* (NH) connections allowed, accumulated; or NULL */
    /* per-(sequence, head) statistics of this call, overwritten; each NULL when not wanted */
    int              n_bands;   /* distance bands (importance.h: 0, 1, 2-3, 4-7, ...) */
    int64_t         *kept_bh;   /* (B, NH) connections kept */
    int64_t         *band_kept; /* (B, NH, n_bands) connections kept per distance band */
    double          *att_stats; /* (B, NH, 3 + n_bands): rows, Σ p|i-j|, Σ -p ln p, attention mass per band */
    const int       *stat_rows; /* (B) only queries i < stat_rows[b] enter kept_bh / band_kept; NULL = all */
} kern_pathways;

/* Scaled dot-product attention, per (sequence, head), over sampled pathways.
 * out (B, T, NH*HS); q (B, T, NH*HS); k, v (B, T, NKV*HS);
 * scratch (T * T + T + 1) floats; gather (2, T, HS) floats; iscratch (T) ints;
 * lens (B) valid lengths or NULL; causal: query i sees keys j <= i (and always itself);
 * outputs at positions >= lens[b] are 0. Query head h reads KV head h / (NH / NKV).
 * Dense attention is the sample "every key", run through the same code, so a sample that keeps
 * every connection gives bit-identical results. The _ref twin materialises the sample as a
 * dense 0/1 mask (pw_mask_dense) and computes in double. */
void kern_attention(float *out, float *scratch, float *gather, int *iscratch, const float *q, const float *k,
                    const float *v, const int *lens, int B, int T, int NH, int NKV, int HS, int causal,
                    const kern_pathways *pw);
void kern_attention_ref(float *out, float *scratch, float *gather, int *iscratch, const float *q, const float *k,
                        const float *v, const int *lens, int B, int T, int NH, int NKV, int HS, int causal,
                        const kern_pathways *pw);

/* The per-query attention path (random-k lists) has an AVX2 version chosen at run time; it gives
 * the same bits as the portable C (the same operations per element, only more lanes at once).
 * kern_set_simd(0) forces the portable C (tests compare both; bench); kern_simd_active() says
 * which one runs. Not thread-safe against concurrent attention calls: set it before. */
void kern_set_simd(int on);
int  kern_simd_active(void);
/* y = kern_expf(x) over n floats through the AVX2 lanes when kern_simd_active() (the tests check
 * it gives kern_expf's bits) */
void kern_expf_lanes(float *y, const float *x, int n);

/* exp(x) in float, branch-free so loops over it vectorise (Cephes-style range reduction and a
 * degree-6 polynomial, about 1 ulp on [-87, 88]; below -87 it returns 0, above 88 it saturates).
 * The same bits on every machine, unlike libm's expf, which differs between glibc versions.
 * exp(NaN) = NaN (a model whose activations overflow gives NaN scores, never UB). */
static inline float kern_expf(float x0) {
    float x = x0 > -87.0f ? x0 : -87.0f; /* NaN takes the clamp here (no int conversion of a NaN) ... */
    x = x < 88.0f ? x : 88.0f;
    float fx = x * 1.44269504088896341f + 0.5f;
    int   t  = (int)fx;
    int   n  = t - (fx < (float)t); /* floor */
    float fn = (float)n;
    float r  = x - fn * 0.693359375f + fn * 2.12194440e-4f;
    float p  = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t u = (uint32_t)(n + 127) << 23; /* 2^n */
    float    sc;
    memcpy(&sc, &u, sizeof sc);
    return x0 == x0 ? p * sc : x0; /* ... and comes out a NaN */
}

/* dot product with 8 independent partial sums (the compiler vectorises it; a single chain does not).
 * Shared by the inference and the training attention, so both sum in the same order. */
static inline float kern_dot8(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int   t = 0;
    for (; t + 8 <= n; t += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[t + l] * b[t + l];
    float d = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; t < n; t++) d += a[t] * b[t];
    return d;
}

/* number of entries of the ascending list L (m) that are <= x (binary search) */
static inline int kern_upper_bound(const int *L, int m, int x) {
    int lo = 0, hi = m;
    while (lo < hi) {
        int mid = (lo + hi) >> 1;
        if (L[mid] <= x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* in place activations over n floats */
/* erf GELU (libm erff) or the tanh approximation (u / (1 + exp(-2z)) through kern_expf, AVX2 lanes
 * when kern_simd_active() with the portable loop's bits); _ref: the formulas in double */
void kern_gelu(float *x, size_t n, int tanh_approx);
void kern_gelu_ref(float *x, size_t n, int tanh_approx);
void kern_swiglu(float *h1, const float *h3, size_t n);        /* h1 = silu(h1) * h3 */
void kern_add(float *x, const float *y, size_t n);             /* x += y */
