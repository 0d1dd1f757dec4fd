/* use_shared.c: a model compiled by `kiln build --emit shared`, loaded with dlopen.
 *
 *   use_shared LIB.so MODEL_SYMBOL INPUT.npy OUT.npy
 * Everything comes from the library (the runtime is linked into it): the descriptor, rt_open,
 * rt_run, rt_close and the .npy functions. The model must have one input and one output.
 */
#include "runtime/kiln_rt.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#define SYM(T, name) T name = (T)dlsym(lib, #name); if (!name) { fprintf(stderr, "use_shared: %s missing\n", #name); return 1; }

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "use_shared: %s\n", dlerror());
        return 1;
    }
    const RtModel *m = dlsym(lib, argv[2]);
    if (!m) {
        fprintf(stderr, "use_shared: no symbol %s\n", argv[2]);
        return 1;
    }
    typedef RtInstance *(*OpenFn)(const RtModel *, const char *, int, char *, size_t);
    typedef int (*RunFn)(RtInstance *, const int64_t *, void *const *, void *const *);
    typedef void (*CloseFn)(RtInstance *);
    typedef int (*BindFn)(const RtModel *, const int64_t *const *, int64_t *, char *, size_t);
    typedef void (*ShapeFn)(const RtModel *, int, const int64_t *, int64_t *);
    typedef int (*ReadFn)(const char *, RtNpy *, char *, size_t);
    typedef int (*WriteFn)(const char *, const char *, int, const int64_t *, const void *, char *, size_t);
    typedef void (*FreeFn)(RtNpy *);
    SYM(OpenFn, rt_open) SYM(RunFn, rt_run) SYM(CloseFn, rt_close) SYM(BindFn, rt_bind)
    SYM(ShapeFn, rt_output_shape) SYM(ReadFn, rt_npy_read) SYM(WriteFn, rt_npy_write) SYM(FreeFn, rt_npy_free)
    char err[256];
    RtNpy in;
    if (rt_npy_read(argv[3], &in, err, sizeof err)) {
        fprintf(stderr, "use_shared: %s\n", err);
        return 1;
    }
    int64_t syms[16] = {0};
    const int64_t *shapes[1] = {in.shape};
    if (rt_bind(m, shapes, syms, err, sizeof err)) {
        fprintf(stderr, "use_shared: %s\n", err);
        return 1;
    }
    int64_t oshape[RT_MAX_RANK], n = 1;
    rt_output_shape(m, 0, syms, oshape);
    for (int i = 0; i < m->outputs[0].rank; i++)
        n *= oshape[i];
    float *out = calloc((size_t)n, sizeof(float));
    RtInstance *inst = rt_open(m, NULL, 1, err, sizeof err);
    if (!inst) {
        fprintf(stderr, "use_shared: %s\n", err);
        return 1;
    }
    void *ins[1] = {in.data}, *outs[1] = {out};
    int rc = rt_run(inst, syms, ins, outs);
    rc |= rt_npy_write(argv[4], "<f4", (int)m->outputs[0].rank, oshape, out, err, sizeof err);
    rt_close(inst);
    rt_npy_free(&in);
    free(out);
    dlclose(lib);
    return rc != 0;
}
