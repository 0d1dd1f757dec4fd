/* codegen_ops_movement.c: test_codegen_ops's cases for data movement (reshape, transpose, slice,
 * concat, expand, gather with indices out of range), scatter, and the sources arange and
 * causal_mask.
 */
#include "codegen_ops.h"

/* ---------------------------------------------------------------- data movement and sources */

void movement_cases(void)
{
    Gen g = SPEC(-100, 100);
    /* reshape: output straight from an input, a symbolic split, through a computed node */
    run((Spec){"reshape", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[T, 6]\n%1 = reshape(%0) : f32[T, 2, 3]\noutput y = %1\n", 0});
    run((Spec){"reshape", EXACT, NULL, {INT(-128, 127)},
               "%0 = input \"x\" : i8[3, 4, 5]\n%1 = reshape(%0) : i8[60]\noutput y = %1\n", 0});
    run((Spec){"reshape", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[T, 6]\n%1 = neg(%0) : f32[T, 6]\n%2 = reshape(%1) : f32[3, 2*T]\n"
               "%3 = abs(%2) : f32[3, 2*T]\noutput y = %3\n", 0});
    run((Spec){"reshape", EXACT, NULL, {g},
               "%0 = input \"x\" : f32[7]\n%1 = neg(%0) : f32[7]\n%2 = reshape(%1) : f32[1, 7, 1]\n"
               "output y = %2\noutput z = %1\n", 0});

    /* transpose: several permutations, dtypes */
    static const struct {
        const char *in, *perm, *out;
        const int64_t *T;
    } t[] = {
        {"[T, 3, 17]", "[1, 0, 2]", "[3, T, 17]", TS3},
        {"[T, 3, 17]", "[2, 1, 0]", "[17, 3, T]", TS3},
        {"[T, 3, 17]", "[0, 2, 1]", "[T, 17, 3]", TS2},
        {"[T, 3, 17]", "[2, 0, 1]", "[17, T, 3]", TS2},
        {"[T, 65]", "[1, 0]", "[65, T]", TS5},
        {"[2, 3, 5, 7]", "[3, 1, 0, 2]", "[7, 3, 2, 5]", NULL},
        {"[1, 9]", "[1, 0]", "[9, 1]", NULL},
        {"[4]", "[0]", "[4]", NULL},
        {"[2, 1, 3, 1, 5]", "[4, 2, 0, 3, 1]", "[5, 3, 2, 1, 1]", NULL},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        run((Spec){"transpose", EXACT, t[i].T, {g},
                   ir("%%0 = input \"x\" : f32%s\n%%1 = transpose(%%0) {perm=%s} : f32%s\noutput y = %%1\n",
                      t[i].in, t[i].perm, t[i].out), 0});
    run((Spec){"transpose", EXACT, NULL, {INT(-100000, 100000)},
               "%0 = input \"x\" : i32[3, 7, 5]\n%1 = transpose(%0) {perm=[2, 0, 1]} : i32[5, 3, 7]\noutput y = %1\n", 0});
    run((Spec){"transpose", EXACT, NULL, {g},
               "%0 = input \"x\" : f16[9, 17]\n%1 = transpose(%0) {perm=[1, 0]} : f16[17, 9]\noutput y = %1\n", 0});

    /* expand */
    run((Spec){"expand", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[17]\n%1 = input \"t\" : f32[T]\n%2 = expand(%0) : f32[T, 17]\noutput y = %2\n", 0});
    run((Spec){"expand", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[T, 1]\n%1 = expand(%0) : f32[T, 33]\noutput y = %1\n", 0});
    run((Spec){"expand", EXACT, NULL, {g},
               "%0 = input \"x\" : f32[3, 1, 7]\n%1 = expand(%0) : f32[2, 3, 5, 7]\noutput y = %1\n", 0});
    run((Spec){"expand", EXACT, NULL, {g},
               "%0 = input \"x\" : f32[]\n%1 = expand(%0) : f32[4, 5]\noutput y = %1\n", 0});
    run((Spec){"expand", EXACT, NULL, {INT(0, 255)},
               "%0 = input \"x\" : u8[1, 9]\n%1 = expand(%0) : u8[7, 9]\noutput y = %1\n", 0});

    /* slice, with symbolic bounds */
    run((Spec){"slice", EXACT, TS5, {g},
               "%0 = input \"x\" : f32[T, 17]\n%1 = slice(%0) {axis=0, start=1, end=T} : f32[T-1, 17]\noutput y = %1\n", 0});
    run((Spec){"slice", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[T, 17]\n%1 = slice(%0) {axis=1, start=3, end=10} : f32[T, 7]\noutput y = %1\n", 0});
    run((Spec){"slice", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[2, 40, 5]\n%1 = input \"t\" : f32[T]\n"
               "%2 = slice(%0) {axis=1, start=T, end=40} : f32[2, -T+40, 5]\noutput y = %2\n", 0});
    run((Spec){"slice", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[2, T+3, 5]\n%1 = slice(%0) {axis=1, start=2, end=T+3} : f32[2, T+1, 5]\n"
               "output y = %1\n", 0});
    /* a dim that shrinks as T grows (-T+40) in an intermediate: its arena block must be sized for
     * T = 1 (39 rows), not for T at its bound (0 rows), or the next node's block overlaps it */
    run((Spec){"slice", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[2, 40, 5]\n%1 = input \"t\" : f32[T]\n"
               "%2 = slice(%0) {axis=1, start=T, end=40} : f32[2, -T+40, 5]\n%3 = neg(%0) : f32[2, 40, 5]\n"
               "%4 = slice(%3) {axis=1, start=0, end=T} : f32[2, T, 5]\n%5 = concat(%2, %4) {axis=1} : f32[2, 40, 5]\n"
               "output y = %5\n", 0});
    run((Spec){"slice", EXACT, NULL, {g},
               "%0 = input \"x\" : f32[65, 3]\n%1 = slice(%0) {axis=0, start=64, end=65} : f32[1, 3]\noutput y = %1\n", 0});
    run((Spec){"slice", EXACT, NULL, {g},
               "%0 = input \"x\" : bf16[3, 7, 33]\n%1 = slice(%0) {axis=2, start=5, end=22} : bf16[3, 7, 17]\n"
               "output y = %1\n", 0});
    run((Spec){"slice", EXACT, TS2, {g},
               "%0 = input \"x\" : f32[64, 8]\n%1 = input \"t\" : i32[T]\n"
               "%2 = slice(%0) {axis=0, start=0, end=T} : f32[T, 8]\noutput y = %2\n", 0});

    /* concat: 2 and 3 inputs, every axis */
    run((Spec){"concat", EXACT, TS3, {g, g},
               "%0 = input \"a\" : f32[T, 5]\n%1 = input \"b\" : f32[3, 5]\n%2 = concat(%0, %1) {axis=0} : f32[T+3, 5]\n"
               "output y = %2\n", 0});
    run((Spec){"concat", EXACT, TS3, {g, g, g},
               "%0 = input \"a\" : f32[T, 5]\n%1 = input \"b\" : f32[T, 1]\n%2 = input \"c\" : f32[T, 7]\n"
               "%3 = concat(%0, %1, %2) {axis=1} : f32[T, 13]\noutput y = %3\n", 0});
    run((Spec){"concat", EXACT, NULL, {g, g, g},
               "%0 = input \"a\" : f32[2, 3, 4]\n%1 = input \"b\" : f32[2, 3, 1]\n%2 = input \"c\" : f32[2, 3, 17]\n"
               "%3 = concat(%0, %1, %2) {axis=2} : f32[2, 3, 22]\noutput y = %3\n", 0});
    run((Spec){"concat", EXACT, TS3, {g, g},
               "%0 = input \"a\" : f32[2, T, 3]\n%1 = input \"b\" : f32[2, T, 3]\n"
               "%2 = concat(%0, %1) {axis=1} : f32[2, 2*T, 3]\noutput y = %2\n", 0});
    run((Spec){"concat", EXACT, NULL, {g, g, g},
               "%0 = input \"a\" : f32[1, 3, 4]\n%1 = input \"b\" : f32[2, 3, 4]\n%2 = input \"c\" : f32[3, 3, 4]\n"
               "%3 = concat(%0, %1, %2) {axis=0} : f32[6, 3, 4]\noutput y = %3\n", 0});
    run((Spec){"concat", EXACT, NULL, {INT(-100, 100), INT(-100, 100)},
               "%0 = input \"a\" : i32[7]\n%1 = input \"b\" : i32[9]\n%2 = concat(%0, %1) {axis=0} : i32[16]\n"
               "output y = %2\n", 0});
    run((Spec){"concat", EXACT, NULL, {g},
               "%0 = input \"a\" : f16[3, 5]\n%1 = concat(%0) {axis=1} : f16[3, 5]\noutput y = %1\n", 0});
    run((Spec){"concat", EXACT, TS3, {g},
               "%0 = input \"a\" : f32[T, 4]\n%1 = neg(%0) : f32[T, 4]\n%2 = concat(%1, %0, %1) {axis=0} : f32[3*T, 4]\n"
               "output y = %2\n", 0});

    /* bool data through every movement op */
    run((Spec){"transpose", EXACT, TS2, {BOOL},
               "%0 = input \"x\" : bool[T, 5]\n%1 = transpose(%0) {perm=[1, 0]} : bool[5, T]\noutput y = %1\n", 0});
    run((Spec){"concat", EXACT, NULL, {BOOL, BOOL},
               "%0 = input \"a\" : bool[3, 5]\n%1 = input \"b\" : bool[3, 2]\n%2 = concat(%0, %1) {axis=1} : bool[3, 7]\n"
               "output y = %2\n", 0});
    run((Spec){"expand", EXACT, NULL, {BOOL},
               "%0 = input \"x\" : bool[5]\n%1 = expand(%0) : bool[3, 5]\noutput y = %1\n", 0});
    run((Spec){"slice", EXACT, NULL, {BOOL},
               "%0 = input \"x\" : bool[9, 5]\n%1 = slice(%0) {axis=0, start=2, end=7} : bool[5, 5]\noutput y = %1\n", 0});
    run((Spec){"gather", EXACT, NULL, {BOOL, INT(0, 8)},
               "%0 = input \"t\" : bool[9, 5]\n%1 = input \"i\" : i32[4]\n%2 = gather(%0, %1) {axis=0} : bool[4, 5]\n"
               "output y = %2\n", 0});
    run((Spec){"where", EXACT, NULL, {BOOL, BOOL, BOOL},
               "%0 = input \"c\" : bool[9]\n%1 = input \"a\" : bool[9]\n%2 = input \"b\" : bool[1]\n"
               "%3 = where(%0, %1, %2) : bool[9]\noutput y = %3\n", 0});

    /* gather: axis 0 and 1, i32 and i64 indices, a symbolic count */
    run((Spec){"gather", EXACT, TS5, {g, INT(0, 16)},
               "%0 = input \"t\" : f32[17, 33]\n%1 = input \"i\" : i32[T]\n%2 = gather(%0, %1) {axis=0} : f32[T, 33]\n"
               "output y = %2\n", 0});
    run((Spec){"gather", EXACT, NULL, {g, INT(0, 16)},
               "%0 = input \"t\" : f32[5, 17]\n%1 = input \"i\" : i64[3, 7]\n%2 = gather(%0, %1) {axis=1} : f32[5, 3, 7]\n"
               "output y = %2\n", 0});
    run((Spec){"gather", EXACT, TS3, {g, INT(0, 2)},
               "%0 = input \"t\" : f32[7, 3, 5]\n%1 = input \"i\" : i32[T]\n%2 = gather(%0, %1) {axis=1} : f32[7, T, 5]\n"
               "output y = %2\n", 0});
    run((Spec){"gather", EXACT, TS3, {INT(-1000, 1000), INT(0, 39)},
               "%0 = input \"t\" : i32[40, 2]\n%1 = input \"i\" : i64[T, 2]\n%2 = gather(%0, %1) {axis=0} : i32[T, 2, 2]\n"
               "output y = %2\n", 0});
    run((Spec){"gather", EXACT, TS3, {g, INT(0, 5)},
               "%0 = input \"t\" : f32[T, 6]\n%1 = input \"i\" : i32[4]\n%2 = gather(%0, %1) {axis=1} : f32[T, 4]\n"
               "output y = %2\n", 0});
    run((Spec){"gather", EXACT, NULL, {g, INT(0, 64)},
               "%0 = input \"t\" : f16[65]\n%1 = input \"i\" : u8[9]\n%2 = gather(%0, %1) {axis=0} : f16[9]\n"
               "output y = %2\n", 0});
    run((Spec){"gather", EXACT, NULL, {g, INT(0, 6)},
               "%0 = input \"t\" : f32[7, 3]\n%1 = input \"i\" : i32[]\n%2 = gather(%0, %1) {axis=0} : f32[3]\n"
               "output y = %2\n", 0});
    /* an index out of range (17 in a table of 17 rows, -1): an error, not a crash */
    run((Spec){"gather", EXACT, NULL, {g, INT(17, 17)},
               "%0 = input \"t\" : f32[17, 33]\n%1 = input \"i\" : i32[3]\n%2 = gather(%0, %1) {axis=0} : f32[3, 33]\n"
               "output y = %2\n", 1});
    run((Spec){"gather", EXACT, NULL, {g, INT(-1, -1)},
               "%0 = input \"t\" : f32[5, 17]\n%1 = input \"i\" : i64[2]\n%2 = gather(%0, %1) {axis=1} : f32[5, 2]\n"
               "output y = %2\n", 1});
    /* a kv-cache check (attrs.def's check): in range it is a gather; out of range the entry returns
     * the named code (RT_ERR_POSITIONS), which the message says */
    run((Spec){"gather", EXACT, NULL, {g, INT(0, 16)},
               "%0 = input \"t\" : f32[17, 33]\n%1 = input \"i\" : i64[1]\n"
               "%2 = gather(%0, %1) {axis=0, check=positions} : f32[1, 33]\noutput y = %2\n", 0});
    run((Spec){"gather", EXACT, NULL, {g, INT(17, 17)},
               "%0 = input \"t\" : f32[17, 33]\n%1 = input \"i\" : i64[1]\n"
               "%2 = gather(%0, %1) {axis=0, check=positions} : f32[1, 33]\noutput y = %2\n", 1});
}

/* scatter (ir/entry.c's state updates): rows along axis 0 and 1, i32 and i64 indices, a symbolic
 * count with repeated indices (the last write wins), integer data; an index out of range fails */
void scatter_cases(void)
{
    Gen g = UNI(-1, 1);
    run((Spec){"scatter", EXACT, TS3, {g, INT(0, 7), g},
               "%0 = input \"b\" : f32[8, 5]\n%1 = input \"i\" : i32[T]\n%2 = input \"v\" : f32[T, 5]\n"
               "%3 = scatter(%0, %1, %2) {axis=0} : f32[8, 5]\noutput y = %3\n", 0});
    run((Spec){"scatter", EXACT, NULL, {g, INT(0, 5), g},
               "%0 = input \"b\" : f32[2, 6, 3]\n%1 = input \"i\" : i64[4]\n%2 = input \"v\" : f32[2, 4, 3]\n"
               "%3 = scatter(%0, %1, %2) {axis=1} : f32[2, 6, 3]\noutput y = %3\n", 0});
    run((Spec){"scatter", EXACT, NULL, {INT(-9, 9), INT(0, 3), INT(-9, 9)},
               "%0 = input \"b\" : i32[3, 4]\n%1 = input \"i\" : i32[2]\n%2 = input \"v\" : i32[3, 2]\n"
               "%3 = scatter(%0, %1, %2) {axis=1} : i32[3, 4]\noutput y = %3\n", 0});
    run((Spec){"scatter", EXACT, NULL, {g, INT(8, 8), g},
               "%0 = input \"b\" : f32[8, 5]\n%1 = input \"i\" : i32[2]\n%2 = input \"v\" : f32[2, 5]\n"
               "%3 = scatter(%0, %1, %2) {axis=0} : f32[8, 5]\noutput y = %3\n", 1});
    run((Spec){"scatter", EXACT, NULL, {g, INT(-1, -1), g},
               "%0 = input \"b\" : f32[2, 6]\n%1 = input \"i\" : i64[1]\n%2 = input \"v\" : f32[2, 1]\n"
               "%3 = scatter(%0, %1, %2) {axis=1} : f32[2, 6]\noutput y = %3\n", 1});
}

void source_cases(void)
{
    Gen g = UNI(0, 1);
    run((Spec){"arange", EXACT, TS5, {g},
               "%0 = input \"x\" : f32[T]\n%1 = arange : i32[T]\noutput y = %1\n", 0});
    run((Spec){"arange", EXACT, TS2, {g},
               "%0 = input \"x\" : f32[T]\n%1 = arange : f32[2*T+1]\noutput y = %1\n", 0});
    run((Spec){"arange", EXACT, NULL, {g},
               "%0 = arange : i64[65]\noutput y = %0\n", 0});
    run((Spec){"arange", EXACT, NULL, {g},
               "%0 = arange : f16[33]\noutput y = %0\n", 0});
    run((Spec){"arange", EXACT, NULL, {g}, "%0 = arange : u8[300]\noutput y = %0\n", 0});
    run((Spec){"arange", EXACT, NULL, {g}, "%0 = arange : bf16[300]\noutput y = %0\n", 0});
    run((Spec){"causal_mask", EXACT, NULL, {g}, "%0 = causal_mask : bf16[3, 4]\noutput y = %0\n", 0});
    run((Spec){"causal_mask", EXACT, TS5, {g},
               "%0 = input \"x\" : f32[T]\n%1 = causal_mask : f32[T, T]\noutput y = %1\n", 0});
    run((Spec){"causal_mask", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[T]\n%1 = causal_mask : f32[T, T+2]\noutput y = %1\n", 0});
    run((Spec){"causal_mask", EXACT, TS3, {g},
               "%0 = input \"x\" : f32[T]\n%1 = causal_mask : f32[T+2, T]\noutput y = %1\n", 0});
    run((Spec){"causal_mask", EXACT, TS3, {g, g},
               "%0 = input \"x\" : f32[T]\n%1 = input \"s\" : f32[S]\n%2 = causal_mask : f32[T, S]\noutput y = %2\n", 0});
    run((Spec){"causal_mask", EXACT, NULL, {g},
               "%0 = causal_mask : f32[5, 9]\noutput y = %0\n", 0});
    run((Spec){"causal_mask", EXACT, NULL, {g},
               "%0 = causal_mask : f16[7, 3]\noutput y = %0\n", 0});
}
