/* hf_logits.c: the logits pathens computes for a Hugging Face model folder, for the oracle test
 * (tests/cli_hf_models.sh against tests/hf_oracle.py's independent PyTorch forward).
 *
 *   hf_logits tokens MODEL_DIR SEQS.txt OUT.f32 [--ref]
 *       SEQS.txt: one sequence per line, token ids separated by spaces (empty lines skipped).
 *       OUT.f32: for each sequence in order, its (T, V) logits as float32 little-endian,
 *       concatenated (T = that sequence's length).
 *   hf_logits images MODEL_DIR PIXELS.u8 N OUT.f32 [--ref]
 *       PIXELS.u8: N images (channels, H, W) uint8 raw, H = W = config.json image_size. pathens
 *       feeds the model (x / 255 - mean) / std with image_mean / image_std of the folder's
 *       preprocessor_config.json (absent: 0.5 and 0.5, ViTImageProcessor's defaults).
 *       OUT.f32: (N, n_classes) float32 LE.
 *   --ref: every kernel is its naive reference twin (double accumulation) instead of the fast one.
 *
 * Dense forward (no pathways), one sequence / image per forward call (a sequence's numbers never
 * depend on its batch-mates anyway). MODEL_DIR may also be a model file (config.json beside it).
 * Exit 0 ok; 1 bad usage; 2 with pathens' own message when the folder (or an input) is refused;
 * 3 internal error. Links pathens_core only. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "model.h"

static int usage(void) {
    fprintf(stderr, "usage: hf_logits tokens MODEL_DIR SEQS.txt OUT.f32 [--ref]\n"
                    "       hf_logits images MODEL_DIR PIXELS.u8 N OUT.f32 [--ref]\n");
    return 1;
}

static int fail(const pe_err *err) {
    fprintf(stderr, "hf_logits: error: %s\n", err->msg);
    return (int)err->code;
}

/* the sequences of SEQS.txt: *toks (all ids), *lens (n sequences) */
static pe_status read_seqs(const char *path, int **toks, int **lens, int *n, pe_err *err) {
    char  *text = NULL;
    size_t len  = 0;
    pe_status st = pe_read_file(path, &text, &len, err);
    if (st) return st;
    size_t cap_t = 1024, cap_s = 16, nt = 0;
    *toks = malloc(cap_t * sizeof **toks);
    *lens = malloc(cap_s * sizeof **lens);
    *n    = 0;
    if (!*toks || !*lens) {
        free(text);
        return pe_fail(err, PE_ERR_INTERNAL, "out of memory reading %s", path);
    }
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int count = 0;
        char *p = line, *end;
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == '\r') p++;
            if (!*p) break;
            errno = 0;
            long v = strtol(p, &end, 10);
            if (end == p || errno || v < 0 || v > 0x7fffffff) {
                free(text);
                return pe_fail(err, PE_ERR_INPUT, "%s: sequence %d: '%.20s' is not a token id (a non-negative integer)",
                               path, *n + 1, p);
            }
            p = end;
            if (nt == cap_t) {
                int *g = realloc(*toks, (cap_t *= 2) * sizeof **toks);
                if (!g) {
                    free(text);
                    return pe_fail(err, PE_ERR_INTERNAL, "out of memory reading %s", path);
                }
                *toks = g;
            }
            (*toks)[nt++] = (int)v;
            count++;
        }
        if (!count) continue;
        if ((size_t)*n == cap_s) {
            int *g = realloc(*lens, (cap_s *= 2) * sizeof **lens);
            if (!g) {
                free(text);
                return pe_fail(err, PE_ERR_INTERNAL, "out of memory reading %s", path);
            }
            *lens = g;
        }
        (*lens)[(*n)++] = count;
    }
    free(text);
    if (*n == 0) return pe_fail(err, PE_ERR_INPUT, "%s: no sequences (one per line, token ids separated by spaces)", path);
    return PE_OK;
}

static pe_status write_all(FILE *f, const float *x, size_t n, const char *path, pe_err *err) {
    if (fwrite(x, sizeof(float), n, f) != n) return pe_fail(err, PE_ERR_INTERNAL, "%s: write failed", path);
    return PE_OK;
}

static pe_status run_tokens(const model *m, const char *seqs, const char *out, int use_ref, pe_err *err) {
    int *toks = NULL, *lens = NULL, n = 0;
    pe_status st = read_seqs(seqs, &toks, &lens, &n, err);
    int maxT = 0;
    for (int i = 0; !st && i < n; i++) {
        if (lens[i] > m->cfg.seq_len)
            st = pe_fail(err, PE_ERR_INPUT, "%s: sequence %d has %d tokens; the model's context is %d", seqs, i + 1,
                         lens[i], m->cfg.seq_len);
        if (lens[i] > maxT) maxT = lens[i];
    }
    model_acts a;
    memset(&a, 0, sizeof a);
    float *logits = NULL;
    FILE  *f      = NULL;
    if (!st) st = model_acts_init(&a, m, 1, maxT, err);
    if (!st) {
        logits = pe_malloc((size_t)maxT * m->cfg.vocab_size * sizeof(float), err, "logits"); /* (T, V) */
        if (!logits) st = PE_ERR_INTERNAL;
    }
    if (!st && !(f = fopen(out, "wb"))) st = pe_fail(err, PE_ERR_INPUT, "%s: cannot write (%s)", out, strerror(errno));
    const int *seq = toks;
    for (int i = 0; !st && i < n; seq += lens[i], i++) {
        st = model_forward_tokens(logits, &a, m, seq, NULL, 1, lens[i], use_ref, err);
        if (!st) st = write_all(f, logits, (size_t)lens[i] * m->cfg.vocab_size, out, err);
    }
    if (f && fclose(f) && !st) st = pe_fail(err, PE_ERR_INTERNAL, "%s: write failed", out);
    model_acts_free(&a);
    free(logits);
    free(toks);
    free(lens);
    return st;
}

static pe_status run_images(const model *m, const char *pixels, int n, const char *out, int use_ref, pe_err *err) {
    const model_config *c = &m->cfg;
    if (c->input != MODEL_INPUT_PATCHES) return pe_fail(err, PE_ERR_INPUT, "hf_logits images needs an image model");
    size_t per = (size_t)c->channels * c->image_size * c->image_size;
    char  *raw = NULL;
    size_t len = 0;
    pe_status st = pe_read_file(pixels, &raw, &len, err);
    if (st) return st;
    if (len != per * (size_t)n) {
        free(raw);
        return pe_fail(err, PE_ERR_INPUT, "%s: %zu bytes, but %d images of %d x %d x %d need %zu", pixels, len, n,
                       c->channels, c->image_size, c->image_size, per * (size_t)n);
    }
    model_acts a;
    memset(&a, 0, sizeof a);
    float *logits = pe_malloc((size_t)c->n_classes * sizeof(float), err, "logits"); /* (1, NC) */
    FILE  *f      = NULL;
    if (!logits) st = PE_ERR_INTERNAL;
    if (!st) st = model_acts_init(&a, m, 1, model_image_seq_len(c), err);
    if (!st && !(f = fopen(out, "wb"))) st = pe_fail(err, PE_ERR_INPUT, "%s: cannot write (%s)", out, strerror(errno));
    for (int i = 0; !st && i < n; i++) {
        st = model_forward_images(logits, &a, m, (const uint8_t *)raw + (size_t)i * per, 1, use_ref, err);
        if (!st) st = write_all(f, logits, (size_t)c->n_classes, out, err);
    }
    if (f && fclose(f) && !st) st = pe_fail(err, PE_ERR_INTERNAL, "%s: write failed", out);
    model_acts_free(&a);
    free(logits);
    free(raw);
    return st;
}

int main(int argc, char **argv) {
    int use_ref = argc > 1 && !strcmp(argv[argc - 1], "--ref");
    int nargs   = argc - use_ref;
    if (nargs < 2) return usage();
    int images = !strcmp(argv[1], "images");
    if (!images && strcmp(argv[1], "tokens")) return usage();
    if (nargs != (images ? 6 : 5)) return usage();
    int n_images = 0;
    if (images) {
        char *end;
        long  v = strtol(argv[4], &end, 10);
        if (*end || v <= 0 || v > 1000000) {
            fprintf(stderr, "hf_logits: N '%s' must be a positive number of images\n", argv[4]);
            return 1;
        }
        n_images = (int)v;
    }
    pe_err    err = {0};
    ckpt_file ck;
    model     m;
    if (ckpt_open(&ck, argv[2], "auto", NULL, &err)) return fail(&err);
    if (model_init(&m, &ck, &err)) {
        ckpt_close(&ck);
        return fail(&err);
    }
    pe_status st = images ? run_images(&m, argv[3], n_images, argv[5], use_ref, &err)
                          : run_tokens(&m, argv[3], argv[4], use_ref, &err);
    model_free(&m);
    ckpt_close(&ck);
    return st ? fail(&err) : 0;
}
