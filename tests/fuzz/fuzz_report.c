/* fuzz_report: the readers of `pathens report` (src/report.c): a run folder's results.json and
 * frontier.json (report_render), and a sweep folder's sweep.json (report_write_sweep).
 * Input: results.json FZ_SEP frontier.json FZ_SEP sweep.json (missing or empty parts: no file). */
#include <stdlib.h>

#include "fuzz_util.h"
#include "report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_part p[3];
    int n = fz_split(data, size, p, 3);
    fz_reset();
    fz_mkdir("run");
    fz_write("run/results.json", p[0].p, p[0].n);
    if (n > 1 && p[1].n) fz_write("run/frontier.json", p[1].p, p[1].n);
    char dir[4300], out[4300];
    fz_path(dir, sizeof dir, "run");
    char *html = NULL;
    pe_err err = {0};
    pe_status st = report_render(dir, &html, &err);
    fz_check(st, &err, "report_render");
    free(html);
    if (n > 2 && p[2].n) {
        fz_mkdir("sweep");
        fz_write("sweep/sweep.json", p[2].p, p[2].n);
        fz_path(dir, sizeof dir, "sweep");
        fz_path(out, sizeof out, "sweep/sweep_report.html");
        pe_err e2 = {0};
        st = report_write_sweep(dir, out, &e2);
        fz_check(st, &e2, "report_write_sweep");
    }
    return 0;
}
