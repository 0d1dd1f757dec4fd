/* target.c: what the kernels know of the CPU they are compiled for, and the report of what they chose.
 *
 * The kernels' parameters (gemm.c's register and cache blocking, attention.c's tiles) are derived
 * from a few facts of the target, never from one machine's figures: the widest float vector and
 * fused multiply-add (from the feature list: the host's, or --target/--cpu's), the number of vector
 * registers (32 with AVX-512 and on aarch64, 16 otherwise), the dot-product instructions (AVX-512
 * VNNI and BF16, AVX-VNNI, AMX tiles), and the L1 data and L2 cache per core.
 * Where those come from, in order:
 *   1. the feature list (the host's when compiling for it, else the one given), then what the CPU's
 *      name implies (the lists below);
 *   2. the caches: this machine's (sysconf) when compiling for it; else the table of known cores
 *      below when the CPU is one of them; else 32 KiB of L1 and 1 MiB of L2;
 *   3. the table also names the core and its vector FMA pipes (for the report: what the peak is).
 * Detection is enough on the host; the table matters when cross-compiling with --cpu (and when a
 * virtual machine hides its caches from sysconf). A CPU whose name is not in the table but whose
 * features place it (AMX: an Intel server core, Sapphire Rapids or later) takes that row.
 *
 * `kiln build --explain codegen` (cg_explain) prints the target facts and where each came from, and
 * for the GEMM and for each kind of attention node the parameters chosen from them and why.
 */
#include "codegen/codegen.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- known cores */

typedef struct CgCore {
    const char *label;
    const char *cpus[6]; /* LLVM's names for it */
    int fma_pipes;       /* vector FMAs issued per cycle */
    int fma_bits;        /* width of one FMA pipe (Zen 4 runs a 512-bit FMA as two 256-bit halves) */
    long l1, l2;         /* data cache per core, bytes */
} CgCore;

static const CgCore cores[] = {
    {"AMD Zen 4", {"znver4"}, 2, 256, 32L << 10, 1L << 20},
    {"AMD Zen 5", {"znver5"}, 2, 512, 48L << 10, 1L << 20},
    {"Intel Sapphire Rapids / Emerald Rapids", {"sapphirerapids", "emeraldrapids"}, 2, 512, 48L << 10, 2L << 20},
    {"generic AVX2 (Haswell, Broadwell, Skylake)", {"haswell", "broadwell", "skylake", "x86-64-v3", "core-avx2"}, 2, 256,
     32L << 10, 256L << 10},
    {"Arm Neoverse N1", {"neoverse-n1"}, 2, 128, 64L << 10, 1L << 20},
    {"Arm Neoverse V1", {"neoverse-v1"}, 4, 128, 64L << 10, 1L << 20},
};

static const CgCore *known_core(const char *cpu)
{
    for (size_t i = 0; cpu && i < sizeof cores / sizeof cores[0]; i++)
        for (int j = 0; j < 6 && cores[i].cpus[j]; j++)
            if (!strcmp(cpu, cores[i].cpus[j]))
                return &cores[i];
    return NULL;
}

/* +1 when the comma-separated feature list enables name, -1 when it disables it, 0 when silent. */
static int feature(const char *list, const char *name)
{
    size_t n = strlen(name);
    int r = 0;
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n + 1 && (p[0] == '+' || p[0] == '-') && !strncmp(p + 1, name, n))
            r = p[0] == '+' ? 1 : -1;
        p = e ? e + 1 : NULL;
    }
    return r;
}

static int in_list(const char *s, const char *const *list)
{
    for (; s && *list; list++)
        if (!strcmp(s, *list))
            return 1;
    return 0;
}

CgTarget cg_target(const Cg *cg)
{
    /* CPUs named with --cpu and no feature list: what their names imply */
    static const char *const cpus_avx512[] = {
        "skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client", "icelake-server",
        "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids", "graniterapids", "graniterapids-d",
        "diamondrapids", "znver4", "znver5", "x86-64-v4", NULL};
    static const char *const cpus_avx2[] = {
        "haswell", "broadwell", "skylake", "alderlake", "raptorlake", "meteorlake", "arrowlake",
        "arrowlake-s", "lunarlake", "gracemont", "pantherlake", "znver1", "znver2", "znver3", "bdver4",
        "x86-64-v3", "core-avx2", NULL};
    CgTarget k = {.vw = 4, .regs = 16, .l1 = 32L << 10, .l2 = 1L << 20};
    const char *t = cg->triple ? cg->triple : "", *f = cg->features ? cg->features : "";
    int host_features = !cg->opt.features && !cg->opt.triple && !cg->opt.cpu;
    k.x86 = !strncmp(t, "x86_64", 6) || (t[0] == 'i' && !strncmp(t + 2, "86", 2));
    k.arm = !strncmp(t, "aarch64", 7) || !strncmp(t, "arm64", 5);
    k.vec_from = host_features ? "this machine's features" : cg->opt.features ? "the feature list given" : "the CPU's name";
    if (k.x86) {
        int avx512 = feature(f, "avx512f"), avx2 = feature(f, "avx2"), fma = feature(f, "fma");
        if (!avx512)
            avx512 = in_list(cg->cpu, cpus_avx512) ? 1 : -1;
        if (feature(f, "evex512") < 0) /* AVX10/256: no 512-bit registers */
            avx512 = -1;
        if (!avx2)
            avx2 = avx512 > 0 || in_list(cg->cpu, cpus_avx2) ? 1 : -1;
        if (!fma) /* every AVX2 CPU of the lists has FMA */
            fma = avx2 > 0 ? 1 : -1;
        k.vw = avx512 > 0 ? 16 : avx2 > 0 ? 8 : 4;
        k.vnni = avx512 > 0 && (feature(f, "avx512vnni") > 0 ||
                                (!feature(f, "avx512vnni") && in_list(cg->cpu, cpus_avx512) &&
                                 strcmp(cg->cpu, "skylake-avx512") != 0 && strcmp(cg->cpu, "x86-64-v4") != 0));
        static const char *const cpus_bf16[] = {"cooperlake", "sapphirerapids", "emeraldrapids", "graniterapids",
                                                "graniterapids-d", "diamondrapids", "znver4", "znver5", NULL};
        /* AVX-VNNI (VEX vpdpbusd on ymm): Alder Lake and later client cores, Intel's server cores from
         * Sapphire Rapids, the E-core servers, Zen 5 */
        static const char *const cpus_avxvnni[] = {
            "alderlake", "raptorlake", "meteorlake", "arrowlake", "arrowlake-s", "lunarlake", "gracemont",
            "pantherlake", "sierraforest", "grandridge", "clearwaterforest", "sapphirerapids", "emeraldrapids",
            "graniterapids", "graniterapids-d", "diamondrapids", "znver5", NULL};
        int avv = feature(f, "avxvnni");
        k.avxvnni = avx2 > 0 && (avv > 0 || (!avv && in_list(cg->cpu, cpus_avxvnni)));
        k.bf16 = avx512 > 0 && (feature(f, "avx512bf16") > 0 || (!feature(f, "avx512bf16") && in_list(cg->cpu, cpus_bf16)));
        /* AMX: the tile unit (amx-tile) with its int8 and bf16 products; the CPUs that have them */
        static const char *const cpus_amx[] = {"sapphirerapids", "emeraldrapids", "graniterapids", "graniterapids-d",
                                               "diamondrapids", NULL};
        int tile = feature(f, "amx-tile");
        if (!tile)
            tile = in_list(cg->cpu, cpus_amx) ? 1 : -1;
        int ai8 = feature(f, "amx-int8"), abf = feature(f, "amx-bf16");
        k.amx_int8 = avx512 > 0 && tile > 0 && (ai8 > 0 || (!ai8 && in_list(cg->cpu, cpus_amx)));
        k.amx_bf16 = avx512 > 0 && tile > 0 && k.bf16 && (abf > 0 || (!abf && in_list(cg->cpu, cpus_amx)));
        k.fma = fma > 0;
        k.regs = avx512 > 0 ? 32 : 16;
        k.isa = avx512 > 0 ? "AVX-512" : avx2 > 0 ? "AVX2" : "SSE";
    } else if (k.arm) {
        k.fma = 1;
        k.regs = 32;
        k.isa = "NEON";
    } else {
        k.isa = "generic vectors";
    }
    const CgCore *core = known_core(cg->cpu);
    k.core_from = "its name";
    if (!core && k.x86 && feature(f, "amx-tile") > 0 && k.vw == 16) {
        /* A virtual machine may report a CPU model of its own (a Xeon with AMX seen as family 6
         * model 167, which LLVM names rocketlake, a client core without AMX): the tile unit is
         * only on Intel's server cores from Sapphire Rapids on, all with the same two 512-bit FMA
         * pipes, 48 KiB of L1 and 2 MiB of L2 per core. */
        core = known_core("sapphirerapids");
        k.core_from = "its features (AMX)";
    }
    if (core) {
        k.core = core->label;
        k.fma_pipes = core->fma_pipes;
        k.fma_bits = core->fma_bits;
    }
    k.cache_from = "defaults (32 KiB, 1 MiB)";
    if (core) {
        k.l1 = core->l1;
        k.l2 = core->l2;
        k.cache_from = "the known-core table";
    }
    if (!cg->opt.triple && !cg->opt.cpu) { /* compiling for this machine: its caches */
        long v = sysconf(_SC_LEVEL1_DCACHE_SIZE), w = sysconf(_SC_LEVEL2_CACHE_SIZE);
        if (v >= 4096 && w >= 65536) {
            k.l1 = v;
            k.l2 = w;
            k.cache_from = "this machine (sysconf)";
        }
    }
    return k;
}

/* ---------------------------------------------------------------- --explain codegen */

static void size_text(char *buf, size_t n, long bytes)
{
    if (bytes >= (1L << 20) && bytes % (1L << 20) == 0)
        snprintf(buf, n, "%ld MiB", bytes >> 20);
    else
        snprintf(buf, n, "%ld KiB", bytes >> 10);
}

void cg_explain(Cg *cg, FILE *out)
{
    CgTarget t = cg_target(cg);
    char l1[32], l2[32];
    size_text(l1, sizeof l1, t.l1);
    size_text(l2, sizeof l2, t.l2);
    fprintf(out, "codegen: target %s, CPU %s", cg->triple, cg->cpu);
    if (t.core)
        fprintf(out, " (%s%s%s: %d vector FMA pipes of %d bits, %d FLOP per cycle in f32)", t.core,
                strcmp(t.core_from, "its name") ? ", known by " : "", strcmp(t.core_from, "its name") ? t.core_from : "",
                t.fma_pipes, t.fma_bits, t.fma_pipes * t.fma_bits / 32 * 2);
    else
        fprintf(out, " (not in the known-core table: what the features say)");
    fprintf(out, "\ncodegen: %s, vectors of %d floats, %s, %d vector registers (from %s)\n", t.isa, t.vw,
            t.fma ? "fused multiply-add" : "no fused multiply-add (multiply then add)", t.regs, t.vec_from);
    fprintf(out, "codegen: L1 data %s, L2 %s per core (from %s)\n", l1, l2, t.cache_from);
    if (t.x86)
        fprintf(out, "codegen: AMX tiles: %s (from %s)\n",
                t.amx_int8 && t.amx_bf16 ? "int8 (tdpbusd) and bf16 (tdpbf16ps)"
                : t.amx_int8             ? "int8 (tdpbusd) only"
                : t.amx_bf16             ? "bf16 (tdpbf16ps) only"
                                         : "none",
                t.vec_from);
    cg_gemm_explain(cg, out);
    cg_qgemm_explain(cg, out);
    const Graph *g = cg->g;
    for (int i = 0; g && i < g->nnode; i++) {
        const Node *n = g->nodes[i];
        if (n->op != OP_ATTENTION || n->dtype != DT_F32)
            continue;
        int seen = 0; /* one line per kind: the parameters depend on the head sizes and the mask */
        for (int j = 0; j < i && !seen; j++) {
            const Node *m = g->nodes[j];
            seen = m->op == OP_ATTENTION && m->dtype == DT_F32 && m->nin == n->nin &&
                   dim_eq(m->in[0]->shape[m->in[0]->rank - 1], n->in[0]->shape[n->in[0]->rank - 1]) &&
                   dim_eq(m->in[2]->shape[m->in[2]->rank - 1], n->in[2]->shape[n->in[2]->rank - 1]);
        }
        if (!seen)
            cg_attention_explain(cg, n, out);
    }
    fprintf(out, "codegen: threads: loops split in equal ranges of rows, on the calling thread alone under %d "
                 "elements; attention takes work items from a shared counter\n",
            CG_PARALLEL_WORK);
}
