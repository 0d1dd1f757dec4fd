/* diag.c: diagnostics in the form file:line:col: error: message.
 *
 * Each error is followed by the source line and a caret under the column, the way chibicc and
 * clang print them. Errors are counted, not fatal: a phase reports every problem it finds and the
 * caller stops between phases when diag_errors() is non-zero. Past a limit (50 by default) errors
 * are still counted but no longer printed, so a runaway cascade cannot flood the terminal.
 */
#include "ir.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { DIAG_MAX_FILES = 64 };

enum { DIAG_SEEN = 256 };

struct Diag {
    FILE *out;
    uint64_t seen[DIAG_SEEN]; /* hashes of reported errors: an error inside a function inlined at
                                 twelve call sites is reported once, not twelve times */
    int nseen;
    int nerr;
    int max;
    int nfile;
    struct {
        char *path;
        char *text; /* NULL: not available for quoting */
    } files[DIAG_MAX_FILES];
};

Diag *diag_new(FILE *out)
{
    Diag *d = calloc(1, sizeof *d);
    KILN_ASSERT(d);
    d->out = out ? out : stderr;
    d->max = 50;
    d->files[0].path = strdup("<unknown>");
    d->nfile = 1;
    return d;
}

void diag_free(Diag *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->nfile; i++) {
        free(d->files[i].path);
        free(d->files[i].text);
    }
    free(d);
}

int diag_add_file(Diag *d, const char *path, const char *text)
{
    for (int i = 1; i < d->nfile; i++)
        if (!strcmp(d->files[i].path, path)) {
            if (text && !d->files[i].text)
                d->files[i].text = strdup(text);
            return i;
        }
    if (d->nfile == DIAG_MAX_FILES)
        return 0;
    d->files[d->nfile].path = strdup(path);
    d->files[d->nfile].text = text ? strdup(text) : NULL;
    return d->nfile++;
}

const char *diag_file_path(const Diag *d, int file)
{
    return file > 0 && file < d->nfile ? d->files[file].path : NULL;
}

void diag_set_max(Diag *d, int max)
{
    d->max = max;
}

int diag_errors(const Diag *d)
{
    return d->nerr;
}

/* Prints the line `line` of the file and a caret under `col` (tabs kept so the caret lines up). */
static void quote(Diag *d, SrcLoc loc)
{
    const char *t = loc.file > 0 && loc.file < d->nfile ? d->files[loc.file].text : NULL;
    if (!t || loc.line <= 0)
        return;
    for (int l = 1; l < loc.line; l++) { /* strchr rather than a loop over bytes: the fuzz build
                                              instruments every comparison of ours */
        const char *nl = strchr(t, '\n');
        if (!nl) {
            t += strlen(t);
            break;
        }
        t = nl + 1;
    }
    const char *e = strchr(t, '\n');
    int len = e ? (int)(e - t) : (int)strlen(t);
    fprintf(d->out, "%5d | %.*s\n      | ", loc.line, len, t);
    for (int i = 1; i < loc.col && i <= len; i++)
        fputc(t[i - 1] == '\t' ? '\t' : ' ', d->out);
    fputs("^\n", d->out);
}

static void report(Diag *d, SrcLoc loc, const char *kind, const char *fmt, va_list ap)
{
    const char *path = diag_file_path(d, loc.file);
    if (path && loc.line > 0)
        fprintf(d->out, "%s:%d:%d: %s: ", path, loc.line, loc.col, kind);
    else if (path)
        fprintf(d->out, "%s: %s: ", path, kind);
    else
        fprintf(d->out, "kiln: %s: ", kind);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    quote(d, loc);
}

static uint64_t hash(SrcLoc loc, const char *fmt, va_list ap)
{
    char buf[512];
    va_list aq;
    va_copy(aq, ap);
    vsnprintf(buf, sizeof buf, fmt, aq);
    va_end(aq);
    uint64_t h = 1469598103934665603ull ^ (uint64_t)loc.file * 31 ^ (uint64_t)loc.line << 20 ^ (uint64_t)loc.col << 40;
    for (const char *p = buf; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

int diag_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 200 || lb > 200)
        return 1 << 20;
    int row[201];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

void diag_verror(Diag *d, SrcLoc loc, const char *fmt, va_list ap)
{
    if (loc.line > 0) {
        uint64_t h = hash(loc, fmt, ap);
        for (int i = 0; i < d->nseen; i++)
            if (d->seen[i] == h)
                return;
        if (d->nseen < DIAG_SEEN)
            d->seen[d->nseen++] = h;
    }
    if (d->nerr++ < d->max)
        report(d, loc, "error", fmt, ap);
    else if (d->nerr == d->max + 1)
        fprintf(d->out, "kiln: too many errors; stopping the report here\n");
}

void diag_error(Diag *d, SrcLoc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, loc, fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...)
{
    if (d->nerr > d->max)
        return;
    va_list ap;
    va_start(ap, fmt);
    report(d, loc, "note", fmt, ap);
    va_end(ap);
}

void diag_fatal(Diag *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, (SrcLoc){0, 0, 0}, fmt, ap);
    va_end(ap);
}

char *diag_read_text(Diag *d, const char *path, const char *what)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (d)
            diag_fatal(d, "cannot open %s '%s': %s", what, path, strerror(errno));
        return NULL;
    }
    /* read to the end in a growing buffer rather than trusting the size: a pipe or a FIFO has none */
    size_t cap = 1 << 16, n = 0, k;
    char *buf = malloc(cap);
    KILN_ASSERT(buf);
    while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (n + 1 == cap) {
            buf = realloc(buf, cap *= 2);
            KILN_ASSERT(buf);
        }
    }
    int failed = ferror(f), e = errno;
    fclose(f);
    buf[n] = 0;
    if (failed || strlen(buf) != n) {
        if (d && failed)
            diag_fatal(d, "cannot read %s '%s': %s", what, path, strerror(e));
        else if (d)
            diag_fatal(d, "%s '%s' contains a NUL byte: is it a text file?", what, path);
        free(buf);
        return NULL;
    }
    return buf;
}
