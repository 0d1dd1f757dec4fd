/* kiln_dtype.h: the element types of kiln's tensors, declared once for the compiler and the runtime.
 *
 * KILN_DTYPES is an X-macro: each row is one dtype, and every table of dtypes (the compiler's DType
 * enum and dtype_traits in ir/ir.h and ir/graph.c, the runtime's RtDType codes and rt_dtypes in
 * runtime/dtype.c) is generated from it, so the codes a compiled model's descriptor carries and the
 * ones the runtime reads cannot drift apart. The packed 4-bit types hold two values per byte,
 * element 2i in the low nibble of byte i and 2i+1 in the high one; only quantize, dequantize, qmatmul,
 * reshape, const and weight nodes have them (ir_infer), never a model's inputs or outputs. A new dtype is one new row at the end (the codes are
 * part of the ABI: never reorder). The compiled code holds every integer in an i64 register (sign- or
 * zero-extended on load, wrapped on store); u64 is the one dtype whose values do not all fit an
 * int64_t: its register holds the same 64 bits, and the code generator reads them as unsigned
 * (unsigned compares, udiv, uitofp; codegen/loops.c and elementwise.c). The interpreter's element
 * type is double, exact for integers up to 2^53 (i64 and u64 values beyond round to the nearest
 * double: ir/interp.c).
 *
 * Columns:
 *   E            the enum's suffix: DT_E in the compiler, RT_E in the runtime
 *   name         as written in model files, the IR text and the generated header: "f32"
 *   size         bytes per element; for a packed type 1, an upper bound (n * size over-allocates, never
 *                under-allocates; kiln_dtype_bytes gives the exact count)
 *   block        elements per block of a packed type (several values share bytes), 1 otherwise
 *   block_bytes  bytes per block (= size for unpacked types)
 *   is_float, is_int, is_signed
 *                float types; integer types (bool is neither); signedness
 *   npy          NumPy's type descr ("<f4"), NULL when a .npy file cannot hold it
 *   numpy        NumPy's name for it ("float32"), for hints in error messages, or NULL
 */
#ifndef KILN_DTYPE_H
#define KILN_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#define KILN_DTYPES(X)                                                               \
    /* E     name    size block bytes float int signed npy     numpy     */          \
    X(F32,  "f32",  4,   1,    4,    1,    0,  1,     "<f4",  "float32")           \
    X(F16,  "f16",  2,   1,    2,    1,    0,  1,     "<f2",  "float16")           \
    X(BF16, "bf16", 2,   1,    2,    1,    0,  1,     NULL,   NULL)                \
    X(F64,  "f64",  8,   1,    8,    1,    0,  1,     "<f8",  "float64")           \
    X(I64,  "i64",  8,   1,    8,    0,    1,  1,     "<i8",  "int64")             \
    X(I32,  "i32",  4,   1,    4,    0,    1,  1,     "<i4",  "int32")             \
    X(I8,   "i8",   1,   1,    1,    0,    1,  1,     "|i1",  "int8")              \
    X(U8,   "u8",   1,   1,    1,    0,    1,  0,     "|u1",  "uint8")             \
    X(BOOL, "bool", 1,   1,    1,    0,    0,  0,     "|b1",  "bool_")             \
    X(I4,   "i4",   1,   2,    1,    0,    1,  1,     NULL,   NULL) /* -8..7 */    \
    X(U4,   "u4",   1,   2,    1,    0,    1,  0,     NULL,   NULL) /* 0..15 */    \
    X(I16,  "i16",  2,   1,    2,    0,    1,  1,     "<i2",  "int16")             \
    X(U16,  "u16",  2,   1,    2,    0,    1,  0,     "<u2",  "uint16")            \
    X(U32,  "u32",  4,   1,    4,    0,    1,  0,     "<u4",  "uint32")           \
    X(U64,  "u64",  8,   1,    8,    0,    1,  0,     "<u8",  "uint64")

/* One dtype's traits, a row of KILN_DTYPES. */
typedef struct KilnDTypeInfo {
    const char *name;
    int size;
    int block;
    int block_bytes;
    int is_float;
    int is_int;
    int is_signed;
    const char *npy;
    const char *numpy;
} KilnDTypeInfo;

#define KILN_DTYPE_INFO(e, name, size, block, bytes, fl, in, sg, npy, numpy) \
    {name, size, block, bytes, fl, in, sg, npy, numpy},

/* Bytes of n elements of a type with these traits (whole blocks for a packed type). */
static inline int64_t kiln_dtype_bytes(const KilnDTypeInfo *t, int64_t n)
{
    return (n + t->block - 1) / t->block * t->block_bytes;
}

#endif
