#!/usr/bin/python3
"""make_refs.py: PyTorch reference cases for every op of ir/ops.def, read by tests/unit/test_interp.c.

Run from anywhere with Debian's PyTorch:   /usr/bin/python3 tests/ops/make_refs.py
It rewrites tests/ops/ref/ (deterministic: fixed seeds, no timing), about 200 KB.

For each case it writes
    ref/<case>.in0.npy, ref/<case>.in1.npy, ...   the inputs (float32, float16, int32, int64 or bool)
    ref/<case>.out.npy                            PyTorch's output, in the dtype the op node must have
and one line of ref/cases.txt:
    <case> <op text name> [key=value ...] <rtol>
with the keys axis, keepdims, eps, approx, stride=h,w, pad=h,w, perm=..., start, end, and shape=...
(the output shape of the ops whose shape is not implied by their inputs: reshape, expand, arange,
causal_mask). The C test builds a one-op graph from each line and compares within
|actual - expected| <= atol + rtol * |expected| (atol = 1e-6 there), NaN matching NaN.

How the references are computed: float inputs are drawn in float32 (so the .npy holds exactly what
the interpreter reads), converted to float64, the op is run by PyTorch in float64, and the result is
rounded once to the output dtype (float32 or float16). That is exactly the interpreter's contract
(accumulate in double, round each node to its dtype), so the only differences left are the last bits
of two float64 libms (glibc's and PyTorch's), which matter only when they push a value across a
rounding boundary of the output dtype. Hence the tolerances:
    RTOL_F32 = 1e-6  float32 outputs: one float32 ulp is at most 1.2e-7 relative; 1e-6 allows ~8 ulps
                     and still catches a wrong formula or constant (gelu with 0.0447 for 0.044715 fails).
    RTOL_F16 = 2e-3  float16 outputs: one ulp is at most 9.8e-4 relative; allow two.
    RTOL_EXACT = 0   integer and bool outputs, and the ops that only copy, select, convert or flip a
                     sign (EXACT_OPS: movement, cast, where, maximum, neg, relu...): one correctly
                     rounded result exists, so they must be bit-exact (the test's atol of 1e-6 is then
                     irrelevant because the values are integers or copies).
In practice every case currently matches bit for bit; the float tolerances are margins for other libms.
Integer division is compared against rounding_mode='trunc' (C semantics, the interpreter's choice).
"""
import os
import shutil

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "ref")
RTOL_F32 = 1e-6
RTOL_F16 = 2e-3
RTOL_EXACT = 0.0
# ops that copy or convert without arithmetic, whatever their dtype: bit-exact
EXACT_OPS = {"cast", "reshape", "transpose", "expand", "slice", "concat", "gather", "scatter", "arange", "causal_mask",
             "neg", "abs", "relu", "where", "maximum", "minimum"}

# This is a script: it writes as it goes.
shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(OUT)
rng = np.random.default_rng(20240611)
torch.manual_seed(0)
lines = []
names = set()


def randn(*shape, scale=1.0, dtype=np.float32):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def uniform(lo, hi, *shape):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def ints(lo, hi, *shape, dtype=np.int32):
    return rng.integers(lo, hi, shape).astype(dtype)


def with_specials(x, specials):
    """x (1-D or any shape) with its first len(specials) elements replaced."""
    x = x.copy().reshape(-1)
    x[: len(specials)] = np.array(specials, dtype=x.dtype)
    return x


def t64(a):
    """numpy -> torch, floats widened to float64 (the reference precision), ints and bools as is."""
    t = torch.from_numpy(np.array(a, order="C"))  # not ascontiguousarray: it makes rank 0 rank 1
    return t.double() if t.is_floating_point() else t


def fmt(v):
    if isinstance(v, (list, tuple)):
        return ",".join(str(int(x)) for x in v)
    if isinstance(v, bool):
        return str(int(v))
    return repr(v) if isinstance(v, float) else str(v)


def case(name, op, inputs, fn, rtol=None, out_dtype=None, **attrs):
    """Runs fn on the float64 versions of inputs and writes the case.
    out_dtype: numpy dtype of the output; default: float32 for float results, else the result's own."""
    assert name not in names, name
    names.add(name)
    res = fn(*[t64(a) for a in inputs])
    if out_dtype is None:
        out_dtype = np.float32 if res.is_floating_point() else res.numpy().dtype
    with np.errstate(over="ignore"):  # exp(100) is inf in float32 on purpose
        out = res.numpy().astype(out_dtype)  # floats: one rounding, from float64
    if rtol is None and op in EXACT_OPS:
        rtol = RTOL_EXACT
    if rtol is None:
        rtol = {np.dtype(np.float32): RTOL_F32, np.dtype(np.float16): RTOL_F16}.get(np.dtype(out_dtype), RTOL_EXACT)
    for i, a in enumerate(inputs):
        np.save(os.path.join(OUT, f"{name}.in{i}.npy"), np.array(a, order="C"))
    np.save(os.path.join(OUT, f"{name}.out.npy"), np.array(out, order="C"))
    kv = " ".join(f"{k}={fmt(v)}" for k, v in attrs.items())
    lines.append(f"{name} {op}{' ' + kv if kv else ''} {rtol:g}")


# ------------------------------------------------------------------ elementwise, one input

def unary_cases(op, fn, gen, specials=(), **attrs):
    """Three shapes (odd sizes, a size-1 dim, rank 3) and a case with special values."""
    for i, shape in enumerate([(7,), (3, 5), (2, 1, 4)]):
        case(f"{op}{'_a' + str(attrs['approx']) if 'approx' in attrs else ''}_{i}", op, [gen(*shape)], fn, **attrs)
    if specials:
        x = with_specials(gen(len(specials) + 3), specials)
        case(f"{op}{'_a' + str(attrs['approx']) if 'approx' in attrs else ''}_special", op, [x], fn, **attrs)


inf, nan = float("inf"), float("nan")
unary_cases("neg", torch.neg, lambda *s: randn(*s, scale=3), [0.0, -0.0, inf, -inf, 1e30])
unary_cases("abs", torch.abs, lambda *s: randn(*s, scale=3), [-0.0, -inf, -1e30])
unary_cases("exp", torch.exp, lambda *s: randn(*s, scale=3),
            [-100.0, -20.0, 0.0, 20.0, 88.0, 89.0, 100.0, -inf, inf, -104.0])
unary_cases("log", torch.log, lambda *s: uniform(0.01, 10, *s), [0.0, -1.0, 1e-30, 1e30, inf, 1.0])
unary_cases("sqrt", torch.sqrt, lambda *s: uniform(0.0, 10, *s), [0.0, 1e-20, 1e20, -1.0, inf])
unary_cases("rsqrt", torch.rsqrt, lambda *s: uniform(0.01, 10, *s), [0.0, 1e-20, 1e20, -1.0, inf])
unary_cases("tanh", torch.tanh, lambda *s: randn(*s, scale=3), [-50.0, -10.0, 10.0, 50.0, inf, -inf, 1e-8])
unary_cases("erf", torch.erf, lambda *s: randn(*s, scale=2), [-10.0, -5.0, 5.0, 10.0, inf, -inf, 1e-8])
unary_cases("sigmoid", torch.sigmoid, lambda *s: randn(*s, scale=5), [-800.0, -100.0, -30.0, 30.0, 100.0, 0.0])
unary_cases("relu", torch.relu, lambda *s: randn(*s), [0.0, -0.0, -inf, inf, nan])  # NaN stays NaN
for approx in (0, 1):
    unary_cases("gelu", lambda x, a=approx: torch.nn.functional.gelu(x, approximate="tanh" if a else "none"),
                lambda *s: randn(*s, scale=3), [-40.0, -10.0, -5.0, 10.0, 40.0, 0.0], approx=approx)
unary_cases("silu", torch.nn.functional.silu, lambda *s: randn(*s, scale=5), [-800.0, -50.0, 50.0, 0.0])
unary_cases("sin", torch.sin, lambda *s: randn(*s, scale=4), [100.0, 1000.0, -3.0e4, 0.0])
unary_cases("cos", torch.cos, lambda *s: randn(*s, scale=4), [100.0, 1000.0, -3.0e4, 0.0])

# float16 in and out: the node rounds to f16
case("exp_f16", "exp", [randn(9, scale=2, dtype=np.float16)], torch.exp, out_dtype=np.float16)

# cast: the output dtype is the .out.npy's
fx = with_specials(randn(12, scale=4), [2.7, -2.7, 0.5, -0.5, -0.0, 1e9, -1e9, 3.0])
case("cast_f32_i32", "cast", [fx], lambda x: x.to(torch.int32))  # truncation toward zero
case("cast_f32_i64", "cast", [fx.reshape(3, 4)], lambda x: x.to(torch.int64))
case("cast_f32_bool", "cast", [with_specials(randn(8), [0.0, -0.0, nan, 1e-30, -inf])], lambda x: x.to(torch.bool))
case("cast_i32_f32", "cast", [with_specials(ints(-1000, 1000, 9), [16777217, -16777219, 2**31 - 1])],
     lambda x: x.to(torch.float32))
case("cast_i64_i32", "cast", [np.array([0, 5, -7, 2**31 + 5, -(2**31) - 7, 2**40 + 3], dtype=np.int64)],
     lambda x: x.to(torch.int32))  # wraps modulo 2^32
case("cast_f32_f16", "cast",
     [with_specials(randn(14), [65504.0, 65520.0, 70000.0, 1e-8, 3e-8, 6e-5, 1.00048828125, 1.00146484375, -inf, nan])],
     lambda x: x.float().half(), out_dtype=np.float16)
case("cast_f16_f32", "cast", [randn(2, 3, dtype=np.float16)], lambda x: x.float())
case("cast_bool_f32", "cast", [np.array([True, False, True])], lambda x: x.to(torch.float32))

# ------------------------------------------------------------------ elementwise, two inputs

SHAPE_PAIRS = [((3, 4), (3, 4)),        # same shape
               ((2, 3, 4), (4,)),       # different ranks
               ((2, 1, 4), (3, 1)),     # both broadcast
               ((1, 5), (4, 1)),        # size-1 dims on both sides
               ((5,), (2, 3, 1))]       # lower rank first
BINARY = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div, "pow": torch.pow,
    "maximum": torch.maximum, "minimum": torch.minimum,
    "lt": torch.lt, "le": torch.le, "gt": torch.gt, "ge": torch.ge, "eq": torch.eq, "ne": torch.ne,
}
CMP = ("lt", "le", "gt", "ge", "eq", "ne")
for op, fn in BINARY.items():
    for i, (sa, sb) in enumerate(SHAPE_PAIRS):
        if op == "pow":
            a, b = uniform(0.1, 3, *sa), randn(*sb, scale=2)
        elif op == "div":
            a, b = randn(*sa, scale=3), with_specials(uniform(0.2, 3, *sb), [-0.5]).reshape(sb)
        elif op in CMP:  # small integers so that ties (eq, le, ge) occur
            a, b = ints(-2, 3, *sa).astype(np.float32), ints(-2, 3, *sb).astype(np.float32)
        else:
            a, b = randn(*sa, scale=3), randn(*sb, scale=3)
        case(f"{op}_{i}", op, [a, b], fn)

# rank 0 with rank 1
case("add_scalar", "add", [np.array(2.5, dtype=np.float32), randn(4)], torch.add)
case("mul_scalar", "mul", [randn(2, 3), np.array(-1.5, dtype=np.float32)], torch.mul)
# special values
sa = np.array([1.0, -1.0, inf, -inf, nan, 0.0, 0.0, 1e30], dtype=np.float32)
sb = np.array([0.0, 0.0, inf, inf, 1.0, 0.0, -0.0, 1e30], dtype=np.float32)
case("div_special", "div", [sa, sb], torch.div)
case("add_special", "add", [sa, -sb], torch.add)
case("mul_special", "mul", [sa, sb], torch.mul)
case("maximum_nan", "maximum", [sa, sb], torch.maximum)  # NaN propagates
case("minimum_nan", "minimum", [sa, sb], torch.minimum)
case("eq_special", "eq", [sa, sb], torch.eq)
case("ne_special", "ne", [sa, sb], torch.ne)
case("lt_special", "lt", [sa, sb], torch.lt)
case("pow_special", "pow",
     [np.array([-2.0, -2.0, -8.0, 0.0, 0.0, 2.0, 1.0, nan, -0.5], dtype=np.float32),
      np.array([3.0, 2.0, 1 / 3, -1.0, 0.0, 0.5, nan, 0.0, 2.5], dtype=np.float32)], torch.pow)
# integers: the node's dtype is i32, results wrap, division truncates toward zero
ia = with_specials(ints(-50, 50, 3, 4), [7, -7, 7, -7, 2**31 - 1]).reshape(3, 4)
ib = with_specials(ints(1, 9, 4), [2, 2, -2, -2])
case("add_i32", "add", [ia, ib], torch.add)  # 2^31-1 + 2 wraps
case("sub_i32", "sub", [ia, ib], torch.sub)
case("mul_i32", "mul", [ia, ib], torch.mul)
case("div_i32", "div", [ia, ib], lambda a, b: torch.div(a, b, rounding_mode="trunc"))
case("maximum_i32", "maximum", [ia, ib], torch.maximum)
case("minimum_i64", "minimum", [ia.astype(np.int64), ib.astype(np.int64)], torch.minimum)
case("lt_i32", "lt", [ia, ib], torch.lt)
case("eq_i64", "eq", [ia.astype(np.int64), ib.astype(np.int64)], torch.eq)
case("add_f16", "add", [randn(3, 4, dtype=np.float16) * 100, randn(4, dtype=np.float16)], torch.add,
     out_dtype=np.float16)
case("mul_f16", "mul", [randn(5, dtype=np.float16) * 100, randn(5, dtype=np.float16) * 100], torch.mul,
     out_dtype=np.float16)

# where(cond, a, b): all three broadcast
case("where_0", "where", [randn(3, 4) > 0, randn(3, 4), randn(3, 4)], torch.where)
case("where_1", "where", [randn(2, 1, 4) > 0, randn(3, 1), randn(4)], torch.where)
case("where_2", "where", [randn(5) > 0, randn(2, 3, 1), np.array(-np.inf, dtype=np.float32)], torch.where)
case("where_3", "where", [np.array([True, False, True]), ints(-5, 5, 2, 3), ints(-5, 5, 3)], torch.where)

# ------------------------------------------------------------------ reductions

RED = {"sum": lambda x, a, k: x.sum(a, keepdim=k), "mean": lambda x, a, k: x.mean(a, keepdim=k),
       "max": lambda x, a, k: x.amax(a, keepdim=k), "min": lambda x, a, k: x.amin(a, keepdim=k)}
for op, fn in RED.items():
    x3 = randn(3, 4, 5, scale=2)
    for axis in range(3):
        for keep in (0, 1):
            case(f"{op}_r3_ax{axis}_k{keep}", op, [x3], lambda x, a=axis, k=keep: fn(x, a, bool(k)),
                 axis=axis, keepdims=keep)
    case(f"{op}_r1", op, [randn(9)], lambda x: fn(x, 0, False), axis=0, keepdims=0)  # to rank 0
    case(f"{op}_r1_k1", op, [randn(9)], lambda x: fn(x, 0, True), axis=0, keepdims=1)
    case(f"{op}_size1", op, [randn(1, 7)], lambda x: fn(x, 0, False), axis=0, keepdims=0)
    case(f"{op}_special", op, [np.array([[1.0, inf, -2.0], [-inf, -inf, -inf], [nan, 1.0, 2.0], [1e30, 1e30, -1e30]],
                                        dtype=np.float32)], lambda x: fn(x, 1, False), axis=1, keepdims=0)
case("sum_i32", "sum", [ints(-100, 100, 4, 6)], lambda x: x.sum(1, dtype=torch.int32), axis=1, keepdims=0)
case("max_i64", "max", [ints(-100, 100, 4, 6, dtype=np.int64)], lambda x: x.amax(0), axis=0, keepdims=0)
case("sum_cancel", "sum", [np.array([[1e8, 1.0, -1e8, 1e-3]], dtype=np.float32)], lambda x: x.sum(1),
     axis=1, keepdims=0)  # double accumulation keeps the 1.001

# ------------------------------------------------------------------ softmax, log_softmax

for op, fn in (("softmax", torch.softmax), ("log_softmax", torch.log_softmax)):
    case(f"{op}_r1", op, [randn(6, scale=2)], lambda x: fn(x, 0), axis=0)
    case(f"{op}_last", op, [randn(3, 5, scale=2)], lambda x: fn(x, 1), axis=1)
    case(f"{op}_first", op, [randn(3, 5, scale=2)], lambda x: fn(x, 0), axis=0)
    case(f"{op}_mid", op, [randn(2, 3, 4, scale=2)], lambda x: fn(x, 1), axis=1)
    case(f"{op}_large", op, [randn(4, 7, scale=300)], lambda x: fn(x, 1), axis=1)  # exp overflows unless max is subtracted
    case(f"{op}_size1", op, [randn(3, 1)], lambda x: fn(x, 1), axis=1)
    m = randn(4, 5)
    m[0, 3:] = -np.inf       # masked entries
    m[1, :] = -np.inf        # a fully masked row: NaN in PyTorch
    m[2, 0] = 1000.0
    case(f"{op}_masked", op, [m], lambda x: fn(x, 1), axis=1)

# ------------------------------------------------------------------ layernorm, rmsnorm


def rmsnorm(x, g, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g


for i, (shape, eps) in enumerate([((4, 8), 1e-5), ((2, 3, 16), 1e-6), ((5,), 1e-5), ((3, 1), 1e-5)]):
    d = shape[-1]
    x, g, b = randn(*shape, scale=2), randn(d), randn(d)
    case(f"layernorm_{i}", "layernorm", [x, g, b],
         lambda x, g, b, e=eps, d=d: torch.nn.functional.layer_norm(x, (d,), g, b, e), eps=eps)
    case(f"rmsnorm_{i}", "rmsnorm", [x, g], lambda x, g, e=eps: rmsnorm(x, g, e), eps=eps)
x = (1000.0 + randn(3, 6, scale=0.01)).astype(np.float32)  # large mean, tiny variance: cancellation
g, b = randn(6), randn(6)
case("layernorm_offset", "layernorm", [x, g, b],
     lambda x, g, b: torch.nn.functional.layer_norm(x, (6,), g, b, 1e-5), eps=1e-5)
case("rmsnorm_large", "rmsnorm", [randn(2, 5, scale=1e15), g[:5].copy()], lambda x, g: rmsnorm(x, g, 1e-6), eps=1e-6)

# ------------------------------------------------------------------ matmul

MM = [((5, 7), (7, 3)),            # plain
      ((7,), (7, 3)),              # vector @ matrix: [3]
      ((5, 7), (7,)),              # matrix @ vector: [5]
      ((7,), (7,)),                # dot: rank 0
      ((2, 1, 4, 6), (3, 6, 5)),   # batch dims broadcast across ranks
      ((4, 6), (2, 6, 3)),         # matrix @ batch
      ((2, 3, 4), (4,)),           # batch @ vector
      ((4,), (2, 4, 3)),           # vector @ batch
      ((1, 1), (1, 1)),
      ((17, 33), (33, 9)),         # odd sizes
      ((3, 2, 5), (3, 5, 2)),
      ((3, 5), (2, 5, 300))]       # more columns than the interpreter's tile of 256
for i, (sa, sb) in enumerate(MM):
    case(f"matmul_{i}", "matmul", [randn(*sa), randn(*sb)], torch.matmul)
case("matmul_special", "matmul", [np.array([[1.0, inf], [0.0, 1.0]], dtype=np.float32),
                                  np.array([[0.0, 1.0], [0.0, 2.0]], dtype=np.float32)], torch.matmul)  # inf*0 = NaN

# ------------------------------------------------------------------ conv2d


def conv(stride, pad):
    def f(x, w, b=None):
        unb = x.dim() == 3
        y = torch.nn.functional.conv2d(x.unsqueeze(0) if unb else x, w, b, stride=stride, padding=pad)
        return y.squeeze(0) if unb else y
    return f


CONV = [("bias", (3, 9, 9), (4, 3, 3, 3), True, (1, 1), (0, 0)),
        ("batched_nobias", (2, 3, 8, 7), (5, 3, 3, 2), False, (2, 1), (1, 0)),
        ("patch", (3, 16, 16), (6, 3, 4, 4), True, (4, 4), (0, 0)),      # ViT patch embedding
        ("pad2", (2, 5, 6), (3, 2, 1, 1), True, (2, 3), (2, 1)),         # 1x1 kernel, padding > stride
        ("odd", (1, 2, 7, 5), (2, 2, 4, 3), True, (3, 2), (1, 2))]
for name, sx, sw, bias, stride, pad in CONV:
    ins = [randn(*sx), randn(*sw, scale=0.5)] + ([randn(sw[0])] if bias else [])
    case(f"conv2d_{name}", "conv2d", ins, conv(stride, pad), stride=stride, pad=pad)

# ------------------------------------------------------------------ data movement

case("reshape_0", "reshape", [randn(2, 3, 4)], lambda x: x.reshape(4, 6), shape=(4, 6))
case("reshape_1", "reshape", [randn(6)], lambda x: x.reshape(1, 6, 1), shape=(1, 6, 1))
case("reshape_2", "reshape", [ints(0, 9, 2, 3, 4)], lambda x: x.reshape(24), shape=(24,))
case("reshape_3", "reshape", [randn(1, 1)], lambda x: x.reshape(()), shape=())
for i, (shape, perm) in enumerate([((2, 3, 4), (1, 0, 2)), ((2, 3, 4), (2, 0, 1)), ((5, 3), (1, 0)),
                                   ((2, 3, 4, 5), (0, 2, 1, 3)), ((2, 3, 4, 5), (3, 1, 0, 2)), ((4,), (0,)),
                                   ((1, 3, 1), (2, 1, 0))]):
    case(f"transpose_{i}", "transpose", [randn(*shape)], lambda x, p=perm: x.permute(*p), perm=perm)
for i, (src, dst) in enumerate([((3, 1), (2, 3, 4)), ((4,), (3, 4)), ((1,), (5,)), ((1, 1), (2, 3)), ((2, 3), (2, 3))]):
    case(f"expand_{i}", "expand", [randn(*src)], lambda x, d=dst: x.expand(*d).contiguous(), shape=dst)
case("expand_bool", "expand", [np.array([[True], [False]])], lambda x: x.expand(2, 3).contiguous(), shape=(2, 3))
for i, (shape, axis, start, end) in enumerate([((7, 4), 0, 2, 5), ((3, 8, 2), 1, 0, 8), ((3, 8, 2), 2, 1, 2),
                                               ((9,), 0, 8, 9), ((3, 5), 1, 2, 2)]):  # the last is empty
    idx = [slice(None)] * len(shape)
    idx[axis] = slice(start, end)
    case(f"slice_{i}", "slice", [randn(*shape)], lambda x, ix=tuple(idx): x[ix].contiguous(),
         axis=axis, start=start, end=end)
for i, (shapes, axis) in enumerate([([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 5)], 1),
                                    ([(2, 3, 4), (2, 3, 4)], 2), ([(5,)], 0), ([(1, 2), (1, 2), (1, 2)], 0)]):
    case(f"concat_{i}", "concat", [randn(*s) for s in shapes], lambda *xs, a=axis: torch.cat(xs, a), axis=axis)
case("concat_i64", "concat", [ints(0, 9, 2, 2, dtype=np.int64), ints(0, 9, 2, 3, dtype=np.int64)],
     lambda a, b: torch.cat((a, b), 1), axis=1)


def gather(axis):
    def f(t, idx):
        flat = torch.index_select(t, axis, idx.reshape(-1).long())
        return flat.reshape(t.shape[:axis] + idx.shape + t.shape[axis + 1:])
    return f


for i, (ts, ishape, axis, idt) in enumerate([((10, 4), (6,), 0, np.int32),      # embedding lookup
                                             ((5, 6), (2, 3), 1, np.int64),
                                             ((3, 4, 5), (4,), 2, np.int32),
                                             ((3, 4, 5), (2, 2), 1, np.int32),
                                             ((7,), (3, 1), 0, np.int64)]):
    n = ts[axis]
    idx = with_specials(ints(0, n, *ishape, dtype=idt), [0, n - 1, 0]).reshape(ishape)  # both ends, repeats
    case(f"gather_{i}", "gather", [randn(*ts), idx], gather(axis), axis=axis)

# ------------------------------------------------------------------ sources with no input

case("arange_7", "arange", [], lambda: torch.arange(7), shape=(7,))
case("arange_1_i32", "arange", [], lambda: torch.arange(1, dtype=torch.int32), shape=(1,))
case("arange_f32", "arange", [], lambda: torch.arange(5, dtype=torch.float32), shape=(5,))
for t, s in ((4, 4), (3, 6), (1, 5)):
    case(f"causal_mask_{t}x{s}", "causal_mask", [],
         lambda t=t, s=s: torch.full((t, s), -inf, dtype=torch.float64).triu(s - t + 1), shape=(t, s))

# ------------------------------------------------------------------ attention (the fused op)


def attention(scale, causal):
    """softmax(q k^T * scale + mask [+ causal]) v with batch dims broadcast; a row whose keys are all
    masked gives zeros (the fused op's definition, where a plain softmax would give NaN)."""
    def f(q, k, v, mask=None):
        s = torch.matmul(q, k.transpose(-1, -2)) * scale
        if mask is not None:
            s = s + mask
        tq, tk = s.shape[-2], s.shape[-1]
        if causal:
            keep = torch.arange(tk)[None, :] <= torch.arange(tq)[:, None] + (tk - tq)
            s = s.masked_fill(~keep, float("-inf"))
        dead = torch.isneginf(s).all(dim=-1, keepdim=True)
        p = torch.softmax(s.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)
        return torch.matmul(p, v)
    return f


ATTN = [("plain", (2, 5, 8), (2, 7, 8), (2, 7, 6), None, 0.35, False),
        ("causal", (3, 6, 4), (3, 6, 4), (3, 6, 4), None, 0.5, True),
        ("causal_rect", (2, 3, 4), (2, 7, 4), (2, 7, 5), None, 0.5, True),     # 3 new queries, 7 keys
        ("gqa", (2, 3, 5, 8), (2, 1, 5, 8), (2, 1, 5, 8), None, 0.3, True),  # 2 kv heads, 3 queries each
        ("mask", (2, 4, 8), (2, 6, 8), (2, 6, 3), (4, 6), 0.35, False),
        ("dead_rows", (1, 3, 4), (1, 5, 4), (1, 5, 4), (3, 5), 1.0, False)]  # a fully masked row
for name, sq, sk, sv, sm, scale, causal in ATTN:
    ins = [randn(*sq), randn(*sk), randn(*sv)]
    if sm:
        m = np.where(rng.random(sm) < 0.3, -np.inf, randn(*sm, scale=0.5)).astype(np.float32)
        if name == "dead_rows":
            m[1, :] = -np.inf
        ins.append(m)
    case(f"attention_{name}", "attention", ins, attention(scale, causal), rtol=1e-5, scale=scale, causal=causal)

# ------------------------------------------------------------------ scatter (state updates, ir/entry.c)
# A generator of its own, so that adding these cases left every earlier file as it was. Indices are
# distinct: index_copy does not define which of two writes to one row wins.
rng_scatter = np.random.default_rng(20261202)
for i, (bs, axis, n, idt) in enumerate([((6, 4), 0, 2, np.int32),       # append two rows of a cache
                                        ((2, 5, 3), 1, 3, np.int64),    # per head, along positions
                                        ((3, 4), 1, 1, np.int32),
                                        ((4,), 0, 4, np.int64)]):       # every row, out of order
    vs = list(bs)
    vs[axis] = n
    base = (rng_scatter.standard_normal(bs)).astype(np.float32)
    vals = (rng_scatter.standard_normal(vs)).astype(np.float32)
    idx = rng_scatter.permutation(bs[axis])[:n].astype(idt)
    case(f"scatter_{i}", "scatter", [base, idx, vals],
         lambda b, ix, v, a=axis: b.index_copy(a, ix.long(), v), axis=axis)

# ------------------------------------------------------------------ token merging and pruning (prune-tokens)
# ToMe's bipartite soft matching and merge_wavg (facebookresearch/ToMe, tome/merge.py) and EViT's
# top-k selection with the fused token (youweiliang/evit, evit.py), written here from those definitions
# in PyTorch and independently of ir/tokens.c. The C ops describe a merge by where each token goes
# (dest); the references compute the merge the references' way (gather, scatter_reduce, cat) and
# read dest off it.


def tome_plan(metric, r, cls):
    """metric [B, T, C] float64 -> (unm_idx [B, na-r], src_idx [B, r], dst_idx [B, r]) as ToMe makes them."""
    metric = metric / metric.norm(dim=-1, keepdim=True)
    a, b = metric[..., ::2, :], metric[..., 1::2, :]
    scores = a @ b.transpose(-1, -2)
    if cls:
        scores[..., 0, :] = -float("inf")
    node_max, node_idx = scores.max(dim=-1)
    edge_idx = torch.sort(node_max, dim=-1, descending=True, stable=True)[1][..., None]
    unm_idx = edge_idx[..., r:, :]
    src_idx = edge_idx[..., :r, :]
    dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)
    if cls:
        unm_idx = unm_idx.sort(dim=1)[0]
    return unm_idx, src_idx, dst_idx


def tome_merge(x, plan, r, mode):
    """ToMe's merge(x, mode): [B, T, C] -> [B, T - r, C]."""
    unm_idx, src_idx, dst_idx = plan
    src, dst = x[..., ::2, :], x[..., 1::2, :]
    n, t1, c = src.shape
    unm = src.gather(dim=-2, index=unm_idx.expand(n, t1 - r, c))
    src = src.gather(dim=-2, index=src_idx.expand(n, r, c))
    dst = dst.scatter_reduce(-2, dst_idx.expand(n, r, c), src, reduce=mode)
    return torch.cat([unm, dst], dim=1)


def tome_dest(metric, r, cls):
    """Where each token goes: merge the token indices themselves (every token alone in its row)."""
    B, T, _ = metric.shape
    plan = tome_plan(metric, r, cls)
    onehot = torch.eye(T, dtype=torch.float64).expand(B, T, T)
    merged = tome_merge(onehot, plan, r, "sum")   # [B, T - r, T]: row j has a 1 at each token it holds
    return merged.argmax(dim=1).to(torch.int32)  # [B, T]: the row holding token i


def tome_match_ref(r, cls):
    def f(m):
        lead = m.shape[:-2]
        m3 = m.reshape(-1, m.shape[-2], m.shape[-1])
        return tome_dest(m3, r, cls).reshape(*lead, m.shape[-2])
    return f


def merge_wavg_ref(metric, r, cls):
    """token_merge(x, dest, size) against ToMe's merge_wavg: x = merge(x * size, sum) / merge(size, sum)."""
    def f(x, dest, size):
        plan = tome_plan(t64(metric), r, cls)
        return tome_merge(x * size, plan, r, "sum") / tome_merge(size, plan, r, "sum")
    return f


for name, B, T, C, D, r, cls in [("tome_cls", 2, 11, 6, 5, 4, True), ("tome_nocls", 3, 10, 4, 3, 5, False),
                                 ("tome_r1", 1, 7, 8, 4, 1, True), ("tome_odd", 2, 9, 5, 7, 3, False)]:
    metric = randn(B, T, C)
    case(f"{name}_match", "tome_match", [metric], tome_match_ref(r, cls), r=r, cls=int(cls), shape=(B, T))
    dest = tome_dest(t64(metric), r, cls).numpy()
    size = uniform(1, 4, B, T, 1).round()
    x = randn(B, T, D)
    case(f"{name}_merge", "token_merge", [x, dest, size], merge_wavg_ref(metric, r, cls), rtol=1e-6, mode=0,
         shape=(B, T - r, D))
    case(f"{name}_size", "token_merge", [size, dest], lambda s, d, m=metric, r=r, cls=cls:
         tome_merge(s, tome_plan(t64(m), r, cls), r, "sum"), rtol=1e-6, mode=1, shape=(B, T - r, 1))


def cls_attn_ref(scale):
    def f(q, k):
        return torch.softmax((q[..., :1, :] @ k.transpose(-1, -2)) * scale, dim=-1)[..., 0, :]
    return f


def evit_ref(keep):
    """EViT's block after the attention: cat([x[:, :1], topk tokens, sum of the rest weighted by attention])."""
    def f(x, dest, w):
        B, N, C = x.shape
        attn = cls_attn = attn_full[:, 1:]     # EViT's cls_attn: [B, N-1], the [CLS] query's attention
        _, idx = torch.topk(attn, keep, dim=1, largest=True, sorted=True)
        non_cls = x[:, 1:]
        x_others = torch.gather(non_cls, dim=1, index=idx.unsqueeze(-1).expand(-1, -1, C))
        mask = torch.ones(B, N - 1, dtype=torch.bool)
        mask.scatter_(1, idx, False)
        compl = torch.stack([torch.nonzero(mask[b])[:, 0] for b in range(B)])
        non_topk = torch.gather(non_cls, dim=1, index=compl.unsqueeze(-1).expand(-1, -1, C))
        non_topk_attn = torch.gather(cls_attn, dim=1, index=compl)
        extra = torch.sum(non_topk * non_topk_attn.unsqueeze(-1), dim=1, keepdim=True)
        return torch.cat([x[:, 0:1], x_others, extra], dim=1)
    return f


for name, shq, shk, scale in [("cls_attn", (2, 3, 9, 8), (2, 3, 9, 8), 0.35), ("cls_attn_rect", (4, 5, 6), (4, 7, 6), 0.5)]:
    case(name, "cls_attn", [randn(*shq), randn(*shk)], cls_attn_ref(scale), rtol=1e-6, scale=scale,
         shape=shk[:-1])

for name, B, N, C, keep in [("evit_a", 2, 10, 4, 5), ("evit_b", 3, 8, 3, 6)]:
    attn_full = torch.softmax(t64(randn(B, N)), dim=-1)
    a32 = attn_full.numpy().astype(np.float32)
    attn_full = t64(a32)
    def sel(a, keep=keep):
        idx = torch.topk(a[:, 1:], keep, dim=1, largest=True, sorted=True)[1]
        dest = torch.full(a.shape, keep + 1, dtype=torch.int32)
        dest[:, 0] = 0
        dest.scatter_(1, idx + 1, torch.arange(1, keep + 1, dtype=torch.int32).expand(a.shape[0], keep).contiguous())
        return dest
    case(f"{name}_select", "evit_select", [a32], sel, keep=keep, shape=(B, N))
    dest = sel(attn_full).numpy()
    w = np.where(dest == keep + 1, a32, np.float32(1))[..., None].astype(np.float32)
    case(f"{name}_merge", "token_merge", [randn(B, N, C), dest, w], evit_ref(keep), rtol=1e-6, mode=1,
         shape=(B, keep + 2, C))



# PiToMe (hchautran/PiToMe, algo/pitome/merge.py: pitome_vision with pitome or pitome_bsm), its merge read
# off as destinations the same way as ToMe's.
def pitome_merge_fn(metric, r, cls, margin, bsm):
    """metric [B, T, C] float64 (token 0 the [CLS] one when cls) -> the merge function, as the authors build it."""
    if cls:
        metric = metric[:, 1:, :]
    B, T, C = metric.shape
    metric = torch.nn.functional.normalize(metric, p=2, dim=-1)
    sim = metric @ metric.transpose(-1, -2)
    energy = torch.nn.functional.elu(sim - margin, alpha=1.0).mean(dim=-1)
    indices = torch.sort(energy, dim=-1, descending=True, stable=True)[1]
    batch_idx = torch.arange(B).unsqueeze(1)
    if bsm:
        a_idx, b_idx = indices[..., ::2], indices[..., 1::2]
        scores = sim.gather(dim=-1, index=b_idx.unsqueeze(-2).expand(B, T, b_idx.shape[-1]))
        scores = scores.gather(dim=-2, index=a_idx.unsqueeze(-1).expand(B, a_idx.shape[-1], b_idx.shape[-1]))
        node_max, node_idx = scores.max(dim=-1)
        edge_idx = torch.sort(node_max, dim=-1, descending=True, stable=True)[1][..., None]
        unm_idx, src_idx = edge_idx[..., r:, :], edge_idx[..., :r, :]
        dst_idx = node_idx[..., None].gather(dim=-2, index=src_idx)

        def merge(x, mode):
            x_cls, x = (x[:, :1], x[:, 1:]) if cls else (None, x)
            src, dst = x[batch_idx, a_idx, :], x[batch_idx, b_idx, :]
            n, t1, c = src.shape
            unm = src.gather(dim=-2, index=unm_idx.expand(n, t1 - r, c))
            src = src.gather(dim=-2, index=src_idx.expand(n, r, c))
            dst = dst.scatter_reduce(-2, dst_idx.expand(n, r, c), src, reduce=mode)
            return torch.cat([x_cls, unm, dst] if cls else [unm, dst], dim=1)
        return merge
    merge_idx, protected_idx = indices[..., :2 * r], indices[..., 2 * r:]
    a_idx, b_idx = merge_idx[..., ::2], merge_idx[..., 1::2]
    scores = sim.gather(dim=-1, index=b_idx.unsqueeze(-2).expand(B, T, r))
    scores = scores.gather(dim=-2, index=a_idx.unsqueeze(-1).expand(B, r, r))
    _, dst_idx = scores.max(dim=-1)

    def merge(x, mode):
        x_cls, x = (x[:, :1], x[:, 1:]) if cls else (None, x)
        Bx, Tx, Cx = x.shape
        protected = x[batch_idx, protected_idx, :]
        src, dst = x[batch_idx, a_idx, :], x[batch_idx, b_idx, :]
        dst = dst.scatter_reduce(-2, dst_idx.unsqueeze(2).expand(Bx, r, Cx), src, reduce=mode)
        return torch.cat([x_cls, protected, dst] if cls else [protected, dst], dim=1)
    return merge


def pitome_match_ref(r, cls, margin, bsm):
    def f(m):
        B, T, _ = m.shape
        merged = pitome_merge_fn(m, r, cls, margin, bsm)(torch.eye(T, dtype=torch.float64).expand(B, T, T), "sum")
        return merged.argmax(dim=1).to(torch.int32)
    return f


for name, B, T, C, r, cls, margin, bsm in [("pitome_cls", 2, 13, 6, 3, True, 0.5, False),
                                           ("pitome_bsm", 2, 12, 5, 4, True, 0.75, True),
                                           ("pitome_nocls", 3, 10, 4, 5, False, 0.25, False),
                                           ("pitome_bsm_nocls", 1, 9, 7, 2, False, 0.0, True)]:
    metric = randn(B, T, C)
    case(f"{name}_match", "pitome_match", [metric], pitome_match_ref(r, cls, margin, bsm), r=r, cls=int(cls),
         margin=margin, bsm=int(bsm), shape=(B, T))
    dest = pitome_match_ref(r, cls, margin, bsm)(t64(metric)).numpy()
    size = uniform(1, 4, B, T, 1).round()
    x = randn(B, T, 3)
    case(f"{name}_merge", "token_merge", [x, dest, size],
         lambda x, d, s, m=metric, r=r, cls=cls, mg=margin, bsm=bsm:
         pitome_merge_fn(t64(m), r, cls, mg, bsm)(x * s, "sum") / pitome_merge_fn(t64(m), r, cls, mg, bsm)(s, "sum"),
         rtol=1e-6, mode=0, shape=(B, T - r, 3))
# ------------------------------------------------------------------ quantization (ir/quant.c's definitions)
# quantize: clamp(round_half_even(x / s) + z) with x / s one float32 division (torch.round rounds half to
# even); s == 0 or x NaN give z. dequantize: (q - z) * s in float32. The scale is grouped along `axis`
# in groups of `group` (the last group may be short) or broadcasts. Exact: one result exists.


def expand_param(p, shape, axis, group):
    if group:
        p = torch.repeat_interleave(p, group, dim=axis).narrow(axis, 0, shape[axis])
    return p.expand(shape)


def quantize(lo, hi, axis=0, group=0):
    def f(x, s, z=None):
        x32, s32 = x.float(), expand_param(s.float(), x.shape, axis, group)
        z32 = expand_param(z.float(), x.shape, axis, group) if z is not None else torch.zeros_like(x32)
        r = torch.round(x32 / s32) + z32
        r = torch.where((s32 == 0) | torch.isnan(x32 / s32), z32, r)
        return torch.clamp(r, lo, hi).double()
    return f


def dequantize(axis=0, group=0):
    def f(q, s, z=None):
        s32 = expand_param(s.float(), q.shape, axis, group)
        z32 = expand_param(z.float(), q.shape, axis, group) if z is not None else torch.zeros_like(s32)
        return ((q.float() - z32) * s32).double()
    return f


def with_ties(x, s):
    """x with exact halves of the scale (ties to even), saturation, a NaN and infinities up front."""
    flat = x.reshape(-1).copy()
    sp = [2.5 * s, 3.5 * s, -2.5 * s, -0.5 * s, 1000.0, -1000.0, np.inf, -np.inf, np.nan]
    flat[: len(sp)] = np.array(sp, dtype=np.float32)
    return flat.reshape(x.shape)


sc = np.float32(0.25)
x = with_ties(randn(4, 6, scale=2.0), sc)
case("quantize_tensor_i8", "quantize", [x, np.full((1, 1), sc, np.float32)], quantize(-128, 127),
     out_dtype=np.int8, axis=0, group=0)
s = np.abs(randn(1, 6, scale=0.1)).astype(np.float32)
s[0, 2] = 0  # a zero scale: the zero point
z = ints(100, 140, 1, 6, dtype=np.uint8)
case("quantize_channel_u8", "quantize", [randn(5, 6, scale=3.0), s, z], quantize(0, 255), out_dtype=np.uint8,
     axis=0, group=0)
s = np.abs(randn(3, 3, scale=0.2)).astype(np.float32)
case("quantize_group_i8", "quantize", [randn(3, 10, scale=4.0), s], quantize(-128, 127, 1, 4), out_dtype=np.int8,
     axis=1, group=4)  # 10 is not a multiple of 4
q = ints(-128, 128, 3, 10, dtype=np.int8)
case("dequantize_group_i8", "dequantize", [q, s], dequantize(1, 4), axis=1, group=4)
q = ints(0, 256, 5, 6, dtype=np.uint8)
case("dequantize_channel_u8", "dequantize", [q, np.abs(randn(1, 6, scale=0.1)), z], dequantize(), axis=0, group=0)


def qmatmul(group, dynamic):
    def f(a, w, s, z=None):
        if dynamic:
            a32 = a.float()
            amax = torch.nan_to_num(a32.abs(), nan=0.0).amax(dim=-1, keepdim=True)
            sa = amax / 127.0
            qa = torch.round(a32 / sa)
            qa = torch.where((sa == 0) | torch.isnan(a32), torch.zeros_like(qa), qa).clamp(-127, 127)
            acc = torch.matmul(qa.long(), w.long())
            return ((acc.float() * sa) * s.float()).double()
        K = w.shape[0]
        s32 = expand_param(s.float(), w.shape, 0, group)
        z32 = expand_param(z.float(), w.shape, 0, group) if z is not None else torch.zeros_like(s32)
        wd = ((w.float() - z32) * s32).double()
        return torch.matmul(a, wd)
    return f


w = ints(-128, 128, 10, 7, dtype=np.int8)
case("qmatmul_w8_group", "qmatmul", [randn(2, 3, 10), w, np.abs(randn(3, 7, scale=0.05))], qmatmul(4, 0),
     group=4, dynamic=0)
w = ints(0, 256, 9, 5, dtype=np.uint8)
case("qmatmul_u8_zero", "qmatmul", [randn(4, 9), w, np.abs(randn(1, 5, scale=0.05)), ints(0, 256, 1, 5, dtype=np.uint8)],
     qmatmul(0, 0), group=0, dynamic=0)
a = randn(5, 33, scale=2.0)
a[1, :] = 0  # a zero row: scale 0
a[2, 3] = 500.0  # one large value: the rest of its row rounds small
w = ints(-128, 128, 33, 6, dtype=np.int8)
w[:, 1] = -128
s = np.abs(randn(1, 6, scale=0.02)).astype(np.float32)
s[0, 4] = 0
case("qmatmul_w8a8", "qmatmul", [a, w, s], qmatmul(0, 1), rtol=RTOL_EXACT, group=0, dynamic=1)



# cls_probs: an attention's second result, its first query row's probabilities (test_interp.c builds the
# attention of the case's q, k, v and mask with its scale and causal, then the cls_probs of it). s + mask is
# rounded to float32 before the softmax, as the attention's definition rounds it (ir/interp.c).
def cls_probs_ref(scale, causal):
    def f(q, k, v, m=None):
        s = (q[..., :1, :] @ k.transpose(-1, -2)) * scale                      # [..., 1, Tk]
        if m is not None:
            s = (s + m[..., :1, :]).float().double()
        if causal:
            Tq, Tk = q.shape[-2], k.shape[-2]
            s = s.masked_fill(torch.arange(Tk) > Tk - Tq, float("-inf"))
        s = torch.broadcast_to(s, torch.broadcast_shapes(s.shape[:-2], v.shape[:-2]) + s.shape[-2:])
        return torch.softmax(s, dim=-1)[..., 0, :]
    return f


for name, shq, shk, dv, scale, causal in [("cls_probs", (2, 3, 9, 8), (2, 3, 9, 8), 5, 0.35, 0),
                                          ("cls_probs_causal", (4, 5, 6), (4, 7, 6), 3, 0.5, 1)]:
    case(name, "cls_probs", [randn(*shq), randn(*shk), randn(*shk[:-1], dv)], cls_probs_ref(scale, causal),
         rtol=1e-6, scale=scale, causal=causal)
mask = randn(2, 1, 1, 6)
mask[0, 0, 0, 2] = -np.inf
case("cls_probs_mask", "cls_probs", [randn(2, 2, 4, 6), randn(2, 2, 6, 6), randn(2, 2, 6, 4), mask],
     cls_probs_ref(0.4, 0), rtol=1e-6, scale=0.4, causal=0)

with open(os.path.join(OUT, "cases.txt"), "w") as f:
    f.write("# Generated by tests/ops/make_refs.py; do not edit. <case> <op> [key=value ...] <rtol>\n")
    f.write("\n".join(lines) + "\n")
print(f"{len(lines)} cases in {OUT}")
