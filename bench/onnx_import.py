"""kiln on the peers' own ONNX files (issue 12): part of the models section.

For each model whose ONNX export worked, `kiln build MODEL.onnx` (the file ONNX Runtime runs, imported
by kiln's ONNX frontend), the program's `--bench` at every thread count with the same input, its output
against PyTorch's, and how many attention nodes kiln's passes fused in the imported graph (`kiln ir
MODEL.onnx`, the default passes). The report's table puts it beside ONNX Runtime on the same file and
kiln on the model written in its own language.
"""
import os

from benchlib import (OUT, compare, fail, fmt_ms, fmt_ratio, keep_lower, kiln_bench, kiln_build, kiln_check, run,
                      say)


def prepare(r, kiln, onnx, key):
    """Builds kiln's program from the ONNX file; fills r["onnx_kiln"] with the build, the input and
    output names and the count of fused attention nodes."""
    o = {"runs": {}, "diff": {}}
    r["onnx_kiln"] = o
    check, why = kiln_check(kiln, onnx)
    if not check:
        o["error"] = "kiln check: " + why
        return fail(f"kiln on {os.path.basename(onnx)}", why)
    o["input"] = check["inputs"][0][0] if check.get("inputs") else None
    o["output"] = check["outputs"][0][0] if check.get("outputs") else None
    exe = os.path.join(OUT, f"{key}.onnx-kiln")
    say(f"  kiln build {os.path.basename(onnx)}")
    binfo, why = kiln_build(kiln, onnx, exe)
    if not binfo:
        o["error"] = "kiln build: " + why
        return fail(f"kiln build {os.path.basename(onnx)}", why)
    o["exe"], o["weights"] = exe, binfo["weights_file"]
    rc, so, se, _ = run([kiln, "ir", onnx])
    o["attention"] = sum(1 for ln in so.splitlines() if " = attention(" in ln) if rc == 0 else None
    return o


def measure(r, t, runs, in_path, ref):
    """One thread count of kiln's program built from the ONNX file, in one of the models section's rounds
    (the lower median of the rounds kept)."""
    o = r.get("onnx_kiln")
    if not o or "exe" not in o or not o.get("input"):
        return
    out = os.path.join(OUT, f"{r['spec']['key']}.onnx-kiln.{t}.npy")
    m, why = kiln_bench(o["exe"], {o["input"]: in_path}, t, runs, weights=o["weights"], output=(o["output"], out))
    keep_lower(o["runs"], t, m or {"error": why})  # the models section calls this once per round
    if m:
        o["diff"][t] = compare(out, ref)
    else:
        fail(f"kiln on {r['spec']['name']}'s ONNX file, {t} threads", why)


def report(res, w):
    rows = [r for r in res.get("models", []) if r.get("onnx_kiln", {}).get("runs")]
    if not rows:
        return
    w("### kiln on the ONNX files")
    w("")
    w("The ONNX file ONNX Runtime runs above, given to kiln as it is (`kiln build MODEL.onnx`: kiln's ONNX "
      "frontend, then the same passes and code generator), timed like the model written in kiln's language "
      "(the program's `--bench`, same input and runs, in the same rounds, the lower median kept). "
      "'attention fused': the attention nodes in `kiln ir "
      "MODEL.onnx` after the default passes (the models have one attention per layer); ONNX Runtime at "
      "level 'all' fuses none in these exports. 'output vs PyTorch' as above.")
    w("")
    w("| model | threads | kiln on the .onnx, median ms | kiln on the .kiln model | ONNX Runtime on the .onnx | "
      "kiln .onnx vs ONNX Runtime | kiln .onnx vs kiln .kiln | attention fused | output vs PyTorch |")
    w("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        o = r["onnx_kiln"]
        for t in res["threads"]:
            m = o["runs"].get(t, {})
            k = m.get("median_ms")
            kk = r["kiln"].get(t, {}).get("median_ms")
            ort = r["ort"].get(t, {}).get("median_ms")
            d = o["diff"].get(t)
            w(f"| {r['spec']['name']} | {t} | {fmt_ms(k) if k else 'failed'} | {fmt_ms(kk)} | {fmt_ms(ort)} | "
              f"{fmt_ratio(ort, k)} | {fmt_ratio(kk, k)} | {o.get('attention', 'n/a')} | "
              f"{f'{d:.1e}' if isinstance(d, float) else d or 'n/a'} |")
    w("")
