/* onnx.c: ONNX files in, model-language text and a weights file out.
 *
 * The file is unpacked with the protobuf-c code generated at build time from ONNX's own onnx.proto
 * (a malformed or truncated file fails there and is reported naming the file). The graph's nodes are
 * already in topological order (ONNX requires it); each is handed to its handler in onnx_ops.c, which
 * infers the output types and either folds the node (every input known at import time: shape
 * subgraphs, Constant, initializers) or writes one or a few lines of the model language. The text
 * carries each node's name and op in a comment, so a user can find an ONNX node in it and edit it.
 *
 * Why text and not IR: the language's lowering checks every shape and dtype and is the one path the
 * rest of kiln is tested through; an import that wrote IR directly would need its own checks and would
 * produce graphs no user could edit. Anything the language cannot say is an error here, naming the
 * node, its op and what is missing; nothing is approximated.
 *
 * Everything the importer allocates lives in one arena, released with the OnnxModel's text.
 */
#include "frontend/onnx.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- errors and text */

int ox_err(Imp *I, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (I->node)
        diag_fatal(I->d, "%s: node '%s' (%s): %s", I->path, I->node->name && *I->node->name ? I->node->name : "(unnamed)",
                   I->node->op_type ? I->node->op_type : "?", msg);
    else
        diag_fatal(I->d, "%s: %s", I->path, msg);
    I->errors++;
    return 1;
}

static void vappend(Imp *I, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (I->nbody + (size_t)n + 1 > I->capbody) {
        I->capbody = (I->nbody + (size_t)n + 1) * 2;
        I->body = realloc(I->body, I->capbody);
        KILN_ASSERT(I->body);
    }
    vsnprintf(I->body + I->nbody, (size_t)n + 1, fmt, ap);
    I->nbody += (size_t)n;
}

void ox_emit(Imp *I, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vappend(I, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- dtypes */

static const struct {
    int kiln;
    const char *name;
} onnx_dtypes[] = {
    [0] = {-1, "UNDEFINED"},   [1] = {DT_F32, "FLOAT"},     [2] = {DT_U8, "UINT8"},
    [3] = {DT_I8, "INT8"},     [4] = {DT_U16, "UINT16"},    [5] = {DT_I16, "INT16"},
    [6] = {DT_I32, "INT32"},   [7] = {DT_I64, "INT64"},     [8] = {-1, "STRING"},
    [9] = {DT_BOOL, "BOOL"},   [10] = {DT_F16, "FLOAT16"},  [11] = {DT_F64, "DOUBLE"},
    [12] = {DT_U32, "UINT32"},     [13] = {DT_U64, "UINT64"},      [14] = {-1, "COMPLEX64"},
    [15] = {-1, "COMPLEX128"}, [16] = {DT_BF16, "BFLOAT16"},
};

int ox_onnx_dtype(int t)
{
    return t >= 0 && t < (int)(sizeof onnx_dtypes / sizeof onnx_dtypes[0]) ? onnx_dtypes[t].kiln : -1;
}

const char *ox_onnx_dtype_name(int t)
{
    return t >= 0 && t < (int)(sizeof onnx_dtypes / sizeof onnx_dtypes[0]) ? onnx_dtypes[t].name : "an unknown dtype";
}

/* ---------------------------------------------------------------- names */

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int name_taken(Imp *I, const char *s)
{
    if (!I->capnames)
        return 0;
    for (uint64_t h = hash(s) & (uint64_t)(I->capnames - 1);; h = (h + 1) & (uint64_t)(I->capnames - 1)) {
        if (!I->names[h])
            return 0;
        if (!strcmp(I->names[h], s))
            return 1;
    }
}

static void name_add(Imp *I, const char *s)
{
    if ((I->nnames + 1) * 2 > I->capnames) {
        int cap = I->capnames ? I->capnames * 2 : 256;
        const char **old = I->names;
        int oldcap = I->capnames;
        I->names = calloc((size_t)cap, sizeof *I->names);
        KILN_ASSERT(I->names);
        I->capnames = cap;
        I->nnames = 0;
        for (int i = 0; i < oldcap; i++)
            if (old[i])
                name_add(I, old[i]);
        free(old);
    }
    uint64_t h = hash(s) & (uint64_t)(I->capnames - 1);
    while (I->names[h])
        h = (h + 1) & (uint64_t)(I->capnames - 1);
    I->names[h] = s;
    I->nnames++;
}

static const char *const reserved[] = {"model", "weights", "const", "input", "output", "fn", "return", "for",
                                       "in", "where", "true", "false", "w", "inf", "pi", NULL};

const char *ox_fresh(Imp *I, const char *hint)
{
    char buf[256];
    size_t n = 0;
    for (const char *p = hint; *p && n < 200; p++)
        buf[n++] = (char)((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ? *p : '_');
    buf[n] = 0;
    int bad = !n || (buf[0] >= '0' && buf[0] <= '9') || builtin_exists(buf);
    for (int i = 0; reserved[i]; i++)
        bad |= !strcmp(buf, reserved[i]);
    /* names the writer makes itself start with t_ or c_, so a prefix keeps ONNX names apart */
    bad |= !I->internal && (buf[0] == 't' || buf[0] == 'c' || buf[0] == 'v') && buf[1] == '_';
    char name[300];
    snprintf(name, sizeof name, bad ? "v_%s" : "%s", buf);
    if (name_taken(I, name)) {
        char base[300];
        snprintf(base, sizeof base, "%s", name);
        for (int k = 2;; k++) {
            snprintf(name, sizeof name, "%.280s_%d", base, k);
            if (!name_taken(I, name))
                break;
        }
    }
    const char *s = arena_strdup(I->a, name);
    name_add(I, s);
    return s;
}

const char *ox_temp(Imp *I, const char *hint)
{
    I->internal = 1;
    const char *s = ox_fresh(I, hint);
    I->internal = 0;
    return s;
}

/* ---------------------------------------------------------------- values */

static OVal **val_slot(Imp *I, const char *name)
{
    uint64_t h = hash(name) & (uint64_t)(I->capvals - 1);
    while (I->vals[h] && strcmp(I->vals[h]->name, name))
        h = (h + 1) & (uint64_t)(I->capvals - 1);
    return &I->vals[h];
}

static OVal *val_find(Imp *I, const char *name)
{
    return I->capvals ? *val_slot(I, name) : NULL;
}

OVal *ox_value(Imp *I, const char *name)
{
    return val_find(I, name);
}

static OVal *val_new(Imp *I, const char *name)
{
    if ((I->nvals + 1) * 2 > I->capvals) {
        OVal **old = I->vals;
        int oldcap = I->capvals;
        I->capvals = oldcap ? oldcap * 2 : 1024;
        I->vals = calloc((size_t)I->capvals, sizeof *I->vals);
        KILN_ASSERT(I->vals);
        for (int i = 0; i < oldcap; i++)
            if (old[i])
                *val_slot(I, old[i]->name) = old[i];
        free(old);
    }
    OVal *v = arena_alloc(I->a, sizeof *v);
    v->name = arena_strdup(I->a, name);
    v->dt = -1;
    OVal **slot = val_slot(I, name);
    if (!*slot)
        I->nvals++;
    *slot = v; /* a later definition of the same name (not valid ONNX) replaces the earlier */
    return v;
}

/* The element count, saturated at INT64_MAX (dims of a fuzzed file overflowed the product), so
 * that the callers' size checks refuse it; 0 when a dimension is 0. */
int64_t ox_numel(const OVal *v)
{
    int64_t n = 1;
    for (int i = 0; i < v->rank; i++)
        if (v->dims[i] == 0)
            return 0;
    for (int i = 0; i < v->rank; i++)
        n = v->dims[i] > 0 && n > INT64_MAX / v->dims[i] ? INT64_MAX : n * v->dims[i];
    return n;
}

OVal *ox_type(OVal *v, int dt, int rank, const int64_t *dims, const char *const *sym)
{
    v->dt = dt;
    v->rank = rank;
    for (int i = 0; i < rank; i++) {
        v->dims[i] = dims[i];
        v->sym[i] = sym ? sym[i] : NULL;
    }
    for (int t = 0; t < (int)(sizeof onnx_dtypes / sizeof onnx_dtypes[0]); t++)
        if (onnx_dtypes[t].kiln == dt && dt >= 0) {
            v->odt = t;
            break;
        }
    return v;
}

void *ox_alloc(Imp *I, OVal *v)
{
    int64_t n = ox_numel(v);
    v->data = arena_alloc(I->a, (size_t)(n ? n : 1) * (size_t)dtype_traits[v->dt].size);
    v->is_const = 1;
    return v->data;
}

int64_t ox_int(const OVal *v, int64_t i)
{
    if (v->dt == DT_I64 || v->dt == DT_U64) /* u64: the same bits, 2^63 and up negative */
        return ((const int64_t *)v->data)[i];
    double x = dtype_load((DType)v->dt, v->data, (size_t)i);
    return (int64_t)x;
}

double ox_f(const OVal *v, int64_t i)
{
    if (v->dt == DT_I64)
        return (double)((const int64_t *)v->data)[i];
    return dtype_load((DType)v->dt, v->data, (size_t)i);
}

const char *ox_dim(Imp *I, const OVal *v, int i)
{
    if (v->sym[i])
        return v->sym[i];
    return arena_printf(I->a, "%lld", (long long)v->dims[i]);
}

const char *ox_type_str(Imp *I, const OVal *v)
{
    char buf[512];
    size_t n = (size_t)snprintf(buf, sizeof buf, "%s[", dtype_traits[v->dt].name);
    for (int i = 0; i < v->rank && n < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? ", " : "", ox_dim(I, v, i));
    if (n < sizeof buf)
        snprintf(buf + n, sizeof buf - n, "]");
    return arena_strdup(I->a, buf);
}

const char *ox_num(Imp *I, double x, int dt)
{
    if (isinf(x))
        return x > 0 ? "inf" : "(-inf)";
    if (isnan(x))
        return "(0.0 * inf)";
    int is_float = dt >= 0 && dtype_traits[dt].is_float;
    if (!is_float && x == floor(x) && fabs(x) < 9.2e18)
        return arena_printf(I->a, x < 0 ? "(%lld)" : "%lld", (long long)x);
    char buf[64];
    /* the shortest text that reads back as the same value (at f32 precision for f32 attributes) */
    int prec = 17;
    for (int p = 6; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, x);
        double y = strtod(buf, NULL);
        if (y == x || (dt != DT_F64 && (float)y == (float)x)) {
            prec = p;
            break;
        }
    }
    snprintf(buf, sizeof buf, "%.*g", prec, x);
    if (!strpbrk(buf, ".en"))
        strcat(buf, ".0");
    return arena_printf(I->a, x < 0 ? "(%s)" : "%s", buf);
}

void ox_assign(Imp *I, OVal *v, const char *fmt, ...)
{
    if (!v->var)
        v->var = ox_fresh(I, v->name);
    ox_emit(I, "%s = ", v->var);
    va_list ap;
    va_start(ap, fmt);
    vappend(I, fmt, ap);
    va_end(ap);
    ox_emit(I, "\n");
}

/* The weights file's name for a constant: the ONNX name when the model language can write it as a
 * path (w.encoder.layer[0].weight), else a fresh identifier. */
static const char *weight_name(Imp *I, const char *onnx, const char **path_text, int *fresh)
{
    int ok = onnx[0] != 0;
    char path[1024];
    size_t n = 0;
    const char *p = onnx;
    int first = 1;
    while (ok && *p) {
        const char *e = strchr(p, '.');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        int digits = len > 0, ident = len > 0 && !(p[0] >= '0' && p[0] <= '9');
        for (size_t i = 0; i < len; i++) {
            char c = p[i];
            digits &= c >= '0' && c <= '9';
            ident &= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        }
        if (digits && (len > 1 && p[0] == '0'))
            digits = 0;
        if ((!digits && !ident) || (first && !ident) || n + len + 4 >= sizeof path || (e && !e[1])) {
            ok = 0;
            break;
        }
        n += (size_t)snprintf(path + n, sizeof path - n, digits ? "[%.*s]" : ".%.*s", (int)len, p);
        first = 0;
        p = e ? e + 1 : p + len;
    }
    if (ok && !name_taken(I, arena_printf(I->a, "w:%s", onnx))) {
        name_add(I, arena_printf(I->a, "w:%s", onnx));
        *path_text = arena_printf(I->a, "w%s", path);
        *fresh = 0;
        return arena_strdup(I->a, onnx);
    }
    /* a fresh identifier, also the variable that holds it (`c_x = w.c_x`) */
    const char *id = ox_temp(I, arena_printf(I->a, "c_%s", onnx));
    name_add(I, arena_printf(I->a, "w:%s", id));
    *path_text = arena_printf(I->a, "w.%s", id);
    *fresh = 1;
    return id;
}

/* A constant some of whose elements stand for symbolic sizes (Shape of a dynamic axis and arithmetic
 * on it: GPT-2's `arange(T) + P`), read by a run-time op. Its data holds the sizes' bounds, so it is
 * not written to the weights file: a size is not a tensor operand in the language, so each element is
 * written as the one element of arange(S + 1) at S (the others likewise with their number, which must
 * not be negative), concatenated and reshaped to v's shape. */
static const char *sym_tensor(Imp *I, OVal *v)
{
    int64_t n = ox_numel(v);
    if (v->rank > 1 || n > 16 || !(dtype_traits[v->dt].is_int || dtype_traits[v->dt].is_float)) {
        ox_err(I, "'%s' (%s) holds symbolic sizes and is read at run time; kiln writes that only for a scalar "
                  "or a list of at most 16 numbers", v->name, ox_type_str(I, v));
        return "v_undefined";
    }
    const char *list = "";
    for (int64_t i = 0; i < n; i++) {
        const char *s = v->esym[i];
        if (!s) {
            int64_t x = ox_int(v, i);
            if (x < 0 || ox_f(v, i) != (double)x) {
                ox_err(I, "'%s' mixes symbolic sizes with %g, which kiln cannot write as a run-time tensor", v->name,
                       ox_f(v, i));
                return "v_undefined";
            }
            s = arena_printf(I->a, "%lld", (long long)x);
        }
        list = arena_printf(I->a, "%s%sslice(arange((%s) + 1, dtype=%s), %s, (%s) + 1, axis=0)", list, i ? ", " : "", s,
                            dtype_traits[v->dt].name, s, s);
    }
    const char *e = n > 1 ? arena_printf(I->a, "concat(%s, axis=0)", list) : list;
    v->var = ox_temp(I, arena_printf(I->a, "s_%s", v->name));
    ox_emit(I, "%s = %s%s\n", v->var, e, v->rank == 0 ? ".reshape([])" : "");
    return v->var;
}

const char *ox_tensor(Imp *I, OVal *v)
{
    if (v->var)
        return v->var;
    if (!v->is_const) {
        ox_err(I, "value '%s' is used before it is computed", v->name);
        return "v_undefined";
    }
    if (v->dt < 0) {
        ox_err(I, "constant '%s' has dtype %s, which kiln cannot hold", v->name, ox_onnx_dtype_name(v->odt));
        return "v_undefined";
    }
    if (ox_has_sym(v))
        return sym_tensor(I, v);
    /* an empty constant (an empty input, slice or part: no data, only a type) is a weight of no bytes */
    const char *path;
    int fresh;
    const char *wname = weight_name(I, v->name, &path, &fresh);
    if (I->nw == I->capw) {
        I->capw = I->capw ? I->capw * 2 : 64;
        I->w = realloc(I->w, sizeof *I->w * (size_t)I->capw);
        KILN_ASSERT(I->w);
    }
    WTensor *t = &I->w[I->nw++];
    memset(t, 0, sizeof *t);
    t->name = wname;
    t->dtype = (DType)v->dt;
    t->rank = v->rank;
    for (int i = 0; i < v->rank; i++)
        t->shape[i] = v->dims[i];
    t->data = v->data;
    t->nbytes = (size_t)ox_numel(v) * (size_t)dtype_traits[v->dt].size;
    v->var = fresh ? wname : ox_temp(I, arena_printf(I->a, "c_%s", v->name));
    ox_emit(I, "%s = %s\n", v->var, path);
    return v->var;
}

/* ---------------------------------------------------------------- tensors */

/* Fills v (typed from the TensorProto) with its data in kiln's layout. base: directory for external
 * data. what: how errors name the tensor. */
int ox_tensor_data(Imp *I, const Onnx__TensorProto *t, OVal *v, const char *what)
{
    int dt = ox_onnx_dtype(t->data_type);
    if (t->n_dims > IR_MAX_RANK) {
        ox_err(I, "%s has %zu dimensions; kiln handles at most %d", what, t->n_dims, IR_MAX_RANK);
        return 1;
    }
    int64_t dims[IR_MAX_RANK];
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || t->dims[i] > ((int64_t)1 << 40)) {
            ox_err(I, "%s has an invalid dimension %lld", what, (long long)t->dims[i]);
            return 1;
        }
        dims[i] = t->dims[i];
    }
    v->odt = t->data_type;
    if (dt < 0) {
        ox_err(I, "%s has dtype %s, which kiln does not support", what, ox_onnx_dtype_name(t->data_type));
        return 1;
    }
    ox_type(v, dt, (int)t->n_dims, dims, NULL);
    v->odt = t->data_type;
    int64_t n = ox_numel(v);
    size_t es = (size_t)dtype_traits[dt].size;
    if (n > ((int64_t)1 << 40) / (int64_t)es) {
        ox_err(I, "%s is too large", what);
        return 1;
    }
    uint8_t *out = ox_alloc(I, v);
    size_t nbytes = (size_t)n * es;
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        const char *loc = NULL;
        long long off = 0, len = -1;
        for (size_t i = 0; i < t->n_external_data; i++) {
            const char *k = t->external_data[i]->key, *val = t->external_data[i]->value;
            if (!k || !val)
                continue;
            if (!strcmp(k, "location"))
                loc = val;
            else if (!strcmp(k, "offset"))
                off = atoll(val);
            else if (!strcmp(k, "length"))
                len = atoll(val);
        }
        if (!loc) {
            ox_err(I, "%s is stored externally but names no location", what);
            return 1;
        }
        const char *file = loc[0] == '/' || !I->dir ? loc : arena_printf(I->a, "%s/%s", I->dir, loc);
        FILE *f = fopen(file, "rb");
        if (!f) {
            ox_err(I, "%s: cannot open its external data file '%s': %s", what, file, strerror(errno));
            return 1;
        }
        if (len >= 0 && (size_t)len != nbytes) {
            fclose(f);
            ox_err(I, "%s: its external data is %lld bytes, but %s needs %zu", what, len, ox_type_str(I, v), nbytes);
            return 1;
        }
        size_t got = 0;
        if (off >= 0 && fseek(f, off, SEEK_SET) == 0)
            got = fread(out, 1, nbytes, f);
        fclose(f);
        if (got != nbytes) {
            ox_err(I, "%s: the external data file '%s' ends before offset %lld + %zu bytes", what, file, off, nbytes);
            return 1;
        }
        return 0;
    }
    if (t->has_raw_data) {
        if (t->raw_data.len != nbytes) {
            ox_err(I, "%s holds %zu bytes of raw data, but %s needs %zu", what, t->raw_data.len, ox_type_str(I, v), nbytes);
            return 1;
        }
        if (nbytes)
            memcpy(out, t->raw_data.data, nbytes);
        return 0;
    }
    size_t have;
    switch (t->data_type) {
    case 1: have = t->n_float_data; break;
    case 11: have = t->n_double_data; break;
    case 7: have = t->n_int64_data; break;
    case 12: case 13: have = t->n_uint64_data; break;
    default: have = t->n_int32_data; break;
    }
    if (have != (size_t)n) {
        ox_err(I, "%s holds %zu values, but %s has %lld", what, have, ox_type_str(I, v), (long long)n);
        return 1;
    }
    for (int64_t i = 0; i < n; i++) {
        switch (t->data_type) {
        case 1: ((float *)out)[i] = t->float_data[i]; break;
        case 11: ((double *)out)[i] = t->double_data[i]; break;
        case 7: ((int64_t *)out)[i] = t->int64_data[i]; break;
        case 12: ((uint32_t *)out)[i] = (uint32_t)t->uint64_data[i]; break; /* UINT32: in uint64_data */
        case 13: ((uint64_t *)out)[i] = t->uint64_data[i]; break;
        case 10: case 16: ((uint16_t *)out)[i] = (uint16_t)t->int32_data[i]; break;
        case 9: out[i] = t->int32_data[i] != 0; break;
        default: dtype_store((DType)dt, out, (size_t)i, (double)t->int32_data[i]); break;
        }
    }
    return 0;
}

/* A graph input's or output's declared type. */
static int value_info_type(Imp *I, const Onnx__ValueInfoProto *vi, OVal *v, int need_shape)
{
    const char *name = vi->name ? vi->name : "";
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE) {
        ox_err(I, "graph input or output '%s' is not a tensor (sequences, maps and optionals are not supported)", name);
        return 1;
    }
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    int dt = ox_onnx_dtype(tt->elem_type);
    v->odt = tt->elem_type;
    if (dt < 0) {
        ox_err(I, "graph input or output '%s' has dtype %s, which kiln does not support", name,
               ox_onnx_dtype_name(tt->elem_type));
        return 1;
    }
    if (!tt->shape) {
        if (need_shape) {
            ox_err(I, "graph input '%s' has no shape", name);
            return 1;
        }
        v->rank = -1;
        v->dt = dt;
        return 0;
    }
    if (tt->shape->n_dim > IR_MAX_RANK) {
        ox_err(I, "'%s' has %zu dimensions; kiln handles at most %d", name, tt->shape->n_dim, IR_MAX_RANK);
        return 1;
    }
    int64_t dims[IR_MAX_RANK];
    const char *sym[IR_MAX_RANK];
    for (size_t i = 0; i < tt->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *dm = tt->shape->dim[i];
        sym[i] = NULL;
        dims[i] = -1;
        if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && dm->dim_value >= 0)
            dims[i] = dm->dim_value;
        else if (dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && dm->dim_param) {
            const OnnxBound *b = NULL;
            for (int k = 0; I->o && k < I->o->nbound; k++)
                if (!strcmp(I->o->bounds[k].name, dm->dim_param))
                    b = &I->o->bounds[k];
            if (!b) {
                if (need_shape) {
                    ox_err(I, "dimension %zu of input '%s' is '%s', which is not fixed: give its largest value with "
                              "--bound %s=N", i, name, dm->dim_param, dm->dim_param);
                    return 1;
                }
            } else if (b->bound == 0) {
                dims[i] = 0; /* --bound NAME=0: the dimension is empty (the first call of a model with a
                                cache: no past); the importer leaves such inputs out */
            } else {
                /* one symbol per dim_param in the whole graph: later uses take the name made first */
                for (int k = 0; k < I->nparams && !sym[i]; k++)
                    if (!strcmp(I->params[k], dm->dim_param))
                        sym[i] = I->param_syms[k];
                if (!sym[i]) {
                    sym[i] = ox_fresh(I, dm->dim_param);
                    if (I->nparams < IR_MAX_SYMS) { /* past that, the lowering reports too many sizes */
                        I->params[I->nparams] = dm->dim_param;
                        I->param_syms[I->nparams++] = sym[i];
                    }
                }
                dims[i] = b->bound;
            }
        } else if (need_shape) {
            ox_err(I, "dimension %zu of input '%s' has no size", i, name);
            return 1;
        }
    }
    ox_type(v, dt, (int)tt->shape->n_dim, dims, sym);
    v->odt = tt->elem_type;
    return 0;
}

/* ---------------------------------------------------------------- the import */

static int is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Whether the computation reads variable var (outside comments, as a whole word). */
static int body_uses(Imp *I, const char *var)
{
    size_t len = strlen(var);
    const char *p = I->body;
    if (!p)
        return 0;
    while (*p) {
        if (*p == '#') {
            while (*p && *p != '\n')
                p++;
            continue;
        }
        if (!strncmp(p, var, len) && (p == I->body || (!is_word(p[-1]) && p[-1] != '.')) && !is_word(p[len]))
            return 1;
        p++;
    }
    return 0;
}

const Onnx__AttributeProto *ox_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name))
            return n->attribute[i];
    return NULL;
}

int64_t ox_attr_i(const Onnx__NodeProto *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = ox_attr(n, name);
    return a ? a->i : def;
}

double ox_attr_f(const Onnx__NodeProto *n, const char *name, double def)
{
    const Onnx__AttributeProto *a = ox_attr(n, name);
    return a ? a->f : def;
}

static Onnx__ModelProto *read_model(const char *path, Diag *d)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_fatal(d, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)(n > 0 ? n : 1));
    KILN_ASSERT(buf);
    size_t got = n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    Onnx__ModelProto *m = n > 0 && got == (size_t)n ? onnx__model_proto__unpack(NULL, got, buf) : NULL;
    free(buf);
    if (!m)
        diag_fatal(d, "%s: not an ONNX model (the file is empty, truncated or not a ModelProto)", path);
    else if (!m->graph) {
        diag_fatal(d, "%s: the ONNX model has no graph", path);
        onnx__model_proto__free_unpacked(m, NULL);
        m = NULL;
    }
    return m;
}

static void model_free_parts(OnnxModel *m, Arena *a)
{
    (void)m;
    arena_free(a);
}

/* The OnnxModel and its arena live together: the arena pointer is kept just after the struct. */
typedef struct OnnxModelBox {
    OnnxModel m;
    Arena *a;
} OnnxModelBox;

void onnx_model_free(OnnxModel *m)
{
    if (!m)
        return;
    OnnxModelBox *b = (OnnxModelBox *)m;
    free(m->text);
    free(m->weights);
    model_free_parts(m, b->a);
    free(b);
}

OnnxModel *onnx_import(const char *path, const char *weights_name, const OnnxOptions *o, Diag *d)
{
    Onnx__ModelProto *m = read_model(path, d);
    if (!m)
        return NULL;
    Imp I0 = {.path = path, .d = d, .a = arena_new(), .o = o}, *I = &I0;
    const char *slash = strrchr(path, '/');
    I->dir = slash ? arena_strndup(I->a, path, (size_t)(slash - path)) : NULL;
    const Onnx__GraphProto *g = m->graph;
    OnnxModelBox *box = calloc(1, sizeof *box);
    KILN_ASSERT(box);
    box->a = I->a;
    OnnxModel *out = &box->m;

    I->opset = -1;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *os = m->opset_import[i];
        if (!os->domain || !*os->domain || !strcmp(os->domain, "ai.onnx"))
            I->opset = (int)os->version;
    }
    if (I->opset < 0 && m->n_opset_import == 0)
        I->opset = 1; /* IR version 2 files have no opset_import: opset 1 */
    /* opsets 1 to 5 are read op by op: see the node loop */
    if (I->opset < 1 || I->opset > 17)
        ox_err(I, "the model imports opset %d of the default domain; kiln reads opsets 1 to 17", I->opset);

    /* initializers first, then inputs (an input with an initializer of the same name is a constant
     * with a default value: the initializer wins, as ONNX Runtime does for non-overridable ones) */
    for (size_t i = 0; i < g->n_initializer && !I->errors; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        OVal *v = val_new(I, t->name ? t->name : "");
        ox_tensor_data(I, t, v, arena_printf(I->a, "initializer '%s'", v->name));
    }
    out->ninput = 0;
    out->input_onnx = arena_alloc(I->a, sizeof(char *) * (g->n_input + 1));
    out->input_var = arena_alloc(I->a, sizeof(char *) * (g->n_input + 1));
    OVal **inputs = arena_alloc(I->a, sizeof(OVal *) * (g->n_input + 1));
    const char **inputs_var = arena_alloc(I->a, sizeof(char *) * (g->n_input + 1));
    for (size_t i = 0; i < g->n_input && !I->errors; i++) {
        const char *name = g->input[i]->name ? g->input[i]->name : "";
        if (val_find(I, name))
            continue;
        OVal *v = val_new(I, name);
        v->graph_input = out->ninput + 1;
        out->input_onnx[out->ninput] = (char *)v->name;
        inputs[out->ninput++] = v;
        value_info_type(I, g->input[i], v, 1);
        inputs_var[out->ninput - 1] = ox_fresh(I, name);
        if (v->rank >= 0 && ox_numel(v) == 0) {
            /* an empty input (a dimension of 0, from --bound NAME=0): a constant of no elements, which
             * Concat leaves out and Shape reads; a run-time use is an error (ox_tensor), and nothing
             * reads the input, so the model file does not declare it */
            v->is_const = 1;
            v->data = arena_alloc(I->a, 16);
        } else
            v->var = inputs_var[out->ninput - 1];
    }
    if (I->errors)
        goto fail;

    const OxQmm *qmm = ox_qmm_find(I, g); /* quantize_dynamic's MatMuls, as qmatmul */
    for (size_t k = 0; k < g->n_node; k++) {
        const Onnx__NodeProto *n = g->node[k];
        I->node = n;
        if (ox_qmm_role(qmm, k) == 1)
            continue;
        if (ox_qmm_role(qmm, k) == 2) {
            ox_emit(I, "# %s (%s: a MatMul quantized by ONNX Runtime, as one qmatmul)\n",
                    n->name && *n->name ? n->name : "(unnamed)", n->op_type);
            OVal *y = val_new(I, n->output[0]);
            int errs = I->errors;
            ox_qmm_write(I, qmm, k, y);
            y->failed = I->errors > errs;
            continue;
        }
        if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx")) {
            ox_err(I, "the op is in domain '%s'; kiln imports only ONNX's default domain", n->domain);
            continue;
        }
        OxHandler h = n->op_type ? ox_handler(n->op_type) : NULL;
        int upstream = 0; /* an input from a node that failed: one error per cause */
        for (size_t i = 0; i < n->n_input; i++) {
            OVal *v = n->input[i] && *n->input[i] ? val_find(I, n->input[i]) : NULL;
            upstream |= v && v->failed;
        }
        if (!h || upstream) {
            if (!upstream)
                ox_err(I, "kiln does not import this op");
            for (size_t i = 0; i < n->n_output; i++)
                if (n->output[i] && *n->output[i])
                    val_new(I, n->output[i])->failed = 1;
            continue;
        }
        /* The definition of the op that the model's opset selects must exist, and below opset 6 (the
         * oldest the handlers implement) it must be the one opset 6 selects: the handlers then read
         * the node as ONNX defines it, whatever the opset says. */
        int ver = ox_op_version(n->op_type, I->opset), low = ox_op_version(n->op_type, KILN_ONNX_OPSET_LOW);
        KILN_ASSERT(ver >= 0); /* every op with a handler has its history in onnx_ops.c */
        if (ver == 0) {
            int first = I->opset;
            while (first < 17 && ox_op_version(n->op_type, first) == 0)
                first++;
            ox_err(I, "the model imports opset %d, but ONNX defines %s only from opset %d on", I->opset, n->op_type,
                   first);
        } else if (I->opset < KILN_ONNX_OPSET_LOW && ver != low)
            ox_err(I,
                   "the model imports opset %d, which selects version %d of %s; kiln implements %s from version %d "
                   "on (what opset %d selects), and the older definition differs",
                   I->opset, ver, n->op_type, n->op_type, low, KILN_ONNX_OPSET_LOW);
        if (ver == 0 || (I->opset < KILN_ONNX_OPSET_LOW && ver != low)) {
            for (size_t i = 0; i < n->n_output; i++)
                if (n->output[i] && *n->output[i])
                    val_new(I, n->output[i])->failed = 1;
            continue;
        }
        OVal *in[64] = {0}, *outv[64];
        if (n->n_input > 64 || n->n_output > 64) {
            ox_err(I, "too many inputs or outputs");
            continue;
        }
        int bad = 0;
        for (size_t i = 0; i < n->n_input; i++) {
            in[i] = NULL;
            if (!n->input[i] || !*n->input[i])
                continue; /* an optional input left out */
            in[i] = val_find(I, n->input[i]);
            if (!in[i]) {
                ox_err(I, "input '%s' is not computed by any earlier node", n->input[i]);
                bad = 1;
            }
        }
        if (bad)
            continue;
        ox_emit(I, "# %s (%s)\n", n->name && *n->name ? n->name : "(unnamed)", n->op_type);
        for (size_t i = 0; i < 64; i++) /* slots past the node's outputs are NULL, not stale */
            outv[i] = i < n->n_output && n->output[i] && *n->output[i] ? val_new(I, n->output[i]) : NULL;
        if (!outv[0]) { /* found by fuzz_onnx: a Cast whose output name is empty */
            ox_err(I, "its first output has no name");
            continue;
        }
        int errs = I->errors;
        if (h(I, n, in, (int)n->n_input, outv, (int)n->n_output) && I->errors == errs)
            /* found by fuzz_onnx: a Clip whose input x is named "" (an optional input left out),
             * which its handler declines without a word */
            ox_err(I, "a required input is left out (its name is empty)");
        if (I->errors > errs) {
            for (size_t i = 0; i < n->n_output; i++)
                if (outv[i])
                    outv[i]->failed = 1;
            continue;
        }
        for (size_t i = 0; i < n->n_output; i++)
            KILN_ASSERT(!outv[i] || outv[i]->var || outv[i]->is_const || outv[i]->dt < 0);
    }
    I->node = NULL;
    if (I->errors)
        goto fail;

    /* the header: name, weights, inputs that the computation reads, outputs */
    {
        char *head = NULL;
        size_t nhead = 0;
        FILE *hf = open_memstream(&head, &nhead);
        KILN_ASSERT(hf);
        fprintf(hf, "# imported from %s by kiln import (ONNX IR version %lld, opset %d", path,
                (long long)m->ir_version, I->opset);
        if (m->producer_name && *m->producer_name)
            fprintf(hf, ", written by %s %s", m->producer_name, m->producer_version ? m->producer_version : "");
        fprintf(hf, ")\n");
        const char *mname = g->name && *g->name ? g->name : "onnx_model";
        char id[128];
        size_t ni = 0;
        for (const char *p = mname; *p && ni < sizeof id - 1; p++)
            id[ni++] = (char)((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ? *p : '_');
        id[ni] = 0;
        fprintf(hf, "model %s%s\n", id[0] >= '0' && id[0] <= '9' ? "m_" : "", id);
        if (I->nw)
            fprintf(hf, "weights \"%s\"\n", weights_name ? weights_name : "weights.safetensors");
        /* symbolic sizes: declared with their bound at the first input that has them */
        const char *declared[IR_MAX_SYMS * 4];
        int ndeclared = 0;
        /* an input is declared when the computation reads it at run time */
        for (int i = 0; i < out->ninput; i++) {
            OVal *v = inputs[i];
            int used = body_uses(I, inputs_var[i]);
            /* or it is an output itself */
            for (size_t k = 0; k < g->n_output; k++)
                used |= g->output[k]->name && !strcmp(g->output[k]->name, v->name);
            if (!used) {
                out->input_var[i] = NULL;
                continue;
            }
            out->input_var[i] = (char *)inputs_var[i];
            fprintf(hf, "input  %s: %s", inputs_var[i], ox_type_str(I, v));
            int first = 1;
            for (int j = 0; j < v->rank; j++) {
                if (!v->sym[j])
                    continue;
                int seen = 0;
                for (int k = 0; k < ndeclared; k++)
                    seen |= !strcmp(declared[k], v->sym[j]);
                if (seen || ndeclared == (int)(sizeof declared / sizeof declared[0]))
                    continue;
                declared[ndeclared++] = v->sym[j];
                fprintf(hf, "%s%s <= %lld", first ? " where " : ", ", v->sym[j], (long long)v->dims[j]);
                first = 0;
            }
            fprintf(hf, "   # %s\n", v->name);
        }
        /* outputs: bound to their values' variables */
        char *tail = NULL;
        size_t ntail = 0;
        FILE *tf = open_memstream(&tail, &ntail);
        KILN_ASSERT(tf);
        for (size_t k = 0; k < g->n_output; k++) {
            const char *name = g->output[k]->name ? g->output[k]->name : "";
            OVal *v = val_find(I, name);
            if (!v) {
                ox_err(I, "graph output '%s' is not computed by any node", name);
                continue;
            }
            OVal decl = {0};
            if (value_info_type(I, g->output[k], &decl, 0))
                continue;
            if (v->dt < 0) {
                ox_err(I, "graph output '%s' has no type: the node computing it gave none", name);
                continue;
            }
            if (decl.dt != v->dt || (decl.rank >= 0 && decl.rank != v->rank)) {
                ox_err(I, "graph output '%s' is declared %s[rank %d] but computes %s", name, dtype_traits[decl.dt].name,
                       decl.rank, ox_type_str(I, v));
                continue;
            }
            for (int j = 0; decl.rank >= 0 && j < v->rank; j++)
                if (decl.dims[j] >= 0 && !decl.sym[j] && !v->sym[j] && decl.dims[j] != v->dims[j])
                    ox_err(I, "graph output '%s' is declared with size %lld in dimension %d but computes %s", name,
                           (long long)decl.dims[j], j, ox_type_str(I, v));
            const char *src = ox_tensor(I, v);
            /* an output is the top-level variable of its name: rename through an assignment when the
             * value's variable is an input or already an output */
            const char *oname = src;
            int clash = v->graph_input != 0;
            for (size_t j = 0; j < k; j++)
                clash |= g->output[j]->name && val_find(I, g->output[j]->name) == v;
            if (clash) {
                oname = ox_fresh(I, name);
                fprintf(tf, "%s = %s\n", oname, src);
            }
            fprintf(hf, "output %s: %s   # %s\n", oname, ox_type_str(I, v), name);
        }
        fclose(tf);
        fclose(hf);
        if (I->errors) {
            free(head);
            free(tail);
            goto fail;
        }
        size_t nb = I->nbody;
        out->text = malloc(nhead + nb + ntail + 2);
        KILN_ASSERT(out->text);
        memcpy(out->text, head, nhead);
        out->text[nhead] = '\n';
        if (nb)
            memcpy(out->text + nhead + 1, I->body, nb);
        memcpy(out->text + nhead + 1 + nb, tail, ntail);
        out->text[nhead + 1 + nb + ntail] = 0;
        free(head);
        free(tail);
    }
    /* widest elements first: st_write packs tensors in order, so every tensor then starts at a
     * multiple of its element size (a bool constant before an f32 would misalign it) */
    for (int i = 1; i < I->nw; i++)
        for (int j = i; j > 0 && dtype_traits[I->w[j].dtype].size > dtype_traits[I->w[j - 1].dtype].size; j--) {
            WTensor t = I->w[j];
            I->w[j] = I->w[j - 1];
            I->w[j - 1] = t;
        }
    out->nweights = I->nw;
    out->weights = I->w;
    I->w = NULL;
    free(I->body);
    free(I->vals);
    free(I->names);
    onnx__model_proto__free_unpacked(m, NULL);
    return out;
fail:
    free(I->body);
    free(I->vals);
    free(I->names);
    free(I->w);
    onnx__model_proto__free_unpacked(m, NULL);
    arena_free(I->a);
    free(box);
    return NULL;
}

/* ---------------------------------------------------------------- output, compilation */

int onnx_write(const OnnxModel *m, const char *kiln_path, const char *weights_path, Diag *d)
{
    FILE *f = fopen(kiln_path, "w");
    if (!f) {
        diag_fatal(d, "cannot write '%s': %s", kiln_path, strerror(errno));
        return 1;
    }
    fputs(m->text, f);
    if (fclose(f)) {
        diag_fatal(d, "cannot write '%s': %s", kiln_path, strerror(errno));
        return 1;
    }
    if (m->nweights && st_write(weights_path, m->nweights, m->weights, 0, NULL, NULL)) {
        diag_fatal(d, "cannot write '%s': %s", weights_path, strerror(errno));
        return 1;
    }
    return 0;
}

Graph *onnx_compile_model(const OnnxModel *m, const char *path, const FrontendOptions *fo, Diag *d)
{
    FrontendOptions o = fo ? *fo : (FrontendOptions){0};
    char tmp[] = "/tmp/kiln-onnx-XXXXXX";
    int fd = -1;
    if (m->nweights && !o.weights_override) {
        fd = mkstemp(tmp);
        if (fd < 0 || st_write(tmp, m->nweights, m->weights, 0, NULL, NULL)) {
            diag_fatal(d, "%s: cannot write its weights to a temporary file: %s", path, strerror(errno));
            if (fd >= 0) {
                close(fd);
                remove(tmp);
            }
            return NULL;
        }
        o.weights_override = tmp;
    }
    Graph *g = fe_compile_text(path, m->text, &o, d);
    /* the weights are mapped now (or were never needed): the file can go */
    if (fd >= 0) {
        close(fd);
        remove(tmp);
    }
    return g;
}

Graph *onnx_compile(const char *path, const OnnxOptions *oo, const FrontendOptions *fo, Diag *d)
{
    OnnxModel *m = onnx_import(path, "weights.safetensors", oo, d);
    if (!m)
        return NULL;
    Graph *g = onnx_compile_model(m, path, fo, d);
    onnx_model_free(m);
    return g;
}

int onnx_read_tensor(const char *path, HostTensor *t, Diag *d)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_fatal(d, "cannot open '%s': %s", path, strerror(errno));
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)(n > 0 ? n : 1));
    KILN_ASSERT(buf);
    size_t got = n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    Onnx__TensorProto *tp = got == (size_t)n ? onnx__tensor_proto__unpack(NULL, got, buf) : NULL;
    free(buf);
    if (!tp) {
        diag_fatal(d, "%s: not a serialised ONNX TensorProto (truncated or malformed)", path);
        return 1;
    }
    Imp I0 = {.path = path, .d = d, .a = arena_new()}, *I = &I0;
    OVal v = {0};
    const char *slash = strrchr(path, '/');
    I->dir = slash ? arena_strndup(I->a, path, (size_t)(slash - path)) : NULL;
    int rc = ox_tensor_data(I, tp, &v, arena_printf(I->a, "tensor '%s'", tp->name ? tp->name : ""));
    if (!rc) {
        size_t nb = (size_t)ox_numel(&v) * (size_t)dtype_traits[v.dt].size;
        t->dtype = (DType)v.dt;
        t->rank = v.rank;
        for (int i = 0; i < v.rank; i++)
            t->shape[i] = v.dims[i];
        t->data = malloc(nb ? nb : 1);
        KILN_ASSERT(t->data);
        memcpy(t->data, v.data, nb);
    }
    onnx__tensor_proto__free_unpacked(tp, NULL);
    arena_free(I->a);
    return rc;
}

OVal *ox_const(Imp *I, OVal *v, const char *what)
{
    if (!v)
        return NULL;
    if (v->is_const)
        return v;
    if (v->graph_input && I->o) {
        for (int k = 0; k < I->o->nconst; k++) {
            if (strcmp(I->o->const_names[k], v->name))
                continue;
            const HostTensor *h = &I->o->const_values[k];
            if ((int)h->dtype != v->dt || h->rank != v->rank) {
                ox_err(I, "the value given for input '%s' is not a %s", v->name, ox_type_str(I, v));
                return NULL;
            }
            for (int i = 0; i < h->rank; i++)
                v->dims[i] = h->shape[i];
            size_t nb = (size_t)ox_numel(v) * (size_t)dtype_traits[v->dt].size;
            void *p = ox_alloc(I, v);
            memcpy(p, h->data, nb);
            v->var = NULL; /* a constant from now on; written to the weights when read at run time */
            return v;
        }
    }
    ox_err(I, "%s ('%s') must be known when the model is imported (an initializer, a Constant or computed "
              "from shapes), not a run-time value",
           what, v->name);
    return NULL;
}
