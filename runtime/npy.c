/* npy.c: reading and writing NumPy .npy files.
 *
 * A .npy file is the magic "\x93NUMPY", a major and a minor version byte, a little-endian header
 * length (2 bytes in version 1.0, 4 bytes in 2.0 and 3.0), then the header: a Python dict literal
 * such as {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } padded with spaces and a
 * newline, then the raw array data. The header is parsed by hand with a small recursive-descent
 * reader that knows exactly the three keys NumPy writes; anything else is an error, because a file
 * kiln cannot read faithfully is better rejected than guessed at.
 *
 * Only what kiln's dtypes can hold is accepted: <f4 <f2 <f8 <i8 <i4 |i1 |u1 |b1, little-endian and
 * C order. One-byte types may be written with any byte-order character and are normalised to '|'.
 * This code assumes a little-endian host, as every kiln target is.
 *
 * Every error is one sentence naming the file, written into the caller's buffer; nothing here
 * prints, exits or trusts a length it has not checked against the file's size.
 */
#include "runtime/kiln_rt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* The dtypes kiln reads are the rows of rt_dtypes (kiln_dtype.h) that have a NumPy descr, which is
 * their normalised form ("<f4", "|u1"). */
static int npy_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int npy_fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Normalises descr into out (a row of rt_dtypes) and returns its dtype code, or writes why it is not
 * supported into why and returns -1. */
static int npy_normalise(const char *descr, char out[8], char *why, size_t whylen)
{
    char order = descr[0];
    const char *body = descr + (order == '<' || order == '>' || order == '=' || order == '|');
    for (int i = 0; i < RT_DTYPE_COUNT && body != descr; i++) {
        const char *t = rt_dtypes[i].npy;
        if (!t || strcmp(body, t + 1) != 0)
            continue;
        /* byte order means nothing for one byte: '<i1', '=u1', '>b1' are all '|' */
        if (rt_dtypes[i].size == 1 || order == '<' || order == '=') {
            snprintf(out, 8, "%s", t);
            return i;
        }
        if (order == '>') {
            snprintf(why, whylen,
                     "big-endian data ('%s') is not supported; convert it with a.astype('%s')",
                     descr, t);
            return -1;
        }
    }
    if (body[0] == 'O' || body[0] == 'V') {
        snprintf(why, whylen, body[0] == 'O' ? "object arrays ('%s') are not supported"
                                             : "structured or void dtypes ('%s') are not supported", descr);
        return -1;
    }
    char list[128] = "";
    for (int i = 0; i < RT_DTYPE_COUNT; i++)
        if (rt_dtypes[i].npy)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", *list ? " " : "", rt_dtypes[i].npy);
    snprintf(why, whylen, "dtype '%s' is not supported (kiln reads %s)", descr, list);
    return -1;
}

/* ---- the header dict */

typedef struct NpyParser {
    const char *s, *p, *end; /* the header text, the cursor, its end */
    const char *path;
    char *err;
    size_t errlen;
} NpyParser;

static int npy_bad(NpyParser *ps, const char *expected)
{
    if (ps->p >= ps->end)
        return npy_fail(ps->err, ps->errlen,
                        "%s: malformed header: expected %s but the header ends", ps->path,
                        expected);
    unsigned char c = (unsigned char)*ps->p;
    size_t at = (size_t)(ps->p - ps->s);
    if (c >= 0x20 && c < 0x7f)
        return npy_fail(ps->err, ps->errlen,
                        "%s: malformed header: expected %s at byte %zu of the header, found '%c'",
                        ps->path, expected, at, c);
    return npy_fail(ps->err, ps->errlen,
                    "%s: malformed header: expected %s at byte %zu of the header, found byte "
                    "0x%02x", ps->path, expected, at, c);
}

static void npy_ws(NpyParser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int npy_eat(NpyParser *ps, char c)
{
    npy_ws(ps);
    if (ps->p < ps->end && *ps->p == c) {
        ps->p++;
        return 1;
    }
    return 0;
}

/* A quoted string without escapes, into buf (NUL-terminated; too long is an error). */
static int npy_string(NpyParser *ps, char *buf, size_t n, const char *what)
{
    npy_ws(ps);
    if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"'))
        return npy_bad(ps, what);
    char q = *ps->p++;
    size_t k = 0;
    while (ps->p < ps->end && *ps->p != q) {
        if (*ps->p == '\\' || *ps->p == '\n' || k + 1 >= n)
            return npy_bad(ps, what);
        buf[k++] = *ps->p++;
    }
    if (ps->p >= ps->end)
        return npy_bad(ps, "a closing quote");
    ps->p++;
    buf[k] = 0;
    return 0;
}

/* shape: a tuple of non-negative integers, "()", "(3,)", "(3, 4)"; Python 2's "3L" is accepted. */
static int npy_shape(NpyParser *ps, RtNpy *a)
{
    if (!npy_eat(ps, '('))
        return npy_bad(ps, "a tuple for 'shape'");
    a->rank = 0;
    while (!npy_eat(ps, ')')) {
        npy_ws(ps);
        if (ps->p < ps->end && *ps->p == '-')
            return npy_fail(ps->err, ps->errlen,
                            "%s: shape has a negative dimension; dimensions must be 0 or more",
                            ps->path);
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
            return npy_bad(ps, "a dimension or ')' in 'shape'");
        int64_t v = 0;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return npy_fail(ps->err, ps->errlen, "%s: shape has a dimension too large to hold",
                                ps->path);
            v = v * 10 + (*ps->p++ - '0');
        }
        if (ps->p < ps->end && (*ps->p == 'L' || *ps->p == 'l'))
            ps->p++;
        if (a->rank == RT_MAX_RANK)
            return npy_fail(ps->err, ps->errlen, "%s: shape has more than %d dimensions", ps->path,
                            RT_MAX_RANK);
        a->shape[a->rank++] = v;
        if (!npy_eat(ps, ',')) {
            if (!npy_eat(ps, ')'))
                return npy_bad(ps, "',' or ')' in 'shape'");
            break;
        }
    }
    return 0;
}

/* Parses the whole dict into a (descr, rank, shape, elem_size). */
static int npy_header(NpyParser *ps, RtNpy *a)
{
    int seen[3] = {0, 0, 0}; /* descr, fortran_order, shape */
    if (!npy_eat(ps, '{'))
        return npy_bad(ps, "'{' starting the header dict");
    while (!npy_eat(ps, '}')) {
        char key[32];
        if (npy_string(ps, key, sizeof key, "a quoted key or '}'"))
            return -1;
        int k = !strcmp(key, "descr") ? 0 : !strcmp(key, "fortran_order") ? 1
              : !strcmp(key, "shape") ? 2 : -1;
        if (k < 0)
            return npy_fail(ps->err, ps->errlen,
                            "%s: header has the key '%s'; expected only 'descr', "
                            "'fortran_order' and 'shape'", ps->path, key);
        if (seen[k]++)
            return npy_fail(ps->err, ps->errlen, "%s: header has the key '%s' twice", ps->path,
                            key);
        if (!npy_eat(ps, ':'))
            return npy_bad(ps, "':' after a key");
        if (k == 0) {
            char d[32], why[160];
            npy_ws(ps);
            if (ps->p < ps->end && *ps->p == '[')
                return npy_fail(ps->err, ps->errlen,
                                "%s: structured dtypes (a list of fields) are not supported",
                                ps->path);
            if (npy_string(ps, d, sizeof d, "a quoted string for 'descr'"))
                return -1;
            int t = npy_normalise(d, a->descr, why, sizeof why);
            if (t < 0)
                return npy_fail(ps->err, ps->errlen, "%s: %s", ps->path, why);
            a->elem_size = (size_t)rt_dtypes[t].size;
        } else if (k == 1) {
            npy_ws(ps);
            size_t left = (size_t)(ps->end - ps->p);
            if (left >= 4 && !memcmp(ps->p, "True", 4))
                return npy_fail(ps->err, ps->errlen,
                                "%s: fortran_order is True; only C order is supported "
                                "(save np.ascontiguousarray(a))", ps->path);
            if (left < 5 || memcmp(ps->p, "False", 5))
                return npy_bad(ps, "True or False for 'fortran_order'");
            ps->p += 5;
        } else if (npy_shape(ps, a)) {
            return -1;
        }
        if (!npy_eat(ps, ',')) {
            if (!npy_eat(ps, '}'))
                return npy_bad(ps, "',' or '}' in the header dict");
            break;
        }
    }
    npy_ws(ps);
    if (ps->p != ps->end)
        return npy_bad(ps, "the end of the header after '}'");
    static const char *const names[3] = {"descr", "fortran_order", "shape"};
    for (int k = 0; k < 3; k++)
        if (!seen[k])
            return npy_fail(ps->err, ps->errlen, "%s: header has no '%s' key", ps->path, names[k]);
    return 0;
}

/* "[32, 32]" */
static void npy_shape_str(const RtNpy *a, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < a->rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)a->shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

static const char *npy_type_name(const char *descr)
{
    for (int i = 0; i < RT_DTYPE_COUNT; i++)
        if (rt_dtypes[i].npy && !strcmp(rt_dtypes[i].npy, descr))
            return rt_dtypes[i].numpy;
    return descr;
}

/* Whether a shape of non-negative dims fits: the product of its dims, zeros counted as ones, times
 * the element's size, within INT64_MAX. Zeros are counted as ones so that reading and writing agree
 * on empty arrays (a 0 does not hide dims whose strides would overflow: (0, 2^40, 2^40) is refused
 * as (1, 2^40, 2^40) is). */
static int npy_span_ok(const int64_t *shape, int rank, size_t esize)
{
    uint64_t span = esize ? esize : 1;
    for (int i = 0; i < rank; i++) {
        uint64_t d = shape[i] > 0 ? (uint64_t)shape[i] : 1;
        if (span > (uint64_t)INT64_MAX / d)
            return 0;
        span *= d;
    }
    return 1;
}

/* ---- reading */

static int npy_read_file(FILE *f, const char *path, RtNpy *a, char *err, size_t errlen)
{
    if (fseek(f, 0, SEEK_END) != 0)
        return npy_fail(err, errlen, "%s: cannot seek in the file: %s", path, strerror(errno));
    long fend = ftell(f);
    if (fend < 0 || fseek(f, 0, SEEK_SET) != 0)
        return npy_fail(err, errlen, "%s: cannot find the file's size: %s", path, strerror(errno));
    size_t fsize = (size_t)fend;

    unsigned char pre[12];
    size_t got = fread(pre, 1, fsize < 12 ? fsize : 12, f);
    if (ferror(f))
        return npy_fail(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    if (got >= 6 && got < 10 && !memcmp(pre, npy_magic, 6))
        return npy_fail(err, errlen, "%s: file is truncated: it ends inside the .npy preamble",
                        path);
    if (got < 10 || memcmp(pre, npy_magic, 6) != 0)
        return npy_fail(err, errlen, "%s: not a .npy file (it does not start with \"\\x93NUMPY\")",
                        path);
    unsigned major = pre[6], minor = pre[7];
    size_t hstart, hlen;
    if (major == 1 && minor == 0) {
        hstart = 10;
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if ((major == 2 || major == 3) && minor == 0) {
        if (got < 12)
            return npy_fail(err, errlen, "%s: file is truncated: it ends inside the .npy preamble",
                            path);
        hstart = 12;
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        return npy_fail(err, errlen,
                        "%s: unsupported .npy version %u.%u (kiln reads versions 1.0, 2.0 and 3.0)",
                        path, major, minor);
    }
    if (hlen > fsize - hstart)
        return npy_fail(err, errlen,
                        "%s: file is truncated: header length is %zu bytes, file has %zu after the "
                        "preamble", path, hlen, fsize - hstart);

    char *h = malloc(hlen ? hlen : 1);
    if (!h)
        return npy_fail(err, errlen, "%s: out of memory reading a %zu-byte header", path, hlen);
    if (fseek(f, (long)hstart, SEEK_SET) != 0 || fread(h, 1, hlen, f) != hlen) {
        free(h);
        return npy_fail(err, errlen, "%s: cannot read the header: %s", path,
                        ferror(f) ? strerror(errno) : "unexpected end of file");
    }
    NpyParser ps = {h, h, h + hlen, path, err, errlen};
    int r = npy_header(&ps, a);
    free(h);
    if (r)
        return -1;

    if (!npy_span_ok(a->shape, a->rank, a->elem_size))
        return npy_fail(err, errlen, "%s: shape has too many elements to hold", path);
    size_t numel = 1;
    for (int i = 0; i < a->rank; i++)
        numel *= (size_t)a->shape[i];
    a->nbytes = numel * a->elem_size;

    size_t have = fsize - hstart - hlen;
    if (have != a->nbytes) {
        char sh[8 * 24];
        npy_shape_str(a, sh, sizeof sh);
        return npy_fail(err, errlen, "%s: %s: header says %zu bytes of %s data %s, file has %zu",
                        path, have < a->nbytes ? "file is truncated" : "file has extra bytes",
                        a->nbytes, npy_type_name(a->descr), sh, have);
    }
    a->data = malloc(a->nbytes ? a->nbytes : 1);
    if (!a->data)
        return npy_fail(err, errlen, "%s: out of memory reading %zu bytes of data", path,
                        a->nbytes);
    if (fread(a->data, 1, a->nbytes, f) != a->nbytes)
        return npy_fail(err, errlen, "%s: cannot read the data: %s", path,
                        ferror(f) ? strerror(errno) : "unexpected end of file");
    return 0;
}

int rt_npy_read(const char *path, RtNpy *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return npy_fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    int r = npy_read_file(f, path, out, err, errlen);
    fclose(f);
    if (r)
        rt_npy_free(out);
    return r;
}

/* ---- writing */

int rt_npy_write(const char *path, const char *descr, int rank, const int64_t *shape,
                 const void *data, char *err, size_t errlen)
{
    RtNpy a = {0};
    char why[160];
    int t = npy_normalise(descr ? descr : "", a.descr, why, sizeof why);
    if (t < 0)
        return npy_fail(err, errlen, "%s: cannot write: %s", path, why);
    if (rank < 0 || rank > RT_MAX_RANK)
        return npy_fail(err, errlen, "%s: cannot write rank %d; at most %d dimensions", path, rank,
                        RT_MAX_RANK);
    for (int i = 0; i < rank; i++)
        if (shape[i] < 0)
            return npy_fail(err, errlen, "%s: cannot write a negative dimension (%lld)", path,
                            (long long)shape[i]);
    if (!npy_span_ok(shape, rank, (size_t)rt_dtypes[t].size))
        return npy_fail(err, errlen, "%s: cannot write: shape has too many elements", path);
    size_t numel = 1;
    for (int i = 0; i < rank; i++)
        numel *= (size_t)shape[i];
    size_t nbytes = numel * (size_t)rt_dtypes[t].size;
    if (nbytes && !data)
        return npy_fail(err, errlen, "%s: cannot write: no data given", path);

    /* the dict, then spaces and '\n' so that the data starts at a multiple of 64 */
    char h[512];
    int k = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (", a.descr);
    for (int i = 0; i < rank; i++)
        k += snprintf(h + k, sizeof h - (size_t)k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    k += snprintf(h + k, sizeof h - (size_t)k, "%s), }", rank == 1 ? "," : "");
    while ((10 + k + 1) % 64)
        h[k++] = ' ';
    h[k++] = '\n';

    FILE *f = fopen(path, "wb");
    if (!f)
        return npy_fail(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    unsigned char pre[10];
    memcpy(pre, npy_magic, 6);
    pre[6] = 1, pre[7] = 0, pre[8] = (unsigned char)(k & 0xff), pre[9] = (unsigned char)(k >> 8);
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(h, 1, (size_t)k, f) == (size_t)k &&
             (nbytes == 0 || fwrite(data, 1, nbytes, f) == nbytes);
    int saved = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (!ok) {
        remove(path);
        return npy_fail(err, errlen, "%s: cannot write: %s", path, strerror(saved));
    }
    return 0;
}

void rt_npy_free(RtNpy *a)
{
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}
