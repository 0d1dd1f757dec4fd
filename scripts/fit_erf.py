#!/usr/bin/env python3
"""fit_erf.py: the coefficients of codegen/loops.c's cg_erf, and their error in f32.

erf(x) = x P(x^2) / Q(x^2) on |x| <= 3.925 (beyond, erf rounds to 1 in f32), P of degree 6 and Q of
degree 4 in x^2 with Q(0) = 1, fitted by iterated weighted least squares (Sanathanan-Koerner
linearisation, then Lawson's reweighting towards the smallest largest relative error), in double.
Then the error of the f32 evaluation as the kernel does it (Horner with fused multiply-adds, one
division), against math.erf on a fine grid. Run with /usr/bin/python3 (numpy); prints the
coefficients in the order cg_erf lists them.
"""
from math import erf

import numpy as np

CLAMP = 3.925
NP, NQ = 7, 5


def fit():
    x = np.linspace(0, CLAMP, 20000)[1:]
    t = x * x
    f = np.array([erf(v) for v in x]) / x
    w = np.ones_like(x)
    q_prev = np.ones_like(x)
    for it in range(60):
        # P(t) - f (Q(t) - 1) = f, unknowns p0..p6, q1..q4, each row divided by the last Q
        a = np.hstack([np.vander(t, NP, increasing=True), -f[:, None] * np.vander(t, NQ, increasing=True)[:, 1:]])
        s = w / q_prev
        sol, *_ = np.linalg.lstsq(a * s[:, None], f * s, rcond=None)
        p, q = sol[:NP], np.concatenate([[1.0], sol[NP:]])
        pt, qt = np.polyval(p[::-1], t), np.polyval(q[::-1], t)
        err = (pt / qt - f) / f
        q_prev = qt
        if it > 10:
            w = w * np.sqrt(np.abs(err))
            w /= w.max()
    return p, q, np.abs(err).max()


def f32_error(p, q):
    f32 = np.float32

    def fma(a, b, c):
        return (a.astype(np.float64) * b.astype(np.float64) + np.float64(c)).astype(f32)

    x = np.linspace(-4.5, 4.5, 1800001).astype(f32)
    a = np.minimum(np.abs(x), f32(CLAMP))
    t = a * a
    pt = np.full_like(t, f32(p[-1]))
    for c in p[-2::-1]:
        pt = fma(pt, t, f32(c))
    qt = np.full_like(t, f32(q[-1]))
    for c in q[-2::-1]:
        qt = fma(qt, t, f32(c))
    y = np.copysign(np.minimum(a * pt / qt, f32(1)), x)
    ref = np.array([erf(float(v)) for v in x])
    ae = np.abs(y - ref)
    m = np.abs(x) > 1e-6
    return ae.max(), (ae[m] / np.abs(ref[m])).max()


if __name__ == "__main__":
    p, q, e = fit()
    print("P:", ", ".join(repr(float(v)) for v in p))
    print("Q:", ", ".join(repr(float(v)) for v in q))
    print(f"largest relative error of the fit, in double: {e:.2e}")
    ae, re = f32_error(p, q)
    print(f"in f32 (Horner with FMAs, a division), on [-4.5, 4.5]: largest absolute error {ae:.2e}, relative {re:.2e}")
