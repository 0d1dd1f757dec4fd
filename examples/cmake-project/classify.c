/* classify.c: MNIST digits classified by the compiled vit-mnist model, through the typed API of the
 * header kiln generated (vit_mnist.h) and the runtime's .npy reader (kiln/kiln_rt.h, in the same
 * library).
 *
 *   classify IMAGES.npy [LOGITS.npy]
 * IMAGES: f32[B, 1, 28, 28], pixels in [0, 1]. Prints each image's class; writes the logits
 * f32[B, 10] to LOGITS when given.
 */
#include <kiln/kiln_rt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vit_mnist.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: classify IMAGES.npy [LOGITS.npy]\n");
        return 2;
    }
    char err[512];
    RtNpy img;
    if (rt_npy_read(argv[1], &img, err, sizeof err)) {
        fprintf(stderr, "classify: %s\n", err);
        return 1;
    }
    if (strcmp(img.descr, "<f4") || img.rank != 4 || img.shape[1] != 1 || img.shape[2] != 28 || img.shape[3] != 28 ||
        img.shape[0] < 1 || img.shape[0] > VIT_MNIST_MAX_B) {
        fprintf(stderr, "classify: %s: expected f32[B, 1, 28, 28] with B from 1 to %lld\n", argv[1],
                (long long)VIT_MNIST_MAX_B);
        rt_npy_free(&img);
        return 1;
    }
    int64_t B = img.shape[0];
    float *logits = malloc(sizeof(float) * (size_t)B * 10);
    vit_mnist *m = vit_mnist_open(NULL, 0, err, sizeof err); /* weights embedded in the library */
    int status = 1;
    if (!logits || !m)
        fprintf(stderr, "classify: %s\n", m ? "out of memory" : err);
    else if (vit_mnist_run(m, img.data, logits, B))
        fprintf(stderr, "classify: the model failed\n");
    else {
        status = 0;
        for (int64_t b = 0; b < B; b++) {
            int best = 0;
            for (int c = 1; c < 10; c++)
                best = logits[b * 10 + c] > logits[b * 10 + best] ? c : best;
            printf("image %lld: %d\n", (long long)b, best);
        }
        int64_t shape[2] = {B, 10};
        if (argc == 3 && rt_npy_write(argv[2], "<f4", 2, shape, logits, err, sizeof err)) {
            fprintf(stderr, "classify: %s\n", err);
            status = 1;
        }
    }
    if (m)
        vit_mnist_close(m);
    free(logits);
    rt_npy_free(&img);
    return status;
}
