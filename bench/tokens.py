"""The tokens section of kiln's benchmark (issue 14): token merging on ViT-B/16's shape, in time.

ViT-B/16 (224 x 224, 197 tokens, 12 layers; the random weights and the N(0, 1) image of the models
section, made here when that section has not run) at batch 1 and 8, built with `--prune-tokens
tome:r=R` for R = 8, 13, 16 and without; each program's `--bench` at every thread count, interleaved
(every variant once, then again: the lower median of the two rounds is kept, which filters some of the
machine's drift). Batch 1 is examples/vit/vit.kiln (no batch axis); batch 8 is
examples/vit-mnist56/vit-mnist56.kiln (the same ViT with a batch axis) at ViT-B/16's constants, on 8
N(0, 1) images. ONNX Runtime runs the unmerged model in the same rounds: at batch 1 the models
section's ONNX export when the file is there, at batch 8 the batched ViT that bench/tokens_onnx.py
exports (timm's formulation, the batch fixed at 8), whose logits are checked against kiln's
unmerged ones first (1e-3, relative to the largest).

FLOPs come from `kiln check` with the same --prune-tokens; 'turned into time' = (1 - t_R / t_0) /
(1 - F_R / F_0), the share of the FLOPs saved that the latency saved. The merge's own cost is from the
merged program's `--profile` at 1 thread: the groups of the ops prune-tokens adds (tome_match,
token_merge and the [CLS]-attention ops), plus the metric (the keys averaged over the heads) and the log
of the sizes (proportional attention), as a share of the run.
"""
import os
import re

import numpy as np

from benchlib import (BENCH, OUT, PY, ROOT, SECTION, fail, fmt, fmt_ms, fmt_ratio, json_line, kiln_bench,
                      kiln_build, kiln_check, reason, rel, run, say)

RS = (0, 8, 13, 16)
BATCHES = (1, 8)
# examples/vit-mnist56/vit-mnist56.kiln at ViT-B/16's constants, with a batch of at most 8
B16_DEFINES = ("CH=3", "D=768", "H=12", "L=12", "P=16", "IMG=224", "CLASSES=1000", "BMAX=8")
MERGE_OPS = ("tome_match", "pitome_match", "token_merge", "cls_attn", "evit_select")


def _weights_and_input():
    weights = os.path.join(OUT, "vit-b16.safetensors")
    image = os.path.join(OUT, "vit-b16.input.npy")
    if not os.path.exists(weights):
        say("tokens: ViT-B/16 weights")
        part = weights[:-len(".safetensors")] + ".partial.safetensors"
        rc, so, se, _ = run([PY, "examples/vit/make_weights.py", "--preset", "vit-b16", "--out", part], timeout=600)
        if rc:
            return None, None
        os.replace(part, weights)
    if not os.path.exists(image):
        np.save(image, np.random.default_rng(0).standard_normal((3, 224, 224)).astype(np.float32))
    image8 = os.path.join(OUT, "vit-b16.input8.npy")
    if not os.path.exists(image8):
        np.save(image8, np.random.default_rng(0).standard_normal((8, 3, 224, 224)).astype(np.float32))
    return weights, {1: image, 8: image8}


def _ort_batch8(weights, image, kiln_logits):
    """The batched ONNX export (bench/tokens_onnx.py) for batch 8, when kiln's unmerged logits agree
    with PyTorch's; returns (path, None) or (None, why)."""
    onnx = os.path.join(OUT, "vit-b16.batch8.onnx")
    ref = os.path.join(OUT, "vit-b16.batch8.torch.npy")
    if not os.path.exists(onnx) or not os.path.exists(ref):
        say("tokens: ONNX export of ViT-B/16 at batch 8")
        rc, so, se, _ = run([PY, os.path.join(BENCH, "tokens_onnx.py"), weights, image, "--onnx", onnx, "--out", ref],
                            env={"OMP_NUM_THREADS": 2}, timeout=1200)
        if rc:
            return None, reason(rc, so, se)
    if kiln_logits is None or not os.path.exists(kiln_logits):
        return None, "no kiln output to check the export against"
    a, b = np.load(kiln_logits), np.load(ref)
    err = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
    if a.shape != b.shape or not err <= 1e-3:
        return None, f"kiln's and PyTorch's logits differ ({a.shape} vs {b.shape}, max rel {err:.2e})"
    return onnx, None


def _merge_share(profile_text):
    """(per cent of the run in the merge's groups, their labels) from a program's --profile table, whose
    rows read: ms, cpu ms, share%, calls, MFLOP/call, GFLOP/s, GB/s, % of peak, of, kind, group
    ("%47 tome_match i32[197]")."""
    ms, labels = 0.0, []
    total = re.search(r"([\d.]+) ms in kernels", profile_text)
    for line in profile_text.splitlines():
        m = re.match(r"\s*([\d.]+)\s+[\d.]+\s+[\d.]+%\s+\d+(?:\s+\S+){6}\s+(%\d+) (\S+) (\S+.*)$", line)
        if not m:
            continue
        op, shape = m.group(3), m.group(4)
        # besides the ops prune-tokens adds: the metric (the keys averaged over the heads, a mean) and the
        # log of the sizes that proportional attention adds ([T, 1])
        if op in MERGE_OPS or op == "mean" or (op == "log" and shape.endswith(", 1]")):
            ms += float(m.group(1))
            labels.append(f"{m.group(2)} {op} {shape}")
    return (100 * ms / float(total.group(1)) if labels and total else None), labels


def bench(res, kiln, threads, quick):
    SECTION[0] = "tokens"
    d = {"threads": threads, "batches": list(BATCHES), "rows": {}, "flop": {}, "ort": {}, "ort_why": {}}
    res["tokens"] = d
    weights, images = _weights_and_input()
    if not weights:
        return fail("tokens: ViT-B/16 weights", "could not be made")
    d["weights"], d["input"] = rel(weights), {b: rel(p) for b, p in images.items()}
    exes = {}
    for b in BATCHES:
        model = os.path.join(ROOT, "examples/vit/vit.kiln" if b == 1 else "examples/vit-mnist56/vit-mnist56.kiln")
        defines = () if b == 1 else B16_DEFINES
        for r in RS:
            extra = ["--prune-tokens", f"tome:r={r}"] if r else []
            check, why = kiln_check(kiln, model, weights, defines, extra)
            if check:  # per run: the batched model's count is at its bound, 8
                d["flop"][(r, b)] = check.get("flop")
            exe = os.path.join(OUT, "tokens", f"vit-b16-b{b}-r{r}")
            os.makedirs(os.path.dirname(exe), exist_ok=True)
            say(f"tokens: kiln build ViT-B/16, batch {b}" + (f", --prune-tokens tome:r={r}" if r else ""))
            binfo, why = kiln_build(kiln, model, exe, weights, defines, extra=extra)
            if not binfo:
                fail(f"tokens: build batch {b} r={r}", why)
                continue
            exes[(r, b)] = (exe, binfo["weights_file"])
    onnx = {1: os.path.join(OUT, "vit-b16.onnx")}
    if (0, 8) in exes:  # kiln's unmerged logits at batch 8, to check the batched export against
        exe, wf = exes[(0, 8)]
        out8 = os.path.join(OUT, "tokens", "vit-b16-b8-r0.logits.npy")
        got, why = kiln_bench(exe, {"image": images[8]}, 2, 1, weights=wf, output=("logits", out8))
        onnx[8], d["ort_why"][8] = _ort_batch8(weights, images[8], out8 if got else None)
        if not onnx[8]:
            fail("tokens: ONNX Runtime at batch 8", d["ort_why"][8])
    runs = 2 if quick else 5
    for rnd in range(1 if quick else 2):
        for t in threads:
            for b in BATCHES:
                for r in RS:
                    if (r, b) not in exes:
                        continue
                    exe, wf = exes[(r, b)]
                    say(f"tokens: round {rnd + 1}, batch {b}, r = {r}, {t} thread(s)")
                    got, why = kiln_bench(exe, {"image": images[b]}, t, runs, weights=wf)
                    if not got:
                        fail(f"tokens: batch {b} r={r} {t} threads", why)
                        continue
                    old = d["rows"].get((r, t, b))
                    if not old or got["median_ms"] < old["median_ms"]:
                        d["rows"][(r, t, b)] = got
                if onnx.get(b) and os.path.exists(onnx[b]):
                    say(f"tokens: round {rnd + 1}, ONNX Runtime (unmerged), batch {b}, {t} thread(s)")
                    rc, so, se = run(["node", os.path.join(BENCH, "ort_peer.js"), onnx[b], images[b], "--threads", t,
                                      "--runs", runs], env={"OMP_NUM_THREADS": t})[:3]
                    got = json_line(rc, so, se)
                    old = d["ort"].get((t, b))
                    if "error" not in got and (not old or got["median_ms"] < old["median_ms"]):
                        d["ort"][(t, b)] = got
    # the merge's share of a merged run
    if (13, 1) in exes:
        exe, wf = exes[(13, 1)]
        say("tokens: profile of r = 13, batch 1, 1 thread")
        cmd = [exe, "--input", f"image={images[1]}", "--threads", 1, "--bench", runs, "--profile"]
        rc, so, se, _ = run(cmd + (["--weights", wf] if wf else []))
        share, labels = _merge_share(so + se)
        d["merge_share"] = {"r": 13, "share": share, "groups": labels}
    return d


def headline(d, threads):
    if not d or not d.get("rows"):
        return []
    parts = []
    for t in threads:
        base = d["rows"].get((0, t, 1), {}).get("median_ms")
        m13 = d["rows"].get((13, t, 1), {}).get("median_ms")
        if base and m13:
            parts.append(f"{t} thread{'s' if t > 1 else ''}: r = 13 {fmt_ms(m13)} ms, {fmt_ratio(base, m13)} unmerged, "
                         f"{fmt_ratio(d['ort'].get((t, 1), {}).get('median_ms'), m13)} ONNX Runtime (unmerged)")
    return ["ViT-B/16 with ToMe (batch 1): " + "; ".join(parts)] if parts else []


def report(res, w):
    d = res.get("tokens")
    if not d or not d.get("rows"):
        return
    w("## Token merging on ViT-B/16")
    w("")
    w(f"ViT-B/16's shape (random weights `{d['weights']}`, N(0, 1) images `{d['input'][1]}` and, batch 8, "
      f"`{d['input'][8]}`), fp32, built with `kiln build --prune-tokens tome:r=R` (ToMe with proportional "
      f"attention, [CLS] kept; docs/PASSES.md) and without (r = 0): batch 1 from `examples/vit/vit.kiln`, "
      f"batch 8 from `examples/vit-mnist56/vit-mnist56.kiln` with `-D {' -D '.join(B16_DEFINES)}` (the same "
      f"ViT with a batch axis). Each program's `--bench` in rounds that take every variant in "
      f"turn, the lower median of the rounds kept; ONNX Runtime runs the unmerged model in the same rounds "
      f"(batch 1: the models section's ONNX file; batch 8: `bench/tokens_onnx.py`'s export, checked "
      f"against kiln's unmerged logits to 1e-3). GFLOP: `kiln check` with the same option, per run (8 images "
      f"at batch 8). 'Turned into time' = (1 − t_R/t_0) ÷ (1 − F_R/F_0): the share of the FLOPs saved that "
      f"the latency saved (issue 14's target at r = 13: at least 90%). Random weights merge as trained ones "
      f"would in time, not in accuracy: accuracy is measured on vit-mnist and vit-mnist56 (docs/PASSES.md).")
    w("")
    w("| batch | r | GFLOP | threads | kiln median ms | vs unmerged | FLOPs saved turned into time | vs ONNX Runtime (unmerged) |")
    w("|---|---|---|---|---|---|---|---|")
    for b in d.get("batches", [1]):
        f0 = d["flop"].get((0, b))
        for t in d["threads"]:
            base = d["rows"].get((0, t, b), {}).get("median_ms")
            ort = d["ort"].get((t, b), {}).get("median_ms")
            for r in RS:
                row = d["rows"].get((r, t, b))
                if not row:
                    continue
                fr = d["flop"].get((r, b))
                turned = "n/a"
                if r and base and f0 and fr and f0 > fr:
                    turned = f"{100 * (1 - row['median_ms'] / base) / (1 - fr / f0):.0f}%"
                elif not r:
                    turned = "-"
                w(f"| {b} | {r} | {fmt(fr / 1e9 if fr else None, 2)} | {t} | {fmt_ms(row['median_ms'])} | "
                  f"{fmt_ratio(base, row['median_ms'])} | {turned} | {fmt_ratio(ort, row['median_ms'])} |")
    w("")
    if d.get("ort_why", {}).get(8):
        w(f"ONNX Runtime at batch 8: not timed ({d['ort_why'][8]}).")
        w("")
    ms = d.get("merge_share")
    if ms and ms.get("share") is not None:
        w(f"The merge's own cost at r = {ms['r']}, batch 1, 1 thread (`--profile`): {ms['share']:.1f}% of the run, in "
          f"{len(ms['groups'])} groups (the matching, the merges, the metric and the log of the sizes; "
          f"issue 14's target: under 3%).")
        w("")
