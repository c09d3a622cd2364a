/* fuzz_model.c: fz_open_model (fuzz_model.h). */
#include "fuzz_model.h"

#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "fuzz_util.h"
#include "model.h"

void fz_open_model(const char *path, const char *format, const char *config_path) {
    ckpt_file ck;
    pe_err    err = {0};
    pe_status st = ckpt_open(&ck, path, format, config_path, &err);
    fz_check(st, &err, "ckpt_open");
    if (st) return;
    model m;
    memset(&m, 0, sizeof m);
    st = model_init(&m, &ck, &err);
    fz_check(st, &err, "model_init");
    if (!st) {
        char desc[512];
        model_describe(&m, desc, sizeof desc);
        model_acts a;
        memset(&a, 0, sizeof a);
        const model_config *c = &m.cfg;
        if (c->input == MODEL_INPUT_TOKENS) {
            int T = c->seq_len < 2 ? c->seq_len : 2;
            int tokens[2] = {0, c->vocab_size > 1 ? 1 : 0};
            float *logits = malloc(sizeof(float) * (size_t)(T > 0 ? T : 1) * (size_t)(c->vocab_size > 0 ? c->vocab_size : 1));
            st = model_acts_init(&a, &m, 1, T, &err);
            fz_check(st, &err, "model_acts_init");
            if (!st && logits) {
                st = model_forward_tokens(logits, &a, &m, tokens, NULL, 1, T, 0, &err);
                fz_check(st, &err, "model_forward_tokens");
            }
            free(logits);
        } else {
            size_t npix = (size_t)c->channels * (size_t)c->image_size * (size_t)c->image_size;
            uint8_t *pix = calloc(npix ? npix : 1, 1);
            float *logits = malloc(sizeof(float) * (size_t)(c->n_classes > 0 ? c->n_classes : 1));
            st = model_acts_init(&a, &m, 1, model_image_seq_len(c), &err);
            fz_check(st, &err, "model_acts_init");
            if (!st && pix && logits) {
                st = model_forward_images(logits, &a, &m, pix, 1, 0, &err);
                fz_check(st, &err, "model_forward_images");
            }
            free(pix);
            free(logits);
        }
        model_acts_free(&a);
        model_free(&m);
    }
    ckpt_close(&ck);
}
