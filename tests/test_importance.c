/* test_importance.c: importance statistics against a planted ground truth.
 *
 * A one-layer model is built by hand so that exactly one head carries the signal: on sequences
 * with x_t = x_{t-2} + 1 (mod V) the next token is the token one position back plus one, and
 * head 2 is a "previous token" head (its query at i matches the key at i-1 through one-hot
 * positions) that copies that token into a subspace the LM head reads (and shifts by one). No
 * other distance predicts the target (x_{t-3} + 1 is off by one, even distances are independent). The other heads attend with random
 * weights and write random vectors the LM head ignores. Importance must rank head 2 first, with
 * every other head within two standard errors of zero; the distance band of the signal
 * (distance 1) must rank first among the bands; the explicit ablation must agree. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "dataset.h"
#include "ensemble.h"
#include "importance.h"
#include "model.h"
#include "plan.h"

#define V 8      /* symbols */
#define TT 16    /* positions */
#define NH 4
#define HS 16
#define C (NH * HS)
#define PLANT 2  /* the signal head */
#define NDOC 240

static float *tensor(tu_tensors *t, const char *name) {
    int i = tu_tensors_find(t, name);
    assert_true(i >= 0);
    return t->data[i];
}

/* zero_head >= 0: that head's columns of the output projection are 0 (it can change nothing) */
static void build_planted_model_z(const char *dir, int zero_head);
static void build_planted_model(const char *dir) { build_planted_model_z(dir, -1); }

static void build_planted_model_z(const char *dir, int zero_head) {
    model_config c = {0};
    c.dim = C; c.hidden_dim = 32; c.n_layers = 1; c.n_heads = NH; c.n_kv_heads = NH; c.vocab_size = V; c.seq_len = TT;
    c.norm = MODEL_NORM_RMSNORM; c.norm_eps = 1e-5f; c.pos = MODEL_POS_LEARNED; c.mlp = MODEL_MLP_SWIGLU;
    c.causal = 1; c.bias = 0; c.head = MODEL_HEAD_LM; c.input = MODEL_INPUT_TOKENS; c.pixel_std = 1.0f;
    tu_tensors t;
    pe_err     err = {0};
    assert_int_equal(tu_random_tensors(&t, &c, 11, &err), PE_OK); /* random everywhere, then planted */
    /* residual layout: [0,V) token one-hot, [V,V+TT) position one-hot, [32,32+V) copy subspace,
     * [40,64) where the noise heads write */
    float *emb = tensor(&t, "tok_emb.weight"), *pos = tensor(&t, "pos_emb.weight");
    memset(emb, 0, sizeof(float) * V * C);
    memset(pos, 0, sizeof(float) * TT * C);
    for (int v = 0; v < V; v++) emb[v * C + v] = 1.0f;
    for (int p = 0; p < TT; p++) pos[p * C + V + p] = 1.0f;
    for (int i = 0; i < C; i++) {
        tensor(&t, "layers.0.attn_norm.weight")[i] = 1.0f;
        tensor(&t, "layers.0.mlp_norm.weight")[i] = 1.0f;
        tensor(&t, "final_norm.weight")[i] = 1.0f;
    }
    float *wq = tensor(&t, "layers.0.attn.wq.weight"), *wk = tensor(&t, "layers.0.attn.wk.weight");
    float *wv = tensor(&t, "layers.0.attn.wv.weight"), *wo = tensor(&t, "layers.0.attn.wo.weight");
    for (int h = 0; h < NH; h++)
        for (int r = 0; r < HS; r++) {
            int row = h * HS + r;
            for (int col = 0; col < C; col++) {
                float *q = &wq[row * C + col], *k = &wk[row * C + col], *v = &wv[row * C + col];
                if (h == PLANT) {
                    *q = (col == V + r) ? 2.0f : 0.0f;          /* q_i = e_i (position i) */
                    *k = (col == V + r - 1) ? 1.0f : 0.0f;      /* k_j = e_{j+1}: matches q_{j+1} */
                    *v = (r < V && col == r) ? 1.0f : 0.0f;     /* v_j = token one-hot of x_j */
                } else {
                    *q *= 0.5f; *k *= 0.5f; *v *= 0.5f;         /* diffuse random attention */
                }
            }
        }
    for (int out = 0; out < C; out++) /* wo: head PLANT -> copy subspace; noise heads -> [40, 64) */
        for (int in = 0; in < C; in++) {
            int h = in / HS, r = in % HS;
            float w = wo[out * C + in];
            if (h == PLANT) wo[out * C + in] = (r < V && out == 32 + r) ? 1.0f : 0.0f;
            else wo[out * C + in] = out >= 40 ? 0.3f * w : 0.0f;
            if (h == zero_head) wo[out * C + in] = 0.0f;
        }
    memset(tensor(&t, "layers.0.mlp.w2.weight"), 0, sizeof(float) * C * 32); /* the MLP adds nothing */
    float *lm = tensor(&t, "lm_head.weight");
    memset(lm, 0, sizeof(float) * V * C);
    for (int v = 0; v < V; v++) lm[((v + 1) % V) * C + 32 + v] = 2.0f; /* copied v predicts v + 1 */
    assert_int_equal(tu_write_model_dir(&c, dir, &t, &err), PE_OK);
    tu_free_tensors(&t);
}

/* NDOC documents a, b, a+1, b+1, a+2, ... (x_t = x_{t-2} + 1 mod V) of TT tokens, in memory */
static void build_dataset(text_dataset *d) {
    memset(d, 0, sizeof *d);
    d->mode = DATA_MODE_DOCUMENTS;
    d->context = TT;
    d->stride = TT;
    d->n_seqs = NDOC;
    d->n_tokens = (int64_t)NDOC * TT;
    d->tokens = malloc(sizeof(int) * d->n_tokens);
    d->tok_bytes = malloc(sizeof(uint16_t) * d->n_tokens);
    d->seqs = calloc(NDOC, sizeof(text_seq));
    uint64_t s = 12345;
    for (int u = 0; u < NDOC; u++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        int a = (int)((s >> 33) % V), b = (int)((s >> 45) % V);
        for (int p = 0; p < TT; p++) {
            d->tokens[u * TT + p] = ((p % 2 ? b : a) + p / 2) % V;
            d->tok_bytes[u * TT + p] = 1;
        }
        d->seqs[u] = (text_seq){.start = (int64_t)u * TT, .len = TT, .score_begin = 1, .doc_id = u};
    }
    d->n_scored = (int64_t)NDOC * (TT - 2);
    d->n_scored_bytes = d->n_scored;
}

static void test_planted_head(void **state) {
    (void)state;
    const char *dir = tu_tmp_dir("planted");
    build_planted_model(dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    pe_err    err = {0};
    ckpt_file ck;
    model     m;
    assert_int_equal(ckpt_open(&ck, path, "auto", NULL, &err), PE_OK);
    assert_int_equal(model_init(&m, &ck, &err), PE_OK);
    text_dataset d;
    build_dataset(&d);

    pw_config pc = {0};
    pc.scheme = PW_SCHEME_HEAD_DROP; pc.ratio = 2.0; pc.keep = 0.5; pc.lambda = INFINITY; pc.members = 16;
    pc.seed = 7; pc.granularity = PW_GRAN_HEAD;
    ens_options   o = {ENS_COMBINE_PROB, 16, 0, 1, 1, 0};
    ens_lm_result r;
    assert_int_equal(ens_eval_text(&r, &m, &d, &pc, &o, &err), PE_OK);
    double dense = eval_lm_nll(&r.dense);
    printf("  dense NLL %.4f nats/token (log V = %.4f)\n", dense, log(V));
    assert_true(dense < 0.1); /* the planted circuit solves the task */
    for (int h = 0; h < NH; h++) {
        double dl = imp_slope_delta(&r.imp.head[h]), se = imp_slope_stderr(&r.imp.head[h]);
        double ab = ens_paired_mean(&r.imp.abl_head[h]), abse = ens_paired_stderr(&r.imp.abl_head[h]);
        printf("  head %d: sampled delta %+.4f ± %.4f (%lld units), ablation delta %+.4f ± %.4f\n", h, dl, se,
               (long long)r.imp.head[h].units, ab, abse);
        if (h == PLANT) {
            assert_true(dl > 1.0 && dl > 10.0 * se);
            assert_true(ab > 1.0);
        } else {
            assert_true(fabs(dl) <= 2.0 * se); /* noise heads: within two standard errors of zero */
            assert_true(fabs(ab) < 0.05 * ens_paired_mean(&r.imp.abl_head[PLANT]));
        }
    }
    /* the layer ablation contains the planted head */
    assert_true(ens_paired_mean(&r.imp.abl_layer[0]) > 1.0);
    /* attention statistics: the planted head looks one position back */
    const double *a = r.imp.att + (size_t)PLANT * (3 + r.imp.NB);
    printf("  head %d mean attention distance %.3f, mass at distance 1: %.3f\n", PLANT, a[1] / a[0], a[3 + 1] / a[0]);
    assert_true(a[3 + 1] / a[0] > 0.9);
    ens_free_lm(&r);

    /* bands: unbiased subsampling varies which distances survive; distance 1 must matter most */
    pc.scheme = PW_SCHEME_UNBIASED;
    pc.ratio = 2.0;
    o.ablation = 0;
    assert_int_equal(ens_eval_text(&r, &m, &d, &pc, &o, &err), PE_OK);
    int best = -1;
    for (int b = 0; b < r.imp.NB; b++) {
        if (!r.imp.band_units[b] || isnan(r.imp.band_delta[b])) continue;
        printf("  band %d [%d,%d]: sampled delta %+.4f ± %.4f (joint fit)\n", b, imp_band_lo(b), imp_band_hi(b),
               r.imp.band_delta[b], r.imp.band_se[b]);
        if (best < 0 || r.imp.band_delta[b] > r.imp.band_delta[best]) best = b;
    }
    assert_int_equal(best, 1);
    assert_true(r.imp.band_delta[1] > 4.0 * r.imp.band_se[1]);
    for (int b = 2; b < r.imp.NB; b++) /* no other distance carries the signal */
        if (r.imp.band_units[b]) assert_true(r.imp.band_delta[b] < 0.5 * r.imp.band_delta[1]);
    ens_free_lm(&r);
    data_free_text(&d);
    model_free(&m);
    ckpt_close(&ck);
}

static void test_bands_and_slope(void **state) {
    (void)state;
    assert_int_equal(imp_band_of(0), 0);
    assert_int_equal(imp_band_of(1), 1);
    assert_int_equal(imp_band_of(3), 2);
    assert_int_equal(imp_band_of(4), 3);
    assert_int_equal(imp_n_bands(512), 10); /* distances up to 511: bands 0..9 */
    for (int causal = 0; causal <= 1; causal++) { /* bands partition the allowed connections */
        int64_t tot = 0;
        for (int b = 0; b < imp_n_bands(37); b++) tot += imp_band_allowed(37, b, causal);
        assert_int_equal(tot, causal ? 37 * 38 / 2 : 37 * 37);
    }
    /* binary x: delta is the within-unit mean difference dropped minus kept */
    imp_slope s = {0};
    double x1[4] = {1, 0, 1, 0}, y1[4] = {1.0, 3.0, 1.2, 2.8};
    double x2[4] = {0, 1, 1, 1}, y2[4] = {5.0, 3.0, 3.1, 2.9};
    imp_slope_add_unit(&s, x1, y1, 4);
    imp_slope_add_unit(&s, x2, y2, 4);
    /* unit 1: S_xx = 1, S_xy = -1.8; unit 2: S_xx = 0.75, S_xy = -1.5 -> beta = -3.3 / 1.75 */
    assert_true(fabs(imp_slope_delta(&s) - 3.3 / 1.75) < 1e-12);
    double x3[3] = {1, 1, 1}, y3[3] = {1, 2, 3};
    imp_slope_add_unit(&s, x3, y3, 3); /* no variation: no information */
    assert_int_equal(s.units, 2);
}

/* the model of the planted test with an optional zeroed head, opened */
typedef struct {
    ckpt_file    ck;
    model        m;
    text_dataset d;
} planted;

static void planted_open(planted *p, const char *tag, int zero_head) {
    const char *dir = tu_tmp_dir(tag);
    build_planted_model_z(dir, zero_head);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    pe_err err = {0};
    assert_int_equal(ckpt_open(&p->ck, path, "auto", NULL, &err), PE_OK);
    assert_int_equal(model_init(&p->m, &p->ck, &err), PE_OK);
    build_dataset(&p->d);
}

static void planted_close(planted *p) {
    data_free_text(&p->d);
    model_free(&p->m);
    ckpt_close(&p->ck);
}

/* the 95% interval of p contains v (up to float rounding of the per-unit losses: 1e-9 relative) */
static int covers(const ens_paired *p, double v) {
    double d = ens_paired_mean(p), se = ens_paired_stderr(p);
    return fabs(v - d) <= 1.96 * se + 1e-9 * fmax(1.0, fabs(v));
}

/* Drop-one passes (importance.units) against the planted truth and the ablations of every head,
 * layer and band: head 2 first and far from 0, the others near 0 (they write where the LM head does
 * not read; only the final norm feels them), every interval containing its own ablation value;
 * band 1 first; at most half the passes of the ablations. */
static void test_drop_one_planted(void **state) {
    (void)state;
    planted p;
    planted_open(&p, "planted_drop", -1);
    pe_err    err = {0};
    pw_config pc = {0};
    pc.scheme = PW_SCHEME_LOCAL; pc.ratio = 2.0; pc.sigma = 2.0; pc.lambda = INFINITY; pc.members = 2; pc.seed = 7;
    ens_options   o = {ENS_COMBINE_PROB, 16, 0, 1, 2, 120};
    ens_lm_result r;
    assert_int_equal(ens_eval_text(&r, &p.m, &p.d, &pc, &o, &err), PE_OK);
    const imp_design *dg = &r.imp.design;
    assert_true(r.imp.has_drop && r.imp.has_band_ablation);
    /* 4 heads; 1 layer + bands 1..4 (16 positions, causal): 2 + 2 passes, each head on 120 of 240 units */
    assert_int_equal(dg->C_h, NH);
    assert_int_equal(dg->C_r, 1 + 4);
    assert_int_equal(dg->M_h, 2);
    assert_int_equal(dg->M_r, 2);
    assert_true(2 * dg->M_h <= dg->C_h && 2 * dg->M_r <= dg->C_r);
    for (int h = 0; h < NH; h++) {
        const ens_paired *s = &r.imp.drop[h], *a = &r.imp.abl_head[h];
        printf("  head %d: drop-one %+.3e ± %.1e (%lld units), ablation %+.3e ± %.1e\n", h, ens_paired_mean(s),
               ens_paired_stderr(s), (long long)s->units, ens_paired_mean(a), ens_paired_stderr(a));
        assert_true(s->units >= 119 && s->units <= 121); /* N M / C = 240 * 2 / 4 */
        if (h == PLANT) assert_true(ens_paired_mean(s) > 1.0 && ens_paired_mean(s) > 10.0 * ens_paired_stderr(s));
        else assert_true(fabs(ens_paired_mean(s)) < 0.01 * ens_paired_mean(&r.imp.drop[PLANT])); /* noise heads: ~0 */
        assert_true(covers(s, ens_paired_mean(a))); /* the interval holds the ablation of all 240 units */
    }
    int best = -1;
    for (int b = 1; b < r.imp.NB; b++) {
        int c = imp_design_band_component(dg, 0, b);
        const ens_paired *s = &r.imp.drop[c], *a = &r.imp.abl_band[b];
        printf("  band %d [%d,%d]: drop-one %+.4f ± %.4f, ablation %+.4f ± %.4f\n", b, imp_band_lo(b), imp_band_hi(b),
               ens_paired_mean(s), ens_paired_stderr(s), ens_paired_mean(a), ens_paired_stderr(a));
        if (best < 0 || ens_paired_mean(s) > ens_paired_mean(&r.imp.drop[imp_design_band_component(dg, 0, best)])) best = b;
        assert_true(covers(s, ens_paired_mean(a)));
    }
    assert_int_equal(best, 1);
    assert_int_equal(imp_design_band_component(dg, 0, 0), -1); /* causal: distance 0 always stays */
    /* the layer: dropping all of its attention is dropping the planted head and more */
    assert_true(ens_paired_mean(&r.imp.drop[dg->C_h]) > 1.0);
    /* the same bytes for another batch size (the design is keyed by the unit, never the batch) */
    ens_lm_result r5;
    o.batch = 5;
    assert_int_equal(ens_eval_text(&r5, &p.m, &p.d, &pc, &o, &err), PE_OK);
    assert_memory_equal(r5.imp.drop, r.imp.drop, sizeof(ens_paired) * (size_t)imp_design_components(dg));
    assert_memory_equal(r5.imp.abl_band, r.imp.abl_band, sizeof(ens_paired) * (size_t)r.imp.NB);
    ens_free_lm(&r5);
    ens_free_lm(&r);
    planted_close(&p);
}

/* Planted truth: a head whose output projection is zero changes nothing. Its ablation is exactly 0
 * and the drop-one interval contains 0. */
static void test_zeroed_head(void **state) {
    (void)state;
    planted p;
    planted_open(&p, "planted_zero", 1);
    pe_err    err = {0};
    pw_config pc = {0};
    pc.scheme = PW_SCHEME_UNBIASED; pc.ratio = 2.0; pc.lambda = INFINITY; pc.members = 2; pc.seed = 3;
    ens_options   o = {ENS_COMBINE_PROB, 16, 0, 1, 1, 120};
    ens_lm_result r;
    assert_int_equal(ens_eval_text(&r, &p.m, &p.d, &pc, &o, &err), PE_OK);
    const ens_paired *a = &r.imp.abl_head[1], *s = &r.imp.drop[1];
    double sd = ens_paired_mean(s), se = ens_paired_stderr(s);
    printf("  zeroed head 1: ablation %+.17g, drop-one %+.6f, 95%% interval [%+.6f, %+.6f] over %lld units\n",
           ens_paired_mean(a), sd, sd - 1.96 * se, sd + 1.96 * se, (long long)s->units);
    assert_true(ens_paired_mean(a) == 0.0 && a->sum_d2 == 0.0); /* exactly 0 on every unit */
    assert_true(s->units > 0 && sd - 1.96 * se <= 0.0 && 0.0 <= sd + 1.96 * se);
    /* the noise heads that do write are not exactly 0 (the test can tell) */
    assert_true(ens_paired_mean(&r.imp.abl_head[0]) != 0.0);
    ens_free_lm(&r);
    planted_close(&p);
}

/* the design: each unit's components of a block, the balance over units, the passes; the band draw */
static void test_design(void **state) {
    (void)state;
    imp_design d;
    imp_design_init(&d, 5, 8, 9, 1, 300, 150, 1234); /* stories260K on 300 documents */
    assert_int_equal(d.C_h, 40);
    assert_int_equal(d.C_r, 5 + 5 * 8);
    assert_int_equal(d.M_h, 20);
    assert_int_equal(d.M_r, 22);
    int count[85] = {0};
    for (int64_t u = 0; u < 300; u++)
        for (int m = 0; m < d.M_h + d.M_r; m++) {
            int c = imp_design_component(&d, m, u);
            assert_true(m < d.M_h ? (c >= 0 && c < 40) : (c >= 40 && c < 85));
            count[c]++;
        }
    for (int c = 0; c < 40; c++) assert_true(count[c] >= 149 && count[c] <= 151); /* 300 * 20 / 40 */
    for (int c = 40; c < 85; c++) assert_true(count[c] >= 146 && count[c] <= 148); /* 300 * 22 / 45 */
    imp_design_init(&d, 5, 8, 9, 1, 4303, 150, 1234);  /* many units: fewer passes */
    assert_int_equal(d.M_h, 2);
    imp_design_init(&d, 1, 1, 2, 1, 300, 150, 1); /* one component: half a pass is none */
    assert_int_equal(d.M_h, 0);
    imp_design_init(&d, 5, 8, 9, 1, 300, 0, 1);
    assert_int_equal(d.M_h + d.M_r, 0);
    /* dropping band 2 (distances 2..3) of layer 1, causal and bidirectional */
    imp_design_init(&d, 2, 2, 4, 0, 10, 5, 1);
    pw_sample s;
    pe_err    err = {0};
    assert_int_equal(pw_sample_init(&s, 8, &err), PE_OK);
    for (int causal = 0; causal <= 1; causal++) {
        imp_design_init(&d, 2, 2, 4, causal, 10, 5, 1);
        imp_drop dr = {&d, imp_design_band_component(&d, 1, 2), 0, 0, 0, 0};
        assert_int_equal(imp_drop_draw(&dr, &s, 0, 0, 1, 0, 8, causal), 0); /* another layer: untouched */
        assert_int_equal(imp_drop_draw(&dr, &s, 0, 1, 1, 0, 8, causal), 1);
        uint8_t mask[64];
        pw_mask_dense(&s, mask);
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 8; j++) {
                int dist = abs(i - j), want = (!causal || j <= i) && !(dist >= 2 && dist <= 3);
                assert_int_equal(mask[i * 8 + j], want);
            }
        dr.fixed = 1; /* head 1 of layer 0 */
        assert_int_equal(imp_drop_draw(&dr, &s, 0, 0, 1, 0, 8, causal), 1);
        assert_int_equal(s.kind, PW_SAMPLE_NONE);
        assert_int_equal(imp_drop_draw(&dr, &s, 0, 0, 0, 0, 8, causal), 0);
    }
    /* the drop hook walks the design once per (member, unit) and answers every (layer, head) of that unit from it:
     * the same component as imp_design_component, whatever order the units and members come in */
    imp_design_init(&d, 5, 8, 9, 1, 300, 150, 1234);
    imp_drop dd = {&d, -1, 0, 0, 0, 0};
    for (int rep = 0; rep < 2; rep++)
        for (int64_t u0 = 0; u0 < 300; u0 += 7)
            for (int m = 0; m < d.M_h; m++) {
                int64_t u = rep ? 299 - u0 : u0;
                int     c = imp_design_component(&d, m, u);
                for (int h = 0; h < 40; h++)
                    assert_int_equal(imp_drop_draw(&dd, &s, m, h / 8, h % 8, u, 8, 1), h == c);
            }
    pw_sample_free(&s);
    /* Spearman: ties get average ranks; NaN pairs are left out */
    double a[6] = {1, 2, 3, 4, 5, NAN}, b[6] = {10, 20, 30, 40, 50, 1}, c[5] = {5, 4, 3, 2, 1}, e[4] = {1, 1, 2, 3};
    int    n;
    assert_true(fabs(imp_spearman(a, b, 6, &n) - 1.0) < 1e-12 && n == 5);
    assert_true(fabs(imp_spearman(a, c, 5, &n) + 1.0) < 1e-12);
    double f[4] = {1, 2, 3, 4};
    assert_true(fabs(imp_spearman(e, f, 4, &n) - 0.9486832980505138) < 1e-12); /* ranks 1.5 1.5 3 4 */
    assert_true(isnan(imp_spearman(a, b, 2, &n)));
}

/* one evaluation of the planted model under pc (K members, per-unit values kept); the kept fraction of
 * the attention connections averaged over the members */
static double planted_eval(ens_lm_result *r, const model *m, const text_dataset *d, const pw_config *pc) {
    pe_err       err = {0};
    ens_options  o   = {ENS_COMBINE_PROB, 16, 1, 0, 0, 0};
    assert_int_equal(ens_eval_text(r, m, d, pc, &o, &err), PE_OK);
    int64_t kept = 0, all = 0;
    for (size_t i = 0; i < (size_t)r->K * r->L * NH; i++) kept += r->kept[i], all += r->allowed[i]; /* one layer */
    return (double)kept / (double)all;
}

/* pathens prune --evaluate's chance baseline on the planted model: a plan that keeps the signal head (2) with
 * a window of 2 keys beats unbiased random sub-models at its attention FLOPs; a plan built from a wrong ranking
 * (the three noise heads, whole) loses to them; the paired arithmetic of plan_paired on known numbers */
static void test_plan_against_chance(void **state) {
    (void)state;
    /* the estimator: 3 units, weights 1, 2, 1 */
    plan_paired acc = {0};
    plan_paired_add(&acc, 1.0, 2.0, 1.0);
    plan_paired_add(&acc, 2.0, 4.5, 2.0);
    plan_paired_add(&acc, 1.5, 2.0, 1.0);
    plan_vs_chance v;
    plan_paired_finish(&acc, &v);
    assert_true(fabs(v.value - 4.5 / 4) < 1e-15 && fabs(v.chance - 8.5 / 4) < 1e-15 && fabs(v.diff + 1.0) < 1e-15);
    /* d = -1, -2.5, -0.5; r = -1: residuals 0, -0.5, 0.5 -> se = sqrt(3/2 * 0.5) / 4 */
    assert_true(fabs(v.diff_se - sqrt(1.5 * 0.5) / 4) < 1e-15);
    assert_int_equal(v.verdict, v.diff_hi < 0 ? PLAN_BEAT_CHANCE : PLAN_INDISTINGUISHABLE);

    const char *dir = tu_tmp_dir("planted_chance");
    build_planted_model(dir);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    pe_err    err = {0};
    ckpt_file ck;
    model     m;
    assert_int_equal(ckpt_open(&ck, path, "auto", NULL, &err), PE_OK);
    assert_int_equal(model_init(&m, &ck, &err), PE_OK);
    text_dataset d;
    build_dataset(&d);
    uint8_t   keep_good[NH] = {0, 0, 1, 0}, keep_bad[NH] = {1, 1, 0, 1};
    int       win_good[NH] = {0, 0, 2, 0}, win_bad[NH] = {0, 0, 0, 0};
    for (int which = 0; which < 2; which++) {
        pw_config pc = {0};
        pc.scheme = PW_SCHEME_PLAN; pc.ratio = 1.0; pc.lambda = INFINITY; pc.members = 1; pc.seed = 7;
        pc.granularity = PW_GRAN_HEAD; pc.n_heads = NH;
        pc.head_keep = which ? keep_bad : keep_good;
        pc.head_window = which ? win_bad : win_good;
        ens_lm_result rp, rc;
        double fplan = planted_eval(&rp, &m, &d, &pc);
        pw_config cc = {0};
        cc.scheme = PW_SCHEME_UNBIASED; cc.ratio = 1.0 / fplan; cc.lambda = INFINITY; cc.members = 4; cc.seed = 7;
        cc.granularity = PW_GRAN_HEAD;
        double fch = planted_eval(&rc, &m, &d, &cc);
        size_t pl = 0, cl = 0;
        const void *pb = ens_per_example_data(rp.per_example, &pl), *cb = ens_per_example_data(rc.per_example, &cl);
        assert_int_equal(plan_compare_per_example(&v, pb, pl, cb, cl, 1, &err), PE_OK);
        printf("  plan keeping %s: NLL %.4f at %.3f of dense attention FLOPs; 4 unbiased sub-models (ratio %.2f) %.4f "
               "at %.3f; plan - chance %+.4f [%+.4f, %+.4f] (%lld units): %s\n",
               which ? "heads 0, 1, 3" : "head 2 (window 2)", v.value, fplan, cc.ratio, v.chance, fch, v.diff,
               v.diff_lo, v.diff_hi, (long long)v.units, plan_verdict_name(v.verdict));
        assert_int_equal(v.units, NDOC);
        assert_true(fabs(v.value - eval_lm_nll(&rp.member[0])) < 1e-12); /* the same numbers as results.json's */
        assert_true(fabs(v.chance - eval_lm_nll(&rc.member_mean)) < 1e-12);
        /* ratio 1/f keeps about f, plus the diagonal a causal query always keeps (on 16 positions: most of it at
         * ratio 17.6): chance never gets fewer FLOPs than the plan */
        assert_true(fch > fplan - 0.02);
        assert_int_equal(v.verdict, which ? PLAN_LOST_TO_CHANCE : PLAN_BEAT_CHANCE);
        /* another set of units is refused */
        if (!which) {
            assert_int_equal(plan_compare_per_example(&v, pb, pl, cb, cl / 2, 1, &err), PE_ERR_INPUT);
        }
        ens_free_lm(&rp);
        ens_free_lm(&rc);
    }
    data_free_text(&d);
    model_free(&m);
    ckpt_close(&ck);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_design),
        cmocka_unit_test(test_drop_one_planted),
        cmocka_unit_test(test_zeroed_head),
        cmocka_unit_test(test_bands_and_slope),
        cmocka_unit_test(test_planted_head),
        cmocka_unit_test(test_plan_against_chance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
