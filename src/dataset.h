/* dataset.h: evaluation data.
 *
 * Text (tokenised once, then cut into sequences):
 *   documents: the file is split on blank lines (a line of only whitespace); each document is
 *              BOS + encode(text), truncated to `context` tokens; every position predicts the next.
 *              BOS / EOS are the tokenizer's own (t->add_bos, t->add_eos): llama2.c's BOS, none for
 *              bytes, a Hugging Face tokenizer's post-processor special tokens.
 *   windows:   the whole file is one token stream (BOS + encode(file)); windows of `context`
 *              tokens start every `stride` tokens; window 0 scores all its targets, window w > 0
 *              scores only the targets not scored by an earlier window (HF-style strided PPL).
 *              Every stream target is scored exactly once: a window's first token is never a
 *              target, so stride == context steps context - 1 (windows overlap by one token).
 *   Model convention: position p of a sequence predicts the token at position p+1. A sequence
 *   scores targets at positions [score_begin + 1, len), i.e. predictions made at positions
 *   [score_begin, len - 1).
 * Images: IDX files (optionally gzip-compressed, read through zlib), as installed by Debian's
 *   dataset-fashion-mnist: images idx3 (uint8, n x rows x cols) + labels idx1 (uint8, n).
 * `limit` (> 0) keeps the first N documents / windows / images.
 */
#pragma once
#include "common.h"
#include "tokenizer.h"

typedef enum {
    DATA_MODE_DOCUMENTS = 0,
    DATA_MODE_WINDOWS   = 1,
} data_text_mode;

typedef struct {
    int64_t start;       /* index of the sequence's first token in text_dataset.tokens */
    int     len;         /* number of tokens (<= context) */
    int     score_begin; /* first prediction position that is scored (see above) */
    int64_t doc_id;      /* document index (documents) or window index (windows): the unit for stderr */
} text_seq;

typedef struct {
    data_text_mode mode;
    int       context;     /* max tokens per sequence */
    int       stride;      /* windows only */
    int64_t   n_tokens;    /* total tokens stored */
    int      *tokens;      /* (n_tokens) token ids */
    uint16_t *tok_bytes;   /* (n_tokens) bytes each token contributes when decoded after its predecessor */
    int       n_seqs;
    text_seq *seqs;        /* (n_seqs) */
    int64_t   n_scored;    /* total scored targets over all sequences */
    int64_t   n_scored_bytes; /* total bytes of the scored targets */
} text_dataset;

/* The next document of a text at or after byte *pos (documents mode: blank-line separated paragraphs,
 * a blank line holding only spaces, tabs, CR, VT, FF; a document's last line loses a trailing CR):
 * 1 with its bytes [*start, *start + *len) and *pos moved past it; 0 when none is left. Start with
 * *pos = 0. The one definition of a document (data_load_text and bench/tok_encode.c use it). */
int data_next_document(const char *buf, size_t n, size_t *pos, size_t *start, size_t *len);
/* Load a UTF-8 text file and cut it into sequences. context > 0, stride in [1, context] for
 * windows (ignored for documents), limit <= 0 means all. */
pe_status data_load_text(text_dataset *d, const char *path, const tokenizer *t, data_text_mode mode,
                         int context, int stride, long limit, pe_err *err);
/* The same over the byte span [floor(begin n), floor(end n)) of the file (n bytes): data.span. */
pe_status data_load_text_span(text_dataset *d, const char *path, const tokenizer *t, data_text_mode mode,
                              int context, int stride, long limit, double span_begin, double span_end, pe_err *err);
void data_free_text(text_dataset *d);

/* Token files ([data] format = tokens): a flat file of little-endian token ids, uint16 (nanoGPT's
 * val.bin) or uint32, with no header, scored exactly as tokenized (no BOS is added).
 *   documents: a document starts at each `eos` id (kept as its first token, context only, as BOS
 *              is for text) and runs to the next one, truncated to `context`; tokens before the
 *              first eos are a document too. eos >= 0 is required.
 *   windows:   the file (its span) is one token stream, cut as text windows are (above).
 * Every id of the file must be < vocab (and < the tokenizer's vocabulary when one is given);
 * data.span cuts token ids. Bytes: with a tokenizer, each target counts the bytes it decodes to
 * after its predecessor (as for text); without one (t == NULL) every count is 0, n_scored_bytes is
 * 0 and bits per byte is unknown (results.json writes null). */
typedef struct {
    int dtype_bytes; /* 2 (uint16) or 4 (uint32) */
    int vocab;       /* the model's vocabulary size: every id must be below it */
    int eos;         /* documents: the separator id; -1 = none (windows) */
} data_token_opts;

pe_status data_load_tokens(text_dataset *d, const char *path, const data_token_opts *o, const tokenizer *t,
                           data_text_mode mode, int context, int stride, long limit, double span_begin,
                           double span_end, pe_err *err);

typedef struct {
    int      n;        /* number of images */
    int      rows;
    int      cols;
    uint8_t *pixels;   /* (n, rows, cols) */
    uint8_t *labels;   /* (n) */
    int      n_classes; /* max label + 1 */
} image_dataset;

/* Load IDX images + labels (gzip or raw, detected by magic); checks magic numbers, dimensions,
 * that counts agree and that the files hold exactly the bytes their headers promise. */
pe_status data_load_idx(image_dataset *d, const char *images_path, const char *labels_path, long limit,
                        pe_err *err);
void data_free_idx(image_dataset *d);
/* data_load_idx over the images [floor(begin n), floor(end n)) of the files (data.span), then the
 * first `limit` of those (limit <= 0: all). labels_path NULL or "": derived from images_path
 * (t10k-images-idx3-ubyte.gz -> t10k-labels-idx1-ubyte.gz). */
pe_status data_load_idx_span(image_dataset *d, const char *images_path, const char *labels_path, long limit,
                             double span_begin, double span_end, pe_err *err);
