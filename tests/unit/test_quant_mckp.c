/* test_quant_mckp.c: choose-quant's multiple-choice knapsack (pass_quant_mckp, passes/choose_quant.c)
 * against brute force on small random instances, and on a few worked by hand.
 *
 * For every instance (1 to 6 layers of 5 options, costs in three dimensions: loss, bytes, time, some
 * options unavailable) and every combination of budgets the pass uses (loss alone, size alone, speed
 * alone, and the pairs and the three together, those with two constrained dimensions on every 50th
 * instance since their grid is 8 times larger and slow under AddressSanitizer; the objective is
 * bytes with a loss budget, else loss),
 * brute force enumerates every choice and:
 *   - a choice the knapsack returns takes available options and meets every budget exactly (the
 *     costs' true sums; it rounds costs up, so it never returns one that does not), and no choice
 *     meeting the budgets has a smaller objective;
 *   - it finds the optimum of the choices that meet the budgets less n / G of their slack (the
 *     budget less the layers' least costs; G = 2^15 units for one constrained dimension, 512 for
 *     two): its objective is at most theirs, and when it says no choice meets the budgets, none of
 *     them does;
 *   - when only the objective's own budget is broken, the choice it returns has the least objective.
 * The budgets are drawn at random choices' costs, so that most instances are tight: many optima sit
 * at the edge of a budget.
 */
#include "passes/passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check.h"

enum { NOPT = 5, MAXN = 6 };

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static double urand(void) /* [0, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

typedef struct Inst {
    int n;
    double cost[MAXN * NOPT * 3];
} Inst;

static int available(const Inst *in, int i, int s)
{
    const double *c = &in->cost[(i * NOPT + s) * 3];
    return !isnan(c[0]) && !isnan(c[1]) && !isnan(c[2]);
}

/* Like choose-quant's layers: fp32 free of loss and the largest; smaller schemes lose more; some
 * layers pinned (one option), some options not measured (NaN); bytes whole numbers, sometimes equal
 * (int8 and w8), losses sometimes equal (zero). */
static void make(Inst *in, int n)
{
    in->n = n;
    for (int i = 0; i < n; i++) {
        double size = 1000 * (1 + floor(urand() * 8)), t = size * (0.5 + urand());
        int pinned = urand() < 0.15 ? (int)(urand() * NOPT) : -1;
        for (int s = 0; s < NOPT; s++) {
            double *c = &in->cost[(i * NOPT + s) * 3];
            double shrink[NOPT] = {1, 0.5, 0.25, 0.25, 0.14};
            c[0] = s == 0 ? 0 : urand() < 0.1 ? 0 : urand() * urand() * (double)s;
            c[1] = floor(size * shrink[s]);
            c[2] = t * (0.2 + urand());
            if ((pinned >= 0 && s != pinned) || (pinned < 0 && s > 0 && urand() < 0.08))
                c[urand() < 0.5 ? 0 : 2] = NAN;
        }
    }
}

static void sums(const Inst *in, const int *ch, double *sum)
{
    sum[0] = sum[1] = sum[2] = 0;
    for (int i = 0; i < in->n; i++)
        for (int d = 0; d < 3; d++)
            sum[d] += in->cost[(i * NOPT + ch[i]) * 3 + d];
}

/* Compares objective tuples (obj first, then the others in order), -1, 0 or 1. */
static int cmp(const double *a, const double *b, int obj)
{
    int ord[3] = {obj, obj == 0 ? 1 : 0, obj == 2 ? 1 : 2};
    for (int k = 0; k < 3; k++)
        if (a[ord[k]] != b[ord[k]])
            return a[ord[k]] < b[ord[k]] ? -1 : 1;
    return 0;
}

/* The best choice by brute force meeting lim[] (< 0: none) in every dimension; 0 when none does. */
static int brute(const Inst *in, const double *lim, int obj, double *best)
{
    int ch[MAXN] = {0}, found = 0;
    for (;;) {
        int ok = 1;
        for (int i = 0; i < in->n; i++)
            ok &= available(in, i, ch[i]);
        double s[3];
        if (ok) {
            sums(in, ch, s);
            for (int d = 0; d < 3; d++)
                ok &= lim[d] < 0 || s[d] <= lim[d];
        }
        if (ok && (!found || cmp(s, best, obj) < 0)) {
            memcpy(best, s, sizeof s);
            found = 1;
        }
        int i = 0;
        while (i < in->n && ++ch[i] == NOPT)
            ch[i++] = 0;
        if (i == in->n)
            return found;
    }
}

/* The budgets less n / G of their slack, in the constrained dimensions (not obj's). */
static void tighten(const Inst *in, const double *budget, int obj, double *lim)
{
    int nc = 0;
    for (int d = 0; d < 3; d++)
        nc += d != obj && budget[d] >= 0;
    double G = nc == 1 ? 32768 : 512;
    for (int d = 0; d < 3; d++) {
        lim[d] = budget[d];
        if (d == obj || budget[d] < 0)
            continue;
        double least = 0;
        for (int i = 0; i < in->n; i++) {
            double l = INFINITY;
            for (int s = 0; s < NOPT; s++)
                if (available(in, i, s) && in->cost[(i * NOPT + s) * 3 + d] < l)
                    l = in->cost[(i * NOPT + s) * 3 + d];
            least += l;
        }
        double slack = budget[d] - least;
        lim[d] = slack < 0 ? budget[d] : budget[d] - slack * (double)in->n / G;
    }
}

static int checked;

static void check_one(const Inst *in, const double *budget, int obj, const char *what)
{
    int ch[MAXN];
    for (int i = 0; i < MAXN; i++)
        ch[i] = -1;
    int rc = pass_quant_mckp(in->n, NOPT, in->cost, budget, obj, ch);
    double full[3], tight[3], lim[3], got[3];
    int any = brute(in, budget, obj, full);
    tighten(in, budget, obj, lim);
    int any_tight = brute(in, lim, obj, tight);
    checked++;
    int set = 1;
    for (int i = 0; i < in->n; i++)
        set &= ch[i] >= 0 && ch[i] < NOPT && available(in, i, ch[i]);
    if (set)
        sums(in, ch, got);
    if (rc == 0) {
        CHECK(set, "%s: n=%d: the choice takes an option a layer has not", what, in->n);
        if (!set)
            return;
        for (int d = 0; d < 3; d++)
            CHECK(budget[d] < 0 || got[d] <= budget[d] * (1 + 1e-12), "%s: n=%d: dimension %d: %.17g over the budget %.17g",
                  what, in->n, d, got[d], budget[d]);
        CHECK(any && cmp(got, full, obj) >= 0, "%s: n=%d: better than brute force's optimum", what, in->n);
        CHECK(!any_tight || got[obj] <= tight[obj] * (1 + 1e-12) + 1e-12,
              "%s: n=%d: objective %.17g, but %.17g meets the budgets less n/G of the slack", what, in->n, got[obj],
              tight[obj]);
    } else {
        CHECK(rc == 1, "%s: rc %d", what, rc);
        CHECK(!any_tight, "%s: n=%d: no choice found, but brute force meets the budgets less n/G of the slack "
              "(objective %.17g)", what, in->n, tight[obj]);
        if (set) { /* only obj's own budget broken: the choice of the least objective within the others */
            double c[3], rest[3];
            memcpy(rest, budget, sizeof rest);
            rest[obj] = -1;
            int ok = brute(in, rest, obj, c);
            CHECK(ok && got[obj] >= c[obj] * (1 - 1e-12) - 1e-12 && budget[obj] >= 0 && got[obj] > budget[obj],
                  "%s: n=%d: the closest choice is not the least objective over the budget", what, in->n);
        }
    }
}

static void test_random(void)
{
    Inst in;
    for (int it = 0; it < 150; it++) {
        make(&in, 1 + it % MAXN);
        /* budgets at a random choice's costs (every layer's option drawn among its available ones),
         * sometimes a little below or above */
        int ch[MAXN];
        for (int i = 0; i < in.n; i++) {
            do
                ch[i] = (int)(urand() * NOPT);
            while (!available(&in, i, ch[i]));
        }
        double at[3];
        sums(&in, ch, at);
        double f = urand() < 0.2 ? 0.9 + 0.2 * urand() : 1;
        for (int mask = 1; mask < 8; mask++) {
            if ((mask == 5 || mask == 6 || mask == 7) && it % 50)
                continue;
            double budget[3];
            for (int d = 0; d < 3; d++)
                budget[d] = mask & (1 << d) ? at[d] * f : -1;
            int obj = budget[0] >= 0 ? 1 : 0;
            char what[64];
            snprintf(what, sizeof what, "instance %d, budgets %s%s%s", it, mask & 1 ? "loss " : "", mask & 2 ? "size " : "",
                     mask & 4 ? "speed" : "");
            check_one(&in, budget, obj, what);
        }
        double none[3] = {-1, -1, -1};
        for (int obj = 0; obj < 3; obj++)
            check_one(&in, none, obj, "no budget");
    }
}

/* Two layers worked by hand. Layer 0: fp32 (loss 0, 400 bytes, 4 ms), w8 (0.1, 100, 2), w4 (0.3,
 * 50, 3); layer 1: fp32 (0, 800, 8), w8 (0.05, 200, 3), w4 (0.5, 100, 2.5). */
static void test_by_hand(void)
{
    Inst in = {.n = 2};
    double c[2][3][3] = {{{0, 400, 4}, {0.1, 100, 2}, {0.3, 50, 3}}, {{0, 800, 8}, {0.05, 200, 3}, {0.5, 100, 2.5}}};
    for (int i = 0; i < 2; i++)
        for (int s = 0; s < NOPT; s++)
            for (int d = 0; d < 3; d++)
                in.cost[(i * NOPT + s) * 3 + d] = s < 3 ? c[i][s][d] : NAN;
    int ch[2];
    /* The budgets are a little above the sums they admit: one exactly at a sum may be missed (the
     * costs are rounded up to the grid). loss <= 0.16: the fewest bytes is w8 + w8 (300); w4 + w8
     * loses 0.35 */
    double b1[3] = {0.16, -1, -1};
    CHECK(pass_quant_mckp(2, NOPT, in.cost, b1, 1, ch) == 0 && ch[0] == 1 && ch[1] == 1, "loss 0.16: %d %d", ch[0], ch[1]);
    /* loss <= 0.36: w4 + w8 (250 bytes) */
    double b2[3] = {0.36, -1, -1};
    CHECK(pass_quant_mckp(2, NOPT, in.cost, b2, 1, ch) == 0 && ch[0] == 2 && ch[1] == 1, "loss 0.36: %d %d", ch[0], ch[1]);
    /* size <= 500 bytes, least loss: fp32 + w4 (0.5), w8 + w8 (0.15, 300): w8 + w8 */
    double b3[3] = {-1, 500, -1};
    CHECK(pass_quant_mckp(2, NOPT, in.cost, b3, 0, ch) == 0 && ch[0] == 1 && ch[1] == 1, "size 500: %d %d", ch[0], ch[1]);
    /* time <= 5.1 ms, least loss: w8 + w8 (5 ms, 0.15); the others within: w8 + w4 (4.5, 0.6) */
    double b4[3] = {-1, -1, 5.1};
    CHECK(pass_quant_mckp(2, NOPT, in.cost, b4, 0, ch) == 0 && ch[0] == 1 && ch[1] == 1, "time 5.1: %d %d", ch[0], ch[1]);
    /* loss <= 0.16 and time <= 4.6: nothing (w8 + w8 takes 5 ms) */
    double b5[3] = {0.16, -1, 4.6};
    ch[0] = ch[1] = -7;
    CHECK(pass_quant_mckp(2, NOPT, in.cost, b5, 1, ch) == 1 && ch[0] == -7, "loss 0.16, time 4.6 is met");
    /* loss <= 0.16 and size <= 250: the fewest bytes within the loss (300) break it: 1, with w8 + w8 */
    double b6[3] = {0.16, 250, -1};
    CHECK(pass_quant_mckp(2, NOPT, in.cost, b6, 1, ch) == 1 && ch[0] == 1 && ch[1] == 1, "loss 0.16, size 250");
    /* loss <= 0.16 and time <= 5.1 (two constrained dimensions), fewest bytes: w8 + w8 */
    double b7[3] = {0.16, -1, 5.1};
    CHECK(pass_quant_mckp(2, NOPT, in.cost, b7, 1, ch) == 0 && ch[0] == 1 && ch[1] == 1, "loss 0.16, time 5.1");
    /* a layer without options: nothing */
    for (int s = 0; s < NOPT; s++)
        in.cost[(1 * NOPT + s) * 3] = NAN;
    CHECK(pass_quant_mckp(2, NOPT, in.cost, b1, 1, ch) == 1, "a layer without options");
}

/* Many layers: the grid shrinks to keep its memory bounded (n x states bytes), and the answer still
 * meets the budgets (here with room: the rounding may take n / G = 200 / 409 of each slack). */
static void test_many(void)
{
    enum { N = 200 };
    double *cost = malloc(sizeof(double) * N * NOPT * 3);
    int *ch = malloc(sizeof(int) * N);
    REQUIRE(cost && ch);
    double fp[3] = {0, 0, 0};
    for (int i = 0; i < N; i++)
        for (int s = 0; s < NOPT; s++) {
            double *c = &cost[(i * NOPT + s) * 3];
            c[0] = s * 0.01 * (1 + urand());
            c[1] = 1000.0 / (1 + s);
            c[2] = 2.0 / (1 + s) + urand();
            if (s == 0)
                for (int d = 0; d < 3; d++)
                    fp[d] += c[d];
        }
    double budget[3] = {-1, fp[1] / 1.5, fp[2] / 1.2};
    REQUIRE(pass_quant_mckp(N, NOPT, cost, budget, 0, ch) == 0);
    double s[3] = {0, 0, 0};
    for (int i = 0; i < N; i++)
        for (int d = 0; d < 3; d++)
            s[d] += cost[(i * NOPT + ch[i]) * 3 + d];
    CHECK(s[1] <= budget[1] && s[2] <= budget[2] * (1 + 1e-12), "%d layers: %g bytes (budget %g), %g ms (budget %g)", N,
          s[1], budget[1], s[2], budget[2]);
    free(cost);
    free(ch);
}

int main(void)
{
    test_by_hand();
    test_random();
    test_many();
    if (!failures)
        printf("test_quant_mckp: %d instances against brute force: ok\n", checked);
    return failures != 0;
}
