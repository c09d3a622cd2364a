/* mkmodel.c: pathens_mkmodel, the writer of tiny random native models for the CLI tests.
 *
 *   pathens_mkmodel KIND OUTDIR [--seed N] [--break WHAT]
 *
 * KIND   gpt    LayerNorm + biases, learned positions, GELU-tanh, MHA, causal, tied LM head;
 *               vocab 256 (fits the byte tokenizer), seq_len 64
 *        llama  RMSNorm, RoPE, SwiGLU, GQA (4 query / 2 KV heads), causal, separate LM head;
 *               vocab 256, seq_len 64
 *        vit    28x28x1 images, 7x7 patches (16 + CLS = 17 tokens), LayerNorm + biases, learned
 *               positions, GELU, bidirectional, CLS-token head, 10 classes, Fashion-MNIST
 *               pixel mean / std (runs on Debian's dataset-fashion-mnist)
 * Writes OUTDIR/model.safetensors and OUTDIR/config.json (OUTDIR is created if missing).
 * --seed N     weights are a deterministic function of N (default 1)
 * --break WHAT writes a broken model that pathens must refuse with exit code 2:
 *        nan        layers.0.attn.wq.weight element 0 is NaN
 *        shape      layers.0.mlp.w1.weight stored with its two dims swapped (same bytes)
 *        dtype      layers.0.attn.wq.weight has dtype "I8"
 *        offset     the last tensor's data_offsets run past the end of the data
 *        truncate   model.safetensors cut to half its length
 *        configkey  config.json carries an unknown key "bogus_key"
 * Every file is checked by loading it with the library: a good model must load, a broken one
 * must be refused; the loader's message is printed ("expected error: ...").
 * Exit 0 on success, 1 on bad usage, 3 on an internal failure; errors go to stderr.
 * Links pathens_core only (no cmocka). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "model.h"
#include "testutil.h"

static const char *const BREAKS[] = {"nan", "shape", "dtype", "offset", "truncate", "configkey"};
#define N_BREAKS ((int)(sizeof BREAKS / sizeof BREAKS[0]))

static void usage(FILE *f) {
    fprintf(f,
            "usage: pathens_mkmodel KIND OUTDIR [--seed N] [--break WHAT]\n"
            "  KIND  gpt | llama | vit\n"
            "  writes OUTDIR/model.safetensors and OUTDIR/config.json of a tiny random model\n"
            "  --seed N      deterministic weights (default 1)\n"
            "  --break WHAT  nan | shape | dtype | offset | truncate | configkey: a model pathens must refuse\n");
}

static int kind_config(model_config *c, const char *kind) {
    memset(c, 0, sizeof *c);
    c->norm_eps   = 1e-5f;
    c->rope_theta = 10000.0f;
    c->pixel_std  = 1.0f;
    c->channels   = 1;
    if (!strcmp(kind, "gpt")) {
        c->dim = 32, c->hidden_dim = 128, c->n_layers = 2, c->n_heads = 4, c->n_kv_heads = 4;
        c->vocab_size = 256, c->seq_len = 64;
        c->norm = MODEL_NORM_LAYERNORM, c->pos = MODEL_POS_LEARNED, c->mlp = MODEL_MLP_GELU_TANH;
        c->causal = 1, c->bias = 1, c->head = MODEL_HEAD_LM_TIED, c->input = MODEL_INPUT_TOKENS;
    } else if (!strcmp(kind, "llama")) {
        c->dim = 32, c->hidden_dim = 96, c->n_layers = 2, c->n_heads = 4, c->n_kv_heads = 2;
        c->vocab_size = 256, c->seq_len = 64;
        c->norm = MODEL_NORM_RMSNORM, c->pos = MODEL_POS_ROPE, c->mlp = MODEL_MLP_SWIGLU;
        c->causal = 1, c->bias = 0, c->head = MODEL_HEAD_LM, c->input = MODEL_INPUT_TOKENS;
    } else if (!strcmp(kind, "vit")) {
        c->dim = 32, c->hidden_dim = 64, c->n_layers = 2, c->n_heads = 4, c->n_kv_heads = 4;
        c->seq_len = 17; /* (28/7)^2 patches + CLS */
        c->norm = MODEL_NORM_LAYERNORM, c->pos = MODEL_POS_LEARNED, c->mlp = MODEL_MLP_GELU;
        c->causal = 0, c->bias = 1, c->head = MODEL_HEAD_CLS_TOKEN, c->n_classes = 10;
        c->input = MODEL_INPUT_PATCHES, c->image_size = 28, c->patch_size = 7, c->channels = 1;
        c->pixel_mean = 0.2860f, c->pixel_std = 0.3530f; /* Fashion-MNIST training set */
    } else {
        return 0;
    }
    return 1;
}

/* ---- breaking a written model ------------------------------------------------------------ */

typedef struct {
    char          *buf;   /* the whole file */
    size_t         len;
    size_t         data0; /* 8 + header length */
    cJSON         *header;
} st_file;

static int st_read(st_file *f, const char *path) {
    pe_err err = {0};
    memset(f, 0, sizeof *f);
    if (pe_read_file(path, &f->buf, &f->len, &err) != PE_OK) {
        fprintf(stderr, "pathens_mkmodel: %s\n", err.msg);
        return 0;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0 && f->len >= 8; i--) hlen = hlen << 8 | (unsigned char)f->buf[i];
    if (f->len < 8 || hlen > f->len - 8 || !(f->header = cJSON_ParseWithLength(f->buf + 8, (size_t)hlen))) {
        fprintf(stderr, "pathens_mkmodel: %s: cannot re-read the safetensors file just written\n", path);
        return 0;
    }
    f->data0 = 8 + (size_t)hlen;
    return 1;
}

static void st_free(st_file *f) {
    cJSON_Delete(f->header);
    free(f->buf);
}

/* write the (edited) header, padded to 8 bytes, followed by the unchanged data section */
static int st_write(const st_file *f, const char *path) {
    char *h = cJSON_PrintUnformatted(f->header);
    if (!h) return 0;
    size_t hl = strlen(h), padded = (hl + 7) & ~(size_t)7, dlen = f->len - f->data0;
    char  *out = malloc(8 + padded + dlen);
    if (!out) {
        free(h);
        return 0;
    }
    for (int i = 0; i < 8; i++) out[i] = (char)(unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(out + 8, h, hl);
    memset(out + 8 + hl, ' ', padded - hl);
    memcpy(out + 8 + padded, f->buf + f->data0, dlen);
    free(h);
    pe_err    err = {0};
    pe_status st  = pe_write_file_atomic(path, out, 8 + padded + dlen, &err);
    free(out);
    if (st) fprintf(stderr, "pathens_mkmodel: %s\n", err.msg);
    return st == PE_OK;
}

static cJSON *st_tensor(const st_file *f, const char *name, const char *path) {
    cJSON *t = cJSON_GetObjectItemCaseSensitive(f->header, name);
    if (!t) fprintf(stderr, "pathens_mkmodel: %s has no tensor %s\n", path, name);
    return t;
}

static int break_model(const char *dir, const char *what) {
    char path[4200], cpath[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    pe_err err = {0};
    if (!strcmp(what, "configkey")) {
        char *text = NULL;
        if (pe_read_file(cpath, &text, NULL, &err) != PE_OK) {
            fprintf(stderr, "pathens_mkmodel: %s\n", err.msg);
            return 0;
        }
        cJSON *o = cJSON_Parse(text);
        free(text);
        if (!o) return 0;
        cJSON_AddNumberToObject(o, "bogus_key", 1);
        char *s = cJSON_Print(o);
        cJSON_Delete(o);
        pe_status st = s ? pe_write_file_atomic(cpath, s, strlen(s), &err) : PE_ERR_INTERNAL;
        free(s);
        if (st) fprintf(stderr, "pathens_mkmodel: cannot rewrite %s: %s\n", cpath, err.msg);
        return st == PE_OK;
    }
    st_file f;
    if (!st_read(&f, path)) {
        st_free(&f);
        return 0;
    }
    int ok = 0;
    if (!strcmp(what, "truncate")) {
        ok = pe_write_file_atomic(path, f.buf, f.len / 2, &err) == PE_OK;
        if (!ok) fprintf(stderr, "pathens_mkmodel: %s\n", err.msg);
    } else if (!strcmp(what, "nan")) {
        cJSON *t = st_tensor(&f, "layers.0.attn.wq.weight", path);
        if (t) {
            double begin = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "data_offsets"), 0)->valuedouble;
            uint32_t nan_bits = 0x7fc00000u;
            memcpy(f.buf + f.data0 + (size_t)begin, &nan_bits, 4);
            ok = pe_write_file_atomic(path, f.buf, f.len, &err) == PE_OK;
            if (!ok) fprintf(stderr, "pathens_mkmodel: %s\n", err.msg);
        }
    } else if (!strcmp(what, "shape")) {
        cJSON *t = st_tensor(&f, "layers.0.mlp.w1.weight", path);
        if (t) {
            cJSON *sh = cJSON_GetObjectItemCaseSensitive(t, "shape");
            double d0 = cJSON_GetArrayItem(sh, 0)->valuedouble, d1 = cJSON_GetArrayItem(sh, 1)->valuedouble;
            cJSON_ReplaceItemInArray(sh, 0, cJSON_CreateNumber(d1));
            cJSON_ReplaceItemInArray(sh, 1, cJSON_CreateNumber(d0));
            ok = st_write(&f, path);
        }
    } else if (!strcmp(what, "dtype")) {
        cJSON *t = st_tensor(&f, "layers.0.attn.wq.weight", path);
        if (t) {
            cJSON_ReplaceItemInObjectCaseSensitive(t, "dtype", cJSON_CreateString("I8"));
            ok = st_write(&f, path);
        }
    } else if (!strcmp(what, "offset")) {
        /* the tensor whose data ends last: its end moves 4 KiB past the data section */
        cJSON *it, *last = NULL;
        double last_end = -1;
        cJSON_ArrayForEach(it, f.header) {
            cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
            if (of && cJSON_GetArrayItem(of, 1)->valuedouble > last_end) {
                last_end = cJSON_GetArrayItem(of, 1)->valuedouble;
                last     = of;
            }
        }
        if (last) {
            cJSON_ReplaceItemInArray(last, 1, cJSON_CreateNumber((double)(f.len - f.data0) + 4096.0));
            ok = st_write(&f, path);
        }
    }
    st_free(&f);
    return ok;
}

static int parse_seed(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return 0;
    *out = v;
    return 1;
}

int main(int argc, char **argv) {
    const char *kind = NULL, *dir = NULL, *brk = NULL;
    uint64_t    seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--seed")) {
            if (i + 1 >= argc || !parse_seed(argv[i + 1], &seed)) {
                fprintf(stderr, "pathens_mkmodel: --seed needs a non-negative integer\n");
                return 1;
            }
            i++;
        } else if (!strcmp(argv[i], "--break")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "pathens_mkmodel: --break needs one of: nan, shape, dtype, offset, truncate, configkey\n");
                return 1;
            }
            brk = argv[++i];
            int known = 0;
            for (int b = 0; b < N_BREAKS; b++) known |= !strcmp(brk, BREAKS[b]);
            if (!known) {
                fprintf(stderr, "pathens_mkmodel: --break %s is not one of: nan, shape, dtype, offset, truncate, configkey\n", brk);
                return 1;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "pathens_mkmodel: unknown option %s\n", argv[i]);
            usage(stderr);
            return 1;
        } else if (!kind) {
            kind = argv[i];
        } else if (!dir) {
            dir = argv[i];
        } else {
            fprintf(stderr, "pathens_mkmodel: unexpected argument %s\n", argv[i]);
            usage(stderr);
            return 1;
        }
    }
    if (!kind || !dir) {
        usage(stderr);
        return 1;
    }
    model_config c;
    if (!kind_config(&c, kind)) {
        fprintf(stderr, "pathens_mkmodel: KIND %s is not one of: gpt, llama, vit\n", kind);
        return 1;
    }
    if (tu_write_random_model(&c, dir, seed) != PE_OK) return 3;
    if (brk && !break_model(dir, brk)) {
        fprintf(stderr, "pathens_mkmodel: could not write the '%s' breakage into %s\n", brk, dir);
        return 3;
    }
    /* self-check through the library: good loads, broken is refused as bad input */
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    pe_err    err = {0};
    ckpt_file ck;
    model     m;
    pe_status st = ckpt_open(&ck, path, "auto", NULL, &err);
    int64_t   n_params = 0;
    if (st == PE_OK) {
        st = model_init(&m, &ck, &err);
        if (st == PE_OK) {
            n_params = m.n_params;
            model_free(&m);
        }
        ckpt_close(&ck);
    }
    if (!brk && st != PE_OK) {
        fprintf(stderr, "pathens_mkmodel: the model just written does not load: %s\n", err.msg);
        return 3;
    }
    if (brk && st != PE_ERR_INPUT) {
        fprintf(stderr, "pathens_mkmodel: --break %s did not give a bad-input error (status %d)\n", brk, (int)st);
        return 3;
    }
    if (brk)
        printf("wrote %s (%s, seed %llu, broken: %s)\nexpected error: %s\n", dir, kind, (unsigned long long)seed, brk,
               err.msg);
    else
        printf("wrote %s (%s, seed %llu, %lld params)\n", dir, kind, (unsigned long long)seed, (long long)n_params);
    return 0;
}
