/* codegen_ops_attention.c: test_codegen_ops's cases for the fused attention kernel
 * (codegen/attention.c): head sizes, masks, causal and not, grouped-query heads, decoding rows
 * against thousands of keys split into chunks, the probabilities after each row (scores=true), the
 * first row's as a second result (cls_probs),
 * operands read through strides, and two threads.
 */
#include "codegen_ops.h"

#include <stdlib.h>

/* ---------------------------------------------------------------- fused attention */

/* Attention with the probabilities after each row (scores=true, what the kv-cache policies read):
 * causal prefill rows (all to the row kernel), a decoding row against a masked cache, and one
 * against 700 keys split into chunks (grouped-query heads), the first with every key masked. */
static void attention_scores_cases(void)
{
    run((Spec){"attention", MM, TS5, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"q\" : f32[2, T, 16]\n%1 = input \"k\" : f32[2, T, 16]\n%2 = input \"v\" : f32[2, T, 24]\n"
               "%3 = attention(%0, %1, %2) {scale=0.25, causal=true, scores=true} : f32[2, T, T+24]\noutput y = %3\n", 0});
    run((Spec){"attention", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, 0)},
               "%0 = input \"q\" : f32[3, 1, 40]\n%1 = input \"k\" : f32[3, T, 40]\n%2 = input \"v\" : f32[3, T, 40]\n"
               "%3 = input \"m\" : f32[1, T]\n"
               "%4 = attention(%0, %1, %2, %3) {scale=0.2, causal=false, scores=true} : f32[3, 1, T+40]\noutput y = %4\n", 0});
    for (int axis = 0; axis < 2; axis++)
        run((Spec){"attention", MM, NULL, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, axis)},
                   "%0 = input \"q\" : f32[2, 4, 1, 80]\n%1 = input \"k\" : f32[2, 1, 700, 80]\n"
                   "%2 = input \"v\" : f32[2, 1, 700, 80]\n%3 = input \"m\" : f32[1, 700]\n"
                   "%4 = attention(%0, %1, %2, %3) {scale=0.11180339887498948, causal=false, scores=true} : "
                   "f32[2, 4, 1, 780]\noutput y = %4\n", 0});
}

/* The first query row's probabilities, the attention's second result (cls_probs, EViT's [CLS]
 * attention), written by the kernel as it goes: against the interpreter, every element (outputs
 * start as NaN), with the attention's own result beside it. Token counts 1 to 197 ([CLS] and 0 to
 * 196 after it), odd head sizes, heads and batches, the block kernel (row 0 is lane 0 of the first
 * block) and the row kernel (short prompts, and every row with minrows=64), a split over the keys,
 * causal and masked rows (the first one masked everywhere: zeros), AVX2's vectors, two threads,
 * ViT's layout (q, k and v read through views of one qkv product, the result written into its
 * transpose's storage) and the old cls_attn of the same q and k beside it. */
static void attention_cls_cases(void)
{
    run((Spec){"cls_probs", MM, TS5, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"q\" : f32[2, 3, T, 17]\n%1 = input \"k\" : f32[2, 3, T, 17]\n%2 = input \"v\" : f32[2, 3, T, 9]\n"
               "%3 = attention(%0, %1, %2) {scale=0.2425, causal=false} : f32[2, 3, T, 9]\n"
               "%4 = cls_probs(%3) : f32[2, 3, T]\noutput y = %3\noutput c = %4\n", 0});
    run((Spec){"cls_probs", MM, NULL, {UNI(-2, 2), UNI(-2, 2), UNI(-1, 1)},
               "%0 = input \"q\" : f32[1, 4, 197, 32]\n%1 = input \"k\" : f32[1, 4, 197, 32]\n"
               "%2 = input \"v\" : f32[1, 4, 197, 32]\n"
               "%3 = attention(%0, %1, %2) {scale=0.1767766952966369, causal=false} : f32[1, 4, 197, 32]\n"
               "%4 = cls_probs(%3) : f32[1, 4, 197]\n%5 = cls_attn(%0, %1) {scale=0.1767766952966369} : f32[1, 4, 197]\n"
               "output y = %3\noutput c = %4\noutput old = %5\n", 0});
    run_threads(2, (Spec){"cls_probs", MM, NULL, {UNI(-2, 2), UNI(-2, 2), UNI(-1, 1)},
                          "%0 = input \"q\" : f32[3, 2, 100, 33]\n%1 = input \"k\" : f32[3, 2, 100, 33]\n"
                          "%2 = input \"v\" : f32[3, 2, 100, 7]\n"
                          "%3 = attention(%0, %1, %2) {scale=0.17, causal=false} : f32[3, 2, 100, 7]\n"
                          "%4 = cls_probs(%3) : f32[3, 2, 100]\n%5 = cls_attn(%0, %1) {scale=0.17} : f32[3, 2, 100]\n"
                          "output y = %3\noutput c = %4\noutput old = %5\n", 0});
    run_threads(2, (Spec){"cls_probs", MM, TS5, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
                          "%0 = input \"q\" : f32[T, 4, 50, 32]\n%1 = input \"k\" : f32[T, 4, 50, 32]\n"
                          "%2 = input \"v\" : f32[T, 4, 50, 32]\n"
                          "%3 = attention(%0, %1, %2) {scale=0.1767766952966369, causal=false} : f32[T, 4, 50, 32]\n"
                          "%4 = cls_probs(%3) : f32[T, 4, 50]\noutput y = %3\noutput c = %4\n", 0});
    /* causal (row 0 sees the 5 keys up to Tk - Tq), a mask whose first row is all -inf, a padding mask */
    run((Spec){"cls_probs", MM, TS5, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"q\" : f32[2, T, 16]\n%1 = input \"k\" : f32[2, S, 16]\n%2 = input \"v\" : f32[2, S, 8]\n"
               "%3 = attention(%0, %1, %2) {scale=0.25, causal=true} : f32[2, T, 8]\n"
               "%4 = cls_probs(%3) : f32[2, S]\noutput y = %3\noutput c = %4\n", 0});
    for (int axis = 0; axis < 2; axis++)
        run((Spec){"cls_probs", MM, TS5, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, axis)},
                   "%0 = input \"q\" : f32[2, T, 24]\n%1 = input \"k\" : f32[2, S, 24]\n%2 = input \"v\" : f32[2, S, 24]\n"
                   "%3 = input \"m\" : f32[T, S]\n"
                   "%4 = attention(%0, %1, %2, %3) {scale=0.2, causal=false} : f32[2, T, 24]\n"
                   "%5 = cls_probs(%4) : f32[2, S]\noutput y = %4\noutput c = %5\n", 0});
    run((Spec){"cls_probs", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, 0)},
               "%0 = input \"q\" : f32[2, 2, T, 24]\n%1 = input \"k\" : f32[2, 2, T, 24]\n%2 = input \"v\" : f32[2, 2, T, 24]\n"
               "%3 = input \"m\" : f32[2, 1, 1, T]\n"
               "%4 = attention(%0, %1, %2, %3) {scale=0.2, causal=true} : f32[2, 2, T, 24]\n"
               "%5 = cls_probs(%4) : f32[2, 2, T]\noutput y = %4\noutput c = %5\n", 0});
    run_on("x86-64-v3", (Spec){"cls_probs", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
                               "%0 = input \"q\" : f32[3, T, 21]\n%1 = input \"k\" : f32[3, T, 21]\n"
                               "%2 = input \"v\" : f32[3, T, 21]\n"
                               "%3 = attention(%0, %1, %2) {scale=0.3, causal=false} : f32[3, T, 21]\n"
                               "%4 = cls_probs(%3) : f32[3, T]\noutput y = %3\noutput c = %4\n", 0});
    /* ViT's layout: [T, 3, H, d] from one product, transposed and sliced into q, k and v (views),
     * the result written through strides into its transpose's buffer */
    run_threads(2, (Spec){"cls_probs", MM, TS3, {UNI(-1, 1)},
                          "%0 = input \"x\" : f32[T, 144]\n%1 = reshape(%0) : f32[T, 3, 3, 16]\n"
                          "%2 = transpose(%1) {perm=[1, 2, 0, 3]} : f32[3, 3, T, 16]\n"
                          "%3 = slice(%2) {axis=0, start=0, end=1} : f32[1, 3, T, 16]\n%4 = reshape(%3) : f32[3, T, 16]\n"
                          "%5 = slice(%2) {axis=0, start=1, end=2} : f32[1, 3, T, 16]\n%6 = reshape(%5) : f32[3, T, 16]\n"
                          "%7 = slice(%2) {axis=0, start=2, end=3} : f32[1, 3, T, 16]\n%8 = reshape(%7) : f32[3, T, 16]\n"
                          "%9 = attention(%4, %6, %8) {scale=0.25, causal=false} : f32[3, T, 16]\n"
                          "%10 = cls_probs(%9) : f32[3, T]\n%11 = mean(%10) {axis=0, keepdims=false} : f32[T]\n"
                          "%12 = transpose(%9) {perm=[1, 0, 2]} : f32[T, 3, 16]\n%13 = reshape(%12) : f32[T, 48]\n"
                          "output y = %13\noutput c = %11\n", 0});
    /* every row to the row kernel (row 0 there), then a split over the keys of a few rows */
    setenv("KILN_ATTN", "minrows=64", 1);
    run((Spec){"cls_probs", MM, TS5, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"q\" : f32[2, 2, T, 40]\n%1 = input \"k\" : f32[2, 2, T, 40]\n%2 = input \"v\" : f32[2, 2, T, 24]\n"
               "%3 = attention(%0, %1, %2) {scale=0.158, causal=false} : f32[2, 2, T, 24]\n"
               "%4 = cls_probs(%3) : f32[2, 2, T]\noutput y = %3\noutput c = %4\n", 0});
    setenv("KILN_ATTN", "split=40,chunk=1", 1);
    run((Spec){"cls_probs", MM, TS5, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, 0)},
               "%0 = input \"q\" : f32[2, 1, 16]\n%1 = input \"k\" : f32[2, S, 16]\n%2 = input \"v\" : f32[2, S, 16]\n"
               "%3 = input \"m\" : f32[1, S]\n"
               "%4 = attention(%0, %1, %2, %3) {scale=0.25, causal=false} : f32[2, 1, 16]\n"
               "%5 = cls_probs(%4) : f32[2, S]\noutput y = %4\noutput c = %5\n", 0});
    run((Spec){"cls_probs", MM, TS5, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"q\" : f32[3, 2, 16]\n%1 = input \"k\" : f32[3, S, 16]\n%2 = input \"v\" : f32[3, S, 16]\n"
               "%3 = attention(%0, %1, %2) {scale=0.25, causal=true} : f32[3, 2, 16]\n"
               "%4 = cls_probs(%3) : f32[3, S]\noutput y = %3\noutput c = %4\n", 0});
    unsetenv("KILN_ATTN");
}

void attention_cases(void)
{
    /* head sizes 32, 64, 80, 128; causal and not; T from 1 up; grouped-query broadcast */
    static const struct {
        const char *q, *k, *v, *out, *attrs;
        const int64_t *T;
        double range; /* q and k uniform in [-range, range]; when range > 1, integers: 30 with d = 128
                         gives scores of thousands (exp's range, the running maximum), and integer
                         operands make them exact in f32 (products of at most 900, sums of at most
                         128 of them, below 2^24) whatever the order of the sum. Real-valued scores
                         that large carry rounding errors of ~1e-3 that the softmax turns into 1e-4
                         differences from the interpreter's double wherever two keys come within a
                         few units of each other: a property of the inputs, not of the kernel. */
    } a[] = {
        {"[2, T, 32]", "[2, T, 32]", "[2, T, 32]", "[2, T, 32]", "scale=0.17677669529663687, causal=true", TS5, 1},
        {"[3, T, 64]", "[3, T, 64]", "[3, T, 64]", "[3, T, 64]", "scale=0.125, causal=false", TS3, 1},
        {"[1, T, 80]", "[1, T, 80]", "[1, T, 80]", "[1, T, 80]", "scale=0.11180339887498948, causal=true", TS3, 1},
        {"[2, T, 128]", "[2, T, 128]", "[2, T, 128]", "[2, T, 128]", "scale=1, causal=true", TS3, 30},
        {"[2, 3, T, 16]", "[2, 1, T, 16]", "[2, 1, T, 16]", "[2, 3, T, 16]", "scale=0.25, causal=true", TS3, 1},
        {"[2, T, 16]", "[2, S, 16]", "[2, S, 8]", "[2, T, 8]", "scale=0.25, causal=true", TS3, 1},  /* 5 more keys */
        {"[1, 4096, 32]", "[1, 4096, 32]", "[1, 4096, 32]", "[1, 4096, 32]", "scale=0.17677669529663687, causal=false", NULL, 1},
    };
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
        double r = a[i].range;
        run((Spec){"attention", MM, a[i].T, {r > 1 ? INT(-r, r) : UNI(-r, r), r > 1 ? INT(-r, r) : UNI(-r, r), UNI(-1, 1)},
                   ir("%%0 = input \"q\" : f32%s\n%%1 = input \"k\" : f32%s\n%%2 = input \"v\" : f32%s\n"
                      "%%3 = attention(%%0, %%1, %%2) {%s} : f32%s\noutput y = %%3\n",
                      a[i].q, a[i].k, a[i].v, a[i].attrs, a[i].out), 0});
    }
    /* an additive mask with -inf entries and a fully masked first row: zeros, never NaN */
    run((Spec){"attention", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, 0)},
               "%0 = input \"q\" : f32[2, T, 16]\n%1 = input \"k\" : f32[2, T, 16]\n%2 = input \"v\" : f32[2, T, 16]\n"
               "%3 = input \"m\" : f32[T, T]\n"
               "%4 = attention(%0, %1, %2, %3) {scale=0.25, causal=false} : f32[2, T, 16]\noutput y = %4\n", 0});
    run((Spec){"attention", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, 1)},
               "%0 = input \"q\" : f32[2, 2, T, 16]\n%1 = input \"k\" : f32[2, 1, T, 16]\n%2 = input \"v\" : f32[2, 1, T, 16]\n"
               "%3 = input \"m\" : f32[2, 1, T, T]\n"
               "%4 = attention(%0, %1, %2, %3) {scale=0.25, causal=true} : f32[2, 2, T, 16]\noutput y = %4\n", 0});

    /* The kernel's paths (codegen/attention.c): blocks of 16 rows (AVX-512; 8 with AVX2) with a
     * last block of 1 to 15 rows, rows one by one when a block has fewer than 8, head sizes that are
     * no multiple of the vector (40, 8, 24, 80), dv != d, fewer keys than queries under the causal
     * mask (the first rows see nothing: zeros), head sizes only known at run time, and a single
     * query row against thousands of keys, whose keys are split into chunks merged at the end
     * (one row on one thread: two chunks). */
    static const struct {
        const char *q, *k, *v, *out, *attrs;
        const int64_t *T;
        double range; /* as a[]'s */
    } b[] = {
        {"[3, T, 40]", "[3, T, 40]", "[3, T, 40]", "[3, T, 40]", "scale=0.15811388300841897, causal=false", TS5, 1},
        {"[2, T, 8]", "[2, S, 8]", "[2, S, 24]", "[2, T, 24]", "scale=0.35355339059327373, causal=true", TS5, 1},
        {"[2, T, 24]", "[2, 3, 24]", "[2, 3, 24]", "[2, T, 24]", "scale=0.2, causal=true", TS5, 1},
        {"[2, T, 16]", "[2, T, 16]", "[2, T, T]", "[2, T, T]", "scale=0.25, causal=false", TS3, 1},
        {"[2, 9, T]", "[2, 12, T]", "[2, 12, 20]", "[2, 9, 20]", "scale=0.2, causal=true", TS3, 1},
        {"[1, 1, 64]", "[1, 3000, 64]", "[1, 3000, 64]", "[1, 1, 64]", "scale=0.125, causal=false", NULL, 1},
        {"[1, 1, 64]", "[1, 3000, 64]", "[1, 3000, 64]", "[1, 1, 64]", "scale=0.125, causal=true", NULL, 1},
        {"[1, 128]", "[2000, 128]", "[2000, 128]", "[1, 128]", "scale=1, causal=true", NULL, 30},
        {"[2, 4, 1, 80]", "[2, 1, 700, 80]", "[2, 1, 700, 80]", "[2, 4, 1, 80]", "scale=0.11180339887498948, causal=true", NULL, 1},
    };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        double r = b[i].range;
        run((Spec){"attention", MM, b[i].T, {r > 1 ? INT(-r, r) : UNI(-r, r), r > 1 ? INT(-r, r) : UNI(-r, r), UNI(-1, 1)},
                   ir("%%0 = input \"q\" : f32%s\n%%1 = input \"k\" : f32%s\n%%2 = input \"v\" : f32%s\n"
                      "%%3 = attention(%%0, %%1, %%2) {%s} : f32%s\noutput y = %%3\n",
                      b[i].q, b[i].k, b[i].v, b[i].attrs, b[i].out), 0});
    }
    /* one row against 3000 keys with a mask: a quarter of the keys masked, then all of them (zeros) */
    for (int axis = 0; axis < 2; axis++)
        run((Spec){"attention", MM, NULL, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, axis)},
                   "%0 = input \"q\" : f32[1, 1, 64]\n%1 = input \"k\" : f32[1, 3000, 64]\n%2 = input \"v\" : f32[1, 3000, 64]\n"
                   "%3 = input \"m\" : f32[1, 3000]\n"
                   "%4 = attention(%0, %1, %2, %3) {scale=0.125, causal=true} : f32[1, 1, 64]\noutput y = %4\n", 0});
    /* a padding mask, the same for every query of a batch index (one value per key and block) */
    run((Spec){"attention", MM, TS3, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, 0)},
               "%0 = input \"q\" : f32[2, 2, T, 24]\n%1 = input \"k\" : f32[2, 2, T, 24]\n%2 = input \"v\" : f32[2, 2, T, 24]\n"
               "%3 = input \"m\" : f32[2, 1, 1, T]\n"
               "%4 = attention(%0, %1, %2, %3) {scale=0.2, causal=false} : f32[2, 2, T, 24]\noutput y = %4\n", 0});
    /* Splits of a few keys into many chunks (KILN_ATTN, read at compile time by the forked case):
     * chunks past a row's last visible key are empty, and the first row, masked everywhere, gives 0 */
    setenv("KILN_ATTN", "split=40,chunk=1", 1);
    run((Spec){"attention", MM, TS5, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, 1)},
               "%0 = input \"q\" : f32[2, T, 16]\n%1 = input \"k\" : f32[2, S, 16]\n%2 = input \"v\" : f32[2, S, 16]\n"
               "%3 = input \"m\" : f32[T, S]\n"
               "%4 = attention(%0, %1, %2, %3) {scale=0.25, causal=true} : f32[2, T, 16]\noutput y = %4\n", 0});
    run((Spec){"attention", MM, TS5, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"q\" : f32[3, T, 40]\n%1 = input \"k\" : f32[3, T, 40]\n%2 = input \"v\" : f32[3, T, 40]\n"
               "%3 = attention(%0, %1, %2) {scale=0.15811388300841897, causal=true} : f32[3, T, 40]\noutput y = %3\n", 0});
    attention_scores_cases();
    unsetenv("KILN_ATTN");
    attention_scores_cases();
    attention_cls_cases();

    /* q, k and v read through strides from where they lie (codegen/plan.c's Plan.view), and the
     * result written through strides into its transpose's storage (Plan.writes_into): GPT-2's
     * slices of one [T, 3D] product, reshaped to heads and transposed; ViT's reshape to [T, 3, H, d],
     * one transpose and slices along the first axis; the same with q also an output (so q is
     * stored, k and v are not) and no causal mask; d = 24 over 2 heads with a mask. */
    run((Spec){"attention", MM, TS5, {UNI(-1, 1)}, "%0 = input \"x\" : f32[T, 144]\n"
        "%1 = slice(%0) {axis=1, start=0, end=48} : f32[T, 48]\n%2 = slice(%0) {axis=1, start=48, end=96} : f32[T, 48]\n"
        "%3 = slice(%0) {axis=1, start=96, end=144} : f32[T, 48]\n"
        "%4 = reshape(%1) : f32[T, 3, 16]\n%5 = transpose(%4) {perm=[1, 0, 2]} : f32[3, T, 16]\n"
        "%6 = reshape(%2) : f32[T, 3, 16]\n%7 = transpose(%6) {perm=[1, 0, 2]} : f32[3, T, 16]\n"
        "%8 = reshape(%3) : f32[T, 3, 16]\n%9 = transpose(%8) {perm=[1, 0, 2]} : f32[3, T, 16]\n"
        "%10 = attention(%5, %7, %9) {scale=0.25, causal=true} : f32[3, T, 16]\n"
        "%11 = transpose(%10) {perm=[1, 0, 2]} : f32[T, 3, 16]\n%12 = reshape(%11) : f32[T, 48]\noutput y = %12\n", 0});
    run((Spec){"attention", MM, TS3, {UNI(-1, 1)},
               "%0 = input \"x\" : f32[T, 144]\n%1 = reshape(%0) : f32[T, 3, 3, 16]\n"
               "%2 = transpose(%1) {perm=[1, 2, 0, 3]} : f32[3, 3, T, 16]\n"
               "%3 = slice(%2) {axis=0, start=0, end=1} : f32[1, 3, T, 16]\n%4 = reshape(%3) : f32[3, T, 16]\n"
               "%5 = slice(%2) {axis=0, start=1, end=2} : f32[1, 3, T, 16]\n%6 = reshape(%5) : f32[3, T, 16]\n"
               "%7 = slice(%2) {axis=0, start=2, end=3} : f32[1, 3, T, 16]\n%8 = reshape(%7) : f32[3, T, 16]\n"
               "%9 = attention(%4, %6, %8) {scale=0.25, causal=false} : f32[3, T, 16]\n"
               "%10 = transpose(%9) {perm=[1, 0, 2]} : f32[T, 3, 16]\n%11 = reshape(%10) : f32[T, 48]\noutput y = %11\n",
               0});
    /* ViT's layout with q also an output: the transpose to [3, H, T, d] is stored (q's slice reads it),
     * and k and v are views of that stored transpose, not of the product below it (whose buffer is
     * free once the transpose has read it) */
    run((Spec){"attention", MM, TS3, {UNI(-1, 1)},
               "%0 = input \"x\" : f32[T, 144]\n%12 = neg(%0) : f32[T, 144]\n%1 = reshape(%12) : f32[T, 3, 3, 16]\n"
               "%2 = transpose(%1) {perm=[1, 2, 0, 3]} : f32[3, 3, T, 16]\n"
               "%3 = slice(%2) {axis=0, start=0, end=1} : f32[1, 3, T, 16]\n%4 = reshape(%3) : f32[3, T, 16]\n"
               "%5 = slice(%2) {axis=0, start=1, end=2} : f32[1, 3, T, 16]\n%6 = reshape(%5) : f32[3, T, 16]\n"
               "%7 = slice(%2) {axis=0, start=2, end=3} : f32[1, 3, T, 16]\n%8 = reshape(%7) : f32[3, T, 16]\n"
               "%9 = attention(%4, %6, %8) {scale=0.25, causal=true} : f32[3, T, 16]\n"
               "%10 = transpose(%9) {perm=[1, 0, 2]} : f32[T, 3, 16]\n%11 = reshape(%10) : f32[T, 48]\n"
               "output y = %11\noutput q = %4\n",
               0});
    run((Spec){"attention", MM, TS3, {UNI(-1, 1)},
               "%0 = input \"x\" : f32[T, 144]\n"
               "%1 = slice(%0) {axis=1, start=0, end=48} : f32[T, 48]\n%2 = slice(%0) {axis=1, start=48, end=96} : f32[T, 48]\n"
               "%3 = slice(%0) {axis=1, start=96, end=144} : f32[T, 48]\n"
               "%4 = reshape(%1) : f32[T, 3, 16]\n%5 = transpose(%4) {perm=[1, 0, 2]} : f32[3, T, 16]\n"
               "%6 = reshape(%2) : f32[T, 3, 16]\n%7 = transpose(%6) {perm=[1, 0, 2]} : f32[3, T, 16]\n"
               "%8 = reshape(%3) : f32[T, 3, 16]\n%9 = transpose(%8) {perm=[1, 0, 2]} : f32[3, T, 16]\n"
               "%10 = attention(%5, %7, %9) {scale=0.25, causal=false} : f32[3, T, 16]\n"
               "%11 = transpose(%10) {perm=[1, 0, 2]} : f32[T, 3, 16]\n%12 = reshape(%11) : f32[T, 48]\n"
               "output y = %12\noutput q = %5\n",
               0});
    run((Spec){"attention", MM, TS3, {UNI(-1, 1), NINF(-2, 2, 1)},
               "%0 = input \"x\" : f32[T, 144]\n%1 = input \"m\" : f32[T, T]\n%2 = reshape(%0) : f32[T, 3, 2, 24]\n"
               "%3 = transpose(%2) {perm=[1, 2, 0, 3]} : f32[3, 2, T, 24]\n"
               "%4 = slice(%3) {axis=0, start=0, end=1} : f32[1, 2, T, 24]\n%5 = reshape(%4) : f32[2, T, 24]\n"
               "%6 = slice(%3) {axis=0, start=1, end=2} : f32[1, 2, T, 24]\n%7 = reshape(%6) : f32[2, T, 24]\n"
               "%8 = slice(%3) {axis=0, start=2, end=3} : f32[1, 2, T, 24]\n%9 = reshape(%8) : f32[2, T, 24]\n"
               "%10 = attention(%5, %7, %9, %1) {scale=0.2, causal=true} : f32[2, T, 24]\n"
               "%11 = transpose(%10) {perm=[1, 0, 2]} : f32[T, 2, 24]\n%12 = reshape(%11) : f32[T, 48]\noutput y = %12\n",
               0});

    /* The same comparison on two threads: one or two decoding rows split over the threads by keys,
     * and blocks of rows shared out. */
    static const char *const two[] = {
        "%0 = input \"q\" : f32[1, 1, 64]\n%1 = input \"k\" : f32[1, 3000, 64]\n%2 = input \"v\" : f32[1, 3000, 64]\n"
        "%3 = attention(%0, %1, %2) {scale=0.125, causal=false} : f32[1, 1, 64]\noutput y = %3\n",
        "%0 = input \"q\" : f32[2, 1, 40]\n%1 = input \"k\" : f32[2, 1000, 40]\n%2 = input \"v\" : f32[2, 1000, 40]\n"
        "%3 = input \"m\" : f32[1, 1000]\n"
        "%4 = attention(%0, %1, %2, %3) {scale=0.15811388300841897, causal=true} : f32[2, 1, 40]\noutput y = %4\n",
        "%0 = input \"q\" : f32[3, 45, 64]\n%1 = input \"k\" : f32[3, 45, 64]\n%2 = input \"v\" : f32[3, 45, 64]\n"
        "%3 = attention(%0, %1, %2) {scale=0.125, causal=true} : f32[3, 45, 64]\noutput y = %3\n",
        /* q, k, v and the result through strides (GPT-2's layout) */
        "%0 = input \"x\" : f32[40, 144]\n"
        "%1 = slice(%0) {axis=1, start=0, end=48} : f32[40, 48]\n%2 = slice(%0) {axis=1, start=48, end=96} : f32[40, 48]\n"
        "%3 = slice(%0) {axis=1, start=96, end=144} : f32[40, 48]\n"
        "%4 = reshape(%1) : f32[40, 3, 16]\n%5 = transpose(%4) {perm=[1, 0, 2]} : f32[3, 40, 16]\n"
        "%6 = reshape(%2) : f32[40, 3, 16]\n%7 = transpose(%6) {perm=[1, 0, 2]} : f32[3, 40, 16]\n"
        "%8 = reshape(%3) : f32[40, 3, 16]\n%9 = transpose(%8) {perm=[1, 0, 2]} : f32[3, 40, 16]\n"
        "%10 = attention(%5, %7, %9) {scale=0.25, causal=true} : f32[3, 40, 16]\n"
        "%11 = transpose(%10) {perm=[1, 0, 2]} : f32[40, 3, 16]\n%12 = reshape(%11) : f32[40, 48]\noutput y = %12\n",
    };
    for (size_t c = 0; c < sizeof two / sizeof two[0]; c++)
        run_threads(2, (Spec){"attention", MM, NULL, {UNI(-1, 1), UNI(-1, 1), UNI(-1, 1), NINF(-2, 2, 0)}, two[c], 0});
}
