/* parse.c: reading the text form of a graph back (the form print.c writes).
 *
 * A hand-written lexer turns the whole text into tokens first (newlines are tokens: the form has
 * one statement per line), then a recursive-descent parser reads statement by statement. The
 * grammar (print.c's header comment shows the same form by example):
 *
 *   file     := { stmt? NL }
 *   stmt     := 'model' name | 'source' STRING | 'weights' STRING | 'sym' IDENT '<=' INT
 *             | 'output' name '=' REF
 *             | 'state' name ':' type | 'entry' name '(' [REF {',' REF}] ')' | 'update' name '=' REF
 *             | REF '=' IDENT [STRING] ['(' [REF {',' REF}] ')'] ['{' attr {',' attr} '}']
 *               ':' type ['@' INT ':' INT] ['layer' '=' INT] ['scope' '=' STRING]
 *   name     := IDENT | STRING
 *   type     := IDENT '[' [dim {',' dim}] ']'
 *   dim      := ['-'] term {('+' | '-') term}      term := factor {'*' factor}   factor := INT | IDENT
 *   attr     := 'axis' '=' int | 'keepdims' '=' bool | 'perm' '=' '[' [int {',' int}] ']'
 *             | 'start' '=' dim | 'end' '=' dim | 'eps' '=' number | 'approx' '=' ('erf'|'tanh'|INT)
 *             | 'stride' '=' '[' int ',' int ']' | 'pad' '=' '[' int ',' int ']'
 *             | 'data' '=' '[' [number {',' number}] ']' | 'inline'
 *   int      := ['-'] INT          bool := 'true' | 'false' | INT
 *   number   := ['-'] (INT | FLOAT | 'inf' | 'nan') | 'true' | 'false'
 *
 * State and entries (ir/entry.c): a `state` line declares a state before any node reads it (`%N =
 * state "NAME"`, whose type must be the state's); an `entry` line starts an entry, lists its inputs
 * (INPUT nodes, each in exactly one entry) and owns the `output` and `update` lines after it, up to
 * the next `entry` line. Without `entry` lines, outputs and updates belong to the one entry "run".
 *
 * Comments run from '#' to the end of the line; blank lines are ignored. REF is %N. The header
 * statements may come in any order but each at most once; a `sym` must come before its first use.
 *
 * What is rejected here (everything else is the verifier's job, which the caller runs): unknown
 * ops, dtypes, symbols and attributes; an attribute the op does not have, given twice, or missing;
 * a name string on an op other than input and weight (or one missing on those); a wrong input count
 * for a fixed-arity op, none for a variadic one; references to undefined %ids or to ids defined
 * further down (the text must be in topological order); duplicate %ids; a perm whose length is not
 * the node's rank; const data whose count is not the (static) element count or whose values do not
 * fit the dtype; dims that are not linear (T*S) or use more than DIM_TERMS symbols.
 *
 * The %ids of the text need not be 0, 1, 2...: nodes are renumbered by position, as printed.
 *
 * Locations: errors about the text point into the text (registered with diag_add_file so they are
 * quoted). A node's own SrcLoc is its `@line:col`, in the file of the `source` line (registered
 * without text) or in no file (index 0) when there is none; without `@` it is line 0. Node.text is
 * its line in the text, where the verifier's errors point for a node without `@`.
 *
 * Weights: the file of the `weights` line (or weights_override) is opened with st_open after the
 * whole text is read; every `weight "name"` node gets at.data from st_find and must match the
 * file's dtype and shape. Graph.weights_path is the path actually opened. Graph.weights points at
 * the open file, which the graph does NOT own: the caller must st_close(g->weights) (before or
 * after ir_graph_free). On errors nothing is left open and NULL is returned.
 */
#include "ir.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum TokKind {
    TK_EOF,
    TK_NL,
    TK_IDENT,
    TK_INT,   /* digits only */
    TK_FLOAT, /* digits with '.' or an exponent */
    TK_STR,   /* decoded into str */
    TK_REF,   /* %N: ref */
    TK_LE,    /* <= */
    TK_PUNCT, /* one of = ( ) { } [ ] , : @ + - * : ch */
} TokKind;

typedef struct Tok {
    TokKind kind;
    int line, col;
    const char *s; /* into the text */
    int len;
    char ch;       /* TK_PUNCT */
    char *str;     /* TK_STR: decoded, in the graph's arena */
    int64_t ref;   /* TK_REF */
} Tok;

enum { MAX_REF = 1 << 24 }; /* largest %id accepted */
/* Largest number in a dim, a coefficient or a symbol's bound. Keeping every part of b + a*S + ... and
 * every bound below 2^31 means no product the dim arithmetic or the verifier forms can overflow. */
#define DIM_LIMIT ((int64_t)0x7fffffff)

static int dim_in_limit(Dim d)
{
    for (int i = 0; i < dim_nterms(d); i++) {
        int64_t a;
        dim_term(d, i, &a);
        if (a < -DIM_LIMIT || a > DIM_LIMIT)
            return 0;
    }
    return dim_value(d) >= -DIM_LIMIT && dim_value(d) <= DIM_LIMIT;
}

typedef struct PendingWeight {
    Node *node;
    SrcLoc at; /* the node's line in the text */
} PendingWeight;

typedef struct Parser {
    Diag *d;
    int file; /* the text's index in d */
    const char *text;
    Graph *g;
    Tok *tok;
    int ntok, captok;
    int pos;
    int nerr;
    /* %id -> node; state 0: never seen, 1: defined, 2: its line had an error (uses stay quiet) */
    Node **byid;
    unsigned char *state;
    int *defline;          /* text line of the definition */
    unsigned char *inText; /* defined anywhere in the text (found before parsing) */
    int capid;
    int seen_model, seen_source, seen_weights;
    int seen_result;        /* line of an output or update before any entry line, 0: none */
    unsigned char *listed;  /* (capid) INPUT nodes named by an entry line, by %id of the text */
    PendingWeight *pw;
    int npw, cappw;
    unsigned char *badline; /* (lines + 2) lines with a lexical error: not parsed, so no cascade */
} Parser;

static SrcLoc tok_loc(const Parser *p, const Tok *t)
{
    return (SrcLoc){p->file, t->line, t->col};
}

static void perr(Parser *p, const Tok *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void perr(Parser *p, const Tok *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(p->d, tok_loc(p, t), fmt, ap);
    va_end(ap);
    p->nerr++;
}

static void *xrealloc(void *q, size_t n)
{
    q = realloc(q, n);
    KILN_ASSERT(q);
    return q;
}

/* ---- lexer */

/* A lexical error: reported, and its line is then skipped by the parser. */
static void lerr(Parser *p, const Tok *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void lerr(Parser *p, const Tok *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(p->d, tok_loc(p, t), fmt, ap);
    va_end(ap);
    p->nerr++;
    p->badline[t->line] = 1;
}

static int is_alpha(int c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static Tok *push(Parser *p, TokKind k, const char *s, int len, int line, int col)
{
    if (p->ntok == p->captok) {
        p->captok = p->captok ? p->captok * 2 : 256;
        p->tok = xrealloc(p->tok, sizeof(Tok) * (size_t)p->captok);
    }
    Tok *t = &p->tok[p->ntok++];
    memset(t, 0, sizeof *t);
    t->kind = k;
    t->s = s;
    t->len = len;
    t->line = line;
    t->col = col;
    return t;
}

static int hexval(int c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads a quoted string starting at s (on the '"'); returns the length consumed. Errors are
 * reported and the token still made, so parsing goes on. */
static int lex_string(Parser *p, const char *s, int line, int col)
{
    Tok *t = push(p, TK_STR, s, 0, line, col);
    const char *q = s + 1;
    size_t n = 0;
    char *out = arena_alloc(p->g->arena, strcspn(q, "\n") + 1);
    for (;;) {
        if (!*q || *q == '\n') {
            Tok where = *t;
            lerr(p, &where, "unterminated string");
            break;
        }
        if (*q == '"') {
            q++;
            break;
        }
        if (*q == '\\') {
            int c = q[1], at = col + (int)(q - s);
            Tok where = {.line = line, .col = at};
            q += 2;
            switch (c) {
            case '"': out[n++] = '"'; break;
            case '\\': out[n++] = '\\'; break;
            case 'n': out[n++] = '\n'; break;
            case 't': out[n++] = '\t'; break;
            case 'r': out[n++] = '\r'; break;
            case 'x': {
                int h = hexval(q[0]), l = h >= 0 ? hexval(q[1]) : -1;
                if (h < 0 || l < 0 || (h == 0 && l == 0)) {
                    lerr(p, &where, "bad \\x escape in string (two hex digits, not 00)");
                } else {
                    out[n++] = (char)(h * 16 + l);
                    q += 2;
                }
                break;
            }
            default:
                lerr(p, &where, "unknown escape '\\%c' in string", c ? c : '0');
                if (!c || c == '\n')
                    q--;
            }
            continue;
        }
        out[n++] = *q++;
    }
    out[n] = 0;
    /* push() may have moved the array: find the token again */
    t = &p->tok[p->ntok - 1];
    t->str = out;
    t->len = (int)(q - s);
    return t->len;
}

static void lex(Parser *p)
{
    const char *s = p->text;
    int line = 1, nlines = 1;
    for (const char *q = s; *q; q++)
        nlines += *q == '\n';
    p->badline = calloc((size_t)nlines + 2, 1);
    KILN_ASSERT(p->badline);
    const char *bol = s;
    while (*s) {
        int col = (int)(s - bol) + 1;
        char c = *s;
        if (c == ' ' || c == '\t' || c == '\r') {
            s++;
        } else if (c == '#') {
            while (*s && *s != '\n')
                s++;
        } else if (c == '\n') {
            push(p, TK_NL, s, 1, line, col);
            s++;
            line++;
            bol = s;
        } else if (c == '"') {
            s += lex_string(p, s, line, col);
        } else if (c == '%') {
            const char *q = s + 1;
            int64_t v = 0;
            while (is_digit(*q) && v <= MAX_REF)
                v = v * 10 + (*q++ - '0');
            while (is_digit(*q))
                q++;
            Tok *t = push(p, TK_REF, s, (int)(q - s), line, col);
            t->ref = v;
            if (q == s + 1) {
                Tok where = *t;
                lerr(p, &where, "expected a node id after '%%' (as in %%3)");
            } else if (v > MAX_REF) {
                Tok where = *t;
                lerr(p, &where, "node id %.*s is too large", (int)(q - s), s);
            }
            s = q;
        } else if (is_digit(c) || (c == '.' && is_digit(s[1]))) {
            const char *q = s;
            int isfloat = 0;
            while (is_digit(*q))
                q++;
            if (*q == '.') {
                isfloat = 1;
                q++;
                while (is_digit(*q))
                    q++;
            }
            if ((*q == 'e' || *q == 'E') &&
                (is_digit(q[1]) || ((q[1] == '+' || q[1] == '-') && is_digit(q[2])))) {
                isfloat = 1;
                q += 2;
                while (is_digit(*q))
                    q++;
            }
            push(p, isfloat ? TK_FLOAT : TK_INT, s, (int)(q - s), line, col);
            s = q;
        } else if (is_alpha(c)) {
            const char *q = s;
            while (is_alpha(*q) || is_digit(*q))
                q++;
            push(p, TK_IDENT, s, (int)(q - s), line, col);
            s = q;
        } else if (c == '<' && s[1] == '=') {
            push(p, TK_LE, s, 2, line, col);
            s += 2;
        } else if (strchr("=(){}[],:@+-*", c)) {
            push(p, TK_PUNCT, s, 1, line, col)->ch = c;
            s++;
        } else {
            Tok where = {.line = line, .col = col};
            if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
                lerr(p, &where, "unexpected byte 0x%02x", (unsigned char)c);
            else
                lerr(p, &where, "unexpected character '%c'", c);
            s++;
        }
    }
    int col = (int)(s - bol) + 1;
    if (p->ntok == 0 || p->tok[p->ntok - 1].kind != TK_NL)
        push(p, TK_NL, s, 0, line, col);
    push(p, TK_EOF, s, 0, line, col);
}

/* ---- token helpers */

static Tok *peek(Parser *p)
{
    return &p->tok[p->pos];
}

static Tok *next(Parser *p)
{
    Tok *t = &p->tok[p->pos];
    if (t->kind != TK_EOF)
        p->pos++;
    return t;
}

static int is_punct(const Tok *t, char c)
{
    return t->kind == TK_PUNCT && t->ch == c;
}

static int is_word(const Tok *t, const char *w)
{
    return t->kind == TK_IDENT && (int)strlen(w) == t->len && !strncmp(t->s, w, (size_t)t->len);
}

static const char *tok_desc(const Tok *t, char *buf, size_t n)
{
    switch (t->kind) {
    case TK_EOF: return "end of file";
    case TK_NL: return "end of line";
    case TK_STR: return "a string";
    default: snprintf(buf, n, "'%.*s'", t->len > 40 ? 40 : t->len, t->s); return buf;
    }
}

static int expect(Parser *p, char c, const char *what)
{
    Tok *t = peek(p);
    if (!is_punct(t, c)) {
        char buf[64];
        perr(p, t, "expected '%c' %s, found %s", c, what, tok_desc(t, buf, sizeof buf));
        return 0;
    }
    next(p);
    return 1;
}

static char *tok_text(Parser *p, const Tok *t)
{
    return arena_strndup(p->g->arena, t->s, (size_t)t->len);
}

/* ['-'] INT into *v (range-checked to int). */
static int parse_int(Parser *p, int *v, const char *what)
{
    int neg = 0;
    if (is_punct(peek(p), '-')) {
        next(p);
        neg = 1;
    }
    Tok *t = peek(p);
    if (t->kind != TK_INT) {
        char buf[64];
        perr(p, t, "expected an integer for %s, found %s", what, tok_desc(t, buf, sizeof buf));
        return 0;
    }
    next(p);
    errno = 0;
    long long x = strtoll(tok_text(p, t), NULL, 10);
    if (errno || x > 0x7fffffff) {
        perr(p, t, "%s %s%.*s is out of range", what, neg ? "-" : "", t->len, t->s);
        return 0;
    }
    *v = (int)(neg ? -x : x);
    return 1;
}

/* ---- dims and types */

static int find_sym(const Graph *g, const Tok *t)
{
    for (int i = 0; i < g->nsym; i++)
        if ((int)strlen(g->syms[i].name) == t->len && !strncmp(g->syms[i].name, t->s, (size_t)t->len))
            return i;
    return -1;
}

static int parse_factor(Parser *p, Dim *out)
{
    Tok *t = peek(p);
    if (t->kind == TK_INT) {
        next(p);
        errno = 0;
        long long v = strtoll(tok_text(p, t), NULL, 10);
        if (errno || v > DIM_LIMIT) {
            perr(p, t, "dimension %.*s is out of range (at most %lld)", t->len, t->s, (long long)DIM_LIMIT);
            return 0;
        }
        *out = dim_const(v);
        return 1;
    }
    if (t->kind == TK_IDENT) {
        next(p);
        int s = find_sym(p->g, t);
        if (s < 0) {
            perr(p, t, "unknown symbol '%.*s' (declare it with `sym %.*s <= BOUND` first)", t->len,
                 t->s, t->len, t->s);
            return 0;
        }
        *out = dim_sym(s);
        return 1;
    }
    char buf[64];
    perr(p, t, "expected a dimension (a number or a symbol), found %s", tok_desc(t, buf, sizeof buf));
    return 0;
}

static int parse_term(Parser *p, Dim *out)
{
    Tok *start = peek(p);
    if (!parse_factor(p, out))
        return 0;
    while (is_punct(peek(p), '*')) {
        next(p);
        Dim f;
        if (!parse_factor(p, &f))
            return 0;
        if (!dim_mul(*out, f, out)) { /* parts within DIM_LIMIT: only a product of symbols fails */
            perr(p, start, "a dimension must be linear in the symbols (like 2*T+P+1): it cannot multiply two of them");
            return 0;
        }
        if (!dim_in_limit(*out)) {
            perr(p, start, "dimension is out of range");
            return 0;
        }
    }
    return 1;
}

static int parse_dim(Parser *p, Dim *out)
{
    Tok *start = peek(p);
    int neg = 0;
    if (is_punct(start, '-')) {
        next(p);
        neg = 1;
    }
    if (!parse_term(p, out))
        return 0;
    if (neg)
        dim_sub(dim_const(0), *out, out);
    while (is_punct(peek(p), '+') || is_punct(peek(p), '-')) {
        int minus = next(p)->ch == '-';
        Dim t;
        if (!parse_term(p, &t))
            return 0;
        if (!(minus ? dim_sub(*out, t, out) : dim_add(*out, t, out))) { /* within DIM_LIMIT: too many terms */
            perr(p, start, "a dimension may use at most %d symbols", DIM_TERMS);
            return 0;
        }
        if (!dim_in_limit(*out)) {
            perr(p, start, "dimension is out of range");
            return 0;
        }
    }
    return 1;
}

static int parse_type(Parser *p, DType *dt, int *rank, Dim *shape)
{
    Tok *t = peek(p);
    char buf[64];
    if (t->kind != TK_IDENT) {
        perr(p, t, "expected a type such as f32[T, 768], found %s", tok_desc(t, buf, sizeof buf));
        return 0;
    }
    next(p);
    char *name = tok_text(p, t);
    int k = dtype_from_name(name);
    if (k < 0) {
        perr(p, t, "unknown dtype '%s'", name);
        return 0;
    }
    *dt = (DType)k;
    if (!expect(p, '[', "after the dtype"))
        return 0;
    *rank = 0;
    if (!is_punct(peek(p), ']')) {
        for (;;) {
            if (*rank == IR_MAX_RANK) {
                perr(p, peek(p), "more than %d dimensions", IR_MAX_RANK);
                return 0;
            }
            if (!parse_dim(p, &shape[(*rank)++]))
                return 0;
            if (!is_punct(peek(p), ','))
                break;
            next(p);
        }
    }
    return expect(p, ']', "to close the shape");
}

/* ---- node ids */

static void grow_ids(Parser *p, int64_t id)
{
    if (id < p->capid)
        return;
    int c = p->capid ? p->capid : 256;
    while (c <= id)
        c *= 2;
    p->byid = xrealloc(p->byid, sizeof(Node *) * (size_t)c);
    p->state = xrealloc(p->state, (size_t)c);
    p->defline = xrealloc(p->defline, sizeof(int) * (size_t)c);
    p->inText = xrealloc(p->inText, (size_t)c);
    p->listed = xrealloc(p->listed, (size_t)c);
    memset(p->listed + p->capid, 0, (size_t)(c - p->capid));
    memset(p->byid + p->capid, 0, sizeof(Node *) * (size_t)(c - p->capid));
    memset(p->state + p->capid, 0, (size_t)(c - p->capid));
    memset(p->defline + p->capid, 0, sizeof(int) * (size_t)(c - p->capid));
    memset(p->inText + p->capid, 0, (size_t)(c - p->capid));
    p->capid = c;
}

/* Marks every %id that some line defines, so a use before its definition can be told apart from
 * a use of an id that does not exist. */
static void prescan(Parser *p)
{
    for (int i = 0; i + 1 < p->ntok; i++) {
        int bol = i == 0 || p->tok[i - 1].kind == TK_NL;
        if (bol && p->tok[i].kind == TK_REF && p->tok[i].ref <= MAX_REF && is_punct(&p->tok[i + 1], '=')) {
            grow_ids(p, p->tok[i].ref);
            p->inText[p->tok[i].ref] = 1;
        }
    }
}

/* Resolves a use of %id. Returns 1 with *out set, 0 after an error, -1 when the id's own line
 * failed (the error was already reported; stay quiet). */
static int use_ref(Parser *p, Tok *t, Node **out)
{
    int64_t id = t->ref;
    if (id < p->capid && p->state[id] == 1) {
        *out = p->byid[id];
        return 1;
    }
    if (id < p->capid && p->state[id] == 2)
        return -1;
    if (id <= MAX_REF && id < p->capid && p->inText[id])
        perr(p, t, "%%%lld is used before its definition (nodes must be in topological order)",
             (long long)id);
    else
        perr(p, t, "undefined node %%%lld", (long long)id);
    return 0;
}

/* ---- attributes */


typedef struct DataVal {
    Tok *tok; /* INT, FLOAT or IDENT (inf, nan, true, false) */
    int neg;
} DataVal;

typedef struct NodeAttrs {
    Attrs at;
    int inl;
    int seen[AI_COUNT];   /* attribute given, by AI_ index */
    int nperm;
    Tok *perm_tok;
    DataVal *vals; /* malloc'ed */
    int nval, capval;
    Tok *data_tok;
} NodeAttrs;

static int parse_number_tok(Parser *p, DataVal *v, const char *what)
{
    v->neg = 0;
    if (is_punct(peek(p), '-')) {
        next(p);
        v->neg = 1;
    }
    Tok *t = peek(p);
    if (t->kind == TK_INT || t->kind == TK_FLOAT || is_word(t, "inf") || is_word(t, "nan") ||
        (!v->neg && (is_word(t, "true") || is_word(t, "false")))) {
        v->tok = next(p);
        return 1;
    }
    char buf[64];
    perr(p, t, "expected a number for %s, found %s", what, tok_desc(t, buf, sizeof buf));
    return 0;
}

static double number_value(Parser *p, const DataVal *v)
{
    const Tok *t = v->tok;
    double x;
    if (is_word(t, "true"))
        x = 1;
    else if (is_word(t, "false"))
        x = 0;
    else if (is_word(t, "inf"))
        x = INFINITY;
    else if (is_word(t, "nan"))
        x = NAN;
    else
        x = strtod(tok_text(p, t), NULL);
    return v->neg ? -x : x;
}

static int int_list(Parser *p, int *out, int max, int *n, const char *what)
{
    if (!expect(p, '[', what))
        return 0;
    *n = 0;
    if (!is_punct(peek(p), ']')) {
        for (;;) {
            int v;
            if (*n == max) {
                perr(p, peek(p), "too many entries in %s (at most %d)", what, max);
                return 0;
            }
            if (!parse_int(p, &v, what))
                return 0;
            out[(*n)++] = v;
            if (!is_punct(peek(p), ','))
                break;
            next(p);
        }
    }
    return expect(p, ']', what);
}

static int parse_attr(Parser *p, Op op, NodeAttrs *na)
{
    Tok *t = peek(p);
    char buf[64];
    if (t->kind != TK_IDENT) {
        perr(p, t, "expected an attribute name, found %s", tok_desc(t, buf, sizeof buf));
        return 0;
    }
    next(p);
    if (is_word(t, "inline")) {
        if (na->inl) {
            perr(p, t, "attribute 'inline' given twice");
            return 0;
        }
        na->inl = 1;
        return 1;
    }
    int k = -1;
    for (int i = 0; i < AI_COUNT; i++)
        if (is_word(t, attr_info[i].name))
            k = i;
    if (k < 0) {
        perr(p, t, "unknown attribute '%.*s'", t->len, t->s);
        return 0;
    }
    const AttrInfo *ia = &attr_info[k];
    if (!(op_info[op].attrs & (1 << k))) {
        perr(p, t, "unknown attribute '%s' for %s", ia->name, op_info[op].name);
        return 0;
    }
    if (na->seen[k]) {
        perr(p, t, "attribute '%s' given twice", ia->name);
        return 0;
    }
    na->seen[k] = 1;
    if (!expect(p, '=', "after the attribute name"))
        return 0;
    char *x = (char *)&na->at + ia->offset;
    int n;
    switch (ia->kind) {
    case AK_INT:
        return parse_int(p, (int *)x, ia->name);
    case AK_BOOL:
        if (is_word(peek(p), "true") || is_word(peek(p), "false")) {
            *(int *)x = is_word(next(p), "true");
            return 1;
        }
        return parse_int(p, (int *)x, ia->name);
    case AK_ENUM: {
        /* a value name of attrs.def's list, or its number */
        Tok *v = peek(p);
        int i = 0;
        for (const char *q = ia->names; q && v->kind == TK_IDENT; i++) {
            const char *e = strchr(q, '|');
            size_t len = e ? (size_t)(e - q) : strlen(q);
            if ((size_t)v->len == len && !strncmp(v->s, q, len)) {
                next(p);
                *(int *)x = i;
                return 1;
            }
            q = e ? e + 1 : NULL;
        }
        return parse_int(p, (int *)x, ia->name);
    }
    case AK_PERM:
        na->perm_tok = t;
        return int_list(p, (int *)x, IR_MAX_RANK, &na->nperm, ia->name);
    case AK_DIM:
        return parse_dim(p, (Dim *)x);
    case AK_F64: {
        DataVal v;
        if (!parse_number_tok(p, &v, ia->name))
            return 0;
        *(double *)x = number_value(p, &v);
        return 1;
    }
    case AK_INT2: {
        int v[3];
        if (!int_list(p, v, 3, &n, ia->name))
            return 0;
        if (n != 2) {
            perr(p, t, "%s takes two values [h, w], got %d", ia->name, n);
            return 0;
        }
        ((int *)x)[0] = v[0];
        ((int *)x)[1] = v[1];
        return 1;
    }
    case AK_DATA:
        /* the values are converted once the node's type is known (store_data) */
        na->data_tok = t;
        if (!expect(p, '[', "to open the data"))
            return 0;
        if (!is_punct(peek(p), ']')) {
            for (;;) {
                if (na->nval == na->capval) {
                    na->capval = na->capval ? na->capval * 2 : 64;
                    na->vals = xrealloc(na->vals, sizeof(DataVal) * (size_t)na->capval);
                }
                if (!parse_number_tok(p, &na->vals[na->nval++], "data"))
                    return 0;
                if (!is_punct(peek(p), ','))
                    break;
                next(p);
            }
        }
        return expect(p, ']', "to close the data");
    }
    UNREACHABLE();
}

/* Converts the data values to the node's dtype, checking that each fits. */
static int store_data(Parser *p, DType t, int rank, const Dim *shape, NodeAttrs *na, const void **out)
{
    int64_t numel = 1;
    for (int i = 0; i < rank; i++) {
        if (!dim_is_const(shape[i])) {
            perr(p, na->data_tok, "const data needs a static shape");
            return 0;
        }
        if (__builtin_mul_overflow(numel, dim_value(shape[i]) < 0 ? 0 : dim_value(shape[i]), &numel) || numel > INT32_MAX) {
            perr(p, na->data_tok, "const data of more than 2^31 elements");
            return 0;
        }
    }
    if (numel != na->nval) {
        perr(p, na->data_tok, "data has %d values but the shape has %lld elements", na->nval,
             (long long)numel);
        return 0;
    }
    size_t sz = (size_t)dtype_traits[t].size;
    void *buf = arena_alloc(p->g->arena, sz * (size_t)(numel ? numel : 1));
    for (int i = 0; i < na->nval; i++) {
        DataVal *v = &na->vals[i];
        Tok *tk = v->tok;
        const char *tn = dtype_traits[t].name;
        if (dtype_traits[t].is_float) {
            if (is_word(tk, "true") || is_word(tk, "false")) {
                perr(p, tk, "expected a number for %s data, found %.*s", tn, tk->len, tk->s);
                return 0;
            }
            dtype_store(t, buf, (size_t)i, number_value(p, v));
            continue;
        }
        if (t == DT_BOOL) {
            if (!v->neg && (is_word(tk, "true") || is_word(tk, "false") ||
                            (tk->kind == TK_INT && tk->len == 1 && (tk->s[0] == '0' || tk->s[0] == '1')))) {
                dtype_store(t, buf, (size_t)i, is_word(tk, "true") || tk->s[0] == '1');
                continue;
            }
            perr(p, tk, "expected true or false for bool data");
            return 0;
        }
        if (tk->kind != TK_INT) {
            perr(p, tk, "expected an integer for %s data, found %s%.*s", tn, v->neg ? "-" : "",
                 tk->len, tk->s);
            return 0;
        }
        char *txt = arena_printf(p->g->arena, "%s%.*s", v->neg ? "-" : "", tk->len, tk->s);
        errno = 0;
        if (t == DT_U64) { /* past INT64_MAX: read unsigned, never through double */
            unsigned long long u = strtoull(txt, NULL, 10);
            if (errno || v->neg) {
                perr(p, tk, "value %s does not fit in %s", txt, tn);
                return 0;
            }
            ((uint64_t *)buf)[i] = u;
            continue;
        }
        long long x = strtoll(txt, NULL, 10);
        long long lo = t == DT_I64 ? INT64_MIN : t == DT_I32 ? INT32_MIN : t == DT_I16 ? INT16_MIN : t == DT_I8 ? -128
                     : t == DT_I4 ? -8 : 0;
        long long hi = t == DT_I64 ? INT64_MAX : t == DT_I32 ? INT32_MAX : t == DT_U32 ? UINT32_MAX
                     : t == DT_I16 ? INT16_MAX : t == DT_U16 ? UINT16_MAX : t == DT_I8 ? 127
                     : t == DT_I4 ? 7 : t == DT_U4 ? 15 : 255;
        if (errno || x < lo || x > hi) {
            perr(p, tk, "value %s does not fit in %s", txt, tn);
            return 0;
        }
        if (t == DT_I64)
            ((int64_t *)buf)[i] = x; /* through double would lose bits past 2^53 */
        else
            dtype_store(t, buf, (size_t)i, (double)x);
    }
    *out = buf;
    return 1;
}

/* ---- statements */

static int parse_name(Parser *p, const char **out, const char *what)
{
    Tok *t = peek(p);
    if (t->kind == TK_IDENT) {
        next(p);
        *out = tok_text(p, t);
        return 1;
    }
    if (t->kind == TK_STR) {
        next(p);
        *out = t->str;
        return 1;
    }
    char buf[64];
    perr(p, t, "expected %s (a name or a quoted string), found %s", what, tok_desc(t, buf, sizeof buf));
    return 0;
}

static int parse_string(Parser *p, const char **out, const char *what)
{
    Tok *t = peek(p);
    if (t->kind != TK_STR) {
        char buf[64];
        perr(p, t, "expected %s as a quoted string, found %s", what, tok_desc(t, buf, sizeof buf));
        return 0;
    }
    next(p);
    *out = t->str;
    return 1;
}

static int once(Parser *p, Tok *kw, int *seen)
{
    if (*seen) {
        perr(p, kw, "'%.*s' given twice (it was on line %d)", kw->len, kw->s, *seen);
        return 0;
    }
    *seen = kw->line;
    return 1;
}

static int parse_sym(Parser *p, Tok *kw)
{
    Tok *t = peek(p);
    char buf[64];
    if (t->kind != TK_IDENT) {
        perr(p, t, "expected a symbol name after 'sym', found %s", tok_desc(t, buf, sizeof buf));
        return 0;
    }
    next(p);
    if (find_sym(p->g, t) >= 0) {
        perr(p, t, "symbol '%.*s' declared twice", t->len, t->s);
        return 0;
    }
    if (peek(p)->kind != TK_LE) {
        perr(p, peek(p), "expected '<=' and a bound after the symbol, found %s",
             tok_desc(peek(p), buf, sizeof buf));
        return 0;
    }
    next(p);
    Tok *b = peek(p);
    if (b->kind != TK_INT) {
        perr(p, b, "expected the symbol's bound (a positive integer), found %s",
             tok_desc(b, buf, sizeof buf));
        return 0;
    }
    next(p);
    errno = 0;
    long long bound = strtoll(tok_text(p, b), NULL, 10);
    if (errno || bound < 1 || bound > DIM_LIMIT) {
        perr(p, b, "bound %.*s is out of range", b->len, b->s);
        return 0;
    }
    if (ir_sym(p->g, tok_text(p, t), bound) < 0) {
        perr(p, t, "too many symbols (at most %d)", IR_MAX_SYMS);
        return 0;
    }
    return 1;
}

/* The %N an output or update line names (what: "output" or "update"); 0 after an error. */
static int parse_result_ref(Parser *p, const char *what, Node **n)
{
    Tok *t = peek(p);
    if (t->kind != TK_REF) {
        char buf[64];
        perr(p, t, "expected a node (%%N) for the %s, found %s", what, tok_desc(t, buf, sizeof buf));
        return 0;
    }
    next(p);
    return use_ref(p, t, n) == 1;
}

static int parse_output(Parser *p)
{
    const char *name;
    if (!parse_name(p, &name, "the output's name") || !expect(p, '=', "after the output's name"))
        return 0;
    Node *n;
    if (!parse_result_ref(p, "output", &n))
        return 0;
    ir_add_output(p->g, name, n);
    return 1;
}

static int parse_node_rest(Parser *p, Tok *idtok, NodeAttrs *na)
{
    char buf[64];
    Tok *optok = peek(p);
    if (optok->kind != TK_IDENT) {
        perr(p, optok, "expected an op name after '=', found %s", tok_desc(optok, buf, sizeof buf));
        return 0;
    }
    next(p);
    char *opname = tok_text(p, optok);
    int opk = op_from_name(opname);
    if (opk < 0) {
        perr(p, optok, "unknown op '%s'", opname);
        return 0;
    }
    Op op = (Op)opk;
    const char *name = NULL;
    if (op == OP_INPUT || op == OP_WEIGHT || op == OP_STATE) {
        if (!parse_string(p, &name, op == OP_INPUT    ? "the input's name"
                                    : op == OP_WEIGHT ? "the weight's tensor name"
                                                      : "the state's name"))
            return 0;
        if (op == OP_STATE && ir_find_state(p->g, name) < 0) {
            perr(p, optok, "unknown state \"%s\" (declare it with `state NAME : TYPE` first)", name);
            return 0;
        }
    } else if (peek(p)->kind == TK_STR) {
        perr(p, peek(p), "only input, weight and state nodes take a name");
        return 0;
    }

    Node *ins[256];
    int nin = 0, quiet = 0;
    if (is_punct(peek(p), '(')) {
        next(p);
        if (!is_punct(peek(p), ')')) {
            for (;;) {
                Tok *t = peek(p);
                if (t->kind != TK_REF) {
                    perr(p, t, "expected an input (%%N), found %s", tok_desc(t, buf, sizeof buf));
                    return 0;
                }
                next(p);
                if (nin == (int)(sizeof ins / sizeof ins[0])) {
                    perr(p, t, "too many inputs");
                    return 0;
                }
                int r = use_ref(p, t, &ins[nin]);
                if (r == 0)
                    return 0;
                if (r < 0)
                    quiet = 1;
                nin++;
                if (!is_punct(peek(p), ','))
                    break;
                next(p);
            }
        }
        if (!expect(p, ')', "to close the inputs"))
            return 0;
    }
    const OpInfo *oi = &op_info[op];
    if (nin < oi->min_in || (oi->max_in >= 0 && nin > oi->max_in)) {
        if (oi->min_in == oi->max_in)
            perr(p, optok, "%s takes %d input%s, got %d", oi->name, oi->min_in, oi->min_in == 1 ? "" : "s", nin);
        else if (oi->max_in < 0)
            perr(p, optok, "%s takes at least %d input%s, got %d", oi->name, oi->min_in, oi->min_in == 1 ? "" : "s",
                 nin);
        else
            perr(p, optok, "%s takes %d to %d inputs, got %d", oi->name, oi->min_in, oi->max_in, nin);
        return 0;
    }

    if (is_punct(peek(p), '{')) {
        next(p);
        for (;;) {
            if (!parse_attr(p, op, na))
                return 0;
            if (!is_punct(peek(p), ','))
                break;
            next(p);
        }
        if (!expect(p, '}', "to close the attributes"))
            return 0;
    }
    for (int i = 0; i < AI_COUNT; i++)
        if ((op_info[op].attrs & (1 << i)) && attr_info[i].required && !na->seen[i]) {
            perr(p, optok, "%s needs the attribute '%s'", op_info[op].name, attr_info[i].name);
            return 0;
        }

    if (!expect(p, ':', "before the node's type"))
        return 0;
    DType dt;
    int rank;
    Dim shape[IR_MAX_RANK];
    if (!parse_type(p, &dt, &rank, shape))
        return 0;
    SrcLoc loc = {0, 0, 0};
    if (is_punct(peek(p), '@')) {
        Tok *at = next(p);
        int l, c;
        if (!parse_int(p, &l, "the line") || !expect(p, ':', "between line and column") ||
            !parse_int(p, &c, "the column"))
            return 0;
        if (l < 1 || c < 1) {
            perr(p, at, "line and column count from 1");
            return 0;
        }
        loc = (SrcLoc){0, l, c}; /* the file is set once the whole header is known */
    }
    int layer = -1;
    const char *scope = NULL;
    if (is_word(peek(p), "layer")) {
        Tok *lt = next(p);
        if (!expect(p, '=', "after 'layer'") || !parse_int(p, &layer, "the layer"))
            return 0;
        if (layer < 0) {
            perr(p, lt, "a layer counts from 0");
            return 0;
        }
    }
    if (is_word(peek(p), "scope")) {
        next(p);
        if (!expect(p, '=', "after 'scope'") || !parse_string(p, &scope, "the scope"))
            return 0;
    }
    if ((op_info[op].attrs & A_PERM) && na->nperm != rank) {
        perr(p, na->perm_tok, "perm has %d entries but the node has rank %d", na->nperm, rank);
        return 0;
    }
    if ((op_info[op].attrs & A_DATA) && !store_data(p, dt, rank, shape, na, &na->at.data))
        return 0;
    if (quiet)
        return 0;

    Node *n = ir_node(p->g, op, dt, rank, shape, nin, ins, loc);
    n->at = na->at;
    n->inl = na->inl;
    n->name = name;
    n->layer = layer;
    n->scope = scope;
    n->text = tok_loc(p, idtok);
    if (op == OP_WEIGHT) {
        if (p->npw == p->cappw) {
            p->cappw = p->cappw ? p->cappw * 2 : 32;
            p->pw = xrealloc(p->pw, sizeof(PendingWeight) * (size_t)p->cappw);
        }
        p->pw[p->npw++] = (PendingWeight){n, tok_loc(p, idtok)};
    }
    p->byid[idtok->ref] = n;
    return 1;
}

static int parse_node(Parser *p)
{
    Tok *idtok = next(p);
    int64_t id = idtok->ref;
    if (id > MAX_REF)
        return 0; /* reported by the lexer */
    grow_ids(p, id);
    if (p->state[id]) {
        perr(p, idtok, "%%%lld is defined twice (first on line %d)", (long long)id, p->defline[id]);
        return 0;
    }
    p->defline[id] = idtok->line;
    p->state[id] = 2; /* until the line succeeds */
    if (!expect(p, '=', "after the node id"))
        return 0;
    NodeAttrs na;
    memset(&na, 0, sizeof na);
    int ok = parse_node_rest(p, idtok, &na);
    free(na.vals);
    if (ok)
        p->state[id] = 1;
    return ok;
}

/* state NAME : TYPE (a static shape) */
static int parse_state_decl(Parser *p)
{
    Tok *at = peek(p);
    const char *name;
    DType dt;
    int rank;
    Dim shape[IR_MAX_RANK];
    if (!parse_name(p, &name, "the state's name") || !expect(p, ':', "after the state's name") ||
        !parse_type(p, &dt, &rank, shape))
        return 0;
    for (int i = 0; i < rank; i++)
        if (!dim_is_const(shape[i])) {
            perr(p, at, "state \"%s\" must have a static shape", name);
            return 0;
        }
    if (ir_add_state(p->g, name, dt, rank, shape) < 0) {
        perr(p, at, "state \"%s\" declared twice", name);
        return 0;
    }
    return 1;
}

/* entry NAME(%a, %b, ...): the inputs are INPUT nodes not listed by another entry */
static int parse_entry(Parser *p, Tok *kw)
{
    const char *name;
    if (p->seen_result) {
        perr(p, kw, "an entry line must come before the outputs and updates it owns (line %d has one "
                    "before any entry)", p->seen_result);
        return 0;
    }
    Tok *nt = peek(p);
    if (!parse_name(p, &name, "the entry's name"))
        return 0;
    int e = ir_add_entry(p->g, name);
    if (e < 0) {
        perr(p, nt, "entry \"%s\" declared twice", name);
        return 0;
    }
    if (!expect(p, '(', "before the entry's inputs"))
        return 0;
    while (!is_punct(peek(p), ')')) {
        Tok *t = peek(p);
        Node *n;
        if (t->kind != TK_REF) {
            char buf[64];
            perr(p, t, "expected an input (%%N), found %s", tok_desc(t, buf, sizeof buf));
            return 0;
        }
        next(p);
        int r = use_ref(p, t, &n);
        if (r <= 0)
            return 0;
        if (n->op != OP_INPUT) {
            perr(p, t, "%%%lld is not an input node", (long long)t->ref);
            return 0;
        }
        if (p->listed[t->ref]) {
            perr(p, t, "input %%%lld is listed by two entries", (long long)t->ref);
            return 0;
        }
        p->listed[t->ref] = 1;
        n->entry = e;
        if (!is_punct(peek(p), ','))
            break;
        next(p);
    }
    return expect(p, ')', "to close the entry's inputs");
}

/* update NAME = %N */
static int parse_update(Parser *p, Tok *kw)
{
    const char *name;
    Tok *nt = peek(p);
    if (!parse_name(p, &name, "the state's name") || !expect(p, '=', "after the state's name"))
        return 0;
    if (ir_find_state(p->g, name) < 0) {
        perr(p, nt, "unknown state \"%s\"", name);
        return 0;
    }
    Node *n;
    if (!parse_result_ref(p, "update", &n))
        return 0;
    if (!p->g->nentry && !p->seen_result)
        p->seen_result = kw->line;
    ir_add_update(p->g, name, n);
    return 1;
}

static void parse_stmt(Parser *p)
{
    Tok *t = peek(p);
    int ok = 1;
    char buf[64];
    if (t->kind == TK_NL || t->kind == TK_EOF)
        return;
    if (t->kind == TK_REF) {
        ok = parse_node(p);
    } else if (is_word(t, "model")) {
        next(p);
        ok = once(p, t, &p->seen_model) && parse_name(p, &p->g->model, "the model's name");
    } else if (is_word(t, "source")) {
        next(p);
        ok = once(p, t, &p->seen_source) && parse_string(p, &p->g->source, "the source path");
    } else if (is_word(t, "weights")) {
        next(p);
        ok = once(p, t, &p->seen_weights) && parse_string(p, &p->g->weights_path, "the weights path");
    } else if (is_word(t, "sym")) {
        next(p);
        ok = parse_sym(p, t);
    } else if (is_word(t, "output")) {
        next(p);
        if (!p->g->nentry && !p->seen_result)
            p->seen_result = t->line;
        ok = parse_output(p);
    } else if (is_word(t, "state")) {
        next(p);
        ok = parse_state_decl(p);
    } else if (is_word(t, "entry")) {
        next(p);
        ok = parse_entry(p, t);
    } else if (is_word(t, "update")) {
        next(p);
        ok = parse_update(p, t);
    } else {
        perr(p, t, "expected a statement (model, source, weights, sym, state, output, update, entry or "
                   "%%N = ...), found %s",
             tok_desc(t, buf, sizeof buf));
        ok = 0;
    }
    if (ok && peek(p)->kind != TK_NL) {
        perr(p, peek(p), "expected the end of the line, found %s", tok_desc(peek(p), buf, sizeof buf));
        ok = 0;
    }
}

/* ---- weights */

static void shape_text(char *buf, size_t n, DType dt, int rank, const int64_t *shape)
{
    size_t k = (size_t)snprintf(buf, n, "%s[", dtype_traits[dt].name);
    for (int i = 0; i < rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

static Weights *resolve_weights(Parser *p, const char *override)
{
    const char *path = override ? override : p->g->weights_path;
    if (!path) {
        if (p->npw) {
            perr(p, &(Tok){.line = p->pw[0].at.line, .col = p->pw[0].at.col},
                 "weight \"%s\" needs a weights file, but there is no `weights \"FILE\"` line",
                 p->pw[0].node->name);
        }
        return NULL;
    }
    if (override)
        p->g->weights_path = arena_strdup(p->g->arena, override);
    Weights *w = st_open(path, p->d);
    if (!w) {
        p->nerr++;
        return NULL;
    }
    for (int i = 0; i < p->npw; i++) {
        Node *n = p->pw[i].node;
        SrcLoc at = p->pw[i].at;
        const WTensor *wt = st_find(w, n->name);
        char want[IR_MAX_RANK * 96 + 16], have[IR_MAX_RANK * 24 + 16];
        if (!wt) {
            const char *close[3];
            char hint[512] = "";
            int k = st_closest(w, n->name, close, 3);
            for (int j = 0, m = 0; j < k && m < (int)sizeof hint; j++)
                m += snprintf(hint + m, sizeof hint - (size_t)m, "%s\"%s\"%s", j ? ", " : "; closest: ",
                              close[j], j == k - 1 ? "" : "");
            diag_error(p->d, at, "weight \"%s\" is not in %s%s", n->name, path, hint);
            p->nerr++;
            continue;
        }
        node_type_str(p->g, n, want, sizeof want);
        shape_text(have, sizeof have, wt->dtype, wt->rank, wt->shape);
        int same = wt->dtype == n->dtype && wt->rank == n->rank;
        for (int j = 0; same && j < n->rank; j++)
            same = dim_is_const(n->shape[j]) && dim_value(n->shape[j]) == wt->shape[j];
        if (!same) {
            diag_error(p->d, at, "weight \"%s\" is declared %s but is %s in %s", n->name, want, have, path);
            p->nerr++;
            continue;
        }
        n->at.data = wt->data;
    }
    return w;
}

Graph *ir_parse(const char *path, const char *text, const char *weights_override, Diag *d)
{
    Parser p;
    memset(&p, 0, sizeof p);
    p.d = d;
    p.text = text;
    p.file = diag_add_file(d, path ? path : "<ir>", text);
    p.g = ir_graph_new();
    lex(&p);
    prescan(&p);
    while (peek(&p)->kind != TK_EOF) {
        int before = p.nerr;
        Tok *t = peek(&p);
        int skip = p.badline[t->line]; /* its lexical error is already out */
        if (skip && t->kind == TK_REF && t->ref <= MAX_REF && is_punct(t + 1, '=')) {
            grow_ids(&p, t->ref); /* uses of its id stay quiet */
            if (!p.state[t->ref])
                p.state[t->ref] = 2;
        }
        if (!skip)
            parse_stmt(&p);
        if (skip || p.nerr != before) /* recover at the next line */
            while (peek(&p)->kind != TK_NL && peek(&p)->kind != TK_EOF)
                next(&p);
        if (peek(&p)->kind == TK_NL)
            next(&p);
    }
    Graph *g = p.g;
    if (g->nentry && !p.nerr)
        for (int id = 0; id < p.capid; id++)
            if (p.state[id] == 1 && p.byid[id]->op == OP_INPUT && !p.listed[id]) {
                diag_error(d, (SrcLoc){p.file, p.defline[id], 1},
                           "input \"%s\" is in no entry (list it in an `entry` line)", p.byid[id]->name);
                p.nerr++;
            }
    /* node locations are in the model file named by `source` */
    int srcfile = g->source ? diag_add_file(d, g->source, NULL) : 0;
    for (int i = 0; i < g->nnode; i++)
        if (g->nodes[i]->loc.line > 0)
            g->nodes[i]->loc.file = srcfile;
    Weights *w = NULL;
    if (!p.nerr)
        w = resolve_weights(&p, weights_override);
    g->weights = w;
    if (w)
        g->vocab = st_meta(w, "vocab");
    free(p.tok);
    free(p.byid);
    free(p.state);
    free(p.defline);
    free(p.inText);
    free(p.listed);
    free(p.pw);
    free(p.badline);
    if (p.nerr) {
        if (w)
            st_close(w);
        ir_graph_free(g);
        return NULL;
    }
    return g;
}
