/* ir.h: kiln's intermediate representation and the services every phase shares.
 *
 * The IR is a dataflow graph in SSA form. Each Node has an op from ops.def, a dtype, a shape (static
 * or symbolic: each dim linear in symbolic sizes with upper bounds, like P+T), its inputs, the attributes its op
 * uses, a name and the source location it came from. Graph.nodes is always in topological order: a
 * node's inputs come before it.
 *
 * Sections, by source file:
 *   arena.c   one bump allocator per compilation; nothing in the IR is freed on its own
 *   diag.c    diagnostics: file:line:col: error: message, the source line and a caret
 *   dtype     the dtype table (in graph.c)
 *   graph.c   nodes, graphs, dimensions and shapes
 *   build.c   shape and dtype inference (the one set of shape rules) and the typed node builders
 *   weights.c safetensors weights files (the st_ functions): memory-mapped, every header field checked
 *   print.c   the text form of a graph
 *   parse.c   reading the text form back
 *   verify.c  the verifier
 *   interp.c  the interpreter: the oracle every other part is tested against
 *   tokens.c  the interpreter's token merging and pruning ops (ToMe, PiToMe, EViT), one batch row at a time
 */
#ifndef KILN_IR_H
#define KILN_IR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "runtime/kiln_dtype.h"

#define KILN_VERSION "0.1.0"

/* Internal bugs fail loudly, with the compiler's own file and line, in release builds too. */
#define KILN_ASSERT(c) \
    ((c) ? (void)0 : kiln_panic(__FILE__, __LINE__, "assertion failed: %s", #c))
#define UNREACHABLE() kiln_panic(__FILE__, __LINE__, "unreachable")
_Noreturn void kiln_panic(const char *file, int line, const char *fmt, ...);

enum {
    IR_MAX_RANK = 8,  /* most dimensions a tensor may have */
    IR_MAX_SYMS = 16, /* most symbolic sizes a graph may have */
    DIM_TERMS = 4,
    IR_DIM_STR = 256, /* a buffer dim_str fills (see there) */    /* most symbolic sizes one dimension may use (P+T needs 2) */
};

/* ---------------------------------------------------------------- arena.c */

typedef struct Arena Arena;
Arena *arena_new(void);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t n); /* zeroed, aligned to 64 bytes */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- diag.c */

/* A position in a source file: file is an index into the Diag's file table (0 when unknown),
 * line and col count from 1; line 0 means "no position". */
typedef struct SrcLoc {
    int file;
    int line;
    int col;
} SrcLoc;

typedef struct Diag Diag;
Diag *diag_new(FILE *out);
void diag_free(Diag *d);
/* Registers a source file so errors can quote its lines; returns its index for SrcLoc.file.
 * text is copied; it may be NULL (no quoting). */
int diag_add_file(Diag *d, const char *path, const char *text);
const char *diag_file_path(const Diag *d, int file);
/* file:line:col: error: message, then the source line and a caret under the column. */
void diag_error(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void diag_verror(Diag *d, SrcLoc loc, const char *fmt, va_list ap);
/* file:line:col: note: message (no count). */
void diag_note(Diag *d, SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An error without a source position: "kiln: error: message" (message names the file itself). */
void diag_fatal(Diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int diag_errors(const Diag *d);
/* Edit distance between two names, for "did you mean" suggestions. */
int diag_distance(const char *a, const char *b);
/* Stop adding to the count after this many errors (default 50). */
void diag_set_max(Diag *d, int max);
/* The whole of a text file (a pipe too), NUL-terminated, malloc'ed. NULL when it cannot be read or
 * holds a NUL byte, with "cannot open WHAT 'path': reason" or "WHAT 'path' contains a NUL byte" as a
 * fatal error in d (nothing when d is NULL). */
char *diag_read_text(Diag *d, const char *path, const char *what);

/* ---------------------------------------------------------------- dtypes */

/* The dtypes are the rows of KILN_DTYPES (runtime/kiln_dtype.h), which the runtime shares: DT_X here
 * and RT_X there are the same code. */
typedef enum DType {
#define X(e, ...) DT_##e,
    KILN_DTYPES(X)
#undef X
    DT_COUNT
} DType;

/* name, size (bytes per element), block and block_bytes (packed types), is_float, is_int, is_signed,
 * npy (NumPy descr or NULL), numpy (NumPy's name or NULL): see kiln_dtype.h. */
typedef KilnDTypeInfo DTypeTraits;

extern const DTypeTraits dtype_traits[DT_COUNT];
/* Looks a dtype up by its kiln name ("f32"); returns -1 when unknown. */
int dtype_from_name(const char *name);
/* ... by its NumPy descr ("<f4"); -1 when unknown. */
int dtype_from_npy(const char *descr);
/* Element conversions through double (the interpreter's working type). */
double dtype_load(DType t, const void *p, size_t i);
void dtype_store(DType t, void *p, size_t i, double v);
/* Bytes of n elements of dtype t (whole blocks for the packed types): kiln_dtype_bytes. */
int64_t dtype_bytes(DType t, int64_t n);
/* Rounds v to what dtype t can hold (f32 rounding, f16, bf16, integer wrap, bool 0/1). */
double dtype_round(DType t, double v);

/* ---------------------------------------------------------------- ops */

enum {
    F_NONE = 0,
    F_SOURCE = 1 << 0, /* no inputs */
    F_EW = 1 << 1,     /* elementwise (broadcasting) */
    F_RED = 1 << 2,    /* reduction over one axis */
    F_MOVE = 1 << 3,   /* moves data without arithmetic */
    F_COMM = 1 << 4,   /* commutative binary op */
    F_CMP = 1 << 5,    /* comparison: result is bool */
    F_FUSED = 1 << 6,  /* made by a pass, not by the frontend */
};

/* Attributes: one row each in attrs.def. AI_X is the attribute's index in that table, A_X its bit in
 * ops.def's attrs column; A_RANGE, A_CONV and A_ATTN name the groups ops take together. */
typedef enum AttrIndex {
#define ATTR(e, field, kind, req, names) AI_##e,
#include "attrs.def"
#undef ATTR
    AI_COUNT
} AttrIndex;

enum {
    A_NONE = 0,
#define ATTR(e, field, kind, req, names) A_##e = 1 << AI_##e,
#include "attrs.def"
#undef ATTR
    A_RANGE = A_START | A_END,
    A_CONV = A_STRIDE | A_PAD,
    A_ATTN = A_SCALE | A_CAUSAL | A_SCORES,
};

/* The values of a gather's attribute check (attrs.def), in its order. */
enum { CHECK_NONE, CHECK_PREFILL, CHECK_BUDGET, CHECK_POSITIONS };

/* The attribute kinds of attrs.def. */
typedef enum AttrKind { AK_INT, AK_BOOL, AK_ENUM, AK_PERM, AK_DIM, AK_F64, AK_INT2, AK_DATA } AttrKind;

typedef struct AttrInfo {
    const char *name;   /* the field's name, as in the text form */
    AttrKind kind;
    int required;       /* the text form must give it when the op uses it */
    const char *names;  /* ENUM: value names separated by '|', value 0 first */
    size_t offset;      /* offsetof(Attrs, field) */
} AttrInfo;

extern const AttrInfo attr_info[AI_COUNT];

typedef enum Op {
#define OP(e, name, min_in, max_in, flags, attrs) OP_##e,
#include "ops.def"
#undef OP
    OP_COUNT
} Op;

typedef struct OpInfo {
    const char *name; /* text name, as in the IR text form */
    int min_in;       /* fewest inputs */
    int max_in;       /* most inputs, -1: no limit */
    int flags;        /* F_* */
    int attrs;        /* A_* */
} OpInfo;

extern const OpInfo op_info[OP_COUNT];
int op_from_name(const char *name); /* -1 when unknown */

/* ---------------------------------------------------------------- graph.c */

/* A dimension: b + a[0]*S0 + ... + a[n-1]*S(n-1), a linear expression in at most DIM_TERMS of the
 * symbolic sizes Graph.syms (P+T, T-1, 2*T+P, 768). Always canonical: symbols in ascending order, no
 * zero coefficient, unused slots zero; read and made only through the dim_ functions (graph.c). */
typedef struct Dim {
    int n;                  /* number of symbolic terms; 0: a constant */
    int sym[DIM_TERMS];     /* (n) indices into Graph.syms, ascending */
    int64_t a[DIM_TERMS];   /* (n) their coefficients, never 0 */
    int64_t b;              /* constant term */
} Dim;

typedef struct Sym {
    const char *name; /* as declared: "T" */
    int64_t bound;    /* the largest value allowed (`where T <= 256`) */
} Sym;

/* The C type of each attribute kind: AK_DECL_KIND(field) declares the member. */
#define AK_DECL_INT(f) int f;
#define AK_DECL_BOOL(f) int f;
#define AK_DECL_ENUM(f) int f;
#define AK_DECL_PERM(f) int f[IR_MAX_RANK];
#define AK_DECL_DIM(f) Dim f;
#define AK_DECL_F64(f) double f;
#define AK_DECL_INT2(f) int f[2];
#define AK_DECL_DATA(f) const void *f;

/* A node's attributes: one member per row of attrs.def (the comments there say what each means);
 * a node uses those its op's attrs column names, the rest stay zero. */
typedef struct Attrs {
#define ATTR(e, field, kind, req, names) AK_DECL_##kind(field)
#include "attrs.def"
#undef ATTR
} Attrs;

typedef struct Node Node;
struct Node {
    int id;                 /* index in Graph.nodes; the text form prints %id */
    Op op;
    DType dtype;
    int rank;
    Dim shape[IR_MAX_RANK]; /* (rank) */
    int nin;
    Node **in;              /* (nin) inputs, all earlier in Graph.nodes */
    Attrs at;
    const char *name;       /* INPUT: input name; WEIGHT: tensor name; else NULL */
    int inl;                /* computed inside the loop of its one consumer, never stored (set by
                               fuse-ops; printed as the attribute `inline`): an elementwise node
                               whose consumer is elementwise, or a matmul whose elementwise consumers
                               run as its epilogue. The value is the same; only where it is computed
                               changes. */
    SrcLoc loc;             /* where in the model file it came from */
    SrcLoc text;            /* its line in the IR text it was read from (ir_parse), else line 0: where
                               the verifier points when loc has no line (a node without `@`) */
    const char *scope;      /* which part of the model made it: the weight path of the function call
                               it was made in ("h.3.attn"; a call without a path argument adds the
                               function's name to the caller's scope), NULL at the top level */
    int layer;              /* the iteration of the model file's outermost loop that made it (the
                               layer index of `for l in 0..L`), -1 outside loops */
    int64_t arena;          /* plan-memory: byte offset of its buffer in the activation arena, -1 when it
                               has none (valid while Graph.planned) */
    int inplace;            /* plan-memory: its buffer is that of one of the values it reads */
    int entry;              /* INPUT: the entry it belongs to (index in Graph.entries; 0 without) */
};

typedef struct Output {
    const char *name;       /* the output's name; for a state update, the state's name */
    Node *node;
    int entry;              /* the entry it belongs to (index in Graph.entries; 0 without) */
    int update;             /* a state update: the state holds node's value after the call */
} Output;

/* A persistent tensor of the model (a KV cache, a position counter): it survives between calls,
 * is zero when the model is opened and after a reset, and has a static shape. See ir/entry.c. */
typedef struct StateDecl {
    const char *name;
    DType dtype;
    int rank;
    Dim shape[IR_MAX_RANK]; /* (rank) constants */
} StateDecl;

/* An entry point (prefill, decode): its inputs are the INPUT nodes whose Node.entry is its index,
 * its outputs and state updates the Outputs whose Output.entry is. */
typedef struct Entry {
    const char *name;
} Entry;

typedef struct Weights Weights; /* ir/weights.c */

typedef struct Graph {
    Arena *arena;             /* owns every node, string and shape of the graph */
    const char *model;        /* model name */
    const char *source;       /* path of the model file, or NULL */
    const char *weights_path; /* path of the weights file, or NULL */
    Weights *weights;         /* the opened weights file (not owned), or NULL */
    const char *vocab;        /* a language model's characters by token id, from the weights file's
                                 metadata key "vocab" (inside the mapping), or NULL */
    int nsym;
    Sym syms[IR_MAX_SYMS];
    int nnode, capnode;
    Node **nodes;             /* (nnode) in topological order */
    int ninput, capinput;
    Node **inputs;            /* (ninput) INPUT nodes in declaration order */
    int noutput, capoutput;
    Output *outputs;          /* (noutput) in declaration order */
    int nstate, capstate;
    StateDecl *states;        /* (nstate) in declaration order */
    int nentry, capentry;
    Entry *entries;           /* (nentry) entry points; none: one entry "run" with every input and
                                 output and no state updates (the classic graph) */
    int planned;              /* plan-memory ran after the last change: Node.arena and arena_bytes hold */
    const char *scope;        /* the scope and layer ir_node gives the nodes it makes from now on: */
    int layer;                /* lowering sets them per call and loop iteration, passes with ir_set_origin */
    int64_t arena_bytes;      /* the activation arena, every symbol at its bound */
} Graph;

Graph *ir_graph_new(void);
void ir_graph_free(Graph *g);
/* Appends a node with the given op, dtype, shape and inputs; attributes are zero; scope and layer are
 * the graph's current ones (g->scope, g->layer). */
Node *ir_node(Graph *g, Op op, DType dt, int rank, const Dim *shape, int nin, Node *const *in,
              SrcLoc loc);
/* Returns the index of the symbol, adding it when new; -1 when the table is full. */
int ir_sym(Graph *g, const char *name, int64_t bound);
void ir_add_output(Graph *g, const char *name, Node *n);
/* Nodes made from now on get from's scope and layer (none when from is NULL): a pass calls it with
 * the node it is about to replace, so that what replaces it stays in the same layer and scope. */
void ir_set_origin(Graph *g, const Node *from);
/* The layer n was made in, -1 when none. */
int ir_layer_of(const Node *n);
/* 1 + the largest layer of any node of g; 0 when no node has one. */
int ir_layer_count(const Graph *g);
/* The nodes of layer l in graph order (malloc'ed, *count entries; NULL when none). */
Node **ir_layer_nodes(const Graph *g, int l, int *count);
/* Whether n's scope is scope or inside it: "h.3.attn" is in "h.3" and in "h.3.attn", not in "h.30". */
int ir_in_scope(const Node *n, const char *scope);
/* Renumbers the nodes after a pass has edited g->nodes; removes nodes no output depends on. */
void ir_compact(Graph *g);
/* Makes every user of old (and every output naming it) use new_ instead. */
void ir_replace_uses(Graph *g, Node *old, Node *new_);
/* Restores topological order after a pass appended nodes that earlier nodes use (stable: an ordered
 * graph is unchanged); renumbers. */
void ir_toposort(Graph *g);
/* The one decision "matmul n's right operand is packed for the GEMM at compile time", asked by
 * plan-memory (what only the packing reads is folded), codegen's plan (the packed copy in the blob)
 * and gemm.c (the kernel reads panels): the float WEIGHT or CONST (with data) it reads through
 * reshapes, at most one cast to f32 (an f16 or bf16 weight is converted once, when packed) and at
 * most one 2-D transpose (then *trans is set: the data is [N, K]); NULL when n is not an f32 matmul
 * with a static, non-empty 2-D operand of that kind. */
const Node *ir_packed_rhs(const Node *n, int *trans);
/* Whether x is a product fuse-ops may compute inline under an elementwise root, which its kernel then
 * runs as an epilogue: a matmul or a qmatmul (fuse_loops.c decides which; the verifier, plan-memory
 * and the code generator ask this). */
static inline int ir_is_product(const Node *x)
{
    return x->op == OP_MATMUL || x->op == OP_QMATMUL;
}
/* Whether attribute ai (AI_*) of a and b is equal, as attrs.def's kind of it compares. */
int ir_attr_eq(const Node *a, const Node *b, int ai);
/* Whether a and b have one op and equal values for every attribute that op uses: what makes two
 * nodes on the same inputs compute the same thing (common subexpressions). */
int ir_same_attrs(const Node *a, const Node *b);
/* The element count of n's shape when it is static, else -1 (also on overflow). */
int64_t ir_static_numel(const Node *n);
/* Whether a and b have the same rank and dims (dtypes aside). */
int ir_same_shape(const Node *a, const Node *b);
/* uses[i]: how many inputs of other nodes, and outputs, name node i (malloc'ed, g->nnode entries;
 * a node reading x twice counts twice). Renumbers the nodes by position first. */
int *ir_use_counts(Graph *g);
/* The most bytes n can take: each dimension at its largest (a dimension may shrink as a symbol
 * grows, like 40 - T, so "every symbol at its bound" is not always the largest). */
int64_t ir_bytes_at_bound(const Graph *g, const Node *n);

/* Dims are read and made only through these functions (graph.c): no other file touches the fields. */
Dim dim_const(int64_t v);
Dim dim_sym(int sym);
int dim_is_const(Dim d);
/* The constant term of d: its value when dim_is_const(d). */
int64_t dim_value(Dim d);
/* The symbolic terms of d (0 for a constant); term i's symbol, in ascending order of symbols, and
 * its coefficient (never 0) in *coef when coef is not NULL. */
int dim_nterms(Dim d);
int dim_term(Dim d, int i, int64_t *coef);
/* The coefficient of symbol sym in d; 0 when d does not use it. */
int64_t dim_coef(Dim d, int sym);
/* Whether d is coef * S + off for exactly one symbol S: then 1 and the three parts (each pointer
 * may be NULL). */
int dim_sym1(Dim d, int *sym, int64_t *coef, int64_t *off);
/* Whether d is exactly the symbol sym (sym < 0: any one symbol), as the declaration `x: i32[T]` gives. */
int dim_is_sym(Dim d, int sym);
Dim dim_add_const(Dim d, int64_t k);
Dim dim_mul_const(Dim d, int64_t k);
/* Whether every symbol d uses is one of g's. */
int dim_in_graph(const Graph *g, Dim d);
/* A hash of d's value as an expression (equal dims hash equally). */
uint64_t dim_hash(Dim d);
int dim_eq(Dim x, Dim y);
/* The value of d given the symbols' values (vals[sym]). */
int64_t dim_eval(Dim d, const int64_t *vals);
/* The largest value of d: each symbol at 1 or at its bound, whichever makes its term larger (the
 * symbols vary independently, so this value is reached). */
int64_t dim_max(const Graph *g, Dim d);
/* The smallest value of d, likewise. */
int64_t dim_min(const Graph *g, Dim d);
/* Arithmetic; each returns 0 when the result is not linear (a product of two symbolic dims), needs more
 * than DIM_TERMS symbols or overflows 64 bits (then *out is unchanged). */
int dim_add(Dim x, Dim y, Dim *out);
int dim_sub(Dim x, Dim y, Dim *out);
int dim_mul(Dim x, Dim y, Dim *out);
int dim_div(Dim x, Dim y, Dim *out); /* exact division only */
/* Writes "T", "2*T+1", "P+T-1", "768" into buf (symbols in index order; IR_DIM_STR bytes hold any
 * dim of symbols with names up to 48 characters). */
const char *dim_str(const Graph *g, Dim d, char *buf, size_t n);
/* Writes "f32[T, 768]" into buf. */
const char *type_str(const Graph *g, DType dt, int rank, const Dim *shape, char *buf, size_t n);
const char *node_type_str(const Graph *g, const Node *n, char *buf, size_t n_);
/* Whether two shapes have the same number of elements for every value of the symbols. */
int shape_numel_eq(const Graph *g, int ra, const Dim *a, int rb, const Dim *b);
/* Number of elements at the given symbol values. */
int64_t shape_numel(int rank, const Dim *shape, const int64_t *vals);
/* NumPy broadcasting of two shapes; 0 when they do not broadcast. */
int shape_broadcast(int ra, const Dim *a, int rb, const Dim *b, int *rout, Dim *out);

/* ---------------------------------------------------------------- build.c */

/* A node's type, as shape and dtype inference computes it. */
typedef struct IrType {
    DType dtype;
    int rank;
    Dim shape[IR_MAX_RANK]; /* (rank) */
} IrType;

/* Why inference refused a node: a sentence without a location, which the caller turns into its own
 * diagnostic, and the input at fault (an index into the inputs, -1 when none in particular). */
typedef struct IrWhy {
    int input;
    char msg[640];
} IrWhy;

/* The type a node of op with these inputs and attributes has (at may be NULL: all zero). For the ops
 * whose type is the caller's choice, *t holds it on entry and is checked, not computed: the dtype of
 * a cast, the shape of a reshape or an expand, dtype and shape of a source. Returns 1, or 0 with
 * *why filled (why may be NULL). The verifier compares each node's type with this. */
int ir_infer(const Graph *g, Op op, const Attrs *at, int nin, Node *const *in, IrType *t, IrWhy *why);
int ir_same_type(const IrType *a, const IrType *b);
IrType ir_type_of(const Node *n);
/* x <= y for every value of the symbols. */
int dim_le(const Graph *g, Dim x, Dim y);

/* Builders: infer the result type, append the node, set its attributes. When the inputs do not fit
 * they return NULL with *why filled; with why == NULL a misfit is an internal error (kiln_panic), which
 * is what passes want. No implicit conversion: operands must already have one dtype. */
Node *ir_build(Graph *g, Op op, const Attrs *at, int nin, Node *const *in, const IrType *given, SrcLoc loc,
               IrWhy *why);
Node *ir_unary(Graph *g, Op op, Node *x, SrcLoc loc, IrWhy *why); /* not cast or gelu */
Node *ir_gelu(Graph *g, Node *x, int approx, SrcLoc loc, IrWhy *why);
Node *ir_cast(Graph *g, Node *x, DType dt, SrcLoc loc);
Node *ir_binary(Graph *g, Op op, Node *a, Node *b, SrcLoc loc, IrWhy *why);
Node *ir_where(Graph *g, Node *cond, Node *a, Node *b, SrcLoc loc, IrWhy *why);
Node *ir_reduce(Graph *g, Op op, Node *x, int axis, int keepdims, SrcLoc loc, IrWhy *why);
Node *ir_softmax(Graph *g, Op op, Node *x, int axis, SrcLoc loc, IrWhy *why); /* softmax, log_softmax */
Node *ir_norm(Graph *g, Op op, Node *x, Node *gamma, Node *beta, double eps, SrcLoc loc,
              IrWhy *why); /* layernorm (beta), rmsnorm (beta NULL) */
Node *ir_matmul(Graph *g, Node *a, Node *b, SrcLoc loc, IrWhy *why);
Node *ir_conv2d(Graph *g, Node *x, Node *w, Node *bias, int stride, int pad, SrcLoc loc, IrWhy *why);
Node *ir_reshape(Graph *g, Node *x, int rank, const Dim *shape, SrcLoc loc, IrWhy *why);
Node *ir_expand(Graph *g, Node *x, int rank, const Dim *shape, SrcLoc loc, IrWhy *why);
Node *ir_transpose(Graph *g, Node *x, const int *perm, SrcLoc loc, IrWhy *why); /* perm: x->rank entries */
Node *ir_slice(Graph *g, Node *x, int axis, Dim start, Dim end, SrcLoc loc, IrWhy *why);
Node *ir_concat(Graph *g, int n, Node *const *xs, int axis, SrcLoc loc, IrWhy *why);
Node *ir_gather(Graph *g, Node *table, Node *idx, int axis, SrcLoc loc, IrWhy *why);
Node *ir_attention(Graph *g, Node *q, Node *k, Node *v, Node *mask, double scale, int causal, SrcLoc loc,
                   IrWhy *why);
/* A constant of a static shape over data (not copied), and a scalar one (data in g's arena). */
Node *ir_const(Graph *g, DType dt, int rank, const Dim *shape, const void *data, SrcLoc loc);
Node *ir_scalar(Graph *g, DType dt, double v, SrcLoc loc);
/* input, weight, arange, causal_mask: the caller sets name and data. */
Node *ir_source(Graph *g, Op op, DType dt, int rank, const Dim *shape, SrcLoc loc);
/* ---------------------------------------------------------------- entry.c
 *
 * State and several entry points. A graph with entries has one node list for all of them (weights
 * and common subexpressions are shared); each entry computes the nodes its outputs and updates need,
 * in graph order. Inputs and outputs added after ir_add_entry belong to that entry. */

/* Declares a state (zero at open and reset); returns its index, or -1 when the name is taken. */
int ir_add_state(Graph *g, const char *name, DType dt, int rank, const Dim *shape);
int ir_find_state(const Graph *g, const char *name); /* -1 when none */
/* Adds an entry and makes it the one later inputs and outputs belong to; returns its index, or -1
 * when the name is taken. */
int ir_add_entry(Graph *g, const char *name);
int ir_find_entry(const Graph *g, const char *name); /* -1 when none */
/* The state named state holds n's value after a call of the current entry. */
void ir_add_update(Graph *g, const char *state, Node *n);
/* The number of entries: 1 for a graph without declared entries. */
int ir_nentries(const Graph *g);
const char *ir_entry_name(const Graph *g, int e); /* "run" without declared entries */
/* need[i] = 1 when entry e computes node i (its outputs and updates depend on it, or it is one of
 * its inputs); malloc'ed, g->nnode entries; renumbers the nodes by position first. */
unsigned char *ir_entry_needs(Graph *g, int e);
/* The entry's inputs (as ordered in g->inputs) and outputs and updates (as ordered in g->outputs):
 * each writes the indices into g->inputs / g->outputs to ix (room for g->ninput / g->noutput) and
 * returns the count. */
int ir_entry_inputs(const Graph *g, int e, int *ix);
int ir_entry_outputs(const Graph *g, int e, int update, int *ix);
/* Bytes of each state 64-byte aligned, in declaration order (offsets into one state buffer); the
 * offset of state s is written to *off when not NULL. */
int64_t ir_state_bytes(const Graph *g, int s, int64_t *off);
int64_t ir_states_bytes(const Graph *g);

/* ---------------------------------------------------------------- weights.c */

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

/* ---------------------------------------------------------------- print.c */

/* The text form: a header (model, weights, symbols, inputs), one line per node, the outputs. */
void ir_print(FILE *f, const Graph *g);
void ir_print_node(FILE *f, const Graph *g, const Node *n);

/* ---------------------------------------------------------------- cost.c */

/* The FLOPs of node n at the symbol values vals: a multiply-add is 2, an elementwise op 1 per
 * element; movement, casts and sources 0. */
double ir_node_flops(const Node *n, const int64_t *vals);

/* ---------------------------------------------------------------- dot.c */

/* The graph for Graphviz: nodes coloured by op family, each edge labelled with its type and size at
 * the symbols' bounds, what fuse-ops computes in one loop (a stored node and its inline nodes) drawn
 * as one cluster. Renumbers the nodes by position. */
void ir_print_dot(FILE *f, const Graph *g);

/* ---------------------------------------------------------------- parse.c */

/* Reads the text form. Errors go to d with their positions in the text; weights named by the
 * header are opened (weights_override, when not NULL, replaces the header's path).
 * Returns NULL after errors. */
Graph *ir_parse(const char *path, const char *text, const char *weights_override, Diag *d);

/* ---------------------------------------------------------------- verify.c */

/* Checks topological order, arities, dtypes, shapes and attributes of every node. Reports each
 * problem through d (naming the node) and returns the number found. */
int ir_verify(const Graph *g, Diag *d);

/* ---------------------------------------------------------------- interp.c */

/* A tensor in the host's memory: data holds numel elements of dtype, C order. */
typedef struct HostTensor {
    DType dtype;
    int rank;
    int64_t shape[IR_MAX_RANK];
    void *data;
} HostTensor;

/* Binds the symbolic sizes from the inputs' actual shapes (vals[sym]); checks dtypes, ranks, static
 * sizes and bounds. Errors name the input and what was expected. Returns 0 on success. */
int ir_bind_inputs(const Graph *g, const HostTensor *inputs, int64_t *vals, Diag *d);

/* Runs g on inputs (one per g->inputs, same order). On success fills outputs (one per g->outputs;
 * data is malloc'ed, free with free()) and returns 0. Plain loops accumulating in double, rounding
 * to each node's dtype after it is computed. */
int ir_interp(const Graph *g, const HostTensor *inputs, HostTensor *outputs, Diag *d);

/* One elementwise op (F_EW) on one element: the single definition of what each op computes, which
 * the interpreter runs and every constant folder calls, so that folding never gives a value the graph
 * would not (relu(NaN) is NaN, maximum with a NaN is NaN, -0 keeps its sign). x holds nin values (for
 * where: the condition, then the two values); at may be NULL (gelu's erf form); dt is the node's dtype:
 * an integer DIV truncates toward zero and gives 0 when dividing by zero. The result is not yet
 * rounded to dt (dtype_round does that). Comparisons give 0 or 1; cast gives x. */
double ir_eval_scalar(Op op, const Attrs *at, DType dt, int nin, const double *x);

/* The values of a graph's states between calls (ir_interp_entry). */
typedef struct IrState IrState;
IrState *ir_state_new(const Graph *g); /* every state zero */
void ir_state_reset(IrState *s);        /* every state zero again */
void ir_state_free(IrState *s);
/* The current value of state i: its bytes, in the state's dtype and shape. */
void *ir_state_data(IrState *s, int i);
/* Runs entry e (ir_find_entry) of g with state st: inputs are the entry's (ir_entry_inputs order),
 * outputs receive the entry's outputs (ir_entry_outputs order, data malloc'ed); then each state the
 * entry updates takes its new value. On an error nothing in st changes. Returns 0 on success. */
int ir_interp_entry(const Graph *g, int e, IrState *st, const HostTensor *inputs, HostTensor *outputs,
                    Diag *d);
/* ---------------------------------------------------------------- tokens.c
 *
 * One batch row each, in double; token destinations are stored as doubles (the interpreter's values). */

/* dest[T]: tome_match of metric m[T, C] (r merged, cls: token 0 protected). -1 when out of memory. */
int ir_tome_match_row(const double *m, int64_t T, int64_t C, int64_t r, int cls, double *dest);
/* dest[T]: pitome_match of metric m[T, C] (r merged, cls: token 0 protected, margin of the energy, bsm:
 * ToMe's matching between the even and odd energy ranks). -1 when out of memory. */
int ir_pitome_match_row(const double *m, int64_t T, int64_t C, int64_t r, int cls, double margin, int bsm,
                        double *dest);
/* y[T2, D]: token_merge of x[T, D] by dest[T] with weights w[T] (NULL: ones); mean divides by the
 * weights' sums. wsum: T2 doubles of scratch. */
void ir_token_merge_row(const double *x, const double *dest, const double *w, int64_t T, int64_t D, int64_t T2,
                        int mean, double *y, double *wsum);
/* y[Tk]: softmax(q . k[j] * scale) for one query q[d] over keys k[Tk, d]. */
void ir_cls_attn_row(const double *q, const double *k, int64_t Tk, int64_t d, double scale, double *y);
/* dest[T]: evit_select of attention a[T] (a[0], the [CLS] token's, ignored). -1 when out of memory. */
int ir_evit_select_row(const double *a, int64_t T, int64_t keep, double *dest);

/* ---------------------------------------------------------------- quant.c */

/* The range of a quantized dtype (i8, u8, i4, u4); 0 for other dtypes. */
int ir_quant_range(DType t, int *lo, int *hi);
/* One element, as quant.c's header defines: clamp(rint(x / s) + z, lo, hi); z when s == 0 or x / s is NaN. */
float ir_quantize1(float x, float s, float z, int lo, int hi);
float ir_dequantize1(float q, float s, float z);
/* Whether a qmatmul quantizes its activations to i8 (W8A8): per row at run time (dynamic) or with
 * the fixed scale ascale (static); then this is the scale sa of a static one, else 0. */
int ir_qmm_w8a8(const Node *n);
float ir_qmm_static_scale(const Node *n);
/* Scales (and zero points, when zero is not NULL and t is unsigned) for a weight w[K, N] quantized to t
 * in groups of `group` along K (0: one per column): symmetric max|w| / hi for i8 and i4, (max - min) / hi
 * with z = quantize(-min) for u8 and u4. scale and zero hold ceil(K / group) (or 1) rows of N. */
void ir_quant_scales(const float *w, int64_t K, int64_t N, int group, DType t, float *scale, float *zero);
/* Shape and dtype inference for quantize, dequantize and qmatmul (ir_infer's rule; t->dtype is the
 * caller's for quantize): 1, or 0 with the reason in msg. */
int ir_quant_infer(const Graph *g, Op op, const Attrs *at, int nin, Node *const *in, IrType *t, char *msg,
                   size_t len);
/* Whether an op may read (as input j) or make values of a packed dtype: only the quantization ops,
 * reshape and the sources; 0 with the reason in msg otherwise. */
int ir_quant_packed_ok(Op op, int nin, Node *const *in, DType out, char *msg, size_t len);
/* The interpreter's rule: shape[0] is n's concrete shape, shape[1 + j] and in[j] input j's shape and
 * values. 0, or -1 with the problem in err. */
int ir_quant_eval(const Node *n, const int64_t *const *shape, const double *const *in, double *y, char *err,
                  size_t len);

#endif
