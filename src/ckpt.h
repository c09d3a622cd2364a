/* ckpt.h: checkpoint files as a directory of named tensors over one read-only mmap.
 *
 * Formats (docs/formats.md):
 *   llama2c-v0   7 x int32 header (negative vocab = separate classifier), float32 arrays, legacy
 *                RoPE tables (skipped);
 *   llama2c-v1   256-byte header, magic "ak42" (uint32 0x616b3432), version 1, shared-classifier flag;
 *   safetensors  u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
 *                then the data; F32, F16, BF16. Architecture from a config.json beside it
 *                (native pathens keys, or a Hugging Face GPT-2 config).
 * llama2.c tensors get native names (model_list_tensors); HF GPT-2 names are kept as stored and
 * mapped by model_init. Every offset and size is checked against the file size before any use.
 */
#pragma once
#include "common.h"
#include "model.h"

typedef enum { CKPT_DTYPE_F32 = 0, CKPT_DTYPE_F16 = 1, CKPT_DTYPE_BF16 = 2 } ckpt_dtype;

typedef struct {
    char        name[96];
    ckpt_dtype  dtype;
    int         ndim;
    int64_t     shape[4];
    const void *data;    /* into the mapping */
    size_t      nbytes;
    int         used;    /* set by model_init when bound */
} ckpt_tensor;

typedef struct ckpt_file {
    char          path[4096];
    char          format[32];   /* llama2c-v0 | llama2c-v1 | safetensors */
    int           hf_gpt2;      /* tensor names / config are Hugging Face GPT-2 */
    void         *map;          /* read-only mapping of the whole file */
    size_t        map_size;
    int           n_tensors;
    ckpt_tensor  *tensors;      /* (n_tensors) */
    model_config  cfg;          /* architecture from the header or config.json */
} ckpt_file;

/* format: "auto" (or NULL/""), "llama2c", "safetensors". config_path: safetensors config.json
 * ("" or NULL: config.json in the model's folder). */
pe_status ckpt_open(ckpt_file *ck, const char *path, const char *format, const char *config_path,
                    pe_err *err);
void ckpt_close(ckpt_file *ck);
const ckpt_tensor *ckpt_find(const ckpt_file *ck, const char *name);
const char *ckpt_dtype_name(ckpt_dtype d);

/* Parse a config.json text (native or HF GPT-2) into cfg. *hf_gpt2 set when it was a GPT-2 one. */
pe_status ckpt_parse_config_json(model_config *cfg, int *hf_gpt2, const char *text, const char *where,
                                 pe_err *err);
/* The native config.json text for cfg (malloc'ed; caller frees). */
char *ckpt_config_to_json(const model_config *cfg);

/* Write float32 tensors as a safetensors file, atomically (tmp + rename). names[i], shapes[i]
 * (ndims[i] dims), data[i]. Header padded to 8 bytes. */
pe_status ckpt_write_safetensors(const char *path, int n, const char *const *names, const int *ndims,
                                 const int64_t (*shapes)[4], const float *const *data, pe_err *err);

/* IEEE half / bfloat16 to float (exact) */
float ckpt_f16_to_f32(uint16_t h);
float ckpt_bf16_to_f32(uint16_t h);
