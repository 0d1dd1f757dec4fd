/* codegen_ops_matmul.c: test_codegen_ops's cases for matmul (vectors, batches that broadcast,
 * symbolic K, empty K, f64, f16, bf16), matmuls with fused elementwise epilogues and fused
 * elementwise chains, and conv2d (strides, padding, a symbolic height, f16).
 */
#include "codegen_ops.h"

/* ---------------------------------------------------------------- matmul and conv2d */

void matmul_cases(void)
{
    static const struct {
        const char *a, *b, *out;
        const int64_t *T;
    } m[] = {
        {"[T, 17]", "[17, 33]", "[T, 33]", TS5},
        {"[7, 65]", "[65, 3]", "[7, 3]", NULL},      /* K = 65 */
        {"[5, 1]", "[1, 7]", "[5, 7]", NULL},        /* K = 1: an outer product */
        {"[1, 1]", "[1, 1]", "[1, 1]", NULL},
        {"[3, T, 7]", "[3, 7, 9]", "[3, T, 9]", TS3}, /* batched 3-D */
        {"[2, 3, 5, 7]", "[7, 9]", "[2, 3, 5, 9]", NULL},
        {"[2, 1, 5, 7]", "[3, 7, 9]", "[2, 3, 5, 9]", NULL}, /* broadcast batch dims */
        {"[1, 5, 7]", "[4, 1, 7, 2]", "[4, 1, 5, 2]", NULL},
        {"[4, 1, 3, 17]", "[1, 2, 17, 5]", "[4, 2, 3, 5]", NULL},
        {"[17]", "[17, 33]", "[33]", NULL},          /* a vector on the left */
        {"[17]", "[3, 17, 5]", "[3, 5]", NULL},
        {"[T, 17]", "[17]", "[T]", TS3},             /* a vector on the right */
        {"[2, 3, 17]", "[17]", "[2, 3]", NULL},
        {"[65]", "[65]", "[]", NULL},                /* both: a dot product */
        {"[4, T, 16]", "[4, 16, T]", "[4, T, T]", TS3}, /* attention scores */
        {"[3, T]", "[T, 5]", "[3, 5]", TS3},           /* a symbolic K */
        {"[1, 5, 7]", "[T, 7, 3]", "[T, 5, 3]", TS3},  /* a symbolic batch against 1 */
        {"[1]", "[1]", "[]", NULL},
        {"[2, T, 8]", "[2, 8, S]", "[2, T, S]", TS3},  /* T queries against S keys */
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        run((Spec){"matmul", MM, m[i].T, {UNI(-1, 1), UNI(-1, 1)},
                   ir("%%0 = input \"a\" : f32%s\n%%1 = input \"b\" : f32%s\n%%2 = matmul(%%0, %%1) : f32%s\n"
                      "output y = %%2\n", m[i].a, m[i].b, m[i].out), 0});
    /* K = T - 1: empty at T = 1, the output must still be written (zeros) */
    run((Spec){"matmul", MM, TS2, {UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : f32[3, T]\n%1 = input \"b\" : f32[T, 5]\n"
               "%2 = slice(%0) {axis=1, start=1, end=T} : f32[3, T-1]\n%3 = slice(%1) {axis=0, start=1, end=T} : f32[T-1, 5]\n"
               "%4 = matmul(%2, %3) : f32[3, 5]\noutput y = %4\n", 0});
    run((Spec){"matmul", MM, NULL, {UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : f64[3, 17]\n%1 = input \"b\" : f64[17, 5]\n%2 = matmul(%0, %1) : f64[3, 5]\n"
               "output y = %2\n", 0});
    /* f16 and bf16: one rounding of an f32 accumulation at the end */
    run((Spec){"matmul", MM16, TS2, {UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : f16[T, 65]\n%1 = input \"b\" : f16[65, 33]\n%2 = matmul(%0, %1) : f16[T, 33]\n"
               "output y = %2\n", 0});
    run((Spec){"matmul", MMBF16, NULL, {UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : bf16[5, 256]\n%1 = input \"b\" : bf16[256, 7]\n%2 = matmul(%0, %1) : bf16[5, 7]\n"
               "output y = %2\n", 0});
}

/* ---------------------------------------------------------------- fused loops
 *
 * Nodes marked inline (what fuse-ops does) are computed in the loop of the node that stores: chains
 * of elementwise ops, and a matmul with its elementwise consumers as the epilogue of each micro-tile
 * (K = 700 spans several blocks of K: the epilogue must run after the last one only). */
void fused_cases(void)
{
    run((Spec){"matmul", MM, TS5, {UNI(-1, 1), UNI(-0.1, 0.1), UNI(-1, 1)},
               "%0 = input \"x\" : f32[T, 700]\n%1 = input \"w\" : f32[700, 70]\n%2 = input \"b\" : f32[70]\n"
               "%3 = matmul(%0, %1) {inline} : f32[T, 70]\n%4 = add(%3, %2) {inline} : f32[T, 70]\n"
               "%5 = gelu(%4) {approx=erf} : f32[T, 70]\noutput y = %5\n", 0});
    /* a residual and a scale: r + (x @ w + b) * 0.5 */
    run((Spec){"matmul", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"x\" : f32[T, 33]\n%1 = input \"w\" : f32[33, 47]\n%2 = input \"b\" : f32[47]\n"
               "%3 = input \"r\" : f32[T, 47]\n%4 = matmul(%0, %1) {inline} : f32[T, 47]\n"
               "%5 = add(%4, %2) {inline} : f32[T, 47]\n%6 = const {data=[0.5]} : f32[]\n"
               "%7 = mul(%5, %6) {inline} : f32[T, 47]\n%8 = add(%3, %7) : f32[T, 47]\noutput y = %8\n", 0});
    /* batched product, a leaf broadcast over rows and one over columns */
    run((Spec){"matmul", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : f32[3, T, 17]\n%1 = input \"b\" : f32[3, 17, 9]\n%2 = input \"c\" : f32[3, 1, 9]\n"
               "%3 = input \"d\" : f32[T, 1]\n%4 = matmul(%0, %1) {inline} : f32[3, T, 9]\n"
               "%5 = sub(%4, %2) {inline} : f32[3, T, 9]\n%6 = mul(%5, %3) {inline} : f32[3, T, 9]\n"
               "%7 = relu(%6) : f32[3, T, 9]\noutput y = %7\n", 0});
    /* rows of a 4-D output against one matrix; a leaf broadcast over the leading dimensions */
    run((Spec){"matmul", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : f32[2, 3, T, 17]\n%1 = input \"w\" : f32[17, 33]\n%2 = input \"c\" : f32[3, 1, 33]\n"
               "%3 = matmul(%0, %1) {inline} : f32[2, 3, T, 33]\n%4 = add(%2, %3) : f32[2, 3, T, 33]\n"
               "output y = %4\n", 0});
    /* a symbolic number of columns */
    run((Spec){"matmul", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : f32[5, 17]\n%1 = input \"w\" : f32[17, T]\n%2 = input \"b\" : f32[T]\n"
               "%3 = matmul(%0, %1) {inline} : f32[5, T]\n%4 = add(%3, %2) {inline} : f32[5, T]\n"
               "%5 = tanh(%4) : f32[5, T]\noutput y = %5\n", 0});
    /* chains without a matmul: a value read twice (computed once), a comparison, a broadcast leaf */
    run((Spec){"add", EW, TS5, {UNI(-2, 2), UNI(-2, 2), UNI(-2, 2)},
               "%0 = input \"a\" : f32[T, 19]\n%1 = input \"b\" : f32[T, 19]\n%2 = input \"c\" : f32[19]\n"
               "%3 = add(%0, %2) {inline} : f32[T, 19]\n%4 = mul(%3, %3) {inline} : f32[T, 19]\n"
               "%5 = gt(%4, %1) {inline} : bool[T, 19]\n%6 = exp(%1) {inline} : f32[T, 19]\n"
               "%7 = where(%5, %6, %0) : f32[T, 19]\noutput y = %7\n", 0});
    run((Spec){"neg", EW, NULL, {UNI(-2, 2)},
               "%0 = input \"a\" : f32[]\n%1 = neg(%0) {inline} : f32[]\n%2 = sigmoid(%1) : f32[]\noutput y = %2\n", 0});
}

void conv_cases(void)
{
    Gen g = UNI(-1, 1);
    /* no batch, no bias, 3x3, stride 1, no padding */
    run((Spec){"conv2d", MM, NULL, {g, g},
               "%0 = input \"x\" : f32[3, 9, 11]\n%1 = input \"w\" : f32[4, 3, 3, 3]\n"
               "%2 = conv2d(%0, %1) {stride=[1, 1], pad=[0, 0]} : f32[4, 7, 9]\noutput y = %2\n", 0});
    /* batch, bias, stride (2, 1), padding (1, 0), a 3x2 kernel */
    run((Spec){"conv2d", MM, NULL, {g, g, g},
               "%0 = input \"x\" : f32[2, 3, 9, 11]\n%1 = input \"w\" : f32[5, 3, 3, 2]\n%2 = input \"b\" : f32[5]\n"
               "%3 = conv2d(%0, %1, %2) {stride=[2, 1], pad=[1, 0]} : f32[2, 5, 5, 10]\noutput y = %3\n", 0});
    /* 1x1 kernel, stride 2 */
    run((Spec){"conv2d", MM, NULL, {g, g},
               "%0 = input \"x\" : f32[1, 1, 7, 7]\n%1 = input \"w\" : f32[2, 1, 1, 1]\n"
               "%2 = conv2d(%0, %1) {stride=[2, 2], pad=[0, 0]} : f32[1, 2, 4, 4]\noutput y = %2\n", 0});
    /* 5x5, padding 2, stride 3, bias, no batch */
    run((Spec){"conv2d", MM, NULL, {g, g, g},
               "%0 = input \"x\" : f32[2, 17, 17]\n%1 = input \"w\" : f32[3, 2, 5, 5]\n%2 = input \"b\" : f32[3]\n"
               "%3 = conv2d(%0, %1, %2) {stride=[3, 3], pad=[2, 2]} : f32[3, 6, 6]\noutput y = %3\n", 0});
    /* sizes that the stride does not divide: the last partial window is dropped */
    run((Spec){"conv2d", MM, NULL, {g, g},
               "%0 = input \"x\" : f32[2, 10, 8]\n%1 = input \"w\" : f32[3, 2, 3, 3]\n"
               "%2 = conv2d(%0, %1) {stride=[2, 3], pad=[0, 1]} : f32[3, 4, 3]\noutput y = %2\n", 0});
    /* padding larger than the kernel's reach: whole output rows of bias only */
    run((Spec){"conv2d", MM, NULL, {g, g, g},
               "%0 = input \"x\" : f32[1, 3, 3]\n%1 = input \"w\" : f32[2, 1, 2, 2]\n%2 = input \"b\" : f32[2]\n"
               "%3 = conv2d(%0, %1, %2) {stride=[1, 1], pad=[3, 3]} : f32[2, 8, 8]\noutput y = %3\n", 0});
    run((Spec){"conv2d", MM16, NULL, {g, g, g},
               "%0 = input \"x\" : f16[1, 8, 9, 9]\n%1 = input \"w\" : f16[3, 8, 3, 3]\n%2 = input \"b\" : f16[3]\n"
               "%3 = conv2d(%0, %1, %2) {stride=[1, 1], pad=[1, 1]} : f16[1, 3, 9, 9]\noutput y = %3\n", 0});
    /* a symbolic height: same padding keeps H = T */
    run((Spec){"conv2d", MM, TS3, {g, g},
               "%0 = input \"x\" : f32[3, T, 9]\n%1 = input \"w\" : f32[4, 3, 3, 3]\n"
               "%2 = conv2d(%0, %1) {stride=[1, 1], pad=[1, 1]} : f32[4, T, 9]\noutput y = %2\n", 0});
}
