/* tokens.c: the kernels of token matching and pruning (the prune-tokens pass), in f32.
 *
 * The compiled code calls these for the node evit_select, and for the sorts and destinations of
 * tome_match and pitome_match (their similarities, cls_attn and token_merge are generated:
 * codegen/merge.c); the definitions, and the reference implementations they follow, are in
 * ir/tokens.c (the interpreter's versions, in double, which the tests hold these to). They are C
 * rather than generated LLVM IR because matching and top-k end in sorts over a few hundred tokens,
 * branchy code. The generated code calls the matchings' functions once per batch row, from its
 * threads; evit_select's takes every row (a sort of T scores each). Scratch lives on the stack,
 * sized by the token count: nothing is allocated at run time.
 */
#include "runtime/kiln_rt.h"

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

/* ---------------------------------------------------------------- pitome_match's sorts and destinations */

void rt_pitome_rank(int32_t *eord, const float *energy, int64_t n)
{
    int32_t tmp[n > 0 ? n : 1];
    order_desc(energy, n, eord, tmp);
}

void rt_pitome_assign(int32_t *dest, const int32_t *eord, const float *best, const int32_t *bidx, int64_t T, int64_t r,
                      int32_t cls, int32_t bsm)
{
    int64_t c0 = cls ? 1 : 0, n = T - c0 > 0 ? T - c0 : 0, na = (n + 1) / 2, nb = n / 2;
    if (cls)
        dest[0] = 0;
    if (bsm) { /* ToMe's selection between the even (A) and odd (B) ranks; the unmerged A in score order */
        int32_t ord[na > 0 ? na : 1], tmp[na > 0 ? na : 1];
        order_desc(best, na, ord, tmp);
        int64_t rr = r < na ? r : na, base = c0 + na - rr;
        for (int64_t k = 0; k < na; k++)
            dest[c0 + eord[2 * ord[k]]] = (int32_t)(k >= rr ? c0 + k - rr : base + bidx[ord[k]]);
        for (int64_t y = 0; y < nb; y++)
            dest[c0 + eord[2 * y + 1]] = (int32_t)(base + y);
    } else { /* the 2r most energetic merge, rank 2k into rank 2 bidx[k] + 1; the others first, in rank order */
        int64_t rr = 2 * r <= n ? r : n / 2, base = c0 + n - 2 * rr;
        for (int64_t k = 2 * rr; k < n; k++)
            dest[c0 + eord[k]] = (int32_t)(c0 + k - 2 * rr);
        for (int64_t k = 0; k < rr; k++) {
            dest[c0 + eord[2 * k]] = (int32_t)(base + bidx[k]);
            dest[c0 + eord[2 * k + 1]] = (int32_t)(base + k);
        }
    }
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
