/* fuzz_plan: static pathway plans (plan_load, src/plan.c) for 5-layer x 8-head, 2 x 4 and 2 x 2
 * models; a plan that loads must survive plan_to_json -> plan_load unchanged.
 * Input: the plan JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "plan.h"

static void one(const char *path, int L, int NH) {
    plan p;
    memset(&p, 0, sizeof p);
    pe_err err = {0};
    pe_status st = plan_load(&p, path, L, NH, &err);
    fz_check(st, &err, "plan_load");
    if (st) return;
    char *text = plan_to_json(&p, "fuzz");
    fz_write("again.json", text, strlen(text));
    free(text);
    char again[4300];
    fz_path(again, sizeof again, "again.json");
    plan q;
    memset(&q, 0, sizeof q);
    st = plan_load(&q, again, L, NH, &err);
    if (st || memcmp(p.keep, q.keep, (size_t)L * NH) || memcmp(p.window, q.window, sizeof(int) * L * NH)) {
        fprintf(stderr, "fuzz oracle: a loaded plan does not survive plan_to_json + plan_load: %s\n", st ? err.msg : "");
        abort();
    }
    plan_free(&q);
    plan_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reset();
    fz_write("plan.json", data, size);
    char path[4300];
    fz_path(path, sizeof path, "plan.json");
    one(path, 5, 8); /* stories260K */
    one(path, 2, 4); /* tests/mkmodel.c gpt and llama */
    one(path, 2, 2);
    return 0;
}
