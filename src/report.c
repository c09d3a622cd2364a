/* report.c: `pathens report`: an HTML page with inline SVG plots from results.json (+ frontier.json).
 *
 * Layers, bottom up:
 *   sbuf        growable string, printf, HTML/XML escaping (UTF-8 checked)
 *   fmt         numbers with fixed decimals and a typographic minus ("n/a" for non-finite)
 *   j*          cJSON getters with a sticky error naming the file and the field path
 *   svg / plot  a small SVG layer: canvas, "nice" ticks, axes, polylines, bands, markers,
 *               error bars, legends; every figure below is built from these
 *   sections    header, summary table, and the five plots (each falls back to a one-line note)
 *   sweep       report_write_sweep: the page of a `pathens sweep` from its sweep.json (table of
 *               every point, metric vs ratio per scheme, ensemble - dense vs K), same SVG layer
 * The page has no scripts and references nothing outside itself; see docs/report.md. */
#include "report.h"

#include "importance.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ==== string buffer ============================================================================ */

typedef struct {
    char  *s;
    size_t len, cap;
    int    oom;
} sbuf;

static void sb_reserve(sbuf *b, size_t extra) {
    if (b->oom || b->len + extra + 1 <= b->cap) return;
    size_t nc = b->cap ? b->cap : 65536;
    while (nc < b->len + extra + 1) nc *= 2;
    char *p = realloc(b->s, nc);
    if (!p) {
        b->oom = 1;
        return;
    }
    b->s   = p;
    b->cap = nc;
}

static void sb_putn(sbuf *b, const char *s, size_t n) {
    sb_reserve(b, n);
    if (b->oom) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_put(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    sb_reserve(b, (size_t)n);
    if (b->oom) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* length of a valid UTF-8 sequence at s (1..4), 0 if invalid */
static int utf8_len(const unsigned char *s) {
    if (s[0] < 0x80) return 1;
    int n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return n;
}

/* text escaped for HTML and XML (attribute values too); control characters dropped, invalid
 * UTF-8 replaced by U+FFFD, so the inline SVGs stay well-formed XML whatever the paths contain */
static void sb_esc(sbuf *b, const char *s) {
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        switch (*p) {
        case '&': sb_put(b, "&amp;"); p++; continue;
        case '<': sb_put(b, "&lt;"); p++; continue;
        case '>': sb_put(b, "&gt;"); p++; continue;
        case '"': sb_put(b, "&quot;"); p++; continue;
        case '\'': sb_put(b, "&#39;"); p++; continue;
        default: break;
        }
        if (*p < 0x20) {
            if (*p == '\t' || *p == '\n') sb_putn(b, " ", 1);
            p++;
            continue;
        }
        int n = utf8_len(p);
        if (n == 0) {
            sb_put(b, "\xef\xbf\xbd");
            p++;
        } else {
            sb_putn(b, (const char *)p, (size_t)n);
            p += n;
        }
    }
}

/* characters (code points) of a UTF-8 string: for text-width estimates */
static int u8_chars(const char *s) {
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xc0) != 0x80;
    return n;
}

/* ==== report context, number formatting ======================================================= */

#define MINUS  "\xe2\x88\x92" /* U+2212 */
#define NDASH  "\xe2\x80\x93" /* U+2013 */
#define DELTA  "\xce\x94"     /* U+0394 */
#define TIMES  "\xc3\x97"     /* U+00D7 */
#define MIDDOT "\xc2\xb7"     /* U+00B7 */

typedef struct {
    sbuf        b;
    pe_err     *err;
    int         failed;
    const char *rfile; /* results.json path, for messages */
    const char *ffile; /* frontier.json path */
    char        ring[32][64];
    int         ri;
    /* what the run is */
    int         is_lm, K;
    const char *unit; /* "nats/token" or "nats/image" */
    char        title[800];  /* report_title: "<run> (model <model>)" */
    char        mpath[4096]; /* the model path, tidied for display */
} rep;

/* v with dec decimals; plus: "+" on non-negative values; U+2212 for minus; "n/a" if not finite */
static const char *fmtn(rep *r, double v, int dec, int plus) {
    char *o = r->ring[r->ri++ % 32];
    if (!isfinite(v)) {
        snprintf(o, 64, "n/a");
        return o;
    }
    char t[48];
    snprintf(t, sizeof t, "%.*f", dec < 0 ? 0 : dec, v);
    const char *digits = t[0] == '-' ? t + 1 : t;
    int zero = strspn(digits, "0.") == strlen(digits);
    if (t[0] == '-' && !zero) snprintf(o, 64, MINUS "%s", digits);
    else snprintf(o, 64, "%s%s", plus ? "+" : "", digits);
    return o;
}
static const char *F(rep *r, double v, int dec) { return fmtn(r, v, dec, 0); }
static const char *S(rep *r, double v, int dec) { return fmtn(r, v, dec, 1); }

/* decimals that show a 95% interval of half-width hw to about two significant digits */
static int ci_dec(double lo, double hi, int min_dec) {
    double hw = (hi - lo) / 2;
    int    d  = isfinite(hw) && hw > 0 ? 2 - (int)floor(log10(hw)) : min_dec;
    return d < min_dec ? min_dec : d > 8 ? 8 : d;
}

/* 1234567 -> "1,234,567" */
static const char *fint(rep *r, double v) {
    char *o = r->ring[r->ri++ % 32];
    if (!isfinite(v)) return strcpy(o, "n/a");
    char t[40];
    snprintf(t, sizeof t, "%.0f", fabs(v));
    int n = (int)strlen(t), k = 0;
    if (v < 0) k += snprintf(o, 64, MINUS);
    for (int i = 0; i < n && k < 60; i++) {
        o[k++] = t[i];
        if ((n - i - 1) % 3 == 0 && i < n - 1) o[k++] = ',';
    }
    o[k] = 0;
    return o;
}

/* ==== JSON access with a sticky error ========================================================== */

static void jfail(rep *r, const char *file, const char *path, const char *key, const char *what) {
    if (r->failed) return;
    r->failed = 1;
    pe_fail(r->err, PE_ERR_INPUT, "%s: field '%s%s%s' %s; see docs/report.md for the fields the report reads", file,
            path, path[0] && key[0] ? "." : "", key, what);
}

static const cJSON *jget(const cJSON *o, const char *key) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

/* number at o.key; null -> NaN; missing -> NaN, an error if req */
static double jnum(rep *r, const char *file, const cJSON *o, const char *path, const char *key, int req) {
    if (r->failed) return NAN;
    const cJSON *v = jget(o, key);
    if (!v) {
        if (req) jfail(r, file, path, key, "is missing");
        return NAN;
    }
    if (cJSON_IsNull(v)) return NAN;
    if (!cJSON_IsNumber(v)) {
        jfail(r, file, path, key, "is not a number");
        return NAN;
    }
    return v->valuedouble;
}

/* [lo, hi] at o.key (elements may be null) */
static void jci(rep *r, const char *file, const cJSON *o, const char *path, const char *key, int req, double *lo,
                double *hi) {
    *lo = *hi = NAN;
    if (r->failed) return;
    const cJSON *v = jget(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (req) jfail(r, file, path, key, "is missing");
        return;
    }
    const cJSON *a = cJSON_GetArrayItem(v, 0), *b = cJSON_GetArrayItem(v, 1);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !(cJSON_IsNumber(a) || cJSON_IsNull(a)) ||
        !(cJSON_IsNumber(b) || cJSON_IsNull(b))) {
        jfail(r, file, path, key, "is not a [lo, hi] pair of numbers");
        return;
    }
    *lo = cJSON_IsNumber(a) ? a->valuedouble : NAN;
    *hi = cJSON_IsNumber(b) ? b->valuedouble : NAN;
}

/* object (or array, want_array) at o.key; NULL if missing or null (an error if req) */
static const cJSON *jsub(rep *r, const char *file, const cJSON *o, const char *path, const char *key, int req,
                         int want_array) {
    if (r->failed) return NULL;
    const cJSON *v = jget(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (req) jfail(r, file, path, key, "is missing");
        return NULL;
    }
    if (want_array ? !cJSON_IsArray(v) : !cJSON_IsObject(v)) {
        jfail(r, file, path, key, want_array ? "is not an array" : "is not an object");
        return NULL;
    }
    return v;
}
static const cJSON *jobj(rep *r, const char *f, const cJSON *o, const char *p, const char *k, int req) {
    return jsub(r, f, o, p, k, req, 0);
}
static const cJSON *jarr(rep *r, const char *f, const cJSON *o, const char *p, const char *k, int req) {
    return jsub(r, f, o, p, k, req, 1);
}

/* string at o.key or NULL */
static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = jget(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* an integer in [lo, hi) at o.key (required) */
static int jint(rep *r, const char *file, const cJSON *o, const char *path, const char *key, int lo, int hi) {
    double v = jnum(r, file, o, path, key, 1);
    if (r->failed) return lo;
    if (!(v == floor(v)) || v < lo || v >= hi) {
        char what[96];
        snprintf(what, sizeof what, "is not an integer in [%d, %d]", lo, hi - 1);
        jfail(r, file, path, key, what);
        return lo;
    }
    return (int)v;
}

typedef struct {
    double v, lo, hi;
} est;

static est jest(rep *r, const char *file, const cJSON *o, const char *path, const char *key, const char *cikey, int req) {
    est e;
    e.v = jnum(r, file, o, path, key, req);
    jci(r, file, o, path, cikey, req, &e.lo, &e.hi);
    return e;
}

/* ==== SVG layer ================================================================================ */

static const char *PALETTE[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#7f7f7f"};
#define NPALETTE 10
#define C_ENS   "#1f6fb4"
#define C_DENSE "#222222"
#define C_MEAN  "#d9711c"
#define C_BAR   "#9ecae1"

static void svg_open(sbuf *b, double w, double h, const char *kind, const char *title) {
    sb_printf(b, "<svg class=\"plot\" data-plot=\"%s\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                 "role=\"img\" aria-label=\"", kind, w, h, w, h);
    sb_esc(b, title);
    sb_put(b, "\">\n<title>");
    sb_esc(b, title);
    sb_put(b, "</title>\n");
}
static void svg_close(sbuf *b) { sb_put(b, "</svg>\n"); }

static void svg_line(sbuf *b, double x1, double y1, double x2, double y2, const char *stroke, double w,
                     const char *dash) {
    sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%g\"%s%s%s/>\n",
              x1, y1, x2, y2, stroke, w, dash ? " stroke-dasharray=\"" : "", dash ? dash : "", dash ? "\"" : "");
}

/* attrs: extra attributes, starting with a space */
static void svg_rect(sbuf *b, double x, double y, double w, double h, const char *fill, const char *attrs) {
    sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"%s/>\n", x, y, w < 0 ? 0 : w,
              h < 0 ? 0 : h, fill, attrs ? attrs : "");
}

static void svg_text(sbuf *b, double x, double y, const char *anchor, double size, const char *attrs,
                     const char *text) {
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%g\" text-anchor=\"%s\"%s>", x, y, size,
              anchor ? anchor : "start", attrs ? attrs : "");
    sb_esc(b, text);
    sb_put(b, "</text>\n");
}

/* text rotated by deg about its anchor point */
static void svg_text_rot(sbuf *b, double x, double y, double deg, const char *anchor, double size, const char *text) {
    char attrs[96];
    snprintf(attrs, sizeof attrs, " transform=\"rotate(%g %.1f %.1f)\"", deg, x, y);
    svg_text(b, x, y, anchor, size, attrs, text);
}

/* estimated width in px of text at a font size (sans-serif average advance) */
static double text_w(const char *s, double size) { return 0.56 * size * u8_chars(s); }

enum { MK_CIRCLE, MK_SQUARE, MK_TRIANGLE, MK_DIAMOND };

static void svg_marker(sbuf *b, double x, double y, int shape, const char *color, int filled, double r) {
    const char *fill = filled ? color : "#ffffff";
    switch (shape) {
    case MK_SQUARE:
        sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" stroke=\"%s\" stroke-width=\"1.5\"/>\n",
                  x - r, y - r, 2 * r, 2 * r, fill, color);
        break;
    case MK_TRIANGLE:
        sb_printf(b, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\" stroke=\"%s\" stroke-width=\"1.5\"/>\n",
                  x, y - 1.2 * r, x - 1.1 * r, y + 0.8 * r, x + 1.1 * r, y + 0.8 * r, fill, color);
        break;
    case MK_DIAMOND:
        sb_printf(b, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\" stroke=\"%s\" stroke-width=\"1.5\"/>\n",
                  x, y - 1.3 * r, x + 1.3 * r, y, x, y + 1.3 * r, x - 1.3 * r, y, fill, color);
        break;
    default:
        sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\" stroke=\"%s\" stroke-width=\"1.5\"/>\n", x, y, r,
                  fill, color);
    }
}

/* legends: a symbol and a label per row */
enum { LG_LINE, LG_DASH, LG_DOT, LG_BAND, LG_BAR, LG_HATCH, LG_MARK, LG_MARK_OPEN, LG_LINE_MARK };
typedef struct {
    int         kind;
    const char *color;
    const char *label;
    int         shape; /* markers */
} legend_item;

static void svg_legend(sbuf *b, double x, double y, const legend_item *it, int n) {
    sb_put(b, "<g class=\"legend\">\n"); /* one group: tests/check_layout.py checks nothing else overlaps it */
    for (int i = 0; i < n; i++) {
        double yy = y + 20.0 * i, c = x + 12;
        switch (it[i].kind) {
        case LG_LINE: svg_line(b, x, yy, x + 24, yy, it[i].color, 2, NULL); break;
        case LG_DASH: svg_line(b, x, yy, x + 24, yy, it[i].color, 1.6, "6 4"); break;
        case LG_DOT: svg_line(b, x, yy, x + 24, yy, it[i].color, 2, "2 3"); break;
        case LG_BAND:
            svg_rect(b, x, yy - 7, 24, 14, it[i].color, " fill-opacity=\"0.2\"");
            svg_line(b, x, yy, x + 24, yy, it[i].color, 2, NULL);
            break;
        case LG_BAR: svg_rect(b, x + 2, yy - 7, 20, 14, it[i].color, " stroke=\"#4a7fae\""); break;
        case LG_HATCH:
            svg_rect(b, x + 2, yy - 7, 20, 14, "#eeeeee", NULL);
            svg_rect(b, x + 2, yy - 7, 20, 14, "url(#pe-hatch)", " stroke=\"#999\"");
            break;
        case LG_MARK: svg_marker(b, c, yy, it[i].shape, it[i].color, 1, 4.5); break;
        case LG_MARK_OPEN: svg_marker(b, c, yy, it[i].shape, it[i].color, 0, 4.5); break;
        case LG_LINE_MARK:
            svg_line(b, x, yy, x + 24, yy, it[i].color, 2, NULL);
            svg_marker(b, c, yy, it[i].shape, it[i].color, 1, 4);
            break;
        }
        svg_text(b, x + 32, yy + 4, "start", 12, NULL, it[i].label);
    }
    sb_put(b, "</g>\n");
}

/* "nice" numbers (1, 2, 5 x 10^k), after Heckbert, Graphics Gems (1990) */
static double nice_num(double x, int round_) {
    double e = floor(log10(x)), f = x / pow(10, e), nf;
    if (round_) nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    else nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return nf * pow(10, e);
}

/* widen [lo, hi] to multiples of a nice step giving about nt ticks */
static void nice_range(double lo, double hi, int nt, double *a, double *b, double *step) {
    if (!isfinite(lo) || !isfinite(hi)) lo = 0, hi = 1;
    if (hi < lo) {
        double t = lo;
        lo = hi, hi = t;
    }
    if (hi - lo <= 1e-12 * fmax(1.0, fabs(hi))) {
        double d = lo != 0 ? fabs(lo) * 0.05 : 0.5;
        lo -= d, hi += d;
    }
    double st = nice_num(nice_num(hi - lo, 0) / (nt > 1 ? nt - 1 : 1), 1);
    *a = floor(lo / st + 1e-9) * st;
    *b = ceil(hi / st - 1e-9) * st;
    *step = st;
}

/* decimals a tick step needs: 0.05 -> 2, 0.2 -> 1, 5 -> 0 */
static int step_dec(double st) {
    int d = (int)ceil(-log10(st) - 1e-9);
    return d < 0 ? 0 : d;
}

/* a plot: the plot area (px) and the data ranges mapped onto it */
typedef struct {
    rep   *r;
    sbuf  *b;
    double L, T, R, B, padx, pady; /* plot area; data inset from its edges by padx/pady px */
    double x0, x1, y0, y1, xs, ys; /* ranges; tick steps (0: no numeric ticks) */
} plot;

static double PX(const plot *p, double x) {
    double d = p->x1 - p->x0;
    return p->L + p->padx + (d > 0 ? (x - p->x0) / d : 0.5) * (p->R - p->L - 2 * p->padx);
}
static double PY(const plot *p, double y) {
    double d = p->y1 - p->y0;
    return p->B - p->pady - (d > 0 ? (y - p->y0) / d : 0.5) * (p->B - p->T - 2 * p->pady);
}

/* open a w x h canvas with the plot area inside the given margins */
static void plot_open(plot *p, rep *r, double w, double h, double ml, double mt, double mr, double mb, const char *kind,
                      const char *title) {
    memset(p, 0, sizeof *p);
    p->r = r, p->b = &r->b;
    p->L = ml, p->T = mt, p->R = w - mr, p->B = h - mb, p->padx = p->pady = 8;
    svg_open(p->b, w, h, kind, title);
}

static void plot_xrange(plot *p, double lo, double hi, int nt) { nice_range(lo, hi, nt, &p->x0, &p->x1, &p->xs); }
static void plot_yrange(plot *p, double lo, double hi, int nt) { nice_range(lo, hi, nt, &p->y0, &p->y1, &p->ys); }
/* integer ticks only (counts, ensemble sizes) */
static void int_ticks(double *step) {
    if (*step < 1) *step = 1;
}

/* a categorical tick at data x with a label (rotated when rot != 0) */
static void plot_xtick(plot *p, double x, const char *label, double rot) {
    double X = PX(p, x);
    svg_line(p->b, X, p->B, X, p->B + 5, "#444", 1, NULL);
    if (rot != 0) svg_text_rot(p->b, X + 3, p->B + 16, rot, "end", 11, label);
    else svg_text(p->b, X, p->B + 18, "middle", 11, NULL, label);
}

/* background, grid, numeric ticks at the multiples of xs/ys inside the ranges (where > 0), axis lines, axis labels (xlab_dy: offset of
 * the x label below the axis) */
static void plot_axes(plot *p, const char *xlabel, const char *ylabel, double xlab_dy) {
    sbuf *b = p->b;
    svg_rect(b, p->L, p->T, p->R - p->L, p->B - p->T, "#fafafa", NULL);
    if (p->ys > 0) {
        long i0 = lround(ceil(p->y0 / p->ys - 1e-6)), i1 = lround(floor(p->y1 / p->ys + 1e-6));
        int  dec = step_dec(p->ys);
        for (long i = i0; i <= i1; i++) {
            double v = i * p->ys, Y = PY(p, v);
            svg_line(b, p->L, Y, p->R, Y, "#e3e3e3", 1, NULL);
            svg_line(b, p->L - 5, Y, p->L, Y, "#444", 1, NULL);
            svg_text(b, p->L - 8, Y + 4, "end", 11, NULL, F(p->r, fabs(v) < p->ys * 1e-9 ? 0 : v, dec));
        }
    }
    if (p->xs > 0) {
        long i0 = lround(ceil(p->x0 / p->xs - 1e-6)), i1 = lround(floor(p->x1 / p->xs + 1e-6));
        int  dec = step_dec(p->xs);
        for (long i = i0; i <= i1; i++) {
            double v = i * p->xs, X = PX(p, v);
            svg_line(b, X, p->T, X, p->B, "#efefef", 1, NULL);
            svg_line(b, X, p->B, X, p->B + 5, "#444", 1, NULL);
            svg_text(b, X, p->B + 18, "middle", 11, NULL, F(p->r, fabs(v) < p->xs * 1e-9 ? 0 : v, dec));
        }
    }
    svg_line(b, p->L, p->B, p->R, p->B, "#444", 1, NULL);
    svg_line(b, p->L, p->T, p->L, p->B, "#444", 1, NULL);
    if (xlabel) svg_text(b, (p->L + p->R) / 2, p->B + xlab_dy, "middle", 12.5, " font-weight=\"600\"", xlabel);
    if (ylabel) {
        /* left of the widest tick label */
        double x = p->L - 16 - 7.0 * 6;
        if (x < 14) x = 14;
        svg_text_rot(b, x, (p->T + p->B) / 2, -90, "middle", 12.5, ylabel);
    }
}

/* a polyline through the finite points (NaN splits it) */
static void plot_polyline(plot *p, const double *x, const double *y, int n, const char *color, double w,
                          const char *dash) {
    int open = 0;
    for (int i = 0; i <= n; i++) {
        int ok = i < n && isfinite(x[i]) && isfinite(y[i]);
        if (ok && !open) {
            sb_printf(p->b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%g\" stroke-linejoin=\"round\"%s%s%s points=\"",
                      color, w, dash ? " stroke-dasharray=\"" : "", dash ? dash : "", dash ? "\"" : "");
            open = 1;
        }
        if (ok) sb_printf(p->b, "%.1f,%.1f ", PX(p, x[i]), PY(p, y[i]));
        if (!ok && open) {
            sb_put(p->b, "\"/>\n");
            open = 0;
        }
    }
}

/* a shaded band between lo[] and hi[] over the runs of finite points */
static void plot_band(plot *p, const double *x, const double *lo, const double *hi, int n, const char *color) {
    int i = 0;
    while (i < n) {
        while (i < n && !(isfinite(x[i]) && isfinite(lo[i]) && isfinite(hi[i]))) i++;
        int j = i;
        while (j < n && isfinite(x[j]) && isfinite(lo[j]) && isfinite(hi[j])) j++;
        if (j - i >= 2) {
            sb_printf(p->b, "<polygon fill=\"%s\" fill-opacity=\"0.2\" stroke=\"none\" points=\"", color);
            for (int k = i; k < j; k++) sb_printf(p->b, "%.1f,%.1f ", PX(p, x[k]), PY(p, hi[k]));
            for (int k = j - 1; k >= i; k--) sb_printf(p->b, "%.1f,%.1f ", PX(p, x[k]), PY(p, lo[k]));
            sb_put(p->b, "\"/>\n");
        } else if (j - i == 1) { /* a single point: a translucent vertical bar */
            svg_rect(p->b, PX(p, x[i]) - 7, PY(p, hi[i]), 14, PY(p, lo[i]) - PY(p, hi[i]), color, " fill-opacity=\"0.2\"");
        }
        i = j;
    }
}

static void plot_hline(plot *p, double y, const char *color, double w, const char *dash) {
    if (isfinite(y)) svg_line(p->b, p->L, PY(p, y), p->R, PY(p, y), color, w, dash);
}
static void plot_vline(plot *p, double x, const char *color, double w, const char *dash) {
    if (isfinite(x)) svg_line(p->b, PX(p, x), p->T, PX(p, x), p->B, color, w, dash);
}
static void plot_errbar(plot *p, double x, double lo, double hi, const char *color) {
    if (!isfinite(x) || !isfinite(lo) || !isfinite(hi)) return;
    double X = PX(p, x);
    svg_line(p->b, X, PY(p, lo), X, PY(p, hi), color, 1.3, NULL);
    svg_line(p->b, X - 4, PY(p, lo), X + 4, PY(p, lo), color, 1.3, NULL);
    svg_line(p->b, X - 4, PY(p, hi), X + 4, PY(p, hi), color, 1.3, NULL);
}
static void plot_marker(plot *p, double x, double y, int shape, const char *color, int filled, double r) {
    if (isfinite(x) && isfinite(y)) svg_marker(p->b, PX(p, x), PY(p, y), shape, color, filled, r);
}

/* running min/max over finite values */
static void mm_add(double *lo, double *hi, double v) {
    if (!isfinite(v)) return;
    if (!isfinite(*lo) || v < *lo) *lo = v;
    if (!isfinite(*hi) || v > *hi) *hi = v;
}

/* ==== page pieces ============================================================================= */

static void note(rep *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(rep *r, const char *fmt, ...) {
    char    t[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t, sizeof t, fmt, ap);
    va_end(ap);
    sb_put(&r->b, "<p class=\"note\">");
    sb_esc(&r->b, t);
    sb_put(&r->b, "</p>\n");
}

static void caption(rep *r, const char *text) {
    sb_put(&r->b, "<figcaption>");
    sb_esc(&r->b, text);
    sb_put(&r->b, "</figcaption>\n</figure>\n");
}

static void section(rep *r, const char *id, const char *title) {
    sb_printf(&r->b, "<section id=\"%s\">\n<h2>", id);
    sb_esc(&r->b, title);
    sb_put(&r->b, "</h2>\n");
}

static const char *basename_of(const char *p) {
    const char *s = strrchr(p, '/');
    return s && s[1] ? s + 1 : p;
}

/* the last component of a path after tidying ("configs/../runs/x/" -> "x"); "" for "." or "/" */
static void last_name(const char *path, char *out, size_t n) {
    char t[4096];
    pe_path_tidy(path, t, sizeof t);
    const char *b = basename_of(t);
    snprintf(out, n, "%.255s", strcmp(b, ".") && strcmp(b, "..") && strcmp(b, "/") ? b : "");
}

/* the page title: the run's name (run.out's folder, else RUN_DIR's) and the model: its file name,
 * or "folder/file" when the file name says nothing ("model.safetensors", "pytorch_model.bin") */
static void report_title(const cJSON *root, const char *run_dir, char *out, size_t n) {
    const cJSON *cfg = jget(root, "config");
    const char  *ro = jstr(jget(cfg, "run"), "out"), *mp = jstr(jget(cfg, "model"), "path");
    const char  *mc = jstr(jget(cfg, "model"), "config");
    char         run[256] = "", model[512] = "";
    if (ro) last_name(ro, run, sizeof run);
    if (!run[0]) last_name(run_dir, run, sizeof run);
    if (!run[0]) {
        char rp[PATH_MAX];
        if (realpath(run_dir, rp)) last_name(rp, run, sizeof run);
    }
    if (mp && mp[0]) {
        char t[4096];
        pe_path_tidy(mp, t, sizeof t);
        const char *b = basename_of(t);
        size_t      stem = strcspn(b, ".");
        if (b != t && ((stem == 5 && !strncmp(b, "model", 5)) || (stem == 13 && !strncmp(b, "pytorch_model", 13)))) {
            const char *q = b - 1; /* the '/' before the file name */
            while (q > t && q[-1] != '/') q--;
            snprintf(model, sizeof model, "%.511s", q);
        } else {
            snprintf(model, sizeof model, "%.511s", b);
        }
    } else if (mc && mc[0]) {
        last_name(mc, model, sizeof model);
    }
    if (run[0] && model[0]) snprintf(out, n, "%s (model %s)", run, model);
    else snprintf(out, n, "%s", run[0] ? run : model[0] ? model : "run");
}

/* one JSON scalar as text */
static void json_value_text(rep *r, const cJSON *v) {
    if (cJSON_IsString(v)) sb_esc(&r->b, v->valuestring[0] ? v->valuestring : "(empty)");
    else if (cJSON_IsNumber(v)) {
        char t[40];
        snprintf(t, sizeof t, "%.10g", v->valuedouble);
        sb_esc(&r->b, t);
    } else if (cJSON_IsBool(v)) sb_put(&r->b, cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNull(v)) sb_put(&r->b, "null");
    else sb_put(&r->b, "&#8230;");
}

/* "key = value" chips of every scalar in a config object */
static void kv_chips(rep *r, const cJSON *o) {
    const cJSON *it;
    int          n = 0;
    cJSON_ArrayForEach(it, o) {
        if (cJSON_IsObject(it) || cJSON_IsArray(it)) continue;
        sb_put(&r->b, "<span class=\"chip\">");
        sb_esc(&r->b, it->string);
        sb_put(&r->b, " = ");
        json_value_text(r, it);
        sb_put(&r->b, "</span> ");
        n++;
    }
    if (!n) sb_put(&r->b, "&#8212;");
}

static void row_head(rep *r, const char *k) {
    sb_put(&r->b, "<tr><th>");
    sb_esc(&r->b, k);
    sb_put(&r->b, "</th><td>");
}

static void sec_header(rep *r, const cJSON *root, const char *run_dir) {
    const cJSON *cfg = jobj(r, r->rfile, root, "", "config", 1);
    const cJSON *cm = jobj(r, r->rfile, cfg, "config", "model", 0), *cd = jobj(r, r->rfile, cfg, "config", "data", 0);
    const cJSON *cp = jobj(r, r->rfile, cfg, "config", "pathways", 0);
    const cJSON *model = jobj(r, r->rfile, root, "", "model", 0), *data = jobj(r, r->rfile, root, "", "data", 0);
    const cJSON *arch = jobj(r, r->rfile, model, "model", "architecture", 0), *pj = jobj(r, r->rfile, root, "", "pathens", 0);
    if (r->failed) return;
    char        tidy[4096];
    const char *mpath = jstr(cm, "path");
    if (mpath) mpath = pe_path_tidy(mpath, r->mpath, sizeof r->mpath);
    sb_put(&r->b, "<header>\n<h1>pathens report: ");
    sb_esc(&r->b, r->title);
    sb_put(&r->b, "</h1>\n<p class=\"sub\">run folder <code>");
    sb_esc(&r->b, pe_path_tidy(run_dir, tidy, sizeof tidy));
    sb_put(&r->b, "</code>");
    if (jstr(pj, "version")) {
        sb_put(&r->b, " &#183; results.json written by pathens ");
        sb_esc(&r->b, jstr(pj, "version"));
        if (jstr(pj, "git_commit")) {
            char c[16];
            snprintf(c, sizeof c, "%.12s", jstr(pj, "git_commit"));
            sb_put(&r->b, " (git ");
            sb_esc(&r->b, c);
            sb_put(&r->b, ")");
        }
    }
    sb_put(&r->b, "</p>\n</header>\n");

    section(r, "config", "Model, data and pathways");
    sb_put(&r->b, "<table class=\"kv\">\n");
    row_head(r, "model");
    sb_put(&r->b, "<code>");
    sb_esc(&r->b, mpath ? mpath : "(unknown)");
    sb_put(&r->b, "</code>");
    if (jstr(model, "format")) {
        sb_put(&r->b, " (");
        sb_esc(&r->b, jstr(model, "format"));
        sb_put(&r->b, ")");
    }
    double np = jnum(r, r->rfile, model, "model", "parameters", 0);
    if (isfinite(np)) sb_printf(&r->b, ", %s parameters", fint(r, np));
    sb_put(&r->b, "</td></tr>\n");
    if (arch) {
        row_head(r, "architecture");
        static const char *keys[] = {"n_layers", "n_heads", "n_kv_heads", "dim", "hidden_dim", "vocab_size", "seq_len",
                                     "n_classes", "image_size", "patch_size", "pos", "norm", "mlp", "head", "causal"};
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
            const cJSON *v = jget(arch, keys[i]);
            if (!v || (cJSON_IsNumber(v) && v->valuedouble == 0 && strcmp(keys[i], "n_layers"))) continue;
            sb_put(&r->b, "<span class=\"chip\">");
            sb_esc(&r->b, keys[i]);
            sb_put(&r->b, " = ");
            json_value_text(r, v);
            sb_put(&r->b, "</span> ");
        }
        sb_put(&r->b, "</td></tr>\n");
    }
    row_head(r, "data");
    const char *dpath = jstr(cd, "path");
    if (dpath) dpath = pe_path_tidy(dpath, tidy, sizeof tidy);
    sb_put(&r->b, "<code>");
    sb_esc(&r->b, dpath ? dpath : "(unknown)");
    sb_put(&r->b, "</code>");
    if (data) {
        sb_put(&r->b, "<br>");
        kv_chips(r, data);
    }
    if (cd) {
        double lim = jnum(r, r->rfile, cd, "config.data", "limit", 0);
        if (isfinite(lim) && lim > 0) sb_printf(&r->b, "<span class=\"chip\">limit = %s</span>", fint(r, lim));
    }
    sb_put(&r->b, "</td></tr>\n");
    row_head(r, "pathways");
    if (cp) kv_chips(r, cp);
    else sb_put(&r->b, "&#8212;");
    sb_put(&r->b, "</td></tr>\n</table>\n</section>\n");
}

/* ==== summary table =========================================================================== */

static void td_est(rep *r, est e, int dec) {
    if (!isfinite(e.v)) {
        sb_put(&r->b, "<td>n/a</td>");
        return;
    }
    sb_printf(&r->b, "<td>%s", F(r, e.v, dec));
    if (isfinite(e.lo) && isfinite(e.hi)) sb_printf(&r->b, " <span class=\"ci\">[%s, %s]</span>", F(r, e.lo, dec), F(r, e.hi, dec));
    sb_put(&r->b, "</td>");
}
static void td_diff(rep *r, est e) {
    int dec = ci_dec(e.lo, e.hi, 4);
    if (!isfinite(e.v)) {
        sb_put(&r->b, "<td>n/a</td>");
        return;
    }
    sb_printf(&r->b, "<td><b>%s</b>", S(r, e.v, dec));
    if (isfinite(e.lo) && isfinite(e.hi)) sb_printf(&r->b, " <span class=\"ci\">[%s, %s]</span>", S(r, e.lo, dec), S(r, e.hi, dec));
    sb_put(&r->b, "</td>");
}
static void td_num(rep *r, double v, int dec) { sb_printf(&r->b, "<td>%s</td>", F(r, v, dec)); }

/* mean of members[k].key (classifiers have no member_mean block; the examples are the same for
 * every member, so the mean of the members' means is the metric of the mean member) */
static double members_mean(rep *r, const cJSON *members, const char *key) {
    double       s = 0;
    int          n = 0, k = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, members) {
        char path[32];
        snprintf(path, sizeof path, "members[%d]", k++);
        double v = jnum(r, r->rfile, m, path, key, 0);
        if (isfinite(v)) s += v, n++;
    }
    return n ? s / n : NAN;
}

static void sec_summary(rep *r, const cJSON *root) {
    const cJSON *dense = jobj(r, r->rfile, root, "", "dense", 1);
    const cJSON *ens = r->K ? jobj(r, r->rfile, root, "", "ensemble", 1) : NULL;
    const cJSON *mem = jarr(r, r->rfile, root, "", "members", 0);
    if (r->failed) return;
    section(r, "summary", "Summary");
    sb_put(&r->b, "<table class=\"num\">\n");
    char ens_label[64];
    snprintf(ens_label, sizeof ens_label, "ensemble (K = %d)", r->K);
    if (r->is_lm) {
        const cJSON *mm = r->K ? jobj(r, r->rfile, root, "", "member_mean", 1) : NULL;
        sb_put(&r->b, "<tr><th></th><th>NLL (nats/token) [95% CI]</th><th>perplexity</th><th>bits/byte</th>"
                      "<th>scored tokens</th></tr>\n");
        struct {
            const char  *label, *path;
            const cJSON *o;
        } rows[3] = {{"dense", "dense", dense}, {"mean member", "member_mean", mm}, {ens_label, "ensemble", ens}};
        for (int i = 0; i < 3; i++) {
            if (!rows[i].o) continue;
            est e = jest(r, r->rfile, rows[i].o, rows[i].path, "nll_per_token", "nll_per_token_ci95", 1);
            sb_put(&r->b, "<tr><th>");
            sb_esc(&r->b, rows[i].label);
            sb_put(&r->b, "</th>");
            td_est(r, e, ci_dec(e.lo, e.hi, 4));
            td_num(r, jnum(r, r->rfile, rows[i].o, rows[i].path, "perplexity", 0), 3);
            td_num(r, jnum(r, r->rfile, rows[i].o, rows[i].path, "bits_per_byte", 0), 4);
            sb_printf(&r->b, "<td>%s</td></tr>\n", fint(r, jnum(r, r->rfile, rows[i].o, rows[i].path, "tokens", 0)));
        }
        if (ens) {
            const cJSON *md = jobj(r, r->rfile, ens, "ensemble", "minus_dense", 1);
            est          d  = {jnum(r, r->rfile, md, "ensemble.minus_dense", "mean", 1), NAN, NAN};
            jci(r, r->rfile, md, "ensemble.minus_dense", "ci95", 1, &d.lo, &d.hi);
            sb_put(&r->b, "<tr class=\"diff\"><th>ensemble &#8722; dense (paired)</th>");
            td_diff(r, d);
            sb_put(&r->b, "<td colspan=\"3\" class=\"hint\">negative: the ensemble predicts better than dense</td></tr>\n");
        }
    } else {
        sb_put(&r->b, "<tr><th></th><th>accuracy [95% CI]</th><th>NLL (nats/image) [95% CI]</th><th>ECE</th>"
                      "<th>images</th></tr>\n");
        struct {
            const char  *label, *path;
            const cJSON *o;
        } rows[2] = {{"dense", "dense", dense}, {ens_label, "ensemble", ens}};
        for (int i = 0; i < 2; i++) {
            if (!rows[i].o) continue;
            est a = jest(r, r->rfile, rows[i].o, rows[i].path, "accuracy", "accuracy_ci95", 1);
            est n = jest(r, r->rfile, rows[i].o, rows[i].path, "nll", "nll_ci95", 1);
            sb_put(&r->b, "<tr><th>");
            sb_esc(&r->b, rows[i].label);
            sb_put(&r->b, "</th>");
            td_est(r, a, 4);
            td_est(r, n, ci_dec(n.lo, n.hi, 4));
            td_num(r, jnum(r, r->rfile, rows[i].o, rows[i].path, "ece", 0), 4);
            sb_printf(&r->b, "<td>%s</td></tr>\n", fint(r, jnum(r, r->rfile, rows[i].o, rows[i].path, "examples", 0)));
            if (i == 0 && r->K > 0) {
                est ma = {members_mean(r, mem, "accuracy"), NAN, NAN}, mn = {members_mean(r, mem, "nll"), NAN, NAN};
                sb_put(&r->b, "<tr><th>mean member</th>");
                td_est(r, ma, 4);
                td_est(r, mn, 4);
                td_num(r, members_mean(r, mem, "ece"), 4);
                sb_put(&r->b, "<td></td></tr>\n");
            }
        }
        if (ens) {
            const cJSON *da = jobj(r, r->rfile, ens, "ensemble", "accuracy_minus_dense", 1);
            const cJSON *dn = jobj(r, r->rfile, ens, "ensemble", "nll_minus_dense", 1);
            est          a = {jnum(r, r->rfile, da, "ensemble.accuracy_minus_dense", "mean", 1), NAN, NAN};
            est          n = {jnum(r, r->rfile, dn, "ensemble.nll_minus_dense", "mean", 1), NAN, NAN};
            jci(r, r->rfile, da, "ensemble.accuracy_minus_dense", "ci95", 1, &a.lo, &a.hi);
            jci(r, r->rfile, dn, "ensemble.nll_minus_dense", "ci95", 1, &n.lo, &n.hi);
            sb_put(&r->b, "<tr class=\"diff\"><th>ensemble &#8722; dense (paired)</th>");
            td_diff(r, a);
            td_diff(r, n);
            sb_put(&r->b, "<td colspan=\"2\" class=\"hint\">accuracy up / NLL down: the ensemble is better</td></tr>\n");
        }
    }
    sb_put(&r->b, "</table>\n");
    if (r->K == 0)
        note(r, "Dense evaluation only (pathways.members = 0): no members, no ensemble.");
    sb_put(&r->b, "<p class=\"small\">Intervals: mean " "\xc2\xb1" " 1.96 standard errors with documents (images) as "
                  "the independent units; the ensemble " "\xe2\x88\x92" " dense difference is paired (docs/metrics.md).</p>\n");
    sb_put(&r->b, "</section>\n");
}

/* ==== 1. ensemble-size curve ================================================================== */

static void plot_curve(rep *r, const cJSON *root, const char *key, const char *cikey, const char *ylabel,
                       const char *what) {
    const cJSON *curve = jarr(r, r->rfile, root, "", "curve", 1);
    const cJSON *dense = jobj(r, r->rfile, root, "", "dense", 1), *mem = jarr(r, r->rfile, root, "", "members", 1);
    if (r->failed) return;
    int n = cJSON_GetArraySize(curve);
    if (n == 0) {
        note(r, "The curve array of results.json is empty: no ensemble-size curve.");
        return;
    }
    double *x = calloc((size_t)n * 4, sizeof *x);
    if (!x) {
        r->b.oom = 1;
        return;
    }
    double *y = x + n, *lo = y + n, *hi = lo + n;
    double  ymin = NAN, ymax = NAN;
    for (int i = 0; i < n; i++) {
        char path[32];
        snprintf(path, sizeof path, "curve[%d]", i);
        const cJSON *c = cJSON_GetArrayItem(curve, i);
        double       k = jnum(r, r->rfile, c, path, "k", 0);
        x[i] = isfinite(k) ? k : i + 1;
        y[i] = jnum(r, r->rfile, c, path, key, 1);
        jci(r, r->rfile, c, path, cikey, 1, &lo[i], &hi[i]);
        mm_add(&ymin, &ymax, y[i]), mm_add(&ymin, &ymax, lo[i]), mm_add(&ymin, &ymax, hi[i]);
    }
    double dv = jnum(r, r->rfile, dense, "dense", key, 1);
    double mv = r->is_lm ? jnum(r, r->rfile, jobj(r, r->rfile, root, "", "member_mean", 1), "member_mean", key, 1)
                         : members_mean(r, mem, key);
    if (r->failed) {
        free(x);
        return;
    }
    mm_add(&ymin, &ymax, dv), mm_add(&ymin, &ymax, mv);

    plot p;
    char title[160];
    snprintf(title, sizeof title, "Ensemble-size curve: %s of the first k members", what);
    plot_open(&p, r, 780, 380, 78, 16, 220, 52, "curve", title);
    /* x: k = 1..K, integer ticks (every k up to 12 members) */
    plot_xrange(&p, 1, x[n - 1], 8);
    int_ticks(&p.xs);
    if (x[n - 1] <= 12) p.xs = 1;
    p.x0 = n > 1 ? x[0] : x[0] - 0.5, p.x1 = n > 1 ? x[n - 1] : x[0] + 0.5;
    plot_yrange(&p, ymin, ymax, 6);
    plot_axes(&p, "ensemble size k (members)", ylabel, 40);
    plot_band(&p, x, lo, hi, n, C_ENS);
    plot_hline(&p, dv, C_DENSE, 1.6, "6 4");
    plot_hline(&p, mv, C_MEAN, 1.6, "6 4");
    plot_polyline(&p, x, y, n, C_ENS, 2.2, NULL);
    for (int i = 0; i < n; i++) plot_marker(&p, x[i], y[i], MK_CIRCLE, C_ENS, 1, 3.2);
    legend_item lg[] = {{LG_LINE_MARK, C_ENS, "ensemble of the first k", MK_CIRCLE},
                        {LG_BAND, C_ENS, "its 95% interval", 0},
                        {LG_DASH, C_DENSE, "dense model", 0},
                        {LG_DASH, C_MEAN, "mean member", 0}};
    svg_legend(p.b, p.R + 18, p.T + 14, lg, 4);
    svg_close(p.b);
    free(x);
}

static void sec_curve(rep *r, const cJSON *root) {
    section(r, "curve", "1. Ensemble-size curve");
    if (r->K == 0) {
        note(r, "No ensemble-size curve: the run has no members (pathways.members = 0).");
        sb_put(&r->b, "</section>\n");
        return;
    }
    char cap[400];
    if (r->is_lm) {
        sb_put(&r->b, "<figure>\n");
        plot_curve(r, root, "nll_per_token", "nll_per_token_ci95", "NLL (nats/token)", "NLL per token");
        snprintf(cap, sizeof cap,
                 "NLL per token (nats, lower is better) of the ensemble of the first k of the K = %d members, with its "
                 "95%% interval shaded; dashed: the dense model and the mean member.", r->K);
        caption(r, cap);
    } else {
        sb_put(&r->b, "<figure>\n");
        plot_curve(r, root, "accuracy", "accuracy_ci95", "accuracy (fraction correct)", "accuracy");
        snprintf(cap, sizeof cap,
                 "Accuracy (fraction of images correct, higher is better) of the ensemble of the first k of the K = %d "
                 "members, 95%% interval shaded; dashed: the dense model and the mean member.", r->K);
        caption(r, cap);
        sb_put(&r->b, "<figure>\n");
        plot_curve(r, root, "nll", "nll_ci95", "NLL (nats/image)", "NLL per image");
        snprintf(cap, sizeof cap,
                 "NLL per image (nats, lower is better) of the ensemble of the first k of the K = %d members, 95%% "
                 "interval shaded; dashed: the dense model and the mean member.", r->K);
        caption(r, cap);
    }
    sb_put(&r->b, "</section>\n");
}

/* ==== 2. member-loss histogram ================================================================ */

static void sec_hist(rep *r, const cJSON *root) {
    section(r, "members", "2. Member losses");
    if (r->K == 0) {
        note(r, "No member histogram: the run has no members (pathways.members = 0).");
        sb_put(&r->b, "</section>\n");
        return;
    }
    const char  *key = r->is_lm ? "nll_per_token" : "nll";
    const cJSON *mem = jarr(r, r->rfile, root, "", "members", 1);
    double       dv  = jnum(r, r->rfile, jobj(r, r->rfile, root, "", "dense", 1), "dense", key, 1);
    double       ev  = jnum(r, r->rfile, jobj(r, r->rfile, root, "", "ensemble", 1), "ensemble", key, 1);
    double      *v   = calloc((size_t)r->K, sizeof *v);
    if (!v) {
        r->b.oom = 1;
        return;
    }
    double mlo = NAN, mhi = NAN, ulo = NAN, uhi = NAN, mean = 0;
    int    nv = 0;
    for (int k = 0; k < r->K; k++) {
        char path[32];
        snprintf(path, sizeof path, "members[%d]", k);
        v[k] = jnum(r, r->rfile, cJSON_GetArrayItem(mem, k), path, key, 1);
        mm_add(&mlo, &mhi, v[k]);
        if (isfinite(v[k])) mean += v[k], nv++;
    }
    if (r->failed || nv == 0) {
        if (!r->failed) note(r, "No finite member losses in results.json.");
        free(v);
        sb_put(&r->b, "</section>\n");
        return;
    }
    mean /= nv;
    ulo = mlo, uhi = mhi;
    mm_add(&ulo, &uhi, dv), mm_add(&ulo, &uhi, ev);
    /* bin width: about sqrt(K) + 3 bins over the members, but at least 1/30 of the axis so that the
     * bars stay readable when dense lies far from the members */
    double target = floor(sqrt((double)nv)) + 3, urange = uhi - ulo, mrange = mhi - mlo;
    double w = fmax(mrange / target, urange / 30);
    if (!(w > 0)) w = fmax(fabs(mlo) * 0.01, 1e-6);
    w = nice_num(w, 1);
    double e0 = floor(mlo / w + 1e-9) * w;
    int    nb = (int)floor((mhi - e0) / w + 1e-9) + 1;
    int   *cnt = calloc((size_t)nb, sizeof *cnt), cmax = 0;
    if (!cnt) {
        free(v);
        r->b.oom = 1;
        return;
    }
    for (int k = 0; k < r->K; k++) {
        if (!isfinite(v[k])) continue;
        int i = (int)floor((v[k] - e0) / w + 1e-9);
        i = i < 0 ? 0 : i >= nb ? nb - 1 : i;
        if (++cnt[i] > cmax) cmax = cnt[i];
    }
    const char *unit = r->unit;
    char        xl[64], title[96];
    snprintf(xl, sizeof xl, "member NLL (%s)", unit);
    snprintf(title, sizeof title, "Histogram of the %d members' NLL", r->K);
    sb_put(&r->b, "<figure>\n");
    plot p;
    plot_open(&p, r, 780, 340, 78, 16, 220, 52, "histogram", title);
    plot_xrange(&p, fmin(ulo, e0), fmax(uhi, e0 + nb * w), 7);
    plot_yrange(&p, 0, cmax * 1.15, 6);
    int_ticks(&p.ys);
    if (cmax <= 10) p.ys = 1;
    p.y0 = 0;
    p.y1 = ceil(cmax * 1.15 / p.ys) * p.ys;
    p.pady = 0; /* bars stand on the axis */
    plot_axes(&p, xl, "members (count)", 40);
    double y0 = PY(&p, 0);
    for (int i = 0; i < nb; i++) {
        if (!cnt[i]) continue;
        double a = PX(&p, e0 + i * w), bx = PX(&p, e0 + (i + 1) * w);
        svg_rect(p.b, a, PY(&p, cnt[i]), bx - a, y0 - PY(&p, cnt[i]), C_BAR, " stroke=\"#4a7fae\" stroke-width=\"1\"");
    }
    for (int k = 0; k < r->K; k++) /* rug: one tick per member */
        if (isfinite(v[k])) svg_line(p.b, PX(&p, v[k]), y0 - 7, PX(&p, v[k]), y0, "#1d4f7a", 1.4, NULL);
    plot_vline(&p, dv, C_DENSE, 1.8, "6 4");
    plot_vline(&p, mean, C_MEAN, 1.8, "2 3");
    plot_vline(&p, ev, C_ENS, 2.2, NULL);
    char l1[64];
    snprintf(l1, sizeof l1, "members (bin %s)", F(r, w, step_dec(w)));
    legend_item lg[] = {{LG_BAR, C_BAR, l1, 0},
                        {LG_DASH, C_DENSE, "dense model", 0},
                        {LG_LINE, C_ENS, "ensemble", 0},
                        {LG_DOT, C_MEAN, "mean of the members", 0}};
    svg_legend(p.b, p.R + 18, p.T + 14, lg, 4);
    svg_close(p.b);
    char cap[400];
    snprintf(cap, sizeof cap,
             "Histogram of the K = %d members' NLL (%s; each member is one attention-subsampled sub-model; ticks at "
             "the bottom: the members' exact values); vertical lines: dense model (dashed), the %d-member ensemble "
             "(solid) and the members' mean (dotted).",
             r->K, unit, r->K);
    caption(r, cap);
    sb_put(&r->b, "</section>\n");
    free(cnt);
    free(v);
}

/* ==== importance (3. heatmap, 4. attention distance) ========================================= */

typedef struct {
    int     L, H, nb;
    double *lo, *hi;                     /* bands [nb] */
    double *delta, *se;                  /* [L*H] heatmap value, its stderr (NaN: none) */
    int    *src;                         /* [L*H] 0 none, 1 sampled, 2 ablation */
    double *mdist, *mass;                /* [L*H], [L*H*nb] (NaN: none) */
    int    *has_att;                     /* [L*H] */
    double *lay_d, *lay_lo, *lay_hi;     /* [L] whole-layer ablation */
    /* sampled vs ablation (NaN: none): heads [L*H] then (layer, band) pairs [L*nb] */
    double *ag_s, *ag_lo, *ag_hi, *ag_a;
    const char *unit;
    /* uniform attention (every allowed key equally) on T positions: mass by band [nb], mean distance; uni = NULL:
     * no length known */
    double *uni, uni_md;
    int     uni_T, uni_causal;
} imp_data;

static void imp_free(imp_data *d) {
    free(d->lo);
    free(d->delta);
    free(d->src);
    free(d->has_att);
    free(d->lay_d);
    free(d->ag_s);
    free(d->uni);
}

/* the attention profile of a head that attends equally to every allowed key, on sequences of T positions:
 * causal, query i spreads 1/(i+1) over distances 0..i, averaged over the queries i = 0..T-1 (the dense statistics
 * average over queries too): mass(band) = (1/T) sum_i |band & [0, i]| / (i+1), mean distance (T-1)/4;
 * bidirectional, every (i, j) pair weighs 1/T^2: mass(band) = sum_{d in band} (d ? 2 (T-d) : T) / T^2, mean distance
 * (T^2-1)/(3T) */
static void uniform_reference(imp_data *d, int T, int causal) {
    if (T < 1 || T > (1 << 20) || d->nb < 1) return;
    d->uni = calloc((size_t)d->nb, sizeof(double));
    if (!d->uni) return;
    d->uni_T = T, d->uni_causal = causal;
    for (int b = 0; b < d->nb; b++) {
        double lo = d->lo[b], hi = b == d->nb - 1 ? INFINITY : d->hi[b], m = 0.0; /* the last band takes the rest */
        if (causal) {
            for (int i = 0; i < T; i++) {
                double top = hi < i ? hi : i, cnt = top >= lo ? top - lo + 1 : 0;
                m += cnt / (i + 1.0);
            }
            m /= T;
        } else {
            /* lo comes from the file: only a value in [0, T) starts the loop (no out-of-range int cast) */
            for (int dd = lo > 0 ? (lo < T ? (int)lo : T) : 0; dd < T && dd <= hi; dd++) m += dd ? 2.0 * (T - dd) : T;
            m /= (double)T * T;
        }
        d->uni[b] = m;
    }
    d->uni_md = causal ? (T - 1) / 4.0 : ((double)T * T - 1) / (3.0 * T);
}

/* parse and check results.json "importance" (schema: docs/report.md); 0 = ok */
static int imp_parse(rep *r, const cJSON *im, imp_data *d) {
    const char *f = r->rfile;
    memset(d, 0, sizeof *d);
    d->L = jint(r, f, im, "importance", "n_layers", 1, 4097);
    d->H = jint(r, f, im, "importance", "n_heads", 1, 4097);
    const char *metric = jstr(im, "metric");
    d->unit = metric && !strcmp(metric, "nll") ? "nats/image" : metric && !strcmp(metric, "nll_per_token") ? "nats/token" : r->unit;
    const cJSON *bands = jarr(r, f, im, "importance", "bands", 1), *heads = jarr(r, f, im, "importance", "heads", 1);
    const cJSON *layers = jarr(r, f, im, "importance", "layers", 0);
    if (r->failed) return -1;
    if (cJSON_GetArraySize(heads) != d->L * d->H) { /* before sizing anything by L x H */
        char what[96];
        snprintf(what, sizeof what, "has %d entries, expected n_layers x n_heads = %d", cJSON_GetArraySize(heads), d->L * d->H);
        jfail(r, f, "importance", "heads", what);
        return -1;
    }
    int L = d->L, H = d->H, nb = d->nb = cJSON_GetArraySize(bands);
    size_t LH = (size_t)L * H;
    d->lo      = calloc((size_t)nb * 2 + 1, sizeof(double));
    d->delta   = calloc(LH * (4 + (size_t)nb), sizeof(double));
    d->src     = calloc(LH, sizeof(int));
    d->has_att = calloc(LH, sizeof(int));
    d->lay_d   = calloc((size_t)L * 3, sizeof(double));
    size_t NA  = LH + (size_t)L * nb; /* sampled vs ablation: heads, then (layer, band) pairs */
    d->ag_s    = calloc(NA * 4 + 1, sizeof(double));
    if (!d->lo || !d->delta || !d->src || !d->has_att || !d->lay_d || !d->ag_s) {
        r->b.oom = 1;
        return -1;
    }
    d->hi = d->lo + nb, d->se = d->delta + LH, d->mdist = d->se + LH, d->mass = d->mdist + LH;
    d->lay_lo = d->lay_d + L, d->lay_hi = d->lay_lo + L;
    for (size_t i = 0; i < LH * (4 + (size_t)nb); i++) d->delta[i] = NAN;
    for (int i = 0; i < 3 * L; i++) d->lay_d[i] = NAN;
    d->ag_lo = d->ag_s + NA, d->ag_hi = d->ag_lo + NA, d->ag_a = d->ag_hi + NA;
    for (size_t i = 0; i < NA * 4; i++) d->ag_s[i] = NAN;
    for (int i = 0; i < nb; i++) {
        char path[48];
        snprintf(path, sizeof path, "importance.bands[%d]", i);
        const cJSON *bo = cJSON_GetArrayItem(bands, i);
        d->lo[i] = jnum(r, f, bo, path, "lo", 1);
        d->hi[i] = jnum(r, f, bo, path, "hi", 1);
    }
    int i = 0;
    const cJSON *h;
    cJSON_ArrayForEach(h, heads) {
        char path[64];
        snprintf(path, sizeof path, "importance.heads[%d]", i++);
        int l = jint(r, f, h, path, "layer", 0, L), hd = jint(r, f, h, path, "head", 0, H);
        if (r->failed) return -1;
        size_t       c  = (size_t)l * H + hd;
        const cJSON *sa = jobj(r, f, h, path, "sampled", 0), *ab = jobj(r, f, h, path, "ablation", 0);
        const cJSON *at = jobj(r, f, h, path, "attention", 0);
        char         sp[96];
        if (sa) {
            snprintf(sp, sizeof sp, "%s.sampled", path);
            d->delta[c] = jnum(r, f, sa, sp, "delta", 1);
            d->se[c]    = jnum(r, f, sa, sp, "stderr", 0);
            d->src[c]   = 1;
            d->ag_s[c]  = d->delta[c];
            jci(r, f, sa, sp, "ci95", 0, &d->ag_lo[c], &d->ag_hi[c]);
        }
        if (ab) {
            snprintf(sp, sizeof sp, "%s.ablation", path);
            double dv = jnum(r, f, ab, sp, "delta", 1), sv = jnum(r, f, ab, sp, "stderr", 0);
            if (!sa) d->delta[c] = dv, d->se[c] = sv, d->src[c] = 2;
            d->ag_a[c] = dv;
        }
        if (at) {
            snprintf(sp, sizeof sp, "%s.attention", path);
            d->mdist[c] = jnum(r, f, at, sp, "mean_distance", 0);
            const cJSON *m = jarr(r, f, at, sp, "mass_by_band", 1);
            if (r->failed) return -1;
            if (cJSON_GetArraySize(m) != nb) {
                char what[96];
                snprintf(what, sizeof what, "has %d entries but importance.bands has %d", cJSON_GetArraySize(m), nb);
                jfail(r, f, sp, "mass_by_band", what);
                return -1;
            }
            for (int b = 0; b < nb; b++) {
                const cJSON *e = cJSON_GetArrayItem(m, b);
                if (!cJSON_IsNumber(e) && !cJSON_IsNull(e)) {
                    jfail(r, f, sp, "mass_by_band", "holds a value that is not a number");
                    return -1;
                }
                d->mass[c * nb + b] = cJSON_IsNumber(e) ? e->valuedouble : NAN;
            }
            d->has_att[c] = 1;
        }
    }
    i = 0;
    cJSON_ArrayForEach(h, layers) {
        char path[64];
        snprintf(path, sizeof path, "importance.layers[%d]", i++);
        int          l  = jint(r, f, h, path, "layer", 0, L);
        const cJSON *ab = jobj(r, f, h, path, "ablation", 0);
        if (r->failed) return -1;
        if (ab) {
            char sp[96];
            snprintf(sp, sizeof sp, "%s.ablation", path);
            d->lay_d[l] = jnum(r, f, ab, sp, "delta", 1);
            jci(r, f, ab, sp, "ci95", 0, &d->lay_lo[l], &d->lay_hi[l]);
        }
    }
    /* (layer, band) pairs with a sampled and an ablation estimate, for the agreement plot */
    const cJSON *bl = jarr(r, f, im, "importance", "bands_by_layer", 0);
    i = 0;
    cJSON_ArrayForEach(h, bl) {
        char path[64], sp[96];
        snprintf(path, sizeof path, "importance.bands_by_layer[%d]", i++);
        int l = jint(r, f, h, path, "layer", 0, L), b = jint(r, f, h, path, "band", 0, nb > 0 ? nb : 1);
        const cJSON *sa = jobj(r, f, h, path, "sampled", 0), *ab = jobj(r, f, h, path, "ablation", 0);
        if (r->failed) return -1;
        size_t k = LH + (size_t)l * nb + b;
        if (sa) {
            snprintf(sp, sizeof sp, "%s.sampled", path);
            d->ag_s[k] = jnum(r, f, sa, sp, "delta", 1);
            jci(r, f, sa, sp, "ci95", 0, &d->ag_lo[k], &d->ag_hi[k]);
        }
        if (ab) {
            snprintf(sp, sizeof sp, "%s.ablation", path);
            d->ag_a[k] = jnum(r, f, ab, sp, "delta", 1);
        }
    }
    return r->failed ? -1 : 0;
}

/* diverging colour for t in [-1, 1]: blue (negative) - near-white (0) - red (positive), RdBu */
static void diverging(double t, char out[8]) {
    static const double neg[3][3] = {{247, 247, 247}, {146, 197, 222}, {33, 102, 172}};
    static const double pos[3][3] = {{247, 247, 247}, {244, 165, 130}, {178, 24, 43}};
    const double(*c)[3] = t < 0 ? neg : pos;
    double a = fabs(t);
    if (!(a <= 1)) a = 1;
    int    k = a < 0.5 ? 0 : 1;
    double u = (a - 0.5 * k) / 0.5;
    snprintf(out, 8, "#%02x%02x%02x", (int)lround(c[k][0] + u * (c[k + 1][0] - c[k][0])),
             (int)lround(c[k][1] + u * (c[k + 1][1] - c[k][1])), (int)lround(c[k][2] + u * (c[k + 1][2] - c[k][2])));
}

static void sec_heatmap(rep *r, const imp_data *d) {
    int    L = d->L, H = d->H;
    double m = 0;
    int    n_s = 0, n_a = 0, n_ns = 0;
    for (int c = 0; c < L * H; c++) {
        if (isfinite(d->delta[c]) && fabs(d->delta[c]) > m) m = fabs(d->delta[c]);
        n_s += d->src[c] == 1, n_a += d->src[c] == 2;
    }
    if (n_s + n_a == 0) {
        note(r, "No head importance estimates (every head's sampled and ablation entries are null).");
        return;
    }
    double ms  = m > 0 ? m : 1; /* colour scale: -max |delta| .. +max |delta| */
    int    dec = m > 0 ? 2 - (int)floor(log10(m)) : 3;
    dec        = dec < 1 ? 1 : dec > 5 ? 5 : dec;
    double cw = 640.0 / H;
    cw        = cw < 46 ? 46 : cw > 80 ? 80 : cw;
    double ch = 30, fs = cw < 60 ? 10 : 11.5;
    double ml = 76, mt = 44, gw = cw * H, gh = ch * L;
    double W = ml + gw + 30 < 560 ? 560 : ml + gw + 30, Hh = mt + gh + 96;
    /* the colour bar under the grid, its legend (hatch swatch, italic note) to the right of the bar's
     * end label, the figure widened to hold it */
    double by = mt + gh + 24, bw = gw < 320 ? gw : 320, bx = ml;
    double lx = bx + bw + text_w(S(r, ms, dec), 11) / 2 + 18;
    double lw = 32 + text_w("|" DELTA "| < 2 " MIDDOT " stderr", 12), iw = text_w("italic: ablation estimate", 11);
    if (W < lx + (lw > iw ? lw : iw) + 8) W = lx + (lw > iw ? lw : iw) + 8;
    char   title[96];
    snprintf(title, sizeof title, "Layer by head importance: loss increase when a head is removed (%s)", d->unit);
    sb_put(&r->b, "<figure>\n");
    svg_open(&r->b, W, Hh, "heatmap", title);
    sb_put(&r->b, "<defs><pattern id=\"pe-hatch\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\" "
                  "patternTransform=\"rotate(45)\"><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#9a9a9a\" "
                  "stroke-width=\"1.2\"/></pattern></defs>\n");
    sbuf *b = &r->b;
    svg_text(b, ml + gw / 2, 14, "middle", 12.5, " font-weight=\"600\"", "head (index)");
    svg_text_rot(b, 18, mt + gh / 2, -90, "middle", 12.5, "layer (index)");
    for (int h = 0; h < H; h++) {
        char t[16];
        snprintf(t, sizeof t, "%d", h);
        svg_text(b, ml + (h + 0.5) * cw, mt - 8, "middle", 11, NULL, t);
    }
    for (int l = 0; l < L; l++) {
        char t[16];
        snprintf(t, sizeof t, "%d", l);
        svg_text(b, ml - 8, mt + (l + 0.5) * ch + 4, "end", 11, NULL, t);
    }
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) {
            int    c = l * H + h;
            double x = ml + h * cw, y = mt + l * ch, v = d->delta[c], se = d->se[c];
            if (!isfinite(v)) {
                svg_rect(b, x, y, cw, ch, "#ffffff", " stroke=\"#dddddd\"");
                svg_text(b, x + cw / 2, y + ch / 2 + 4, "middle", fs, " fill=\"#999\"", "n/a");
                continue;
            }
            char col[8];
            diverging(v / ms, col);
            int weak = isfinite(se) && fabs(v) < 2 * se;
            n_ns += weak;
            svg_rect(b, x, y, cw, ch, col, weak ? " fill-opacity=\"0.35\" stroke=\"#ffffff\"" : " stroke=\"#ffffff\"");
            if (weak) svg_rect(b, x, y, cw, ch, "url(#pe-hatch)", NULL);
            double      a  = fabs(v) / ms;
            const char *tc = weak ? " fill=\"#555555\"" : a > 0.6 ? " fill=\"#ffffff\"" : " fill=\"#1a1a1a\"";
            char        attrs[64];
            snprintf(attrs, sizeof attrs, "%s%s", tc, d->src[c] == 2 ? " font-style=\"italic\"" : "");
            svg_text(b, x + cw / 2, y + ch / 2 + 4, "middle", fs, attrs, S(r, v, dec));
        }
    svg_rect(b, ml, mt, gw, gh, "none", " stroke=\"#666\"");
    /* colour legend: a bar from -ms to +ms */
    int ns = 40;
    for (int i = 0; i < ns; i++) {
        char col[8];
        diverging(-1 + 2 * (i + 0.5) / ns, col);
        svg_rect(b, bx + bw * i / ns, by, bw / ns + 0.3, 12, col, NULL);
    }
    svg_rect(b, bx, by, bw, 12, "none", " stroke=\"#888\"");
    double tv[3] = {-ms, 0, ms};
    int    tdec  = dec;
    for (int i = 0; i < 3; i++) {
        double X = bx + bw * i / 2;
        svg_line(b, X, by + 12, X, by + 17, "#444", 1, NULL);
        svg_text(b, X, by + 29, "middle", 11, NULL, i == 1 ? "0" : S(r, tv[i], tdec));
    }
    char cl[96];
    snprintf(cl, sizeof cl, DELTA " loss when removed (%s)", d->unit);
    svg_text(b, bx + bw / 2, by + 46, "middle", 12, NULL, cl);
    legend_item lg[] = {{LG_HATCH, "", "|" DELTA "| < 2 " MIDDOT " stderr", 0}};
    svg_legend(b, lx, by + 6, lg, 1);
    if (n_a) svg_text(b, lx, by + 34, "start", 11, " font-style=\"italic\" fill=\"#555\"", "italic: ablation estimate");
    svg_close(b);
    char cap[700];
    snprintf(cap, sizeof cap,
             "Loss increase (%s) when one attention head is removed, per layer (row) and head (column): %s. Red: the "
             "model needs the head; blue: the loss falls without it; pale hatched cells: |" DELTA "| < 2 standard "
             "errors, not distinguishable from 0 (%d of %d estimates).",
             d->unit,
             n_a == 0 ? "sampled estimates" : n_s == 0 ? "ablation estimates" : "sampled estimates, ablation (italic) where there is no sampled one",
             n_ns, n_s + n_a);
    caption(r, cap);
    /* whole-layer ablation, when present */
    int any = 0;
    for (int l = 0; l < L; l++) any |= isfinite(d->lay_d[l]);
    if (any) {
        sb_printf(&r->b, "<table class=\"num\"><tr><th>layer</th><th>" DELTA " loss when the whole layer's attention "
                         "is removed (%s) [95%% CI]</th></tr>\n", d->unit);
        for (int l = 0; l < L; l++) {
            if (!isfinite(d->lay_d[l])) continue;
            est e = {d->lay_d[l], d->lay_lo[l], d->lay_hi[l]};
            sb_printf(&r->b, "<tr><th>%d</th>", l);
            td_diff(r, e);
            sb_put(&r->b, "</tr>\n");
        }
        sb_put(&r->b, "</table>\n");
    }
}

/* one panel of the agreement plot: points k0 .. k1-1 of d->ag_*; counts into *n, *cov */
static void agreement_panel(rep *r, const imp_data *d, size_t k0, size_t k1, const char *what, int shape,
                            const char *col, int *n, int *cov) {
    double lo = NAN, hi = NAN;
    *n = *cov = 0;
    for (size_t k = k0; k < k1; k++) {
        if (!isfinite(d->ag_s[k]) || !isfinite(d->ag_a[k])) continue;
        (*n)++;
        *cov += d->ag_lo[k] <= d->ag_a[k] && d->ag_a[k] <= d->ag_hi[k];
        mm_add(&lo, &hi, d->ag_a[k]), mm_add(&lo, &hi, d->ag_s[k]);
        mm_add(&lo, &hi, d->ag_lo[k]), mm_add(&lo, &hi, d->ag_hi[k]);
    }
    char title[128], xl[96], yl[96];
    snprintf(title, sizeof title, "%s: sampled vs ablation importance (%s)", what, d->unit);
    plot p;
    plot_open(&p, r, 440, 430, 84, 34, 20, 92, "importance-agreement", title);
    plot_xrange(&p, lo, hi, 5);
    plot_yrange(&p, lo, hi, 6);
    snprintf(xl, sizeof xl, "ablation " DELTA " loss (%s)", d->unit);
    snprintf(yl, sizeof yl, "sampled " DELTA " loss (%s)", d->unit);
    plot_axes(&p, xl, yl, 40);
    svg_text(p.b, p.L, 20, "start", 13, " font-weight=\"600\"", what);
    double a = p.x0 > p.y0 ? p.x0 : p.y0, e = p.x1 < p.y1 ? p.x1 : p.y1;
    svg_line(p.b, PX(&p, a), PY(&p, a), PX(&p, e), PY(&p, e), "#888888", 1, "4 3");
    for (size_t k = k0; k < k1; k++) {
        if (!isfinite(d->ag_s[k]) || !isfinite(d->ag_a[k])) continue;
        plot_errbar(&p, d->ag_a[k], d->ag_lo[k], d->ag_hi[k], col);
        plot_marker(&p, d->ag_a[k], d->ag_s[k], shape, col, 1, 3.5);
    }
    legend_item lg[2] = {{LG_MARK, col, "estimate, 95% interval", shape}, {LG_DASH, "#888888", "y = x", 0}};
    svg_legend(p.b, p.L + 10, p.B + 70, lg, 1);
    svg_legend(p.b, p.L + 220, p.B + 70, lg + 1, 1);
    svg_close(p.b);
}

/* sampled (drop-one) importance against the ablations: x = ablation, y = sampled with its 95% interval,
 * the diagonal y = x; one panel for the heads, one for the (layer, band) pairs when both exist for them;
 * Spearman and coverage in the caption */
static void sec_agreement(rep *r, const imp_data *d) {
    size_t LH = (size_t)d->L * d->H, NA = LH + (size_t)d->L * d->nb;
    int    n_h = 0, n_b = 0, has_s = 0;
    for (size_t k = 0; k < NA; k++) {
        has_s |= isfinite(d->ag_s[k]);
        if (isfinite(d->ag_s[k]) && isfinite(d->ag_a[k])) k < LH ? n_h++ : n_b++;
    }
    if (n_h < 3) {
        if (has_s) note(r, "Sampled importance without ablations to compare it with: set importance.ablation = 1 "
                           "(2: the distance bands too) to draw the sampled-vs-ablation plot.");
        return;
    }
    int    nh_used = 0, nb_used = 0, cov_h, cov_b = 0;
    double rho_h = imp_spearman(d->ag_s, d->ag_a, (int)LH, &nh_used);
    double rho_b = n_b >= 3 ? imp_spearman(d->ag_s + LH, d->ag_a + LH, (int)(NA - LH), &nb_used) : NAN;
    sb_put(&r->b, "<figure>\n<div class=\"panels\">\n");
    agreement_panel(r, d, 0, LH, "heads", MK_CIRCLE, C_ENS, &n_h, &cov_h);
    if (n_b >= 3) agreement_panel(r, d, LH, NA, "distance bands", MK_TRIANGLE, "#d95f02", &n_b, &cov_b);
    sb_put(&r->b, "</div>\n");
    char cap[900], bands[300] = "";
    if (n_b >= 3)
        snprintf(bands, sizeof bands, " Right, each (layer, distance band) dropped alone (every head's connections at "
                 "those distances): Spearman %s over %d pairs; %d of %d intervals contain the ablation value.",
                 F(r, rho_b, 3), nb_used, cov_b, n_b);
    snprintf(cap, sizeof cap,
             "Left, each head: x, the loss increase (%s) when it alone is dropped on every unit (ablation); y, the "
             "sampled estimate from the drop-one passes (the same drop on a sample of the units, paired with each "
             "unit's dense loss) with its 95%% interval; dashed: y = x. Spearman rank correlation %s over %d heads; "
             "%d of %d intervals contain the ablation value.%s",
             d->unit, F(r, rho_h, 3), nh_used, cov_h, n_h, bands);
    caption(r, cap);
}

static void band_label(const imp_data *d, int i, char *out, size_t n) {
    if (d->lo[i] == d->hi[i]) snprintf(out, n, "%.0f", d->lo[i]);
    else snprintf(out, n, "%.0f" NDASH "%.0f", d->lo[i], d->hi[i]);
}

static void sec_distance(rep *r, const imp_data *d) {
    int L = d->L, H = d->H, nb = d->nb, any = 0;
    for (int c = 0; c < L * H; c++) any |= d->has_att[c];
    if (!any || nb == 0) {
        note(r, "No attention statistics in results.json (importance.heads[*].attention is null or there are no bands).");
        return;
    }
    const char *pos = r->is_lm ? "tokens" : "positions";
    double      mmax = 0, dmax = 0;
    for (int c = 0; c < L * H; c++) {
        for (int b = 0; b < nb; b++)
            if (isfinite(d->mass[(size_t)c * nb + b]) && d->mass[(size_t)c * nb + b] > mmax) mmax = d->mass[(size_t)c * nb + b];
        if (isfinite(d->mdist[c]) && d->mdist[c] > dmax) dmax = d->mdist[c];
    }
    for (int b = 0; d->uni && b < nb; b++)
        if (d->uni[b] > mmax) mmax = d->uni[b];
    if (d->uni && d->uni_md > dmax) dmax = d->uni_md;
    /* head colours, shared by every panel */
    sb_put(&r->b, "<div class=\"legend\">");
    for (int h = 0; h < H; h++)
        sb_printf(&r->b, "<span><i style=\"background:%s\"></i>head %d</span> ", PALETTE[h % NPALETTE], h);
    if (d->uni)
        sb_put(&r->b, "<span><i style=\"background:repeating-linear-gradient(90deg,#222 0 4px,transparent 4px 7px)\">"
                      "</i>uniform attention (reference)</span>");
    sb_put(&r->b, "</div>\n<figure>\n<div class=\"panels\">\n");
    /* tick labels rotate when they would not fit side by side */
    double pw = 440, ml = 64, mr = 14, lw = 0;
    for (int b = 0; b < nb; b++) {
        char t[48];
        band_label(d, b, t, sizeof t);
        if (text_w(t, 11) > lw) lw = text_w(t, 11);
    }
    double slot = (pw - ml - mr - 16) / nb, rot = lw + 6 > slot ? -40 : 0, mb = rot ? 34 + lw * 0.65 + 16 : 52;
    double *x = malloc(sizeof(double) * (size_t)nb * 2);
    if (!x) {
        r->b.oom = 1;
        return;
    }
    double *y = x + nb;
    for (int b = 0; b < nb; b++) x[b] = b;
    char xl[64];
    snprintf(xl, sizeof xl, "distance |i" MINUS "j| (%s)", pos);
    for (int l = 0; l < L; l++) {
        char title[64];
        snprintf(title, sizeof title, "layer %d: attention mass by distance band", l);
        plot p;
        plot_open(&p, r, pw, 34 + 150 + mb, ml, 34, mr, mb, "distance-profile", title);
        p.x0 = -0.5, p.x1 = nb - 0.5, p.xs = 0, p.padx = 0, p.pady = 0;
        plot_yrange(&p, 0, mmax > 0 ? mmax : 1, 5);
        p.y0 = 0;
        plot_axes(&p, xl, "attention mass (fraction)", mb - 10);
        char t[48];
        snprintf(t, sizeof t, "layer %d", l);
        svg_text(p.b, p.L, 20, "start", 13, " font-weight=\"600\"", t);
        for (int b = 0; b < nb; b++) {
            band_label(d, b, t, sizeof t);
            plot_xtick(&p, b, t, rot);
        }
        for (int h = 0; h < H; h++) {
            size_t c = (size_t)l * H + h;
            if (!d->has_att[c]) continue;
            for (int b = 0; b < nb; b++) y[b] = d->mass[c * nb + b];
            plot_polyline(&p, x, y, nb, PALETTE[h % NPALETTE], 1.6, h >= NPALETTE ? "5 3" : NULL);
            for (int b = 0; b < nb; b++) plot_marker(&p, x[b], y[b], MK_CIRCLE, PALETTE[h % NPALETTE], 1, 2);
        }
        if (d->uni) plot_polyline(&p, x, d->uni, nb, "#222222", 1.4, "4 3");
        svg_close(p.b);
    }
    sb_put(&r->b, "</div>\n");
    char ucap[700] = "";
    if (d->uni && d->uni_causal)
        snprintf(ucap, sizeof ucap, " Dashed black: the uniform-attention reference, a head that attends equally to every "
                 "allowed key; causal, so query i spreads 1/(i+1) over distances 0..i and the curve is the mean over "
                 "the queries i = 0..T" MINUS "1 of a sequence of T = %d %s (the run's mean length: scored tokens per "
                 "unit + 1; it depends on T: shorter sequences put more of it at short distances). A head above it at "
                 "short distances is local.", d->uni_T, pos);
    else if (d->uni)
        snprintf(ucap, sizeof ucap, " Dashed black: the uniform-attention reference, a head that attends equally to all "
                 "T = %d %s (bidirectional: band mass = its share of the T" TIMES "T pairs). A head above it at short "
                 "distances is local.", d->uni_T, pos);
    char dcap[1000];
    snprintf(dcap, sizeof dcap, "Fraction of each head's attention mass (0 to 1, averaged over the queries of the "
             "dense model) on keys at distance |i" MINUS "j| in each band (labels: the band's distance range in %s), "
             "one panel per layer, one line per head (colours above); mass at 0 is the query attending to itself.%s",
             pos, ucap);
    caption(r, dcap);
    /* mean attention distance per head */
    sb_put(&r->b, "<figure>\n");
    plot p;
    int nleg = H < 24 ? H : 24;
    plot_open(&p, r, 780, 36 + 20.0 * nleg > 320 ? 36 + 20.0 * nleg : 320, 78, 16, 130, 52, "mean-distance",
              "Mean attention distance per head, by layer");
    p.x0 = -0.5, p.x1 = L - 0.5, p.xs = 0, p.padx = 0;
    plot_yrange(&p, 0, dmax > 0 ? dmax : 1, 6);
    p.y0 = 0;
    char yl[64];
    snprintf(yl, sizeof yl, "mean distance |i" MINUS "j| (%s)", pos);
    plot_axes(&p, "layer (index)", yl, 40);
    for (int l = 0; l < L; l++) {
        char t[16];
        snprintf(t, sizeof t, "%d", l);
        plot_xtick(&p, l, t, 0);
        if (l) svg_line(p.b, PX(&p, l - 0.5), p.T, PX(&p, l - 0.5), p.B, "#e3e3e3", 1, NULL);
        double s = 0;
        int    n = 0;
        for (int h = 0; h < H; h++) {
            double v = d->mdist[l * H + h];
            if (!isfinite(v)) continue;
            plot_marker(&p, l + (H > 1 ? (h - (H - 1) / 2.0) * 0.7 / (H - 1) : 0), v, MK_CIRCLE, PALETTE[h % NPALETTE], 1, 4);
            s += v, n++;
        }
        if (n) svg_line(p.b, PX(&p, l - 0.4), PY(&p, s / n), PX(&p, l + 0.4), PY(&p, s / n), "#222", 2, NULL);
    }
    if (d->uni) svg_line(p.b, PX(&p, -0.5), PY(&p, d->uni_md), PX(&p, L - 0.5), PY(&p, d->uni_md), "#222222", 1.2, "4 3");
    for (int h = 0; h < nleg; h++) {
        char t[32];
        if (h == 23 && H > 24) snprintf(t, sizeof t, "heads 23" NDASH "%d", H - 1); /* colours repeat */
        else snprintf(t, sizeof t, "head %d", h);
        legend_item it = {LG_MARK, PALETTE[h % NPALETTE], t, MK_CIRCLE};
        svg_legend(p.b, p.R + 16, p.T + 10 + 20.0 * h, &it, 1);
    }
    svg_close(p.b);
    char mcap[500];
    snprintf(mcap, sizeof mcap, "Mean attention distance |i" MINUS "j| (%s, averaged over queries) of each head (dots, "
             "head colours as above), grouped by layer; black bar: the layer's mean over heads. Small values: local "
             "heads; large: heads that look far back.%s", pos, "");
    if (d->uni)
        snprintf(mcap + strlen(mcap), sizeof mcap - strlen(mcap), " Dashed line: uniform attention, %s %s (%s, T = %d).",
                 F(r, d->uni_md, 2), pos, d->uni_causal ? "causal: (T" MINUS "1)/4" : "bidirectional: (T" TIMES "T" MINUS "1)/(3T)",
                 d->uni_T);
    caption(r, mcap);
    free(x);
}

static void sec_importance(rep *r, const cJSON *root) {
    const cJSON *im = jobj(r, r->rfile, root, "", "importance", 0);
    if (r->failed) return;
    imp_data d;
    memset(&d, 0, sizeof d);
    int ok = im && imp_parse(r, im, &d) == 0;
    if (r->failed) {
        imp_free(&d);
        return;
    }
    if (ok) { /* the length of the uniform reference: the run's mean sequence (LM), the patches (+ CLS) of an image */
        const cJSON *arch = jget(jget(root, "model"), "architecture"), *dense = jget(root, "dense");
        const cJSON *cz = jget(arch, "causal"), *hk = jget(arch, "head");
        double T = NAN;
        if (r->is_lm) {
            const cJSON *tk = jget(dense, "tokens"), *un = jget(dense, "units");
            if (cJSON_IsNumber(tk) && cJSON_IsNumber(un) && un->valuedouble > 0) T = round(tk->valuedouble / un->valuedouble) + 1;
        } else {
            const cJSON *is = jget(arch, "image_size"), *ps = jget(arch, "patch_size");
            if (cJSON_IsNumber(is) && cJSON_IsNumber(ps) && ps->valuedouble > 0) {
                double per = floor(is->valuedouble / ps->valuedouble);
                T = per * per + (cJSON_IsString(hk) && !strcmp(hk->valuestring, "cls_token") ? 1 : 0);
            }
        }
        /* T from the file's numbers: bounded before the int cast (uniform_reference skips T > 2^20) */
        if (T >= 1 && T <= 16777216.0) uniform_reference(&d, (int)T, cJSON_IsBool(cz) ? cJSON_IsTrue(cz) : r->is_lm);
    }
    section(r, "importance", "3. Head importance (layer " TIMES " head)");
    if (ok) sec_heatmap(r, &d);
    if (ok) sec_agreement(r, &d);
    else note(r, "No importance estimates: results.json has no \"importance\" object.");
    sb_put(&r->b, "</section>\n");
    section(r, "distance", "4. Attention distance");
    if (ok) sec_distance(r, &d);
    else note(r, "No attention-distance profiles: results.json has no \"importance\" object.");
    sb_put(&r->b, "</section>\n");
    imp_free(&d);
}

/* ==== 5. frontier ============================================================================= */

static void metric_label(const char *metric, char *out, size_t n) {
    if (!strcmp(metric, "nll_per_token")) snprintf(out, n, "NLL (nats/token)");
    else if (!strcmp(metric, "nll")) snprintf(out, n, "NLL (nats/image)");
    else if (!strcmp(metric, "accuracy")) snprintf(out, n, "accuracy (fraction correct)");
    else snprintf(out, n, "%s", metric);
}

static void sort_points(double *x, double *y, double *lo, double *hi, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && x[j] < x[j - 1]; j--) {
            double t;
            t = x[j], x[j] = x[j - 1], x[j - 1] = t;
            t = y[j], y[j] = y[j - 1], y[j - 1] = t;
            t = lo[j], lo[j] = lo[j - 1], lo[j - 1] = t;
            t = hi[j], hi[j] = hi[j - 1], hi[j - 1] = t;
        }
}

static void sec_frontier(rep *r, const cJSON *fr) {
    section(r, "frontier", "5. Quality vs attention FLOPs");
    if (!fr) {
        note(r, "No frontier.json in the run folder: the quality-vs-attention-FLOPs frontier is drawn when it exists.");
        sb_put(&r->b, "</section>\n");
        return;
    }
    const char  *f = r->ffile, *metric = jstr(fr, "metric");
    const cJSON *dense = jobj(r, f, fr, "", "dense", 1), *plans = jarr(r, f, fr, "", "plans", 1);
    const cJSON *samples = jarr(r, f, fr, "", "samples", 0), *chance = jarr(r, f, fr, "", "chance", 0);
    if (!r->failed && !metric) jfail(r, f, "", "metric", "is missing or not a string");
    if (r->failed) return;
    int     np = cJSON_GetArraySize(plans), ns = cJSON_GetArraySize(samples), nc = cJSON_GetArraySize(chance);
    double *px = calloc((size_t)(np * 4 + ns * 2 + nc * 4 + 1), sizeof(double));
    if (!px) {
        r->b.oom = 1;
        return;
    }
    double *py = px + np, *plo = py + np, *phi = plo + np, *sx = phi + np, *sy = sx + ns;
    double *cx = sy + ns, *cy = cx + nc, *clo = cy + nc, *chi = clo + nc;
    double  xmax = 1, ylo = NAN, yhi = NAN;
    double  dx = jnum(r, f, dense, "dense", "flops_fraction", 1), dy = jnum(r, f, dense, "dense", "value", 1), dlo, dhi;
    jci(r, f, dense, "dense", "ci95", 0, &dlo, &dhi);
    mm_add(&ylo, &yhi, dy), mm_add(&ylo, &yhi, dlo), mm_add(&ylo, &yhi, dhi);
    /* the verdicts of plan - chance, in the plans' order, for the caption */
    char verd[900] = "";
    size_t vl = 0;
    int    beat = 0, lost = 0, same = 0;
    for (int i = 0; i < np; i++) {
        char path[32];
        snprintf(path, sizeof path, "plans[%d]", i);
        const cJSON *o = cJSON_GetArrayItem(plans, i);
        px[i] = jnum(r, f, o, path, "flops_fraction", 1);
        py[i] = jnum(r, f, o, path, "value", 1);
        jci(r, f, o, path, "ci95", 0, &plo[i], &phi[i]);
        mm_add(&ylo, &yhi, py[i]), mm_add(&ylo, &yhi, plo[i]), mm_add(&ylo, &yhi, phi[i]);
        if (px[i] > xmax) xmax = px[i];
        const cJSON *md = jobj(r, f, o, path, "minus_chance", 0);
        if (md && !r->failed) {
            char mp[64];
            snprintf(mp, sizeof mp, "%s.minus_chance", path);
            double m = jnum(r, f, md, mp, "mean", 1), lo, hi;
            jci(r, f, md, mp, "ci95", 0, &lo, &hi);
            const char *v = jstr(md, "verdict");
            if (r->failed) break;
            int w = v && !strcmp(v, "beat chance") ? 1 : v && !strcmp(v, "lost to chance") ? 2 : 0;
            beat += w == 1, lost += w == 2, same += w == 0;
            if (vl < sizeof verd - 160)
                vl += (size_t)snprintf(verd + vl, sizeof verd - vl, "%sbudget %g: plan " MINUS " chance %s [%s, %s] (%s)",
                                       vl ? "; " : "", jnum(r, f, o, path, "budget", 1), S(r, m, 4), S(r, lo, 4),
                                       S(r, hi, 4), w == 1 ? "beat chance" : w == 2 ? "lost to chance"
                                                                             : "indistinguishable");
        }
    }
    for (int i = 0; i < ns; i++) {
        char path[32];
        snprintf(path, sizeof path, "samples[%d]", i);
        const cJSON *o = cJSON_GetArrayItem(samples, i);
        sx[i] = jnum(r, f, o, path, "flops_fraction", 1);
        sy[i] = jnum(r, f, o, path, "value", 1);
        mm_add(&ylo, &yhi, sy[i]);
        if (sx[i] > xmax) xmax = sx[i];
    }
    const char *cscheme = NULL;
    int         ck = 0;
    for (int i = 0; i < nc; i++) {
        char path[32];
        snprintf(path, sizeof path, "chance[%d]", i);
        const cJSON *o = cJSON_GetArrayItem(chance, i);
        cx[i] = jnum(r, f, o, path, "flops_fraction", 1);
        cy[i] = jnum(r, f, o, path, "value", 1);
        jci(r, f, o, path, "ci95", 0, &clo[i], &chi[i]);
        if (!cscheme) {
            double mk = jnum(r, f, o, path, "members", 0);
            cscheme = jstr(o, "scheme"), ck = mk >= 0 && mk < 1e9 ? (int)mk : 0; /* any JSON number: no int overflow */
        }
        mm_add(&ylo, &yhi, cy[i]), mm_add(&ylo, &yhi, clo[i]), mm_add(&ylo, &yhi, chi[i]);
        if (cx[i] > xmax) xmax = cx[i];
    }
    if (r->failed) {
        free(px);
        return;
    }
    sort_points(px, py, plo, phi, np); /* each curve joined in order of cost */
    sort_points(cx, cy, clo, chi, nc);
    char yl[64];
    metric_label(metric, yl, sizeof yl);
    sb_put(&r->b, "<figure>\n");
    plot p;
    plot_open(&p, r, 780, 400, 78, 16, 220, 52, "frontier", "Quality vs attention FLOPs");
    /* ticks every 0.1 up to 1; past 1 (members costing more than dense) about 10 nice ticks, so a
     * huge flops_fraction cannot ask for billions of tick lines (a fuzz finding) */
    p.x0 = 0, p.x1 = xmax > 1 && xmax < 1e300 ? ceil(xmax * 10) / 10 : 1;
    p.xs = p.x1 <= 1 ? 0.1 : nice_num(p.x1 / 10, 1);
    plot_yrange(&p, ylo, yhi, 6);
    plot_axes(&p, "attention FLOPs (fraction of dense)", yl, 40);
    for (int i = 0; i < ns; i++) plot_marker(&p, sx[i], sy[i], MK_TRIANGLE, "#8c8c8c", 0, 4.5);
    plot_polyline(&p, cx, cy, nc, C_MEAN, 2, NULL);
    for (int i = 0; i < nc; i++) {
        plot_errbar(&p, cx[i], clo[i], chi[i], C_MEAN);
        plot_marker(&p, cx[i], cy[i], MK_DIAMOND, C_MEAN, 1, 4.5);
    }
    plot_polyline(&p, px, py, np, C_ENS, 2, NULL);
    for (int i = 0; i < np; i++) {
        plot_errbar(&p, px[i], plo[i], phi[i], C_ENS);
        plot_marker(&p, px[i], py[i], MK_CIRCLE, C_ENS, 1, 4);
    }
    plot_errbar(&p, dx, dlo, dhi, C_DENSE);
    plot_marker(&p, dx, dy, MK_SQUARE, C_DENSE, 1, 4.5);
    char cl[96];
    snprintf(cl, sizeof cl, "chance (%d %s)", ck, cscheme ? cscheme : "random"); /* fits the legend column */
    legend_item lg[4] = {{LG_LINE_MARK, C_ENS, "plans (95% CI bars)", MK_CIRCLE}, {LG_MARK, C_DENSE, "dense model", MK_SQUARE}};
    int         nl = 2;
    if (nc) lg[nl++] = (legend_item){LG_LINE_MARK, C_MEAN, cl, MK_DIAMOND};
    if (ns) lg[nl++] = (legend_item){LG_MARK_OPEN, "#8c8c8c", "random pathway samples", MK_TRIANGLE};
    svg_legend(p.b, p.R + 18, p.T + 14, lg, nl);
    svg_close(p.b);
    char cap[1800];
    int  k = snprintf(cap, sizeof cap,
                      "%s against the attention FLOPs spent, as a fraction of the dense model's (1 = dense; measured on "
                      "the data): %d pathway plans (joined, 95%% interval bars), the dense model and %d single random "
                      "pathway samples (the run's members).",
                      yl, np, ns);
    if (nc)
        snprintf(cap + k, sizeof cap - (size_t)k,
                 " Orange: the chance baseline of each plan, the mean of %d random %s sub-models at the ratio of the "
                 "plan's FLOPs fraction, with the 95%% interval over the units. Plan " MINUS " chance, paired unit by "
                 "unit (%s; < 0: the plan is better), 95%% interval: %s. The importance plan beat chance at %d of %d "
                 "budgets, lost to it at %d, indistinguishable at %d.",
                 ck, cscheme ? cscheme : "random", yl, verd[0] ? verd : "none recorded", beat, beat + lost + same, lost,
                 same);
    else
        snprintf(cap + k, sizeof cap - (size_t)k, " No chance baseline in frontier.json (pathens prune --evaluate with "
                 "--chance-members 0, or an older pathens): nothing says whether the plans beat random sub-models.");
    caption(r, cap);
    sb_put(&r->b, "</section>\n");
    free(px);
}

/* ==== the page ================================================================================ */

static const char *CSS =
    "body{font-family:\"Liberation Sans\",\"DejaVu Sans\",Arial,Helvetica,sans-serif;color:#222;background:#fff;"
    "max-width:1000px;margin:0 auto;padding:20px 24px 40px;font-size:14px;line-height:1.4}"
    "h1{font-size:22px;margin:4px 0}h2{font-size:17px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid #ddd}"
    ".sub{color:#555;margin:2px 0 8px}code{font-family:\"DejaVu Sans Mono\",monospace;font-size:12.5px;"
    "word-break:break-all}"
    "table{border-collapse:collapse;margin:6px 0}th,td{padding:4px 10px;border-bottom:1px solid #e6e6e6;"
    "vertical-align:top}table.kv th{text-align:left;color:#555;font-weight:600;white-space:nowrap}"
    "table.num td{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    "table.num th{text-align:left}table.num tr:first-child th{text-align:right;color:#555}"
    "table.num tr:first-child th:first-child{text-align:left}"
    "tr.diff{background:#f4f8fc}.ci{color:#666}.hint{color:#777;font-style:italic;text-align:left!important;"
    "white-space:normal!important}"
    ".chip{display:inline-block;background:#f1f3f5;border-radius:3px;padding:0 6px;margin:1px 2px;"
    "font-size:12.5px}"
    "figure{margin:10px 0 18px}figcaption{font-size:13px;color:#444;margin-top:2px;max-width:780px}"
    /* no fill/stroke rules for SVG content here: CSS would override the presentation attributes */
    "svg.plot{display:block;font-family:\"Liberation Sans\",\"DejaVu Sans\",Arial,sans-serif}"
    ".panels{display:flex;flex-wrap:wrap;gap:4px 16px}"
    ".note{color:#666;font-style:italic;background:#f7f7f7;border-left:3px solid #ccc;padding:6px 10px}"
    ".small{font-size:12px;color:#666}"
    ".legend{font-size:12.5px;margin:4px 0}.legend span{margin-right:12px;white-space:nowrap}"
    ".legend i{display:inline-block;width:14px;height:4px;margin:0 5px 3px 0;vertical-align:middle}"
    ".wide{overflow-x:auto}table.sweep td.p{text-align:left}table.sweep tr:first-child th.p{text-align:left}"
    "table.sweep .ci{font-size:12px}table.sweep th,table.sweep td{padding:4px 7px}table.sweep .sec{color:#888;"
    "font-weight:400}"
    "footer{margin-top:30px;font-size:12px;color:#777}";

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

pe_status report_render(const char *run_dir, char **html, pe_err *err) {
    *html = NULL;
    if (!is_dir(run_dir))
        return pe_fail(err, PE_ERR_INPUT, "%s: no such run folder; give the run.out folder of a 'pathens eval' run",
                       run_dir);
    size_t n = strlen(run_dir) + 32;
    char  *rpath = pe_malloc(n, err, "path"), *fpath = pe_malloc(n, err, "path");
    if (!rpath || !fpath) {
        free(rpath);
        free(fpath);
        return PE_ERR_INTERNAL;
    }
    snprintf(rpath, n, "%s/results.json", run_dir);
    snprintf(fpath, n, "%s/frontier.json", run_dir);
    char     *rtext = NULL, *ftext = NULL;
    cJSON    *root = NULL, *fr = NULL;
    pe_status st = pe_read_file(rpath, &rtext, NULL, err);
    if (st) goto out;
    root = cJSON_Parse(rtext);
    if (!cJSON_IsObject(root)) {
        const char *e = cJSON_GetErrorPtr();
        if (!root && e && e >= rtext && e <= rtext + strlen(rtext))
            st = pe_fail(err, PE_ERR_INPUT, "%s: not valid JSON (parse error near byte %ld); rerun 'pathens eval' to "
                         "rewrite it", rpath, (long)(e - rtext));
        else st = pe_fail(err, PE_ERR_INPUT, "%s: not a JSON object; rerun 'pathens eval' to rewrite it", rpath);
        goto out;
    }
    if (access(fpath, F_OK) == 0) {
        if ((st = pe_read_file(fpath, &ftext, NULL, err))) goto out;
        fr = cJSON_Parse(ftext);
        if (!cJSON_IsObject(fr)) {
            st = pe_fail(err, PE_ERR_INPUT, "%s: not a valid JSON object; rewrite it or remove it", fpath);
            goto out;
        }
    } else if (errno != ENOENT) {
        st = pe_fail(err, PE_ERR_INPUT, "%s: cannot access (%s)", fpath, strerror(errno));
        goto out;
    }

    rep *r = calloc(1, sizeof *r);
    if (!r) {
        st = pe_fail(err, PE_ERR_INTERNAL, "out of memory for the report");
        goto out;
    }
    r->err = err, r->rfile = rpath, r->ffile = fpath;
    const cJSON *dense = jobj(r, rpath, root, "", "dense", 1);
    if (!r->failed) {
        if (jget(dense, "nll_per_token")) r->is_lm = 1;
        else if (jget(dense, "accuracy")) r->is_lm = 0;
        else jfail(r, rpath, "dense", "nll_per_token", "is missing (and so is dense.accuracy): neither a language-model nor a classifier result");
    }
    const cJSON *mem = jarr(r, rpath, root, "", "members", 0);
    r->K    = mem ? cJSON_GetArraySize(mem) : 0;
    r->unit = r->is_lm ? "nats/token" : "nats/image";
    if (!r->failed) {
        report_title(root, run_dir, r->title, sizeof r->title);
        sb_put(&r->b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
        sb_esc(&r->b, r->title);
        sb_printf(&r->b, " (pathens report)</title>\n<style>%s</style>\n</head>\n<body>\n", CSS);
        sec_header(r, root, run_dir);
        sec_summary(r, root);
        sec_curve(r, root);
        sec_hist(r, root);
        sec_importance(r, root);
        if (!r->failed) sec_frontier(r, fr);
        sb_put(&r->b, "<footer>Generated by <code>pathens report</code> from results.json");
        if (fr) sb_put(&r->b, " and frontier.json");
        sb_put(&r->b, "; how to read each plot: docs/report.md. This page is self-contained: no scripts, "
                      "no external resources.</footer>\n</body>\n</html>\n");
    }
    if (r->failed) st = err->code ? err->code : PE_ERR_INPUT;
    else if (r->b.oom) st = pe_fail(err, PE_ERR_INTERNAL, "out of memory writing the report");
    if (st) free(r->b.s);
    else *html = r->b.s;
    free(r);
out:
    cJSON_Delete(root);
    cJSON_Delete(fr);
    free(rtext);
    free(ftext);
    free(rpath);
    free(fpath);
    return st;
}

pe_status report_write(const char *run_dir, const char *out_path, char *written, size_t n, pe_err *err) {
    char     *html = NULL;
    pe_status st   = report_render(run_dir, &html, err);
    if (st) return st;
    char def[4096];
    if (!out_path) {
        snprintf(def, sizeof def, "%s/report.html", run_dir);
        out_path = def;
    }
    st = pe_write_file_atomic(out_path, html, strlen(html), err);
    free(html);
    if (!st && written && n) snprintf(written, n, "%s", out_path);
    return st;
}

/* ==== the sweep report: <sweep_dir>/sweep.json (pathens sweep --aggregate) ===================== */

#define SW_SCHEME "pathways.scheme"
#define SW_RATIO  "pathways.ratio"
#define SW_MAXKEYS 64

/* one finished sweep point */
typedef struct {
    int          index, K;
    const char  *dir, *metric;
    const char  *scheme; /* params["pathways.scheme"], NULL when the scheme was not swept */
    double       ratio;  /* params["pathways.ratio"], NaN when the ratio was not swept */
    const cJSON *params;
    est          dense, ens, emd; /* emd: ensemble - dense, paired */
    double       mm, kept;
} swrow;

/* a params value as text (the sweep writes strings; numbers are accepted) */
static const char *sw_ptext(const cJSON *v, char *buf, size_t n) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsNumber(v)) {
        snprintf(buf, n, "%.10g", v->valuedouble);
        return buf;
    }
    return NULL;
}

static int sw_same_scheme(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }
static int sw_same_ratio(double a, double b) { return (isnan(a) && isnan(b)) || a == b; }

/* rows[*] of sweep.json; returns the number of rows, -1 on error (r->failed or r->b.oom) */
static int sw_parse(rep *r, const cJSON *root, swrow **out) {
    const char  *f    = r->rfile;
    const cJSON *rows = jarr(r, f, root, "", "rows", 1);
    *out = NULL;
    if (r->failed) return -1;
    int    n = cJSON_GetArraySize(rows);
    swrow *w = calloc((size_t)(n ? n : 1), sizeof *w);
    if (!w) {
        r->b.oom = 1;
        return -1;
    }
    const cJSON *o = rows ? rows->child : NULL; /* walked, not cJSON_GetArrayItem(rows, i): O(n), not O(n^2) */
    for (int i = 0; i < n && !r->failed; i++, o = o->next) {
        char path[48], mpath[64], ppath[64], tb[40];
        snprintf(path, sizeof path, "rows[%d]", i);
        snprintf(mpath, sizeof mpath, "rows[%d].metrics", i);
        snprintf(ppath, sizeof ppath, "rows[%d].params", i);
        swrow       *x = &w[i];
        if (!cJSON_IsObject(o)) {
            jfail(r, f, path, "", "is not an object");
            break;
        }
        x->index = jint(r, f, o, path, "index", 0, 1 << 30);
        x->dir   = jstr(o, "dir");
        if (!r->failed && !x->dir) jfail(r, f, path, "dir", "is missing or not a string");
        x->params       = jobj(r, f, o, path, "params", 1);
        const cJSON *m  = jobj(r, f, o, path, "metrics", 1);
        if (r->failed) break;
        const cJSON *pv;
        cJSON_ArrayForEach(pv, x->params) if (!sw_ptext(pv, tb, sizeof tb)) jfail(r, f, ppath, pv->string, "is not a string");
        x->metric = jstr(m, "metric");
        if (!r->failed && (!x->metric || (strcmp(x->metric, "nll_per_token") && strcmp(x->metric, "accuracy"))))
            jfail(r, f, mpath, "metric", "is missing or not \"nll_per_token\" or \"accuracy\"");
        x->K     = jint(r, f, m, mpath, "members", 0, 1 << 30);
        x->dense = jest(r, f, m, mpath, "dense", "dense_ci95", 0);
        if (!r->failed && !jget(m, "dense")) jfail(r, f, mpath, "dense", "is missing");
        x->ens.v = jnum(r, f, m, mpath, "ensemble", 1);
        jci(r, f, m, mpath, "ensemble_ci95", 0, &x->ens.lo, &x->ens.hi);
        x->emd.v = jnum(r, f, m, mpath, "ensemble_minus_dense", 1);
        jci(r, f, m, mpath, "ensemble_minus_dense_ci95", 0, &x->emd.lo, &x->emd.hi);
        x->mm     = jnum(r, f, m, mpath, "member_mean", 0);
        x->kept   = jnum(r, f, m, mpath, "kept_fraction", 0);
        const cJSON *sv = jget(x->params, SW_SCHEME);
        x->scheme       = cJSON_IsString(sv) ? sv->valuestring : NULL;
        x->ratio = NAN;
        const cJSON *rv = jget(x->params, SW_RATIO);
        if (rv && !r->failed) {
            const char *t = sw_ptext(rv, tb, sizeof tb);
            char       *e = NULL;
            double      v = t ? strtod(t, &e) : NAN;
            while (e && (*e == ' ' || *e == '\t')) e++;
            if (!t || e == t || *e || !isfinite(v)) jfail(r, f, ppath, SW_RATIO, "is not a number");
            else x->ratio = v;
        }
    }
    if (r->failed) {
        free(w);
        return -1;
    }
    *out = w;
    return n;
}

static void sw_metric_names(const char *metric, const char **ylab, const char **glab, const char **what,
                            const char **better) {
    int lm = !strcmp(metric, "nll_per_token");
    /* what: lower case, for the middle of a sentence; captions capitalise it */
    *ylab   = lm ? "NLL (nats/token)" : "accuracy (fraction correct)";
    *glab   = lm ? "ensemble " MINUS " dense NLL (nats/token)" : "ensemble " MINUS " dense accuracy (fraction)";
    *what   = lm ? "NLL per token" : "accuracy";
    *better = lm ? "lower is better" : "higher is better";
}

/* decimals for a column: enough for the narrowest interval in it */
static int sw_col_dec(const swrow *w, int n, int which) {
    int d = 4;
    for (int i = 0; i < n; i++) {
        const est *e = which == 0 ? &w[i].dense : which == 1 ? &w[i].ens : &w[i].emd;
        int        c = ci_dec(e->lo, e->hi, 4);
        if (c > d) d = c;
    }
    return d;
}

static void sw_td(rep *r, est e, int dec, int sign, int bold) {
    if (!isfinite(e.v)) {
        sb_put(&r->b, "<td>n/a</td>");
        return;
    }
    sb_printf(&r->b, "<td>%s%s%s", bold ? "<b>" : "", fmtn(r, e.v, dec, sign), bold ? "</b>" : "");
    if (isfinite(e.lo) && isfinite(e.hi))
        sb_printf(&r->b, "<br><span class=\"ci\">[%s, %s]</span>", fmtn(r, e.lo, dec, sign), fmtn(r, e.hi, dec, sign));
    sb_put(&r->b, "</td>");
}

static void sw_table(rep *r, const swrow *w, int n, const char **keys, int nk, const char *metric) {
    const char *ylab, *glab, *what, *better;
    sw_metric_names(metric, &ylab, &glab, &what, &better);
    section(r, "points", "1. All points");
    if (n == 0) {
        note(r, "No finished points yet: run the sweep, then 'pathens sweep SWEEP.ini --aggregate' again.");
        sb_put(&r->b, "</section>\n");
        return;
    }
    int dd = sw_col_dec(w, n, 0), de = sw_col_dec(w, n, 1), dg = sw_col_dec(w, n, 2);
    /* narrow enough for the page: swept keys as "section." over "key", no K column when K is a swept key */
    int show_k = 1;
    for (int k = 0; k < nk; k++) show_k &= strcmp(keys[k], "pathways.members") != 0;
    sb_put(&r->b, "<div class=\"wide\"><table class=\"num sweep\">\n<tr><th>#</th><th class=\"p\">run folder</th>");
    for (int k = 0; k < nk; k++) {
        const char *dot = strchr(keys[k], '.');
        sb_put(&r->b, "<th class=\"p\">");
        if (dot) {
            char sec[64];
            snprintf(sec, sizeof sec, "%.*s", (int)(dot - keys[k] + 1), keys[k]);
            sb_put(&r->b, "<span class=\"sec\">");
            sb_esc(&r->b, sec);
            sb_put(&r->b, "</span><br>");
            sb_esc(&r->b, dot + 1);
        } else {
            sb_esc(&r->b, keys[k]);
        }
        sb_put(&r->b, "</th>");
    }
    sb_printf(&r->b, "%s<th>dense<br>[95%% CI]</th><th>mean<br>member</th><th>ensemble<br>[95%% CI]</th>"
                     "<th>ensemble &#8722; dense<br>[95%% CI]</th><th>kept<br>fraction</th></tr>\n",
              show_k ? "<th>K</th>" : "");
    for (int i = 0; i < n; i++) {
        const swrow *x = &w[i];
        char         tb[40];
        sb_printf(&r->b, "<tr><td>%d</td><td class=\"p\"><code>", x->index);
        sb_esc(&r->b, x->dir);
        sb_put(&r->b, "</code></td>");
        for (int k = 0; k < nk; k++) {
            const char *t = sw_ptext(jget(x->params, keys[k]), tb, sizeof tb);
            sb_put(&r->b, "<td class=\"p\">");
            sb_esc(&r->b, t ? (t[0] ? t : "(empty)") : "\xe2\x80\x94");
            sb_put(&r->b, "</td>");
        }
        if (show_k) sb_printf(&r->b, "<td>%d</td>", x->K);
        sw_td(r, x->dense, dd, 0, 0);
        sw_td(r, (est){x->mm, NAN, NAN}, de, 0, 0);
        sw_td(r, x->ens, de, 0, 0);
        /* bold: the interval excludes 0 */
        sw_td(r, x->emd, dg, 1, isfinite(x->emd.lo) && isfinite(x->emd.hi) && (x->emd.lo > 0 || x->emd.hi < 0));
        td_num(r, x->kept, 3);
        sb_put(&r->b, "</tr>\n");
    }
    sb_put(&r->b, "</table></div>\n");
    char t[600];
    snprintf(t, sizeof t,
             "Values: %s in %s, mean \xc2\xb1 1.96 standard errors in brackets with documents (images) as the "
             "independent units. ensemble " MINUS " dense is the paired difference (%s), in bold where its interval "
             "excludes 0. K (pathways.members): members; kept: the members' mean kept fraction of attention links. "
             "Run folders are under the sweep folder.",
             what, strcmp(metric, "accuracy") ? "nats/token" : "fraction correct", strcmp(metric, "accuracy") ? "negative: the ensemble is better" : "positive: the ensemble is better");
    sb_put(&r->b, "<p class=\"small\">");
    sb_esc(&r->b, t);
    sb_put(&r->b, "</p>\n</section>\n");
}

/* sort the indices idx[0..n) by key[idx] ascending (stable) */
static void sw_sort(int *idx, int n, const double *key) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && key[idx[j]] < key[idx[j - 1]]; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1], idx[j - 1] = t;
        }
}

/* the plot area shifted right by off px (side-by-side groups at the same x); shift back with -off */
static void sw_dodge(plot *p, double off) { p->L += off, p->R += off; }

static double sw_height(int legend_rows) {
    double h = 16 + 14 + 20.0 * legend_rows + 20 + 52;
    return h > 400 ? h : 400;
}

/* 2. the metric versus pathways.ratio, one line per pathways.scheme */
static void sw_plot_ratio(rep *r, const swrow *w, int n, const char *metric) {
    const char *ylab, *glab, *what, *better;
    sw_metric_names(metric, &ylab, &glab, &what, &better);
    section(r, "ratio", "2. Metric vs ratio, per scheme");
    int    *pick = calloc((size_t)(3 * n + 1), sizeof *pick), np = 0, hidden = 0, ratio_swept = 0, scheme_swept = 0;
    double *xv   = calloc((size_t)(n + 1), sizeof *xv);
    if (!pick || !xv) {
        free(pick), free(xv);
        r->b.oom = 1;
        return;
    }
    int *grp = pick + n, *ord = grp + n;
    /* one point per (scheme, ratio): the largest K, the first in row order among equals */
    for (int i = 0; i < n; i++) {
        if (strcmp(w[i].metric, metric)) continue;
        ratio_swept |= isfinite(w[i].ratio), scheme_swept |= w[i].scheme != NULL;
        int j = 0;
        while (j < np && !(sw_same_scheme(w[pick[j]].scheme, w[i].scheme) && sw_same_ratio(w[pick[j]].ratio, w[i].ratio))) j++;
        if (j == np) pick[np++] = i;
        else {
            hidden++;
            if (w[i].K > w[pick[j]].K) pick[j] = i;
        }
    }
    int has = 0;
    for (int j = 0; j < np; j++) has |= isfinite(w[pick[j]].ens.v) || isfinite(w[pick[j]].mm);
    if (!has) {
        note(r, "Nothing to plot: no finished point has an ensemble (pathways.members = 0 everywhere, or no point done).");
        goto done;
    }
    /* x positions: log2 of the ratio when it spans a factor of 4 or more over 3+ values */
    double rmin = NAN, rmax = NAN;
    int    nd = 0;
    for (int j = 0; j < np; j++) mm_add(&rmin, &rmax, w[pick[j]].ratio);
    double *dx = calloc((size_t)(np + 1), sizeof *dx);
    if (!dx) {
        r->b.oom = 1;
        goto done;
    }
    for (int j = 0; j < np; j++) {
        double v = w[pick[j]].ratio;
        int    k = 0;
        while (k < nd && !sw_same_ratio(dx[k], v)) k++;
        if (k == nd) dx[nd++] = v;
    }
    for (int i = 1; i < nd; i++) /* distinct ratios ascending (NaN last) */
        for (int j = i; j > 0 && (isnan(dx[j - 1]) || dx[j] < dx[j - 1]) && !isnan(dx[j]); j--) {
            double t = dx[j];
            dx[j] = dx[j - 1], dx[j - 1] = t;
        }
    int logx = ratio_swept && rmin > 0 && rmax / rmin >= 4 && nd >= 3;
#define SWX(v) (!isfinite(v) ? (ratio_swept ? NAN : 0.0) : logx ? log2(v) : (v))
    for (int i = 0; i < n; i++) xv[i] = SWX(w[i].ratio);
    /* groups: the schemes in order of first appearance */
    int ng = 0;
    const char *gs[64];
    for (int j = 0; j < np; j++) {
        const char *s = w[pick[j]].scheme;
        int         g = 0;
        while (g < ng && !sw_same_scheme(gs[g], s)) g++;
        if (g == ng && ng < 64) gs[ng++] = s;
        grp[j] = g < 64 ? g : 63;
    }
    /* y range; is dense one value for every point drawn? */
    double ylo = NAN, yhi = NAN, d0 = NAN;
    int    dense_same = 1;
    for (int j = 0; j < np; j++) {
        const swrow *x = &w[pick[j]];
        mm_add(&ylo, &yhi, x->ens.v), mm_add(&ylo, &yhi, x->ens.lo), mm_add(&ylo, &yhi, x->ens.hi);
        mm_add(&ylo, &yhi, x->mm), mm_add(&ylo, &yhi, x->dense.v);
        if (isfinite(x->dense.v)) {
            if (isnan(d0)) d0 = x->dense.v;
            else if (fabs(x->dense.v - d0) > 1e-12 * fmax(1, fabs(d0))) dense_same = 0;
        }
    }
    sb_put(&r->b, "<figure>\n");
    plot p;
    char title[160];
    snprintf(title, sizeof title, "%s vs pathways.ratio, one line per pathways.scheme", what);
    int nleg = ng + (scheme_swept ? 1 : 0) + 4;
    plot_open(&p, r, 780, sw_height(nleg), 78, 16, 220, 52, "sweep-ratio", title);
    double xlo = SWX(dx[0]), xhi = SWX(dx[0]);
    for (int k = 0; k < nd; k++) mm_add(&xlo, &xhi, SWX(dx[k]));
    if (!(xhi > xlo)) xlo -= 1, xhi += 1;
    double step = ng > 1 ? fmin(12.0, 48.0 / (ng - 1)) : 0;
    p.x0 = xlo, p.x1 = xhi, p.xs = 0, p.padx = 14 + step * (ng - 1) / 2;
    plot_yrange(&p, ylo, yhi, 10);
    plot_axes(&p,
              !ratio_swept ? "pathways.ratio (not swept: one value)"
              : logx       ? "subsampling ratio " "\xcf\x81" " (pathways.ratio; keeps ~1/" "\xcf\x81" " of links; log scale)"
                           : "subsampling ratio " "\xcf\x81" " (pathways.ratio; keeps ~1/" "\xcf\x81" " of links)",
              ylab, 40);
    for (int k = 0; k < nd; k++) {
        char t[40];
        if (!isfinite(dx[k])) snprintf(t, sizeof t, "fixed");
        else snprintf(t, sizeof t, "%g", dx[k]);
        if (xhi - xlo > 0 && isfinite(SWX(dx[k]))) {
            svg_line(p.b, PX(&p, SWX(dx[k])), p.T, PX(&p, SWX(dx[k])), p.B, "#efefef", 1, NULL);
            plot_xtick(&p, SWX(dx[k]), t, 0);
        }
    }
    if (dense_same) plot_hline(&p, d0, C_DENSE, 1.6, "6 4");
    for (int g = 0; g < ng; g++) {
        const char *col = PALETTE[g % NPALETTE];
        int         m = 0, shape = g % 4;
        for (int j = 0; j < np; j++)
            if (grp[j] == g) ord[m++] = pick[j];
        sw_sort(ord, m, xv);
        double off = (g - (ng - 1) / 2.0) * step;
        double *gx = calloc((size_t)(3 * m + 1), sizeof *gx);
        if (!gx) {
            r->b.oom = 1;
            break;
        }
        double *ge = gx + m, *gm = ge + m;
        for (int k = 0; k < m; k++) gx[k] = xv[ord[k]], ge[k] = w[ord[k]].ens.v, gm[k] = w[ord[k]].mm;
        sw_dodge(&p, off);
        if (!dense_same)
            for (int k = 0; k < m; k++)
                if (isfinite(gx[k]) && isfinite(w[ord[k]].dense.v))
                    svg_line(p.b, PX(&p, gx[k]) - 9, PY(&p, w[ord[k]].dense.v), PX(&p, gx[k]) + 9, PY(&p, w[ord[k]].dense.v),
                             C_DENSE, 2, NULL);
        plot_polyline(&p, gx, gm, m, col, 1.6, "6 4");
        for (int k = 0; k < m; k++) plot_marker(&p, gx[k], gm[k], shape, col, 0, 3.5);
        plot_polyline(&p, gx, ge, m, col, 2.2, NULL);
        for (int k = 0; k < m; k++) {
            plot_errbar(&p, gx[k], w[ord[k]].ens.lo, w[ord[k]].ens.hi, col);
            plot_marker(&p, gx[k], ge[k], shape, col, 1, 4);
        }
        sw_dodge(&p, -off);
        free(gx);
    }
    /* legend */
    double ly = p.T + 14;
    if (scheme_swept) {
        svg_text(p.b, p.R + 18, ly + 4, "start", 12, " font-weight=\"600\"", "pathways.scheme");
        ly += 20;
    }
    for (int g = 0; g < ng; g++, ly += 20) {
        legend_item it = {LG_LINE_MARK, PALETTE[g % NPALETTE], gs[g] ? gs[g] : "ensemble", g % 4};
        svg_legend(p.b, p.R + 18, ly, &it, 1);
    }
    ly += 8;
    legend_item lg[] = {{LG_LINE, "#666666", "ensemble, 95% bars", 0},
                        {LG_DASH, "#666666", "mean member (open)", 0},
                        {dense_same ? LG_DASH : LG_LINE, C_DENSE, dense_same ? "dense model" : "dense model (per point)", 0}};
    svg_legend(p.b, p.R + 18, ly, lg, 3);
    svg_close(p.b);
    char cap[900];
    int  k = snprintf(cap, sizeof cap,
                      "%s (%s) of the ensemble with its 95%% interval (solid, filled markers) and of the mean member "
                      "(dashed, open markers) against the subsampling ratio, one colour per scheme%s; %s.",
                      what, better, ng > 1 ? ", offset sideways at each ratio so that the bars do not overlap" : "",
                      dense_same ? "black dashed: the dense model" : "short black bars: the dense model of each point");
    if (cap[0] >= 'a' && cap[0] <= 'z') cap[0] = (char)(cap[0] - 'a' + 'A');
    if (!ratio_swept && k < (int)sizeof cap)
        k += snprintf(cap + k, sizeof cap - k, " pathways.ratio was not swept: one x value.");
    if (hidden && k < (int)sizeof cap)
        snprintf(cap + k, sizeof cap - k,
                 " Where other swept keys vary at the same scheme and ratio, the point with the largest K is drawn "
                 "(%d of the table's rows are not drawn here).", hidden);
    caption(r, cap);
    free(dx);
#undef SWX
done:
    sb_put(&r->b, "</section>\n");
    free(pick);
    free(xv);
}

/* 3. ensemble - dense (paired) versus the number of members K, one line per
 * (scheme, ratio) */
static void sw_plot_minus_dense(rep *r, const swrow *w, int n, const char *metric) {
    const char *ylab, *glab, *what, *better;
    sw_metric_names(metric, &ylab, &glab, &what, &better);
    char sec[160];
    snprintf(sec, sizeof sec, "3. Ensemble " MINUS " dense %s vs number of members K (%s 0: the ensemble is better)",
             strcmp(metric, "accuracy") ? "NLL" : "accuracy", strcmp(metric, "accuracy") ? "below" : "above");
    section(r, "minus-dense", sec);
    int    *grp = calloc((size_t)(3 * n + 1), sizeof *grp), *first = grp + n, *ord = first + n, ng = 0;
    double *kv  = calloc((size_t)(n + 1), sizeof *kv);
    if (!grp || !kv) {
        free(grp), free(kv);
        r->b.oom = 1;
        return;
    }
    double ylo = 0, yhi = 0, kmin = NAN, kmax = NAN; /* the zero line is always in view */
    int    hidden = 0;
    for (int i = 0; i < n; i++) {
        grp[i] = -1;
        kv[i]  = w[i].K;
        if (strcmp(w[i].metric, metric) || !isfinite(w[i].emd.v)) continue;
        int g = 0;
        while (g < ng && !(sw_same_scheme(w[first[g]].scheme, w[i].scheme) && sw_same_ratio(w[first[g]].ratio, w[i].ratio))) g++;
        if (g == ng) first[ng++] = i;
        /* one point per (group, K): the first in row order */
        int dup = 0;
        for (int j = 0; j < i; j++) dup |= grp[j] == g && w[j].K == w[i].K;
        if (dup) {
            hidden++;
            continue;
        }
        grp[i] = g;
        mm_add(&ylo, &yhi, w[i].emd.v), mm_add(&ylo, &yhi, w[i].emd.lo), mm_add(&ylo, &yhi, w[i].emd.hi);
        mm_add(&kmin, &kmax, w[i].K);
    }
    if (ng == 0) {
        note(r, "Nothing to plot: no finished point has an ensemble " MINUS " dense difference (pathways.members = 0 "
                "everywhere, or no point done).");
        goto done;
    }
    /* groups ordered by scheme (first appearance), then ratio */
    double *gk = calloc((size_t)ng * 2, sizeof *gk);
    int    *go = calloc((size_t)ng, sizeof *go);
    if (!gk || !go) {
        free(gk), free(go);
        r->b.oom = 1;
        goto done;
    }
    for (int g = 0; g < ng; g++) {
        int s = 0;
        while (!sw_same_scheme(w[first[s]].scheme, w[first[g]].scheme)) s++;
        gk[g] = s * 1e6 + (isfinite(w[first[g]].ratio) ? w[first[g]].ratio : 0);
        go[g] = g;
    }
    sw_sort(go, ng, gk);
    sb_put(&r->b, "<figure>\n");
    plot p;
    char title[160];
    snprintf(title, sizeof title, "Ensemble " MINUS " dense %s (%s 0: the ensemble is better) vs members K", what,
             strcmp(metric, "accuracy") ? "below" : "above");
    plot_open(&p, r, 780, sw_height(ng + 3), 78, 16, 220, 52, "sweep-minus-dense", title);
    plot_xrange(&p, kmin, kmax, 8);
    int_ticks(&p.xs);
    if (kmax - kmin <= 12) p.xs = 1;
    if (kmax > kmin) p.x0 = kmin, p.x1 = kmax;
    else p.x0 = kmin - 1, p.x1 = kmax + 1;
    double step = ng > 1 ? fmin(10.0, 48.0 / (ng - 1)) : 0;
    p.padx = 14 + step * (ng - 1) / 2;
    plot_yrange(&p, ylo, yhi, 10);
    plot_axes(&p, "ensemble size K (members)", glab, 40);
    plot_hline(&p, 0, C_DENSE, 1.4, "6 4");
    char   (*lab)[96] = calloc((size_t)ng, sizeof *lab);
    if (!lab) {
        r->b.oom = 1;
        ng = 0;
    }
    for (int q = 0; q < ng; q++) {
        int          g = go[q], m = 0;
        const char  *col = PALETTE[q % NPALETTE];
        const swrow *f = &w[first[g]];
        for (int i = 0; i < n; i++)
            if (grp[i] == g) ord[m++] = i;
        sw_sort(ord, m, kv);
        double *gx = calloc((size_t)(2 * m + 1), sizeof *gx);
        if (!gx) {
            r->b.oom = 1;
            break;
        }
        double *gy = gx + m;
        for (int k = 0; k < m; k++) gx[k] = w[ord[k]].K, gy[k] = w[ord[k]].emd.v;
        double off = (q - (ng - 1) / 2.0) * step;
        sw_dodge(&p, off);
        plot_polyline(&p, gx, gy, m, col, 2, NULL);
        for (int k = 0; k < m; k++) {
            plot_errbar(&p, gx[k], w[ord[k]].emd.lo, w[ord[k]].emd.hi, col);
            plot_marker(&p, gx[k], gy[k], q % 4, col, 1, 4);
        }
        sw_dodge(&p, -off);
        free(gx);
        char rt[40] = "";
        if (isfinite(f->ratio)) snprintf(rt, sizeof rt, "\xcf\x81 = %g", f->ratio);
        if (f->scheme && rt[0]) snprintf(lab[q], sizeof lab[q], "%.60s, %s", f->scheme, rt);
        else snprintf(lab[q], sizeof lab[q], "%.60s", f->scheme ? f->scheme : rt[0] ? rt : "all points");
    }
    double ly = p.T + 14;
    for (int q = 0; q < ng; q++, ly += 20) {
        legend_item it = {LG_LINE_MARK, PALETTE[q % NPALETTE], lab[q], q % 4};
        svg_legend(p.b, p.R + 18, ly, &it, 1);
    }
    legend_item z = {LG_DASH, C_DENSE, "0: ensemble = dense", 0};
    svg_legend(p.b, p.R + 18, ly + 8, &z, 1);
    svg_close(p.b);
    char cap[900];
    int  k = snprintf(cap, sizeof cap,
                      "Paired difference ensemble " MINUS " dense of the %s with its 95%% interval against the number "
                      "of members K, one line per (scheme, ratio)%s; %s the ensemble is better than the dense model, "
                      "and an interval that does not cross the dashed zero line is a clear difference.",
                      what, ng > 1 ? ", offset sideways at each K so that the bars do not overlap" : "",
                      strcmp(metric, "accuracy") ? "below 0" : "above 0");
    if (!(kmax > kmin) && k < (int)sizeof cap)
        k += snprintf(cap + k, sizeof cap - k, " K was not varied in this sweep (K = %.0f): one x value.", kmin);
    if (hidden && k < (int)sizeof cap)
        snprintf(cap + k, sizeof cap - k,
                 " Where other swept keys vary at the same scheme, ratio and K, the first point in row order is drawn "
                 "(%d of the table's rows are not drawn here).", hidden);
    caption(r, cap);
    free(lab);
    free(gk);
    free(go);
done:
    sb_put(&r->b, "</section>\n");
    free(grp);
    free(kv);
}

static pe_status sw_render(const char *sweep_dir, char **html, pe_err *err) {
    *html = NULL;
    if (!is_dir(sweep_dir))
        return pe_fail(err, PE_ERR_INPUT, "%s: no such sweep folder; give the run.out folder of a 'pathens sweep'",
                       sweep_dir);
    size_t n     = strlen(sweep_dir) + 32;
    char  *jpath = pe_malloc(n, err, "path");
    if (!jpath) return PE_ERR_INTERNAL;
    snprintf(jpath, n, "%s/sweep.json", sweep_dir);
    char     *text = NULL;
    cJSON    *root = NULL;
    swrow    *w    = NULL;
    rep      *r    = NULL;
    pe_status st   = pe_read_file(jpath, &text, NULL, err);
    if (st) {
        if (st == PE_ERR_INPUT && err) {
            char m[sizeof err->msg];
            snprintf(m, sizeof m, "%s", err->msg);
            pe_fail(err, PE_ERR_INPUT, "%s; 'pathens sweep SWEEP.ini --aggregate' writes it", m);
        }
        goto out;
    }
    root = cJSON_Parse(text);
    if (!cJSON_IsObject(root)) {
        const char *e = cJSON_GetErrorPtr();
        if (!root && e && e >= text && e <= text + strlen(text))
            st = pe_fail(err, PE_ERR_INPUT, "%s: not valid JSON (parse error near byte %ld); rerun 'pathens sweep "
                         "SWEEP.ini --aggregate' to rewrite it", jpath, (long)(e - text));
        else st = pe_fail(err, PE_ERR_INPUT, "%s: not a JSON object; rerun 'pathens sweep SWEEP.ini --aggregate'", jpath);
        goto out;
    }
    if (!(r = calloc(1, sizeof *r))) {
        st = pe_fail(err, PE_ERR_INTERNAL, "out of memory for the sweep report");
        goto out;
    }
    r->err = err, r->rfile = jpath;
    double points = jnum(r, jpath, root, "", "points", 0), done = jnum(r, jpath, root, "", "done", 0);
    const char *sweep = jstr(root, "sweep");
    int nr = sw_parse(r, root, &w);
    if (nr < 0) goto fin;
    /* the swept keys, in order of first appearance */
    const char *keys[SW_MAXKEYS];
    int         nk = 0;
    for (int i = 0; i < nr; i++) {
        const cJSON *pv;
        cJSON_ArrayForEach(pv, w[i].params) {
            int k = 0;
            while (k < nk && strcmp(keys[k], pv->string)) k++;
            if (k == nk && nk < SW_MAXKEYS) keys[nk++] = pv->string;
        }
    }
    const char *metric = nr ? w[0].metric : "nll_per_token";
    int         other  = 0;
    for (int i = 0; i < nr; i++) other += strcmp(w[i].metric, metric) != 0;
    const char *ylab, *glab, *what, *better;
    sw_metric_names(metric, &ylab, &glab, &what, &better);

    sb_put(&r->b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>pathens sweep report: ");
    sb_esc(&r->b, sweep ? basename_of(sweep) : basename_of(sweep_dir));
    sb_printf(&r->b, "</title>\n<style>%s</style>\n</head>\n<body>\n<header>\n<h1>pathens sweep report: ", CSS);
    sb_esc(&r->b, sweep ? basename_of(sweep) : basename_of(sweep_dir));
    char tidy[4096];
    sb_put(&r->b, "</h1>\n<p class=\"sub\">sweep <code>");
    sb_esc(&r->b, sweep ? pe_path_tidy(sweep, tidy, sizeof tidy) : "(unknown)");
    sb_put(&r->b, "</code> &#183; folder <code>");
    sb_esc(&r->b, pe_path_tidy(sweep_dir, tidy, sizeof tidy));
    sb_printf(&r->b, "</code><br>%s of %s points finished &#183; metric: ", fint(r, isfinite(done) ? done : nr),
              isfinite(points) ? fint(r, points) : "?");
    sb_esc(&r->b, what);
    sb_put(&r->b, " (");
    sb_esc(&r->b, strcmp(metric, "accuracy") ? "nats/token" : "fraction correct");
    sb_put(&r->b, ", ");
    sb_esc(&r->b, better);
    sb_put(&r->b, ") &#183; swept: ");
    for (int k = 0; k < nk; k++) {
        sb_put(&r->b, "<span class=\"chip\">");
        sb_esc(&r->b, keys[k]);
        sb_put(&r->b, "</span> ");
    }
    if (!nk) sb_put(&r->b, "&#8212;");
    sb_put(&r->b, "</p>\n</header>\n");
    if (isfinite(points) && nr < points)
        note(r, "%.0f of %.0f points are not finished: the table and the plots show the finished ones only ('pathens "
                "sweep SWEEP.ini --status' lists the others).", points - nr, points); /* no int cast: points is any
                                                                                           * JSON number (fuzzed) */
    if (other)
        note(r, "%d point(s) report a different metric than the first (%s): they are in the table, not in the plots.",
             other, metric);
    sw_table(r, w, nr, keys, nk, metric);
    sw_plot_ratio(r, w, nr, metric);
    sw_plot_minus_dense(r, w, nr, metric);
    sb_put(&r->b, "<footer>Generated by <code>pathens sweep --aggregate</code> from sweep.json; how to read each plot: "
                  "docs/report.md. This page is self-contained: no scripts, no external resources.</footer>\n"
                  "</body>\n</html>\n");
fin:
    if (r->failed) st = err->code ? err->code : PE_ERR_INPUT;
    else if (r->b.oom) st = pe_fail(err, PE_ERR_INTERNAL, "out of memory writing the sweep report");
    if (st) free(r->b.s);
    else *html = r->b.s;
out:
    free(r);
    free(w);
    cJSON_Delete(root);
    free(text);
    free(jpath);
    return st;
}

pe_status report_write_sweep(const char *sweep_dir, const char *out_path, pe_err *err) {
    char     *html = NULL;
    pe_status st   = sw_render(sweep_dir, &html, err);
    if (st) return st;
    char def[4096];
    if (!out_path) {
        snprintf(def, sizeof def, "%s/sweep_report.html", sweep_dir);
        out_path = def;
    }
    st = pe_write_file_atomic(out_path, html, strlen(html), err);
    free(html);
    return st;
}
