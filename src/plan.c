/* plan.c: static pathway plans as JSON (plan.h). */
#include "plan.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <msgpack.h>
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

/* an integer-valued JSON number in [lo, hi] (1.5, 1e300, NaN and strings are not) */
static int plan_int(const cJSON *j, double lo, double hi, int *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= lo && v <= hi) || v != floor(v)) return 0;
    *out = (int)v;
    return 1;
}

/* describe a JSON value for a message: its text, cut short */
static const char *plan_show(const cJSON *j, char *buf, size_t n) {
    if (!j) return "missing";
    char *t = cJSON_PrintUnformatted(j);
    snprintf(buf, n, "%s", t ? t : "?");
    if (t && strlen(t) >= n && n > 4) strcpy(buf + n - 4, "...");
    cJSON_free(t);
    return buf;
}

#define PLAN_FIX "write plans with pathens prune (docs/importance.md), or fix pathways.plan"

pe_status plan_load(plan *p, const char *path, int L, int NH, pe_err *err) {
    memset(p, 0, sizeof *p);
    char  *text = NULL;
    size_t len  = 0;
    pe_status st = pe_read_file(path, &text, &len, err);
    if (st) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg); /* pe_fail must not read the buffer it writes */
        return pe_fail(err, PE_ERR_INPUT, "%s: cannot read the plan (%s); check pathways.plan", path, why);
    }
    if (strlen(text) != len) {
        size_t at = strlen(text);
        free(text);
        return pe_fail(err, PE_ERR_INPUT, "%s: NUL byte at offset %zu: a plan is JSON text; %s", path, at, PLAN_FIX);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1); /* 1: nothing but blanks may follow the JSON */
    if (!root) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        cJSON *prefix = cJSON_ParseWithOpts(text, NULL, 0);
        free(text);
        if (prefix) {
            cJSON_Delete(prefix);
            return pe_fail(err, PE_ERR_INPUT, "%s: junk after the JSON object (at byte offset %zu): a plan is one JSON "
                           "object; %s", path, at, PLAN_FIX);
        }
        return pe_fail(err, PE_ERR_INPUT, "%s: not JSON (parse error near byte offset %zu); %s", path, at, PLAN_FIX);
    }
    free(text);
    char shown[64];
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format"), *ver = cJSON_GetObjectItemCaseSensitive(root, "version"),
                *nl = cJSON_GetObjectItemCaseSensitive(root, "n_layers"), *nh = cJSON_GetObjectItemCaseSensitive(root, "n_heads"),
                *hs = cJSON_GetObjectItemCaseSensitive(root, "heads");
    int version = 0, pl = 0, ph = 0;
    if (!cJSON_IsObject(root) || !cJSON_IsString(f) || strcmp(f->valuestring, "pathens-plan") || !cJSON_IsArray(hs)) {
        cJSON_Delete(root);
        return pe_fail(err, PE_ERR_INPUT, "%s: not a pathens plan (needs format \"pathens-plan\", version, n_layers, "
                       "n_heads, heads); %s", path, PLAN_FIX);
    }
    if (!plan_int(ver, 1, 1, &version)) {
        pe_fail(err, PE_ERR_INPUT, "%s: plan version is %s: this pathens reads version 1; %s", path,
                plan_show(ver, shown, sizeof shown), PLAN_FIX);
        cJSON_Delete(root);
        return PE_ERR_INPUT;
    }
    if (!plan_int(nl, 1, 1e6, &pl) || !plan_int(nh, 1, 1e6, &ph)) {
        char s2[64];
        pe_fail(err, PE_ERR_INPUT, "%s: n_layers %s and n_heads %s: expected whole numbers >= 1; %s", path,
                plan_show(nl, shown, sizeof shown), plan_show(nh, s2, sizeof s2), PLAN_FIX);
        cJSON_Delete(root);
        return PE_ERR_INPUT;
    }
    if (pl != L || ph != NH) {
        cJSON_Delete(root);
        return pe_fail(err, PE_ERR_INPUT, "%s: plan is for %d layers x %d heads but the model has %d x %d; prune a run "
                       "of this model", path, pl, ph, L, NH);
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "budget"), *ff = cJSON_GetObjectItemCaseSensitive(root, "flops_fraction");
    if ((b && !(cJSON_IsNumber(b) && b->valuedouble > 0 && b->valuedouble <= 1)) ||
        (ff && !(cJSON_IsNumber(ff) && ff->valuedouble >= 0 && ff->valuedouble <= 1))) {
        char s2[64];
        pe_fail(err, PE_ERR_INPUT, "%s: budget %s, flops_fraction %s: expected budget in (0, 1] and flops_fraction in "
                "[0, 1]; %s", path, plan_show(b, shown, sizeof shown), plan_show(ff, s2, sizeof s2), PLAN_FIX);
        cJSON_Delete(root);
        return PE_ERR_INPUT;
    }
    p->L = L;
    p->NH = NH;
    p->keep = malloc((size_t)L * NH);
    p->window = calloc((size_t)L * NH, sizeof(int));
    uint8_t *seen = calloc((size_t)L * NH, 1);
    if (!p->keep || !p->window || !seen) {
        cJSON_Delete(root);
        free(seen);
        plan_free(p);
        return pe_fail(err, PE_ERR_INTERNAL, "out of memory reading %s", path);
    }
    memset(p->keep, 1, (size_t)L * NH);
    const cJSON *h;
    int i = 0;
    cJSON_ArrayForEach(h, hs) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(h, "layer"), *hd = cJSON_GetObjectItemCaseSensitive(h, "head"),
                    *k = cJSON_GetObjectItemCaseSensitive(h, "keep"), *w = cJSON_GetObjectItemCaseSensitive(h, "window");
        int li, hi, wi;
        if (!cJSON_IsObject(h) || !plan_int(l, 0, L - 1, &li) || !plan_int(hd, 0, NH - 1, &hi) || !cJSON_IsBool(k) ||
            !plan_int(w, 0, INT_MAX, &wi)) {
            char *t = cJSON_PrintUnformatted(h);
            pe_fail(err, PE_ERR_INPUT, "%s: heads[%d] = %.200s: each head entry needs layer (a whole number in [0, %d)), "
                    "head (in [0, %d)), keep (true/false) and window (a whole number >= 0, 0 = every key); %s", path, i,
                    t ? t : "?", L, NH, PLAN_FIX);
            cJSON_free(t);
            cJSON_Delete(root);
            free(seen);
            plan_free(p);
            return PE_ERR_INPUT;
        }
        if (seen[li * NH + hi]) {
            pe_fail(err, PE_ERR_INPUT, "%s: heads[%d] lists layer %d head %d a second time: expected one entry per head; "
                    "%s", path, i, li, hi, PLAN_FIX);
            cJSON_Delete(root);
            free(seen);
            plan_free(p);
            return PE_ERR_INPUT;
        }
        seen[li * NH + hi] = 1;
        p->keep[li * NH + hi] = cJSON_IsTrue(k);
        p->window[li * NH + hi] = wi;
        i++;
    }
    free(seen);
    p->budget = b ? b->valuedouble : 0.0;
    p->flops_fraction = ff ? ff->valuedouble : 0.0;
    cJSON_Delete(root);
    return PE_OK;
}

char *plan_to_json(const plan *p, const char *source) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", "pathens-plan");
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddNumberToObject(o, "n_layers", p->L);
    cJSON_AddNumberToObject(o, "n_heads", p->NH);
    if (p->budget > 0) cJSON_AddNumberToObject(o, "budget", p->budget); /* 0: a plan loaded without one */
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

/* ---- a plan judged against chance ------------------------------------------------------------ */

void plan_paired_add(plan_paired *p, double a, double b, double w) {
    double d = a - b;
    p->sa += a, p->sb += b, p->sw += w;
    p->saa += a * a, p->sbb += b * b, p->sdd += d * d;
    p->saw += a * w, p->sbw += b * w, p->sdw += d * w, p->sww += w * w;
    p->units++;
}

/* standard error of the ratio Σx/Σw with units as clusters: sqrt(n/(n-1) Σ(x - r w)²) / Σw */
static double plan_ratio_se(double sx, double sxx, double sxw, double sw, double sww, int64_t n) {
    if (n < 2 || !(sw > 0)) return NAN;
    double r = sx / sw, ss = sxx - 2.0 * r * sxw + r * r * sww;
    if (ss < 0) ss = 0; /* rounding */
    return sqrt((double)n / (double)(n - 1) * ss) / sw;
}

void plan_paired_finish(const plan_paired *p, plan_vs_chance *o) {
    memset(o, 0, sizeof *o);
    o->units     = p->units;
    o->value     = p->sw > 0 ? p->sa / p->sw : NAN;
    o->chance    = p->sw > 0 ? p->sb / p->sw : NAN;
    o->diff      = p->sw > 0 ? (p->sa - p->sb) / p->sw : NAN;
    o->value_se  = plan_ratio_se(p->sa, p->saa, p->saw, p->sw, p->sww, p->units);
    o->chance_se = plan_ratio_se(p->sb, p->sbb, p->sbw, p->sw, p->sww, p->units);
    o->diff_se   = plan_ratio_se(p->sa - p->sb, p->sdd, p->sdw, p->sw, p->sww, p->units);
    o->diff_lo   = o->diff - 1.959963984540054 * o->diff_se;
    o->diff_hi   = o->diff + 1.959963984540054 * o->diff_se;
    o->verdict   = o->diff_hi < 0 ? PLAN_BEAT_CHANCE : o->diff_lo > 0 ? PLAN_LOST_TO_CHANCE : PLAN_INDISTINGUISHABLE;
}

const char *plan_verdict_name(int v) {
    return v == PLAN_BEAT_CHANCE ? "beat chance" : v == PLAN_LOST_TO_CHANCE ? "lost to chance" : "indistinguishable from chance";
}

/* per unit of a per_example.msgpack buffer: its id, weight (scored tokens, or 1 per image) and the mean of its
 * members' losses (nats over the unit) */
typedef struct {
    int64_t *id;
    double  *w, *loss;
    int64_t  n;
} plan_units;

static void plan_units_free(plan_units *u) {
    free(u->id);
    free(u->w);
    free(u->loss);
    memset(u, 0, sizeof *u);
}

static const msgpack_object *plan_mp_get(const msgpack_object *o, const char *key) {
    if (o->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == kl && !memcmp(kv->key.via.str.ptr, key, kl))
            return &kv->val;
    }
    return NULL;
}

static int plan_mp_num(const msgpack_object *o, double *v) {
    if (!o) return 0;
    if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32) *v = o->via.f64;
    else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) *v = (double)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) *v = (double)o->via.i64;
    else return 0;
    return isfinite(*v);
}

static pe_status plan_units_read(plan_units *u, const void *buf, size_t len, int lm, const char *what, pe_err *err) {
    memset(u, 0, sizeof *u);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t    off = 0;
    pe_status st  = PE_OK;
    if (!buf || msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || up.data.type != MSGPACK_OBJECT_ARRAY) {
        st = pe_fail(err, PE_ERR_INPUT, "%s per_example.msgpack: not an array of units; rerun pathens prune --evaluate", what);
        goto out;
    }
    uint32_t n = up.data.via.array.size;
    u->id   = malloc(sizeof(int64_t) * (n ? n : 1));
    u->w    = malloc(sizeof(double) * (n ? n : 1));
    u->loss = malloc(sizeof(double) * (n ? n : 1));
    if (!u->id || !u->w || !u->loss) {
        st = pe_fail(err, PE_ERR_INTERNAL, "out of memory reading the %s per_example.msgpack", what);
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *e = &up.data.via.array.ptr[i], *ml = plan_mp_get(e, "member_nll");
        double id = 0, w = 1, s = 0;
        if (!plan_mp_num(plan_mp_get(e, "unit"), &id) || (lm && !plan_mp_num(plan_mp_get(e, "tokens"), &w)) || !ml ||
            ml->type != MSGPACK_OBJECT_ARRAY || ml->via.array.size == 0) {
            st = pe_fail(err, PE_ERR_INPUT, "%s per_example.msgpack: entry %u lacks unit, tokens or member_nll; rerun "
                         "pathens prune --evaluate", what, i);
            goto out;
        }
        for (uint32_t k = 0; k < ml->via.array.size; k++) {
            double v;
            if (!plan_mp_num(&ml->via.array.ptr[k], &v)) {
                st = pe_fail(err, PE_ERR_INPUT, "%s per_example.msgpack: entry %u: member_nll[%u] is not a finite number",
                             what, i, k);
                goto out;
            }
            s += v;
        }
        u->id[i]   = (int64_t)id;
        u->w[i]    = w;
        u->loss[i] = s / ml->via.array.size;
    }
    u->n = n;
out:
    msgpack_unpacked_destroy(&up);
    if (st) plan_units_free(u);
    return st;
}

pe_status plan_compare_per_example(plan_vs_chance *out, const void *plan_pex, size_t plan_len, const void *chance_pex,
                                   size_t chance_len, int lm, pe_err *err) {
    memset(out, 0, sizeof *out);
    plan_units a, b;
    if (plan_units_read(&a, plan_pex, plan_len, lm, "the plan's", err)) return err->code;
    if (plan_units_read(&b, chance_pex, chance_len, lm, "the chance baseline's", err)) {
        plan_units_free(&a);
        return err->code;
    }
    plan_paired acc = {0};
    int mismatch = a.n != b.n;
    for (int64_t u = 0; !mismatch && u < a.n; u++) {
        mismatch = a.id[u] != b.id[u] || a.w[u] != b.w[u];
        if (a.w[u] > 0) plan_paired_add(&acc, a.loss[u], b.loss[u], a.w[u]);
    }
    int64_t na = a.n, nb = b.n;
    plan_units_free(&a);
    plan_units_free(&b);
    if (mismatch)
        return pe_fail(err, PE_ERR_INPUT, "the plan (%lld units) and the chance baseline (%lld units) were evaluated on "
                       "different units: they must share the data; rerun pathens prune --evaluate", (long long)na,
                       (long long)nb);
    plan_paired_finish(&acc, out);
    return PE_OK;
}
