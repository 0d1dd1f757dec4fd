/* tokens.c: the interpreter's token-merging and token-pruning ops, in double (the oracle).
 *
 * One call handles one batch row; interp.c loops over the batch. The definitions follow the reference
 * implementations the prune-tokens pass reproduces (docs/PASSES.md):
 *
 *   tome_match   ToMe's bipartite soft matching (facebookresearch/ToMe, merge.py): the metric's rows
 *                normalised to unit length; set A = even tokens, set B = odd tokens; each A token's best
 *                B token by cosine similarity (the first on ties, as torch.max); with a [CLS] token its
 *                row is -inf, so it is never merged; A's tokens ordered by their best score, descending
 *                (a stable sort: the lower index first on ties); the first r merge into their best B
 *                token, the others stay. The result is where each token goes: the unmerged A tokens
 *                first (in that descending order; sorted by index when there is a [CLS] token, as
 *                ToMe sorts them then), then every B token in order, as torch.cat([unm, dst]) puts them.
 *   token_merge  out[j] = sum over tokens i with dest[i] = j of w[i] x[i], divided by the sum of w[i]
 *                (mode mean: ToMe's size-weighted average, merge_wavg) or not (mode sum: the sizes
 *                themselves, and EViT's attention-weighted fused token). w = 1 when absent.
 *   pitome_match PiToMe (hchautran/PiToMe, algo/pitome/merge.py: pitome_vision, pitome, pitome_bsm): over
 *                the tokens after [CLS] (all of them without one), the metric's rows normalised; each
 *                token's energy is the mean over all tokens j of elu(cos(i, j) - margin); tokens ordered
 *                by energy, descending. bsm: the even ranks are set A, the odd ranks set B, and ToMe's
 *                matching follows on them (the unmerged A tokens stay in their score order, unsorted,
 *                then B); otherwise the 2r most energetic tokens merge, the even ranks of them into their
 *                most similar odd rank, and the other tokens stay, in energy order, before the r B
 *                tokens. [CLS] stays first.
 *   cls_attn     softmax over keys of q[0] . k[j] * scale: the [CLS] query's attention row, alone.
 *   evit_select  EViT (youweiliang/evit): token 0 ([CLS]) stays first; of the others the `keep` with the
 *                largest attention (torch.topk, sorted: descending, the lower index first on ties) follow
 *                in that order; the rest go to one fused token at keep + 1.
 */
#include "ir.h"

#include <math.h>
#include <stdlib.h>

static double sim_dot(const double *x, const double *y, int64_t C)
{
    double s = 0;
    for (int64_t c = 0; c < C; c++)
        s += x[c] * y[c];
    return s;
}

/* Stable descending order of v[0..n) into ord (a merge sort: ties keep the lower index first). */
static void order_desc(const double *v, int64_t n, int64_t *ord, int64_t *tmp)
{
    for (int64_t i = 0; i < n; i++)
        ord[i] = i;
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

int ir_tome_match_row(const double *m, int64_t T, int64_t C, int64_t r, int cls, double *dest)
{
    int64_t na = (T + 1) / 2, nb = T / 2;
    double *norm = calloc((size_t)(T + 2 * na) + 1, sizeof(double));
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)(3 * na + 1));
    if (!norm || !idx) {
        free(norm);
        free(idx);
        return -1;
    }
    double *best = norm + T;
    int64_t *bidx = idx, *ord = idx + na, *tmp = idx + 2 * na;
    for (int64_t i = 0; i < T; i++) {
        double s = 0;
        for (int64_t c = 0; c < C; c++)
            s += m[i * C + c] * m[i * C + c];
        norm[i] = sqrt(s);
    }
    for (int64_t a = 0; a < na; a++) {
        best[a] = -INFINITY;
        bidx[a] = 0;
        for (int64_t b = 0; b < nb; b++) {
            const double *x = m + 2 * a * C, *y = m + (2 * b + 1) * C;
            double s = 0;
            for (int64_t c = 0; c < C; c++)
                s += x[c] / norm[2 * a] * (y[c] / norm[2 * b + 1]);
            if (cls && a == 0)
                s = -INFINITY;
            if (s > best[a] || b == 0) {
                best[a] = s;
                bidx[a] = b;
            }
        }
    }
    order_desc(best, na, ord, tmp);
    if (r > na)
        r = na;
    /* the unmerged, ord[r..na): sorted by index with a [CLS] token */
    if (cls) {
        for (int64_t i = r + 1; i < na; i++) /* insertion sort: a handful of hundreds at most */
            for (int64_t j = i; j > r && ord[j - 1] > ord[j]; j--) {
                int64_t t = ord[j];
                ord[j] = ord[j - 1];
                ord[j - 1] = t;
            }
    }
    int64_t base = na - r;
    for (int64_t k = 0; k < na; k++) {
        int64_t a = ord[k];
        dest[2 * a] = (double)(k >= r ? k - r : base + bidx[a]);
    }
    for (int64_t b = 0; b < nb; b++)
        dest[2 * b + 1] = (double)(base + b);
    free(norm);
    free(idx);
    return 0;
}

int ir_pitome_match_row(const double *m, int64_t T, int64_t C, int64_t r, int cls, double margin, int bsm,
                        double *dest)
{
    int64_t c0 = cls ? 1 : 0, n = T - c0, na = (n + 1) / 2, nb = n / 2;
    double *nm = malloc(sizeof(double) * (size_t)(n * C + 3 * n + 1));
    int64_t *ord = malloc(sizeof(int64_t) * (size_t)(4 * n + 1));
    if (!nm || !ord) {
        free(nm);
        free(ord);
        return -1;
    }
    double *energy = nm + n * C, *best = energy + n;
    int64_t *tmp = ord + n, *bidx = tmp + n, *eord = bidx + n;
    for (int64_t i = 0; i < n; i++) { /* F.normalize: x / max(|x|, 1e-12) */
        double s = 0;
        for (int64_t c = 0; c < C; c++)
            s += m[(c0 + i) * C + c] * m[(c0 + i) * C + c];
        s = sqrt(s);
        s = s > 1e-12 ? s : 1e-12;
        for (int64_t c = 0; c < C; c++)
            nm[i * C + c] = m[(c0 + i) * C + c] / s;
    }
#define SIM(i, j) sim_dot(nm + (i) * C, nm + (j) * C, C)
    for (int64_t i = 0; i < n; i++) {
        double e = 0;
        for (int64_t j = 0; j < n; j++) {
            double x = SIM(i, j) - margin;
            e += x > 0 ? x : exp(x) - 1; /* elu, alpha 1 */
        }
        energy[i] = e / (double)n;
    }
    order_desc(energy, n, eord, tmp); /* eord[k]: the token of energy rank k */
    if (cls)
        dest[0] = 0;
    if (bsm) {
        /* A: ranks 0, 2, 4...; B: ranks 1, 3, ...; ToMe's matching between them */
        for (int64_t a = 0; a < na; a++) {
            best[a] = -INFINITY;
            bidx[a] = 0;
            for (int64_t b = 0; b < nb; b++) {
                double s = SIM(eord[2 * a], eord[2 * b + 1]);
                if (s > best[a] || b == 0) {
                    best[a] = s;
                    bidx[a] = b;
                }
            }
        }
        order_desc(best, na, ord, tmp);
        int64_t rr = r < na ? r : na, base = c0 + na - rr;
        for (int64_t k = 0; k < na; k++) {
            int64_t a = ord[k];
            dest[c0 + eord[2 * a]] = (double)(k >= rr ? c0 + k - rr : base + bidx[a]);
        }
        for (int64_t b = 0; b < nb; b++)
            dest[c0 + eord[2 * b + 1]] = (double)(base + b);
    } else {
        /* the 2r most energetic merge: rank 2k into the most similar rank 2j + 1 */
        int64_t rr = 2 * r <= n ? r : n / 2, base = c0 + n - 2 * rr;
        for (int64_t k = 2 * rr; k < n; k++)
            dest[c0 + eord[k]] = (double)(c0 + k - 2 * rr);
        for (int64_t k = 0; k < rr; k++) {
            double bs = -INFINITY;
            int64_t bj = 0;
            for (int64_t j = 0; j < rr; j++) {
                double s = SIM(eord[2 * k], eord[2 * j + 1]);
                if (s > bs || j == 0) {
                    bs = s;
                    bj = j;
                }
            }
            dest[c0 + eord[2 * k]] = (double)(base + bj);
            dest[c0 + eord[2 * k + 1]] = (double)(base + k);
        }
    }
#undef SIM
    free(nm);
    free(ord);
    return 0;
}

void ir_token_merge_row(const double *x, const double *dest, const double *w, int64_t T, int64_t D, int64_t T2,
                        int mean, double *y, double *wsum)
{
    for (int64_t j = 0; j < T2 * D; j++)
        y[j] = 0;
    for (int64_t j = 0; j < T2; j++)
        wsum[j] = 0;
    for (int64_t i = 0; i < T; i++) {
        int64_t j = (int64_t)dest[i];
        double wi = w ? w[i] : 1.0;
        wsum[j] += wi;
        for (int64_t c = 0; c < D; c++)
            y[j * D + c] += wi * x[i * D + c];
    }
    if (mean)
        for (int64_t j = 0; j < T2; j++)
            for (int64_t c = 0; c < D; c++)
                y[j * D + c] /= wsum[j];
}

void ir_cls_attn_row(const double *q, const double *k, int64_t Tk, int64_t d, double scale, double *y)
{
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < Tk; j++) {
        double s = 0;
        for (int64_t e = 0; e < d; e++)
            s += q[e] * k[j * d + e];
        y[j] = s * scale;
        mx = y[j] > mx ? y[j] : mx;
    }
    for (int64_t j = 0; j < Tk; j++)
        sum += (y[j] = exp(y[j] - mx));
    for (int64_t j = 0; j < Tk; j++)
        y[j] /= sum;
}

int ir_evit_select_row(const double *a, int64_t T, int64_t keep, double *dest)
{
    int64_t n = T - 1;
    int64_t *ord = malloc(sizeof(int64_t) * (size_t)(2 * n + 1));
    if (!ord)
        return -1;
    order_desc(a + 1, n, ord, ord + n);
    dest[0] = 0;
    for (int64_t k = 0; k < n; k++)
        dest[1 + ord[k]] = (double)(k < keep ? 1 + k : 1 + keep);
    free(ord);
    return 0;
}
