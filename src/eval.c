/* eval.c: dense evaluation into mergeable accumulators. */
#include "eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void eval_lm_add_unit(eval_lm_acc *a, double nll_u, int64_t tokens_u, int64_t bytes_u) {
    if (tokens_u <= 0) return;
    a->sum_nll += nll_u;
    a->tokens += tokens_u;
    a->bytes += bytes_u;
    a->units += 1;
    a->sum_a2 += nll_u * nll_u;
    a->sum_ab += nll_u * (double)tokens_u;
    a->sum_b2 += (double)tokens_u * (double)tokens_u;
}

void eval_lm_merge(eval_lm_acc *into, const eval_lm_acc *from) {
    into->sum_nll += from->sum_nll;
    into->tokens += from->tokens;
    into->bytes += from->bytes;
    into->units += from->units;
    into->sum_a2 += from->sum_a2;
    into->sum_ab += from->sum_ab;
    into->sum_b2 += from->sum_b2;
}

double eval_lm_nll(const eval_lm_acc *a) { return a->tokens ? a->sum_nll / (double)a->tokens : NAN; }

double eval_lm_nll_stderr(const eval_lm_acc *a) {
    /* r = Σa/Σb; Var(r) ≈ n/(n-1) Σ (a_u - r b_u)^2 / (Σb)^2 */
    if (a->units < 2) return NAN;
    double r = eval_lm_nll(a), n = (double)a->units, B = (double)a->tokens;
    double ss = a->sum_a2 - 2.0 * r * a->sum_ab + r * r * a->sum_b2;
    if (ss < 0) ss = 0;
    return sqrt(n / (n - 1.0) * ss) / B;
}

void eval_cls_add(eval_cls_acc *a, double nll, int correct) {
    a->examples++;
    a->correct += correct ? 1 : 0;
    a->sum_nll += nll;
    a->sum_nll2 += nll * nll;
}

void eval_cls_merge(eval_cls_acc *into, const eval_cls_acc *from) {
    into->examples += from->examples;
    into->correct += from->correct;
    into->sum_nll += from->sum_nll;
    into->sum_nll2 += from->sum_nll2;
}

double eval_nll_of(const float *logits, int V, int target) {
    double mx = logits[0];
    for (int v = 1; v < V; v++)
        if (logits[v] > mx) mx = logits[v];
    double s = 0.0;
    for (int v = 0; v < V; v++) s += exp((double)logits[v] - mx);
    return -((double)logits[target] - mx - log(s));
}

/* stable order of sequences by length, so that a batch pads little; results are stored per
 * sequence and reduced in the dataset's order, so the order of work never changes a number */
static int *order_by_length(const text_dataset *d, pe_err *err) {
    int *order = pe_malloc((size_t)d->n_seqs * sizeof(int), err, "sequence order");
    if (!order) return NULL;
    int maxlen = 0;
    for (int s = 0; s < d->n_seqs; s++) maxlen = d->seqs[s].len > maxlen ? d->seqs[s].len : maxlen;
    int *count = calloc((size_t)maxlen + 2, sizeof(int)); /* counting sort: stable, O(n) */
    if (!count) {
        free(order);
        pe_fail(err, PE_ERR_INTERNAL, "out of memory sorting sequences");
        return NULL;
    }
    for (int s = 0; s < d->n_seqs; s++) count[d->seqs[s].len + 1]++;
    for (int l = 1; l <= maxlen + 1; l++) count[l] += count[l - 1];
    for (int s = 0; s < d->n_seqs; s++) order[count[d->seqs[s].len]++] = s;
    free(count);
    return order;
}

pe_status eval_dense_text(eval_lm_acc *acc, const model *m, const text_dataset *d, int batch, pe_err *err) {
    memset(acc, 0, sizeof *acc);
    int V = m->cfg.vocab_size, Tmax = 0;
    for (int s = 0; s < d->n_seqs; s++)
        if (d->seqs[s].len > Tmax) Tmax = d->seqs[s].len;
    if (Tmax > m->cfg.seq_len)
        return pe_fail(err, PE_ERR_INPUT, "data has sequences of %d tokens but the model's context is %d; set data.context",
                       Tmax, m->cfg.seq_len);
    if (d->n_seqs == 0 || Tmax < 2) return pe_fail(err, PE_ERR_INPUT, "the dataset has no sequence with a target to score");
    if (batch > d->n_seqs) batch = d->n_seqs;
    model_acts a;
    pe_status  st = model_acts_init(&a, m, batch, Tmax, err);
    if (st) return st;
    int    *tokens  = pe_malloc((size_t)batch * Tmax * sizeof(int), err, "token batch");  /* (batch, Tmax) */
    int    *lens    = pe_malloc((size_t)batch * sizeof(int), err, "lengths");             /* (batch) */
    float  *logits  = pe_malloc((size_t)batch * Tmax * V * sizeof(float), err, "logits"); /* (batch, Tmax, V) */
    double *seq_nll = pe_malloc((size_t)d->n_seqs * sizeof(double), err, "per-sequence NLL"); /* (n_seqs) */
    int    *order   = order_by_length(d, err);                                              /* (n_seqs) */
    if (!tokens || !lens || !logits || !seq_nll || !order) st = PE_ERR_INTERNAL;
    for (int s0 = 0; !st && s0 < d->n_seqs; s0 += batch) {
        int B = d->n_seqs - s0 < batch ? d->n_seqs - s0 : batch, T = 0;
        for (int b = 0; b < B; b++)
            if (d->seqs[order[s0 + b]].len > T) T = d->seqs[order[s0 + b]].len;
        for (int b = 0; b < B; b++) {
            const text_seq *sq = &d->seqs[order[s0 + b]];
            lens[b] = sq->len;
            memcpy(tokens + (size_t)b * T, d->tokens + sq->start, (size_t)sq->len * sizeof(int));
            for (int t = sq->len; t < T; t++) tokens[(size_t)b * T + t] = 0; /* padding, never attended */
        }
        st = model_forward_tokens(logits, &a, m, tokens, lens, B, T, 0, err);
        for (int b = 0; !st && b < B; b++) {
            const text_seq *sq  = &d->seqs[order[s0 + b]];
            double          nll = 0.0;
            for (int p = sq->score_begin; p < sq->len - 1; p++)
                nll += eval_nll_of(logits + ((size_t)b * T + p) * V, V, d->tokens[sq->start + p + 1]);
            seq_nll[order[s0 + b]] = nll;
        }
    }
    for (int s = 0; !st && s < d->n_seqs; s++) { /* canonical order */
        const text_seq *sq = &d->seqs[s];
        int64_t         nb = 0;
        for (int p = sq->score_begin; p < sq->len - 1; p++) nb += d->tok_bytes[sq->start + p + 1];
        eval_lm_add_unit(acc, seq_nll[s], sq->len - 1 - sq->score_begin, nb);
    }
    free(tokens);
    free(lens);
    free(logits);
    free(seq_nll);
    free(order);
    model_acts_free(&a);
    return st;
}

pe_status eval_dense_images(eval_cls_acc *acc, const model *m, const image_dataset *d, int batch, pe_err *err) {
    memset(acc, 0, sizeof *acc);
    const model_config *c = &m->cfg;
    if (d->rows != c->image_size || d->cols != c->image_size || c->channels != 1)
        return pe_fail(err, PE_ERR_INPUT, "images are %dx%d grey but the model takes %dx%dx%d; wrong model or data",
                       d->rows, d->cols, c->channels, c->image_size, c->image_size);
    if (d->n_classes > c->n_classes)
        return pe_fail(err, PE_ERR_INPUT, "labels go up to %d but the model has %d classes", d->n_classes - 1, c->n_classes);
    if (d->n == 0) return pe_fail(err, PE_ERR_INPUT, "the image dataset is empty");
    if (batch > d->n) batch = d->n;
    model_acts a;
    pe_status  st = model_acts_init(&a, m, batch, model_image_seq_len(c), err);
    if (st) return st;
    int    NC     = c->n_classes;
    float *logits = pe_malloc((size_t)batch * NC * sizeof(float), err, "logits"); /* (batch, NC) */
    if (!logits) st = PE_ERR_INTERNAL;
    size_t img = (size_t)d->rows * d->cols;
    for (int i0 = 0; !st && i0 < d->n; i0 += batch) {
        int B = d->n - i0 < batch ? d->n - i0 : batch;
        st = model_forward_images(logits, &a, m, d->pixels + (size_t)i0 * img, B, 0, err);
        for (int b = 0; !st && b < B; b++) {
            const float *lg = logits + (size_t)b * NC;
            int          am = 0;
            for (int k = 1; k < NC; k++)
                if (lg[k] > lg[am]) am = k;
            int y = d->labels[i0 + b];
            eval_cls_add(acc, eval_nll_of(lg, NC, y), am == y);
        }
    }
    free(logits);
    model_acts_free(&a);
    return st;
}
