/* mnist.c: MNIST for the tests and the vit-mnist eval, without Python.
 *
 *   mnist images IDX START COUNT OUT.npy    images START.. as f32 [COUNT, 1, 28, 28], pixel / 255
 *   mnist images2x IDX START COUNT OUT.npy  the same at 56 x 56, every pixel repeated 2 x 2 (vit-mnist56)
 *   mnist labels IDX START COUNT OUT.npy    labels as i32 [COUNT]
 *   mnist correct LOGITS.npy LABELS.npy     how many rows' argmax equal their label (prints N)
 * IDX files are the uncompressed ones (gzip -dc the data set's .gz files first).
 */
#include "runtime/kiln_rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *msg, const char *arg)
{
    fprintf(stderr, "mnist: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    return 1;
}

static unsigned be32(const unsigned char *p)
{
    return (unsigned)p[0] << 24 | (unsigned)p[1] << 16 | (unsigned)p[2] << 8 | p[3];
}

/* images: 0 labels, 1 images, 2 images upsampled 2x (nearest) */
static int extract(int images, const char *path, long start, long count, const char *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail("cannot open", path);
    unsigned char head[16];
    size_t hn = images ? 16 : 8;
    if (fread(head, 1, hn, f) != hn || be32(head) != (images ? 2051u : 2049u)) {
        fclose(f);
        return fail(images ? "not an IDX image file" : "not an IDX label file", path);
    }
    long n = (long)be32(head + 4), each = images ? 28 * 28 : 1;
    if (start < 0 || count < 1 || start + count > n || (images && (be32(head + 8) != 28 || be32(head + 12) != 28))) {
        fclose(f);
        return fail("the range is not in the file", path);
    }
    unsigned char *raw = malloc((size_t)(count * each));
    int ok = raw && fseek(f, (long)hn + start * each, SEEK_SET) == 0 &&
             fread(raw, 1, (size_t)(count * each), f) == (size_t)(count * each);
    fclose(f);
    if (!ok) {
        free(raw);
        return fail("cannot read", path);
    }
    char err[256];
    int rc;
    if (images) {
        long s = images == 2 ? 2 : 1, side = 28 * s;
        float *x = malloc(sizeof(float) * (size_t)(count * each * s * s));
        for (long i = 0; x && i < count * side * side; i++) {
            long img = i / (side * side), yy = i / side % side, xx = i % side;
            x[i] = (float)raw[img * each + yy / s * 28 + xx / s] / 255.0f;
        }
        int64_t shape[4] = {count, 1, side, side};
        rc = x ? rt_npy_write(out, "<f4", 4, shape, x, err, sizeof err) : -1;
        free(x);
    } else {
        int32_t *y = malloc(sizeof(int32_t) * (size_t)count);
        for (long i = 0; y && i < count; i++)
            y[i] = raw[i];
        int64_t shape[1] = {count};
        rc = y ? rt_npy_write(out, "<i4", 1, shape, y, err, sizeof err) : -1;
        free(y);
    }
    free(raw);
    return rc ? fail(err, NULL) : 0;
}

static int correct(const char *logits, const char *labels)
{
    RtNpy l, y;
    char err[256];
    if (rt_npy_read(logits, &l, err, sizeof err))
        return fail(err, NULL);
    if (rt_npy_read(labels, &y, err, sizeof err)) {
        rt_npy_free(&l);
        return fail(err, NULL);
    }
    int rc = 0;
    if (strcmp(l.descr, "<f4") || l.rank != 2 || strcmp(y.descr, "<i4") || y.rank != 1 || y.shape[0] != l.shape[0]) {
        rc = fail("expected f32 logits [N, C] and i32 labels [N]", NULL);
    } else {
        const float *p = l.data;
        const int32_t *t = y.data;
        long right = 0;
        for (int64_t i = 0; i < l.shape[0]; i++) {
            int64_t best = 0;
            for (int64_t c = 1; c < l.shape[1]; c++)
                if (p[i * l.shape[1] + c] > p[i * l.shape[1] + best])
                    best = c;
            right += best == t[i];
        }
        printf("%ld\n", right);
    }
    rt_npy_free(&l);
    rt_npy_free(&y);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 6 && (!strcmp(argv[1], "images") || !strcmp(argv[1], "images2x") || !strcmp(argv[1], "labels")))
        return extract(!strcmp(argv[1], "images") ? 1 : !strcmp(argv[1], "images2x") ? 2 : 0, argv[2], atol(argv[3]),
                       atol(argv[4]), argv[5]);
    if (argc == 4 && !strcmp(argv[1], "correct"))
        return correct(argv[2], argv[3]);
    fprintf(stderr, "usage: mnist images|images2x|labels IDX START COUNT OUT.npy | mnist correct LOGITS.npy LABELS.npy\n");
    return 2;
}
