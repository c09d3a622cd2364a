/* kernels.c: forward kernels (cblas_sgemm for every projection and for attention blocks) and
 * their naive reference twins. */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
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

void kern_rope(float *x, int B, int T, int nh, int hs, float theta) {
    /* the angle table is shared by every sequence and head: one (T, hs/2) pass of cos/sin */
    for (int t = 0; t < T; t++) {
        for (int i = 0; i < hs; i += 2) {
            float freq = 1.0f / powf(theta, (float)i / (float)hs);
            float val  = (float)t * freq;
            float fcr = cosf(val), fci = sinf(val);
            for (int b = 0; b < B; b++) {
                float *xt = x + ((size_t)b * T + t) * (size_t)nh * hs;
                for (int h = 0; h < nh; h++) {
                    float *p  = xt + (size_t)h * hs + i;
                    float  v0 = p[0], v1 = p[1];
                    p[0] = v0 * fcr - v1 * fci;
                    p[1] = v0 * fci + v1 * fcr;
                }
            }
        }
    }
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

#define ATT_ROW_BLOCK 64 /* causal: queries in blocks of 64 rows only touch keys < block end */

void kern_attention(float *out, float *scratch, const float *q, const float *k, const float *v,
                    const int *lens, int B, int T, int NH, int NKV, int HS, int causal) {
    int   C = NH * HS, KVC = NKV * HS, group = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
    for (int b = 0; b < B; b++) {
        int len = lens ? lens[b] : T;
        for (int h = 0; h < NH; h++) {
            const float *qb = q + (size_t)b * T * C + (size_t)h * HS;           /* (T, HS) stride C */
            const float *kb = k + (size_t)b * T * KVC + (size_t)(h / group) * HS; /* (T, HS) stride KVC */
            const float *vb = v + (size_t)b * T * KVC + (size_t)(h / group) * HS;
            float       *ob = out + (size_t)b * T * C + (size_t)h * HS;
            for (int i0 = 0; i0 < T; i0 += ATT_ROW_BLOCK) {
                int rows = T - i0 < ATT_ROW_BLOCK ? T - i0 : ATT_ROW_BLOCK;
                if (i0 >= len) { /* queries past the sequence end: output 0, never read */
                    for (int r = 0; r < rows; r++) memset(ob + (size_t)(i0 + r) * C, 0, (size_t)HS * sizeof(float));
                    continue;
                }
                int nk   = causal ? (i0 + rows < len ? i0 + rows : len) : len; /* keys [0, nk) */
                /* S (rows, nk) = Q_blk . K^T * scale */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, nk, HS, scale, qb + (size_t)i0 * C, C, kb, KVC,
                            0.0f, scratch, nk);
                for (int r = 0; r < rows; r++) {
                    int    i   = i0 + r;
                    float *s   = scratch + (size_t)r * nk;
                    if (i >= len) { /* past the sequence end: zero output row */
                        memset(s, 0, (size_t)nk * sizeof(float));
                        continue;
                    }
                    int    lim = causal ? (i + 1 < nk ? i + 1 : nk) : nk; /* valid keys [0, lim) */
                    float  mx  = s[0];
                    for (int j = 1; j < lim; j++) mx = s[j] > mx ? s[j] : mx;
                    float sum = 0.0f;
                    for (int j = 0; j < lim; j++) {
                        s[j] = expf(s[j] - mx);
                        sum += s[j];
                    }
                    float inv = 1.0f / sum;
                    for (int j = 0; j < lim; j++) s[j] *= inv;
                    for (int j = lim; j < nk; j++) s[j] = 0.0f;
                }
                /* O_blk (rows, HS) = P (rows, nk) . V (nk, HS) */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, HS, nk, 1.0f, scratch, nk, vb, KVC, 0.0f,
                            ob + (size_t)i0 * C, C);
            }
        }
    }
}

void kern_attention_ref(float *out, float *scratch, const float *q, const float *k, const float *v,
                        const int *lens, int B, int T, int NH, int NKV, int HS, int causal) {
    int C = NH * HS, KVC = NKV * HS, group = NH / NKV;
    for (int b = 0; b < B; b++) {
        int len = lens ? lens[b] : T;
        for (int h = 0; h < NH; h++) {
            int kvh = h / group;
            for (int i = 0; i < T; i++) {
                const float *qi  = q + ((size_t)b * T + i) * C + (size_t)h * HS;
                float       *oi  = out + ((size_t)b * T + i) * C + (size_t)h * HS;
                if (i >= len) { /* queries past the sequence end: output 0 */
                    memset(oi, 0, (size_t)HS * sizeof(float));
                    continue;
                }
                int lim = causal ? i + 1 : len;
                double mx = -INFINITY;
                for (int j = 0; j < lim; j++) {
                    const float *kj = k + ((size_t)b * T + j) * KVC + (size_t)kvh * HS;
                    double       s  = 0.0;
                    for (int d = 0; d < HS; d++) s += (double)qi[d] * kj[d];
                    s /= sqrt((double)HS);
                    scratch[j] = (float)s;
                    if (s > mx) mx = s;
                }
                double sum = 0.0;
                for (int j = 0; j < lim; j++) sum += exp(scratch[j] - mx);
                for (int d = 0; d < HS; d++) {
                    double acc = 0.0;
                    for (int j = 0; j < lim; j++)
                        acc += exp(scratch[j] - mx) / sum * v[((size_t)b * T + j) * KVC + (size_t)kvh * HS + d];
                    oi[d] = (float)acc;
                }
            }
        }
    }
}

/* ---- activations ------------------------------------------------------------------------- */

void kern_gelu(float *x, size_t n, int tanh_approx) {
    if (tanh_approx) {
        const float s = 0.7978845608028654f; /* sqrt(2/pi) */
        for (size_t i = 0; i < n; i++) {
            float u = x[i];
            x[i] = 0.5f * u * (1.0f + tanhf(s * (u + 0.044715f * u * u * u)));
        }
    } else {
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.7071067811865476f));
    }
}

void kern_swiglu(float *h1, const float *h3, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = h1[i];
        h1[i] = g * (1.0f / (1.0f + expf(-g))) * h3[i];
    }
}

void kern_add(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}
