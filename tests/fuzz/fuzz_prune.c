/* fuzz_prune: the results.json reader of `pathens prune RUN_DIR --budget F` (src/cli/prune.c
 * cmd_prune, without --evaluate, which would run evaluations): the importance statistics, the
 * architecture and the dense metrics become plans RUN_DIR/plan_F.json, each of which must then
 * load with plan_load for the n_layers x n_heads the results.json states.
 * Input: results.json. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fuzz_util.h"
#include "plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reset();
    fz_mkdir("run");
    fz_write("run/results.json", data, size);
    char dir[4300];
    fz_path(dir, sizeof dir, "run");
    char *argv[] = {dir, "--budget", "0.5", "--budget", "1", "--quiet", NULL};
    int rc = cmd_prune(6, argv);
    if (rc != 0 && rc != PE_ERR_INPUT) {
        fprintf(stderr, "fuzz oracle: pathens prune exited %d for a bad results.json (want 0 or 2)\n", rc);
        abort();
    }
    if (rc == 0) { /* the plans it wrote load for the model the results.json describes */
        char path[4300], *text = NULL;
        pe_err err = {0};
        fz_path(path, sizeof path, "run/results.json");
        if (pe_read_file(path, &text, NULL, &err)) abort();
        cJSON *res = cJSON_Parse(text);
        free(text);
        const cJSON *imp = cJSON_GetObjectItemCaseSensitive(res, "importance");
        int L = cJSON_GetObjectItemCaseSensitive(imp, "n_layers")->valueint;
        int NH = cJSON_GetObjectItemCaseSensitive(imp, "n_heads")->valueint;
        cJSON_Delete(res);
        const char *budgets[] = {"0.5", "1"};
        for (int b = 0; b < 2; b++) {
            char name[64];
            snprintf(name, sizeof name, "run/plan_%s.json", budgets[b]);
            fz_path(path, sizeof path, name);
            plan p;
            pe_status st = plan_load(&p, path, L, NH, &err);
            if (st) {
                fprintf(stderr, "fuzz oracle: pathens prune wrote %s, which plan_load refuses: %s\n", path, err.msg);
                abort();
            }
            plan_free(&p);
        }
    }
    return 0;
}
