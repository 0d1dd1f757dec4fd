/* codegen_ops_elementwise.c: test_codegen_ops's cases for the elementwise ops: unary math on every
 * float dtype and the numeric unary ops on integers, binary ops over broadcasting shapes (floats,
 * wrapping integers, C division by 0 and -1, bools), comparisons and where, and casts between every
 * pair of dtypes that differ in how they round, saturate or wrap (test_codegen_ops.c's edge values).
 */
#include "codegen_ops.h"

/* ---------------------------------------------------------------- elementwise */

void unary_cases(void)
{
    static const struct {
        const char *op, *attrs;
        Gen gen;
        Tol tol;
    } u[] = {
        {"neg", "", SPEC(-100, 100), {T_EXACT, 0, 0, "exact"}},
        {"abs", "", SPEC(-100, 100), {T_EXACT, 0, 0, "exact"}},
        {"relu", "", SPEC(-100, 100), {T_EXACT, 0, 0, "exact"}},
        /* exp over its whole range: overflow to inf above 88.7, subnormal results below -87 */
        {"exp", "", UNI(-110, 95), {T_ELEM, 1e-6, 1e-37, "1e-6 rel + 1e-37"}},
        {"log", "", POS(1e-30, 1e30), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"sqrt", "", POS(1e-30, 1e30), {T_ELEM, 1e-6, 1e-37, "1e-6 rel + 1e-37"}},
        {"rsqrt", "", POS(1e-30, 1e30), {T_ELEM, 1e-6, 1e-37, "1e-6 rel + 1e-37"}},
        {"tanh", "", WIDE(1e-4, 1e4), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"erf", "", WIDE(1e-4, 1e4), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"sigmoid", "", WIDE(1e-4, 1e4), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"silu", "", WIDE(1e-4, 1e4), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"gelu", " {approx=erf}", WIDE(1e-4, 1e4), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"gelu", " {approx=tanh}", WIDE(1e-4, 1e4), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"sin", "", UNI(-1000, 1000), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
        {"cos", "", UNI(-1000, 1000), {T_ELEM, 1e-6, 1e-6, "1e-6 rel + 1e-6"}},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        /* symbolic rows of an odd width, a long odd vector, a scalar, a rank-3 block */
        run((Spec){u[i].op, u[i].tol, TS5, {u[i].gen},
                   ir("%%0 = input \"x\" : f32[T, 17]\n%%1 = %s(%%0)%s : f32[T, 17]\noutput y = %%1\n",
                      u[i].op, u[i].attrs), 0});
        run((Spec){u[i].op, u[i].tol, NULL, {u[i].gen},
                   ir("%%0 = input \"x\" : f32[65]\n%%1 = %s(%%0)%s : f32[65]\noutput y = %%1\n",
                      u[i].op, u[i].attrs), 0});
        run((Spec){u[i].op, u[i].tol, NULL, {u[i].gen},
                   ir("%%0 = input \"x\" : f32[]\n%%1 = %s(%%0)%s : f32[]\noutput y = %%1\n", u[i].op,
                      u[i].attrs), 0});
        run((Spec){u[i].op, u[i].tol, NULL, {u[i].gen},
                   ir("%%0 = input \"x\" : f32[3, 7, 33]\n%%1 = %s(%%0)%s : f32[3, 7, 33]\noutput y = %%1\n",
                      u[i].op, u[i].attrs), 0});
    }
    /* the numeric unary ops on integers (wrapping: abs(-128) in i8 is -128) and on f16, bf16 */
    static const char *const iops[] = {"neg", "abs", "relu"};
    for (int i = 0; i < 3; i++) {
        run((Spec){iops[i], EXACT, TS3, {INT(-2147483647, 2147483647)},
                   ir("%%0 = input \"x\" : i32[T, 7]\n%%1 = %s(%%0) : i32[T, 7]\noutput y = %%1\n", iops[i]), 0});
        run((Spec){iops[i], EXACT, NULL, {INT(-128, 127)},
                   ir("%%0 = input \"x\" : i8[256]\n%%1 = %s(%%0) : i8[256]\noutput y = %%1\n", iops[i]), 0});
        run((Spec){iops[i], EXACT, NULL, {INT(-1000000000000, 1000000000000)},
                   ir("%%0 = input \"x\" : i64[33]\n%%1 = %s(%%0) : i64[33]\noutput y = %%1\n", iops[i]), 0});
        run((Spec){iops[i], EXACT, NULL, {INT(0, 255)},
                   ir("%%0 = input \"x\" : u8[17]\n%%1 = %s(%%0) : u8[17]\noutput y = %%1\n", iops[i]), 0});
    }
    run((Spec){"exp", F16, TS3, {UNI(-20, 12)},
               "%0 = input \"x\" : f16[T, 17]\n%1 = exp(%0) : f16[T, 17]\noutput y = %1\n", 0});
    run((Spec){"tanh", BF16, NULL, {WIDE(1e-3, 1e3)},
               "%0 = input \"x\" : bf16[65]\n%1 = tanh(%0) : bf16[65]\noutput y = %1\n", 0});
    run((Spec){"gelu", F16, NULL, {WIDE(1e-3, 1e3)},
               "%0 = input \"x\" : f16[7, 9]\n%1 = gelu(%0) {approx=tanh} : f16[7, 9]\noutput y = %1\n", 0});
    /* f64: computed in double on both sides */
    static const char *const dops[] = {"exp", "log", "tanh", "erf", "sigmoid", "silu", "rsqrt", "sin"};
    for (int i = 0; i < 8; i++)
        run((Spec){dops[i], F64, NULL, {i == 1 || i == 6 ? POS(1e-30, 1e30) : WIDE(1e-4, 1e3)},
                   ir("%%0 = input \"x\" : f64[33]\n%%1 = %s(%%0) : f64[33]\noutput y = %%1\n", dops[i]), 0});
    run((Spec){"gelu", F64, NULL, {WIDE(1e-4, 1e3)},
               "%0 = input \"x\" : f64[33]\n%1 = gelu(%0) {approx=erf} : f64[33]\noutput y = %1\n", 0});
    run((Spec){"neg", EXACT, NULL, {SPEC(-1e4, 1e4)},
               "%0 = input \"x\" : bf16[33]\n%1 = neg(%0) : bf16[33]\noutput y = %1\n", 0});
}

/* One binary op over several broadcasting shapes; `a` and `b` generate the two operands. */
static void binary_shapes(const char *op, const char *dt, const char *odt, Tol tol, Gen a, Gen b)
{
    /* same shape, symbolic rows */
    run((Spec){op, tol, TS5, {a, b},
               ir("%%0 = input \"a\" : %s[T, 17]\n%%1 = input \"b\" : %s[T, 17]\n%%2 = %s(%%0, %%1) : %s[T, 17]\n"
                  "output y = %%2\n", dt, dt, op, odt), 0});
    /* a lower-rank operand on the right: [T, 17] with [17] */
    run((Spec){op, tol, TS2, {a, b},
               ir("%%0 = input \"a\" : %s[T, 17]\n%%1 = input \"b\" : %s[17]\n%%2 = %s(%%0, %%1) : %s[T, 17]\n"
                  "output y = %%2\n", dt, dt, op, odt), 0});
    /* size-1 dims on both sides and a lower rank on the right: [3, 1, 7] with [5, 1] */
    run((Spec){op, tol, NULL, {a, b},
               ir("%%0 = input \"a\" : %s[3, 1, 7]\n%%1 = input \"b\" : %s[5, 1]\n%%2 = %s(%%0, %%1) : %s[3, 5, 7]\n"
                  "output y = %%2\n", dt, dt, op, odt), 0});
    /* a lower rank on the left, a column against a row: [T, 1] with [2, 1, 33] */
    run((Spec){op, tol, TS2, {a, b},
               ir("%%0 = input \"a\" : %s[T, 1]\n%%1 = input \"b\" : %s[2, 1, 33]\n%%2 = %s(%%0, %%1) : %s[2, T, 33]\n"
                  "output y = %%2\n", dt, dt, op, odt), 0});
}

void binary_cases(void)
{
    static const char *const fops[] = {"add", "sub", "mul", "div", "maximum", "minimum"};
    for (int i = 0; i < 6; i++)
        binary_shapes(fops[i], "f32", "f32", EW, SPEC(-1e3, 1e3), i == 3 ? WIDE(1e-3, 1e3) : SPEC(-1e3, 1e3));
    /* pow: positive bases with any exponent, and negative bases with integer exponents */
    binary_shapes("pow", "f32", "f32", EW, POS(1e-3, 1e2), UNI(-6, 6));
    run((Spec){"pow", EW, NULL, {INT(-9, 9), INT(-5, 7)},
               "%0 = input \"a\" : f32[7, 9]\n%1 = input \"b\" : f32[9]\n%2 = pow(%0, %1) : f32[7, 9]\noutput y = %2\n", 0});
    /* a scalar constant operand, on either side */
    run((Spec){"mul", EW, TS3, {SPEC(-1e3, 1e3)},
               "%0 = input \"a\" : f32[T, 7]\n%1 = const {data=[2.5]} : f32[]\n%2 = mul(%0, %1) : f32[T, 7]\n"
               "output y = %2\n", 0});
    run((Spec){"sub", EW, TS3, {SPEC(-1e3, 1e3)},
               "%0 = input \"a\" : f32[T, 7]\n%1 = const {data=[-0.75]} : f32[]\n%2 = sub(%1, %0) : f32[T, 7]\n"
               "output y = %2\n", 0});
    run((Spec){"div", EW, NULL, {WIDE(1e-2, 1e2)},
               "%0 = input \"a\" : f32[3, 5]\n%1 = const {data=[1, -2, 0, inf, nan]} : f32[5]\n"
               "%2 = div(%0, %1) : f32[3, 5]\noutput y = %2\n", 0});
    run((Spec){"pow", EW, NULL, {POS(1e-3, 1e3)},
               "%0 = input \"a\" : f32[33]\n%1 = const {data=[0.5]} : f32[]\n%2 = pow(%0, %1) : f32[33]\n"
               "output y = %2\n", 0});
    run((Spec){"maximum", EW, NULL, {SPEC(-10, 10)},
               "%0 = input \"a\" : f32[4, 17]\n%1 = const {data=[0]} : f32[1, 1]\n%2 = maximum(%0, %1) : f32[4, 17]\n"
               "output y = %2\n", 0});
    /* 4-D with size-1 dims in both operands: [2, 3, 1, 65] with [3, 17, 1] */
    run((Spec){"add", EW, NULL, {UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"a\" : f32[2, 3, 1, 65]\n%1 = input \"b\" : f32[3, 17, 1]\n"
               "%2 = add(%0, %1) : f32[2, 3, 17, 65]\noutput y = %2\n", 0});

    static const char *const d2[] = {"add", "div", "pow", "maximum"};
    for (int i = 0; i < 4; i++)
        run((Spec){d2[i], F64, NULL, {i == 2 ? POS(1e-3, 1e2) : SPEC(-1e3, 1e3), i == 2 ? UNI(-6, 6) : SPEC(-1e3, 1e3)},
                   ir("%%0 = input \"a\" : f64[5, 1]\n%%1 = input \"b\" : f64[7]\n%%2 = %s(%%0, %%1) : f64[5, 7]\n"
                      "output y = %%2\n", d2[i]), 0});
    /* two symbols: [T, 1] with [1, S] */
    run((Spec){"add", EW, TS3, {SPEC(-1e3, 1e3), SPEC(-1e3, 1e3)},
               "%0 = input \"a\" : f32[T, 1]\n%1 = input \"b\" : f32[1, S]\n%2 = add(%0, %1) : f32[T, S]\n"
               "output y = %2\n", 0});

    /* integer dtypes: wrapping add/sub/mul, C division with 0 and -1 divisors, pow */
    static const char *const iops[] = {"add", "sub", "mul", "div", "maximum", "minimum", "pow"};
    for (int i = 0; i < 7; i++) {
        int pw = i == 6, dv = i == 3;
        /* products stay below 2^53 (the interpreter computes integers in double) */
        Gen a32 = pw ? INT(-7, 7) : i == 2 ? INT(-50000000, 50000000) : INT(-2147483647, 2147483647);
        Gen b32 = pw ? INT(-2, 12) : i == 2 ? INT(-50000000, 50000000) : dv ? INT(-3, 3) : INT(-2147483647, 2147483647);
        binary_shapes(iops[i], "i32", "i32", EXACT, a32, b32);
        run((Spec){iops[i], EXACT, NULL, {INT(-128, 127), pw ? INT(-1, 9) : dv ? INT(-2, 2) : INT(-128, 127)},
                   ir("%%0 = input \"a\" : i8[9, 17]\n%%1 = input \"b\" : i8[9, 1]\n%%2 = %s(%%0, %%1) : i8[9, 17]\n"
                      "output y = %%2\n", iops[i]), 0});
        run((Spec){iops[i], EXACT, NULL, {INT(0, 255), pw ? INT(0, 9) : dv ? INT(0, 3) : INT(0, 255)},
                   ir("%%0 = input \"a\" : u8[9, 17]\n%%1 = input \"b\" : u8[17]\n%%2 = %s(%%0, %%1) : u8[9, 17]\n"
                      "output y = %%2\n", iops[i]), 0});
        run((Spec){iops[i], EXACT, TS2,
                   {pw ? INT(-30, 30) : INT(-1000000000000, 1000000000000),
                    pw ? INT(0, 9) : dv ? INT(-3, 3) : INT(-1000, 1000)},
                   ir("%%0 = input \"a\" : i64[T, 5]\n%%1 = input \"b\" : i64[T, 5]\n%%2 = %s(%%0, %%1) : i64[T, 5]\n"
                      "output y = %%2\n", iops[i]), 0});
    }
    run((Spec){"div", EXACT, NULL, {INT(-10, 10)},
               "%0 = input \"a\" : i32[2, 4]\n%1 = const {data=[3, -3, 0, -1]} : i32[4]\n"
               "%2 = div(%0, %1) : i32[2, 4]\noutput y = %2\n", 0});
    run((Spec){"div", EXACT, NULL, {UNI(0, 0)},
               "%0 = input \"a\" : i8[4]\n%1 = const {data=[-128, -128, 127, -7]} : i8[4]\n"
               "%2 = const {data=[-1, 1, -1, 0]} : i8[4]\n%3 = add(%0, %1) : i8[4]\n%4 = div(%3, %2) : i8[4]\n"
               "output y = %4\n", 0});
    /* bool operands (the verifier accepts them): computed as numbers, then x != 0 */
    static const char *const bops[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};
    for (int i = 0; i < 7; i++)
        run((Spec){bops[i], EXACT, NULL, {BOOL, BOOL},
                   ir("%%0 = input \"a\" : bool[4, 1]\n%%1 = input \"b\" : bool[4]\n%%2 = %s(%%0, %%1) : bool[4, 4]\n"
                      "output y = %%2\n", bops[i]), 0});
    /* outputs that are not a kernel's own buffer: one node twice, an input, constants */
    run((Spec){"neg", EXACT, TS2, {SPEC(-10, 10)},
               "%0 = input \"x\" : f32[T, 3]\n%1 = neg(%0) : f32[T, 3]\n"
               "output y = %1\noutput z = %1\noutput w = %0\n", 0});
    run((Spec){"add", EW, NULL, {UNI(0, 0)},
               "%0 = const {data=[1, 2.5, -3]} : f32[3]\n%1 = const {data=[0.25]} : f32[1]\n%2 = add(%0, %1) : f32[3]\n"
               "output y = %2\noutput c = %0\n", 0});

    /* f16 and bf16: computed in f32, rounded once */
    static const char *const hops[] = {"add", "sub", "mul", "div", "pow", "maximum"};
    for (int i = 0; i < 6; i++) {
        Gen a = i == 4 ? POS(1e-2, 10) : SPEC(-100, 100), b = i == 4 ? UNI(-3, 3) : SPEC(-100, 100);
        run((Spec){hops[i], F16, TS2, {a, b},
                   ir("%%0 = input \"a\" : f16[T, 17]\n%%1 = input \"b\" : f16[17]\n%%2 = %s(%%0, %%1) : f16[T, 17]\n"
                      "output y = %%2\n", hops[i]), 0});
        run((Spec){hops[i], BF16, NULL, {a, b},
                   ir("%%0 = input \"a\" : bf16[3, 1, 7]\n%%1 = input \"b\" : bf16[5, 1]\n"
                      "%%2 = %s(%%0, %%1) : bf16[3, 5, 7]\noutput y = %%2\n", hops[i]), 0});
    }
}

void compare_cases(void)
{
    static const char *const ops[] = {"lt", "le", "gt", "ge", "eq", "ne"};
    for (int i = 0; i < 6; i++) {
        /* integer-valued floats so that equal values occur; NaN, infinities and -0 */
        run((Spec){ops[i], EXACT, TS3, {SPEC(-3, 3), SPEC(-3, 3)},
                   ir("%%0 = input \"a\" : f32[T, 1]\n%%1 = input \"b\" : f32[17]\n%%2 = %s(%%0, %%1) : bool[T, 17]\n"
                      "output y = %%2\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, NULL, {INT(-3, 3), INT(-3, 3)},
                   ir("%%0 = input \"a\" : f32[5, 7]\n%%1 = input \"b\" : f32[5, 7]\n%%2 = %s(%%0, %%1) : bool[5, 7]\n"
                      "output y = %%2\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, NULL, {INT(-5, 5), INT(-5, 5)},
                   ir("%%0 = input \"a\" : i32[3, 1, 7]\n%%1 = input \"b\" : i32[5, 1]\n"
                      "%%2 = %s(%%0, %%1) : bool[3, 5, 7]\noutput y = %%2\n", ops[i]), 0});
        /* u8 above 127 must compare unsigned; f16 */
        run((Spec){ops[i], EXACT, NULL, {INT(120, 135), INT(120, 135)},
                   ir("%%0 = input \"a\" : u8[33]\n%%1 = input \"b\" : u8[33]\n%%2 = %s(%%0, %%1) : bool[33]\n"
                      "output y = %%2\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, NULL, {INT(-4, 4), INT(-4, 4)},
                   ir("%%0 = input \"a\" : f16[17]\n%%1 = input \"b\" : f16[]\n%%2 = %s(%%0, %%1) : bool[17]\n"
                      "output y = %%2\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, NULL, {INT(-4, 4)},
                   ir("%%0 = input \"a\" : i64[17]\n%%1 = const {data=[1]} : i64[]\n%%2 = %s(%%0, %%1) : bool[17]\n"
                      "output y = %%2\n", ops[i]), 0});
    }
    run((Spec){"eq", EXACT, NULL, {BOOL, BOOL},
               "%0 = input \"a\" : bool[7, 3]\n%1 = input \"b\" : bool[3]\n%2 = eq(%0, %1) : bool[7, 3]\noutput y = %2\n", 0});
    run((Spec){"lt", EXACT, NULL, {BOOL, BOOL},
               "%0 = input \"a\" : bool[7, 3]\n%1 = input \"b\" : bool[3]\n%2 = lt(%0, %1) : bool[7, 3]\noutput y = %2\n", 0});
    run((Spec){"ne", EXACT, NULL, {BOOL, BOOL},
               "%0 = input \"a\" : bool[7, 3]\n%1 = input \"b\" : bool[7, 1]\n%2 = ne(%0, %1) : bool[7, 3]\noutput y = %2\n", 0});

    /* where(cond, a, b): bool conditions that broadcast, values of several dtypes, constants */
    run((Spec){"where", EXACT, TS5, {BOOL, SPEC(-10, 10), SPEC(-10, 10)},
               "%0 = input \"c\" : bool[T, 17]\n%1 = input \"a\" : f32[T, 17]\n%2 = input \"b\" : f32[T, 17]\n"
               "%3 = where(%0, %1, %2) : f32[T, 17]\noutput y = %3\n", 0});
    run((Spec){"where", EXACT, TS2, {BOOL, SPEC(-10, 10)},
               "%0 = input \"c\" : bool[T, 1]\n%1 = input \"a\" : f32[33]\n%2 = const {data=[-inf]} : f32[]\n"
               "%3 = where(%0, %1, %2) : f32[T, 33]\noutput y = %3\n", 0});
    run((Spec){"where", EXACT, NULL, {BOOL, INT(-100, 100), INT(-100, 100)},
               "%0 = input \"c\" : bool[3, 1, 7]\n%1 = input \"a\" : i32[5, 1]\n%2 = input \"b\" : i32[7]\n"
               "%3 = where(%0, %1, %2) : i32[3, 5, 7]\noutput y = %3\n", 0});
    run((Spec){"where", EXACT, NULL, {BOOL, UNI(-10, 10), UNI(-10, 10)},
               "%0 = input \"c\" : bool[65]\n%1 = input \"a\" : f16[65]\n%2 = input \"b\" : f16[1]\n"
               "%3 = where(%0, %1, %2) : f16[65]\noutput y = %3\n", 0});
    run((Spec){"where", EXACT, NULL, {BOOL, UNI(-10, 10), UNI(-10, 10)},
               "%0 = input \"c\" : bool[]\n%1 = input \"a\" : bf16[3, 3]\n%2 = input \"b\" : bf16[3, 3]\n"
               "%3 = where(%0, %1, %2) : bf16[3, 3]\noutput y = %3\n", 0});
    /* a computed condition */
    run((Spec){"where", EXACT, TS2, {SPEC(-10, 10)},
               "%0 = input \"x\" : f32[T, 9]\n%1 = const {data=[0]} : f32[]\n%2 = gt(%0, %1) : bool[T, 9]\n"
               "%3 = neg(%0) : f32[T, 9]\n%4 = where(%2, %0, %3) : f32[T, 9]\noutput y = %4\n", 0});
}

void cast_cases(void)
{
    static const struct {
        const char *from, *to;
        Gen gen;
    } c[] = {
        {"f32", "f16", EDGE}, {"f16", "f32", WIDE(1e-7, 6e4)}, {"f32", "bf16", EDGE},
        {"bf16", "f32", WIDE(1e-30, 1e30)}, {"f32", "i32", EDGE}, {"f32", "i8", EDGE},
        {"f32", "u8", EDGE}, {"f32", "i64", EDGE}, {"f32", "bool", EDGE}, {"i32", "f32", INT(-2147483647, 2147483647)},
        {"u8", "f32", INT(0, 255)}, {"i8", "f32", INT(-128, 127)}, {"i64", "f32", INT(-4e15, 4e15)},
        {"bool", "f32", BOOL}, {"bool", "i32", BOOL}, {"i32", "bool", INT(-2, 2)},
        {"i32", "i8", INT(-100000, 100000)}, {"i32", "u8", INT(-1000, 1000)}, {"u8", "i8", INT(0, 255)},
        {"i8", "u8", INT(-128, 127)}, {"i64", "i32", INT(-4e15, 4e15)}, {"i32", "i64", INT(-2147483647, 2147483647)},
        {"f16", "bf16", WIDE(1e-6, 6e4)}, {"bf16", "f16", EDGE}, {"f16", "i32", EDGE}, {"bf16", "i8", EDGE},
        {"f32", "f64", EDGE}, {"f64", "f32", EDGE}, {"f64", "f16", EDGE}, {"f16", "bool", EDGE},
        {"i32", "f16", INT(-70000, 70000)}, {"i32", "bf16", INT(-2147483647, 2147483647)},
        {"f32", "f32", EDGE}, {"bool", "bool", BOOL}, {"i64", "u8", INT(-100000, 100000)}, {"bool", "f16", BOOL},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        run((Spec){"cast", EXACT, NULL, {c[i].gen},
                   ir("%%0 = input \"x\" : %s[129]\n%%1 = cast(%%0) : %s[129]\noutput y = %%1\n", c[i].from, c[i].to), 0});
    }
    run((Spec){"cast", EXACT, TS3, {EDGE},
               "%0 = input \"x\" : f32[T, 65]\n%1 = cast(%0) : f16[T, 65]\noutput y = %1\n", 0});
    /* f64 double rounding to f16: 1 + 2^-11 + 2^-40 is above the midpoint of two f16 values, but
     * through f32 it becomes the midpoint and rounds to even; the interpreter rounds through f32 as
     * well (dtype_store), so both must give 1 */
    run((Spec){"cast", EXACT, NULL, {UNI(0, 0)},
               "%0 = input \"x\" : f64[2]\n%1 = const {data=[1.0004882812509095, -1.0004882812509095]} : f64[2]\n"
               "%2 = add(%0, %1) : f64[2]\n%3 = cast(%2) : f16[2]\noutput y = %3\n", 0});
}

/* i16, u16 and u32: held as i64 (sign- or zero-extended on load), wrapped on store. Registered last
 * in families[] so that the cases before keep their numbers (and so their seeds). u32 products stay
 * below 2^53 (the interpreter computes integers in double). */
void int_dtype_cases(void)
{
    static const char *const iops[] = {"add", "sub", "mul", "div", "maximum", "minimum", "pow"};
    for (int i = 0; i < 7; i++) {
        int pw = i == 6, dv = i == 3;
        run((Spec){iops[i], EXACT, NULL, {pw ? INT(-7, 7) : INT(-32768, 32767), pw ? INT(0, 9) : dv ? INT(-3, 3) : INT(-32768, 32767)},
                   ir("%%0 = input \"a\" : i16[9, 17]\n%%1 = input \"b\" : i16[17]\n%%2 = %s(%%0, %%1) : i16[9, 17]\n"
                      "output y = %%2\n", iops[i]), 0});
        run((Spec){iops[i], EXACT, NULL, {pw ? INT(0, 9) : INT(0, 65535), pw ? INT(0, 9) : dv ? INT(0, 3) : INT(0, 65535)},
                   ir("%%0 = input \"a\" : u16[9, 17]\n%%1 = input \"b\" : u16[9, 1]\n%%2 = %s(%%0, %%1) : u16[9, 17]\n"
                      "output y = %%2\n", iops[i]), 0});
        Gen u32 = pw ? INT(0, 9) : i == 2 ? INT(0, 50000000) : INT(0, 4294967295);
        run((Spec){iops[i], EXACT, NULL, {u32, pw ? INT(0, 9) : dv ? INT(0, 3) : u32},
                   ir("%%0 = input \"a\" : u32[33]\n%%1 = input \"b\" : u32[33]\n%%2 = %s(%%0, %%1) : u32[33]\n"
                      "output y = %%2\n", iops[i]), 0});
    }
    /* u32 across 2^31 and u16 across 2^15 compare unsigned */
    static const char *const cops[] = {"eq", "ne", "lt", "le", "gt", "ge"};
    for (int i = 0; i < 6; i++) {
        run((Spec){cops[i], EXACT, NULL, {INT(2147483640, 2147483656), INT(2147483640, 2147483656)},
                   ir("%%0 = input \"a\" : u32[33]\n%%1 = input \"b\" : u32[33]\n%%2 = %s(%%0, %%1) : bool[33]\n"
                      "output y = %%2\n", cops[i]), 0});
        run((Spec){cops[i], EXACT, NULL, {INT(32760, 32776), INT(-8, 8)},
                   ir("%%0 = input \"a\" : u16[33]\n%%1 = input \"b\" : i16[33]\n%%2 = cast(%%0) : i32[33]\n"
                      "%%3 = cast(%%1) : i32[33]\n%%4 = %s(%%2, %%3) : bool[33]\noutput y = %%4\n", cops[i]), 0});
    }
    static const struct {
        const char *from, *to;
        Gen gen;
    } c[] = {
        {"f32", "i16", EDGE}, {"f32", "u16", EDGE}, {"f32", "u32", EDGE}, {"i16", "f32", INT(-32768, 32767)},
        {"u16", "f32", INT(0, 65535)}, {"u32", "f32", INT(0, 4294967295)}, {"i32", "i16", INT(-100000, 100000)},
        {"i32", "u16", INT(-100000, 100000)}, {"i64", "u32", INT(-1e10, 1e10)}, {"u32", "i64", INT(0, 4294967295)},
        {"u16", "i16", INT(0, 65535)}, {"i16", "u32", INT(-32768, 32767)}, {"u32", "i32", INT(0, 4294967295)},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        run((Spec){"cast", EXACT, NULL, {c[i].gen},
                   ir("%%0 = input \"x\" : %s[129]\n%%1 = cast(%%0) : %s[129]\noutput y = %%1\n", c[i].from, c[i].to), 0});
}
