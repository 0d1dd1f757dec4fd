/* codegen_ops_quant.c: test_codegen_ops's cases for quantization: quantize and dequantize (i8, u8,
 * i4, groups), qmatmul weight-only (8 and 4 bits, bf16 weights), dynamic and static W8A8 (bit for
 * bit; the VNNI kernel's tiles and, with --cpu x86-64-v3, the AVX2 one, codegen/qgemm_avx2.c, which
 * tests/unit/test_qgemm_avx2.c covers), and qmatmul under an epilogue.
 *
 * Which dot-product kernel the host's cases check depends on the CPU (codegen/qgemm.c): AMX tiles
 * where it has amx-tile + amx-int8 / amx-bf16, else AVX-512 (VNNI, BF16), else the portable one; the
 * family says which at its start. The AVX-512 kernels are also checked on an AMX machine by the cases
 * compiled for --cpu cooperlake (AVX-512 VNNI and BF16, no AMX; x86-64-v3 on a host without them, so
 * that the cases keep their numbers everywhere). The cases around AMX's tiles: every M from 1 to 40
 * (one A tile, two, a part of one), K not a multiple of a tile's 64 bytes, two blocks of K (the C tiles
 * leave and come back), two threads (each loads its tile configuration).
 */
#include "codegen_ops.h"

#include <stdlib.h>

#include <stdio.h>
#include <string.h>

/* Whether the host's LLVM feature list enables f ("+avx512vnni"). */
static int host_has(const char *f)
{
    char *feats = LLVMGetHostCPUFeatures();
    const char *p = strstr(feats, f);
    int yes = p && (p[strlen(f)] == ',' || p[strlen(f)] == 0);
    LLVMDisposeMessage(feats);
    return yes;
}

/* The CPU that runs the AVX-512 dot-product kernels on this host without AMX: cooperlake where the
 * host has AVX-512 VNNI and BF16, else x86-64-v3 (the portable kernel). */
static const char *avx512_cpu(void)
{
    return host_has("+avx512vnni") && host_has("+avx512bf16") ? "cooperlake" : "x86-64-v3";
}

/* ---------------------------------------------------------------- quantization
 *
 * quantize and the dynamic (W8A8) qmatmul must give the interpreter's bits (ir/quant.c defines every
 * float32 step): integer inputs make ties (x / 2 for odd x) and saturation (300 / 1), integer scales
 * include 0 (the zero point). Weight-only qmatmul dequantises exactly and differs only in the order of
 * its f32 sums (MM). K is not a multiple of the group; M and N are odd; i4 and u4 weights come as
 * constants (no input is packed). */
static const char *nibbles(int n, int lo, int hi, unsigned seed)
{
    static char bufs[4][512 << 10];
    static int slot;
    char *b = bufs[slot++ % 4];
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        k += (size_t)snprintf(b + k, sizeof bufs[0] - k, "%s%d", i ? ", " : "", lo + (int)((seed >> 16) % (unsigned)(hi - lo + 1)));
        KILN_ASSERT(k < sizeof bufs[0]);
    }
    return b;
}

/* static W8A8 (ascale: one scale fixed at compile time for every row), bit for bit: the same kernels
 * as dynamic with the per-row maximum replaced by the node's scale. Integer activations with ascale
 * 2 make ties (odd / 2) and saturation (|a| > 254); WIDE and SPEC rows go far beyond 127 * ascale
 * (saturation) and hold NaN, inf, -0 and zeros; ascale 1e-30 saturates every nonzero value, 1e-40 (an
 * f32 subnormal) makes the quotients infinite (the kernels' division path), and all-zero rows are what
 * a zero calibrated range would see. Shapes: odd M and N, K not a multiple of 4 or of a block of K
 * (1001: two blocks), partial panels; the VNNI (or AMX) kernel where the host has it, cooperlake's
 * AVX-512 one, the portable one (--cpu x86-64-v3, and weights that are inputs), two threads. */
static void static_cases(void)
{
    run((Spec){"qmatmul", EXACT, TS5, {INT(-300, 300), INT(-128, 127), INT(0, 2)},
               "%0 = input \"a\" : f32[T, 70]\n%1 = input \"w\" : i8[70, 17]\n%2 = input \"s\" : f32[1, 17]\n"
               "%3 = qmatmul(%0, %1, %2) {group=0, dynamic=false, ascale=2} : f32[T, 17]\noutput y = %3\n", 0});
    static const struct { int K, N; Gen a; const char *shape, *ascale, *cpu; } cs[] = {
        {70, 17, {G_INT, -300, 300, 0}, "T", "2", NULL},        {65, 33, {G_WIDE, 1e-3, 1e3, 0}, "T", "0.5", NULL},
        {3, 48, {G_SPEC, -3, 3, 0}, "T", "0.01", NULL},         {1, 1, {G_WIDE, 1e-3, 1e3, 0}, "T", "3.75", NULL},
        {130, 300, {G_SPEC, -3, 3, 0}, "8, T", "0.0125", NULL}, {1001, 16, {G_WIDE, 1e-2, 1e2, 0}, "2, T", "0.25", NULL},
        {200, 65, {G_INT, -300, 300, 0}, "2, T", "2", NULL},     {200, 65, {G_WIDE, 1e-3, 1e3, 0}, "T", "1e-30", NULL},
        {70, 17, {G_WIDE, 1e-3, 1e3, 0}, "T", "1e-40", NULL},    {70, 17, {G_INT, 0, 0, 0}, "T", "0.0078740157", NULL},
        {130, 300, {G_SPEC, -3, 3, 0}, "8, T", "0.0125", "avx512"}, {200, 65, {G_INT, -300, 300, 0}, "2, T", "2", "avx512"},
        {70, 17, {G_INT, -300, 300, 0}, "T", "2", "x86-64-v3"},  {1001, 16, {G_SPEC, -3, 3, 0}, "2, T", "0.02", "x86-64-v3"},
        {70, 17, {G_WIDE, 1e-3, 1e3, 0}, "T", "1e-40", "x86-64-v3"}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        int K = cs[i].K, N = cs[i].N;
        const char *cpu = cs[i].cpu && !strcmp(cs[i].cpu, "avx512") ? avx512_cpu() : cs[i].cpu;
        run_on(cpu, (Spec){"qmatmul", EXACT, TS3, {cs[i].a},
                   ir("%%0 = input \"a\" : f32[%s, %d]\n%%1 = const {data=[%s]} : i8[%d, %d]\n"
                      "%%2 = const {data=[%s]} : f32[1, %d]\n"
                      "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=false, ascale=%s} : f32[%s, %d]\noutput y = %%3\n",
                      cs[i].shape, K, nibbles(K * N, -128, 127, 111 + (unsigned)i), K, N,
                      nibbles(N, 0, 3, 131 + (unsigned)i), N, cs[i].ascale, cs[i].shape, N), 0});
    }
    /* M = 197 on two threads (m-blocks of 96 + 101 rows) */
    run_threads(2, (Spec){"qmatmul", EXACT, NULL, {WIDE(1e-2, 1e2)},
               ir("%%0 = input \"a\" : f32[197, 96]\n%%1 = const {data=[%s]} : i8[96, 70]\n"
                  "%%2 = const {data=[%s]} : f32[1, 70]\n"
                  "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=false, ascale=0.2} : f32[197, 70]\noutput y = %%3\n",
                  nibbles(96 * 70, -128, 127, 151), nibbles(70, 0, 3, 152)), 0});
}

void quant_cases(void)
{
    int amx = host_has("+amx-tile");
    printf("qmatmul on this host: int8 %s, bf16 %s; cases marked [--cpu %s]: %s\n",
           amx && host_has("+amx-int8") ? "AMX (tdpbusd)" : host_has("+avx512vnni") ? "AVX-512 (vpdpbusd)" : "portable",
           amx && host_has("+amx-bf16") ? "AMX (tdpbf16ps)" : host_has("+avx512bf16") ? "AVX-512 (vdpbf16ps)" : "portable",
           avx512_cpu(), strcmp(avx512_cpu(), "cooperlake") ? "the portable kernels" : "the AVX-512 kernels");
    run((Spec){"quantize", EXACT, TS3, {INT(-300, 300), INT(0, 4)},
               "%0 = input \"x\" : f32[T, 33]\n%1 = input \"s\" : f32[1, 33]\n"
               "%2 = quantize(%0, %1) {axis=0, group=0} : i8[T, 33]\noutput y = %2\n", 0});
    run((Spec){"quantize", EXACT, TS3, {SPEC(-300, 300), POS(1e-2, 10), INT(0, 255)},
               "%0 = input \"x\" : f32[T, 10]\n%1 = input \"s\" : f32[T, 3]\n%2 = input \"z\" : u8[T, 3]\n"
               "%3 = quantize(%0, %1, %2) {axis=1, group=4} : u8[T, 10]\noutput y = %3\n", 0});
    /* to i4 in groups of 4 along axis 0 (17 rows: 5 groups, the last of one row), and back */
    run((Spec){"dequantize", EXACT, NULL, {INT(-20, 20), INT(0, 3)},
               "%0 = input \"x\" : f32[17, 5]\n%1 = input \"s\" : f32[5, 1]\n"
               "%2 = quantize(%0, %1) {axis=0, group=4} : i4[17, 5]\n"
               "%3 = dequantize(%2, %1) {axis=0, group=4} : f32[17, 5]\noutput y = %3\noutput q = %2\n", 0});
    run((Spec){"dequantize", EXACT, TS3, {INT(0, 255), POS(1e-3, 1), INT(0, 255)},
               "%0 = input \"q\" : u8[T, 33]\n%1 = input \"s\" : f32[1, 33]\n%2 = input \"z\" : u8[1, 33]\n"
               "%3 = dequantize(%0, %1, %2) {axis=0, group=0} : f32[T, 33]\noutput y = %3\n", 0});
    /* weight-only, 8-bit, groups of 16 along K = 65, and u8 with a zero point per column */
    run((Spec){"qmatmul", MM, TS5, {UNI(-1, 1), INT(-128, 127), INT(0, 3)},
               "%0 = input \"a\" : f32[T, 65]\n%1 = input \"w\" : i8[65, 33]\n%2 = input \"s\" : f32[5, 33]\n"
               "%3 = qmatmul(%0, %1, %2) {group=16, dynamic=false} : f32[T, 33]\noutput y = %3\n", 0});
    run((Spec){"qmatmul", MM, TS3, {UNI(-1, 1), INT(0, 255), UNI(0, 0.1), INT(0, 255)},
               "%0 = input \"a\" : f32[2, T, 17]\n%1 = input \"w\" : u8[17, 7]\n%2 = input \"s\" : f32[1, 7]\n"
               "%3 = input \"z\" : u8[1, 7]\n%4 = qmatmul(%0, %1, %2, %3) {group=0, dynamic=false} : f32[2, T, 7]\n"
               "output y = %4\n", 0});
    /* 4-bit weights: i4 in groups of 8 along K = 37 (5 groups), u4 with zero points */
    run((Spec){"qmatmul", MM, TS3, {UNI(-1, 1), UNI(0, 0.2)},
               ir("%%0 = input \"a\" : f32[T, 37]\n%%1 = input \"s\" : f32[5, 9]\n"
                  "%%2 = const {data=[%s]} : i4[37, 9]\n%%3 = qmatmul(%%0, %%2, %%1) {group=8, dynamic=false} : f32[T, 9]\n"
                  "%%4 = const {data=[%s]} : u4[37, 9]\n%%5 = const {data=[%s]} : u4[5, 9]\n"
                  "%%6 = qmatmul(%%0, %%4, %%1, %%5) {group=8, dynamic=false} : f32[T, 9]\noutput y = %%3\noutput y2 = %%6\n",
                  nibbles(37 * 9, -8, 7, 1), nibbles(37 * 9, 0, 15, 2), nibbles(45, 0, 15, 3)), 0});
    /* dynamic W8A8: bit for bit, with rows of very different ranges, and specials (a NaN or inf in a row) */
    run((Spec){"qmatmul", EXACT, TS5, {WIDE(1e-3, 1e3), INT(-128, 127), INT(0, 2)},
               "%0 = input \"a\" : f32[T, 70]\n%1 = input \"w\" : i8[70, 17]\n%2 = input \"s\" : f32[1, 17]\n"
               "%3 = qmatmul(%0, %1, %2) {group=0, dynamic=true} : f32[T, 17]\noutput y = %3\n", 0});
    /* dynamic with constant weights and scales: the VNNI kernel where the CPU has it (packed weights,
     * blocks of 4 rows and the rest, a masked last panel; K padded to 4), else the portable one */
    static const int qshape[][2] = {{70, 17}, {65, 33}, {3, 48}, {1, 1}, {130, 16}};
    for (size_t i = 0; i < sizeof qshape / sizeof qshape[0]; i++) {
        int K = qshape[i][0], N = qshape[i][1];
        run((Spec){"qmatmul", EXACT, TS5, {WIDE(1e-3, 1e3)},
                   ir("%%0 = input \"a\" : f32[T, %d]\n%%1 = const {data=[%s]} : i8[%d, %d]\n"
                      "%%2 = const {data=[%s]} : f32[1, %d]\n"
                      "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[T, %d]\noutput y = %%3\n",
                      K, nibbles(K * N, -128, 127, 7 + (unsigned)i), K, N, nibbles(N, 0, 3, 11 + (unsigned)i), N, N), 0});
    }
    run((Spec){"qmatmul", EXACT, TS2, {SPEC(-2, 2), INT(-128, 127), UNI(0, 0.01)},
               "%0 = input \"a\" : f32[3, T, 33]\n%1 = input \"w\" : i8[33, 5]\n%2 = input \"s\" : f32[1, 5]\n"
               "%3 = qmatmul(%0, %1, %2) {group=0, dynamic=true} : f32[3, T, 5]\noutput y = %3\n", 0});
    /* the VNNI GEMM's tiles: up to 320 rows (two m-blocks of at most 216, partial last micro-tiles), N = 300 (several n-blocks, a partial last panel), K = 130 (not a multiple of 4),
     * K = 1001 (two blocks of K, the last one not a multiple of 4); rows with NaN, inf, -0 and zeros,
     * rows of three small integers (some all zero: sa = 0), zero scales */
    static const struct { int K, N; Gen a; const char *shape; } tiles[] = {
        {130, 300, SPEC(-3, 3), "8, T"}, {3, 100, INT(-1, 1), "T"}, {1001, 16, WIDE(1e-2, 1e2), "2, T"}};
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
        int K = tiles[i].K, N = tiles[i].N;
        run((Spec){"qmatmul", EXACT, TS3, {tiles[i].a},
                   ir("%%0 = input \"a\" : f32[%s, %d]\n%%1 = const {data=[%s]} : i8[%d, %d]\n"
                      "%%2 = const {data=[%s]} : f32[1, %d]\n"
                      "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[%s, %d]\noutput y = %%3\n",
                      tiles[i].shape, K, nibbles(K * N, -128, 127, 21 + (unsigned)i), K, N, nibbles(N, 0, 3, 31 + (unsigned)i),
                      N, tiles[i].shape, N), 0});
    }
    /* the tiles again on AVX-512 alone (cooperlake: no AMX) */
    run_on(avx512_cpu(), (Spec){"qmatmul", EXACT, TS3, {SPEC(-3, 3)},
               ir("%%0 = input \"a\" : f32[8, T, 130]\n%%1 = const {data=[%s]} : i8[130, 300]\n"
                  "%%2 = const {data=[%s]} : f32[1, 300]\n"
                  "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[8, T, 300]\noutput y = %%3\n",
                  nibbles(130 * 300, -128, 127, 21), nibbles(300, 0, 3, 31)), 0});
    /* around AMX's tiles: every M from 1 to 40 (K = 200: three tiles of 64 bytes and a part; N = 65:
     * a last panel of one column); K = 2100: two blocks of K; M = 3T up to 120 on two threads */
    static const int64_t every[41] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
                                      21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 0};
    run((Spec){"qmatmul", EXACT, every, {WIDE(1e-3, 1e3)},
               ir("%%0 = input \"a\" : f32[T, 200]\n%%1 = const {data=[%s]} : i8[200, 65]\n"
                  "%%2 = const {data=[%s]} : f32[1, 65]\n"
                  "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[T, 65]\noutput y = %%3\n",
                  nibbles(200 * 65, -128, 127, 91), nibbles(65, 0, 3, 92)), 0});
    /* rows of quantization ties (and values an ulp or a few either side of them): the kernels multiply
     * by 1 / sa and must divide where that could round differently */
    run((Spec){"qmatmul", EXACT, TS3, {TIES(1e-3, 1e3)},
               ir("%%0 = input \"a\" : f32[2, T, 200]\n%%1 = const {data=[%s]} : i8[200, 65]\n"
                  "%%2 = const {data=[%s]} : f32[1, 65]\n"
                  "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[2, T, 65]\noutput y = %%3\n",
                  nibbles(200 * 65, -128, 127, 97), nibbles(65, 0, 3, 98)), 0});
    run_on(avx512_cpu(), (Spec){"qmatmul", EXACT, TS3, {TIES(1e-3, 1e3)},
               ir("%%0 = input \"a\" : f32[2, T, 200]\n%%1 = const {data=[%s]} : i8[200, 65]\n"
                  "%%2 = const {data=[%s]} : f32[1, 65]\n"
                  "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[2, T, 65]\noutput y = %%3\n",
                  nibbles(200 * 65, -128, 127, 97), nibbles(65, 0, 3, 98)), 0});
    run((Spec){"qmatmul", EXACT, TS3, {SPEC(-2, 2)},
               ir("%%0 = input \"a\" : f32[3, T, 2100]\n%%1 = const {data=[%s]} : i8[2100, 33]\n"
                  "%%2 = const {data=[%s]} : f32[1, 33]\n"
                  "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[3, T, 33]\noutput y = %%3\n",
                  nibbles(2100 * 33, -128, 127, 93), nibbles(33, 0, 3, 94)), 0});
    run_threads(2, (Spec){"qmatmul", EXACT, TS3, {WIDE(1e-2, 1e2)},
               ir("%%0 = input \"a\" : f32[3, T, 96]\n%%1 = const {data=[%s]} : i8[96, 200]\n"
                  "%%2 = const {data=[%s]} : f32[1, 200]\n"
                  "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[3, T, 200]\noutput y = %%3\n",
                  nibbles(96 * 200, -128, 127, 95), nibbles(200, 0, 3, 96)), 0});
    /* M = 197 on two threads: each thread takes an m-block, 96 + 101 rows (whole micro-tiles, the last
     * block taking the rest), so the second ends in a micro-row of 5 (with AMX the kernel's one-tile
     * kind) */
    run_threads(2, (Spec){"qmatmul", EXACT, NULL, {WIDE(1e-2, 1e2)},
               ir("%%0 = input \"a\" : f32[197, 96]\n%%1 = const {data=[%s]} : i8[96, 70]\n"
                  "%%2 = const {data=[%s]} : f32[1, 70]\n"
                  "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[197, 70]\noutput y = %%3\n",
                  nibbles(96 * 70, -128, 127, 99), nibbles(70, 0, 3, 100)), 0});
    /* weights larger than L2 (2.4 MB of int8) and N > 4 M: the two threads split N in equal shares of
     * n-blocks, each preparing every row (too large for nibbles' and ir()'s buffers: its own text) */
    {
        enum { BK = 1024, BN = 2304 };
        size_t cap = (size_t)BK * BN * 6 + 4096, k = 0;
        char *t = malloc(cap);
        KILN_ASSERT(t);
        unsigned seed = 102;
        k += (size_t)snprintf(t + k, cap - k, "%%0 = input \"a\" : f32[T, %d]\n%%1 = const {data=[", BK);
        for (int e = 0; e < BK * BN; e++) {
            seed = seed * 1103515245u + 12345u;
            k += (size_t)snprintf(t + k, cap - k, "%s%d", e ? ", " : "", -128 + (int)((seed >> 16) % 256u));
        }
        snprintf(t + k, cap - k,
                 "]} : i8[%d, %d]\n%%2 = const {data=[%s]} : f32[1, %d]\n"
                 "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[T, %d]\noutput y = %%3\n",
                 BK, BN, nibbles(BN, 0, 3, 103), BN, BN);
        run_threads(2, (Spec){"qmatmul", EXACT, TS2, {WIDE(1e-2, 1e2)}, t, 0});
        free(t);
    }
    /* without VNNI (AVX2: --cpu x86-64-v3) the AVX2 kernel (qgemm_avx2.c), the same bits */
    run_on("x86-64-v3", (Spec){"qmatmul", EXACT, TS3, {WIDE(1e-3, 1e3)},
               ir("%%0 = input \"a\" : f32[T, 70]\n%%1 = const {data=[%s]} : i8[70, 17]\n%%2 = const {data=[%s]} : f32[1, 17]\n"
                  "%%3 = qmatmul(%%0, %%1, %%2) {group=0, dynamic=true} : f32[T, 17]\noutput y = %%3\n",
                  nibbles(70 * 17, -128, 127, 41), nibbles(17, 0, 3, 42)), 0});
    static_cases();
}

/* bf16 weights: a rounded to bf16, f32 sums (vdpbf16ps where the CPU has AVX512-BF16: the tiles'
 * shapes as above; the portable kernel for weights that are an input, and for --cpu x86-64-v3).
 * The products are exact; the interpreter sums them in double, the kernels in f32 in another order,
 * so MM's tolerance (weights are small integers, exact in bf16). */
void bf16_cases(void)
{
    static const struct { int K, N; const char *shape, *cpu; } cs[] = {
        {130, 300, "8, T", NULL}, {3, 100, "T", NULL}, {1001, 16, "2, T", NULL}, {70, 17, "T", "x86-64-v3"},
        {1100, 65, "3, T", NULL}, /* AMX: two blocks of K (1024 elements a row) */
        {130, 300, "8, T", "avx512"}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        run_on(cs[i].cpu && !strcmp(cs[i].cpu, "avx512") ? avx512_cpu() : cs[i].cpu, (Spec){"qmatmul", MM, TS3, {UNI(-1, 1)},
                   ir("%%0 = input \"a\" : f32[%s, %d]\n%%1 = const {data=[%s]} : bf16[%d, %d]\n"
                      "%%2 = qmatmul(%%0, %%1) {group=0, dynamic=false} : f32[%s, %d]\noutput y = %%2\n",
                      cs[i].shape, cs[i].K, nibbles(cs[i].K * cs[i].N, -8, 8, 71 + (unsigned)i), cs[i].K, cs[i].N,
                      cs[i].shape, cs[i].N), 0});
    /* two threads: m-blocks of 96 + 101 rows */
    run_threads(2, (Spec){"qmatmul", MM, NULL, {UNI(-1, 1)},
               ir("%%0 = input \"a\" : f32[197, 96]\n%%1 = const {data=[%s]} : bf16[96, 70]\n"
                  "%%2 = qmatmul(%%0, %%1) {group=0, dynamic=false} : f32[197, 70]\noutput y = %%2\n",
                  nibbles(96 * 70, -8, 8, 101)), 0});
    run((Spec){"qmatmul", MM, TS3, {SPEC(-2, 2), UNI(-1, 1)},
               "%0 = input \"a\" : f32[T, 33]\n%1 = input \"w\" : bf16[33, 5]\n"
               "%2 = qmatmul(%0, %1) {group=0, dynamic=false} : f32[T, 5]\noutput y = %2\n", 0});
    run((Spec){"qmatmul", MM, TS5, {UNI(-2, 2), UNI(-1, 1)},
               ir("%%0 = input \"a\" : f32[T, 70]\n%%1 = input \"b\" : f32[100]\n"
                  "%%2 = const {data=[%s]} : bf16[70, 100]\n%%3 = qmatmul(%%0, %%2) {group=0, dynamic=false, inline} : f32[T, 100]\n"
                  "%%4 = add(%%3, %%1) {inline} : f32[T, 100]\n%%5 = relu(%%4) : f32[T, 100]\noutput y = %%5\n",
                  nibbles(7000, -4, 4, 81)), 0});
}

/* A qmatmul under an epilogue (fuse-ops' bias, GELU and residual): the VNNI kernel and the AVX2 one
 * (--cpu x86-64-v3) run it on each micro-tile, qwgemm.c's weight-only kernel on each tile, the
 * portable kernels (off x86) as a loop after the product. The
 * product is the interpreter's (bits for W8A8), the epilogue's f32 GELU differs as elementwise ops do
 * (EW; MM for weight-only, whose sums differ in order). */
void quant_fused_cases(void)
{
    const char *cpus[] = {NULL, "x86-64-v3", avx512_cpu()};
    for (int c = 0; c < 3; c++)
        run_on(cpus[c], (Spec){"qmatmul", EW, TS3, {UNI(-2, 2), UNI(-1, 1), UNI(-1, 1)},
                   ir("%%0 = input \"a\" : f32[T, 70]\n%%1 = input \"b\" : f32[100]\n%%2 = input \"r\" : f32[T, 100]\n"
                      "%%3 = const {data=[%s]} : i8[70, 100]\n%%4 = const {data=[%s]} : f32[1, 100]\n"
                      "%%5 = qmatmul(%%0, %%3, %%4) {group=0, dynamic=true, inline} : f32[T, 100]\n"
                      "%%6 = add(%%5, %%1) {inline} : f32[T, 100]\n%%7 = gelu(%%6) {approx=erf, inline} : f32[T, 100]\n"
                      "%%8 = add(%%2, %%7) : f32[T, 100]\noutput y = %%8\n",
                      nibbles(70 * 100, -128, 127, 51), nibbles(100, 1, 3, 52)), 0});
    /* static W8A8 under the same epilogue */
    for (int c = 0; c < 3; c++)
        run_on(cpus[c], (Spec){"qmatmul", EW, TS3, {UNI(-2, 2), UNI(-1, 1), UNI(-1, 1)},
                   ir("%%0 = input \"a\" : f32[T, 70]\n%%1 = input \"b\" : f32[100]\n%%2 = input \"r\" : f32[T, 100]\n"
                      "%%3 = const {data=[%s]} : i8[70, 100]\n%%4 = const {data=[%s]} : f32[1, 100]\n"
                      "%%5 = qmatmul(%%0, %%3, %%4) {group=0, dynamic=false, ascale=0.0125, inline} : f32[T, 100]\n"
                      "%%6 = add(%%5, %%1) {inline} : f32[T, 100]\n%%7 = gelu(%%6) {approx=erf, inline} : f32[T, 100]\n"
                      "%%8 = add(%%2, %%7) : f32[T, 100]\noutput y = %%8\n",
                      nibbles(70 * 100, -128, 127, 53), nibbles(100, 1, 3, 54)), 0});
    run((Spec){"qmatmul", MM, TS3, {UNI(-1, 1), UNI(-1, 1)},
               ir("%%0 = input \"a\" : f32[2, T, 37]\n%%1 = input \"b\" : f32[9]\n%%2 = input \"s\" : f32[5, 9]\n"
                  "%%3 = const {data=[%s]} : i4[37, 9]\n%%4 = qmatmul(%%0, %%3, %%2) {group=8, dynamic=false, inline} : f32[2, T, 9]\n"
                  "%%5 = add(%%4, %%1) {inline} : f32[2, T, 9]\n%%6 = relu(%%5) : f32[2, T, 9]\noutput y = %%6\n",
                  nibbles(37 * 9, -8, 7, 61)), 0});
}
