/* codegen_ops_u64.c: the u64 cases of test_codegen_ops (compiled code against the interpreter on
 * random values, compared as doubles). Registered last in families[] so that the cases before keep
 * their numbers and seeds. Values run across 2^63, where a signed reading of the 64 bits would
 * compare, divide and convert wrongly; the interpreter holds a u64 as its nearest double, and so does
 * the comparison, so these check the compiled code to that precision (tests/unit/test_u64.c checks
 * the bits against C's uint64_t). */
#include "codegen_ops.h"

#define TOP 18446744073709549568.0 /* 2^64 - 2048, the largest u64 that is a double */
#define P63 9223372036854775808.0  /* 2^63 */

void u64_cases(void)
{
    /* compares, maximum and minimum near 2^63 (many equal values: the inputs are doubles) */
    static const char *const cops[] = {"eq", "ne", "lt", "le", "gt", "ge"};
    for (int i = 0; i < 6; i++)
        run((Spec){cops[i], EXACT, NULL, {INT(P63 - 16384, P63 + 16384), INT(P63 - 16384, P63 + 16384)},
                   ir("%%0 = input \"a\" : u64[33]\n%%1 = input \"b\" : u64[33]\n%%2 = %s(%%0, %%1) : bool[33]\n"
                      "output y = %%2\n", cops[i]), 0});
    static const char *const ops[] = {"maximum", "minimum", "div"};
    for (int i = 0; i < 3; i++)
        run((Spec){ops[i], EXACT, NULL, {INT(0, TOP), i == 2 ? INT(0, 3) : INT(0, TOP)},
                   ir("%%0 = input \"a\" : u64[9, 17]\n%%1 = input \"b\" : u64[%s]\n%%2 = %s(%%0, %%1) : u64[9, 17]\n"
                      "output y = %%2\n", i == 2 ? "9, 17" : "17", ops[i]), 0});
    /* casts: u64 to floats and i64, i64 and floats to u64 (the edge values: NaN, infinities,
     * negatives that wrap) */
    static const struct {
        const char *from, *to;
        Gen gen;
    } c[] = {
        {"u64", "f32", INT(0, TOP)}, {"u64", "f64", INT(0, TOP)},  {"u64", "i64", INT(0, TOP)},
        {"u64", "i32", INT(0, 4294967295)}, {"i64", "u64", INT(-1e6, 1e6)}, {"f32", "u64", EDGE},
        {"f64", "u64", EDGE}, {"u64", "bool", INT(0, 3)},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        run((Spec){"cast", EXACT, NULL, {c[i].gen},
                   ir("%%0 = input \"x\" : %s[129]\n%%1 = cast(%%0) : %s[129]\noutput y = %%1\n", c[i].from, c[i].to), 0});
}

void u64_reduce_cases(void)
{
    /* max and min across 2^63, and over an empty axis (T - 1 at T = 1): 0 and 2^64 - 1 */
    static const char *const ops[] = {"max", "min"};
    for (int i = 0; i < 2; i++) {
        run((Spec){ops[i], EXACT, TS3, {INT(P63 - 1e6, P63 + 1e6)},
                   ir("%%0 = input \"x\" : u64[T, 7]\n%%1 = %s(%%0) {axis=0, keepdims=false} : u64[7]\n"
                      "output y = %%1\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, TS2, {INT(0, TOP)},
                   ir("%%0 = input \"x\" : u64[T, 5]\n%%1 = slice(%%0) {axis=0, start=1, end=T} : u64[T-1, 5]\n"
                      "%%2 = %s(%%1) {axis=0, keepdims=false} : u64[5]\noutput y = %%2\n", ops[i]), 0});
    }
}
