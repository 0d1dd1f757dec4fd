/* quant_calib.c: choose-quant's calibration data and measurements.
 *
 * A calibration set is a list of runs of the model: each run is one set of input values. They come
 * from the files of --calibrate and --quant-heldout:
 *   FILE.npy  one run of a model with one input; dtype and shape are checked against the input's
 *             declaration (an error names the file, the input and what it expects);
 *   any other file is text for a character language model (one input i32[T], a vocabulary in the
 *             weights' metadata): cut into windows of T's bound, one run each (a text shorter than
 *             that is one shorter window); a character outside the vocabulary is an error naming
 *             the file and the offset.
 * The runs go through the interpreter (pass_calib_run), the oracle, so that what is measured is what
 * the integers of the quantized kernels give, not an approximation of them.
 *
 * Measurements:
 *   - the ranges of activations (CalibStats): min, max and a percentile of |x| from a histogram with
 *     16 bins per octave (so the percentile is exact to about 4%), bounded memory whatever the set;
 *   - the change of a model's output against fp32 (pass_calib_loss): for an output whose name holds
 *     "logits", the mean over rows of KL(softmax(fp32) || softmax(quantized)) along the last axis, in
 *     nats; for any other output, the relative error ||y - y32|| / ||y32|| over the whole set.
 */
#include "passes/passes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/kiln_rt.h"

void pass_calib_free(CalibSet *s)
{
    for (int i = 0; i < s->nrun; i++)
        free(s->data[i]);
    free(s->data);
    free(s->in);
    memset(s, 0, sizeof *s);
}

/* Appends one run owning data (malloc'ed). */
static void add_run(CalibSet *s, DType dt, int rank, const int64_t *shape, void *data)
{
    s->in = realloc(s->in, sizeof *s->in * (size_t)(s->nrun + 1));
    s->data = realloc(s->data, sizeof *s->data * (size_t)(s->nrun + 1));
    KILN_ASSERT(s->in && s->data);
    HostTensor *t = &s->in[s->nrun];
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->rank = rank;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)rank);
    t->data = data;
    s->data[s->nrun++] = data;
}

/* Whether run t fits g's input; else an error naming path, with the interpreter's own sentence about
 * the input (captured, so that the one error line names the file too). */
static int fits(const Graph *g, const HostTensor *t, const char *path, Diag *d)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    KILN_ASSERT(mem);
    Diag *tmp = diag_new(mem);
    int64_t vals[IR_MAX_SYMS];
    int bad = ir_bind_inputs(g, t, vals, tmp) != 0;
    diag_free(tmp);
    fclose(mem);
    if (bad) {
        const char *msg = buf;
        if (!strncmp(msg, "kiln: error: ", 13))
            msg += 13;
        size_t n = strcspn(msg, "\n");
        diag_fatal(d, "calibration file '%s' does not fit the model: %.*s", path, (int)n, msg);
    }
    free(buf);
    return !bad;
}

static int load_npy(const Graph *g, const char *path, CalibSet *s, Diag *d)
{
    RtNpy a;
    char err[512];
    if (rt_npy_read(path, &a, err, sizeof err)) {
        diag_fatal(d, "calibration file: %s", err);
        return -1;
    }
    int dt = dtype_from_npy(a.descr);
    if (dt < 0) {
        diag_fatal(d, "calibration file '%s' holds NumPy dtype '%s', which kiln does not read (input '%s' is %s)",
                   path, a.descr, g->inputs[0]->name, dtype_traits[g->inputs[0]->dtype].name);
        rt_npy_free(&a);
        return -1;
    }
    HostTensor t = {.dtype = (DType)dt, .rank = a.rank, .data = a.data};
    memcpy(t.shape, a.shape, sizeof(int64_t) * (size_t)a.rank);
    if (!fits(g, &t, path, d)) {
        rt_npy_free(&a);
        return -1;
    }
    add_run(s, t.dtype, t.rank, t.shape, a.data); /* the set owns a.data now */
    return 0;
}

char *pass_calib_read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    KILN_ASSERT(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            buf = realloc(buf, cap *= 2);
            KILN_ASSERT(buf);
        }
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static int load_text(const Graph *g, const char *path, CalibSet *s, Diag *d)
{
    const Node *x = g->inputs[0];
    if (!g->vocab || x->dtype != DT_I32 || x->rank != 1 || !dim_is_sym(x->shape[0], -1)) {
        diag_fatal(d, "calibration file '%s' is text (not .npy), which needs a character language model: one "
                   "input i32[T] and a vocabulary in the weights' metadata", path);
        return -1;
    }
    int map[256];
    for (int i = 0; i < 256; i++)
        map[i] = -1;
    for (int i = 0; g->vocab[i]; i++)
        map[(unsigned char)g->vocab[i]] = i;
    int64_t W = dim_max(g, x->shape[0]);
    size_t len;
    char *text = pass_calib_read_text(path, &len);
    if (!text) {
        diag_fatal(d, "cannot open calibration file '%s'", path);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        if (map[(unsigned char)text[i]] < 0) {
            diag_fatal(d, "calibration file '%s': the character at offset %zu (byte 0x%02x) is not in the model's "
                       "vocabulary", path, i, (unsigned char)text[i]);
            free(text);
            return -1;
        }
    if (len == 0) {
        diag_fatal(d, "calibration file '%s' is empty", path);
        free(text);
        return -1;
    }
    /* whole windows; a text shorter than one window is one shorter run */
    for (size_t at = 0; at < len && (at == 0 || at + (size_t)W <= len); at += (size_t)W) {
        int64_t n = (int64_t)(len - at) < W ? (int64_t)(len - at) : W;
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
        KILN_ASSERT(ids);
        for (int64_t k = 0; k < n; k++)
            ids[k] = map[(unsigned char)text[at + (size_t)k]];
        add_run(s, DT_I32, 1, &n, ids);
    }
    free(text);
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int pass_calib_load(const Graph *g, int nfile, const char *const *files, CalibSet *s, Diag *d)
{
    if (g->ninput != 1 || g->nentry || g->nstate) {
        diag_fatal(d, "calibration runs a model with one input, one entry and no state; %s has %d input%s%s",
                   g->model ? g->model : "this model", g->ninput, g->ninput == 1 ? "" : "s",
                   g->nentry || g->nstate ? " and a KV cache (calibrate without --kv-cache)" : "");
        return -1;
    }
    int bad = 0;
    for (int i = 0; i < nfile; i++)
        bad |= (ends_with(files[i], ".npy") ? load_npy(g, files[i], s, d) : load_text(g, files[i], s, d)) != 0;
    return bad ? -1 : 0;
}

int pass_calib_run(const Graph *h, const CalibSet *s, int r, HostTensor *out, Diag *d)
{
    memset(out, 0, sizeof *out * (size_t)h->noutput);
    return ir_interp(h, &s->in[r], out, d);
}

/* ---------------------------------------------------------------- activation ranges */

enum { OCT_LO = -40, OCT_HI = 40, PER_OCT = 16 };

static int bin_of(double a)
{
    if (!(a > 0))
        return 0;
    double l = log2(a);
    if (l < OCT_LO)
        return 0;
    if (l >= OCT_HI)
        return CALIB_BINS - 1;
    return 1 + (int)((l - OCT_LO) * PER_OCT);
}

/* The upper edge of bin b (bin 0 holds zeros and what is below 2^OCT_LO). */
static double bin_top(int b)
{
    return b == 0 ? exp2(OCT_LO) : exp2(OCT_LO + (double)b / PER_OCT);
}

void pass_calib_observe(CalibStats *st, const HostTensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->shape[i];
    if (!st->count)
        st->min = INFINITY, st->max = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double v = dtype_load(t->dtype, t->data, (size_t)i);
        if (isnan(v))
            continue;
        st->min = v < st->min ? v : st->min;
        st->max = v > st->max ? v : st->max;
        st->hist[bin_of(fabs(v))]++;
        st->count++;
    }
}

double pass_calib_percentile(const CalibStats *st, double p)
{
    if (!st->count)
        return 0;
    uint64_t want = (uint64_t)ceil(p / 100.0 * (double)st->count), seen = 0;
    for (int b = 0; b < CALIB_BINS; b++)
        if ((seen += st->hist[b]) >= want) {
            double top = bin_top(b), amax = fmax(fabs(st->min), fabs(st->max));
            return top < amax ? top : amax;
        }
    return fmax(fabs(st->min), fabs(st->max));
}

/* ---------------------------------------------------------------- the output's change */

int pass_calib_is_kl(const Graph *g)
{
    return g->noutput > 0 && strstr(g->outputs[0].name, "logits") != NULL;
}

void pass_calib_loss_add(CalibLoss *l, int kl, const HostTensor *ref, const HostTensor *q)
{
    int64_t n = 1;
    for (int i = 0; i < ref->rank; i++)
        n *= ref->shape[i];
    int64_t V = ref->rank ? ref->shape[ref->rank - 1] : 1;
    if (!kl || V < 1) {
        for (int64_t i = 0; i < n; i++) {
            double a = dtype_load(ref->dtype, ref->data, (size_t)i), b = dtype_load(q->dtype, q->data, (size_t)i);
            l->num += (a - b) * (a - b);
            l->den += a * a;
        }
        return;
    }
    /* KL(p || q) = sum p (log p - log q), with log-softmax computed stably in double */
    for (int64_t r = 0; r < n / V; r++) {
        double mp = -INFINITY, mq = -INFINITY, sp = 0, sq = 0;
        for (int64_t j = 0; j < V; j++) {
            mp = fmax(mp, dtype_load(ref->dtype, ref->data, (size_t)(r * V + j)));
            mq = fmax(mq, dtype_load(q->dtype, q->data, (size_t)(r * V + j)));
        }
        for (int64_t j = 0; j < V; j++) {
            sp += exp(dtype_load(ref->dtype, ref->data, (size_t)(r * V + j)) - mp);
            sq += exp(dtype_load(q->dtype, q->data, (size_t)(r * V + j)) - mq);
        }
        double kl_row = 0;
        for (int64_t j = 0; j < V; j++) {
            double lp = dtype_load(ref->dtype, ref->data, (size_t)(r * V + j)) - mp - log(sp);
            double lq = dtype_load(q->dtype, q->data, (size_t)(r * V + j)) - mq - log(sq);
            kl_row += exp(lp) * (lp - lq);
        }
        l->num += kl_row;
        l->den += 1;
    }
}

double pass_calib_loss(const CalibLoss *l, int kl)
{
    if (kl)
        return l->den > 0 ? fmax(l->num / l->den, 0) : 0;
    return l->den > 0 ? sqrt(l->num / l->den) : l->num > 0 ? INFINITY : 0;
}
