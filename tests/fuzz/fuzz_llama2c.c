/* fuzz_llama2c: llama2.c checkpoints (v0 and v1 "ak42" headers), read by ckpt_open and bound by
 * model_init, then one forward pass of two tokens.
 * Input: the model.bin bytes. */
#include <stdlib.h>

#include "ckpt.h"
#include "fuzz_model.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reset();
    fz_write("model.bin", data, size);
    char path[4300];
    fz_path(path, sizeof path, "model.bin");
    fz_open_model(path, "llama2c", NULL);
    fz_open_model(path, "auto", NULL);
    return 0;
}
