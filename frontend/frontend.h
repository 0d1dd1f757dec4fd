/* frontend.h: from a model file to a checked graph.
 *
 * The weights reader (safetensors files) is below, in ir/weights.c (ir.h), so that ir/parse.c can
 * open the weights of IR text without the frontend.
 *
 * Sections, by source file:
 *   lexer.l        tokens of the model language, with line and column
 *   parser.y       the grammar; builds the syntax tree (Ast)
 *   ast.c          syntax tree nodes, and parse_file: the lexer and parser run over a file
 *   lower.c        the syntax tree to the IR: names, constants, functions inlined, loops unrolled,
 *                  shapes and dtypes checked
 *   builtins.c     the builtin functions and methods of the language
 *   onnx.c         ONNX files: read with protobuf-c, written out as a model file and a weights file
 *   onnx_ops.c     how each ONNX op is written in the model language (private header: onnx.h), and
 *                  what the handlers share; the handlers by concept in onnx_math.c, onnx_shape.c,
 *                  onnx_nn.c, onnx_quant.c
 */
#ifndef KILN_FRONTEND_H
#define KILN_FRONTEND_H

#include "ir/ir.h"

/* ---------------------------------------------------------------- ast.c, lexer.l, parser.y
 *
 * The syntax tree: one node type for every construct, a kind, a location and a few generic slots
 * whose meaning the kind fixes (documented per kind). Lists are chained through `next`. Nodes live
 * in the compilation's arena. */
typedef enum AstKind {
    /* expressions */
    AST_INT,      /* i */
    AST_FLOAT,    /* f */
    AST_BOOL,     /* i: 0 or 1 */
    AST_STRING,   /* s */
    AST_NAME,     /* s */
    AST_BINARY,   /* op: a token ('+', '@', TK_EQ ...), a, b */
    AST_NEG,      /* a */
    AST_CALL,     /* a: callee; list: arguments (AST_KWARG for name=value) */
    AST_KWARG,    /* s: name, a: value */
    AST_INDEX,    /* a: indexed expression; list: index items */
    AST_RANGE,    /* an index item lo:hi; a: lo or NULL, b: hi or NULL */
    AST_ATTR,     /* a: object; s: attribute name */
    AST_TUPLE,    /* list: items, written (a, b) */
    AST_LIST,     /* list: items, written [a, b] */
    AST_TYPE,     /* s: dtype name; list: dimensions (expressions) */
    /* statements */
    AST_MODEL,    /* s: model name */
    AST_WEIGHTS,  /* s: path */
    AST_CONST,    /* s: name; a: value (one per name: `const A = 1, B = 2` makes two) */
    AST_INPUT,    /* s: name; a: type; list: bounds (AST_BOUND) */
    AST_BOUND,    /* s: symbol; a: bound expression */
    AST_OUTPUT,   /* s: name; a: type */
    AST_FN,       /* s: name; list: params (AST_PARAM); a: return type or NULL; b: body (AST_BLOCK) */
    AST_PARAM,    /* s: name; a: type or NULL */
    AST_ASSIGN,   /* list: targets (AST_NAME); a: value; b: declared type or NULL */
    AST_FOR,      /* s: variable; a: from; b: to (exclusive); c: body (AST_BLOCK) */
    AST_RETURN,   /* a: value */
    AST_BLOCK,    /* list: statements */
} AstKind;

typedef struct Ast Ast;
struct Ast {
    AstKind kind;
    SrcLoc loc;
    int op;        /* AST_BINARY: operator token */
    int64_t i;
    double f;
    const char *s;
    Ast *a, *b, *c;
    Ast *list;     /* first element of a list */
    Ast *next;     /* next sibling in a list */
    Ast *tail;     /* the first element of a list: the last one (kept by ast_append) */
};

/* The parser's state, shared with the lexer through yyextra and the parser's %param. */
typedef struct ParseState {
    Arena *arena;
    Diag *diag;
    int file;          /* index of the file in the Diag's table */
    Ast *root;         /* AST_BLOCK of the whole file */
    int depth;         /* ( and [ nesting: newlines inside are not statement ends */
    int last;          /* the last token returned, for newline insertion */
    int pending_close; /* a '}' to return after an inserted newline */
} ParseState;

Ast *ast_new(ParseState *ps, AstKind k, SrcLoc loc);
/* Appends item to the list whose head is *head. Returns the head. */
Ast *ast_append(Ast *head, Ast *item);
int ast_count(const Ast *list);

/* Parses a whole model file; returns its AST_BLOCK, or NULL after syntax errors (reported). */
Ast *parse_file(const char *path, const char *text, Arena *arena, Diag *d, int *file_index);

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

/* Reads, parses and lowers a model file. Every error goes to d; returns NULL when there were any.
 * The graph's weights file (g->weights, when not NULL) is the caller's to close with st_close. */
Graph *fe_compile(const char *path, const FrontendOptions *o, Diag *d);
/* The same for a model file's text already in memory (path names it in errors and resolves its
 * relative weights path). */
Graph *fe_compile_text(const char *path, const char *text, const FrontendOptions *o, Diag *d);

/* ---------------------------------------------------------------- onnx.c
 *
 * An ONNX model is imported as the text of a model file plus the tensors of a weights file (the
 * initializers and the constants the file computes), so the model language stays the one way into
 * the IR: `kiln import` writes both; the other commands compile the text in memory. */

typedef struct OnnxBound {
    const char *name; /* a dim_param of the ONNX file, "batch" */
    int64_t bound;    /* its upper bound (--bound batch=8) */
} OnnxBound;

typedef struct OnnxOptions {
    int nbound;
    const OnnxBound *bounds;
    /* Graph inputs to take as constants where an op needs its operand at import time (a shape, axes,
     * a split): ONNX's node tests pass those as inputs. Data operands stay run-time inputs. */
    int nconst;
    const char *const *const_names; /* (nconst) ONNX input names */
    const HostTensor *const_values; /* (nconst) */
} OnnxOptions;

typedef struct OnnxModel {
    char *text;          /* the model file */
    int nweights;
    WTensor *weights;    /* (nweights) data owned by the OnnxModel */
    int ninput;
    char **input_onnx;   /* (ninput) the ONNX graph's inputs ... */
    char **input_var;    /* ... and the model file's input for each, NULL when none was needed */
} OnnxModel;

/* Reads an ONNX file and writes it in the model language; weights_name is the weights file the text
 * names. Every problem is an error naming the file (and the node, its op and what is missing);
 * returns NULL after any. */
OnnxModel *onnx_import(const char *path, const char *weights_name, const OnnxOptions *o, Diag *d);
void onnx_model_free(OnnxModel *m);
/* Writes the model file and (when there are weights) the weights file. Returns 0 on success. */
int onnx_write(const OnnxModel *m, const char *kiln_path, const char *weights_path, Diag *d);
/* Compiles an imported model in memory (weights through a temporary file, removed once mapped);
 * path names the ONNX file in errors. */
Graph *onnx_compile_model(const OnnxModel *m, const char *path, const FrontendOptions *fo, Diag *d);
/* Imports and compiles in memory. */
Graph *onnx_compile(const char *path, const OnnxOptions *oo, const FrontendOptions *fo, Diag *d);
/* Reads a serialised TensorProto (ONNX's test data, input_0.pb); data malloc'ed. Returns 0 on
 * success; otherwise reports one sentence naming the file. */
int onnx_read_tensor(const char *path, HostTensor *t, Diag *d);
/* Whether the importer writes this op of the default domain (any of the opsets it reads). */
int onnx_op_supported(const char *op);

/* ---------------------------------------------------------------- lower.c and builtins.c internals
 *
 * Lowering evaluates the syntax tree the way an interpreter would, except that tensors are IR nodes:
 * numbers fold at compile time, functions are inlined at each call, loops are unrolled, weight
 * paths (w.h[3].attn) are strings until used as tensors. A Value is what an expression evaluates to.
 */
typedef enum VKind {
    V_NONE,    /* the result of an expression that had an error: silently propagates */
    V_INT,     /* i */
    V_FLOAT,   /* f */
    V_BOOL,    /* i */
    V_STR,     /* s */
    V_DIM,     /* dim: a symbolic size such as T or T+1 */
    V_DTYPE,   /* i: a DType (the names f32, i32, ...) */
    V_TENSOR,  /* t */
    V_PATH,    /* s: a prefix of weight names, "h.3.attn" ("" for w itself) */
    V_TUPLE,   /* items[n] */
    V_FN,      /* fn: a user function (AST_FN) */
    V_BUILTIN, /* s: a builtin function's name */
} VKind;

typedef struct Value Value;
struct Value {
    VKind k;
    int64_t i;
    double f;
    Dim dim;
    const char *s;
    Node *t;
    Value *items;
    int n;
    const Ast *fn;
};

typedef struct Env Env;
typedef struct Lower Lower;

/* Arguments of a call: positional values, then keyword values. */
typedef struct Args {
    int n;
    Value *v;          /* (n) positional */
    SrcLoc *loc;       /* (n) where each was written */
    int nkw;
    const char **kw;   /* (nkw) names */
    Value *kv;         /* (nkw) values */
    SrcLoc *kwloc;     /* (nkw) */
    int *kwused;       /* (nkw) set when a builtin reads it, so unknown keywords are reported */
} Args;

/* lower.c: shared with builtins.c */
Graph *lower_graph(Lower *L);
Diag *lower_diag(Lower *L);
Node *lw_tensor(Lower *L, Value v, SrcLoc loc); /* a value as a tensor (weights resolved, numbers as scalars); NULL after an error */
Node *lw_scalar(Lower *L, DType dt, double v, SrcLoc loc);
Node *lw_cast(Lower *L, Node *x, DType dt, SrcLoc loc);
Node *lw_unary(Lower *L, Op op, Node *x, SrcLoc loc);
Node *lw_binary(Lower *L, Op op, Node *a, Node *b, SrcLoc loc);
Node *lw_matmul(Lower *L, Node *a, Node *b, SrcLoc loc);
Node *lw_reshape(Lower *L, Node *x, int rank, const Dim *shape, SrcLoc loc);
Node *lw_transpose(Lower *L, Node *x, const int *perm, SrcLoc loc);
Node *lw_slice(Lower *L, Node *x, int axis, Dim start, Dim end, SrcLoc loc);
Node *lw_concat(Lower *L, int n, Node **xs, int axis, SrcLoc loc);
Node *lw_gather(Lower *L, Node *table, Node *idx, int axis, SrcLoc loc);
Node *lw_expand(Lower *L, Node *x, int rank, const Dim *shape, SrcLoc loc);
/* n, or when an IR builder refused (n NULL) its reason as an error at the location of the input at
 * fault (ins[why->input], when ins is given) or at loc; returns n. */
Node *lw_built(Lower *L, Node *n, const IrWhy *why, SrcLoc loc, const SrcLoc *ins, int nins);
/* Normalises a possibly negative axis for a tensor of the given rank; -1 after an error. */
int lw_axis(Lower *L, int64_t axis, int rank, SrcLoc loc);
/* A value as a dimension (an integer or a symbolic size); 0 after an error. */
int lw_dim(Lower *L, Value v, SrcLoc loc, Dim *out);
const char *lw_value_kind(Value v);
Value v_none(void);
Value v_int(int64_t i);
Value v_float(double f);
Value v_tensor(Node *t);

/* builtins.c */
/* The builtin called `name` on args (for a method call the object is args->v[0]). */
Value builtin_call(Lower *L, const char *name, Args *args, SrcLoc loc);
int builtin_exists(const char *name);
/* Whether `name` is a method of tensors (x.reshape(...)) or a property (x.T, x.shape). */
int builtin_is_method(const char *name);
int builtin_is_property(const char *name);
Value builtin_property(Lower *L, Node *x, const char *name, SrcLoc loc);
/* Names of builtins closest to name, for "did you mean" notes. */
const char *builtin_closest(const char *name);

#endif
