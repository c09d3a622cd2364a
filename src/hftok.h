/* hftok.h: Hugging Face BPE tokenizers (tokenizer.json, or GPT-2's vocab.json + merges.txt), as the
 * `tokenizers` library runs them, in C (PCRE2 for the split regexes, utf8proc for normalization).
 *
 * Two model alphabets:
 *   byte-level BPE (GPT-2, Llama 3, Qwen 2/3): a ByteLevel pre-tokenizer in the file; words are
 *     bytes, the vocabulary's strings are mapped back through GPT-2's byte-to-unicode table at load,
 *     so the encoder merges raw bytes;
 *   SentencePiece-style BPE (Llama 2, Mistral, TinyLlama): no ByteLevel step; words are UTF-8
 *     characters, spaces become U+2581 (Metaspace pre-tokenizer, or the legacy normalizer form
 *     Prepend + Replace), characters outside the vocabulary fall back to <0xNN> byte tokens.
 * Pipeline of one encode: invalid UTF-8 -> U+FFFD (WHATWG rule: one per maximal invalid subpart);
 * added tokens matched on the raw text (leftmost, longest); each other section normalized
 * (NFC/NFD/NFKC/NFKD, Replace, Prepend, Sequence), pre-tokenized (Split with a regex or string,
 * ByteLevel, Metaspace, Sequence) and each word merged by rank (lowest rank first, leftmost on
 * ties: a heap; hftok_encode with ref = 1 is the naive O(n^2) twin); the post-processor's
 * special tokens (TemplateProcessing) around it. Anything else in a file (WordPiece, Unigram,
 * dropout, an unknown normalizer ...) is refused with PE_ERR_INPUT naming the key.
 */
#pragma once
#include "common.h"

typedef struct hftok hftok;

/* path: a tokenizer.json file, or a folder holding tokenizer.json (+ tokenizer_config.json), or
 * vocab.json + merges.txt (+ tokenizer_config.json). *out is malloc'ed; hftok_free it. */
pe_status hftok_load(hftok **out, const char *path, pe_err *err);
void hftok_free(hftok *h);

int hftok_n_ids(const hftok *h);      /* vocabulary size: largest id (model or added token) + 1 */
int hftok_byte_level(const hftok *h); /* 1: byte-level BPE, 0: SentencePiece-style */
/* special tokens the post-processor (or tokenizer_config.json) puts before / after a text */
int hftok_n_prefix(const hftok *h);
int hftok_n_suffix(const hftok *h);
int hftok_bos_id(const hftok *h); /* the single prefix token, else -1 */
int hftok_eos_id(const hftok *h); /* the single suffix token, else tokenizer_config's eos_token, else -1 */
const char *hftok_source(const hftok *h); /* the file(s) it was read from */

/* Encode len bytes of text; prefix / suffix: add the post-processor's special tokens.
 * ref = 1: the naive reference merge loop. *out malloc'ed. */
pe_status hftok_encode(const hftok *h, const char *text, size_t len, int prefix, int suffix, int ref, int **out,
                       int *n_out, pe_err *err);

/* The bytes token `cur` decodes to after `prev` (-1: first token): special tokens decode to
 * nothing; SentencePiece U+2581 -> space and <0xNN> -> that byte, and the space a prepend scheme
 * added is dropped at the start of a section (first token, or after a special token). */
const char *hftok_piece(const hftok *h, int prev, int cur, int *len);
