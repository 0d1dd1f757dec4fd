/* codegen_ops_tokens.c: test_codegen_ops's cases for the token merging and pruning ops (tome_match,
 * pitome_match, token_merge, cls_attn, evit_select).
 */
#include "codegen_ops.h"

/* ---------------------------------------------------------------- token merging and pruning
 *
 * The kernels (token_merge, cls_attn and the similarities of tome_match and pitome_match generated
 * by codegen/merge.c; the selections and evit_select the runtime's, runtime/tokens.c) over batch rows
 * T of static token counts. The destinations must be exact: the kernels compute in f32 and the interpreter in
 * double, so inputs are kept far from ties (random scores over a dozen tokens). token_merge reads
 * random destinations (every token somewhere in [0, T2), some rows empty: a mean over nothing is
 * NaN on both sides). */
void token_cases(void)
{
    static const struct {
        const char *in, *out, *attrs;
    } m[] = {
        {"[T, 11, 8]", "[T, 11]", "r=4, cls=true"},
        {"[T, 12, 5]", "[T, 12]", "r=6"},
        {"[T, 3, 17, 33]", "[T, 3, 17]", "r=1, cls=true"},
        {"[T, 1, 7]", "[T, 1]", "r=0"},
        {"[T, 50, 32]", "[T, 50]", "r=4, cls=true"},   /* vit-mnist's layer 0 */
        {"[T, 197, 64]", "[T, 197]", "r=13, cls=true"}, /* ViT-B/16's */
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        run((Spec){"tome_match", EXACT, TS3, {UNI(-1, 1)},
                   ir("%%0 = input \"m\" : f32%s\n%%1 = tome_match(%%0) {%s} : i32%s\noutput y = %%1\n", m[i].in,
                      m[i].attrs, m[i].out), 0});
    static const struct {
        const char *in, *out, *attrs;
    } pm[] = {
        {"[T, 13, 8]", "[T, 13]", "r=3, cls=true, margin=0.5"},
        {"[T, 12, 5]", "[T, 12]", "r=4, cls=true, margin=0.75, bsm=true"},
        {"[T, 2, 10, 16]", "[T, 2, 10]", "r=5, margin=0.25"},
        {"[T, 9, 7]", "[T, 9]", "r=2, margin=0, bsm=true"},
    };
    for (size_t i = 0; i < sizeof pm / sizeof pm[0]; i++)
        run((Spec){"pitome_match", EXACT, TS3, {UNI(-1, 1)},
                   ir("%%0 = input \"m\" : f32%s\n%%1 = pitome_match(%%0) {%s} : i32%s\noutput y = %%1\n", pm[i].in,
                      pm[i].attrs, pm[i].out), 0});
    run((Spec){"token_merge", MM, TS3, {UNI(-2, 2), INT(0, 6), UNI(0.5, 4)},
               "%0 = input \"x\" : f32[T, 11, 70]\n%1 = input \"d\" : i32[T, 11]\n%2 = input \"w\" : f32[T, 11, 1]\n"
               "%3 = token_merge(%0, %1, %2) {mode=mean} : f32[T, 7, 70]\noutput y = %3\n", 0});
    run((Spec){"token_merge", MM, TS3, {UNI(-2, 2), INT(0, 4)},
               "%0 = input \"x\" : f32[T, 9, 3]\n%1 = input \"d\" : i32[T, 9]\n"
               "%2 = token_merge(%0, %1) {mode=sum} : f32[T, 5, 3]\noutput y = %2\n", 0});
    run((Spec){"token_merge", MM, NULL, {UNI(-2, 2), INT(0, 190), UNI(0, 1)},
               "%0 = input \"x\" : f32[2, 197, 768]\n%1 = input \"d\" : i32[2, 197]\n%2 = input \"w\" : f32[2, 197, 1]\n"
               "%3 = token_merge(%0, %1, %2) {mode=sum} : f32[2, 191, 768]\noutput y = %3\n", 0});
    /* the generated merge's column blocks (8 vectors: 32, 64 or 128 columns): whole, one column, a
     * block and one more, several batch dims, a mean without weights, every token into one */
    run((Spec){"token_merge", MM, TS3, {UNI(-2, 2), INT(0, 4)},
               "%0 = input \"x\" : f32[T, 13, 64]\n%1 = input \"d\" : i32[T, 13]\n"
               "%2 = token_merge(%0, %1) {mode=mean} : f32[T, 5, 64]\noutput y = %2\n", 0});
    run((Spec){"token_merge", MM, NULL, {UNI(-2, 2), INT(0, 2), UNI(0.5, 2)},
               "%0 = input \"x\" : f32[3, 2, 23, 129]\n%1 = input \"d\" : i32[3, 2, 23]\n"
               "%2 = input \"w\" : f32[3, 2, 23, 1]\n"
               "%3 = token_merge(%0, %1, %2) {mode=mean} : f32[3, 2, 3, 129]\noutput y = %3\n", 0});
    run((Spec){"token_merge", MM, TS3, {UNI(-2, 2), INT(0, 0), UNI(0.5, 2)},
               "%0 = input \"x\" : f32[T, 7, 1]\n%1 = input \"d\" : i32[T, 7]\n%2 = input \"w\" : f32[T, 7, 1]\n"
               "%3 = token_merge(%0, %1, %2) {mode=sum} : f32[T, 1, 1]\noutput y = %3\n", 0});
    run((Spec){"cls_attn", NORM, TS3, {UNI(-1, 1), UNI(-1, 1)},
               "%0 = input \"q\" : f32[T, 3, 9, 16]\n%1 = input \"k\" : f32[T, 3, 13, 16]\n"
               "%2 = cls_attn(%0, %1) {scale=0.25} : f32[T, 3, 13]\noutput y = %2\n", 0});
    run((Spec){"cls_attn", NORM, NULL, {UNI(-3, 3), UNI(-3, 3)},
               "%0 = input \"q\" : f32[5, 64]\n%1 = input \"k\" : f32[197, 64]\n"
               "%2 = cls_attn(%0, %1) {scale=0.125} : f32[197]\noutput y = %2\n", 0});
    run((Spec){"evit_select", EXACT, TS3, {UNI(0, 1)},
               "%0 = input \"a\" : f32[T, 13]\n%1 = evit_select(%0) {keep=7} : i32[T, 13]\noutput y = %1\n", 0});
    run((Spec){"evit_select", EXACT, TS3, {INT(0, 3)}, /* ties: the lower index first, on both sides */
               "%0 = input \"a\" : f32[T, 20]\n%1 = evit_select(%0) {keep=10} : i32[T, 20]\noutput y = %1\n", 0});
    /* PiToMe's generated energies and similarities (blocks of 4 or 8 rows by a vector of columns, the
     * symmetric half, the best column per lane): token counts after [CLS] below, at and past a vector
     * and a block (1, 3, 5, 18, 20, 49, 196), odd widths, both variants, several batch dims, vit-mnist's
     * shape on two threads and vit-mnist56's (ViT-B/16's token count). The selections must be exact,
     * so the energies of these random rows must not come within f32 rounding (~1e-7) of each other:
     * improbable at these counts, and the cases are seeded, so a pass stays a pass. */
    static const struct {
        const char *in, *out, *attrs;
    } pg[] = {
        {"[T, 2, 5]", "[T, 2]", "r=0, cls=true, margin=0.5, bsm=true"},
        {"[T, 4, 6]", "[T, 4]", "r=1, cls=true, margin=0.5"},
        {"[T, 5, 3]", "[T, 5]", "r=2, margin=0.75"},
        {"[T, 21, 17]", "[T, 21]", "r=10, cls=true, margin=0.25"},
        {"[T, 2, 19, 7]", "[T, 2, 19]", "r=9, cls=true, margin=0.6, bsm=true"},
        {"[T, 20, 33]", "[T, 20]", "r=7, margin=0.1, bsm=true"},
        {"[T, 50, 33]", "[T, 50]", "r=4, cls=true, margin=0.375"},
    };
    for (size_t i = 0; i < sizeof pg / sizeof pg[0]; i++)
        run((Spec){"pitome_match", EXACT, TS3, {UNI(-1, 1)},
                   ir("%%0 = input \"m\" : f32%s\n%%1 = pitome_match(%%0) {%s} : i32%s\noutput y = %%1\n", pg[i].in,
                      pg[i].attrs, pg[i].out), 0});
    run_threads(2, (Spec){"pitome_match", EXACT, TS3, {UNI(-1, 1)},
                          "%0 = input \"m\" : f32[T, 50, 32]\n"
                          "%1 = pitome_match(%0) {r=8, cls=true, margin=0.75, bsm=true} : i32[T, 50]\n"
                          "output y = %1\n", 0});
    run((Spec){"pitome_match", EXACT, NULL, {UNI(-1, 1)},
               "%0 = input \"m\" : f32[2, 197, 32]\n"
               "%1 = pitome_match(%0) {r=16, cls=true, margin=0.75, bsm=true} : i32[2, 197]\noutput y = %1\n", 0});
    run((Spec){"pitome_match", EXACT, NULL, {UNI(-1, 1)},
               "%0 = input \"m\" : f32[2, 197, 64]\n"
               "%1 = pitome_match(%0) {r=13, cls=true, margin=0.375} : i32[2, 197]\noutput y = %1\n", 0});
    /* AVX2 (--cpu x86-64-v3): vectors of 8 and blocks of 4 rows */
    run_on("x86-64-v3", (Spec){"pitome_match", EXACT, TS3, {UNI(-1, 1)},
                               "%0 = input \"m\" : f32[T, 50, 33]\n"
                               "%1 = pitome_match(%0) {r=8, cls=true, margin=0.75, bsm=true} : i32[T, 50]\n"
                               "output y = %1\n", 0});
    run_on("x86-64-v3", (Spec){"pitome_match", EXACT, TS3, {UNI(-1, 1)},
                               "%0 = input \"m\" : f32[T, 21, 17]\n"
                               "%1 = pitome_match(%0) {r=10, cls=true, margin=0.25} : i32[T, 21]\noutput y = %1\n", 0});
    /* the generated cls_attn: whole vectors of keys and a masked last one, an odd head size, two threads */
    run((Spec){"cls_attn", NORM, TS3, {UNI(-2, 2), UNI(-2, 2)},
               "%0 = input \"q\" : f32[T, 2, 7, 33]\n%1 = input \"k\" : f32[T, 2, 50, 33]\n"
               "%2 = cls_attn(%0, %1) {scale=0.17} : f32[T, 2, 50]\noutput y = %2\n", 0});
    run_threads(2, (Spec){"cls_attn", NORM, TS3, {UNI(-3, 3), UNI(-3, 3)},
                          "%0 = input \"q\" : f32[T, 4, 50, 32]\n%1 = input \"k\" : f32[T, 4, 50, 32]\n"
                          "%2 = cls_attn(%0, %1) {scale=0.1767767} : f32[T, 4, 50]\noutput y = %2\n", 0});
    run_on("x86-64-v3", (Spec){"cls_attn", NORM, TS3, {UNI(-2, 2), UNI(-2, 2)},
                               "%0 = input \"q\" : f32[T, 2, 7, 33]\n%1 = input \"k\" : f32[T, 2, 21, 33]\n"
                               "%2 = cls_attn(%0, %1) {scale=0.17} : f32[T, 2, 21]\noutput y = %2\n", 0});
}
