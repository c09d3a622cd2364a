/* fuzz_sweep: the results.json reader of `pathens sweep SWEEP.ini --aggregate` (src/cli/sweep.c),
 * which also writes sweep.json and reads it back for sweep_report.html (src/report.c).
 * The sweep is fixed: two points (pathways.ratio = 2, 4); their folders <run.out>/<hash>/ are learnt
 * once per process by running each point for real (`--index i`: the folder is made, the evaluation
 * fails for want of a model, FAILED is written). Each input gives both points DONE and a results.json.
 * Input: results.json of point 0 FZ_SEP results.json of point 1 (no separator: the same for both). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fuzz_util.h"

static char point[2][256]; /* folder names under sw/ */

static void write_ini(void) {
    char out[4300], ini[8600];
    fz_path(out, sizeof out, "sw");
    snprintf(ini, sizeof ini,
             "[model]\npath = no-model.bin\ntokenizer = bytes\n[data]\npath = data.txt\n[run]\nout = %s\n"
             "[pathways]\nscheme = unbiased\nratio = 2, 4\nmembers = 2\n", out);
    fz_write("sweep.ini", ini, strlen(ini));
    fz_write("data.txt", "hello\n", 6);
    fz_mkdir("sw");
}

/* the one folder under sw/ not in `known` */
static void new_point(char *dst, const char *known) {
    char sw[4300];
    fz_path(sw, sizeof sw, "sw");
    DIR *d = opendir(sw);
    struct dirent *e;
    dst[0] = '\0';
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' && strcmp(e->d_name, known) && strlen(e->d_name) < 256) snprintf(dst, 256, "%s", e->d_name);
    if (d) closedir(d);
    if (!dst[0]) {
        fprintf(stderr, "fuzz_sweep setup: pathens sweep --index made no point folder under %s\n", sw);
        abort();
    }
}

static int sweep(const char *a1, const char *a2) {
    char ini[4300];
    fz_path(ini, sizeof ini, "sweep.ini");
    char *argv[] = {ini, (char *)a1, (char *)a2, "--quiet", NULL};
    int argc = 4;
    if (!a2) argv[2] = "--quiet", argv[3] = NULL, argc = 3;
    return cmd_sweep(argc, argv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        fz_reset();
        write_ini();
        sweep("--index", "0");
        new_point(point[0], "");
        sweep("--index", "1");
        new_point(point[1], point[0]);
        ready = 1;
    }
    fz_part p[2];
    int n = fz_split(data, size, p, 2);
    fz_reset();
    write_ini();
    for (int i = 0; i < 2; i++) {
        char name[512];
        snprintf(name, sizeof name, "sw/%s", point[i]);
        fz_mkdir(name);
        snprintf(name, sizeof name, "sw/%s/DONE", point[i]);
        fz_write(name, "done\n", 5);
        snprintf(name, sizeof name, "sw/%s/results.json", point[i]);
        const fz_part *q = &p[n > 1 ? i : 0];
        fz_write(name, q->p, q->n);
    }
    int rc = sweep("--aggregate", NULL);
    if (rc != 0 && rc != PE_ERR_INPUT) {
        fprintf(stderr, "fuzz oracle: pathens sweep --aggregate exited %d for a bad results.json (want 0 or 2)\n", rc);
        abort();
    }
    return 0;
}
