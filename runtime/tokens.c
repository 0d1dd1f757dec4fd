/* tokens.c: the kernels of token matching and pruning (the prune-tokens pass), in f32.
 *
 * The compiled code calls these for the nodes pitome_match, cls_attn and evit_select, and for
 * tome_match's selection (its similarity, and token_merge, are generated: codegen/merge.c); the
 * definitions, and the reference implementations they follow, are in ir/tokens.c (the interpreter's
 * versions, in double, which the tests hold these to). They are C rather than generated LLVM IR
 * because matching and top-k end in sorts over a few hundred tokens, branchy code. In FLOPs they are
 * well under 1% of a layer (PiToMe's energy is T^2 dot products of the head size against the layer's
 * ~24 T D^2). Batch rows go over the pool's threads. Scratch lives on the stack, sized by the token
 * count: nothing is allocated at run time.
 */
#include "runtime/kiln_rt.h"

#include <math.h>

/* Stable descending order of v[0..n) into ord (merge sort: ties keep the lower index first). */
static void order_desc(const float *v, int64_t n, int32_t *ord, int32_t *tmp)
{
    for (int64_t i = 0; i < n; i++)
        ord[i] = (int32_t)i;
    for (int64_t w = 1; w < n; w *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * w) {
            int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = v[ord[j]] > v[ord[i]] ? ord[j++] : ord[i++];
            while (i < mid)
                tmp[k++] = ord[i++];
            while (j < hi)
                tmp[k++] = ord[j++];
        }
        for (int64_t i = 0; i < n; i++)
            ord[i] = tmp[i];
    }
}

/* ---------------------------------------------------------------- tome_match's selection */

void rt_tome_select(int32_t *dest, const float *best, const int32_t *bidx, int64_t T, int64_t r, int32_t cls)
{
    int64_t na = (T + 1) / 2, nb = T / 2;
    int32_t ord[na > 0 ? na : 1], tmp[na > 0 ? na : 1];
    r = r < na ? r : na;
    order_desc(best, na, ord, tmp);
    if (cls) /* ToMe sorts the unmerged A tokens by index when [CLS] is protected */
        for (int64_t i = r + 1; i < na; i++)
            for (int64_t j = i; j > r && ord[j - 1] > ord[j]; j--) {
                int32_t t = ord[j];
                ord[j] = ord[j - 1];
                ord[j - 1] = t;
            }
    for (int64_t k = 0; k < na; k++)
        dest[2 * ord[k]] = (int32_t)(k >= r ? k - r : na - r + bidx[ord[k]]);
    for (int64_t y = 0; y < nb; y++)
        dest[2 * y + 1] = (int32_t)(na - r + y);
}

/* ---------------------------------------------------------------- pitome_match */

typedef struct Pitome {
    int32_t *dest;
    const float *m;
    int64_t T, C, r;
    int cls, bsm;
    float margin;
} Pitome;

/* Four partial sums, which the compiler keeps in one vector register (the runtime is built for any
 * x86-64 or AArch64, so this is what it vectorises by itself). */
static float pdot(const float *x, const float *y, int64_t C)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t c = 0;
    for (; c + 4 <= C; c += 4) {
        s0 += x[c] * y[c];
        s1 += x[c + 1] * y[c + 1];
        s2 += x[c + 2] * y[c + 2];
        s3 += x[c + 3] * y[c + 3];
    }
    for (; c < C; c++)
        s0 += x[c] * y[c];
    return (s0 + s1) + (s2 + s3);
}

static void pitome_rows(void *ctx, int64_t begin, int64_t end)
{
    const Pitome *a = ctx;
    int64_t C = a->C, c0 = a->cls ? 1 : 0, n = a->T - c0, na = (n + 1) / 2, nb = n / 2, N = n > 0 ? n : 1;
    float inv[N], energy[N], best[N];
    int32_t eord[N], ord[N], tmp[N], bidx[N];
    for (int64_t row = begin; row < end; row++) {
        const float *m = a->m + (row * a->T + c0) * C;
        int32_t *dest = a->dest + row * a->T;
        for (int64_t i = 0; i < n; i++) {
            float s = sqrtf(pdot(m + i * C, m + i * C, C));
            inv[i] = 1.0f / (s > 1e-12f ? s : 1e-12f);
        }
#define SIM(i, j) (pdot(m + (int64_t)(i) * C, m + (int64_t)(j) * C, C) * inv[i] * inv[j])
        /* the similarity is symmetric: each pair once, its term added to both tokens' energies (each
         * energy still sums its terms in the order of j) */
        for (int64_t i = 0; i < n; i++)
            energy[i] = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = i; j < n; j++) {
                float x = SIM(i, j) - a->margin;
                x = x > 0 ? x : expf(x) - 1;
                energy[i] += x;
                if (j != i)
                    energy[j] += x;
            }
        for (int64_t i = 0; i < n; i++)
            energy[i] /= (float)n;
        order_desc(energy, n, eord, tmp);
        if (a->cls)
            dest[0] = 0;
        if (a->bsm) {
            for (int64_t x = 0; x < na; x++) {
                best[x] = -INFINITY;
                bidx[x] = 0;
                for (int64_t y = 0; y < nb; y++) {
                    float s = SIM(eord[2 * x], eord[2 * y + 1]);
                    if (s > best[x] || y == 0) {
                        best[x] = s;
                        bidx[x] = (int32_t)y;
                    }
                }
            }
            order_desc(best, na, ord, tmp);
            int64_t r = a->r < na ? a->r : na, base = c0 + na - r;
            for (int64_t k = 0; k < na; k++)
                dest[c0 + eord[2 * ord[k]]] = (int32_t)(k >= r ? c0 + k - r : base + bidx[ord[k]]);
            for (int64_t y = 0; y < nb; y++)
                dest[c0 + eord[2 * y + 1]] = (int32_t)(base + y);
        } else {
            int64_t r = 2 * a->r <= n ? a->r : n / 2, base = c0 + n - 2 * r;
            for (int64_t k = 2 * r; k < n; k++)
                dest[c0 + eord[k]] = (int32_t)(c0 + k - 2 * r);
            for (int64_t k = 0; k < r; k++) {
                float bs = -INFINITY;
                int64_t bj = 0;
                for (int64_t j = 0; j < r; j++) {
                    float s = SIM(eord[2 * k], eord[2 * j + 1]);
                    if (s > bs || j == 0) {
                        bs = s;
                        bj = j;
                    }
                }
                dest[c0 + eord[2 * k]] = (int32_t)(base + bj);
                dest[c0 + eord[2 * k + 1]] = (int32_t)(base + k);
            }
        }
#undef SIM
    }
}

void rt_pitome_match(RtPool *p, int32_t *dest, const float *metric, int64_t nb, int64_t T, int64_t C, int64_t r,
                     int32_t cls, float margin, int32_t bsm)
{
    Pitome a = {dest, metric, T, C, r, cls, bsm, margin};
    rt_parallel_for(nb * T * T * C >= 1 << 15 ? p : NULL, nb, pitome_rows, &a);
}

/* ---------------------------------------------------------------- cls_attn */

typedef struct ClsAttn {
    float *out;
    const float *q, *k;
    int64_t Tq, Tk, d;
    float scale;
} ClsAttn;

static void cls_rows(void *ctx, int64_t begin, int64_t end)
{
    const ClsAttn *a = ctx;
    for (int64_t row = begin; row < end; row++) {
        const float *q = a->q + row * a->Tq * a->d, *k = a->k + row * a->Tk * a->d;
        float *y = a->out + row * a->Tk, mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < a->Tk; j++) {
            float s = 0;
            for (int64_t e = 0; e < a->d; e++)
                s += q[e] * k[j * a->d + e];
            y[j] = s * a->scale;
            mx = y[j] > mx ? y[j] : mx;
        }
        for (int64_t j = 0; j < a->Tk; j++)
            sum += (y[j] = expf(y[j] - mx));
        for (int64_t j = 0; j < a->Tk; j++)
            y[j] /= sum;
    }
}

void rt_cls_attn(RtPool *p, float *out, const float *q, const float *k, int64_t nb, int64_t Tq, int64_t Tk,
                 int64_t d, float scale)
{
    ClsAttn a = {out, q, k, Tq, Tk, d, scale};
    rt_parallel_for(nb * Tk * d >= 1 << 15 ? p : NULL, nb, cls_rows, &a);
}

/* ---------------------------------------------------------------- evit_select */

void rt_evit_select(int32_t *dest, const float *attn, int64_t nb, int64_t T, int64_t keep)
{
    int64_t n = T - 1;
    int32_t ord[n > 0 ? n : 1], tmp[n > 0 ? n : 1];
    for (int64_t row = 0; row < nb; row++) {
        int32_t *d = dest + row * T;
        order_desc(attn + row * T + 1, n, ord, tmp);
        d[0] = 0;
        for (int64_t k = 0; k < n; k++)
            d[1 + ord[k]] = (int32_t)(k < keep ? 1 + k : 1 + keep);
    }
}
