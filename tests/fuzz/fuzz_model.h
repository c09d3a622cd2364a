/* fuzz_model.h: open a checkpoint, bind it, run one small forward pass, free everything. */
#pragma once
#include "common.h"

/* ckpt_open(path, format, config_path) + model_init + a forward of 2 tokens or 1 image; every
 * status goes through fz_check. */
void fz_open_model(const char *path, const char *format, const char *config_path);
