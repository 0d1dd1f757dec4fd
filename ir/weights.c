/* weights.c: safetensors weights files, memory-mapped, every header field checked.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of JSON, then the data
 * section. The JSON is an object mapping each tensor name to {"dtype", "shape", "data_offsets"}
 * (offsets relative to the data section, half-open), plus an optional "__metadata__" object of
 * string keys and string values.
 *
 * st_open maps the whole file read-only, parses a copy of the header with cJSON, and checks
 * everything a later phase would otherwise trust: the dtype is one kiln knows, dimensions are
 * non-negative integers, offsets lie inside the data section, the byte size matches dtype size x
 * element count, and no two tensors share bytes. The first problem is reported as one sentence
 * naming the file and the tensor, and st_open returns NULL having released everything. Tensors are
 * kept sorted by name so st_find is a binary search and the order of suggestions is stable.
 *
 * The Weights outlive any one graph (a graph points at them), so they are malloc'ed rather than
 * put in an arena; st_close frees everything and unmaps the file. Tensor data pointers point into
 * the mapping and are only as aligned as the file makes them: st_write pads the header to a
 * multiple of 8 and packs tensors in the order given.
 */
#include "ir.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* safetensors' dtype names, indexed by kiln's DType */
static const char *const st_dtype_names[DT_COUNT] = {
    [DT_F32] = "F32", [DT_F16] = "F16", [DT_BF16] = "BF16", [DT_F64] = "F64", [DT_I64] = "I64",
    [DT_I32] = "I32", [DT_I8] = "I8",   [DT_U8] = "U8",     [DT_BOOL] = "BOOL", [DT_I16] = "I16",
    [DT_U16] = "U16", [DT_U32] = "U32", [DT_U64] = "U64",
};

/* JSON numbers are doubles: integers are exact up to 2^53, which bounds any real offset or dim. */
static const double st_max_int = 9007199254740992.0;

static void st_error(Diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void st_error(Diag *d, const char *fmt, ...)
{
    if (!d)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_fatal(d, "%s", msg);
}

static int st_dtype_from_name(const char *s)
{
    for (int i = 0; i < DT_COUNT; i++)
        if (st_dtype_names[i] && !strcmp(st_dtype_names[i], s))
            return i;
    return -1;
}

/* A JSON number that is a non-negative integer below 2^53; *out gets it. */
static int st_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return 0;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= st_max_int) || v != floor(v))
        return 0;
    *out = (uint64_t)v;
    return 1;
}

/* How a JSON value reads in a message: the number, or what kind of value it is. */
static const char *st_json_str(const cJSON *j, char *buf, size_t n)
{
    if (cJSON_IsNumber(j))
        snprintf(buf, n, "%.17g", j->valuedouble);
    else
        snprintf(buf, n, "%s", cJSON_IsString(j) ? "a string" : cJSON_IsArray(j) ? "an array"
                               : cJSON_IsObject(j) ? "an object" : cJSON_IsBool(j) ? "a boolean"
                               : "null");
    return buf;
}

/* "F32 [768, 2304]" */
static const char *st_type_str(DType dt, int rank, const int64_t *shape, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "%s [", st_dtype_names[dt]);
    for (int i = 0; i < rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
    return buf;
}

static int st_cmp_name(const void *a, const void *b)
{
    return strcmp(((const WTensor *)a)->name, ((const WTensor *)b)->name);
}

/* Tensors by where their bytes start (then end), for the overlap check. */
static int st_cmp_data(const void *a, const void *b)
{
    const WTensor *x = *(const WTensor *const *)a, *y = *(const WTensor *const *)b;
    const char *xe = (const char *)x->data + x->nbytes, *ye = (const char *)y->data + y->nbytes;
    if (x->data != y->data)
        return (const char *)x->data < (const char *)y->data ? -1 : 1;
    return xe < ye ? -1 : xe > ye;
}

/* Checks one header entry and fills t (name not set). Returns 0, or reports and returns -1. */
static int st_entry(const char *path, const char *name, const cJSON *e, const char *base,
                    uint64_t dsize, WTensor *t, Diag *d)
{
    char b1[64], b2[64], ty[256];
    if (!cJSON_IsObject(e)) {
        st_error(d, "%s: tensor '%s': entry is %s, expected an object with dtype, shape and "
                    "data_offsets", path, name, st_json_str(e, b1, sizeof b1));
        return -1;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");

    if (!dt) {
        st_error(d, "%s: tensor '%s': entry has no \"dtype\"", path, name);
        return -1;
    }
    if (!cJSON_IsString(dt)) {
        st_error(d, "%s: tensor '%s': dtype is %s, expected a string such as \"F32\"", path, name,
                 st_json_str(dt, b1, sizeof b1));
        return -1;
    }
    int dtype = st_dtype_from_name(dt->valuestring);
    if (dtype < 0) {
        st_error(d, "%s: tensor '%s': unknown dtype \"%.32s\" (kiln reads F32, F16, BF16, F64, "
                    "I64, I32, I8, U8 and BOOL)", path, name, dt->valuestring);
        return -1;
    }
    t->dtype = (DType)dtype;

    if (!sh) {
        st_error(d, "%s: tensor '%s': entry has no \"shape\"", path, name);
        return -1;
    }
    if (!cJSON_IsArray(sh)) {
        st_error(d, "%s: tensor '%s': shape is %s, expected an array of dimensions", path, name,
                 st_json_str(sh, b1, sizeof b1));
        return -1;
    }
    int rank = cJSON_GetArraySize(sh);
    if (rank > IR_MAX_RANK) {
        st_error(d, "%s: tensor '%s': shape has %d dimensions; kiln supports at most %d", path,
                 name, rank, IR_MAX_RANK);
        return -1;
    }
    t->rank = 0;
    uint64_t numel = 1;
    int too_big = 0;
    for (const cJSON *x = sh->child; x; x = x->next) {
        uint64_t v;
        if (!st_uint(x, &v)) {
            st_error(d, "%s: tensor '%s': dimension %d of the shape is %s; dimensions must be "
                        "non-negative integers", path, name, t->rank,
                     st_json_str(x, b1, sizeof b1));
            return -1;
        }
        t->shape[t->rank++] = (int64_t)v;
        if (v && numel > UINT64_MAX / v)
            too_big = 1;
        numel *= v;
    }

    uint64_t o[2];
    if (!off) {
        st_error(d, "%s: tensor '%s': entry has no \"data_offsets\"", path, name);
        return -1;
    }
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !st_uint(off->child, &o[0]) ||
        !st_uint(off->child->next, &o[1])) {
        st_error(d, "%s: tensor '%s': data_offsets must be two non-negative integers [begin, end]",
                 path, name);
        return -1;
    }
    if (o[1] < o[0]) {
        st_error(d, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] are reversed (end "
                    "before begin)", path, name, o[0], o[1]);
        return -1;
    }
    if (o[1] > dsize) {
        st_error(d, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] go beyond the data "
                    "section, which has %" PRIu64 " bytes", path, name, o[0], o[1], dsize);
        return -1;
    }
    uint64_t size = (uint64_t)dtype_traits[t->dtype].size;
    st_type_str(t->dtype, t->rank, t->shape, ty, sizeof ty);
    if (too_big || numel > UINT64_MAX / size) {
        st_error(d, "%s: tensor '%s': %s has too many elements to hold", path, name, ty);
        return -1;
    }
    if (o[1] - o[0] != numel * size) {
        snprintf(b2, sizeof b2, "%" PRIu64, numel * size);
        st_error(d, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] give %" PRIu64
                    " bytes but %s needs %s", path, name, o[0], o[1], o[1] - o[0], ty, b2);
        return -1;
    }
    t->data = base + o[0];
    t->nbytes = (size_t)(o[1] - o[0]);
    return 0;
}

/* The __metadata__ object: string keys to string values. */
static int st_metadata(Weights *w, const cJSON *m, Diag *d)
{
    char b[64];
    if (!cJSON_IsObject(m)) {
        st_error(d, "%s: __metadata__ is %s, expected an object of strings", w->path,
                 st_json_str(m, b, sizeof b));
        return -1;
    }
    int n = cJSON_GetArraySize(m);
    w->meta_keys = calloc((size_t)n + 1, sizeof *w->meta_keys);
    w->meta_vals = calloc((size_t)n + 1, sizeof *w->meta_vals);
    KILN_ASSERT(w->meta_keys && w->meta_vals);
    for (const cJSON *x = m->child; x; x = x->next) {
        if (!cJSON_IsString(x)) {
            st_error(d, "%s: __metadata__ key '%s' is %s, expected a string", w->path, x->string,
                     st_json_str(x, b, sizeof b));
            return -1;
        }
        w->meta_keys[w->nmeta] = strdup(x->string);
        w->meta_vals[w->nmeta] = strdup(x->valuestring);
        KILN_ASSERT(w->meta_keys[w->nmeta] && w->meta_vals[w->nmeta]);
        w->nmeta++;
    }
    return 0;
}

/* In order of start, each non-empty tensor must begin at or after the furthest end seen so far.
 * Zero-byte tensors hold no bytes and cannot overlap anything. */
static int st_overlaps(const Weights *w, const char *base, Diag *d)
{
    const WTensor **by = malloc(((size_t)w->n + 1) * sizeof *by);
    KILN_ASSERT(by);
    for (int i = 0; i < w->n; i++)
        by[i] = &w->t[i];
    qsort(by, (size_t)w->n, sizeof *by, st_cmp_data);
    const WTensor *far = NULL; /* the tensor reaching furthest so far */
    int r = 0;
    for (int i = 0; i < w->n && !r; i++) {
        const WTensor *t = by[i];
        if (!t->nbytes)
            continue;
        const char *tb = t->data, *fe = far ? (const char *)far->data + far->nbytes : NULL;
        if (far && tb < fe) {
            size_t fb = (size_t)((const char *)far->data - base), b = (size_t)(tb - base);
            st_error(d, "%s: tensor '%s' (data_offsets [%zu, %zu]) overlaps tensor '%s' "
                        "(data_offsets [%zu, %zu])", w->path, t->name, b, b + t->nbytes,
                     far->name, fb, fb + far->nbytes);
            r = -1;
        } else if (!far || tb + t->nbytes > fe) {
            far = t;
        }
    }
    free(by);
    return r;
}

/* Everything after the header length: the JSON, each entry, names unique, no overlaps. */
static int st_parse(Weights *w, const char *json, size_t hlen, Diag *d)
{
    const char *path = w->path;
    /* cJSON skips every byte up to 0x20 as whitespace; JSON allows only space, tab, CR and LF */
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)json[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            st_error(d, "%s: header is not valid JSON: control byte 0x%02x at byte %zu", path, c,
                     i);
            return -1;
        }
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, hlen, &end, 0);
    if (!root) {
        size_t at = end && end >= json && end <= json + hlen ? (size_t)(end - json) : 0;
        st_error(d, "%s: header is not valid JSON (error near byte %zu of the %zu-byte header)",
                 path, at, hlen);
        return -1;
    }
    int r = -1;
    for (const char *p = end; p < json + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st_error(d, "%s: header has bytes after the JSON object, at byte %zu of %zu", path,
                     (size_t)(p - json), hlen);
            goto out;
        }
    if (!cJSON_IsObject(root)) {
        char b[64];
        st_error(d, "%s: header is %s, expected a JSON object", path,
                 st_json_str(root, b, sizeof b));
        goto out;
    }

    const char *base = (const char *)w->map + 8 + hlen;
    uint64_t dsize = (uint64_t)(w->size - 8 - hlen);
    int n = 0;
    for (const cJSON *x = root->child; x; x = x->next)
        n += strcmp(x->string, "__metadata__") != 0;
    w->t = calloc((size_t)n + 1, sizeof *w->t);
    KILN_ASSERT(w->t);
    for (const cJSON *x = root->child; x; x = x->next) {
        if (!strcmp(x->string, "__metadata__")) {
            if (w->meta_keys) {
                st_error(d, "%s: header has __metadata__ twice", path);
                goto out;
            }
            if (st_metadata(w, x, d))
                goto out;
            continue;
        }
        WTensor *t = &w->t[w->n];
        if (st_entry(path, x->string, x, base, dsize, t, d))
            goto out;
        t->name = strdup(x->string);
        KILN_ASSERT(t->name);
        w->n++;
    }

    qsort(w->t, (size_t)w->n, sizeof *w->t, st_cmp_name);
    for (int i = 1; i < w->n; i++)
        if (!strcmp(w->t[i - 1].name, w->t[i].name)) {
            st_error(d, "%s: tensor '%s' appears twice in the header", path, w->t[i].name);
            goto out;
        }

    if (st_overlaps(w, base, d))
        goto out;
    r = 0;
out:
    cJSON_Delete(root);
    return r;
}

Weights *st_open(const char *path, Diag *d)
{
    Weights *w = calloc(1, sizeof *w);
    KILN_ASSERT(w);
    w->path = strdup(path);
    KILN_ASSERT(w->path);
    char *json = NULL;

    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        st_error(d, "%s: cannot open the weights file: %s", path, strerror(errno));
        goto fail;
    }
    struct stat stt;
    if (fstat(fd, &stt) != 0 || !S_ISREG(stt.st_mode)) {
        st_error(d, "%s: not a regular file", path);
        close(fd);
        goto fail;
    }
    if (stt.st_size < 8) {
        st_error(d, "%s: file is %lld bytes, too short for a safetensors file (it starts with an "
                    "8-byte header length)", path, (long long)stt.st_size);
        close(fd);
        goto fail;
    }
    w->size = (size_t)stt.st_size;
    w->map = mmap(NULL, w->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (w->map == MAP_FAILED) {
        w->map = NULL;
        st_error(d, "%s: cannot map the file: %s", path, strerror(errno));
        goto fail;
    }

    const unsigned char *p = w->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | p[i];
    if (hlen > w->size - 8) {
        st_error(d, "%s: header length %" PRIu64 " goes beyond the end of the file (%zu bytes, so "
                    "at most %zu)", path, hlen, w->size, w->size - 8);
        goto fail;
    }
    /* cJSON reads a NUL-terminated copy: the mapping has no terminator of its own */
    json = malloc((size_t)hlen + 1);
    KILN_ASSERT(json);
    memcpy(json, p + 8, (size_t)hlen);
    json[hlen] = 0;
    if (st_parse(w, json, (size_t)hlen, d))
        goto fail;
    free(json);
    return w;
fail:
    free(json);
    st_close(w);
    return NULL;
}

void st_close(Weights *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++)
        free((char *)w->t[i].name);
    free(w->t);
    for (int i = 0; i < w->nmeta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_vals[i]);
    }
    free(w->meta_keys);
    free(w->meta_vals);
    if (w->map)
        munmap(w->map, w->size);
    free(w->path);
    free(w);
}

const WTensor *st_find(const Weights *w, const char *name)
{
    if (!w || !name)
        return NULL;
    WTensor key = {.name = name};
    return bsearch(&key, w->t, (size_t)w->n, sizeof *w->t, st_cmp_name);
}

const char *st_meta(const Weights *w, const char *key)
{
    for (int i = 0; w && key && i < w->nmeta; i++)
        if (!strcmp(w->meta_keys[i], key))
            return w->meta_vals[i];
    return NULL;
}

/* ---- suggestions */

/* Levenshtein distance with two rows; row has room for strlen(b) + 1 entries, twice. */
static size_t st_distance(const char *a, const char *b, size_t nb, size_t *row)
{
    size_t *prev = row, *cur = row + nb + 1;
    for (size_t j = 0; j <= nb; j++)
        prev[j] = j;
    for (size_t i = 1; a[i - 1]; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        size_t *tmp = prev;
        prev = cur;
        cur = tmp;
    }
    return prev[nb];
}

typedef struct StNear {
    size_t dist; /* edit distance to the name asked for */
    int i;       /* index in Weights.t, so ties fall in name order */
} StNear;

static int st_cmp_near(const void *a, const void *b)
{
    const StNear *x = a, *y = b;
    if (x->dist != y->dist)
        return x->dist < y->dist ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

int st_closest(const Weights *w, const char *name, const char **out, int max)
{
    if (!w || !name || max <= 0 || w->n == 0)
        return 0;
    size_t nb = strlen(name);
    size_t *row = malloc(2 * (nb + 1) * sizeof *row);
    StNear *near = malloc((size_t)w->n * sizeof *near);
    KILN_ASSERT(row && near);
    for (int i = 0; i < w->n; i++)
        near[i] = (StNear){st_distance(w->t[i].name, name, nb, row), i};
    qsort(near, (size_t)w->n, sizeof *near, st_cmp_near);
    int k = max < w->n ? max : w->n;
    for (int i = 0; i < k; i++)
        out[i] = w->t[near[i].i].name;
    free(row);
    free(near);
    return k;
}

/* ---- writing */

/* A growing string for the header. */
typedef struct StBuf {
    char *s;
    size_t len, cap;
} StBuf;

static void st_put(StBuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = realloc(b->s, b->cap);
        KILN_ASSERT(b->s);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void st_putf(StBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void st_putf(StBuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    KILN_ASSERT(n >= 0 && (size_t)n < sizeof tmp);
    st_put(b, tmp, (size_t)n);
}

/* A JSON string literal: quotes, backslashes and control characters escaped; other bytes as they
 * are (names are UTF-8). */
static void st_put_json(StBuf *b, const char *s)
{
    st_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            st_putf(b, "\\%c", c);
        else if (c < 0x20)
            st_putf(b, "\\u%04x", c);
        else
            st_put(b, s, 1);
    }
    st_put(b, "\"", 1);
}

int st_write(const char *path, int n, const WTensor *tensors, int nmeta, const char *const *keys,
             const char *const *vals)
{
    if (n < 0 || nmeta < 0 || (n && !tensors) || (nmeta && (!keys || !vals)))
        return -1;
    for (int i = 0; i < n; i++) {
        const WTensor *t = &tensors[i];
        if (!t->name || (unsigned)t->dtype >= DT_COUNT || t->rank < 0 || t->rank > IR_MAX_RANK ||
            !strcmp(t->name, "__metadata__") || (t->nbytes && !t->data))
            return -1;
        uint64_t numel = 1;
        for (int k = 0; k < t->rank; k++) {
            if (t->shape[k] < 0 || (t->shape[k] && numel > UINT64_MAX / (uint64_t)t->shape[k]))
                return -1;
            numel *= (uint64_t)t->shape[k];
        }
        if (numel > UINT64_MAX / (uint64_t)dtype_traits[t->dtype].size ||
            numel * (uint64_t)dtype_traits[t->dtype].size != t->nbytes)
            return -1;
        for (int j = 0; j < i; j++)
            if (!strcmp(tensors[j].name, t->name))
                return -1;
    }

    StBuf h = {0};
    st_put(&h, "{", 1);
    if (nmeta) {
        st_put(&h, "\"__metadata__\":{", 16);
        for (int i = 0; i < nmeta; i++) {
            if (i)
                st_put(&h, ",", 1);
            st_put_json(&h, keys[i] ? keys[i] : "");
            st_put(&h, ":", 1);
            st_put_json(&h, vals[i] ? vals[i] : "");
        }
        st_put(&h, "}", 1);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const WTensor *t = &tensors[i];
        if (i || nmeta)
            st_put(&h, ",", 1);
        st_put_json(&h, t->name);
        st_putf(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_names[t->dtype]);
        for (int k = 0; k < t->rank; k++)
            st_putf(&h, "%s%" PRId64, k ? "," : "", t->shape[k]);
        st_putf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + t->nbytes);
        off += t->nbytes;
    }
    st_put(&h, "}", 1);
    while (h.len % 8)
        st_put(&h, " ", 1);

    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(len8, 1, 8, f) == 8 && fwrite(h.s, 1, h.len, f) == h.len;
    for (int i = 0; ok && i < n; i++)
        ok = !tensors[i].nbytes ||
             fwrite(tensors[i].data, 1, tensors[i].nbytes, f) == tensors[i].nbytes;
    if (f && fclose(f) != 0)
        ok = 0;
    free(h.s);
    if (!ok) {
        if (f)
            remove(path);
        return -1;
    }
    return 0;
}
