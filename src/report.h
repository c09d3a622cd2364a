/* report.h: `pathens report`: one self-contained HTML page (inline SVG and CSS; no scripts, no
 * external fonts, images or links) from a run folder's results.json and optional frontier.json.
 * What each plot shows: docs/report.md. */
#pragma once
#include "common.h"

/* Render the report of run_dir (reads run_dir/results.json and, if it exists,
 * run_dir/frontier.json) into a malloc'ed, NUL-terminated HTML text (*html, caller frees).
 * Missing or malformed files and fields give PE_ERR_INPUT with a message naming the file and
 * the field. The output is a pure function of the two files (no dates, no host names). */
pe_status report_render(const char *run_dir, char **html, pe_err *err);

/* report_render, then write the page atomically to out_path (NULL: run_dir/report.html).
 * If written is not NULL it receives the path written (up to n bytes). */
pe_status report_write(const char *run_dir, const char *out_path, char *written, size_t n, pe_err *err);

/* The sweep report: <sweep_dir>/sweep.json (written by pathens sweep --aggregate) as one
 * self-contained HTML page at out_path: the headline metric versus pathways.ratio, one line per
 * pathways.scheme (with 95% intervals, dense as a reference), and the ensemble gain versus the
 * number of members K. */
pe_status report_write_sweep(const char *sweep_dir, const char *out_path, pe_err *err);
