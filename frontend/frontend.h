/* frontend.h: from a model file to a checked graph.
 *
 * Sections, by source file:
 *   lexer.l        tokens of the model language, with line and column
 *   parser.y       the grammar; builds the syntax tree (Ast)
 *   ast.c          syntax tree nodes
 *   lower.c        the syntax tree to the IR: names, constants, functions inlined, loops unrolled,
 *                  shapes and dtypes checked
 *   builtins.c     the builtin functions and methods of the language
 *   safetensors.c  weights files: memory-mapped, every header field checked
 */
#ifndef KILN_FRONTEND_H
#define KILN_FRONTEND_H

#include "ir/ir.h"

/* ---------------------------------------------------------------- safetensors.c */

typedef struct WTensor {
    const char *name;           /* "h.0.attn.c_attn.weight" */
    DType dtype;
    int rank;
    int64_t shape[IR_MAX_RANK]; /* (rank) */
    const void *data;           /* inside the mapping */
    size_t nbytes;
} WTensor;

struct Weights {
    char *path;
    void *map;          /* the whole file, mapped read-only */
    size_t size;
    int n;
    WTensor *t;         /* (n) sorted by name */
    int nmeta;
    char **meta_keys;   /* (nmeta) the __metadata__ object: string keys ... */
    char **meta_vals;   /* ... and string values */
};

/* Opens and checks a safetensors file: header length, JSON, dtypes, shapes, offsets in range, not
 * overlapping, size = dtype size x element count. On any problem reports one sentence naming the
 * file (and the tensor) and returns NULL. */
Weights *st_open(const char *path, Diag *d);
void st_close(Weights *w);
const WTensor *st_find(const Weights *w, const char *name);
/* Up to max names of the file closest to name (edit distance, ties by name); returns how many. */
int st_closest(const Weights *w, const char *name, const char **out, int max);
/* The value of a __metadata__ key, or NULL. */
const char *st_meta(const Weights *w, const char *key);
/* Writes a safetensors file (for tests and tools). Returns 0 on success. */
int st_write(const char *path, int n, const WTensor *tensors, int nmeta, const char *const *keys,
             const char *const *vals);

/* ---------------------------------------------------------------- lower.c */

typedef struct Define {
    const char *name;  /* a `const` of the model file */
    const char *value; /* its new value, as written after -D NAME= */
} Define;

typedef struct FrontendOptions {
    const char *weights_override; /* --weights FILE, or NULL to use the model's `weights` */
    int ndefine;
    const Define *defines;        /* -D NAME=VALUE */
    int no_weights;               /* check without opening the weights file (weights shapes unknown) */
} FrontendOptions;

/* Reads, parses and lowers a model file. Every error goes to d; returns NULL when there were any. */
Graph *fe_compile(const char *path, const FrontendOptions *o, Diag *d);

#endif
