/* onnx.h: what onnx.c (the reader and the writer of the model text) shares with the op handlers
 * (onnx_ops.c and the files of handlers it names, one handler per ONNX op). Private to those files.
 *
 * Every ONNX value (a graph input, an initializer, a node output) is an OVal: its dtype and shape as
 * the importer infers them, and either its data, when it is known at import time (initializers,
 * Constant nodes, and what shape subgraphs compute from them: folded here, never emitted), or the
 * model-file variable that holds it at run time. A constant that a run-time op reads is written to
 * the weights file and bound to its variable once (`c = w.c`).
 */
#ifndef KILN_ONNX_H
#define KILN_ONNX_H

#include "frontend/frontend.h"
#include "onnx.pb-c.h"

typedef struct OVal {
    const char *name;   /* ONNX name */
    const char *var;    /* model-file variable, NULL until the value exists at run time */
    int odt;            /* ONNX elem type */
    int dt;             /* kiln DType, -1 when kiln has none for odt */
    int rank;
    int64_t dims[IR_MAX_RANK];       /* (rank) static sizes; for a symbolic one, its bound */
    const char *sym[IR_MAX_RANK];    /* (rank) the symbolic size's name, or NULL */
    int is_const;       /* data holds the value */
    void *data;         /* numel elements of dt (is_const) */
    int graph_input;    /* index among the graph's inputs + 1, or 0 */
    int failed;         /* made by a node that had an error: later uses are not reported again */
    const char **esym;  /* (numel) of an integer constant: the symbolic size an element stands for
                           (Shape of a symbolic dimension; data holds its bound), or NULL per element;
                           NULL when no element is symbolic */
} OVal;

typedef struct Imp {
    const char *path;       /* the ONNX file */
    const char *dir;        /* its directory, for external data */
    Diag *d;
    Arena *a;
    const OnnxOptions *o;
    int opset;              /* of the default domain */
    OVal **vals;            /* every value, by name (hash table, open addressing) */
    int capvals, nvals;
    char *body;             /* the computation, in order */
    size_t nbody, capbody;
    const char **names;     /* every variable and weight name in use (hash table) */
    int capnames, nnames;
    WTensor *w;             /* weights to write */
    int nw, capw;
    const Onnx__NodeProto *node; /* the node being written, for errors */
    int errors;
    int internal;           /* ox_fresh: the hint is the writer's own (t_..., c_...) */
    int nparams;            /* the dim_params of the graph's inputs seen so far ... */
    const char *params[IR_MAX_SYMS];     /* (nparams) ... as ONNX names them ... */
    const char *param_syms[IR_MAX_SYMS]; /* (nparams) ... and the symbol each is in the model text */
} Imp;

/* onnx.c: services for the handlers */
int ox_err(Imp *I, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ox_emit(Imp *I, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t ox_numel(const OVal *v);
/* The value as a run-time tensor: its variable, after writing a constant to the weights file. */
const char *ox_tensor(Imp *I, OVal *v);
/* Constant operands: NULL with an error naming what when v is not known at import time (a graph
 * input listed in OnnxOptions.const_names becomes a constant here). */
OVal *ox_const(Imp *I, OVal *v, const char *what);
int64_t ox_int(const OVal *v, int64_t i);
double ox_f(const OVal *v, int64_t i);
/* Sets v's type; returns v. */
OVal *ox_type(OVal *v, int dt, int rank, const int64_t *dims, const char *const *sym);
/* Gives v data (allocated here, zeroed, numel of its shape) and makes it a constant. */
void *ox_alloc(Imp *I, OVal *v);
/* v = EXPR: gives v its variable and writes the assignment. */
void ox_assign(Imp *I, OVal *v, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A dimension as model text: "T" or "768". */
const char *ox_dim(Imp *I, const OVal *v, int i);
/* "f32[T, 768]" */
const char *ox_type_str(Imp *I, const OVal *v);
/* A number as model text (a float literal when dt is a float dtype: "2.0", "-inf"). */
const char *ox_num(Imp *I, double x, int dt);
/* Fills v from a TensorProto (raw, typed or external data); what names it in errors. */
int ox_tensor_data(Imp *I, const Onnx__TensorProto *t, OVal *v, const char *what);
int ox_onnx_dtype(int onnx_elem_type); /* kiln DType or -1 */
const char *ox_onnx_dtype_name(int onnx_elem_type);
/* A fresh variable name based on hint (an ONNX name; ox_temp: the writer's own, t_...). */
const char *ox_temp(Imp *I, const char *hint);
const char *ox_fresh(Imp *I, const char *hint);

/* The value named name (an initializer, a graph input or an earlier node's output), or NULL. */
OVal *ox_value(Imp *I, const char *name);

/* onnx_quant.c: ONNX Runtime's dynamically quantized MatMuls (DynamicQuantizeLinear, MatMulInteger,
 * Cast, Mul by the scales), written as one qmatmul each */
typedef struct OxQmm OxQmm;
/* Finds them in g once its initializers are read; NULL when there is none. */
OxQmm *ox_qmm_find(Imp *I, const Onnx__GraphProto *g);
/* What to do with node k: 0 write it as usual, 1 skip it (in a pattern, read by nothing else), 2 it
 * ends a pattern: ox_qmm_write writes the pattern into out (node k's output). */
int ox_qmm_role(const OxQmm *q, size_t k);
int ox_qmm_write(Imp *I, const OxQmm *q, size_t k, OVal *out);

/* onnx_ops.c: the lookup, and what the handlers share */
typedef int (*OxHandler)(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, OVal **out, int nout);
/* The version of op's definition that opset selects (the newest since_version <= opset): 0 when the
 * op is not defined at that opset, -1 when kiln has no version history for it (no handler). */
int ox_op_version(const char *op, int opset);
/* The oldest opset whose definitions the handlers implement; older models are read op by op. */
enum { KILN_ONNX_OPSET_LOW = 6 };
/* The handler of an op of the default domain, NULL when kiln has none. */
OxHandler ox_handler(const char *op);
/* An op's handler; each file of handlers has a table of its ops, ended by {NULL, NULL}. */
typedef struct OxOp {
    const char *name; /* the ONNX op, "MatMul" */
    OxHandler fn;
} OxOp;
extern const OxOp ox_math_ops[];  /* onnx_math.c */
extern const OxOp ox_shape_ops[]; /* onnx_shape.c */
extern const OxOp ox_nn_ops[];    /* onnx_nn.c */
extern const OxOp ox_quant_ops[]; /* onnx_quant.c */

/* Whether every input present is known at import time. */
int ox_all_const(OVal **in, int nin);
/* axis in [-rank, rank) made non-negative into *out; 0 with an error when out of range. */
int ox_norm_axis(Imp *I, int64_t axis, int rank, int64_t *out);
/* 1 when v's shape has no symbolic size; else 0 with an error saying that `what` needs it. */
int ox_need_static(Imp *I, const OVal *v, const char *what);
/* 1 when kiln has v's dtype; else 0 with an error. */
int ox_need_dtype(Imp *I, const OVal *v);
/* A list of dims as model text: "2, T, 64". */
const char *ox_dims_text(Imp *I, int rank, const int64_t *dims, const char *const *sym);
/* NumPy broadcasting of a and b's shapes into out. */
int ox_broadcast(Imp *I, const OVal *a, const OVal *b, int *rank, int64_t *dims, const char **sym);
/* The flat index into v of the output element at multi-index idx (rank r), broadcasting. */
int64_t ox_bcast_offset(const OVal *v, int r, const int64_t *idx);
/* idx (rank r, in dims) to the next element in C order. */
void ox_next_index(int r, const int64_t *dims, int64_t *idx);
/* A copy of in's data and type into out (Identity, Reshape and the like on constants). */
void ox_fold_same_data(Imp *I, OVal *in, OVal *out, int rank, const int64_t *dims);
/* Symbolic elements follow data moved by a fold: element dst of out is element src of in. */
void ox_move_sym(Imp *I, OVal *out, const OVal *in, int64_t dst, int64_t src, int64_t n);
/* Whether some element of the constant v stands for a symbolic size. */
int ox_has_sym(const OVal *v);
/* Ints of a constant 1-D (or scalar) operand; syms (when not NULL) receives the symbolic sizes some
 * may stand for, else a symbolic element is an error. */
int ox_const_ints_sym(Imp *I, OVal *v, const char *what, int64_t *out, int max, int *n, const char **syms);
int ox_const_ints(Imp *I, OVal *v, const char *what, int64_t *out, int max, int *n);
/* axes from the attribute (older opsets) or from input k (newer), *have = 0 when absent */
int ox_get_axes(Imp *I, const Onnx__NodeProto *n, OVal **in, int nin, int k, int64_t *axes, int *naxes, int *have);
/* out gets in's dtype (kiln's and ONNX's) and shape. */
void ox_copy_type(OVal *out, const OVal *in);

/* Symbolic sizes as linear expressions. A size the importer computes from symbolic ones (Concat of a cache and new tokens, Sub of two Shape
 * elements) is written into the model text as the language reads it, "P + T", "P + T - 1", "2 * T",
 * in one form (names in order, then the constant), so that equal sizes are equal strings wherever the
 * importer compares them. */
enum { OX_LIN_TERMS = 8 };

typedef struct OxLin {
    int n;
    const char *name[OX_LIN_TERMS]; /* (n) in strcmp order */
    int64_t c[OX_LIN_TERMS];        /* (n) never 0 */
    int64_t k;                      /* the constant */
} OxLin;

/* l += m * x; 0 when it does not fit (a hostile file's numbers overflow) */
int ox_lin_add(OxLin *l, const OxLin *x, int64_t m);
/* The size s (ox_lin_text's form, or one symbol's name; NULL: the number v). */
int ox_lin_of(Imp *I, const char *s, int64_t v, OxLin *l);
/* The model text of l; NULL when l is a constant. */
const char *ox_lin_text(Imp *I, const OxLin *l);
/* Element k of out (i64) = a op b for op Add, Sub or Mul, where a stands for the size sa when sa is
 * not NULL (va its bound), b likewise: a size when the result uses a symbol (its bound computed from
 * the operands' as the value), else the number. 1 with an error when it is not linear. */
int ox_sym_arith(Imp *I, const char *op, const char *sa, int64_t va, const char *sb, int64_t vb, OVal *out,
                 int64_t k);
/* Attributes of the current node */
const Onnx__AttributeProto *ox_attr(const Onnx__NodeProto *n, const char *name);
int64_t ox_attr_i(const Onnx__NodeProto *n, const char *name, int64_t def);
double ox_attr_f(const Onnx__NodeProto *n, const char *name, double def);

#endif
