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

/* LLVMCreateTargetMachine with what it prints to stderr in said (one line, newlines removed) when a
 * CPU or features were given; straight through otherwise. */
static LLVMTargetMachineRef given_names_checked(const CgOptions *o, LLVMTargetRef target, Cg *cg,
                                                LLVMCodeGenOptLevel lvl, char *said, size_t n)
{
    if (!o->cpu && !o->features)
        return LLVMCreateTargetMachine(target, cg->triple, cg->cpu, cg->features, lvl, LLVMRelocPIC,
                                       LLVMCodeModelDefault);
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = tmp ? dup(2) : -1;
    if (saved >= 0)
        dup2(fileno(tmp), 2);
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(target, cg->triple, cg->cpu, cg->features, lvl,
                                                      LLVMRelocPIC, LLVMCodeModelDefault);
    if (saved >= 0) {
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        rewind(tmp);
        size_t got = fread(said, 1, n - 1, tmp);
        said[got] = 0;
        for (char *c = said; *c; c++)
            if (*c == '\n')
                *c = c[1] ? ' ' : 0;
    }
    if (tmp)
        fclose(tmp);
    return tm;
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
    /* LLVM reports a CPU or feature name it does not know on stderr, "ignoring" it, and an unknown
     * x86-64 CPU then aborts the build later (no 64-bit feature). What it prints while the target
     * machine is made is caught and said as kiln's error. */
    char said[1024] = "";
    cg->tm = given_names_checked(o, target, cg, lvl, said, sizeof said);
    if (said[0]) {
        int cpu = strstr(said, "is not a recognized processor") != NULL;
        if (cpu || strstr(said, "is not a recognized feature")) {
            char bad[128] = "";
            const char *q = strchr(said, '\''), *e = q ? strchr(q + 1, '\'') : NULL;
            if (q && e && e - q - 1 < (long)sizeof bad)
                memcpy(bad, q + 1, (size_t)(e - q - 1));
            diag_fatal(d, "%s: LLVM does not know %s '%s' for the target %s (`llc-19 -mtriple=%s %s=help` lists them)",
                       cpu ? "--cpu" : "--features", cpu ? "the CPU" : "the feature", bad, cg->triple, cg->triple,
                       cpu ? "-mcpu" : "-mattr");
            if (cg->tm)
                LLVMDisposeTargetMachine(cg->tm);
            cg->tm = NULL;
            cg_free(cg);
            return NULL;
        }
        fputs(said, stderr);
    }
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
    if (cg->opt.explain)
        cg_explain(cg, cg->opt.explain);
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
    /* LLVM's tuning for Intel's AVX-512 cores (Skylake-SP to Sapphire Rapids, and Rocket Lake,
     * which is what some virtual machines report) prefers 256-bit vectors in the loops it
     * vectorises itself: the elementwise loops, the matmuls' epilogues (GELU's erf), the norms. The
     * hand-vectorised kernels already run 512-bit FMAs, so the core is at its AVX-512 clock anyway:
     * ask for 512 bits everywhere (on a Xeon with AMX, ViT-B/16's fc1 tile function with its GELU
     * epilogue went from 4.8% to 3.4% of the run's samples; with int8 weights on AMX, its matmul +
     * GELU groups 18.1 -> 15.5 ms a run; 1 thread, chrt, loaded machine). */
    CgTarget t = cg_target(cg);
    for (LLVMValueRef f = LLVMGetFirstFunction(cg->mod); f; f = LLVMGetNextFunction(f)) {
        if (LLVMIsDeclaration(f))
            continue;
        if (t.vw == 16)
            LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                                    LLVMCreateStringAttribute(cg->ctx, "prefer-vector-width", 19, "512", 3));
        /* the divisions marked arcp (loops.c's cg_recip: erf's 1 / Q(x^2)) as a reciprocal
         * estimate and one Newton step; divisions without the flag stay divisions */
        if (t.x86)
            LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                                    LLVMCreateStringAttribute(cg->ctx, "reciprocal-estimates", 20, "divf:1,vec-divf:1", 17));
    }
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
            {"rt_profile_peak", (void (*)(void))rt_profile_peak},
            {"rt_tome_select", (void (*)(void))rt_tome_select},
            {"rt_pitome_rank", (void (*)(void))rt_pitome_rank},
            {"rt_pitome_assign", (void (*)(void))rt_pitome_assign},
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
    char why[200];
    if (cg->amx_used && rt_request_amx(why, sizeof why)) { /* as rt_open does for RtModel.needs */
        diag_fatal(cg->d, "the code uses AMX tiles, but %s", why);
        goto done;
    }
    void *arena = aligned_alloc(64, (size_t)((cg->plan.arena_bytes + 63) / 64 * 64 + 64));
    KILN_ASSERT(arena);
    RtPool *pool = rt_pool_new(threads > 0 ? threads : rt_default_threads());
    int rc = entry(cg->plan.weights, arena, syms, inputs, outputs, pool);
    rt_pool_free(pool);
    free(arena);
    if (rc)
        diag_fatal(cg->d, "the model failed at run time: %s (error %d)",
                   rc > RT_ERR_CHECK ? rt_error_message(rc) : "an index is out of range", rc);
    status = rc ? -1 : 0;
done:
    LLVMOrcDisposeLLJIT(jit);
    return status;
}
