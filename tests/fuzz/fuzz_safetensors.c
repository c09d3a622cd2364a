/* fuzz_safetensors: safetensors checkpoints with a config.json beside them (native pathens
 * configs of GPT-, llama- and ViT-style models, Hugging Face configs and tensor names of gpt2,
 * llama, qwen3, gpt_neox and vit):
 * ckpt_open (auto-detected, and forced "safetensors"), model_init, one forward pass.
 * Input: model.safetensors FZ_SEP config.json (no separator: no config.json). */
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "fuzz_model.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_part p[2];
    int n = fz_split(data, size, p, 2);
    fz_reset();
    fz_write("model.safetensors", p[0].p, p[0].n);
    if (n > 1) fz_write("config.json", p[1].p, p[1].n);
    char path[4300];
    fz_path(path, sizeof path, "model.safetensors");
    fz_open_model(path, "auto", NULL);
    fz_open_model(path, "safetensors", "");
    if (n > 1) { /* the config parser alone: faster than a whole checkpoint, same code */
        char *text = malloc(p[1].n + 1);
        memcpy(text, p[1].p, p[1].n);
        text[p[1].n] = '\0';
        model_config cfg;
        int hf = 0;
        pe_err err = {0};
        pe_status st = ckpt_parse_config_json(&cfg, &hf, text, "config.json", &err);
        fz_check(st, &err, "ckpt_parse_config_json");
        if (!st) {
            st = model_check_config(&cfg, "config.json", &err);
            fz_check(st, &err, "model_check_config");
        }
        if (!st) free(ckpt_config_to_json(&cfg));
        free(text);
    }
    return 0;
}
