/* tokenizer.h: llama2.c tokenizer files (SentencePiece BPE as llama2.c runs it) and a
 * byte-level tokenizer (vocab 256) for character models.
 *
 * llama2.c file: int32 max_token_length, then vocab_size records of
 *   {float32 score, int32 len, len bytes}   (see docs/formats.md)
 * Encoding reproduces llama2.c run.c `encode` exactly: optional BOS (1), a dummy " " prefix token
 * for non-empty text, UTF-8 codepoints to tokens with byte fallback (id = byte + 3), then repeated
 * merges of the adjacent pair with the highest score (leftmost on ties) until none merges.
 * tok_encode is O(n log n) (heap of candidate pairs) so whole files can be encoded;
 * tok_encode_ref is the naive O(n^2) twin, line for line llama2.c's loop, used by the tests.
 *
 * Hugging Face tokenizers (tokenizer.json, or GPT-2's vocab.json + merges.txt) are the kinds
 * TOK_KIND_BPE_BYTELEVEL and TOK_KIND_BPE_SPM, run by hftok.c (see hftok.h); tok_encode,
 * tok_encode_ref, tok_decode_piece and tok_count_bytes dispatch on the kind.
 */
#pragma once
#include "common.h"

typedef enum {
    TOK_KIND_LLAMA2C = 0, /* llama2.c tokenizer.bin */
    TOK_KIND_BYTES   = 1, /* byte-level: token id = byte value, vocab 256, no BOS/EOS */
    TOK_KIND_BPE_BYTELEVEL = 2, /* HF byte-level BPE: GPT-2, Llama 3, Qwen 2/3, Pythia */
    TOK_KIND_BPE_SPM       = 3, /* HF SentencePiece-style BPE: Llama 2, Mistral, TinyLlama */
} tok_kind;

struct hftok;

typedef struct {
    tok_kind kind;
    int      vocab_size;
    int      max_token_length;
    char   **vocab;       /* (vocab_size) NUL-terminated token strings */
    int     *vocab_len;   /* (vocab_size) byte length of each token string */
    float   *scores;      /* (vocab_size) merge scores */
    int     *sorted_ids;  /* (vocab_size) ids sorted by token string, for lookup */
    int      bos_id;      /* 1 for llama2.c, -1 for bytes */
    int      eos_id;      /* 2 for llama2.c, -1 for bytes */
    int      space_id;    /* id of " " (the dummy prefix), -1 if absent */
    char     byte_pieces[256][2]; /* single-byte strings for byte-fallback decoding */
    struct hftok *hf;     /* the HF kinds: the tokenizer itself (vocab..sorted_ids unused) */
    int      add_bos;     /* what a text gets by default (dataset.c): llama2.c BOS; HF: the post-processor's */
    int      add_eos;     /* prefix / suffix special tokens (tokenizer_config.json / TemplateProcessing) */
} tokenizer;

/* Load a llama2.c tokenizer file. vocab_size comes from the model (the file does not store it);
 * the loader checks every record and that the file ends exactly after vocab_size records. */
pe_status tok_init_llama2c(tokenizer *t, const char *path, int vocab_size, pe_err *err);
/* Byte-level tokenizer, vocab 256. */
void tok_init_bytes(tokenizer *t);
/* A Hugging Face tokenizer: path is a tokenizer.json, or a folder with tokenizer.json or
 * vocab.json + merges.txt (tokenizer_config.json beside either is read too). */
pe_status tok_init_hf(tokenizer *t, const char *path, pe_err *err);
/* The tokenizer of a model, as [model] tokenizer names it (spec):
 *   "bytes"; "none" (fails: the model needs one); "" or "auto": the HF tokenizer in the folder
 *   model_path when it is a folder, or beside the weights file model_path when its folder holds
 *   tokenizer.json or vocab.json (+ merges.txt), else bytes for a vocab-256 model, else an error;
 *   a .json file or a folder:
 *   an HF tokenizer; any other file: a llama2.c tokenizer.bin.
 * A tokenizer with more ids than model_vocab is refused (PE_ERR_INPUT). */
pe_status tok_init_for_model(tokenizer *t, const char *spec, const char *model_path, int model_vocab, pe_err *err);
/* 1 when [model] tokenizer = auto has something to load for this model (tokenizer.json or vocab.json in
 * the model folder or beside the weights file, or a vocab-256 model), 0 when it would fail for want of
 * one (token-file data then runs without a tokenizer) */
int tok_auto_finds(const char *model_path, int model_vocab);
/* "llama2.c", "bytes", "bpe-byte-level" or "bpe-sentencepiece"; with t->vocab_size, what
 * `pathens inspect` prints (tok_init_for_model(&t, "auto", dir, INT_MAX, &err) reads a folder's) */
const char *tok_kind_name(const tokenizer *t);
/* the file(s) it was read from ("" for bytes) */
const char *tok_source(const tokenizer *t);
void tok_free(tokenizer *t);

/* Encode len bytes of text (need not be NUL-terminated). *out is malloc'ed (caller frees),
 * *n_out tokens. bos/eos: prepend BOS / append EOS (ignored by the byte tokenizer; HF kinds: the
 * post-processor's prefix / suffix special tokens, pass t->add_bos / t->add_eos for the file's own
 * choice). HF kinds turn invalid UTF-8 into U+FFFD first (one per maximal invalid subpart). */
pe_status tok_encode(const tokenizer *t, const char *text, size_t len, int bos, int eos,
                     int **out, int *n_out, pe_err *err);
/* naive reference twin of tok_encode (llama2.c's own O(n^2) loop) */
pe_status tok_encode_ref(const tokenizer *t, const char *text, size_t len, int bos, int eos,
                         int **out, int *n_out, pe_err *err);

/* The text token `cur` decodes to when it follows `prev` (llama2.c decode rules: a leading space
 * is stripped right after BOS; "<0xXX>" pieces decode to that one raw byte). Returns the piece
 * and its byte length in *len. */
const char *tok_decode_piece(const tokenizer *t, int prev, int cur, int *len);
/* number of bytes token `cur` contributes to the decoded text after `prev` (for bits/byte); HF
 * kinds: prev = -1 for the first token, special tokens contribute 0 bytes */
int tok_count_bytes(const tokenizer *t, int prev, int cur);
