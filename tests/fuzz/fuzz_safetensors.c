/* fuzz_safetensors.c: fuzz target for the safetensors reader (ir/weights.c): a file it
 * accepts must have every tensor's bytes inside the mapping (all of them are read), and the
 * lookups must work on it. */
#include "fuzz.h"

#include "frontend/frontend.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write("w.safetensors", data, size);
    Diag *d = diag_new(fuzz_null());
    Weights *w = st_open(path, d);
    if (w) {
        unsigned sum = 0;
        for (int i = 0; i < w->n; i++) {
            const WTensor *t = &w->t[i];
            if ((const char *)t->data < (const char *)w->map ||
                (const char *)t->data + t->nbytes > (const char *)w->map + w->size)
                abort(); /* accepted, yet pointing outside the file */
            for (size_t k = 0; k < t->nbytes; k++)
                sum += ((const unsigned char *)t->data)[k];
            if (st_find(w, t->name) != t)
                abort(); /* names are unique: each is found as itself */
        }
        const char *near[4];
        st_closest(w, "h.0.attn.c_attn.weight", near, 4);
        st_meta(w, "vocab");
        (void)sum;
        st_close(w);
    }
    diag_free(d);
    return 0;
}
