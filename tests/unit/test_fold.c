/* test_fold: constant folding and the interpreter agree on every elementwise op.
 *
 * Lowering folds operators and builtins applied to numbers (relu(log(-1.0)), 1.5 ** x) at compile
 * time; the same op on a tensor is computed by the interpreter. Both must give the same value for
 * the awkward inputs: NaN, +-inf, -0 (and a few ordinary ones). For each op in ops.def that is
 * elementwise, the test writes one model file whose outputs are the op applied to every value (or
 * pair of values) twice: once spelled with number expressions, which lowering folds, and once on
 * inputs holding those values, which the interpreter computes. The outputs are compared bit for bit
 * after rounding to f32 (any NaN equals any NaN; -0 differs from 0). An op without a spelling below
 * fails the test, so a new elementwise op gets one.
 *
 * A number divided by zero is a compile-time error in the language, so '/' skips divisors of 0.
 */
#include "frontend/frontend.h"
#include "ir/ir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/check.h"

/* The values, as numbers the language folds and as what the inputs hold. */
enum { NV = 7 };
static const char *const num_expr[NV] = {"log(-1.0)", "exp(1000.0)", "-exp(1000.0)", "-0.0", "0.0", "1.5", "-2.0"};
static float value(int i)
{
    const float v[NV] = {NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 1.5f, -2.0f};
    return v[i];
}

/* How each elementwise op is written in the language; %1$s and %2$s are the operands. */
static const char *spelling(Op op)
{
    switch (op) {
    case OP_NEG: return "neg(%1$s)";
    case OP_ABS: return "abs(%1$s)";
    case OP_EXP: return "exp(%1$s)";
    case OP_LOG: return "log(%1$s)";
    case OP_SQRT: return "sqrt(%1$s)";
    case OP_RSQRT: return "rsqrt(%1$s)";
    case OP_TANH: return "tanh(%1$s)";
    case OP_ERF: return "erf(%1$s)";
    case OP_SIGMOID: return "sigmoid(%1$s)";
    case OP_RELU: return "relu(%1$s)";
    case OP_GELU: return "gelu(%1$s)";
    case OP_SILU: return "silu(%1$s)";
    case OP_SIN: return "sin(%1$s)";
    case OP_COS: return "cos(%1$s)";
    case OP_CAST: return "cast(%1$s, f16)";
    case OP_ADD: return "(%1$s) + (%2$s)";
    case OP_SUB: return "(%1$s) - (%2$s)";
    case OP_MUL: return "(%1$s) * (%2$s)";
    case OP_DIV: return "(%1$s) / (%2$s)";
    case OP_POW: return "(%1$s) ** (%2$s)";
    case OP_MAXIMUM: return "maximum(%1$s, %2$s)";
    case OP_MINIMUM: return "minimum(%1$s, %2$s)";
    case OP_LT: return "(%1$s) < (%2$s)";
    case OP_LE: return "(%1$s) <= (%2$s)";
    case OP_GT: return "(%1$s) > (%2$s)";
    case OP_GE: return "(%1$s) >= (%2$s)";
    case OP_EQ: return "(%1$s) == (%2$s)";
    case OP_NE: return "(%1$s) != (%2$s)";
    case OP_WHERE: return "where((%1$s) > (%2$s), %1$s, %2$s)";
    default: return NULL;
    }
}

static int same(double a, double b)
{
    float x = (float)a, y = (float)b;
    if (isnan(x) || isnan(y))
        return isnan(x) && isnan(y);
    return x == y && signbit(x) == signbit(y);
}

static char *append(char *s, size_t *len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static char *append(char *s, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    s = realloc(s, *len + (size_t)n + 1);
    KILN_ASSERT(s);
    va_start(ap, fmt);
    vsnprintf(s + *len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    *len += (size_t)n;
    return s;
}

/* Formats spelling sp with operands a and b (positional: %1$s, %2$s). */
static char *spell(const char *sp, const char *a, const char *b)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    int n = snprintf(NULL, 0, sp, a, b);
    char *s = malloc((size_t)n + 1);
    KILN_ASSERT(s);
    snprintf(s, (size_t)n + 1, sp, a, b);
#pragma GCC diagnostic pop
    return s;
}

static void test_op(Op op)
{
    const char *sp = spelling(op);
    CHECK(sp, "elementwise op %s has no spelling in test_fold.c: add one", op_info[op].name);
    if (!sp)
        return;
    int binary = op_info[op].min_in >= 2;
    int cmp = (op_info[op].flags & F_CMP) != 0;
    const char *ty = cmp ? "bool" : op == OP_CAST ? "f16" : "f32";
    char *text = NULL;
    size_t len = 0;
    text = append(text, &len, "model fold\n");
    for (int i = 0; i < NV; i++)
        text = append(text, &len, "input v%d: f32[]\n", i);
    int nout = 0;
    for (int i = 0; i < NV; i++)
        for (int j = 0; j < (binary ? NV : 1); j++) {
            if (op == OP_DIV && value(j) == 0)
                continue; /* the language rejects a number divided by zero */
            char vi[16], vj[16];
            snprintf(vi, sizeof vi, "v%d", i);
            snprintf(vj, sizeof vj, "v%d", j);
            char *folded = spell(sp, num_expr[i], num_expr[j]), *run = spell(sp, vi, vj);
            /* cast() makes the folded number a tensor of the output's dtype */
            text = append(text, &len, "output f%d_%d: %s[]\noutput t%d_%d: %s[]\nf%d_%d = cast(%s, %s)\nt%d_%d = %s\n",
                          i, j, ty, i, j, ty, i, j, folded, ty, i, j, run);
            free(folded);
            free(run);
            nout += 2;
        }
    char path[] = "/tmp/kiln_test_fold_XXXXXX";
    int fd = mkstemp(path);
    KILN_ASSERT(fd >= 0);
    FILE *f = fdopen(fd, "w");
    KILN_ASSERT(f);
    fputs(text, f);
    fclose(f);

    Diag *d = diag_new(stderr);
    Graph *g = fe_compile(path, NULL, d);
    CHECK(g && diag_errors(d) == 0, "%s: the model does not compile:\n%s", op_info[op].name, text);
    if (g) {
        /* the folded side must really be folded: no node of op left for it */
        float v[NV];
        HostTensor in[NV];
        for (int i = 0; i < NV; i++) {
            v[i] = value(i);
            in[i] = (HostTensor){DT_F32, 0, {0}, &v[i]};
        }
        HostTensor *out = calloc((size_t)g->noutput, sizeof *out);
        KILN_ASSERT(out && g->noutput == nout);
        int rc = ir_interp(g, in, out, d);
        CHECK(rc == 0, "%s: the interpreter failed", op_info[op].name);
        for (int k = 0; rc == 0 && k + 1 < g->noutput; k += 2) {
            const Node *fn = g->outputs[k].node;
            int folded = fn->op == OP_CONST || (op == OP_CAST && fn->op == OP_CAST && fn->in[0]->op == OP_CONST);
            CHECK(folded || op == OP_GELU || op == OP_WHERE, "%s: %s was not folded", op_info[op].name,
                  g->outputs[k].name);
            double a = dtype_load(out[k].dtype, out[k].data, 0), b = dtype_load(out[k + 1].dtype, out[k + 1].data, 0);
            CHECK(same(a, b), "%s: folded %s = %g but the interpreter gives %s = %g", op_info[op].name,
                  g->outputs[k].name, a, g->outputs[k + 1].name, b);
        }
        for (int k = 0; k < g->noutput; k++)
            free(out[k].data);
        free(out);
        ir_graph_free(g);
    }
    diag_free(d);
    unlink(path);
    free(text);
}

int main(void)
{
    int n = 0;
    for (int op = 0; op < OP_COUNT; op++)
        if (op_info[op].flags & F_EW) {
            test_op((Op)op);
            n++;
        }
    CHECK(n >= 29, "only %d elementwise ops", n);
    if (failures) {
        fprintf(stderr, "test_fold: %d failures\n", failures);
        return 1;
    }
    printf("test_fold: ok (%d elementwise ops)\n", n);
    return 0;
}
