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

/* BOOL / U8: only for buffers HF exports carry beside the weights (GPT-NeoX attention.bias causal
 * masks); model_init ignores those by name and refuses any other tensor that is not a float */
typedef enum { CKPT_DTYPE_F32 = 0, CKPT_DTYPE_F16 = 1, CKPT_DTYPE_BF16 = 2, CKPT_DTYPE_BOOL = 3, CKPT_DTYPE_U8 = 4 } ckpt_dtype;

/* Hugging Face config.json model_type, 0 = a native pathens config / llama2.c header */
typedef enum {
    CKPT_HF_NONE = 0, CKPT_HF_GPT2 = 1, CKPT_HF_LLAMA = 2, CKPT_HF_MISTRAL = 3, CKPT_HF_QWEN2 = 4, CKPT_HF_QWEN3 = 5,
    CKPT_HF_GPT_NEOX = 6, CKPT_HF_VIT = 7,
} ckpt_hf_family;
#define CKPT_HF_N_FAMILIES 8
/* "gpt2", "llama", ... ("" for CKPT_HF_NONE) */
const char *ckpt_hf_family_name(int family);

/* one mapped safetensors file of a sharded folder */
typedef struct {
    char   name[256];  /* file name inside the folder, as the index names it */
    void  *map;        /* read-only mapping of the whole file */
    size_t size;
    int    n_tensors;  /* tensors this shard holds */
} ckpt_shard;

typedef struct {
    char        name[96];
    ckpt_dtype  dtype;
    int         ndim;
    int64_t     shape[4];
    const void *data;    /* into the mapping */
    size_t      nbytes;
    int         used;    /* set by model_init: 1 bound, 2 an export buffer ignored by name */
    int         shard;   /* index into ckpt_file.shards (0 for a single file) */
    int         fused_heads; /* set by model_init: rows stored per head as (q, k, v) blocks (GPT-NeoX
                                query_key_value, NH heads), re-laid out as (q | k | v) in the owned block */
} ckpt_tensor;

typedef struct ckpt_file {
    char          path[4096];   /* the file, or the model folder */
    char          format[32];   /* llama2c-v0 | llama2c-v1 | safetensors */
    int           hf_family;    /* ckpt_hf_family: tensor names / config are Hugging Face ones */
    int           is_dir;       /* opened as a save_pretrained folder */
    int           n_shards;     /* safetensors files: 1, or the shards of model.safetensors.index.json */
    ckpt_shard   *shards;       /* (n_shards); shards[0].map == map */
    void         *map;          /* read-only mapping of the whole (first) file */
    size_t        map_size;
    int           n_tensors;
    ckpt_tensor  *tensors;      /* (n_tensors) */
    model_config  cfg;          /* architecture from the header or config.json */
    char          config_path[4096]; /* the config.json read ("" for llama2.c) */
} ckpt_file;

/* format: "auto" (or NULL/""), "llama2c", "safetensors". config_path: safetensors config.json
 * ("" or NULL: config.json in the model's folder). path may be a folder as Hugging Face
 * save_pretrained writes it: config.json, then model.safetensors or model.safetensors.index.json
 * and the shards it names (each checked: present, complete, holding exactly the tensors the index
 * gives it). */
pe_status ckpt_open(ckpt_file *ck, const char *path, const char *format, const char *config_path,
                    pe_err *err);
void ckpt_close(ckpt_file *ck);
const ckpt_tensor *ckpt_find(const ckpt_file *ck, const char *name);
/* The file a message about tensor t names: its shard in a folder, else the checkpoint file; t NULL
 * (a tensor that is missing): the file(s) that should hold it (a folder's model.safetensors, or
 * its index). Returns buf. */
const char *ckpt_tensor_file(const ckpt_file *ck, const ckpt_tensor *t, char *buf, size_t n);
const char *ckpt_dtype_name(ckpt_dtype d);

/* Parse a config.json text (native, or Hugging Face: gpt2, llama, mistral, qwen2, qwen3, gpt_neox,
 * vit) into cfg. *hf_family = its ckpt_hf_family (0 for a native config). */
pe_status ckpt_parse_config_json(model_config *cfg, int *hf_family, const char *text, const char *where,
                                 pe_err *err);
/* The native config.json text for cfg (malloc'ed; caller frees). */
char *ckpt_config_to_json(const model_config *cfg);

/* Write float32 tensors as a safetensors file, atomically (tmp + rename). names[i], shapes[i]
 * (ndims[i] dims), data[i]. Header padded to 8 bytes. */
pe_status ckpt_write_safetensors(const char *path, int n, const char *const *names, const int *ndims,
                                 const int64_t (*shapes)[4], const float *const *data, pe_err *err);

/* ---- format sniffing and checked size arithmetic (exposed for tests/test_ckpt.c) ---------- */

typedef enum {
    CKPT_KIND_UNKNOWN     = 0,
    CKPT_KIND_LLAMA2C_V0  = 1,
    CKPT_KIND_LLAMA2C_V1  = 2,
    CKPT_KIND_SAFETENSORS = 3,
} ckpt_kind;

/* What the bytes of a checkpoint file look like, from its content alone:
 *   llama2c-v1   the magic "ak42";
 *   safetensors  a little-endian u64 header length N >= 2 with 8 + N <= size, byte 8 is '{' and
 *                the last byte of the header that is not a padding space is '}';
 *   llama2c-v0   7 int32 that make a plausible llama2.c header (ckpt_llama2c_check: positive,
 *                bounded, consistent dims; the file size is checked by the reader, which calls
 *                a wrong size truncated / too long).
 * Both safetensors and v0 can only match at once for files over 4 GiB; then the one whose size
 * matches exactly / whose header parses as JSON wins. UNKNOWN: `why` (if not NULL) says what the
 * bytes are instead, for the "is not a ... checkpoint" message. */
ckpt_kind ckpt_sniff(const void *data, size_t size, char *why, size_t why_n);

/* The 7 int32 of a llama2.c header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len; v0: a negative vocab_size means a separate classifier). 0 when plausible (every field
 * positive and within model_check_config's limits, n_heads | dim, n_kv_heads | n_heads, even head
 * size for RoPE) and then *file_bytes (if not NULL) = the exact size of the file it announces
 * (v1: 256-byte header; `shared` = the v1 shared-classifier flag, ignored for v0); -1 otherwise
 * with the first failed rule in `why`. n_fields < 7: only the fields present are checked (a
 * truncated header). Never overflows, whatever the ints. */
int ckpt_llama2c_check(const int32_t *hdr, int n_fields, int v1, int shared, uint64_t *file_bytes, char *why,
                       size_t why_n);

/* Checked arithmetic on sizes read from files: 0 and *out on success; -1 on overflow (or when
 * the result would exceed `max`), *out untouched. ckpt_numel: product of ndim non-negative dims
 * (ndim 0: 1). */
int ckpt_mul_u64(uint64_t a, uint64_t b, uint64_t *out);
int ckpt_add_u64(uint64_t a, uint64_t b, uint64_t *out);
int ckpt_numel(const int64_t *shape, int ndim, int64_t max, int64_t *out);

/* IEEE half / bfloat16 to float (exact) */
float ckpt_f16_to_f32(uint16_t h);
float ckpt_bf16_to_f32(uint16_t h);
