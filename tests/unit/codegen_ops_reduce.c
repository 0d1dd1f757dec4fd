/* codegen_ops_reduce.c: test_codegen_ops's cases for the reductions (sum, mean, max, min along each
 * axis, with and without keepdims, over empty axes) and the normalisations (softmax and log_softmax
 * with -inf and NaN rows, layernorm, rmsnorm), in f32, f64, f16 and bf16.
 */
#include "codegen_ops.h"

/* ---------------------------------------------------------------- reductions and normalisations */

void reduce_cases(void)
{
    static const char *const ops[] = {"sum", "mean", "max", "min"};
    static const char *const out_shape[3][2] = {
        {"[7, 17]", "[1, 7, 17]"}, {"[T, 17]", "[T, 1, 17]"}, {"[T, 7]", "[T, 7, 1]"}};
    for (int i = 0; i < 4; i++)
        for (int axis = 0; axis < 3; axis++)
            for (int kd = 0; kd < 2; kd++) {
                const char *os = out_shape[axis][kd];
                if (axis == 0) /* reducing T away: the output has no T */
                    os = kd ? "[1, 7, 17]" : "[7, 17]";
                run((Spec){ops[i], i < 2 ? RED : EXACT, TS3, {i < 2 ? UNI(-100, 100) : SPEC(-100, 100)},
                           ir("%%0 = input \"x\" : f32[T, 7, 17]\n%%1 = %s(%%0) {axis=%d, keepdims=%s} : f32%s\n"
                              "output y = %%1\n", ops[i], axis, kd ? "true" : "false", os), 0});
            }
    /* integer sums wrap (i32), max and min of i32, u8 and i64; a long row; a rank-1 input */
    for (int i = 0; i < 4; i++) {
        if (i == 1)
            continue; /* mean is float only */
        run((Spec){ops[i], EXACT, TS3, {INT(-2147483647, 2147483647)},
                   ir("%%0 = input \"x\" : i32[T, 33]\n%%1 = %s(%%0) {axis=0, keepdims=false} : i32[33]\n"
                      "output y = %%1\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, NULL, {INT(-1000000, 1000000)},
                   ir("%%0 = input \"x\" : i32[3, 65]\n%%1 = %s(%%0) {axis=1, keepdims=true} : i32[3, 1]\n"
                      "output y = %%1\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, NULL, {INT(0, 255)},
                   ir("%%0 = input \"x\" : u8[5, 9]\n%%1 = %s(%%0) {axis=1, keepdims=false} : u8[5]\n"
                      "output y = %%1\n", ops[i]), 0});
        run((Spec){ops[i], EXACT, NULL, {INT(-1000000000000, 1000000000000)},
                   ir("%%0 = input \"x\" : i64[4, 7]\n%%1 = %s(%%0) {axis=0, keepdims=false} : i64[7]\n"
                      "output y = %%1\n", ops[i]), 0});
    }
    /* an axis of T - 1 elements, empty at T = 1: sum 0, mean NaN, max -inf, min +inf */
    for (int i = 0; i < 4; i++)
        run((Spec){ops[i], i < 2 ? RED : EXACT, TS2, {UNI(-10, 10)},
                   ir("%%0 = input \"x\" : f32[T, 5]\n%%1 = slice(%%0) {axis=0, start=1, end=T} : f32[T-1, 5]\n"
                      "%%2 = %s(%%1) {axis=0, keepdims=false} : f32[5]\noutput y = %%2\n", ops[i]), 0});
    run((Spec){"sum", RED, NULL, {UNI(-1, 1)},
               "%0 = input \"x\" : f32[4099]\n%1 = sum(%0) {axis=0, keepdims=false} : f32[]\noutput y = %1\n", 0});
    run((Spec){"mean", RED, NULL, {UNI(-1, 1)},
               "%0 = input \"x\" : f32[1, 1]\n%1 = mean(%0) {axis=1, keepdims=true} : f32[1, 1]\noutput y = %1\n", 0});
    run((Spec){"sum", RED, NULL, {UNI(-1e3, 1e3)},
               "%0 = input \"x\" : f64[9, 17]\n%1 = sum(%0) {axis=0, keepdims=false} : f64[17]\noutput y = %1\n", 0});
    run((Spec){"min", EXACT, NULL, {SPEC(-5, 5)},
               "%0 = input \"x\" : f64[9, 17]\n%1 = min(%0) {axis=1, keepdims=true} : f64[9, 1]\noutput y = %1\n", 0});
    run((Spec){"max", EXACT, NULL, {SPEC(-5, 5)},
               "%0 = input \"x\" : f16[9, 17]\n%1 = max(%0) {axis=1, keepdims=false} : f16[9]\noutput y = %1\n", 0});
    run((Spec){"sum", F16, NULL, {UNI(-4, 4)},
               "%0 = input \"x\" : f16[9, 33]\n%1 = sum(%0) {axis=1, keepdims=false} : f16[9]\noutput y = %1\n", 0});
    run((Spec){"mean", BF16, NULL, {UNI(-4, 4)},
               "%0 = input \"x\" : bf16[33, 9]\n%1 = mean(%0) {axis=0, keepdims=true} : bf16[1, 9]\noutput y = %1\n", 0});
}

void normalise_cases(void)
{
    static const char *const ops[] = {"softmax", "log_softmax"};
    for (int i = 0; i < 2; i++) {
        for (int axis = 0; axis < 3; axis++) {
            /* -inf entries, the first row along the axis all -inf (NaN, as PyTorch) */
            run((Spec){ops[i], NORM, TS3, {NINF(-30, 30, axis)},
                       ir("%%0 = input \"x\" : f32[T, 3, 17]\n%%1 = %s(%%0) {axis=%d} : f32[T, 3, 17]\n"
                          "output y = %%1\n", ops[i], axis), 0});
        }
        /* large magnitudes: rows dominated by one entry, exp underflowing to 0 */
        run((Spec){ops[i], NORM, TS2, {WIDE(1e-2, 1e4)},
                   ir("%%0 = input \"x\" : f32[T, 65]\n%%1 = %s(%%0) {axis=1} : f32[T, 65]\noutput y = %%1\n", ops[i]), 0});
        run((Spec){ops[i], NORM, NULL, {UNI(-5, 5)},
                   ir("%%0 = input \"x\" : f32[1]\n%%1 = %s(%%0) {axis=0} : f32[1]\noutput y = %%1\n", ops[i]), 0});
        run((Spec){ops[i], F16, NULL, {UNI(-8, 8)},
                   ir("%%0 = input \"x\" : f16[5, 33]\n%%1 = %s(%%0) {axis=1} : f16[5, 33]\noutput y = %%1\n", ops[i]), 0});
    }
    /* attention over S keys for T queries: causal mask [T, S] */
    run((Spec){"softmax", NORM, TS3, {UNI(-10, 10)},
               "%0 = input \"x\" : f32[T, S]\n%1 = causal_mask : f32[T, S]\n%2 = add(%0, %1) : f32[T, S]\n"
               "%3 = softmax(%2) {axis=1} : f32[T, S]\noutput y = %3\n", 0});
    run((Spec){"log_softmax", NORM, NULL, {NINF(-30, 30, 1)},
               "%0 = input \"x\" : f64[5, 9]\n%1 = log_softmax(%0) {axis=1} : f64[5, 9]\noutput y = %1\n", 0});
    /* NaN and +inf in rows: NaN rows */
    run((Spec){"softmax", NORM, NULL, {SPEC(-5, 5)},
               "%0 = input \"x\" : f32[9, 7]\n%1 = softmax(%0) {axis=1} : f32[9, 7]\noutput y = %1\n", 0});
    run((Spec){"log_softmax", NORM, NULL, {SPEC(-5, 5)},
               "%0 = input \"x\" : f32[7, 9]\n%1 = log_softmax(%0) {axis=0} : f32[7, 9]\noutput y = %1\n", 0});
    /* softmax after a causal mask, the attention pattern */
    run((Spec){"softmax", NORM, TS3, {UNI(-10, 10)},
               "%0 = input \"x\" : f32[2, T, T]\n%1 = causal_mask : f32[T, T]\n%2 = add(%0, %1) : f32[2, T, T]\n"
               "%3 = softmax(%2) {axis=2} : f32[2, T, T]\noutput y = %3\n", 0});

    Gen x = UNI(-10, 10), gm = UNI(-2, 2);
    run((Spec){"layernorm", NORM, TS5, {x, gm, gm},
               "%0 = input \"x\" : f32[T, 17]\n%1 = input \"g\" : f32[17]\n%2 = input \"b\" : f32[17]\n"
               "%3 = layernorm(%0, %1, %2) {eps=1e-05} : f32[T, 17]\noutput y = %3\n", 0});
    run((Spec){"layernorm", NORM, NULL, {x, gm, gm},
               "%0 = input \"x\" : f32[2, 3, 65]\n%1 = input \"g\" : f32[65]\n%2 = input \"b\" : f32[65]\n"
               "%3 = layernorm(%0, %1, %2) {eps=0.001} : f32[2, 3, 65]\noutput y = %3\n", 0});
    run((Spec){"layernorm", NORM, NULL, {x, gm, gm},
               "%0 = input \"x\" : f32[7, 1]\n%1 = input \"g\" : f32[1]\n%2 = input \"b\" : f32[1]\n"
               "%3 = layernorm(%0, %1, %2) {eps=1e-05} : f32[7, 1]\noutput y = %3\n", 0});
    run((Spec){"layernorm", NORM, NULL, {UNI(1000, 1001), gm, gm}, /* a large mean: two passes matter */
               "%0 = input \"x\" : f32[33]\n%1 = input \"g\" : f32[33]\n%2 = input \"b\" : f32[33]\n"
               "%3 = layernorm(%0, %1, %2) {eps=1e-05} : f32[33]\noutput y = %3\n", 0});
    run((Spec){"layernorm", F16, NULL, {x, gm, gm},
               "%0 = input \"x\" : f16[3, 17]\n%1 = input \"g\" : f16[17]\n%2 = input \"b\" : f16[17]\n"
               "%3 = layernorm(%0, %1, %2) {eps=1e-05} : f16[3, 17]\noutput y = %3\n", 0});
    run((Spec){"layernorm", F16, NULL, {x, gm, gm},
               "%0 = input \"x\" : f16[3, 17]\n%1 = input \"g\" : f32[17]\n%2 = input \"b\" : f32[17]\n"
               "%3 = layernorm(%0, %1, %2) {eps=1e-05} : f16[3, 17]\noutput y = %3\n", 0});
    run((Spec){"layernorm", NORM, TS3, {x, gm, gm}, /* over a symbolic axis */
               "%0 = input \"x\" : f32[3, T]\n%1 = input \"g\" : f32[T]\n%2 = input \"b\" : f32[T]\n"
               "%3 = layernorm(%0, %1, %2) {eps=1e-05} : f32[3, T]\noutput y = %3\n", 0});
    run((Spec){"rmsnorm", NORM, TS5, {x, gm},
               "%0 = input \"x\" : f32[T, 17]\n%1 = input \"g\" : f32[17]\n"
               "%2 = rmsnorm(%0, %1) {eps=1e-06} : f32[T, 17]\noutput y = %2\n", 0});
    run((Spec){"rmsnorm", NORM, NULL, {x, gm},
               "%0 = input \"x\" : f32[2, 3, 65]\n%1 = input \"g\" : f32[65]\n"
               "%2 = rmsnorm(%0, %1) {eps=1e-05} : f32[2, 3, 65]\noutput y = %2\n", 0});
    run((Spec){"rmsnorm", NORM, NULL, {x, gm},
               "%0 = input \"x\" : f32[1]\n%1 = input \"g\" : f32[1]\n%2 = rmsnorm(%0, %1) {eps=0} : f32[1]\n"
               "output y = %2\n", 0});
    run((Spec){"rmsnorm", BF16, NULL, {x, gm},
               "%0 = input \"x\" : bf16[5, 33]\n%1 = input \"g\" : bf16[33]\n"
               "%2 = rmsnorm(%0, %1) {eps=1e-05} : bf16[5, 33]\noutput y = %2\n", 0});
}
