/* diag.c: diagnostics in the form file:line:col: error: message.
 *
 * Each error is followed by the source line and a caret under the column, the way chibicc and
 * clang print them. Errors are counted, not fatal: a phase reports every problem it finds and the
 * caller stops between phases when diag_errors() is non-zero. Past a limit (50 by default) errors
 * are still counted but no longer printed, so a runaway cascade cannot flood the terminal.
 */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

enum { DIAG_MAX_FILES = 64 };

struct Diag {
    FILE *out;
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
    for (int l = 1; l < loc.line && *t; t++)
        if (*t == '\n')
            l++;
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

void diag_verror(Diag *d, SrcLoc loc, const char *fmt, va_list ap)
{
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
