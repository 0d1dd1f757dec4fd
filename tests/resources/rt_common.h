/* rt_common.h: the inputs and the reference run of tests/resources/rtres.kiln, shared by rt_oom.c
 * and rt_threads.c. */
#ifndef KILN_RT_COMMON_H
#define KILN_RT_COMMON_H

#include "tests/unit/check.h"
#include "runtime/kiln_rt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const RtModel kiln_model_rtres;

enum { RT_T = 300, RT_D = 256 };

typedef struct RtCase {
    float x[RT_T * RT_D];
    int idx[3];
    float y[RT_T * RT_D], g[3 * RT_D];
    int64_t syms[1];
} RtCase;

/* Inputs that depend on seed; outputs zeroed. */
static inline void rt_case_init(RtCase *c, unsigned seed)
{
    for (int i = 0; i < RT_T * RT_D; i++)
        c->x[i] = (float)((i * 2654435761u + seed * 40503u) % 2000) / 500.0f - 2.0f;
    for (int i = 0; i < 3; i++)
        c->idx[i] = (int)((seed + 3 * (unsigned)i) % 8);
    memset(c->y, 0, sizeof c->y);
    memset(c->g, 0, sizeof c->g);
    const int64_t sx[2] = {RT_T, RT_D}, si[1] = {3};
    const int64_t *shapes[2] = {sx, si};
    char err[256];
    REQUIRE(rt_bind(&kiln_model_rtres, shapes, c->syms, err, sizeof err) == 0);
}

static inline int rt_case_run(RtInstance *inst, RtCase *c)
{
    void *in[2] = {c->x, c->idx}, *out[2] = {c->y, c->g};
    return rt_run(inst, c->syms, in, out);
}

/* Whether two runs of the same inputs agree exactly (the kernels are deterministic whatever the
 * number of threads: each element is computed by one thread, in one order). */
static inline int rt_case_same(const RtCase *a, const RtCase *b)
{
    return !memcmp(a->y, b->y, sizeof a->y) && !memcmp(a->g, b->g, sizeof a->g);
}

#endif
