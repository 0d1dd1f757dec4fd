/* codegen_ops.h: what the cases of test_codegen_ops share with its harness (test_codegen_ops.c).
 *
 * The cases live in one file per family of ops (codegen_ops_FAMILY.c), each a few functions that
 * call run() once per case; the harness runs each case in a child process against the interpreter
 * and says how it went. A case is a Spec: the op under test, a tolerance, the values of the symbol T
 * to run at, a generator per input and the graph in IR text. See test_codegen_ops.c for what a run
 * checks and how the tolerances are chosen.
 */
#ifndef KILN_TESTS_CODEGEN_OPS_H
#define KILN_TESTS_CODEGEN_OPS_H

#include "codegen/codegen.h"
#include "ir/ir.h"

/* ---------------------------------------------------------------- tolerances */

typedef enum TolKind {
    T_EXACT, /* the same value */
    T_ELEM,  /* |got - want| <= atol + rtol * |want| */
    T_MAX,   /* |got - want| <= atol + rtol * max |want| over the output */
} TolKind;

typedef struct Tol {
    TolKind kind;
    double rtol, atol;
    const char *name;
} Tol;

/* the tolerances of test_codegen_ops.c's opening comment */
extern const Tol EXACT, EW, F16, BF16, RED, NORM, MM, F64, MM16, MMBF16;

/* ---------------------------------------------------------------- input generators */

typedef enum GenKind {
    G_UNI,  /* uniform in [lo, hi] */
    G_SPEC, /* uniform in [lo, hi], one in ten replaced by NaN, +-inf, -0 or 0 */
    G_WIDE, /* magnitude log-uniform in [lo, hi], random sign; one in twenty 0 */
    G_POS,  /* log-uniform in [lo, hi]; one in twenty 0, +inf, NaN or -1 */
    G_INT,  /* integers uniform in [lo, hi] (also for float inputs: ties and equal values) */
    G_BOOL, /* 0 or 1 */
    G_NINF, /* uniform in [lo, hi], one in four -inf, and the first row along `axis` all -inf */
    G_EDGE, /* the cast edge values (test_codegen_ops.c's edge_values[]), then G_WIDE over [1e-3, 1e5] */
    G_TIES, /* rows (the last dimension) made of ties of a dynamic int8 quantization: the first element A
               (magnitude log-uniform in [lo, hi]), the others A / 127 * (k + 0.5) in f32, k in -127 .. 126,
               moved by up to 4 units in the last place */
} GenKind;

typedef struct Gen {
    GenKind kind;
    double lo, hi;
    int axis; /* G_NINF */
} Gen;

#define UNI(a, b) ((Gen){G_UNI, a, b, 0})
#define SPEC(a, b) ((Gen){G_SPEC, a, b, 0})
#define WIDE(a, b) ((Gen){G_WIDE, a, b, 0})
#define POS(a, b) ((Gen){G_POS, a, b, 0})
#define INT(a, b) ((Gen){G_INT, a, b, 0})
#define BOOL ((Gen){G_BOOL, 0, 1, 0})
#define NINF(a, b, ax) ((Gen){G_NINF, a, b, ax})
#define EDGE ((Gen){G_EDGE, 0, 0, 0})
#define TIES(a, b) ((Gen){G_TIES, a, b, 0})

/* ---------------------------------------------------------------- cases */

enum { MAX_IO = 4 };

typedef struct Spec {
    const char *op;      /* the op under test, by its text name */
    Tol tol;
    const int64_t *T;    /* values of T, ending with 0; NULL: T is not used, run once */
    Gen gen[MAX_IO];     /* one per input, in declaration order */
    const char *ir;      /* the nodes and outputs; "sym T <= 40" is put in front */
    int bad_index;       /* the run must fail: a gather index out of range */
} Spec;

/* values of T for symbolic cases (1 and the bound 40 always among them), each ending with 0 */
extern const int64_t TS5[], TS3[], TS2[];

/* Counts the case (its number, the ops, dtypes and attributes it covers) and runs it in a child
 * process when its family is selected. */
void run(Spec s);
/* run(s) compiled for cpu (as --cpu does; NULL: the host's), to reach a kernel's fallback. */
void run_on(const char *cpu, Spec s);
/* run(s) with the compiled code on that many threads (run() uses one). */
void run_threads(int threads, Spec s);
/* Formats an IR body into one of 8 rotating buffers (a case may hold a few at once). */
const char *ir(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---------------------------------------------------------------- the families, in case order */

void unary_cases(void);       /* codegen_ops_elementwise.c */
void binary_cases(void);
void compare_cases(void);
void cast_cases(void);
void int_dtype_cases(void);
void reduce_cases(void);      /* codegen_ops_reduce.c */
void normalise_cases(void);
void matmul_cases(void);      /* codegen_ops_matmul.c */
void fused_cases(void);
void conv_cases(void);
void attention_cases(void);   /* codegen_ops_attention.c */
void token_cases(void);       /* codegen_ops_tokens.c */
void movement_cases(void);    /* codegen_ops_movement.c */
void source_cases(void);
void scatter_cases(void);
void quant_cases(void);       /* codegen_ops_quant.c */
void quant_fused_cases(void);
void bf16_cases(void);
void u64_cases(void);         /* codegen_ops_u64.c */
void u64_reduce_cases(void);

#endif
