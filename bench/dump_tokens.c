/* dump_tokens.c: print the token ids of the first N documents of a text file, exactly as
 * `pathens eval` cuts them in documents mode (BOS + encode(text), truncated to the model's
 * seq_len), one document per line, ids separated by spaces. For bench/ensemble_peer.py, which
 * then needs no tokenizer of its own.
 *
 *   dump_tokens [--model M] [--tokenizer TOK] [--data TXT] [--limit N]
 * defaults: data/{stories260K.bin,tok512.bin,tinystories_val.txt}, limit 60.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "dataset.h"
#include "model.h"
#include "tokenizer.h"

#ifndef PATHENS_DATA_DIR
#define PATHENS_DATA_DIR "data"
#endif

static void check(pe_status st, const pe_err *err) {
    if (st) {
        fprintf(stderr, "dump_tokens: %s\n", err->msg);
        exit((int)st);
    }
}

int main(int argc, char **argv) {
    const char *model_path = PATHENS_DATA_DIR "/stories260K.bin", *tok_path = PATHENS_DATA_DIR "/tok512.bin",
               *data_path = PATHENS_DATA_DIR "/tinystories_val.txt";
    long limit = 60;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--model")) model_path = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--tokenizer")) tok_path = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--data")) data_path = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--limit")) limit = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: dump_tokens [--model M] [--tokenizer T] [--data TXT] [--limit N]\n");
            return 1;
        }
    }
    pe_err       err = {0};
    ckpt_file    ck;
    model        m;
    tokenizer    tok;
    text_dataset d;
    check(ckpt_open(&ck, model_path, "auto", NULL, &err), &err);
    check(model_init(&m, &ck, &err), &err);
    check(tok_init_llama2c(&tok, tok_path, m.cfg.vocab_size, &err), &err);
    check(data_load_text(&d, data_path, &tok, DATA_MODE_DOCUMENTS, m.cfg.seq_len, m.cfg.seq_len, limit, &err), &err);
    for (int q = 0; q < d.n_seqs; q++) {
        const text_seq *s = &d.seqs[q];
        for (int p = 0; p < s->len; p++) printf(p ? " %d" : "%d", d.tokens[s->start + p]);
        printf("\n");
    }
    data_free_text(&d);
    tok_free(&tok);
    model_free(&m);
    ckpt_close(&ck);
    return 0;
}
