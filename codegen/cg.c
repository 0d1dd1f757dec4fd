/* cg.c: the LLVM context, the target machine, optimisation, emission and the JIT.
 *
 * Every LLVM C API call that can fail hands back an error string or an LLVMErrorRef; each is
 * checked, reported through kiln's diagnostics and disposed. The host's triple, CPU and features are
 * the default target; --target and --cpu build for another machine.
 */
#include "codegen/codegen.h"
#include "runtime/kiln_rt.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/BitReader.h>
#include <llvm-c/BitWriter.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The runtime's dtype codes are kiln's DType values (both generated from KILN_DTYPES): the
 * descriptor stores DType directly. */
_Static_assert((int)RT_DTYPE_COUNT == (int)DT_COUNT, "one KILN_DTYPES table for both");

static void init_targets(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    LLVMInitializeAllTargetInfos();
    LLVMInitializeAllTargets();
    LLVMInitializeAllTargetMCs();
    LLVMInitializeAllAsmPrinters();
    LLVMInitializeAllAsmParsers();
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
    CgTarget k = {.vw = 4, .l1 = 32L << 10, .l2 = 1L << 20};
    const char *t = cg->triple ? cg->triple : "", *f = cg->features ? cg->features : "";
    k.x86 = !strncmp(t, "x86_64", 6) || (t[0] == 'i' && !strncmp(t + 2, "86", 2));
    k.arm = !strncmp(t, "aarch64", 7) || !strncmp(t, "arm64", 5);
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
        k.fma = fma > 0;
    } else if (k.arm) {
        k.fma = 1;
    }
    if (!cg->opt.triple && !cg->opt.cpu) { /* compiling for this machine: its caches */
        long v = sysconf(_SC_LEVEL1_DCACHE_SIZE);
        if (v >= 4096)
            k.l1 = v;
        v = sysconf(_SC_LEVEL2_CACHE_SIZE);
        if (v >= 65536)
            k.l2 = v;
    }
    return k;
}

char *cg_ident(const char *name)
{
    size_t n = strlen(name);
    char *s = malloc(n + 2);
    KILN_ASSERT(s);
    size_t k = 0;
    if (!n || isdigit((unsigned char)name[0]))
        s[k++] = '_';
    for (size_t i = 0; i < n; i++)
        s[k++] = isalnum((unsigned char)name[i]) ? name[i] : '_';
    s[k] = 0;
    return s;
}

Cg *cg_new(const CgOptions *o, Diag *d)
{
    init_targets();
    Cg *cg = calloc(1, sizeof *cg);
    KILN_ASSERT(cg);
    cg->opt = *o;
    cg->d = d;
    int host = !o->triple;
    cg->triple = host ? LLVMGetDefaultTargetTriple() : LLVMCreateMessage(o->triple);
    if (o->cpu)
        cg->cpu = LLVMCreateMessage(o->cpu);
    else
        cg->cpu = host ? LLVMGetHostCPUName() : LLVMCreateMessage("generic");
    if (o->features)
        cg->features = LLVMCreateMessage(o->features);
    else
        cg->features = host && !o->cpu ? LLVMGetHostCPUFeatures() : LLVMCreateMessage("");
    LLVMTargetRef target;
    char *err = NULL;
    if (LLVMGetTargetFromTriple(cg->triple, &target, &err)) {
        diag_fatal(d, "target '%s': %s", cg->triple, err);
        LLVMDisposeMessage(err);
        cg_free(cg);
        return NULL;
    }
    LLVMCodeGenOptLevel lvl = o->opt <= 0 ? LLVMCodeGenLevelNone
                            : o->opt == 1 ? LLVMCodeGenLevelLess
                            : o->opt == 2 ? LLVMCodeGenLevelDefault
                                          : LLVMCodeGenLevelAggressive;
    cg->tm = LLVMCreateTargetMachine(target, cg->triple, cg->cpu, cg->features, lvl, LLVMRelocPIC,
                                     LLVMCodeModelDefault);
    if (!cg->tm) {
        diag_fatal(d, "cannot create a target machine for '%s' with CPU '%s'", cg->triple, cg->cpu);
        cg_free(cg);
        return NULL;
    }
    cg->ctx = LLVMContextCreate();
    cg->b = LLVMCreateBuilderInContext(cg->ctx);
    cg->td = LLVMCreateTargetDataLayout(cg->tm);
    cg->i1 = LLVMInt1TypeInContext(cg->ctx);
    cg->i8 = LLVMInt8TypeInContext(cg->ctx);
    cg->i16 = LLVMInt16TypeInContext(cg->ctx);
    cg->i32 = LLVMInt32TypeInContext(cg->ctx);
    cg->i64 = LLVMInt64TypeInContext(cg->ctx);
    cg->f16 = LLVMHalfTypeInContext(cg->ctx);
    cg->f32 = LLVMFloatTypeInContext(cg->ctx);
    cg->f64 = LLVMDoubleTypeInContext(cg->ctx);
    cg->ptr = LLVMPointerTypeInContext(cg->ctx, 0);
    cg->void_ = LLVMVoidTypeInContext(cg->ctx);
    return cg;
}

void cg_free(Cg *cg)
{
    if (!cg)
        return;
    cg_plan_free(&cg->plan);
    if (cg->mod)
        LLVMDisposeModule(cg->mod);
    if (cg->b)
        LLVMDisposeBuilder(cg->b);
    if (cg->td)
        LLVMDisposeTargetData(cg->td);
    if (cg->tm)
        LLVMDisposeTargetMachine(cg->tm);
    if (cg->ctx)
        LLVMContextDispose(cg->ctx);
    LLVMDisposeMessage(cg->triple);
    LLVMDisposeMessage(cg->cpu);
    LLVMDisposeMessage(cg->features);
    free((char *)cg->prefix);
    free(cg);
}

int cg_build(Cg *cg, const Graph *g)
{
    cg->g = g;
    cg->prefix = cg_ident(g->model ? g->model : "model");
    cg->mod = LLVMModuleCreateWithNameInContext(cg->prefix, cg->ctx);
    LLVMSetTarget(cg->mod, cg->triple);
    char *layout = LLVMCopyStringRepOfTargetData(cg->td);
    LLVMSetDataLayout(cg->mod, layout);
    LLVMDisposeMessage(layout);
    if (cg_plan(cg))
        return -1;
    int before = diag_errors(cg->d);
    cg_entry(cg);
    return diag_errors(cg->d) > before ? -1 : 0;
}

int cg_optimise(Cg *cg)
{
    char *err = NULL;
    if (LLVMVerifyModule(cg->mod, LLVMReturnStatusAction, &err)) {
        diag_fatal(cg->d, "internal error: the generated LLVM IR does not verify: %s", err);
        LLVMDisposeMessage(err);
        return -1;
    }
    LLVMDisposeMessage(err);
    char passes[32];
    snprintf(passes, sizeof passes, "default<O%d>", cg->opt.opt < 0 ? 0 : cg->opt.opt > 3 ? 3 : cg->opt.opt);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, cg->opt.opt >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(po, cg->opt.opt >= 2);
    LLVMErrorRef e = LLVMRunPasses(cg->mod, passes, cg->tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (e) {
        char *msg = LLVMGetErrorMessage(e);
        diag_fatal(cg->d, "LLVM optimisation failed: %s", msg);
        LLVMDisposeErrorMessage(msg);
        return -1;
    }
    return 0;
}

int cg_write_llvm(Cg *cg, const char *path)
{
    char *err = NULL;
    if (LLVMPrintModuleToFile(cg->mod, path, &err)) {
        diag_fatal(cg->d, "cannot write '%s': %s", path, err);
        LLVMDisposeMessage(err);
        return -1;
    }
    return 0;
}

int cg_emit_file(Cg *cg, const char *path, int assembly)
{
    char *err = NULL;
    if (LLVMTargetMachineEmitToFile(cg->tm, cg->mod, path, assembly ? LLVMAssemblyFile : LLVMObjectFile, &err)) {
        diag_fatal(cg->d, "cannot emit '%s': %s", path, err);
        LLVMDisposeMessage(err);
        return -1;
    }
    return 0;
}

static int jit_error(Cg *cg, LLVMErrorRef e, const char *what)
{
    char *msg = LLVMGetErrorMessage(e);
    diag_fatal(cg->d, "JIT: %s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return -1;
}

int cg_jit_run(Cg *cg, const int64_t *syms, void *const *inputs, void *const *outputs, int threads)
{
    LLVMOrcLLJITBuilderRef jb = LLVMOrcCreateLLJITBuilder();
    LLVMOrcJITTargetMachineBuilderRef tmb = LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(cg->tm);
    cg->tm = NULL; /* now owned by the JIT */
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(jb, tmb);
    LLVMOrcLLJITRef jit;
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&jit, jb);
    if (e)
        return jit_error(cg, e, "cannot create the JIT");
    int status = -1;
    LLVMOrcDefinitionGeneratorRef gen;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(jit), NULL, NULL);
    if (e) {
        jit_error(cg, e, "cannot search the process's symbols");
        goto done;
    }
    LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(jit), gen);
    {
        /* the runtime functions generated code calls, by address: the process need not export them
         * (a test program linked without -rdynamic does not) */
        static const struct {
            const char *name;
            void (*fn)(void);
        } rt[] = {
            {"rt_parallel_for", (void (*)(void))rt_parallel_for},
            {"rt_pool_size", (void (*)(void))rt_pool_size},
            {"rt_profile_mark", (void (*)(void))rt_profile_mark},
            {"rt_tome_match", (void (*)(void))rt_tome_match},
            {"rt_pitome_match", (void (*)(void))rt_pitome_match},
            {"rt_token_merge", (void (*)(void))rt_token_merge},
            {"rt_cls_attn", (void (*)(void))rt_cls_attn},
            {"rt_evit_select", (void (*)(void))rt_evit_select},
        };
        enum { NRT = sizeof rt / sizeof rt[0] };
        LLVMOrcCSymbolMapPair pairs[NRT];
        for (int i = 0; i < NRT; i++) {
            pairs[i].Name = LLVMOrcLLJITMangleAndIntern(jit, rt[i].name);
            pairs[i].Sym.Address = (LLVMOrcExecutorAddress)(uintptr_t)rt[i].fn;
            pairs[i].Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
            pairs[i].Sym.Flags.TargetFlags = 0;
        }
        e = LLVMOrcJITDylibDefine(LLVMOrcLLJITGetMainJITDylib(jit), LLVMOrcAbsoluteSymbols(pairs, NRT));
        if (e) {
            jit_error(cg, e, "cannot define the runtime's symbols");
            goto done;
        }
    }
    /* the module moves to a context of the JIT's own */
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    /* The JIT wants the module in its thread-safe context; a round trip through bitcode moves a
     * module between contexts without touching the one cg owns. */
    LLVMMemoryBufferRef buf = LLVMWriteBitcodeToMemoryBuffer(cg->mod);
    LLVMModuleRef mod2;
    if (LLVMParseBitcodeInContext2(LLVMOrcThreadSafeContextGetContext(tsc), buf, &mod2)) {
        diag_fatal(cg->d, "JIT: cannot move the module into the JIT's context");
        LLVMDisposeMemoryBuffer(buf);
        LLVMOrcDisposeThreadSafeContext(tsc);
        goto done;
    }
    LLVMDisposeMemoryBuffer(buf);
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod2, tsc);
    LLVMOrcDisposeThreadSafeContext(tsc);
    e = LLVMOrcLLJITAddLLVMIRModule(jit, LLVMOrcLLJITGetMainJITDylib(jit), tsm);
    if (e) {
        jit_error(cg, e, "cannot add the module");
        goto done;
    }
    char name[256];
    snprintf(name, sizeof name, "kiln_%s_run_raw", cg->prefix);
    LLVMOrcExecutorAddress addr;
    e = LLVMOrcLLJITLookup(jit, &addr, name);
    if (e) {
        jit_error(cg, e, "cannot find the entry");
        goto done;
    }
    RtEntry entry = (RtEntry)(uintptr_t)addr;
    void *arena = aligned_alloc(64, (size_t)((cg->plan.arena_bytes + 63) / 64 * 64 + 64));
    KILN_ASSERT(arena);
    RtPool *pool = rt_pool_new(threads > 0 ? threads : rt_default_threads());
    int rc = entry(cg->plan.weights, arena, syms, inputs, outputs, pool);
    rt_pool_free(pool);
    free(arena);
    if (rc)
        diag_fatal(cg->d, "the model failed at run time: an index is out of range (error %d)", rc);
    status = rc ? -1 : 0;
done:
    LLVMOrcDisposeLLJIT(jit);
    return status;
}
