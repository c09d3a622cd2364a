/* test_ensemble.c: invariants of pathway-sampled sub-models and their self-ensemble.
 *   - the gathered pathway attention equals its masked-dense naive twin, for every scheme;
 *   - ratio 1 equals dense bit for bit, for every scheme (text and image models);
 *   - a one-member ensemble equals that member;
 *   - the mixture NLL is at most the mean member NLL (Jensen);
 *   - the numbers do not depend on the batch size;
 *   - every causal query keeps at least one key (its own);
 *   - text and image rows split over shards x member blocks, merged in any order, reduce to the
 *     in-process evaluation's bytes.
 * The language-model tests run on a generated model and documents (no data needed) and again on
 * the real stories260K and TinyStories when data/ has them. */
#include "testutil.h"

#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "dataset.h"
#include "ensemble.h"
#include "kernels.h"
#include "model.h"
#include "tokenizer.h"

static const pw_scheme SCHEMES[] = {PW_SCHEME_DENSE, PW_SCHEME_UNBIASED, PW_SCHEME_LOCAL, PW_SCHEME_RANDOM_K,
                                    PW_SCHEME_WINDOW, PW_SCHEME_HEAD_DROP};
#define N_SCHEMES 6

static pw_config cfg_of(pw_scheme s, double ratio, int members) {
    pw_config c = {0};
    c.scheme = s;
    c.ratio = ratio;
    c.sigma = 3.0;
    c.lambda = s == PW_SCHEME_RANDOM_K ? 8.0 : INFINITY;
    c.keep = 0.0;
    c.members = members;
    c.seed = 99;
    c.granularity = PW_GRAN_HEAD;
    return c;
}

/* ---- kernel: gathered pathway attention vs the masked dense twin --------------------------- */

static void test_attention_matches_masked_twin(void **state) {
    (void)state;
    int B = 3, T = 150, NH = 4, NKV = 2, HS = 8, C = NH * HS, KVC = NKV * HS;
    int lens[3] = {150, 97, 1};
    int64_t ids[3] = {5, 17, 23};
    float *q = malloc((size_t)B * T * C * 4), *k = malloc((size_t)B * T * KVC * 4), *v = malloc((size_t)B * T * KVC * 4);
    tu_fill_random(q, (size_t)B * T * C, 1, 1.5f);
    tu_fill_random(k, (size_t)B * T * KVC, 2, 1.5f);
    tu_fill_random(v, (size_t)B * T * KVC, 3, 1.0f);
    float *o1 = malloc((size_t)B * T * C * 4), *o2 = malloc((size_t)B * T * C * 4);
    float *scratch = malloc(((size_t)T * T + T + 1) * 4), *gather = malloc(2 * (size_t)T * HS * 4);
    int   *iscr = malloc((size_t)T * sizeof(int));
    pw_sample ps;
    pe_err err = {0};
    assert_int_equal(pw_sample_init(&ps, T, &err), PE_OK);
    double ratios[3] = {1.0, 2.0, 5.0};
    for (int si = 0; si < N_SCHEMES; si++)
        for (int ri = 0; ri < 3; ri++)
            for (int causal = 0; causal <= 1; causal++) {
                pw_config c = cfg_of(SCHEMES[si], ratios[ri], 1);
                int64_t kept1[4] = {0}, all1[4] = {0}, kept2[4] = {0}, all2[4] = {0};
                kern_pathways p1 = {.cfg = &c, .sample = &ps, .layer = 3, .seq_ids = ids, .kept = kept1, .allowed = all1};
                kern_pathways p2 = {.cfg = &c, .sample = &ps, .layer = 3, .seq_ids = ids, .kept = kept2, .allowed = all2};
                kern_attention(o1, scratch, gather, iscr, q, k, v, lens, B, T, NH, NKV, HS, causal, &p1);
                kern_attention_ref(o2, scratch, gather, iscr, q, k, v, lens, B, T, NH, NKV, HS, causal, &p2);
                float d = tu_max_abs_diff(o1, o2, (size_t)B * T * C);
                if (!(d <= 2e-5f))
                    fail_msg("%s ratio %g %s: fast vs masked twin max diff %g", pw_scheme_name(SCHEMES[si]), ratios[ri],
                             causal ? "causal" : "bidirectional", (double)d);
                assert_memory_equal(kept1, kept2, sizeof kept1);
                assert_memory_equal(all1, all2, sizeof all1);
                if (causal && SCHEMES[si] != PW_SCHEME_HEAD_DROP) /* >= 1 key per query: its own */
                    for (int h = 0; h < NH; h++) assert_true(kept1[h] >= 150 + 97 + 1);
            }
    pw_sample_free(&ps);
    free(q); free(k); free(v); free(o1); free(o2); free(scratch); free(gather); free(iscr);
}

/* ---- real model fixtures -------------------------------------------------------------------- */

typedef tu_stories fixture;

static int setup(void **state) {
    *state = tu_stories_open(24);
    return 0;
}

/* the same tests without data: a random model of stories260K's shape on generated documents */
static int setup_generated(void **state) {
    *state = tu_lm_fixture_open("ens_lm", 12, 21);
    return 0;
}

static int teardown(void **state) {
    tu_stories_close(*state);
    return 0;
}

static void test_ratio_one_is_dense_bitwise(void **state) {
    fixture *f = *state;
    pe_err   err = {0};
    int B = 4, T = 0, lens[4];
    int64_t ids[4];
    for (int b = 0; b < B; b++) {
        lens[b] = f->d.seqs[b].len;
        ids[b] = f->d.seqs[b].doc_id;
        T = lens[b] > T ? lens[b] : T;
    }
    int *tok = calloc((size_t)B * T, sizeof(int));
    for (int b = 0; b < B; b++) memcpy(tok + (size_t)b * T, f->d.tokens + f->d.seqs[b].start, (size_t)lens[b] * sizeof(int));
    model_acts a;
    assert_int_equal(model_acts_init(&a, &f->m, B, T, &err), PE_OK);
    size_t n = (size_t)B * T * 512;
    float *dense = calloc(n, 4), *sub = calloc(n, 4);
    assert_int_equal(model_forward_tokens_pw(dense, &a, &f->m, tok, lens, B, T, NULL, 0, &err), PE_OK);
    for (int si = 0; si < N_SCHEMES; si++)
        for (int g = 0; g < 3; g++) {
            pw_config c = cfg_of(SCHEMES[si], 1.0, 1);
            c.granularity = (pw_granularity)g;
            model_pathways pw = {.cfg = &c, .member = 0, .seq_ids = ids};
            memset(sub, 0, n * 4);
            assert_int_equal(model_forward_tokens_pw(sub, &a, &f->m, tok, lens, B, T, &pw, 0, &err), PE_OK);
            for (int b = 0; b < B; b++) /* valid positions, bit for bit */
                if (memcmp(dense + (size_t)b * T * 512, sub + (size_t)b * T * 512, (size_t)lens[b] * 512 * 4) != 0)
                    fail_msg("scheme %s granularity %d: ratio 1 logits differ from dense", pw_scheme_name(SCHEMES[si]), g);
        }
    free(dense); free(sub); free(tok);
    model_acts_free(&a);
}

static void test_image_ratio_one_is_dense(void **state) {
    (void)state;
    model_config c = {0};
    c.dim = 16; c.hidden_dim = 32; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 4; c.seq_len = 17;
    c.norm = MODEL_NORM_LAYERNORM; c.norm_eps = 1e-5f; c.pos = MODEL_POS_LEARNED; c.mlp = MODEL_MLP_GELU;
    c.causal = 0; c.bias = 1; c.head = MODEL_HEAD_CLS_TOKEN; c.n_classes = 10; c.input = MODEL_INPUT_PATCHES;
    c.image_size = 28; c.patch_size = 7; c.channels = 1; c.pixel_mean = 0.28f; c.pixel_std = 0.35f;
    const char *dir = tu_tmp_dir("ens_vit");
    assert_int_equal(tu_write_random_model(&c, dir, 7), 0);
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    pe_err err = {0};
    ckpt_file ck;
    model m;
    assert_int_equal(ckpt_open(&ck, path, "auto", NULL, &err), PE_OK);
    assert_int_equal(model_init(&m, &ck, &err), PE_OK);
    uint8_t px[3 * 28 * 28];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)((i * 37u + i / 28) & 0xff);
    model_acts a;
    assert_int_equal(model_acts_init(&a, &m, 3, 17, &err), PE_OK);
    float dense[30], sub[30];
    int64_t ids[3] = {0, 1, 2};
    assert_int_equal(model_forward_images_pw(dense, &a, &m, px, 3, NULL, 0, &err), PE_OK);
    for (int si = 0; si < N_SCHEMES; si++) {
        pw_config pc = cfg_of(SCHEMES[si], 1.0, 1);
        model_pathways pw = {.cfg = &pc, .member = 0, .seq_ids = ids};
        assert_int_equal(model_forward_images_pw(sub, &a, &m, px, 3, &pw, 0, &err), PE_OK);
        assert_memory_equal(dense, sub, sizeof dense);
        pc.ratio = 4.0; /* and a real sample differs */
        assert_int_equal(model_forward_images_pw(sub, &a, &m, px, 3, &pw, 0, &err), PE_OK);
        if (SCHEMES[si] != PW_SCHEME_DENSE) assert_true(memcmp(dense, sub, sizeof dense) != 0);
    }
    model_acts_free(&a);
    model_free(&m);
    ckpt_close(&ck);
}

static void test_one_member_is_member(void **state) {
    fixture *f = *state;
    pe_err   err = {0};
    for (int comb = 0; comb <= 1; comb++) {
        pw_config c = cfg_of(PW_SCHEME_LOCAL, 4.0, 1);
        ens_lm_result r;
        assert_int_equal(ens_eval_text(&r, &f->m, &f->d, &c, &(ens_options){(ens_combine)comb, 8, 0, 0, 0, 0}, &err), PE_OK);
        assert_true(r.ensemble.sum_nll == r.member[0].sum_nll);
        assert_true(r.ensemble.sum_a2 == r.member[0].sum_a2);
        assert_true(r.curve[0].sum_nll == r.member[0].sum_nll);
        assert_true(r.member[0].sum_nll != r.dense.sum_nll);
        ens_free_lm(&r);
    }
}

static void test_mixture_beats_mean_member(void **state) {
    fixture *f = *state;
    pe_err   err = {0};
    pw_scheme sch[3] = {PW_SCHEME_UNBIASED, PW_SCHEME_LOCAL, PW_SCHEME_HEAD_DROP};
    for (int i = 0; i < 3; i++) {
        pw_config c = cfg_of(sch[i], 4.0, 4);
        ens_lm_result r;
        assert_int_equal(ens_eval_text(&r, &f->m, &f->d, &c, &(ens_options){ENS_COMBINE_PROB, 8, 0, 1, 0, 0}, &err), PE_OK);
        double mean = 0.0;
        for (int k = 0; k < 4; k++) mean += r.member[k].sum_nll / 4.0;
        printf("  %-10s ratio 4: dense %.4f, mean member %.4f, mixture of 4 %.4f nats/token\n", pw_scheme_name(sch[i]),
               eval_lm_nll(&r.dense), mean / (double)r.dense.tokens, eval_lm_nll(&r.ensemble));
        assert_true(r.ensemble.sum_nll <= mean + 1e-9 * fabs(mean));          /* Jensen, per token, summed */
        assert_true(fabs(r.member_mean.sum_nll - mean) <= 1e-9 * fabs(mean)); /* member_mean is that mean */
        ens_free_lm(&r);
    }
}

static void test_batch_size_invariance(void **state) {
    fixture *f = *state;
    pe_err   err = {0};
    pw_scheme sch[3] = {PW_SCHEME_UNBIASED, PW_SCHEME_RANDOM_K, PW_SCHEME_LOCAL};
    for (int i = 0; i < 3; i++) {
        pw_config c = cfg_of(sch[i], 3.0, 3);
        ens_lm_result r1, r7;
        assert_int_equal(ens_eval_text(&r1, &f->m, &f->d, &c, &(ens_options){ENS_COMBINE_PROB, 1, 1, 1, 0, 0}, &err), PE_OK);
        assert_int_equal(ens_eval_text(&r7, &f->m, &f->d, &c, &(ens_options){ENS_COMBINE_PROB, 7, 1, 1, 0, 0}, &err), PE_OK);
        assert_memory_equal(&r1.dense, &r7.dense, sizeof r1.dense);
        assert_memory_equal(&r1.ensemble, &r7.ensemble, sizeof r1.ensemble);
        assert_memory_equal(r1.member, r7.member, 3 * sizeof *r1.member);
        assert_memory_equal(r1.kl, r7.kl, 3 * sizeof *r1.kl);
        size_t LH = (size_t)r1.L * r1.NH;
        assert_memory_equal(r1.kept, r7.kept, 3 * LH * sizeof *r1.kept); /* same masks */
        assert_memory_equal(r1.imp.head, r7.imp.head, LH * sizeof *r1.imp.head); /* same importance sums */
        assert_memory_equal(r1.imp.att, r7.imp.att, LH * (3 + (size_t)r1.imp.NB) * sizeof *r1.imp.att);
        size_t n1, n7;
        const void *b1 = ens_per_example_data(r1.per_example, &n1), *b7 = ens_per_example_data(r7.per_example, &n7);
        assert_int_equal(n1, n7);
        assert_memory_equal(b1, b7, n1);
        /* the per-example MessagePack parses and holds one record per document */
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        assert_int_equal(msgpack_unpack_next(&up, b1, n1, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(up.data.type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(up.data.via.array.size, (uint32_t)f->d.n_seqs);
        msgpack_unpacked_destroy(&up);
        ens_free_lm(&r1);
        ens_free_lm(&r7);
    }
}

/* the distributed pieces: rows of (shard, member block) tasks, packed, unpacked, merged in a
 * scrambled order and reduced, give exactly the in-process evaluation */
static void test_split_rows_merge(void **state) {
    fixture *f = *state;
    pe_err   err = {0};
    pw_config c = cfg_of(PW_SCHEME_UNBIASED, 3.0, 5);
    ens_options o = {ENS_COMBINE_PROB, 4, 1, 1, 1, 0};
    ens_lm_result ref, got;
    assert_int_equal(ens_eval_text(&ref, &f->m, &f->d, &c, &o, &err), PE_OK);
    ens_rows *all = ens_rows_new(&f->m, &f->d, &c, &o, 0, f->d.n_seqs, &err);
    assert_non_null(all);
    int shard = 5, block = 2, n_sh = (f->d.n_seqs + shard - 1) / shard, n_bl = 3, n_tasks = n_sh * n_bl;
    for (int i = 0; i < n_tasks; i++) {
        int t = (i * 7 + 3) % n_tasks; /* a scrambled finishing order (7 is coprime to n_tasks here) */
        int s0 = t / n_bl * shard, n = f->d.n_seqs - s0 < shard ? f->d.n_seqs - s0 : shard;
        int k0 = t % n_bl * block, kb = 5 - k0 < block ? 5 - k0 : block;
        ens_rows *rw = ens_rows_new_block(&f->m, &f->d, &c, &o, s0, n, k0, kb, &err);
        assert_non_null(rw);
        assert_int_equal(ens_text_rows_run(rw, &f->m, &f->d, &c, &o, &err), PE_OK);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        ens_rows_pack(rw, &pk);
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(ens_rows_merge(all, &up.data, &err), PE_OK);
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
        ens_rows_free(rw);
    }
    assert_int_equal(n_tasks % 7 != 0, 1);
    assert_int_equal(ens_text_reduce(&got, all, &f->d, &o, &err), PE_OK);
    assert_memory_equal(&got.dense, &ref.dense, sizeof ref.dense);
    assert_memory_equal(&got.ensemble, &ref.ensemble, sizeof ref.ensemble);
    assert_memory_equal(got.member, ref.member, 5 * sizeof *ref.member);
    assert_memory_equal(got.curve, ref.curve, 5 * sizeof *ref.curve);
    assert_memory_equal(got.kl, ref.kl, 5 * sizeof *ref.kl);
    size_t LH = (size_t)ref.L * ref.NH, n1, n2;
    assert_memory_equal(got.kept, ref.kept, 5 * LH * sizeof *ref.kept);
    assert_memory_equal(got.imp.head, ref.imp.head, LH * sizeof *ref.imp.head);
    assert_memory_equal(got.imp.abl_head, ref.imp.abl_head, LH * sizeof *ref.imp.abl_head);
    const void *b1 = ens_per_example_data(ref.per_example, &n1), *b2 = ens_per_example_data(got.per_example, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    /* a record that does not fit is refused and changes nothing */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    msgpack_pack_str_with_body(&pk, "u0", 2);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_str_with_body(&pk, "n", 1);
    msgpack_pack_int(&pk, 2);
    msgpack_pack_str_with_body(&pk, "k0", 2);
    msgpack_pack_int(&pk, 4);
    msgpack_pack_str_with_body(&pk, "kb", 2);
    msgpack_pack_int(&pk, 3); /* members 4..6 of 5 */
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_next(&up, sb.data, sb.size, &off);
    assert_int_equal(ens_rows_merge(all, &up.data, &err), PE_ERR_INPUT);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    ens_free_lm(&ref);
    ens_free_lm(&got);
    ens_rows_free(all);
}

/* images: the distributed pieces (image shards x member blocks, packed, unpacked, merged in a
 * scrambled order) give exactly ens_eval_images, and no number depends on the batch size (both
 * combinations; the logit sums are per batch) -- a random ViT on real Fashion-MNIST images */
static void cls_results_equal(const ens_cls_result *a, const ens_cls_result *b) {
    size_t K = (size_t)a->K, LH = (size_t)a->L * a->NH, n1, n2;
    assert_int_equal(a->K, b->K);
    assert_memory_equal(&a->dense, &b->dense, sizeof a->dense);
    assert_memory_equal(&a->ensemble, &b->ensemble, sizeof a->ensemble);
    assert_memory_equal(&a->dense_cal, &b->dense_cal, sizeof a->dense_cal);
    assert_memory_equal(&a->ensemble_cal, &b->ensemble_cal, sizeof a->ensemble_cal);
    assert_memory_equal(&a->diff_nll, &b->diff_nll, sizeof a->diff_nll);
    assert_memory_equal(&a->diff_acc, &b->diff_acc, sizeof a->diff_acc);
    assert_memory_equal(a->member, b->member, K * sizeof *a->member);
    assert_memory_equal(a->curve, b->curve, K * sizeof *a->curve);
    assert_memory_equal(a->member_cal, b->member_cal, K * sizeof *a->member_cal);
    assert_memory_equal(a->kl, b->kl, K * sizeof *a->kl);
    assert_memory_equal(a->agree, b->agree, K * sizeof *a->agree);
    assert_memory_equal(a->kept, b->kept, K * LH * sizeof *a->kept);
    assert_true(a->queries == b->queries);
    assert_memory_equal(a->imp.head, b->imp.head, LH * sizeof *a->imp.head);
    assert_memory_equal(a->imp.att, b->imp.att, LH * (3 + (size_t)a->imp.NB) * sizeof *a->imp.att);
    assert_memory_equal(a->imp.abl_head, b->imp.abl_head, LH * sizeof *a->imp.abl_head);
    assert_memory_equal(a->imp.abl_layer, b->imp.abl_layer, (size_t)a->L * sizeof *a->imp.abl_layer);
    assert_memory_equal(a->imp.band_delta, b->imp.band_delta, (size_t)a->L * a->imp.NB * sizeof *a->imp.band_delta);
    const void *b1 = ens_per_example_data(a->per_example, &n1), *b2 = ens_per_example_data(b->per_example, &n2);
    assert_int_equal(n1, n2);
    if (n1) assert_memory_equal(b1, b2, n1);
}

static void test_image_split_rows_merge(void **state) {
    (void)state;
    model_config mc = {0};
    mc.dim = 16; mc.hidden_dim = 32; mc.n_layers = 2; mc.n_heads = 4; mc.n_kv_heads = 4; mc.seq_len = 17;
    mc.norm = MODEL_NORM_LAYERNORM; mc.norm_eps = 1e-5f; mc.pos = MODEL_POS_LEARNED; mc.mlp = MODEL_MLP_GELU;
    mc.causal = 0; mc.bias = 1; mc.head = MODEL_HEAD_CLS_TOKEN; mc.n_classes = 10; mc.input = MODEL_INPUT_PATCHES;
    mc.image_size = 28; mc.patch_size = 7; mc.channels = 1; mc.pixel_mean = 0.28f; mc.pixel_std = 0.35f;
    const char *dir = tu_tmp_dir("ens_vit_rows");
    assert_int_equal(tu_write_random_model(&mc, dir, 11), 0);
    char path[4096], labels[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    pe_err err = {0};
    ckpt_file ck;
    model m;
    assert_int_equal(ckpt_open(&ck, path, "auto", NULL, &err), PE_OK);
    assert_int_equal(model_init(&m, &ck, &err), PE_OK);
    image_dataset d;
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", PATHENS_FASHION_DIR);
    snprintf(labels, sizeof labels, "%s/t10k-labels-idx1-ubyte.gz", PATHENS_FASHION_DIR);
    assert_int_equal(data_load_idx(&d, path, labels, 45, &err), PE_OK);
    const int K = 5;
    pw_config c = cfg_of(PW_SCHEME_UNBIASED, 3.0, K);
    for (int comb = 0; comb <= 1; comb++) { /* batch size: 1 and 7 give the same bytes */
        ens_options o1 = {(ens_combine)comb, 1, 1, 1, 1, 0}, o7 = {(ens_combine)comb, 7, 1, 1, 1, 0};
        ens_cls_result r1, r7;
        assert_int_equal(ens_eval_images(&r1, &m, &d, &c, &o1, &err), PE_OK);
        assert_int_equal(ens_eval_images(&r7, &m, &d, &c, &o7, &err), PE_OK);
        cls_results_equal(&r1, &r7);
        ens_free_cls(&r1);
        ens_free_cls(&r7);
    }
    ens_options o = {ENS_COMBINE_PROB, 4, 1, 1, 1, 0};
    ens_cls_result ref, got;
    assert_int_equal(ens_eval_images(&ref, &m, &d, &c, &o, &err), PE_OK);
    assert_true(ref.imp.has_sampled && ref.imp.has_attention && ref.imp.has_ablation);
    for (int block = 2; block <= K; block += K - 2) { /* split members (2 per task), then whole */
        ens_rows *all = ens_rows_new_images(&m, &d, &c, &o, 0, d.n, 0, K, &err);
        assert_non_null(all);
        int shard = 7, n_sh = (d.n + shard - 1) / shard, n_bl = (K + block - 1) / block, n_tasks = n_sh * n_bl;
        assert_true(n_tasks % 11 != 0);
        for (int i = 0; i < n_tasks; i++) {
            int t = (i * 11 + 3) % n_tasks; /* a scrambled finishing order (11 is coprime to n_tasks) */
            int s0 = t / n_bl * shard, n = d.n - s0 < shard ? d.n - s0 : shard;
            int k0 = t % n_bl * block, kb = K - k0 < block ? K - k0 : block;
            ens_rows *rw = ens_rows_new_images(&m, &d, &c, &o, s0, n, k0, kb, &err);
            assert_non_null(rw);
            assert_int_equal(ens_images_rows_run(rw, &m, &d, &c, &o, &err), PE_OK);
            msgpack_sbuffer sb;
            msgpack_sbuffer_init(&sb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            ens_rows_pack(rw, &pk);
            msgpack_unpacked up;
            msgpack_unpacked_init(&up);
            size_t off = 0;
            assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
            assert_int_equal(ens_rows_merge(all, &up.data, &err), PE_OK);
            msgpack_unpacked_destroy(&up);
            msgpack_sbuffer_destroy(&sb);
            ens_rows_free(rw);
        }
        assert_int_equal(ens_images_reduce(&got, all, &d, &o, &err), PE_OK);
        cls_results_equal(&ref, &got);
        ens_free_cls(&got);
        /* text rows are refused by the image path and the reverse */
        ens_lm_result lr;
        assert_int_equal(ens_text_reduce(&lr, all, NULL, &o, &err), PE_ERR_INTERNAL);
        ens_rows_free(all);
    }
    ens_free_cls(&ref);
    data_free_idx(&d);
    model_free(&m);
    ckpt_close(&ck);
}

#define GENERATED(f) {.name = #f " (generated model)", .test_func = f, .setup_func = setup_generated, .teardown_func = teardown}
int main(void) {
    int stories = tu_have_data(TU_STORIES_FILES, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attention_matches_masked_twin),
        cmocka_unit_test(test_image_ratio_one_is_dense),
        GENERATED(test_ratio_one_is_dense_bitwise),
        GENERATED(test_one_member_is_member),
        GENERATED(test_mixture_beats_mean_member),
        GENERATED(test_batch_size_invariance),
        GENERATED(test_split_rows_merge),
        tu_needs(stories, cmocka_unit_test_setup_teardown(test_ratio_one_is_dense_bitwise, setup, teardown)),
        tu_needs(stories, cmocka_unit_test_setup_teardown(test_one_member_is_member, setup, teardown)),
        tu_needs(stories, cmocka_unit_test_setup_teardown(test_mixture_beats_mean_member, setup, teardown)),
        tu_needs(stories, cmocka_unit_test_setup_teardown(test_batch_size_invariance, setup, teardown)),
        tu_needs(stories, cmocka_unit_test_setup_teardown(test_split_rows_merge, setup, teardown)),
        tu_needs(tu_have_fashion(), cmocka_unit_test(test_image_split_rows_merge)),
    };
    return tu_finish(cmocka_run_group_tests(tests, NULL, NULL));
}
