/* model.h: one transformer, many architectures as switches (not copies).
 *
 * Legend: B batch (sequences or images), T tokens per sequence, C model width (dim),
 *         NH query heads, NKV key/value heads, HS head size (head_dim, else C / NH), QC = NH * HS,
 *         KVC = NKV * HS, R rotary dims per head (<= HS), HID MLP hidden width, V vocabulary size,
 *         NC classes, L layers.
 *
 * Switches: LayerNorm | RMSNorm; learned positions | RoPE | none; GELU (erf or tanh) | SwiGLU MLP;
 * multi-head or grouped-query attention (NKV < NH); causal | bidirectional; tied or separate
 * LM head, or a classifier head (CLS token or mean pooling); token or patch (ViT) input.
 * Hugging Face families (docs/models.md) add: head_dim != C / NH (QC != C); RoPE pairs interleaved
 * (llama2.c: (2i, 2i+1)) | half (HF rotate_half: (i, i + R/2)); partial rotary (R < HS, NeoX);
 * llama3 frequency scaling; biases on q/k/v only, on o, on the MLP (each independent of `bias`);
 * per-head RMSNorm of q and k (Qwen3); parallel residual (NeoX); a static sliding window (Mistral,
 * only where it changes nothing: T <= window).
 *
 * Weights are views: into the checkpoint's read-only mmap when the stored layout is float32 and
 * aligned, otherwise into one owned block (F16/BF16 converted) carved by a size table.
 * A linear layer is y = x W^T + b with W either [out][in] (nn.Linear, llama2.c) or [in][out]
 * (HF GPT-2 Conv1D, "k-major"): the sgemm transposes as needed, nothing is copied.
 */
#pragma once
#include "common.h"
#include "pathways.h"

typedef enum { MODEL_NORM_LAYERNORM = 0, MODEL_NORM_RMSNORM = 1 } model_norm_kind;
typedef enum { MODEL_POS_NONE = 0, MODEL_POS_LEARNED = 1, MODEL_POS_ROPE = 2 } model_pos_kind;
typedef enum { MODEL_MLP_GELU = 0, MODEL_MLP_GELU_TANH = 1, MODEL_MLP_SWIGLU = 2 } model_mlp_kind;
typedef enum {
    MODEL_HEAD_LM_TIED = 0, /* logits = final hidden . tok_emb^T */
    MODEL_HEAD_LM      = 1, /* separate lm_head.weight (V, C) */
    MODEL_HEAD_CLS_TOKEN = 2, /* classifier on the CLS token (position 0) */
    MODEL_HEAD_CLS_MEAN  = 3, /* classifier on the mean of all positions */
} model_head_kind;
typedef enum { MODEL_INPUT_TOKENS = 0, MODEL_INPUT_PATCHES = 1 } model_input_kind;
typedef enum {
    MODEL_ROPE_INTERLEAVED = 0, /* llama2.c / Meta: pair i = (x[2i], x[2i+1]) */
    MODEL_ROPE_HALF        = 1, /* HF rotate_half (Llama, NeoX, Qwen): pair i = (x[i], x[i + R/2]) */
} model_rope_style;
typedef enum { MODEL_ROPE_SCALE_NONE = 0, MODEL_ROPE_SCALE_LLAMA3 = 1 } model_rope_scaling;

typedef struct {
    int   dim;          /* C */
    int   hidden_dim;   /* HID */
    int   n_layers;     /* L */
    int   n_heads;      /* NH */
    int   n_kv_heads;   /* NKV (divides NH) */
    int   vocab_size;   /* V (token input / LM head); 0 for image models */
    int   seq_len;      /* max positions (tokens incl. CLS for images) */
    model_norm_kind  norm;
    float norm_eps;
    model_pos_kind   pos;
    float rope_theta;
    model_mlp_kind   mlp;
    int   causal;       /* 1: query i sees keys j <= i */
    int   bias;         /* linear layers and norms carry biases (GPT-2, ViT); 0 for llama */
    model_head_kind  head;
    int   n_classes;    /* NC for classifier heads */
    model_input_kind input;
    int   image_size;   /* square images, pixels per side */
    int   patch_size;
    int   channels;
    float pixel_mean;   /* input pixel x in [0,255] becomes (x/255 - mean) / std */
    float pixel_std;
    /* Hugging Face families (0 everywhere = the native / llama2.c model) */
    int   head_dim;     /* HS; 0 = dim / n_heads */
    model_rope_style   rope_style;
    int   rotary_dim;   /* R: leading dims of each head that RoPE rotates; 0 = HS */
    model_rope_scaling rope_scaling;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor; /* llama3 scaling */
    int   rope_orig_ctx;      /* llama3 scaling: original_max_position_embeddings */
    int   qkv_bias;     /* q, k, v projections carry biases (Qwen2, Llama attention_bias) */
    int   o_bias;       /* the output projection carries a bias (Llama attention_bias) */
    int   mlp_bias;     /* the MLP projections carry biases (Llama mlp_bias) */
    int   qk_norm;      /* per-head RMSNorm (weights (HS)) of q and k before RoPE (Qwen3) */
    int   parallel_residual; /* x += attn(norm1(x)) + mlp(norm2(x)) (GPT-NeoX) */
    int   sliding_window;    /* W: query i sees keys j > i - W; 0 = none. Only T <= W runs (it changes nothing) */
    int   pixel_per_channel; /* 1: channel ch uses pixel_mean_c[ch] / pixel_std_c[ch] (HF image_mean / image_std) */
    float pixel_mean_c[16], pixel_std_c[16]; /* (MODEL_MAX_CHANNELS) */
} model_config;

/* HS, R and the bias switches with their defaults resolved */
static inline int model_head_size(const model_config *c) { return c->head_dim > 0 ? c->head_dim : c->dim / c->n_heads; }
static inline int model_rotary_dims(const model_config *c) { return c->rotary_dim > 0 ? c->rotary_dim : model_head_size(c); }
static inline int model_has_qkv_bias(const model_config *c) { return c->bias || c->qkv_bias; }
static inline int model_has_o_bias(const model_config *c) { return c->bias || c->o_bias; }
static inline int model_has_mlp_bias(const model_config *c) { return c->bias || c->mlp_bias; }
/* 1 when any Hugging Face switch is on (training and the token-by-token reference refuse them) */
int model_uses_hf_switches(const model_config *c);

/* linear layer view: y(N, out) = x(N, in) . W^T + b */
typedef struct {
    const float *w;     /* kmajor == 0: (out, in) row-major with leading dim ld; kmajor == 1: (in, out) */
    int          ld;    /* leading dimension of w */
    int          kmajor;
    const float *b;     /* (out) or NULL */
} model_linear;

typedef struct {
    const float *attn_norm_w, *attn_norm_b; /* (C), bias (C) or NULL */
    model_linear wq;   /* (QC, C) */
    model_linear wk;   /* (KVC, C) */
    model_linear wv;   /* (KVC, C) */
    model_linear wo;   /* (C, QC) */
    const float *q_norm_w, *k_norm_w;       /* (HS) each, qk_norm only */
    const float *mlp_norm_w, *mlp_norm_b;   /* (C) */
    model_linear w1;   /* (HID, C): GELU up-projection, or SwiGLU gate */
    model_linear w2;   /* (C, HID): down-projection */
    model_linear w3;   /* (HID, C): SwiGLU up-projection; unused for GELU */
} model_layer_weights;

typedef struct {
    const float *tok_emb;    /* (V, C) token input */
    const float *pos_emb;    /* (seq_len, C) learned positions */
    model_linear patch;      /* (C, channels*patch*patch) patch input */
    const float *cls_token;  /* (C) for MODEL_HEAD_CLS_TOKEN */
    model_layer_weights *layers; /* (L) */
    const float *final_norm_w, *final_norm_b; /* (C) */
    model_linear head;       /* (V, C) LM head (tied: tok_emb) or (NC, C) classifier */
    const float *rope_freq;  /* (R/2) inverse frequencies of the RoPE pairs (model_rope_init_freq) */
} model_weights;

/* one named tensor the architecture needs (the size table that drives loading and writing) */
typedef struct {
    char    name[96];
    int     ndim;
    int64_t shape[2];
} model_tensor_spec;

struct ckpt_file;

/* Where model_init_with puts the owned block (tensors converted from F16 / BF16, re-aligned or
 * re-laid out). model_init: malloc, and this process converts every tensor. mpi/shm.c: one block
 * per node in MPI-3 shared memory, each rank of the node converting a part of it (docs/mpi.md).
 * alloc and ready are called once each, in this order, by every process that shares the block
 * (collective for a shared block), and only when there is something to convert. */
typedef struct {
    /* a block of `bytes` bytes aligned for floats, or NULL with err set; *handle (non-NULL): what
     * ready and release get back. This process converts the tensors whose place in the block starts in piece
     * `part` (0 <= part < parts) of the block cut into pieces of ceil(bytes / 4 / parts) floats */
    void *(*alloc)(size_t bytes, void *ctx, void **handle, int *part, int *parts, pe_err *err);
    /* after this process's part: returns once every part is written (the block is never written
     * again; a shared block is made read-only where the system allows) */
    void (*ready)(void *handle);
    /* model_free: the block is given back (collective for a shared block) */
    void (*release)(void *handle);
    void *ctx; /* alloc's */
} model_block_alloc;

typedef struct {
    model_config   cfg;
    model_weights  w;
    float         *owned;        /* one block for converted / re-aligned / re-laid-out tensors, or NULL */
    size_t         owned_floats;
    void          *owned_handle; /* model_block_alloc's handle of owned (NULL: malloc'd) */
    void         (*owned_release)(void *handle); /* gives owned back (NULL: free) */
    float         *rope_table;   /* (R/2) the RoPE inverse frequencies w.rope_freq points at, or NULL */
    int64_t        n_params;
    char           source[64];   /* "llama2c-v0", "llama2c-v1", "safetensors", "safetensors-hf-<model_type>" */
} model;

/* Limits model_check_config enforces (and the llama2.c header sniffing in ckpt.c shares): every size
 * derived from them fits an int, and products of them fit an int64. */
#define MODEL_MAX_DIM        (1 << 16)
#define MODEL_MAX_HIDDEN     (1 << 18)
#define MODEL_MAX_LAYERS     1000
#define MODEL_MAX_SEQ        (1 << 20)
#define MODEL_MAX_VOCAB      (1 << 24)
#define MODEL_MAX_CLASSES    (1 << 24)
#define MODEL_MAX_IMAGE      8192
#define MODEL_MAX_CHANNELS   16

/* Check a config's numbers and switches; message names the bad key. */
pe_status model_check_config(const model_config *c, const char *where, pe_err *err);
/* The native tensors this architecture needs, in canonical order. Returns the count
 * (<= max; call with out = NULL to count). */
int model_list_tensors(const model_config *c, model_tensor_spec *out, int max);
/* Bind weights from an opened checkpoint; checks every tensor's presence, dtype, shape and that
 * every weight is finite; reports expected vs got. The checkpoint must outlive the model. */
pe_status model_init(model *m, struct ckpt_file *ck, pe_err *err);
/* model_init with the owned block from `al` (NULL: malloc, as model_init). Results are
 * byte-identical whichever allocator and however many parts. */
pe_status model_init_with(model *m, struct ckpt_file *ck, const model_block_alloc *al, pe_err *err);
void model_free(model *m);
/* index of the first NaN or Inf among x[0..n), n if every value is finite (the loader's check) */
size_t model_find_nonfinite(const float *x, size_t n);
/* human-readable one-line summary */
void model_describe(const model *m, char *buf, size_t n);
/* inv_freq (R/2) of the RoPE pairs: theta^(-2i/R) in float (the bits llama2.c and HF's float32
 * table give), then llama3 scaling (HF _compute_llama3_parameters) when the config asks for it */
void model_rope_init_freq(float *inv_freq, const model_config *c);

/* ---- batched forward ------------------------------------------------------------------- */
typedef struct {
    int    B, T;               /* shape these buffers were allocated for (max) */
    float *block;              /* the one allocation */
    float *x;      /* (B, T, C) residual stream */
    float *xn;     /* (B, T, C) normalised input of a sub-layer */
    float *q;      /* (B, T, QC) queries */
    float *k;      /* (B, T, KVC) */
    float *v;      /* (B, T, KVC) */
    float *att;    /* (B, T, QC) attention output before wo */
    float *h1;     /* (B, T, HID) */
    float *h3;     /* (B, T, HID) */
    float *patches;/* (B, T, channels*patch*patch) image input only */
    float *pooled; /* (B, C) classifier input */
    float *rope_cs;/* (T, R/2, 2) RoPE cos/sin of positions 0..T-1 (kern_rope_table), RoPE models only */
    /* attention scratch, one set per thread (pe_threads_get() when allocated), thread i's at i */
    int        n_thr;    /* threads the scratch is sized for */
    float     *scores;   /* (n_thr, T * T + T + 1) scores of one (sequence, head) */
    float     *gather;   /* (n_thr, 2, T, HS) gathered keys and values of one (sequence, head) */
    int       *iscratch; /* (n_thr, T) */
    pw_sample *samples;  /* (n_thr) pathway sample scratch, cap T */
    int64_t   *kept_b;   /* (2, B, NH) connections kept / allowed per sequence of one attention call */
} model_acts;

/* Which sub-model a forward pass runs: cfg NULL (or the whole struct NULL) = dense. */
typedef struct {
    const pw_config *cfg;
    int              member;   /* member index k: part of the sampler's counter key */
    const int64_t   *seq_ids;  /* (B) sequence ids (document / window / image index) */
    int64_t         *kept;     /* (L, NH) connections kept, accumulated; or NULL */
    int64_t         *allowed;  /* (L, NH) connections allowed, accumulated; or NULL */
    /* per-(layer, sequence, head) statistics for importance (importance.h); each NULL when not wanted */
    int              n_bands;
    int64_t         *kept_bh;   /* (L, B, NH) connections kept */
    int64_t         *band_kept; /* (L, B, NH, n_bands) connections kept per distance band */
    double          *att_stats; /* (L, B, NH, 3 + n_bands): rows, Σ p|i-j|, Σ -p ln p, mass per band */
    const int       *stat_rows; /* (B) queries counted in kept_bh / band_kept (those whose output is scored) */
} model_pathways;

pe_status model_acts_init(model_acts *a, const model *m, int B, int T, pe_err *err);
void model_acts_free(model_acts *a);

/* Forward a batch of token sequences up to the final norm. tokens (B, T) row-major; lens (B) valid
 * lengths (NULL: all T); hidden (B, T, C) out, the final normalised hidden states, written for
 * positions < lens[b] only (hidden may be a->xn). use_ref = 1 routes every kernel to its naive
 * reference twin. pw: the sub-model (NULL = dense). Every number of a sequence depends on that
 * sequence alone, never on its batch-mates. */
pe_status model_forward_hidden_pw(float *hidden, model_acts *a, const model *m, const int *tokens,
                                  const int *lens, int B, int T, const model_pathways *pw, int use_ref,
                                  pe_err *err);

/* ---- the LM head, in chunks of rows ------------------------------------------------------
 * The head runs over chunks of at most R rows of one sequence, chunk i covering positions
 * [i R, min((i + 1) R, len)): the caller keeps (R, V) logits at a time, never (B, T, V).
 * R is a multiple of MODEL_HEAD_ROW_ALIGN and the grid starts at position 0, so a chunk's rows
 * sit at the same offsets modulo 48 as in one sgemm over the whole sequence and the last chunk
 * ends where the sequence does: with OpenBLAS 0.3.21 on 1 thread (Zen, Haswell and Sandybridge
 * kernels, bench/bench_lmhead.c chunks) every logit is then bit-identical to the unchunked call. */
#define MODEL_HEAD_ROW_ALIGN 48
#define MODEL_MATMUL_ROWS    192       /* rows of one projection sgemm task, a multiple of 48 (model.c seq_matmul) */
#define MODEL_HEAD_MAX_ROWS  384       /* beyond this the sgemm is as fast as one call (docs/performance.md) */
#define MODEL_HEAD_BUDGET    (1 << 24) /* floats of one (R, V) logits chunk the automatic R aims at */
/* R for this model: MODEL_HEAD_BUDGET / V rounded down to a multiple of 48, within [48, 384] */
int model_head_rows_auto(const model *m);
/* logits (n, V) = hidden (n, C) . head^T: n consecutive rows of one sequence, starting at a
 * position that is a multiple of 48 (the chunk grid above) */
void model_head_lm(float *logits, const model *m, const float *hidden, int n, int use_ref);

/* Forward a batch of token sequences to their logits (B, T, V) (positions < lens[b] only):
 * model_forward_hidden_pw, then the head over every chunk. For tests and small models; the
 * evaluation (ensemble.c) runs the head a chunk at a time instead. */
pe_status model_forward_tokens_pw(float *logits, model_acts *a, const model *m, const int *tokens,
                                  const int *lens, int B, int T, const model_pathways *pw, int use_ref,
                                  pe_err *err);
pe_status model_forward_tokens(float *logits, model_acts *a, const model *m, const int *tokens,
                               const int *lens, int B, int T, int use_ref, pe_err *err);
/* Forward a batch of images: pixels (B, channels, H, W) uint8; logits (B, NC) out. */
pe_status model_forward_images_pw(float *logits, model_acts *a, const model *m, const uint8_t *pixels,
                                  int B, const model_pathways *pw, int use_ref, pe_err *err);
pe_status model_forward_images(float *logits, model_acts *a, const model *m, const uint8_t *pixels,
                               int B, int use_ref, pe_err *err);
/* patches (B, NP, channels*patch*patch) of images (B, channels, H, W) uint8, patches in row-major
 * order, each in (channel, row, col) order like a conv weight, pixels as (x/255 - mean) / std;
 * the inference and the training forward both use it */
void model_image_patches(float *patches, const model_config *c, const uint8_t *pixels, int B);
/* tokens per image sequence (patches, plus one for a CLS token) */
int model_image_seq_len(const model_config *c);

/* ---- token-by-token reference (llama2.c run.c style, KV cache, naive matvec) ------------ */
typedef struct {
    float *block;
    float *x, *xb, *xb2, *hb, *hb2, *q, *att; /* (C) (C) (C) (HID) (HID) (C) (NH, seq_len) */
    float *key_cache;   /* (L, seq_len, KVC) */
    float *value_cache; /* (L, seq_len, KVC) */
} model_seq_state;

pe_status model_seq_init(model_seq_state *s, const model *m, pe_err *err);
void model_seq_free(model_seq_state *s);
/* logits (V) for `token` at position `pos`, given the cache filled for positions < pos */
void model_forward_token_seq(float *logits, model_seq_state *s, const model *m, int token, int pos);
