/* qgemm.c: the int8 x int8 -> int32 GEMM of a dynamic (W8A8) qmatmul with AVX-512 VNNI (vpdpbusd).
 *
 * vpdpbusd multiplies unsigned bytes by signed bytes, four at a time, and adds the four products to
 * each i32 lane. The activations are signed (qa in -127..127), so each row is stored as u = qa + 128
 * and the product corrected once per column: sum_k u[k] w[k, n] - 128 * sum_k w[k, n] =
 * sum_k qa[k] w[k, n], exactly (every intermediate fits in i32 for K < 2^16). The result is then the
 * interpreter's integer, rescaled the same way, ((float)acc * sa) * s[n]: the same bits.
 *
 * The weights are packed at compile time (cg_qgemm_pack, into the weights blob through Plan.packed):
 *   panels of 16 columns; within a panel, for each group of 4 rows of K, 16 x 4 bytes (column c's
 *   four bytes w[4g .. 4g+3, c] together, what one lane of vpdpbusd reads); K and N padded with zeros
 *   to multiples of 4 and 16;
 *   then 128 * colsum(w) as Np i32, then the scales as Np f32 (zeros past N).
 * The kernel takes the rows of a four at a time (MR): each row quantized into a u8 buffer on the
 * stack, then for each panel four accumulators share each 64-byte load of the weights; the last
 * panel's store is masked. Rows are split over the runtime's threads.
 *
 * Without VNNI (or with non-constant weights or scales) cg_qgemm declines and quant.c's portable
 * kernel runs instead.
 */
#include "codegen/codegen.h"

#include <string.h>

enum { NR = 16, MR = 4 };

static int64_t pad(int64_t x, int64_t m)
{
    return (x + m - 1) / m * m;
}

static int takes(const Cg *cg, const Node *n)
{
    if (n->op != OP_QMATMUL || !n->at.dynamic || n->nin != 3)
        return 0;
    const Node *w = n->in[1], *s = n->in[2];
    if ((w->op != OP_CONST && w->op != OP_WEIGHT) || !w->at.data || w->dtype != DT_I8)
        return 0;
    if ((s->op != OP_CONST && s->op != OP_WEIGHT) || !s->at.data)
        return 0;
    if (dim_value(w->shape[0]) < 1 || dim_value(w->shape[0]) >= (1 << 16) || dim_value(w->shape[1]) < 1)
        return 0;
    return cg_target(cg).vnni;
}

int64_t cg_qgemm_packed_bytes(Cg *cg, const Node *n)
{
    if (!takes(cg, n))
        return 0;
    int64_t K = dim_value(n->in[1]->shape[0]), N = dim_value(n->in[1]->shape[1]), Kp = pad(K, 4), Np = pad(N, NR);
    return Kp * Np + 8 * Np;
}

void cg_qgemm_pack(Cg *cg, const Node *n, void *dst)
{
    (void)cg;
    const Node *w = n->in[1], *s = n->in[2];
    int64_t K = dim_value(w->shape[0]), N = dim_value(w->shape[1]), Kp = pad(K, 4), Np = pad(N, NR);
    const int8_t *wd = w->at.data;
    int8_t *p = dst;
    memset(dst, 0, (size_t)(Kp * Np + 8 * Np));
    for (int64_t j = 0; j < N; j++) {
        int64_t panel = j / NR, c = j % NR, sum = 0;
        for (int64_t k = 0; k < K; k++) {
            p[panel * Kp * NR + (k / 4) * NR * 4 + c * 4 + k % 4] = wd[k * N + j];
            sum += wd[k * N + j];
        }
        int32_t comp = (int32_t)(128 * sum);
        float sc = (float)dtype_load(s->dtype, s->at.data, (size_t)j);
        memcpy(p + Kp * Np + 4 * j, &comp, 4);
        memcpy(p + Kp * Np + 4 * Np + 4 * j, &sc, 4);
    }
}

/* ---------------------------------------------------------------- the kernel */

static LLVMValueRef vdp(Cg *cg, LLVMValueRef acc, LLVMValueRef a, LLVMValueRef b)
{
    const char *name = "llvm.x86.avx512.vpdpbusd.512";
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    KILN_ASSERT(id);
    LLVMValueRef f = LLVMGetIntrinsicDeclaration(cg->mod, id, NULL, 0);
    LLVMTypeRef fty = LLVMIntrinsicGetType(cg->ctx, id, NULL, 0);
    return LLVMBuildCall2(cg->b, fty, f, (LLVMValueRef[]){acc, a, b}, 3, "");
}

static LLVMValueRef gep8(Cg *cg, LLVMValueRef p, LLVMValueRef off)
{
    return LLVMBuildGEP2(cg->b, cg->i8, p, &off, 1, "");
}

static LLVMValueRef splat(Cg *cg, LLVMValueRef x, LLVMTypeRef vt)
{
    LLVMValueRef v = LLVMBuildInsertElement(cg->b, LLVMGetUndef(vt), x, LLVMConstInt(cg->i32, 0, 0), "");
    return LLVMBuildShuffleVector(cg->b, v, LLVMGetUndef(vt), LLVMConstNull(LLVMVectorType(cg->i32, NR)), "");
}

/* Rows [m0, m0 + mr) of the product: quantize, then every panel. cap: out, a, packed. */
static void rows_block(Cg *cg, const Node *n, LLVMValueRef *cap, LLVMValueRef m0, int mr, LLVMValueRef qa,
                       LLVMValueRef sas)
{
    int64_t K = dim_value(n->in[1]->shape[0]), N = dim_value(n->in[1]->shape[1]), Kp = pad(K, 4), Np = pad(N, NR);
    LLVMValueRef out = cap[0], a = cap[1], pk = cap[2];
    LLVMTypeRef vi = LLVMVectorType(cg->i32, NR), vf = LLVMVectorType(cg->f32, NR);
    LLVMValueRef amax = cg_alloca(cg, cg->f32, "amax");
    for (int r = 0; r < mr; r++) {
        LLVMValueRef row = LLVMBuildAdd(cg->b, m0, cg_i64(cg, r), "");
        LLVMValueRef arow = LLVMBuildMul(cg->b, row, cg_i64(cg, K), "");
        LLVMBuildStore(cg->b, LLVMConstNull(cg->f32), amax);
        Loop la = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, K), "k");
        LLVMValueRef av = cg_load(cg, a, DT_F32, LLVMBuildAdd(cg->b, arow, la.iv, ""));
        LLVMValueRef mx = cg_intrinsic(cg, "llvm.maxnum", (LLVMValueRef[]){LLVMBuildLoad2(cg->b, cg->f32, amax, ""),
                                                                         cg_intrinsic(cg, "llvm.fabs", &av, 1)}, 2);
        LLVMBuildStore(cg->b, mx, amax);
        cg_loop_end(cg, &la);
        LLVMValueRef sa = LLVMBuildFDiv(cg->b, LLVMBuildLoad2(cg->b, cg->f32, amax, ""), LLVMConstReal(cg->f32, 127), "");
        LLVMBuildStore(cg->b, sa, LLVMBuildGEP2(cg->b, cg->f32, sas, (LLVMValueRef[]){cg_i64(cg, r)}, 1, ""));
        LLVMValueRef qrow = gep8(cg, qa, cg_i64(cg, r * Kp));
        Loop lq = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, K), "k");
        av = cg_load(cg, a, DT_F32, LLVMBuildAdd(cg->b, arow, lq.iv, ""));
        LLVMValueRef q = cg_quantize_f32(cg, av, sa, LLVMConstNull(cg->f32), -127, 127);
        LLVMValueRef u = LLVMBuildAdd(cg->b, LLVMBuildFPToSI(cg->b, q, cg->i32, ""), LLVMConstInt(cg->i32, 128, 0), "");
        LLVMBuildStore(cg->b, LLVMBuildTrunc(cg->b, u, cg->i8, ""), gep8(cg, qrow, lq.iv));
        cg_loop_end(cg, &lq);
        for (int64_t k = K; k < Kp; k++) /* padding: weights there are 0 */
            LLVMBuildStore(cg->b, LLVMConstInt(cg->i8, 128, 0), gep8(cg, qrow, cg_i64(cg, k)));
    }
    /* every panel: MR accumulators share each load of the weights */
    LLVMValueRef acc[MR], sav[MR];
    for (int r = 0; r < mr; r++)
        sav[r] = splat(cg, LLVMBuildLoad2(cg->b, cg->f32, LLVMBuildGEP2(cg->b, cg->f32, sas, (LLVMValueRef[]){cg_i64(cg, r)}, 1, ""), ""), vf);
    LLVMValueRef accs = cg_alloca(cg, LLVMArrayType2(vi, MR), "acc");
    Loop lp = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, Np / NR), "panel");
    for (int r = 0; r < mr; r++)
        LLVMBuildStore(cg->b, LLVMConstNull(vi), LLVMBuildGEP2(cg->b, vi, accs, (LLVMValueRef[]){cg_i64(cg, r)}, 1, ""));
    LLVMValueRef pbase = gep8(cg, pk, LLVMBuildMul(cg->b, lp.iv, cg_i64(cg, Kp * NR), ""));
    Loop lk = cg_loop_begin(cg, cg_i64(cg, 0), cg_i64(cg, Kp / 4), "k4");
    LLVMValueRef wl = LLVMBuildLoad2(cg->b, vi, gep8(cg, pbase, LLVMBuildMul(cg->b, lk.iv, cg_i64(cg, 4 * NR), "")), "");
    LLVMSetAlignment(wl, 4); /* 64 in the blob; the blob's own base is only known to be 4-aligned */
    for (int r = 0; r < mr; r++) {
        LLVMValueRef ap = gep8(cg, qa, LLVMBuildAdd(cg->b, cg_i64(cg, r * Kp), LLVMBuildMul(cg->b, lk.iv, cg_i64(cg, 4), ""), ""));
        LLVMValueRef a4 = LLVMBuildLoad2(cg->b, cg->i32, ap, "");
        LLVMSetAlignment(a4, 4);
        LLVMValueRef slot = LLVMBuildGEP2(cg->b, vi, accs, (LLVMValueRef[]){cg_i64(cg, r)}, 1, "");
        LLVMBuildStore(cg->b, vdp(cg, LLVMBuildLoad2(cg->b, vi, slot, ""), splat(cg, a4, vi), wl), slot);
    }
    cg_loop_end(cg, &lk);
    /* epilogue: the correction, the rescale, the store (masked in the last panel) */
    LLVMValueRef col = LLVMBuildMul(cg->b, lp.iv, cg_i64(cg, NR), "");
    LLVMValueRef comp = LLVMBuildLoad2(cg->b, vi, gep8(cg, pk, LLVMBuildAdd(cg->b, cg_i64(cg, Kp * Np), LLVMBuildMul(cg->b, col, cg_i64(cg, 4), ""), "")), "");
    LLVMSetAlignment(comp, 4);
    LLVMValueRef sc = LLVMBuildLoad2(cg->b, vf, gep8(cg, pk, LLVMBuildAdd(cg->b, cg_i64(cg, Kp * Np + 4 * Np), LLVMBuildMul(cg->b, col, cg_i64(cg, 4), ""), "")), "");
    LLVMSetAlignment(sc, 4);
    int tail = (int)(N % NR);
    LLVMValueRef mask = NULL;
    if (tail) {
        LLVMValueRef bits[NR];
        for (int c = 0; c < NR; c++)
            bits[c] = LLVMConstInt(cg->i1, 1, 0);
        LLVMValueRef last = LLVMBuildICmp(cg->b, LLVMIntEQ, lp.iv, cg_i64(cg, Np / NR - 1), "");
        LLVMValueRef full = LLVMConstVector(bits, NR);
        for (int c = tail; c < NR; c++)
            bits[c] = LLVMConstInt(cg->i1, 0, 0);
        mask = LLVMBuildSelect(cg->b, last, LLVMConstVector(bits, NR), full, "");
    }
    for (int r = 0; r < mr; r++) {
        acc[r] = LLVMBuildLoad2(cg->b, vi, LLVMBuildGEP2(cg->b, vi, accs, (LLVMValueRef[]){cg_i64(cg, r)}, 1, ""), "");
        LLVMValueRef f = LLVMBuildSIToFP(cg->b, LLVMBuildSub(cg->b, acc[r], comp, ""), vf, "");
        LLVMValueRef y = LLVMBuildFMul(cg->b, LLVMBuildFMul(cg->b, f, sav[r], ""), sc, "");
        LLVMValueRef row = LLVMBuildAdd(cg->b, m0, cg_i64(cg, r), "");
        LLVMValueRef op = LLVMBuildGEP2(cg->b, cg->f32, out, (LLVMValueRef[]){LLVMBuildAdd(cg->b, LLVMBuildMul(cg->b, row, cg_i64(cg, N), ""), col, "")}, 1, "");
        if (mask) {
            LLVMTypeRef tys[2] = {vf, cg->ptr};
            const char *name = "llvm.masked.store";
            unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
            LLVMValueRef fn = LLVMGetIntrinsicDeclaration(cg->mod, id, tys, 2);
            LLVMBuildCall2(cg->b, LLVMIntrinsicGetType(cg->ctx, id, tys, 2), fn,
                           (LLVMValueRef[]){y, op, LLVMConstInt(cg->i32, 4, 0), mask}, 4, "");
        } else {
            LLVMSetAlignment(LLVMBuildStore(cg->b, y, op), 4);
        }
    }
    cg_loop_end(cg, &lp);
}

static void qgemm_rows(Cg *cg, void *ctx, LLVMValueRef *cap, LLVMValueRef begin, LLVMValueRef end)
{
    const Node *n = ctx;
    int64_t Kp = pad(dim_value(n->in[1]->shape[0]), 4);
    LLVMValueRef qa = cg_alloca(cg, LLVMArrayType2(cg->i8, (uint64_t)(MR * Kp)), "qa");
    LLVMSetAlignment(qa, 64);
    LLVMValueRef sas = cg_alloca(cg, LLVMArrayType2(cg->f32, MR), "sa");
    /* blocks of MR rows, then the rest one at a time */
    LLVMValueRef nblk = LLVMBuildUDiv(cg->b, LLVMBuildSub(cg->b, end, begin, ""), cg_i64(cg, MR), "");
    Loop lb = cg_loop_begin(cg, cg_i64(cg, 0), nblk, "blk");
    rows_block(cg, n, cap, LLVMBuildAdd(cg->b, begin, LLVMBuildMul(cg->b, lb.iv, cg_i64(cg, MR), ""), ""), MR, qa, sas);
    cg_loop_end(cg, &lb);
    Loop lr = cg_loop_begin(cg, LLVMBuildAdd(cg->b, begin, LLVMBuildMul(cg->b, nblk, cg_i64(cg, MR), ""), ""), end, "row");
    rows_block(cg, n, cap, lr.iv, 1, qa, sas);
    cg_loop_end(cg, &lr);
}

int cg_qgemm(Cg *cg, const Node *n, LLVMValueRef out, LLVMValueRef *in)
{
    if (cg->plan.packed[n->id] < 0 || !takes(cg, n))
        return 1;
    const Node *a = n->in[0];
    LLVMValueRef dims[IR_MAX_RANK];
    cg_shape(cg, a, dims);
    LLVMValueRef rows = cg_numel(cg, a->rank - 1, dims);
    LLVMValueRef cap[3] = {out, in[0], in[1]}; /* in[1]: the packed copy */
    LLVMValueRef work = LLVMBuildMul(cg->b, rows, cg_i64(cg, dim_value(n->in[1]->shape[0]) * dim_value(n->in[1]->shape[1])), "");
    char name[64];
    snprintf(name, sizeof name, "node%d_qgemm_rows", n->id);
    cg_parallel_work(cg, rows, work, 3, cap, qgemm_rows, (void *)n, name);
    return 0;
}
