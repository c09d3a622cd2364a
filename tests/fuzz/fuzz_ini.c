/* fuzz_ini: run configs: an INI file (cfg_load_ini) plus --set overrides (cfg_apply_set, one per
 * line), then every check (cfg_validate, cfg_validate_train, cfg_parse_span) and the resolved
 * config as JSON (cfg_to_json).
 * Input: config.ini FZ_SEP overrides, one "section.key=value" per line. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_part p[2];
    int n = fz_split(data, size, p, 2);
    fz_reset();
    fz_write("config.ini", p[0].p, p[0].n);
    char path[4300];
    fz_path(path, sizeof path, "config.ini");
    static pe_config c; /* 30 KB of paths: not on the stack */
    cfg_init_defaults(&c);
    pe_err err = {0};
    pe_status st = cfg_load_ini(&c, path, &err);
    fz_check(st, &err, "cfg_load_ini");
    if (!st && n > 1) {
        char *sets = malloc(p[1].n + 1);
        memcpy(sets, p[1].p, p[1].n);
        sets[p[1].n] = '\0';
        for (char *line = sets, *next; !st && line; line = next) {
            next = strchr(line, '\n');
            if (next) *next++ = '\0';
            if (!*line) continue;
            st = cfg_apply_set(&c, line, &err);
            /* a --set without '=' (or without section.key) is a usage error (exit 1), said with a message */
            if (st == PE_ERR_USAGE && err.msg[0] && strstr(err.msg, "expected the form --set section.key=value")) continue;
            fz_check(st, &err, "cfg_apply_set");
        }
        free(sets);
    }
    if (!st) {
        pe_err e1 = {0}, e2 = {0}, e3 = {0};
        fz_check(cfg_validate(&c, &e1), &e1, "cfg_validate");
        fz_check(cfg_validate_train(&c, &e2), &e2, "cfg_validate_train");
        double b, e;
        fz_check(cfg_parse_span(c.data_span, &b, &e, &e3), &e3, "cfg_parse_span");
        cJSON *j = cfg_to_json(&c);
        char *t = cJSON_PrintUnformatted(j);
        free(t);
        cJSON_Delete(j);
    }
    return 0;
}
