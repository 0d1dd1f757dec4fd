"""Dynamically quantized ONNX files, and their rows in the models section (issues 12 and 15).

    onnx_quant.py quantize IN.onnx OUT.onnx [--weights s8|u8]

rewrites every MatMul of IN.onnx whose B is an fp32 initializer of rank 2 the way ONNX Runtime's
`quantize_dynamic(..., op_types_to_quantize=["MatMul"])` writes it (onnxruntime/python/tools/
quantization: onnx_quantizer.py, operators/matmul.py, quant_utils.py; defaults: per_channel=False,
reduce_range=False, MatMulConstBOnly):

    x_quantized, x_scale, x_zero_point = DynamicQuantizeLinear(x)          (once per x; u8, per tensor)
    y_output_quantized = MatMulInteger(x_quantized, W_quantized, x_zero_point, W_zero_point)
    y_output_quantized_cast_output = Cast(y_output_quantized, to=FLOAT)
    scales = Mul(x_scale, W_scale)
    y = Mul(y_output_quantized_cast_output, scales)

W per tensor: s8 (QInt8, ONNX Runtime's default weight type) symmetric in [-127, 127] with zero point
0, scale = max|W| / 127; u8 (QUInt8) asymmetric in [0, 255], rmin = min(W, 0), rmax = max(W, 0),
scale = (rmax - rmin) / 255, zero point round(-rmin / scale); q = clip(round_half_even(W / scale) + zp)
in float32. The fp32 weights a rewritten MatMul no longer reads are dropped. Other ops (Gemm, Conv,
Gather) stay fp32: only MatMuls are rewritten.

In the models section (harness.py), for the models of QUANT_KEYS (ViT-B/16 and GPT-2 124M prefill; the
harness's --quant-models changes the list): ONNX Runtime on the quantized file, kiln on the same file
(`kiln build MODEL.int8.onnx`: the importer turns each pattern into a dynamic qmatmul, codegen/qgemm.c),
kiln `--quant int8` on the .kiln model, and kiln fp32 (the models section's own row), at each thread
count; each output against ONNX Runtime int8's and PyTorch's fp32.
"""
import argparse
import os
import sys

import numpy as np

QUANT_KEYS = ("vit-b16", "gpt2-124m")


def quantize_weight(w, kind):
    """(q, scale, zero_point) of an fp32 array as ONNX Runtime's quantize_data computes them."""
    w = w.astype(np.float32)
    rmin, rmax = np.float32(min(w.min(), 0)), np.float32(max(w.max(), 0))
    if kind == "s8":
        qmin, qmax, dt = -127, 127, np.int8
        a = np.float32(max(abs(rmin), abs(rmax)))
        rmin, rmax = -a, a
    else:
        qmin, qmax, dt = 0, 255, np.uint8
    scale = np.float32((rmax - rmin) / np.float32(qmax - qmin))
    if scale == 0:
        scale = np.float32(1.0)
    zp = 0 if kind == "s8" else int(np.round(qmin - rmin / scale))
    q = np.clip(np.round(w / scale) + zp, qmin, qmax).astype(dt)
    return q, scale, dt(zp)


def quantize(src, dst, kind="s8"):
    import onnx
    from onnx import helper, numpy_helper, TensorProto

    m = onnx.load(src)
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    done_w, done_x = {}, {}
    nodes, n_q = [], 0
    for n in g.node:
        w = inits.get(n.input[1]) if n.op_type == "MatMul" and len(n.input) == 2 else None
        if w is None or w.data_type != TensorProto.FLOAT or len(w.dims) != 2:
            nodes.append(n)
            continue
        x = n.input[0]
        if w.name not in done_w:
            q, scale, zp = quantize_weight(numpy_helper.to_array(w), kind)
            g.initializer.extend([numpy_helper.from_array(q, w.name + "_quantized"),
                                  numpy_helper.from_array(np.array(scale, np.float32), w.name + "_scale"),
                                  numpy_helper.from_array(np.array(zp), w.name + "_zero_point")])
            done_w[w.name] = True
        if x not in done_x:
            nodes.append(helper.make_node("DynamicQuantizeLinear", [x],
                                          [x + "_quantized", x + "_scale", x + "_zero_point"],
                                          x + "_QuantizeLinear"))
            done_x[x] = True
        y = n.output[0]
        name = n.name + "_quant" if n.name else ""
        qo = y + "_output_quantized"
        nodes.append(helper.make_node("MatMulInteger", [x + "_quantized", w.name + "_quantized",
                                                        x + "_zero_point", w.name + "_zero_point"], [qo], name))
        nodes.append(helper.make_node("Cast", [qo], [qo + "_cast_output"], qo + "_cast", to=TensorProto.FLOAT))
        smul = name + "_scales_mul" if name else x + "_scale_" + w.name + "_scale_mul"
        nodes.append(helper.make_node("Mul", [x + "_scale", w.name + "_scale"], [smul + ":0"], smul))
        nodes.append(helper.make_node("Mul", [qo + "_cast_output", smul + ":0"], [y],
                                      name + "_output_scale_mul" if name else ""))
        n_q += 1
    del g.node[:]
    g.node.extend(nodes)
    # drop the fp32 weights nothing reads any more
    read = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in read]
    del g.initializer[:]
    g.initializer.extend(keep)
    if not any(o.domain in ("", "ai.onnx") and o.version >= 11 for o in m.opset_import):
        raise SystemExit(f"{src}: DynamicQuantizeLinear needs opset 11 or later")
    onnx.save(m, dst)
    return n_q


# ---------------------------------------------------------------- the models section's rows


def prepare(r, kiln, onnx_path, spec, model, weights, threads_env=None):
    """Quantizes the model's ONNX file, builds kiln on it and kiln --quant int8 on the .kiln model.
    Fills r["quant"]; returns it, or None when the model is not one of the quantized ones."""
    from benchlib import OUT, PY, fail, kiln_build, run, say

    key = spec["key"]
    q = {"runs": {"ort": {}, "kiln_onnx": {}, "kiln_quant": {}}, "diff": {}}
    r["quant"] = q
    qpath = os.path.join(OUT, f"{key}.int8.onnx")
    say(f"  quantize {os.path.basename(onnx_path)} (MatMulInteger, s8 weights)")
    rc, out, err, secs = run([PY, os.path.abspath(__file__), "quantize", onnx_path, qpath], timeout=1800)
    if rc:
        q["error"] = "quantize: " + (err or out).strip().splitlines()[-1] if (err or out).strip() else f"rc {rc}"
        return fail(f"quantize {key}", q["error"])
    q["onnx"] = qpath
    q["matmuls"] = int(out.strip().split()[0]) if out.strip() else None
    exe = os.path.join(OUT, f"{key}.int8-onnx-kiln")
    say(f"  kiln build {os.path.basename(qpath)}")
    b, why = kiln_build(kiln, qpath, exe)
    if b:
        q["kiln_onnx_exe"], q["kiln_onnx_weights"] = exe, b["weights_file"]
        rc, so, se, _ = run([kiln, "ir", qpath])
        q["qmatmul"] = sum(1 for ln in so.splitlines() if " = qmatmul(" in ln) if rc == 0 else None
    else:
        q["kiln_onnx_error"] = why
        fail(f"kiln build {os.path.basename(qpath)}", why)
    exe2 = os.path.join(OUT, f"{key}.quant-int8")
    say(f"  kiln build {spec['kiln']} --quant int8")
    b2, why2 = kiln_build(kiln, model, exe2, weights, spec["defines"], extra=["--quant", "int8"])
    if b2:
        q["kiln_quant_exe"], q["kiln_quant_weights"] = exe2, b2["weights_file"]
    else:
        q["kiln_quant_error"] = why2
        fail(f"kiln build {spec['name']} --quant int8", why2)
    return q


def measure(r, t, runs, in_name, in_path, out_name, onnx_out_name, ref):
    """One thread count of the three int8 programs, in one of the models section's rounds (each keeps the
    lower median of the rounds); outputs against ONNX Runtime int8's and PyTorch's."""
    from benchlib import BENCH, OUT, compare, fail, json_line, keep_lower, kiln_bench, pick, run

    q = r.get("quant")
    if not q or "onnx" not in q:
        return
    key = r["spec"]["key"]
    tries = []
    for flags in ([], ["--no-spin"]) if t > 1 else ([],):
        oout = os.path.join(OUT, f"{key}.int8-ort.{t}{'.nospin' if flags else ''}.npy")
        rc, out, err, _ = run(["node", os.path.join(BENCH, "ort_peer.js"), q["onnx"], in_path, "--threads", t,
                               "--runs", runs, "--out", oout] + flags,
                              env={"OMP_NUM_THREADS": t, "OPENBLAS_NUM_THREADS": t})
        d = json_line(rc, out, err)
        d["variant"] = "no spin" if flags else "default"
        d["outfile"] = oout
        tries.append(keep_lower(q.setdefault("tries", {}), (t, d["variant"]), d))
    q["runs"]["ort"][t] = pick(tries)
    ort_out = q["runs"]["ort"][t].get("outfile") if "error" not in q["runs"]["ort"][t] else None
    for which, name in (("kiln_onnx", onnx_out_name), ("kiln_quant", out_name)):
        if which + "_exe" not in q:
            continue
        kout = os.path.join(OUT, f"{key}.{which}.{t}.npy")
        m, why = kiln_bench(q[which + "_exe"], {in_name if which == "kiln_quant" else r["onnx_kiln"]["input"]:
                                                in_path}, t, runs, weights=q[which + "_weights"],
                            output=(name, kout))
        keep_lower(q["runs"][which], t, m or {"error": why})
        if not m:
            fail(f"{which} {key} {t} threads", why)
            continue
        q["diff"][(which, "torch", t)] = compare(kout, ref)
        if ort_out:
            q["diff"][(which, "ort", t)] = compare(kout, ort_out)
    if ort_out:
        q["diff"][("ort", "torch", t)] = compare(ort_out, ref)


def report(res, w):
    from benchlib import fmt_ms, fmt_ratio

    rows = [r for r in res.get("models", []) if r.get("quant", {}).get("onnx")]
    if not rows:
        return
    w("### int8: ONNX Runtime's dynamic quantization vs kiln")
    w("")
    w("Each model's ONNX file with its MatMuls rewritten by bench/onnx_quant.py as ONNX Runtime's "
      "`quantize_dynamic` writes them (DynamicQuantizeLinear, MatMulInteger with per-tensor s8 weights, Cast, "
      "Mul by the scales). 'ORT int8': ONNX Runtime on that file; 'kiln on the int8 .onnx': `kiln build` of "
      "the same file (each pattern imported as a dynamic qmatmul: int8 kernels, activations quantized per "
      "row); 'kiln --quant int8': the .kiln model built with `--quant int8` (per-channel weights); "
      "'kiln fp32': the models section's kiln row. All four are timed in the models section's rounds, the lower "
      "median of the rounds kept. Output columns: largest relative difference of the "
      "output against ONNX Runtime int8's and against PyTorch fp32 (quantization error, not a bug, when "
      "small).")
    w("")
    w("| model | threads | ORT int8 ms | kiln on the int8 .onnx ms | kiln --quant int8 ms | kiln fp32 ms | "
      "kiln .onnx int8 vs ORT int8 | kiln --quant int8 vs kiln fp32 | qmatmul nodes | kiln .onnx vs ORT out | "
      "kiln .onnx vs PyTorch | ORT int8 vs PyTorch | kiln --quant int8 vs PyTorch |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        q = r["quant"]
        for t in res["threads"]:
            o = q["runs"]["ort"].get(t, {}).get("median_ms")
            ko = q["runs"]["kiln_onnx"].get(t, {}).get("median_ms")
            kq = q["runs"]["kiln_quant"].get(t, {}).get("median_ms")
            kf = r["kiln"].get(t, {}).get("median_ms")
            d = lambda *k: (f"{q['diff'][k]:.1e}" if isinstance(q["diff"].get(k), float)
                            else q["diff"].get(k) or "n/a")
            w(f"| {r['spec']['name']} | {t} | {fmt_ms(o) if o else 'failed'} | {fmt_ms(ko) if ko else 'failed'} | "
              f"{fmt_ms(kq) if kq else 'failed'} | {fmt_ms(kf)} | {fmt_ratio(o, ko)} | {fmt_ratio(kf, kq)} | "
              f"{q.get('qmatmul', 'n/a')} of {q.get('matmuls', '?')} | {d('kiln_onnx', 'ort', t)} | "
              f"{d('kiln_onnx', 'torch', t)} | {d('ort', 'torch', t)} | {d('kiln_quant', 'torch', t)} |")
    w("")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=("quantize",))
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--weights", choices=("s8", "u8"), default="s8")
    a = ap.parse_args()
    n = quantize(a.src, a.dst, a.weights)
    print(f"{n} MatMuls quantized ({a.weights} weights) -> {a.dst}")


if __name__ == "__main__":
    sys.exit(main())
