/* model.c: opening a compiled model, binding its symbolic sizes, and running it.
 *
 * rt_open gathers everything one run needs, so that rt_run allocates nothing and only calls the
 * compiled entry: the weights (the blob embedded in the program, or a file written by
 * `kiln build --weights-mode external`, mapped read-only), one 64-byte-aligned activation arena of
 * the size the compiler planned for every symbol at its bound, and a thread pool.
 *
 * A weights file is an RtWeightsHeader padded to 64 bytes and then the blob, so the mapped blob is
 * 64-byte aligned. It is checked before use: the magic, the hash of the blob the code was compiled
 * against (a file from another build is refused rather than run with weights at the wrong
 * offsets), the size, and that the file really holds that many bytes (mapping a truncated file
 * would turn a bad file into SIGBUS in the middle of a run).
 *
 * A model with state (ir/entry.c) gets its state buffer here too, zeroed, of RtModel.state_bytes;
 * rt_reset zeroes it again, and rt_run_entry hands it to an entry. Two instances have two states.
 *
 * rt_bind solves each symbolic dimension a*S+b for S from the inputs' actual shapes, and checks
 * that every solution is a whole number from 1 to the bound and the same wherever S appears.
 *
 * Nothing here prints, exits or keeps mutable global state; errors are sentences written into the
 * caller's buffer, naming the file or the input and what was expected.
 */
#include "runtime/kiln_rt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#endif

enum { WEIGHTS_OFFSET = 64 }; /* where the blob starts in a weights file */

struct RtInstance {
    const RtModel *m;
    const void *weights; /* the blob: embedded, or inside map */
    void *map;           /* the mapped weights file, or NULL */
    size_t map_len;
    void *activations; /* (activations_bytes rounded up to 64, at least 64) */
    void *state;       /* (state_bytes rounded up to 64), or NULL without state */
    RtPool *pool;
};

static int model_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int model_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Appends to buf (of size n) at *k, never past its end. */
static void model_put(char *buf, size_t n, size_t *k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void model_put(char *buf, size_t n, size_t *k, const char *fmt, ...)
{
    if (*k >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *k, n - *k, fmt, ap);
    va_end(ap);
    *k = w < 0 ? n : *k + (size_t)w;
}

static const char *model_sym_name(const RtModel *m, int64_t s)
{
    return s >= 0 && s < m->nsyms && m->syms[s].name ? m->syms[s].name : "?";
}

/* The terms of d that can be read: a malformed count reads as none. */
static int64_t model_nterms(const RtDim *d)
{
    return d->n > 0 && d->n <= RT_DIM_TERMS ? d->n : 0;
}

/* As the compiler prints dims: "T", "2*T+1", "P+T", "-T+3", "768". */
static void model_put_dim(const RtModel *m, RtDim d, char *buf, size_t n, size_t *k)
{
    int64_t nt = model_nterms(&d);
    for (int64_t i = 0; i < nt; i++) {
        if (d.a[i] == -1)
            model_put(buf, n, k, "-");
        else if (d.a[i] != 1)
            model_put(buf, n, k, i ? "%+lld*" : "%lld*", (long long)d.a[i]);
        else if (i)
            model_put(buf, n, k, "+");
        model_put(buf, n, k, "%s", model_sym_name(m, d.sym[i]));
    }
    if (!nt)
        model_put(buf, n, k, "%lld", (long long)d.b);
    else if (d.b)
        model_put(buf, n, k, "%+lld", (long long)d.b);
}

int64_t rt_dim_value(const RtDim *d, const int64_t *syms)
{
    /* unsigned: a hostile descriptor wraps instead of overflowing */
    uint64_t v = (uint64_t)d->b;
    for (int64_t i = 0; i < model_nterms(d); i++)
        v += (uint64_t)d->a[i] * (uint64_t)syms[d->sym[i]];
    return (int64_t)v;
}

/* A tensor's shape as the model declares it: "[T, 768]", "[2*T+1]", "[]". main.c uses it too; it
 * is not in kiln_rt.h because it is not part of the public API. */
void rt_shape_desc(const RtModel *m, const RtTensorDesc *t, char *buf, size_t n)
{
    size_t k = 0;
    if (n)
        buf[0] = 0;
    model_put(buf, n, &k, "[");
    for (int64_t d = 0; d < t->rank && d < RT_MAX_RANK; d++) {
        if (d)
            model_put(buf, n, &k, ", ");
        model_put_dim(m, t->dims[d], buf, n, &k);
    }
    model_put(buf, n, &k, "]");
}

static void model_shape_str(const int64_t *shape, int64_t rank, char *buf, size_t n)
{
    size_t k = 0;
    model_put(buf, n, &k, "[");
    for (int64_t d = 0; d < rank; d++)
        model_put(buf, n, &k, "%s%lld", d ? ", " : "", (long long)shape[d]);
    model_put(buf, n, &k, "]");
}

/* ---- opening */

static int model_map_weights(RtInstance *inst, const char *path, char *err, size_t errlen)
{
    const RtModel *m = inst->m;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return model_fail(err, errlen, "%s: cannot open the weights file: %s", path,
                          strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return model_fail(err, errlen, "%s: cannot read the weights file: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return model_fail(err, errlen, "%s: not a regular file; expected a kiln weights file",
                          path);
    }
    size_t size = (size_t)st.st_size;
    if (size < WEIGHTS_OFFSET) {
        close(fd);
        return model_fail(err, errlen,
                          "%s: file is truncated: it has %zu bytes, less than the %d-byte header "
                          "of a kiln weights file", path, size, WEIGHTS_OFFSET);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return model_fail(err, errlen, "%s: cannot map the weights file: %s", path, strerror(e));
    inst->map = map;
    inst->map_len = size;

    RtWeightsHeader h;
    memcpy(&h, map, sizeof h);
    if (memcmp(h.magic, "KILNWTS1", 8) != 0)
        return model_fail(err, errlen,
                          "%s: not a kiln weights file (it does not start with \"KILNWTS1\")",
                          path);
    if (h.hash != m->weights_hash)
        return model_fail(err, errlen,
                          "%s: was written for another build of model '%s' (hash mismatch: the "
                          "file has %016llx, this program expects %016llx)", path, m->name,
                          (unsigned long long)h.hash, (unsigned long long)m->weights_hash);
    if (h.bytes != (uint64_t)m->weights_bytes)
        return model_fail(err, errlen,
                          "%s: holds %llu bytes of weights but model '%s' expects %lld",
                          path, (unsigned long long)h.bytes, m->name,
                          (long long)m->weights_bytes);
    if (size - WEIGHTS_OFFSET < h.bytes)
        return model_fail(err, errlen,
                          "%s: file is truncated: its header promises %llu bytes of weights after "
                          "the %d-byte header, the file has %zu", path, (unsigned long long)h.bytes,
                          WEIGHTS_OFFSET, size - WEIGHTS_OFFSET);
    inst->weights = (const char *)map + WEIGHTS_OFFSET;
    return 0;
}

int rt_request_amx(char *err, size_t errlen)
{
#if defined(__linux__) && defined(__x86_64__)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0)
        return 0;
    int e = errno;
    return model_fail(err, errlen, "the operating system does not grant this process AMX tiles "
                      "(arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA): %s%s)", strerror(e),
                      e == EINVAL ? ": this CPU or kernel has no AMX" : "");
#else
    return model_fail(err, errlen, "AMX tiles are available to Linux x86-64 programs only");
#endif
}

RtInstance *rt_open(const RtModel *m, const char *weights_path, int threads, char *err,
                    size_t errlen)
{
    if (m->abi_version != RT_ABI_VERSION) {
        model_fail(err, errlen,
                   "model '%s' was compiled for runtime ABI version %lld, but this runtime is "
                   "version %d; rebuild it with the matching kiln", m->name ? m->name : "?",
                   (long long)m->abi_version, RT_ABI_VERSION);
        return NULL;
    }
    if (m->weights_bytes < 0 || m->activations_bytes < 0 || m->ninputs < 0 || m->noutputs < 0 ||
        m->nsyms < 0 || m->nentries < 0 || m->nstates < 0 || m->state_bytes < 0 ||
        (m->nentries ? !m->entries : !m->run)) {
        model_fail(err, errlen, "model '%s' is malformed (negative sizes or no entry point)",
                   m->name);
        return NULL;
    }
    char why[200];
    if ((m->needs & RT_NEEDS_AMX) && rt_request_amx(why, sizeof why)) {
        model_fail(err, errlen,
                   "model '%s' was compiled for Intel AMX (kiln chose AMX tiles for its int8 or bf16 products), but %s; "
                   "rebuild it on this machine, or for a CPU without AMX (kiln build --features -amx-tile, or "
                   "KILN_QGEMM=amx=0: the AVX-512 kernels)",
                   m->name ? m->name : "?", why);
        return NULL;
    }
    RtInstance *inst = calloc(1, sizeof *inst);
    if (!inst) {
        model_fail(err, errlen, "out of memory opening model '%s'", m->name);
        return NULL;
    }
    inst->m = m;

    if (weights_path) {
        if (model_map_weights(inst, weights_path, err, errlen))
            goto fail;
    } else if (m->embedded_weights || m->weights_bytes == 0) {
        if ((uintptr_t)m->embedded_weights % 64) {
            model_fail(err, errlen, "model '%s' is malformed: its embedded weights are not "
                       "64-byte aligned", m->name);
            goto fail;
        }
        inst->weights = m->embedded_weights;
    } else {
        model_fail(err, errlen,
                   "this program was built with external weights and PROGRAM.weights is not beside "
                   "it: pass --weights FILE (the file written for model '%s' by kiln build)", m->name);
        goto fail;
    }

    /* at least 64 bytes, so that the entry always gets a valid, aligned pointer */
    uint64_t want = (uint64_t)m->activations_bytes;
    if (want > SIZE_MAX - 63) {
        model_fail(err, errlen, "model '%s' needs %llu bytes of activations, too many to allocate",
                   m->name, (unsigned long long)want);
        goto fail;
    }
    size_t act = want ? ((size_t)want + 63) / 64 * 64 : 64;
    inst->activations = aligned_alloc(64, act);
    if (!inst->activations) {
        model_fail(err, errlen, "out of memory: model '%s' needs %zu bytes of activations",
                   m->name, act);
        goto fail;
    }

    if (m->state_bytes > 0) {
        if ((uint64_t)m->state_bytes > SIZE_MAX - 63) {
            model_fail(err, errlen, "model '%s' needs %lld bytes of state, too many to allocate", m->name,
                       (long long)m->state_bytes);
            goto fail;
        }
        size_t sb = ((size_t)m->state_bytes + 63) / 64 * 64;
        inst->state = aligned_alloc(64, sb);
        if (!inst->state) {
            model_fail(err, errlen, "out of memory: model '%s' needs %zu bytes of state", m->name, sb);
            goto fail;
        }
        memset(inst->state, 0, sb);
    }

    inst->pool = rt_pool_new(threads > 0 ? threads : rt_default_threads());
    if (!inst->pool) {
        model_fail(err, errlen, "out of memory creating the thread pool for model '%s'", m->name);
        goto fail;
    }
    return inst;

fail:
    rt_close(inst);
    return NULL;
}

void rt_close(RtInstance *inst)
{
    if (!inst)
        return;
    rt_pool_free(inst->pool);
    free(inst->activations);
    free(inst->state);
    if (inst->map)
        munmap(inst->map, inst->map_len);
    free(inst);
}

const RtModel *rt_model(const RtInstance *inst)
{
    return inst->m;
}

/* ---- binding sizes */

/* Whether dim gives one symbol alone (a*S + b): then its index. */
static int model_sym1(const RtDim *dim, int64_t *s)
{
    if (model_nterms(dim) != 1)
        return 0;
    *s = dim->sym[0];
    return 1;
}

/* For an error message: the first input whose shape gives sym s alone (its index into *where) and
 * the value that dimension gives s. */
static int64_t model_first_use(const RtModel *m, const int64_t *const *shapes, int64_t s,
                               int64_t *where)
{
    for (int64_t i = 0; i < m->ninputs; i++)
        for (int64_t d = 0; d < m->inputs[i].rank; d++) {
            const RtDim *dim = &m->inputs[i].dims[d];
            int64_t ds;
            if (model_sym1(dim, &ds) && ds == s) {
                *where = i;
                return (shapes[i][d] - dim->b) / dim->a[0];
            }
        }
    *where = -1;
    return 0;
}

/* The dims of input t that use several symbols (P+T), once the single-symbol dims have bound them. */
static int model_check_sums(const RtModel *m, const RtTensorDesc *t, const int64_t *shape, const int64_t *syms,
                            char *err, size_t errlen)
{
    for (int64_t d = 0; d < t->rank; d++) {
        const RtDim *dim = &t->dims[d];
        int known = dim->n > 1;
        for (int64_t i = 0; known && i < dim->n; i++)
            known = syms[dim->sym[i]] != 0; /* unbound: reported by the caller */
        int64_t v = known ? rt_dim_value(dim, syms) : 0;
        if (!known || v == shape[d])
            continue;
        char form[160], with[160];
        size_t k = 0, kw = 0;
        model_put_dim(m, *dim, form, sizeof form, &k);
        for (int64_t i = 0; i < dim->n; i++)
            model_put(with, sizeof with, &kw, "%s%s = %lld", i ? ", " : "", model_sym_name(m, dim->sym[i]),
                      (long long)syms[dim->sym[i]]);
        return model_fail(err, errlen, "input '%s': dimension %lld is %lld but %s = %lld (%s)", t->name,
                          (long long)d, (long long)shape[d], form, (long long)v, with);
    }
    return 0;
}

/* rt_bind over the inputs m->inputs[0, m->ninputs); strict: every symbol must be bound. */
static int model_bind(const RtModel *m, const int64_t *const *shapes, int64_t *syms, int strict, char *err,
                      size_t errlen)
{
    for (int64_t s = 0; s < m->nsyms; s++)
        syms[s] = 0; /* unbound; every bound value is >= 1 */

    for (int64_t i = 0; i < m->ninputs; i++) {
        const RtTensorDesc *t = &m->inputs[i];
        if (t->rank < 0 || t->rank > RT_MAX_RANK)
            return model_fail(err, errlen, "model '%s' is malformed: input '%s' has rank %lld",
                              m->name, t->name, (long long)t->rank);
        for (int64_t d = 0; d < t->rank; d++) {
            const RtDim *dim = &t->dims[d];
            int ok = dim->n >= 0 && dim->n <= RT_DIM_TERMS;
            for (int64_t j = 0; ok && j < dim->n; j++)
                ok = dim->sym[j] >= 0 && dim->sym[j] < m->nsyms && dim->a[j] != 0;
            if (!ok)
                return model_fail(err, errlen,
                                  "model '%s' is malformed: dimension %lld of input '%s' is not a sum of at "
                                  "most %d terms a*S over its %lld symbols", m->name, (long long)d, t->name,
                                  RT_DIM_TERMS, (long long)m->nsyms);
        }
        /* static dimensions first, so that a wrong shape reads as one */
        for (int64_t d = 0; d < t->rank; d++) {
            const RtDim *dim = &t->dims[d];
            if (dim->n <= 0 && shapes[i][d] != dim->b) {
                char want[256], got[256];
                rt_shape_desc(m, t, want, sizeof want);
                model_shape_str(shapes[i], t->rank, got, sizeof got);
                return model_fail(err, errlen, "input '%s': expected shape %s, got %s", t->name,
                                  want, got);
            }
        }
        for (int64_t d = 0; d < t->rank; d++) {
            const RtDim *dim = &t->dims[d];
            int64_t s;
            if (!model_sym1(dim, &s)) /* a constant, or several symbols: model_check_sums */
                continue;
            if (dim->a[0] < 0)
                return model_fail(err, errlen,
                                  "model '%s' is malformed: dimension %lld of input '%s' is "
                                  "%lld*S%+lld", m->name, (long long)d, t->name, (long long)dim->a[0],
                                  (long long)dim->b);
            const RtSymDesc *sd = &m->syms[s];
            int64_t x = shapes[i][d], diff;
            char form[96];
            size_t k = 0;
            model_put_dim(m, *dim, form, sizeof form, &k);
            int plain = dim->a[0] == 1 && dim->b == 0;
            if (__builtin_sub_overflow(x, dim->b, &diff) || diff % dim->a[0] != 0)
                return model_fail(err, errlen,
                                  "input '%s': dimension %lld is %lld but must be %s for a whole "
                                  "number %s", t->name, (long long)d, (long long)x, form,
                                  sd->name);
            int64_t v = diff / dim->a[0];
            if (v < 1) {
                if (plain && v == 0) /* as the interpreter says it (ir/interp.c) */
                    return model_fail(err, errlen,
                                      "input '%s': dimension %lld is 0 but %s must be at least 1 (a "
                                      "symbolic size is never 0); an ONNX model imported with --bound %s=0 "
                                      "leaves out the inputs it empties",
                                      t->name, (long long)d, sd->name, sd->name);
                if (plain)
                    return model_fail(err, errlen,
                                      "input '%s': dimension %lld is %lld but %s must be at least 1",
                                      t->name, (long long)d, (long long)x, sd->name);
                return model_fail(err, errlen,
                                  "input '%s': dimension %lld is %lld (%s), so %s = %lld, but %s "
                                  "must be at least 1", t->name, (long long)d, (long long)x, form,
                                  sd->name, (long long)v, sd->name);
            }
            if (v > sd->bound) {
                if (plain)
                    return model_fail(err, errlen, "input '%s': dimension %lld is %lld but %s <= %lld",
                                      t->name, (long long)d, (long long)x, sd->name,
                                      (long long)sd->bound);
                return model_fail(err, errlen,
                                  "input '%s': dimension %lld is %lld (%s), so %s = %lld, but %s <= "
                                  "%lld", t->name, (long long)d, (long long)x, form, sd->name,
                                  (long long)v, sd->name, (long long)sd->bound);
            }
            if (syms[s] && syms[s] != v) {
                int64_t where;
                int64_t first = model_first_use(m, shapes, s, &where);
                const char *other = where >= 0 ? m->inputs[where].name : "?";
                if (plain)
                    return model_fail(err, errlen,
                                      "input '%s': dimension %lld is %lld but input '%s' gives "
                                      "%s = %lld", t->name, (long long)d, (long long)x, other,
                                      sd->name, (long long)first);
                return model_fail(err, errlen,
                                  "input '%s': dimension %lld is %lld (%s), so %s = %lld, but input "
                                  "'%s' gives %s = %lld", t->name, (long long)d, (long long)x,
                                  form, sd->name, (long long)v, other, sd->name, (long long)first);
            }
            syms[s] = v;
        }
    }
    for (int64_t i = 0; i < m->ninputs; i++)
        if (model_check_sums(m, &m->inputs[i], shapes[i], syms, err, errlen))
            return -1;
    for (int64_t s = 0; s < m->nsyms; s++)
        if (!syms[s] && strict)
            return model_fail(err, errlen,
                              "model '%s' is malformed: size '%s' is in no input's shape on its own, so "
                              "it cannot be known", m->name, model_sym_name(m, s));
    return 0;
}

int rt_bind(const RtModel *m, const int64_t *const *shapes, int64_t *syms, char *err, size_t errlen)
{
    return model_bind(m, shapes, syms, !m->nentries, err, errlen);
}

int rt_entry_count(const RtModel *m)
{
    return m->nentries ? (int)m->nentries : 1;
}

int rt_entry_index(const RtModel *m, const char *name)
{
    if (!m->nentries)
        return strcmp(name, "run") ? -1 : 0;
    for (int64_t e = 0; e < m->nentries; e++)
        if (!strcmp(m->entries[e].name, name))
            return (int)e;
    return -1;
}

const RtTensorDesc *rt_entry_inputs(const RtModel *m, int e, int64_t *n)
{
    *n = m->nentries ? m->entries[e].ninputs : m->ninputs;
    return m->nentries ? m->entries[e].inputs : m->inputs;
}

const RtTensorDesc *rt_entry_outputs(const RtModel *m, int e, int64_t *n)
{
    *n = m->nentries ? m->entries[e].noutputs : m->noutputs;
    return m->nentries ? m->entries[e].outputs : m->outputs;
}

int rt_bind_entry(const RtModel *m, int e, const int64_t *const *shapes, int64_t *syms, char *err, size_t errlen)
{
    if (e < 0 || e >= rt_entry_count(m))
        return model_fail(err, errlen, "model '%s' has no entry %d", m->name, e);
    RtModel v = *m; /* the same model seen through the entry's inputs */
    v.inputs = rt_entry_inputs(m, e, &v.ninputs);
    return model_bind(&v, shapes, syms, !m->nentries, err, errlen);
}

void rt_entry_output_shape(const RtModel *m, int e, int i, const int64_t *syms, int64_t *shape)
{
    int64_t n;
    const RtTensorDesc *t = &rt_entry_outputs(m, e, &n)[i];
    for (int64_t d = 0; d < t->rank; d++) {
        shape[d] = rt_dim_value(&t->dims[d], syms);
    }
}

void rt_output_shape(const RtModel *m, int i, const int64_t *syms, int64_t *shape)
{
    const RtTensorDesc *t = &m->outputs[i];
    for (int64_t d = 0; d < t->rank; d++) {
        shape[d] = rt_dim_value(&t->dims[d], syms);
    }
}

/* ---- running */

int rt_run(RtInstance *inst, const int64_t *syms, void *const *inputs, void *const *outputs)
{
    if (inst->m->nentries)
        return rt_run_entry(inst, 0, syms, inputs, outputs);
    return inst->m->run(inst->weights, inst->activations, syms, inputs, outputs, inst->pool);
}

int rt_run_entry(RtInstance *inst, int e, const int64_t *syms, void *const *inputs, void *const *outputs)
{
    const RtModel *m = inst->m;
    if (!m->nentries)
        return m->run(inst->weights, inst->activations, syms, inputs, outputs, inst->pool);
    return m->entries[e].run(inst->weights, inst->activations, inst->state, syms, inputs, outputs, inst->pool);
}

void rt_reset(RtInstance *inst)
{
    if (inst->state)
        memset(inst->state, 0, ((size_t)inst->m->state_bytes + 63) / 64 * 64);
}

void *rt_state(RtInstance *inst)
{
    return inst->state;
}
