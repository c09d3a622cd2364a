/* plan.c: static pathway plans as JSON (plan.h). */
#include "plan.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

void plan_free(plan *p) {
    free(p->keep);
    free(p->window);
    memset(p, 0, sizeof *p);
}

int64_t plan_head_connections(int n, int w, int causal) {
    if (w <= 0 || w >= n) return causal ? (int64_t)n * (n + 1) / 2 : (int64_t)n * n;
    if (!causal) return (int64_t)n * w;
    /* query i keeps min(w, i + 1) keys */
    return (int64_t)w * (w + 1) / 2 + (int64_t)(n - w) * w;
}

pe_status plan_load(plan *p, const char *path, int L, int NH, pe_err *err) {
    memset(p, 0, sizeof *p);
    char *text = NULL;
    pe_status st = pe_read_file(path, &text, NULL, err);
    if (st) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg); /* pe_fail must not read the buffer it writes */
        return pe_fail(err, PE_ERR_INPUT, "%s: cannot read the plan (%s); check pathways.plan", path, why);
    }
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return pe_fail(err, PE_ERR_INPUT, "%s: not JSON; write plans with pathens prune", path);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format"), *nl = cJSON_GetObjectItemCaseSensitive(root, "n_layers"),
                *nh = cJSON_GetObjectItemCaseSensitive(root, "n_heads"), *hs = cJSON_GetObjectItemCaseSensitive(root, "heads");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, "pathens-plan") || !cJSON_IsNumber(nl) || !cJSON_IsNumber(nh) ||
        !cJSON_IsArray(hs)) {
        cJSON_Delete(root);
        return pe_fail(err, PE_ERR_INPUT, "%s: not a pathens plan (needs format \"pathens-plan\", n_layers, n_heads, heads)",
                       path);
    }
    if (nl->valueint != L || nh->valueint != NH) {
        int pl = nl->valueint, ph = nh->valueint;
        cJSON_Delete(root);
        return pe_fail(err, PE_ERR_INPUT, "%s: plan is for %d layers x %d heads but the model has %d x %d", path, pl, ph,
                       L, NH);
    }
    p->L = L;
    p->NH = NH;
    p->keep = malloc((size_t)L * NH);
    p->window = calloc((size_t)L * NH, sizeof(int));
    if (!p->keep || !p->window) {
        cJSON_Delete(root);
        plan_free(p);
        return pe_fail(err, PE_ERR_INTERNAL, "out of memory reading %s", path);
    }
    memset(p->keep, 1, (size_t)L * NH);
    const cJSON *h;
    cJSON_ArrayForEach(h, hs) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(h, "layer"), *hd = cJSON_GetObjectItemCaseSensitive(h, "head"),
                    *k = cJSON_GetObjectItemCaseSensitive(h, "keep"), *w = cJSON_GetObjectItemCaseSensitive(h, "window");
        if (!cJSON_IsNumber(l) || !cJSON_IsNumber(hd) || l->valueint < 0 || l->valueint >= L || hd->valueint < 0 ||
            hd->valueint >= NH || !cJSON_IsBool(k) || !cJSON_IsNumber(w) || w->valueint < 0) {
            cJSON_Delete(root);
            plan_free(p);
            return pe_fail(err, PE_ERR_INPUT, "%s: each head entry needs layer in [0,%d), head in [0,%d), keep "
                           "(true/false) and window >= 0", path, L, NH);
        }
        p->keep[l->valueint * NH + hd->valueint] = cJSON_IsTrue(k);
        p->window[l->valueint * NH + hd->valueint] = w->valueint;
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "budget"), *ff = cJSON_GetObjectItemCaseSensitive(root, "flops_fraction");
    p->budget = cJSON_IsNumber(b) ? b->valuedouble : 0.0;
    p->flops_fraction = cJSON_IsNumber(ff) ? ff->valuedouble : 0.0;
    cJSON_Delete(root);
    return PE_OK;
}

char *plan_to_json(const plan *p, const char *source) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", "pathens-plan");
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddNumberToObject(o, "n_layers", p->L);
    cJSON_AddNumberToObject(o, "n_heads", p->NH);
    cJSON_AddNumberToObject(o, "budget", p->budget);
    cJSON_AddNumberToObject(o, "flops_fraction", p->flops_fraction);
    cJSON_AddStringToObject(o, "source", source ? source : "");
    cJSON *hs = cJSON_AddArrayToObject(o, "heads");
    for (int l = 0; l < p->L; l++)
        for (int h = 0; h < p->NH; h++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "layer", l);
            cJSON_AddNumberToObject(e, "head", h);
            cJSON_AddBoolToObject(e, "keep", p->keep[l * p->NH + h]);
            cJSON_AddNumberToObject(e, "window", p->window[l * p->NH + h]);
            cJSON_AddItemToArray(hs, e);
        }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}
