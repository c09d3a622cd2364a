/* fuzz_idx: IDX image data (data_load_idx_span), raw or gzip-compressed (detected by magic), as
 * images + labels files: labels given, labels derived from the images' name, a span and a limit.
 * Input: images file FZ_SEP labels file (no separator: the same bytes for both). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "fuzz_util.h"

static void one(const char *images, const char *labels, long limit, double b, double e) {
    image_dataset d;
    memset(&d, 0, sizeof d);
    pe_err err = {0};
    pe_status st = data_load_idx_span(&d, images, labels, limit, b, e, &err);
    fz_check(st, &err, "data_load_idx_span");
    if (st) return;
    if (d.n < 0 || d.rows < 0 || d.cols < 0) {
        fprintf(stderr, "fuzz oracle: %d images of %d x %d accepted\n", d.n, d.rows, d.cols);
        abort();
    }
    unsigned sum = 0; /* every pixel and label the loader says it holds is readable */
    for (size_t i = 0; i < (size_t)d.n * d.rows * d.cols; i++) sum += d.pixels[i];
    for (int i = 0; i < d.n; i++) sum += d.labels[i];
    (void)sum;
    data_free_idx(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_part p[2];
    int n = fz_split(data, size, p, 2);
    fz_reset();
    fz_write("t-images-idx3-ubyte", p[0].p, p[0].n);
    if (n > 1) fz_write("t-labels-idx1-ubyte", p[1].p, p[1].n);
    else fz_write("t-labels-idx1-ubyte", p[0].p, p[0].n);
    char images[4300], labels[4300];
    fz_path(images, sizeof images, "t-images-idx3-ubyte");
    fz_path(labels, sizeof labels, "t-labels-idx1-ubyte");
    one(images, labels, 0, 0.0, 1.0);
    one(images, "", 2, 0.5, 1.0);
    one(images, NULL, 0, 0.0, 0.3);
    return 0;
}
