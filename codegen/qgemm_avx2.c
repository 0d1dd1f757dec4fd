/* qgemm_avx2.c: the int8 qmatmul (W8A8, dynamic or static: int8 x int8 -> int32) on x86 CPUs with AVX2 and
 * without AVX-512 VNNI (Haswell to Zen 3, Alder Lake, Skylake-SP and other AVX-512 cores without
 * VNNI), on 256-bit vectors: vpmaddwd on 16-bit pairs, or AVX-VNNI's vpdpbusd on ymm where the target
 * has it (avxvnni: Alder Lake and later client cores, Zen 5 with AVX-512 off). qgemm.c hands it the
 * products it does not take itself (no AVX-512 VNNI); its structure is qgemm.c's (packed panels,
 * prepared rows, blocks of K, m-blocks and n-blocks split over the threads, the epilogue on each
 * micro-tile), at 8 i32 lanes a vector and 16 registers.
 *
 * Arithmetic, exact: the result is the interpreter's integer, rescaled as it does,
 * ((float)acc * sa) * s[n] (ir/quant.c), so the bits are the same.
 *   - vpmaddwd (AVX2): each row is quantized to qa in -127..127 and stored as i16, the weights are
 *     sign-extended from i8 to i16 as they are loaded (vpmaddwd's operand is a vpmovsxbw from
 *     memory); one vpmaddwd multiplies 8 pairs of i16 and adds each pair into an i32 lane, then a
 *     vpaddd adds that into the accumulator. The products are exact and a pair sum is at most 2 x
 *     127 x 128 in magnitude; the i32 sums are exact for K < 2^16 (|sum| < 2^16 x 127 x 128 < 2^31).
 *     Not vpmaddubsw (u8 x s8 pairs into i16): it saturates its pair sums, and u8 = qa + 128 times
 *     s8 weights reaches 2 x 255 x 128 = 65280, far past 32767. The sign trick (|qa| as u8, the
 *     weight given qa's sign with vpsignb) keeps the pair sums within 2 x 127 x 128 = 32512, exact,
 *     but takes four instructions for 32 multiply-adds (vpsignb, vpmaddubsw, vpmaddwd by ones,
 *     vpaddd) where the i16 form takes two for 16, two of them multiplies either way, and two more of
 *     the 16 registers (the ones, the signed copy). Measured on Zen 4 (12 independent chains on ymm,
 *     best of 5, a loaded machine): 153 GOP/s for the sign trick, 152 to 194 for vpmaddwd + vpaddd.
 *   - vpdpbusd (AVX-VNNI): as qgemm.c on 16 lanes: rows stored as u8 = qa + 128, the weights as s8,
 *     four products a lane, the column sums times 128 subtracted once at the end (exact in i32).
 *
 * Weights, packed at compile time (into the weights blob through Plan.packed), as i8 either way (the
 * bytes of int8, what choose-quant counts): panels of NR = nv x 8 columns; within a panel, for each
 * group of k (2 for vpmaddwd, 4 for vpdpbusd: what one i32 lane reads), NR groups, column c's
 * together; K padded to whole groups and N to whole panels with zeros. Then, with vpdpbusd only,
 * 128 x colsum(w) as Np i32; then the scales as Np f32 (zeros past N).
 *
 * Activations: each row's sa = amax / 127 over the whole row (with the first block of K, while the
 * row is in L1; a static qmatmul's ascale instead, no pass over the row), then for each block of K the row's elements as qa (i16) or qa + 128 (u8) into a
 * buffer on the thread's stack, rows ROWB bytes apart; the quotient a / sa as a * (1 / sa), with a
 * division where that could round differently (as qgemm.c: ties and non-finite products). Vectors
 * of 8 floats.
 *
 * Micro-kernel: MR x NR in MR x nv ymm accumulators, 6 x 16 by default: 12 accumulators, the nv
 * vectors of the panel, the broadcast row word and vpmaddwd's product fill the 16 registers (AVX-VNNI
 * adds in place: one fewer). Each step reads one 4-byte word of each of the MR rows (broadcast) and
 * nv vectors of the panel. With fewer than 8 accumulators (M = 1 or 2) consecutive steps go to 2 or
 * 4 sets, added at the end, so that vpdpbusd's latency does not bound the loop. Blocks of K of KCB
 * bytes a row (512: 256 i16 or 512 u8 elements), the partial i32 sums kept in C between them;
 * m-blocks of up to QBUF (128 KiB) of prepared rows; n-blocks of panels whose block of K fills at
 * most half of L2. Tiles (m-block, n-block) in contiguous ranges over the threads as qgemm.c splits
 * them (an m-block per thread where M allows and the weights fit in L2 or N <= 4 M, else the threads
 * split N). fuse-ops' epilogue runs on each micro-tile from a stack tile after the last block of K.
 *
 * KILN_QGEMM_AVX2 ("mr=6,nv=2,mc=0,ncp=8,kcb=512,qbuf=128") overrides the blocking at compile time
 * (nv changes the packed layout); madd=1 uses vpmaddwd where the target has AVX-VNNI; off=1 leaves
 * the products to quant.c's portable kernel (for comparing them); force=1 takes the products of a
 * target with AVX-512 VNNI too (whose AVX512-VL encodes the same vpdpbusd on ymm: how this kernel's
 * AVX-VNNI form is tested on a host without AVX-VNNI; qgemm.c's kernels are faster there).
 */
#include "codegen/codegen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    VW = 8,                /* i32 lanes of a ymm register */
    SERIAL_WORK = 1 << 17, /* multiply-adds under which a product stays on the calling thread */
    KGRAIN = 16,           /* elements the blocks of K are multiples of (but the last) */
};

typedef struct ACfg {
    int vnni;  /* 1: vpdpbusd on ymm (u8 x s8 quads), 0: vpmaddwd (i16 pairs) */
    int kg;    /* elements of k in the 4 bytes of one lane: 4 (vnni) or 2 */
    int es;    /* bytes per element of the prepared rows: 1 (u8, vnni) or 2 (i16); the panels hold i8 */
    int mr;    /* rows of the micro-tile */
    int nv;    /* vectors of 8 columns per row of the micro-tile */
    int nr;    /* nv * 8: columns per panel */
    int mc;    /* most rows per m-block (a multiple of mr); 0: as many as QBUF holds */
    int ncp;   /* most panels per n-block */
    int unroll; /* steps of 4 bytes per iteration of the micro-kernel's loop (1, 2 or 4) */
    int kcb;   /* bytes of a row per block of K */
    int rowb;  /* kcb + 64: bytes between prepared rows */
    int qbuf;  /* bytes of prepared rows a thread keeps on its stack, at most */
    int off;   /* never take a product */
    int force; /* take products on targets with AVX-512 VNNI too */
    const char *why; /* why this arithmetic */
} ACfg;

static int64_t pad(int64_t x, int64_t m)
{
    return (x + m - 1) / m * m;
}

static ACfg acfg(const Cg *cg)
{
    CgTarget t = cg_target(cg);
    ACfg c = {.mr = 6, .nv = 2, .ncp = 8, .kcb = 512, .qbuf = 128 << 10, .unroll = 2};
    int madd = 0;
    for (const char *p = getenv("KILN_QGEMM_AVX2"); p && *p;) {
        char key[8] = {0};
        int n = 0;
        long v = 0;
        if (sscanf(p, "%7[a-z]=%ld%n", key, &v, &n) == 2 && v >= 0) {
            if (!strcmp(key, "mr") && v >= 1 && v <= 8)
                c.mr = (int)v;
            else if (!strcmp(key, "nv") && v >= 1 && v <= 4)
                c.nv = (int)v;
            else if (!strcmp(key, "mc") && v <= 4096)
                c.mc = (int)v;
            else if (!strcmp(key, "ncp") && v >= 1 && v <= 4096)
                c.ncp = (int)v;
            else if (!strcmp(key, "kcb") && v >= 64 && v <= 16384)
                c.kcb = ((int)v + 63) & ~63;
            else if (!strcmp(key, "qbuf") && v >= 4 && v <= 4096)
                c.qbuf = (int)v << 10;
            else if (!strcmp(key, "unroll") && (v == 1 || v == 2 || v == 4))
                c.unroll = (int)v;
            else if (!strcmp(key, "madd"))
                madd = v != 0;
            else if (!strcmp(key, "off"))
                c.off = v != 0;
            else if (!strcmp(key, "force"))
                c.force = v != 0;
        }
        const char *e = strchr(p, ',');
        p = e ? e + 1 : NULL;
    }
    /* vpdpbusd on ymm: AVX-VNNI, or AVX512-VL with AVX-512 VNNI (every CPU with the latter) */
    int has = t.avxvnni || t.vnni;
    c.vnni = has && !madd;
    c.why = c.vnni ? (t.avxvnni ? "avxvnni on this target" : "AVX-512 VNNI's vpdpbusd on ymm (KILN_QGEMM_AVX2 force=1)")
            : has  ? "KILN_QGEMM_AVX2 has madd=1"
                   : "no AVX-VNNI on this target";
    c.kg = c.vnni ? 4 : 2;
    c.es = c.vnni ? 1 : 2;
    c.nr = c.nv * VW;
    c.mc = (c.mc + c.mr - 1) / c.mr * c.mr;
    c.rowb = c.kcb + 64;
    return c;
}

/* Elements of K per block: KCB bytes of a row (fewer, of equal blocks, rounded up to KGRAIN). */
static int64_t k_block(const ACfg *c, int64_t K)
{
    int64_t kc = c->kcb / c->es, nkb = (K + kc - 1) / kc;
    return pad((K + nkb - 1) / nkb, KGRAIN);
}

/* The most rows of an m-block: MC when given, else as many as QBUF holds (a multiple of mr). */
static int64_t mc_rows(const ACfg *c)
{
    int64_t m = c->qbuf / c->rowb / c->mr * c->mr;
    if (c->mc && c->mc < m)
        m = c->mc;
    return m < c->mr ? c->mr : m;
}

static int is_constant(const Node *x)
{
    return (x->op == OP_CONST || x->op == OP_WEIGHT) && x->at.data;
}

/* Whether this kernel runs n: a dynamic int8 qmatmul with constant weights and scales, K < 2^16, on
 * x86 with AVX2 (8 or 16 floats a vector) without AVX-512 VNNI, unless forced. */
static int takes(const Cg *cg, const ACfg *c, const Node *n)
{
    if (c->off || n->op != OP_QMATMUL || !ir_qmm_w8a8(n) || n->nin != 3 || n->in[1]->dtype != DT_I8 ||
        !is_constant(n->in[1]) || !is_constant(n->in[2]))
        return 0;
    const Node *w = n->in[1];
    if (dim_value(w->shape[0]) < 1 || dim_value(w->shape[0]) >= (1 << 16) || dim_value(w->shape[1]) < 1)
        return 0;
    CgTarget t = cg_target(cg);
    return t.x86 && t.vw >= 8 && (!t.vnni || c->force);
}

int64_t cg_qgemm_avx2_packed_bytes(Cg *cg, const Node *n)
{
    ACfg c = acfg(cg);
    if (!takes(cg, &c, n))
        return 0;
    int64_t K = dim_value(n->in[1]->shape[0]), N = dim_value(n->in[1]->shape[1]), Np = pad(N, c.nr);
    return pad(K, c.kg) * Np + (c.vnni ? 8 : 4) * Np;
}

void cg_qgemm_avx2_pack(Cg *cg, const Node *n, void *dst)
{
    ACfg c = acfg(cg);
    KILN_ASSERT(takes(cg, &c, n));
    const Node *w = n->in[1], *s = n->in[2];
    int64_t K = dim_value(w->shape[0]), N = dim_value(w->shape[1]), nr = c.nr, Kp = pad(K, c.kg), Np = pad(N, nr);
    const int8_t *wd = w->at.data;
    int64_t pbytes = Kp * Np;
    int8_t *p = dst;
    memset(dst, 0, (size_t)cg_qgemm_avx2_packed_bytes(cg, n));
    for (int64_t j = 0; j < N; j++) {
        int64_t panel = j / nr, col = j % nr, sum = 0;
        for (int64_t k = 0; k < K; k++) {
            /* element k of column j: group k / kg of the panel, column col's 4 bytes, element k % kg */
            p[panel * Kp * nr + (k / c.kg) * nr * c.kg + col * c.kg + k % c.kg] = wd[k * N + j];
            sum += wd[k * N + j];
        }
        float sc = (float)dtype_load(s->dtype, s->at.data, (size_t)j);
        if (c.vnni) {
            int32_t comp = (int32_t)(128 * sum);
            memcpy(p + pbytes + 4 * j, &comp, 4);
            memcpy(p + pbytes + 4 * Np + 4 * j, &sc, 4);
        } else {
            memcpy(p + pbytes + 4 * j, &sc, 4);
        }
    }
}

int cg_qgemm_avx2_explain(Cg *cg, FILE *out)
{
    ACfg c = acfg(cg);
    CgTarget t = cg_target(cg);
    if (c.off || !t.x86 || t.vw < 8 || (t.vnni && !c.force))
        return 0;
    const char *env = getenv("KILN_QGEMM_AVX2");
    fprintf(out, "codegen: int8 GEMM (AVX2, %s: %s): micro-tile %d x %d (%d rows, %d vectors of 8 i32): %d accumulators; %s; "
                 "blocks of K of %d bytes a row, m-blocks of at most %lld rows (%d KiB of prepared rows per thread), "
                 "n-blocks of at most %d panels (and a block of K of them in half of L2)%s%s\n",
            c.vnni ? "vpdpbusd on ymm" : "vpmaddwd", c.why, c.mr, c.nr, c.mr, c.nv, c.mr * c.nv,
            c.vnni ? "rows as u8 = qa + 128, corrected by 128 x the column sums"
                   : "rows and weights as i16 pairs, exact (vpmaddubsw's i16 pair sums would saturate)",
            c.kcb, (long long)mc_rows(&c), c.qbuf >> 10, c.ncp, env ? "; KILN_QGEMM_AVX2=" : "", env ? env : "");
    return 1;
}

/* ---------------------------------------------------------------- IR helpers */

static LLVMValueRef load(Cg *cg, LLVMTypeRef t, LLVMValueRef p, unsigned align)
{
    LLVMValueRef v = LLVMBuildLoad2(cg->b, t, p, "");
    LLVMSetAlignment(v, align);
    return v;
}

static void store(Cg *cg, LLVMValueRef v, LLVMValueRef p, unsigned align)
{
    LLVMSetAlignment(LLVMBuildStore(cg->b, v, p), align);
}

static void set_attr(Cg *cg, LLVMValueRef f, unsigned idx, const char *name)
{
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    KILN_ASSERT(kind);
    LLVMAddAttributeAtIndex(f, idx, LLVMCreateEnumAttribute(cg->ctx, kind, 0));
}

static LLVMValueRef masked_load(Cg *cg, LLVMTypeRef vt, LLVMValueRef p, LLVMValueRef m)
{
    LLVMTypeRef tys[2] = {vt, cg->ptr};
    return cg_call_intrinsic(cg, "llvm.masked.load", tys, 2, (LLVMValueRef[]){p, LLVMConstInt(cg->i32, 4, 0), m, LLVMConstNull(vt)}, 4);
}

static void masked_store(Cg *cg, LLVMValueRef x, LLVMValueRef p, LLVMValueRef m)
{
    LLVMTypeRef tys[2] = {LLVMTypeOf(x), cg->ptr};
    cg_call_intrinsic(cg, "llvm.masked.store", tys, 2, (LLVMValueRef[]){x, p, LLVMConstInt(cg->i32, 1, 0), m}, 4);
}

/* A call of a non-overloaded x86 intrinsic, its arguments bitcast to its parameter types. */
static LLVMValueRef x86_call(Cg *cg, const char *name, LLVMValueRef *args, unsigned nargs)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    KILN_ASSERT(id);
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(cg->mod, id, NULL, 0);
    LLVMTypeRef fty = LLVMIntrinsicGetType(cg->ctx, id, NULL, 0), pt[4];
    KILN_ASSERT(LLVMCountParamTypes(fty) == nargs && nargs <= 4);
    LLVMGetParamTypes(fty, pt);
    LLVMValueRef a[4];
    for (unsigned i = 0; i < nargs; i++)
        a[i] = LLVMTypeOf(args[i]) == pt[i] ? args[i] : LLVMBuildBitCast(cg->b, args[i], pt[i], "");
    return LLVMBuildCall2(cg->b, fty, f, a, nargs, "");
}

/* ---------------------------------------------------------------- preparing rows (qgemm.c's, 8 wide) */

/* *amax = maxnum(*amax, |x|): vmaxps(|x|, amax) returns its second operand where either is NaN. */
static void amax_step(Cg *cg, LLVMValueRef amax, LLVMValueRef x)
{
    LLVMValueRef m = LLVMBuildLoad2(cg->b, LLVMTypeOf(x), amax, "");
    LLVMValueRef ax = cg_intrinsic(cg, "llvm.fabs", &x, 1);
    store(cg, x86_call(cg, "llvm.x86.avx.max.ps.256", (LLVMValueRef[]){ax, m}, 2), amax, 32);
}

/* sa = amax / 127 of rows [r0, r1) of a into sab[0 ..] (the interpreter's: maxnum drops NaN), or a
 * static qmatmul's fixed scale (ascale: no pass over the rows). */
static void row_scales(Cg *cg, LLVMValueRef a, int64_t K, LLVMValueRef r0, LLVMValueRef r1, LLVMValueRef sab,
                       float fixed)
{
    if (fixed > 0) {
        Loop lr = cg_loop_begin(cg, r0, r1, "srow");
        LLVMValueRef r = LLVMBuildSub(cg->b, lr.iv, r0, "");
        LLVMBuildStore(cg->b, LLVMConstReal(cg->f32, fixed), LLVMBuildGEP2(cg->b, cg->f32, sab, &r, 1, ""));
        cg_loop_end(cg, &lr);
        return;
    }
    CgVec V = cg_vec(cg, VW, 1);
    int64_t full = K / VW, tail = K % VW;
    LLVMValueRef amax = cg_alloca(cg, V.vt, "amax");
    Loop lr = cg_loop_begin(cg, r0, r1, "srow");
    LLVMValueRef src = cg_fptr(cg, a, cg_mul(cg, lr.iv, cg_i64(cg, K)));
    store(cg, LLVMConstNull(V.vt), amax, 32);
    Loop lm = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, full), "amax");
    amax_step(cg, amax, cg_vload(&V, cg_fptr(cg, src, cg_mul(cg, lm.iv, cg_i64(cg, VW))), 4));
    cg_prefetch(cg, cg_fptr(cg, src, cg_add(cg, cg_mul(cg, lm.iv, cg_i64(cg, VW)), cg_i64(cg, K))), 0);
    cg_loop_end(cg, &lm);
    if (tail)
        amax_step(cg, amax, masked_load(cg, V.vt, cg_fptr(cg, src, cg_i64(cg, full * VW)), cg_vlanes_below(&V, cg_i64(cg, tail))));
    LLVMValueRef sa = LLVMBuildFDiv(cg->b, cg_vhmax(&V, load(cg, V.vt, amax, 32)), LLVMConstReal(cg->f32, 127), "");
    LLVMValueRef r = LLVMBuildSub(cg->b, lr.iv, r0, "");
    store(cg, sa, LLVMBuildGEP2(cg->b, cg->f32, sab, &r, 1, ""), 4);
    cg_loop_end(cg, &lr);
}

/* ir_quantize1(x, s, 0, -127, 127) for a vector (qgemm.c's quantize_row: x * (1 / s), and the
 * division for a vector with a lane within 2^-15 of a tie or a product not below 256). */
static LLVMValueRef quantize_vec(Cg *cg, const CgVec *V, LLVMValueRef x, LLVMValueRef sv, LLVMValueRef rv)
{
    LLVMValueRef slot = cg_alloca(cg, V->vt, "quot");
    LLVMValueRef y = LLVMBuildFMul(cg->b, x, rv, "");
    store(cg, y, slot, 32);
    LLVMValueRef t = LLVMBuildFSub(cg->b, LLVMBuildFSub(cg->b, y, cg_intrinsic(cg, "llvm.floor", &y, 1), ""), cg_vconst(V, 0.5), "");
    LLVMValueRef near = LLVMBuildFCmp(cg->b, LLVMRealULE, cg_intrinsic(cg, "llvm.fabs", &t, 1), cg_vconst(V, 0x1p-15), "");
    LLVMValueRef big = LLVMBuildFCmp(cg->b, LLVMRealUGE, cg_intrinsic(cg, "llvm.fabs", &y, 1), cg_vconst(V, 256), "");
    LLVMValueRef any = cg_intrinsic(cg, "llvm.vector.reduce.or", (LLVMValueRef[]){LLVMBuildOr(cg->b, near, big, "")}, 1);
    LLVMBasicBlockRef done = cg_if_begin(cg, any, "divide");
    store(cg, LLVMBuildFDiv(cg->b, x, sv, ""), slot, 32);
    cg_if_end(cg, done);
    LLVMValueRef dq = load(cg, V->vt, slot, 32);
    LLVMValueRef q = cg_intrinsic(cg, "llvm.roundeven", &dq, 1);
    LLVMValueRef none = LLVMBuildOr(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOEQ, sv, LLVMConstNull(V->vt), ""),
                                    LLVMBuildFCmp(cg->b, LLVMRealUNO, dq, dq, ""), "");
    q = LLVMBuildSelect(cg->b, none, LLVMConstNull(V->vt), q, "");
    q = LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOLT, q, cg_vconst(V, -127), ""), cg_vconst(V, -127), q, "");
    return LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, LLVMRealOGT, q, cg_vconst(V, 127), ""), cg_vconst(V, 127), q, "");
}

/* Elements k .. k+7 of the row src (the lanes of mask only when given, the others 0) at element k
 * of dst: qa as i16, or qa + 128 as u8 (vnni). */
static void prepare_vector(Cg *cg, const ACfg *c, const CgVec *V, LLVMValueRef src, LLVMValueRef dst, LLVMValueRef k,
                           LLVMValueRef mask, LLVMValueRef sv, LLVMValueRef rv)
{
    LLVMValueRef x = mask ? masked_load(cg, V->vt, cg_fptr(cg, src, k), mask) : cg_vload(V, cg_fptr(cg, src, k), 4);
    LLVMValueRef q = LLVMBuildFPToSI(cg->b, quantize_vec(cg, V, x, sv, rv), V->it, "");
    if (c->vnni) {
        q = cg_add(cg, q, cg_viconst(V, cg->i32, 128));
        store(cg, LLVMBuildTrunc(cg->b, q, LLVMVectorType(cg->i8, VW), ""), cg_gep8(cg, dst, k), 1);
    } else {
        store(cg, LLVMBuildTrunc(cg->b, q, LLVMVectorType(cg->i16, VW), ""), cg_gep8(cg, dst, cg_mul(cg, k, cg_i64(cg, 2))), 2);
    }
}

/* Elements [k0, k0 + kn) of rows [r0, r1) into buf (rows ROWB bytes apart), their scales in sab. */
static void prepare_block(Cg *cg, const ACfg *c, LLVMValueRef a, int64_t K, LLVMValueRef r0, LLVMValueRef r1,
                          LLVMValueRef k0, LLVMValueRef kn, LLVMValueRef buf, LLVMValueRef sab)
{
    CgVec V = cg_vec(cg, VW, 1);
    LLVMValueRef full = LLVMBuildUDiv(cg->b, kn, cg_i64(cg, VW), ""), done = cg_mul(cg, full, cg_i64(cg, VW));
    LLVMValueRef tail = LLVMBuildSub(cg->b, kn, done, "");
    LLVMValueRef tmask = cg_vlanes_below(&V, tail);
    Loop lr = cg_loop_begin(cg, r0, r1, "prow");
    LLVMValueRef src = cg_fptr(cg, a, cg_add(cg, cg_mul(cg, lr.iv, cg_i64(cg, K)), k0));
    LLVMValueRef r = LLVMBuildSub(cg->b, lr.iv, r0, "");
    LLVMValueRef dst = cg_gep8(cg, buf, cg_mul(cg, r, cg_i64(cg, c->rowb)));
    LLVMValueRef sv = cg_vsplat(&V, load(cg, cg->f32, LLVMBuildGEP2(cg->b, cg->f32, sab, &r, 1, ""), 4));
    LLVMValueRef rv = LLVMBuildFDiv(cg->b, cg_vconst(&V, 1), sv, "");
    Loop lc = cg_loop_begin(cg, cg_i64(cg, 0), full, "pvec");
    prepare_vector(cg, c, &V, src, dst, cg_mul(cg, lc.iv, cg_i64(cg, VW)), NULL, sv, rv);
    cg_loop_end(cg, &lc);
    /* the last vector masked: its lanes past kn are 0 (qa 0), so a last group is whole */
    LLVMBasicBlockRef after = cg_if_begin(cg, LLVMBuildICmp(cg->b, LLVMIntSGT, tail, cg_i64(cg, 0), ""), "ptail");
    prepare_vector(cg, c, &V, src, dst, done, tmask, sv, rv);
    cg_if_end(cg, after);
    cg_loop_end(cg, &lr);
}

/* ---------------------------------------------------------------- the micro-kernel
 *
 * void kiln_qgemm_avx2_{madd,vnni}_ukr<mr>x<nv>[_edge](ptr a, i64 lda, ptr b, i64 kq, ptr c, i64 ldc,
 *                                    ptr comp, ptr scale, ptr sa, i64 nrem, i64 first, i64 last,
 *                                    ptr f, i64 ldf)
 *   S = (first ? 0 : C[0:mr, 0:NR]) + A[0:mr, block] @ B[block, 0:NR]   (i32)
 *   last: F[0:mr, 0:NR] = ((float)(S - comp) * sa[row]) * scale[col] (comp: vnni only)
 *   else: C[0:mr, 0:NR] = S (i32 partial sums in C's floats)
 * as qgemm.c's: a holds mr prepared rows of the block (kq groups of 4 bytes), lda bytes apart; b the
 * panel from the block's first group. The _edge variant touches only the first nrem columns. */

typedef struct Ukr {
    Cg *cg;
    const ACfg *c;
    int mr, sets;
    CgVec V;
    LLVMValueRef a, lda, b;
    LLVMValueRef acc[4 * 8 * 4]; /* [set][row][vector] allocas */
} Ukr;

static LLVMValueRef *acc_slot(Ukr *u, int s, int r, int v)
{
    return &u->acc[(s * u->mr + r) * u->c->nv + v];
}

/* acc + the dot products of the 4-byte lanes of x (broadcast row word) and w (panel vector). */
static LLVMValueRef dot(Ukr *u, LLVMValueRef acc, LLVMValueRef x, LLVMValueRef w)
{
    Cg *cg = u->cg;
    if (u->c->vnni)
        return x86_call(cg, "llvm.x86.avx512.vpdpbusd.256", (LLVMValueRef[]){acc, x, w}, 3);
    return cg_add(cg, acc, x86_call(cg, "llvm.x86.avx2.pmadd.wd", (LLVMValueRef[]){x, w}, 2));
}

/* One step (group kk of 4 bytes per lane) into accumulator set s. */
static void ukr_step(Ukr *u, LLVMValueRef kk, int s)
{
    Cg *cg = u->cg;
    LLVMValueRef bv[4];
    int gb = u->c->kg * u->c->nr; /* bytes of the panel per group */
    LLVMValueRef brow = cg_gep8(cg, u->b, cg_mul(cg, kk, cg_i64(cg, gb)));
    for (int v = 0; v < u->c->nv; v++) {
        if (u->c->vnni) { /* 8 columns x 4 i8 */
            bv[v] = load(cg, u->V.it, cg_gep8(cg, brow, cg_i64(cg, 32 * v)), 1);
            continue;
        }
        /* 8 columns x 2 i8, sign-extended to i16 (vpmovsxbw from memory) */
        LLVMValueRef x = load(cg, LLVMVectorType(cg->i8, 16), cg_gep8(cg, brow, cg_i64(cg, 16 * v)), 1);
        bv[v] = LLVMBuildSExt(cg->b, x, LLVMVectorType(cg->i16, 16), "");
    }
    LLVMValueRef k4 = cg_mul(cg, kk, cg_i64(cg, 4));
    for (int r = 0; r < u->mr; r++) {
        LLVMValueRef a4 = load(cg, cg->i32, cg_gep8(cg, u->a, cg_add(cg, k4, cg_mul(cg, cg_i64(cg, r), u->lda))), 1);
        LLVMValueRef bc = cg_vsplat(&u->V, a4);
        for (int v = 0; v < u->c->nv; v++) {
            LLVMValueRef slot = *acc_slot(u, s, r, v);
            store(cg, dot(u, load(cg, u->V.it, slot, 32), bc, bv[v]), slot, 32);
        }
    }
}

static LLVMValueRef ukr_function(Cg *cg, const ACfg *c, int mr, int edge)
{
    char name[64];
    snprintf(name, sizeof name, "kiln_qgemm_avx2_%s_ukr%dx%d%s", c->vnni ? "vnni" : "madd", mr, c->nv, edge ? "_edge" : "");
    LLVMValueRef f = LLVMGetNamedFunction(cg->mod, name);
    if (f)
        return f;
    LLVMTypeRef params[14] = {cg->ptr, cg->i64, cg->ptr, cg->i64, cg->ptr, cg->i64,
                              cg->ptr, cg->ptr, cg->ptr, cg->i64, cg->i64, cg->i64, cg->ptr, cg->i64};
    LLVMBasicBlockRef saved_bb = LLVMGetInsertBlock(cg->b);
    LLVMValueRef saved_fn = cg->fn;
    f = LLVMAddFunction(cg->mod, name, LLVMFunctionType(cg->void_, params, 14, 0));
    LLVMSetLinkage(f, LLVMInternalLinkage);
    set_attr(cg, f, LLVMAttributeFunctionIndex, "nounwind");
    set_attr(cg, f, LLVMAttributeFunctionIndex, "noinline");
    cg_vector_width_attr(cg, f, VW);
    set_attr(cg, f, 1, "noalias");
    set_attr(cg, f, 3, "noalias");
    set_attr(cg, f, 5, "noalias");
    cg->fn = f;
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, f, "entry"));
    Ukr u = {.cg = cg, .c = c, .mr = mr, .V = cg_vec(cg, VW, 1)};
    u.a = LLVMGetParam(f, 0);
    u.lda = LLVMGetParam(f, 1);
    u.b = LLVMGetParam(f, 2);
    LLVMValueRef kq = LLVMGetParam(f, 3), cp = LLVMGetParam(f, 4), ldc = LLVMGetParam(f, 5);
    LLVMValueRef comp = LLVMGetParam(f, 6), scale = LLVMGetParam(f, 7), sa = LLVMGetParam(f, 8);
    LLVMValueRef nrem = LLVMGetParam(f, 9), first = LLVMGetParam(f, 10), last = LLVMGetParam(f, 11);
    LLVMValueRef cfin = LLVMGetParam(f, 12), ldfin = LLVMGetParam(f, 13);
    u.sets = 1;
    while (u.sets < c->unroll && u.sets * mr * c->nv < 8)
        u.sets *= 2;
    for (int i = 0; i < u.sets * mr * c->nv; i++) {
        u.acc[i] = cg_alloca(cg, u.V.it, "acc");
        store(cg, LLVMConstNull(u.V.it), u.acc[i], 32);
    }
    LLVMValueRef mask[4];
    for (int v = 0; v < c->nv; v++)
        mask[v] = edge ? cg_vlanes_below(&u.V, LLVMBuildSub(cg->b, nrem, cg_i64(cg, v * VW), "")) : NULL;
    /* after the first block of K, the partial sums from C */
    LLVMBasicBlockRef resume = cg_if_begin(cg, LLVMBuildICmp(cg->b, LLVMIntEQ, first, cg_i64(cg, 0), ""), "resume");
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < c->nv; v++) {
            LLVMValueRef p = cg_fptr(cg, cp, cg_add(cg, cg_mul(cg, cg_i64(cg, r), ldc), cg_i64(cg, v * VW)));
            store(cg, mask[v] ? masked_load(cg, u.V.it, p, mask[v]) : load(cg, u.V.it, p, 4), *acc_slot(&u, 0, r, v), 32);
        }
    cg_if_end(cg, resume);
    Loop l4 = cg_loop_begin(cg, cg_i64(cg, 0), LLVMBuildSub(cg->b, kq, cg_i64(cg, c->unroll - 1), ""), "k4");
    for (int s = 0; s < c->unroll; s++)
        ukr_step(&u, cg_add(cg, l4.iv, cg_i64(cg, s)), s % u.sets);
    cg_loop_end_step(cg, &l4, cg_add(cg, l4.iv, cg_i64(cg, c->unroll)));
    Loop l1 = cg_loop_begin(cg, l4.phi, kq, "k1");
    ukr_step(&u, l1.iv, 0);
    cg_loop_end(cg, &l1);
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < c->nv; v++) {
            LLVMValueRef y = load(cg, u.V.it, *acc_slot(&u, 0, r, v), 32);
            for (int s = 1; s < u.sets; s++)
                y = cg_add(cg, y, load(cg, u.V.it, *acc_slot(&u, s, r, v), 32));
            store(cg, y, *acc_slot(&u, 0, r, v), 32);
        }
    LLVMBasicBlockRef fin = LLVMAppendBasicBlockInContext(cg->ctx, f, "final");
    LLVMBasicBlockRef part = LLVMAppendBasicBlockInContext(cg->ctx, f, "partial");
    LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntNE, last, cg_i64(cg, 0), ""), fin, part);
    for (int final = 0; final < 2; final++) {
        LLVMPositionBuilderAtEnd(cg->b, final ? fin : part);
        LLVMValueRef sav[8], cv = NULL, sv = NULL;
        for (int r = 0; r < mr && final; r++)
            sav[r] = cg_vsplat(&u.V, load(cg, cg->f32, LLVMBuildGEP2(cg->b, cg->f32, sa, (LLVMValueRef[]){cg_i64(cg, r)}, 1, ""), 4));
        for (int v = 0; v < c->nv; v++) {
            if (final) {
                cv = c->vnni ? load(cg, u.V.it, cg_gep8(cg, comp, cg_i64(cg, 32 * v)), 4) : NULL;
                sv = load(cg, u.V.vt, cg_gep8(cg, scale, cg_i64(cg, 32 * v)), 4);
            }
            for (int r = 0; r < mr; r++) {
                LLVMValueRef y = load(cg, u.V.it, *acc_slot(&u, 0, r, v), 32);
                if (final) { /* the interpreter's ((float)acc * sa) * s, in that order */
                    if (cv)
                        y = LLVMBuildSub(cg->b, y, cv, "");
                    y = LLVMBuildSIToFP(cg->b, y, u.V.vt, "");
                    y = LLVMBuildFMul(cg->b, LLVMBuildFMul(cg->b, y, sav[r], ""), sv, "");
                }
                LLVMValueRef p = final ? cg_fptr(cg, cfin, cg_add(cg, cg_mul(cg, cg_i64(cg, r), ldfin), cg_i64(cg, v * VW)))
                                       : cg_fptr(cg, cp, cg_add(cg, cg_mul(cg, cg_i64(cg, r), ldc), cg_i64(cg, v * VW)));
                if (mask[v])
                    masked_store(cg, y, p, mask[v]);
                else
                    store(cg, y, p, 4);
            }
        }
        LLVMBuildRetVoid(cg->b);
    }
    cg->fn = saved_fn;
    LLVMPositionBuilderAtEnd(cg->b, saved_bb);
    return f;
}

/* ---------------------------------------------------------------- tiles (qgemm.c's, without AMX) */

enum { CP_OUT, CP_A, CP_PK, CP_LEAVES, CP_M, CP_MCB, CP_TM, CP_TN, CP_NCP, CP_COUNT };

typedef struct Tiles {
    const ACfg *c;
    const Node *n;
    LLVMValueRef epi; /* the epilogue's function, or NULL */
} Tiles;

/* Tiles [begin, end), ordered m-block then n-block: for each block of K the rows of the tile's
 * m-block are prepared once, then every n-block of the range, micro-row by micro-row, panel by panel. */
static void tiles_body(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    const Tiles *tl = ctx;
    const ACfg *c = tl->c;
    const Node *n = tl->n;
    int64_t K = dim_value(n->in[1]->shape[0]), N = dim_value(n->in[1]->shape[1]), Kp = pad(K, c->kg), Np = pad(N, c->nr);
    int64_t mcmax = mc_rows(c), np = Np / c->nr, panel = Kp * c->nr, kcb = k_block(c, K);
    int64_t nkb = (K + kcb - 1) / kcb;
    LLVMValueRef out = cap[CP_OUT], pk = cap[CP_PK], M = cap[CP_M], mcb = cap[CP_MCB], tn = cap[CP_TN];
    LLVMValueRef ncp = cap[CP_NCP];
    LLVMValueRef buf = cg_alloca(cg, LLVMArrayType2(cg->i8, (uint64_t)(mcmax * c->rowb)), "rows");
    LLVMSetAlignment(buf, 64);
    LLVMValueRef sab = cg_alloca(cg, LLVMArrayType2(cg->f32, (uint64_t)mcmax), "sa");
    /* with an epilogue, each micro-tile's final values go to this stack tile (qgemm.c says why) */
    LLVMValueRef fbuf = tl->epi ? cg_alloca(cg, LLVMArrayType2(cg->f32, (uint64_t)(c->mr * c->nr)), "final") : NULL;
    if (fbuf)
        LLVMSetAlignment(fbuf, 64);
    /* after the panels: the column sums (vnni), then the scales */
    LLVMValueRef comp0 = cg_gep8(cg, pk, cg_i64(cg, Kp * Np));
    LLVMValueRef scale0 = cg_gep8(cg, pk, cg_i64(cg, Kp * Np + (c->vnni ? 4 * Np : 0)));

    Loop lt = cg_loop_begin(cg, begin, end, "tile");
    LLVMValueRef mb = LLVMBuildSDiv(cg->b, lt.iv, tn, "");
    LLVMValueRef run_end = cg_smin(cg, end, cg_mul(cg, cg_add(cg, mb, cg_i64(cg, 1)), tn));
    LLVMValueRef nb0 = LLVMBuildSub(cg->b, lt.iv, cg_mul(cg, mb, tn), ""), nb1 = LLVMBuildSub(cg->b, run_end, cg_mul(cg, mb, tn), "");
    /* the last m-block ends at M */
    LLVMValueRef i0 = cg_mul(cg, mb, mcb);
    LLVMValueRef i1 = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, mb, LLVMBuildSub(cg->b, cap[CP_TM], cg_i64(cg, 1), ""), ""),
                                      M, cg_smin(cg, M, cg_add(cg, i0, mcb)), "");
    Loop lk = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, nkb), "kblock");
    LLVMValueRef k0 = cg_mul(cg, lk.iv, cg_i64(cg, kcb)), kn = cg_smin(cg, cg_i64(cg, kcb), LLVMBuildSub(cg->b, cg_i64(cg, K), k0, ""));
    LLVMValueRef first = LLVMBuildZExt(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, lk.iv, cg_i64(cg, 0), ""), cg->i64, "");
    LLVMValueRef last = LLVMBuildZExt(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, lk.iv, cg_i64(cg, nkb - 1), ""), cg->i64, "");
    {   /* with the first block of K, each row's scale and then its elements, while the row is in L1 */
        LLVMBasicBlockRef later = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "later");
        LLVMBasicBlockRef firstb = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "firstblock");
        LLVMBasicBlockRef prepared = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "prepared");
        LLVMBuildCondBr(cg->b, LLVMBuildICmp(cg->b, LLVMIntEQ, lk.iv, cg_i64(cg, 0), ""), firstb, later);
        LLVMPositionBuilderAtEnd(cg->b, firstb);
        Loop lr = cg_loop_begin(cg, i0, i1, "qrow");
        LLVMValueRef rr = LLVMBuildSub(cg->b, lr.iv, i0, "");
        LLVMValueRef sab_r = LLVMBuildGEP2(cg->b, cg->f32, sab, &rr, 1, "");
        row_scales(cg, cap[CP_A], K, lr.iv, cg_add(cg, lr.iv, cg_i64(cg, 1)), sab_r, ir_qmm_static_scale(n));
        prepare_block(cg, c, cap[CP_A], K, lr.iv, cg_add(cg, lr.iv, cg_i64(cg, 1)), k0, kn,
                      cg_gep8(cg, buf, cg_mul(cg, rr, cg_i64(cg, c->rowb))), sab_r);
        cg_loop_end(cg, &lr);
        LLVMBuildBr(cg->b, prepared);
        LLVMPositionBuilderAtEnd(cg->b, later);
        prepare_block(cg, c, cap[CP_A], K, i0, i1, k0, kn, buf, sab);
        LLVMBuildBr(cg->b, prepared);
        LLVMPositionBuilderAtEnd(cg->b, prepared);
    }
    LLVMValueRef kq = LLVMBuildUDiv(cg->b, cg_add(cg, kn, cg_i64(cg, c->kg - 1)), cg_i64(cg, c->kg), "");
    LLVMValueRef boff = cg_mul(cg, LLVMBuildUDiv(cg->b, k0, cg_i64(cg, c->kg), ""), cg_i64(cg, c->kg * c->nr));

    Loop ln = cg_loop_begin(cg, nb0, nb1, "nblock");
    LLVMValueRef p0 = cg_mul(cg, ln.iv, ncp), p1 = cg_smin(cg, cg_i64(cg, np), cg_add(cg, p0, ncp));
    Loop li = cg_loop_begin(cg, i0, i1, "ir");
    LLVMValueRef mr = cg_smin(cg, cg_i64(cg, c->mr), LLVMBuildSub(cg->b, i1, li.iv, ""));
    LLVMValueRef rel = LLVMBuildSub(cg->b, li.iv, i0, "");
    LLVMValueRef arow = cg_gep8(cg, buf, cg_mul(cg, rel, cg_i64(cg, c->rowb)));
    LLVMValueRef sap = LLVMBuildGEP2(cg->b, cg->f32, sab, &rel, 1, "");
    Loop lj = cg_loop_begin(cg, p0, p1, "jr");
    LLVMValueRef col = cg_mul(cg, lj.iv, cg_i64(cg, c->nr));
    LLVMValueRef nrem = LLVMBuildSub(cg->b, cg_i64(cg, N), col, "");
    LLVMValueRef edge = LLVMBuildZExt(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, nrem, cg_i64(cg, c->nr), ""), cg->i64, "");
    LLVMValueRef cptr = cg_fptr(cg, out, cg_add(cg, cg_mul(cg, li.iv, cg_i64(cg, N)), col));
    LLVMValueRef fin = tl->epi ? fbuf : cptr, ldfin = cg_i64(cg, tl->epi ? c->nr : N);
    LLVMValueRef args[14] = {arow, cg_i64(cg, c->rowb), cg_gep8(cg, pk, cg_add(cg, cg_mul(cg, lj.iv, cg_i64(cg, panel)), boff)), kq,
                             cptr, cg_i64(cg, N),
                             cg_gep8(cg, comp0, cg_mul(cg, col, cg_i64(cg, 4))), cg_gep8(cg, scale0, cg_mul(cg, col, cg_i64(cg, 4))),
                             sap, nrem, first, last, fin, ldfin};
    /* the micro-kernel for (rows, edge) */
    LLVMValueRef key = cg_add(cg, cg_mul(cg, LLVMBuildSub(cg->b, mr, cg_i64(cg, 1), ""), cg_i64(cg, 2)), edge);
    LLVMBasicBlockRef bad = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "bad");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "next");
    LLVMValueRef sw = LLVMBuildSwitch(cg->b, key, bad, (unsigned)(2 * c->mr));
    for (int m = 1; m <= c->mr; m++)
        for (int e = 0; e < 2; e++) {
            if ((e && N % c->nr == 0) || (!e && N < c->nr))
                continue;
            LLVMBasicBlockRef cb = LLVMAppendBasicBlockInContext(cg->ctx, cg->fn, "ukr");
            LLVMAddCase(sw, cg_i64(cg, (m - 1) * 2 + e), cb);
            LLVMPositionBuilderAtEnd(cg->b, cb);
            LLVMValueRef u = ukr_function(cg, c, m, e);
            LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(u), u, args, 14, "");
            LLVMBuildBr(cg->b, next);
        }
    LLVMPositionBuilderAtEnd(cg->b, bad);
    LLVMBuildUnreachable(cg->b);
    LLVMPositionBuilderAtEnd(cg->b, next);
    if (tl->epi) { /* the micro-tile is final after the last block of K: the epilogue while it is in L1 */
        LLVMBasicBlockRef skip = cg_if_begin(cg, LLVMBuildICmp(cg->b, LLVMIntNE, last, cg_i64(cg, 0), ""), "epilogue");
        LLVMValueRef eargs[9] = {out, cap[CP_LEAVES], cg->syms, li.iv, cg_add(cg, li.iv, mr), col,
                                 cg_smin(cg, cg_i64(cg, N), cg_add(cg, col, cg_i64(cg, c->nr))), fbuf, cg_i64(cg, c->nr)};
        LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(tl->epi), tl->epi, eargs, 9, "");
        cg_if_end(cg, skip);
    }
    cg_loop_end(cg, &lj);
    cg_loop_end_step(cg, &li, cg_add(cg, li.iv, cg_i64(cg, c->mr)));
    cg_loop_end(cg, &ln);
    cg_loop_end(cg, &lk);
    cg_loop_end_step(cg, &lt, run_end);
}

int cg_qgemm_avx2(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef a, LLVMValueRef pk, const Fused *f,
                  LLVMValueRef *leafp)
{
    ACfg c = acfg(cg);
    if (!takes(cg, &c, n) || !cg->plan.packed || cg->plan.packed[n->id] < 0)
        return 1;
    int64_t K = dim_value(n->in[1]->shape[0]), N = dim_value(n->in[1]->shape[1]), np = pad(N, c.nr) / c.nr;
    LLVMValueRef dims[IR_MAX_RANK];
    cg_shape(cg, n->in[0], dims);
    LLVMValueRef M = cg_numel(cg, n->in[0]->rank - 1, dims), one = cg_i64(cg, 1);
    LLVMValueRef mr = cg_i64(cg, c.mr);
    LLVMValueRef tm = cg_smax(cg, cg_ceil_div(cg, M, cg_i64(cg, mc_rows(&c))), one);
    /* an m-block per thread (where M has the micro-tiles for it) when the weights fit in L2 beside the
     * prepared rows or N <= 4 M, else the threads split N (qgemm.c's rule and measurements) */
    int fits = pad(K, KGRAIN) * np * c.nr + c.qbuf <= cg_target(cg).l2;
    LLVMValueRef msplit = fits ? LLVMConstInt(cg->i1, 1, 0) : LLVMBuildICmp(cg->b, LLVMIntSLE, cg_i64(cg, N), cg_mul(cg, M, cg_i64(cg, 4)), "");
    tm = LLVMBuildSelect(cg->b, msplit, cg_smax(cg, tm, cg_smin(cg, cg_pool_threads(cg), cg_ceil_div(cg, M, mr))), tm, "");
    LLVMValueRef mcb = cg_smax(cg, cg_mul(cg, cg_ceil_div(cg, cg_ceil_div(cg, M, tm), mr), mr), mr);
    /* or m-blocks rounded down, the last one taking the rest, when that one fits in the prepared rows
     * and the longest block is shorter (197 rows on two threads: 96 + 101, not 102 + 95) */
    LLVMValueRef down = cg_smax(cg, cg_mul(cg, LLVMBuildSDiv(cg->b, cg_ceil_div(cg, M, tm), mr, ""), mr), mr);
    LLVMValueRef dlast = LLVMBuildSub(cg->b, M, cg_mul(cg, LLVMBuildSub(cg->b, tm, one, ""), down), "");
    LLVMValueRef use_down = LLVMBuildAnd(
        cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, cg_smax(cg, down, dlast), mcb, ""),
        LLVMBuildICmp(cg->b, LLVMIntSLE, dlast, cg_i64(cg, mc_rows(&c)), ""), "");
    use_down = LLVMBuildAnd(cg->b, use_down, LLVMBuildICmp(cg->b, LLVMIntSGT, dlast, cg_i64(cg, 0), ""), "");
    mcb = LLVMBuildSelect(cg->b, use_down, down, mcb, "");
    tm = LLVMBuildSelect(cg->b, use_down, tm, cg_smax(cg, cg_ceil_div(cg, M, mcb), one), "");
    /* n-blocks: a block of K of them in half of L2, at most ncp panels, and enough tiles for the
     * threads when there are few m-blocks (in equal shares) */
    int64_t l2p = cg_target(cg).l2 / 2 / (k_block(&c, K) * c.nr);
    int64_t ncp_max = l2p < 1 ? 1 : l2p > c.ncp ? c.ncp : l2p;
    LLVMValueRef nthr = cg_pool_threads(cg);
    LLVMValueRef want = cg_smax(cg, cg_ceil_div(cg, cg_i64(cg, np), cg_i64(cg, ncp_max)), cg_ceil_div(cg, nthr, tm));
    want = LLVMBuildSelect(cg->b, LLVMBuildICmp(cg->b, LLVMIntSLT, tm, nthr, ""), cg_mul(cg, cg_ceil_div(cg, want, nthr), nthr), want, "");
    LLVMValueRef ncp = cg_smax(cg, cg_ceil_div(cg, cg_i64(cg, np), want), one);
    LLVMValueRef tn = cg_ceil_div(cg, cg_i64(cg, np), ncp);
    LLVMValueRef leaves = f ? cg_fused_leaves(cg, f, leafp) : LLVMConstNull(cg->ptr);
    LLVMValueRef cap[CP_COUNT] = {out, a, pk, leaves, M, mcb, tm, tn, ncp};
    Tiles tl = {&c, n, f ? cg_fused_epilogue(cg, f, 1) : NULL};
    char name[64];
    snprintf(name, sizeof name, "node%d_qgemm_avx2_tiles", f ? f->root->id : n->id);
    CgPar p = {.split = CG_RANGES, .n = cg_mul(cg, tm, tn), .work = cg_mul(cg, M, cg_i64(cg, K * N)), .min_work = SERIAL_WORK,
               .name = name, .vw = VW};
    cg_parallel(cg, &p, CP_COUNT, cap, tiles_body, &tl);
    return 0;
}
