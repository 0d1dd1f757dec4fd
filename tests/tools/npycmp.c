/* npycmp.c: compares two .npy files, for the script-driven tests.
 *
 *   npycmp [--rtol R] [--atol A] [--maxrel R] ACTUAL.npy EXPECTED.npy
 *   npycmp --kl MAX ACTUAL.npy EXPECTED.npy
 *
 * The shapes must be equal; the dtypes may differ, since every element is read as a double. By
 * default each element must satisfy |a - e| <= atol + rtol * |e| (rtol 1e-5, atol 1e-6, as NumPy's
 * isclose). With --maxrel R the test is on the whole tensor instead: max|a - e| / max|e| <= R,
 * which suits outputs whose small elements carry only rounding noise. With --kl MAX the files are
 * logits: the mean over rows (the last axis is the classes) of KL(softmax(expected) ||
 * softmax(actual)), in nats, must be at most MAX (choose-quant's loss, computed apart from it).
 * NaN, or the same infinity, at the same place in
 * both files counts as equal (and stays out of the whole-tensor measure); NaN on one side only fails, and so does an infinity not matched by
 * the same infinity.
 *
 * Prints one line. "max rel err" is always the whole-tensor measure max|a - e| / max|e|.
 * Exits 0 when the files match, 1 when they do not, 2 on bad usage or an unreadable file.
 * Links only against the runtime's npy.c and libm.
 */
#include "runtime/kiln_rt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double tiny = 1e-30; /* floor for max|e|, so an all-zero expectation can be compared */

static int usage(const char *msg)
{
    if (msg)
        fprintf(stderr, "npycmp: %s\n", msg);
    fprintf(stderr, "usage: npycmp [--rtol R] [--atol A] [--maxrel R] ACTUAL.npy EXPECTED.npy\n"
                    "       npycmp --kl MAX ACTUAL.npy EXPECTED.npy\n");
    return 2;
}

/* IEEE half to double: subnormals, infinities and NaN included. */
static double half_to_double(uint16_t h)
{
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
    return h & 0x8000 ? -v : v;
}

/* Element i of a as a double (memcpy: the data is only as aligned as malloc made it). */
static double load(const RtNpy *a, size_t i)
{
    const unsigned char *p = (const unsigned char *)a->data + i * a->elem_size;
    switch (a->descr[1]) {
    case 'f':
        if (a->elem_size == 2) {
            uint16_t h;
            memcpy(&h, p, 2);
            return half_to_double(h);
        } else if (a->elem_size == 4) {
            float f;
            memcpy(&f, p, 4);
            return f;
        } else {
            double d;
            memcpy(&d, p, 8);
            return d;
        }
    case 'i':
        if (a->elem_size == 1)
            return (int8_t)p[0];
        if (a->elem_size == 2) {
            int16_t v;
            memcpy(&v, p, 2);
            return v;
        }
        if (a->elem_size == 4) {
            int32_t v;
            memcpy(&v, p, 4);
            return v;
        } else {
            int64_t v;
            memcpy(&v, p, 8);
            return (double)v;
        }
    case 'u':
        if (a->elem_size == 2) {
            uint16_t v;
            memcpy(&v, p, 2);
            return v;
        }
        if (a->elem_size == 4) {
            uint32_t v;
            memcpy(&v, p, 4);
            return v;
        }
        return p[0];
    case 'b': return p[0] != 0;
    default: return NAN; /* rt_npy_read accepts nothing else */
    }
}

static void print_shape(FILE *f, int rank, const int64_t *shape)
{
    fputc('[', f);
    for (int i = 0; i < rank; i++)
        fprintf(f, "%s%lld", i ? ", " : "", (long long)shape[i]);
    fputc(']', f);
}

/* The index of flat element i, "[1, 2, 0]". */
static void print_index(FILE *f, const RtNpy *a, size_t i)
{
    int64_t idx[RT_MAX_RANK];
    for (int k = a->rank - 1; k >= 0; k--) {
        idx[k] = a->shape[k] ? (int64_t)(i % (size_t)a->shape[k]) : 0;
        i = a->shape[k] ? i / (size_t)a->shape[k] : 0;
    }
    print_shape(f, a->rank, idx);
}

/* A tolerance from the command line: a finite, non-negative number. */
static int parse_tol(const char *s, double *out)
{
    char *end;
    double v = s ? strtod(s, &end) : NAN;
    if (!s || end == s || *end || !(v >= 0) || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

/* The log-softmax of row r of x (V classes) at class j: x_j - max - log(sum exp(x - max)). */
static void log_softmax(const RtNpy *x, size_t r, size_t V, double *out)
{
    double m = -INFINITY, sum = 0;
    for (size_t j = 0; j < V; j++)
        m = fmax(m, load(x, r * V + j));
    for (size_t j = 0; j < V; j++)
        sum += exp(load(x, r * V + j) - m);
    for (size_t j = 0; j < V; j++)
        out[j] = load(x, r * V + j) - m - log(sum);
}

/* --kl: 1 when the mean KL(softmax(e) || softmax(a)) over rows exceeds max (or is NaN). */
static int mean_kl(const RtNpy *a, const RtNpy *e, const char *const *files, double max)
{
    size_t V = e->rank ? (size_t)e->shape[e->rank - 1] : 1, n = e->nbytes / e->elem_size;
    size_t rows = V ? n / V : 0;
    double *lp = malloc(sizeof(double) * (V + 1)), *lq = malloc(sizeof(double) * (V + 1)), total = 0;
    if (!lp || !lq) {
        free(lp);
        free(lq);
        printf("npycmp: FAIL: out of memory\n");
        return 1;
    }
    for (size_t r = 0; r < rows; r++) {
        log_softmax(e, r, V, lp);
        log_softmax(a, r, V, lq);
        for (size_t j = 0; j < V; j++)
            total += exp(lp[j]) * (lp[j] - lq[j]);
    }
    free(lp);
    free(lq);
    double kl = rows ? total / (double)rows : 0;
    int fail = !(kl <= max);
    printf("npycmp: %s mean KL(softmax(%s) || softmax(%s)) = %.4g over %zu rows (at most %.4g)\n",
           fail ? "FAIL" : "OK", files[1], files[0], kl, rows, max);
    return fail;
}

int main(int argc, char **argv)
{
    double rtol = 1e-5, atol = 1e-6, maxrel = -1, klmax = -1;
    const char *files[2];
    int nfiles = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        double *dst = NULL;
        const char *val = NULL;
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(NULL);
            return 0;
        }
        static const char *const opts[4] = {"--rtol", "--atol", "--maxrel", "--kl"};
        double *dsts[4] = {&rtol, &atol, &maxrel, &klmax};
        for (int k = 0; k < 4; k++) {
            size_t n = strlen(opts[k]);
            if (!strncmp(arg, opts[k], n) && (arg[n] == 0 || arg[n] == '=')) {
                dst = dsts[k];
                val = arg[n] == '=' ? arg + n + 1 : (i + 1 < argc ? argv[++i] : NULL);
            }
        }
        if (dst) {
            if (!parse_tol(val, dst)) {
                char msg[160];
                snprintf(msg, sizeof msg, "%s needs a non-negative number, got '%s'", arg,
                         val ? val : "nothing");
                return usage(msg);
            }
        } else if (arg[0] == '-' && arg[1]) {
            char msg[160];
            snprintf(msg, sizeof msg, "unknown option '%s'", arg);
            return usage(msg);
        } else if (nfiles == 2) {
            return usage("expected exactly two files");
        } else {
            files[nfiles++] = arg;
        }
    }
    if (nfiles != 2)
        return usage("expected exactly two files");

    RtNpy a, e;
    char err[512];
    if (rt_npy_read(files[0], &a, err, sizeof err)) {
        fprintf(stderr, "npycmp: %s\n", err);
        return 2;
    }
    if (rt_npy_read(files[1], &e, err, sizeof err)) {
        fprintf(stderr, "npycmp: %s\n", err);
        rt_npy_free(&a);
        return 2;
    }

    int same = a.rank == e.rank;
    for (int k = 0; same && k < a.rank; k++)
        same = a.shape[k] == e.shape[k];
    if (!same) {
        printf("npycmp: FAIL: shape ");
        print_shape(stdout, a.rank, a.shape);
        printf(" of %s differs from the expected ", files[0]);
        print_shape(stdout, e.rank, e.shape);
        printf(" of %s\n", files[1]);
        rt_npy_free(&a);
        rt_npy_free(&e);
        return 1;
    }

    if (klmax >= 0) {
        int fail = mean_kl(&a, &e, files, klmax);
        rt_npy_free(&a);
        rt_npy_free(&e);
        return fail;
    }

    /* One pass: the first element failing the per-element test (or unmatched NaN or infinity),
     * the largest absolute error and where it is, the largest expected magnitude. */
    size_t n = e.nbytes / e.elem_size, bad = (size_t)-1, worst = 0;
    double maxabs = 0, maxe = 0;
    const char *why = NULL; /* set when the failure is a lone NaN or infinity */
    for (size_t i = 0; i < n; i++) {
        double x = load(&a, i), y = load(&e, i);
        if ((isnan(x) && isnan(y)) || (isinf(x) && x == y))
            continue; /* matched: not compared with a tolerance (0 * inf would be NaN) */
        if (isnan(x) || isnan(y) || ((isinf(x) || isinf(y)) && x != y)) {
            if (bad == (size_t)-1) {
                bad = i;
                why = isnan(x) || isnan(y) ? "NaN on one side only" : "unmatched infinity";
            }
            continue;
        }
        double diff = x == y ? 0 : fabs(x - y);
        if (fabs(y) > maxe)
            maxe = fabs(y);
        if (diff > maxabs)
            maxabs = diff, worst = i;
        if (maxrel < 0 && bad == (size_t)-1 && !(diff <= atol + rtol * fabs(y)))
            bad = i;
    }
    double rel = maxabs / (maxe > tiny ? maxe : tiny);
    if (maxrel >= 0 && bad == (size_t)-1 && !(rel <= maxrel))
        bad = worst;

    int fail = bad != (size_t)-1;
    if (fail) {
        double x = load(&a, bad), y = load(&e, bad);
        printf("npycmp: FAIL at index ");
        print_index(stdout, &e, bad);
        printf(": actual %.9g expected %.9g ", x, y);
        if (why)
            printf("(%s)\n", why);
        else if (maxrel >= 0)
            printf("(max rel err %.3g > %.3g, the largest error is here)\n", rel, maxrel);
        else
            printf("(tolerance %.3g = atol %.3g + rtol %.3g * |expected|)\n",
                   atol + rtol * fabs(y), atol, rtol);
    } else {
        printf("npycmp: OK max abs err %.3g, max rel err %.3g (%zu elements)\n", maxabs, rel, n);
    }
    rt_npy_free(&a);
    rt_npy_free(&e);
    return fail;
}
