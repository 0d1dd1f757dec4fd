"""The decode section of kiln's benchmark (issue 13): a decode step through the KV cache.

GPT-2 124M (random weights of the real shape, examples/gpt2/make_weights.py --preset 124m), fp32:
  kiln          examples/gpt2/gpt2.kiln built with `--kv-cache full --emit lib`, driven by
                bench/kiln_decode.c through the runtime's entry API: a step at exactly P cached tokens
                (reset, prefill P, one timed decode; after a warm-up, R times), then S consecutive
                steps (what generation does)
  ONNX Runtime  bench/decode_peer.py's Gpt2Step exported with per-layer past/present key and value
                inputs and outputs (Hugging Face's layout), fed the pasts of the first P tokens;
                node bench/ort_peer.js times one session.run of the step
  PyTorch       the same module in eager mode with its cache
at P = 128 and 1023 (GPT-2's learned positions stop at 1024: the step at 1023 is the last one).
The logits of the three at P = 128 are compared (the same tokens and weights).

GB/s = the bytes of weights one step reads (every tensor but the position table, of which it reads one
row; the token embedding is read whole, as the tied output layer) / the step's time, against the memory
bandwidth bench/machine.c measured at the same thread count; the KV cache's bytes (2 L P D floats)
are shown beside it.

charlm (the trained character model): the program built with and without `--kv-cache full`, each
generating 200 characters after a 16-character prompt (`--prompt ... -n 200 --seed 1`); the program's
own tokens/s line. Without a cache each character is a forward pass over the whole text so far.
"""
import json
import os
import re
import struct

import numpy as np

from benchlib import (BENCH, OUT, PY, ROOT, SECTION, fail, fmt, fmt_ms, fmt_ratio, json_line, kiln_build, mib,
                      rel, run, say)

PAST = (128, 1023)
GEN_PROMPT = "ROMEO:\nWhat say "  # 16 characters
GEN_N = 200


def _st_bytes(path):
    """{name: bytes} of a safetensors file's tensors."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return {k: v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items() if k != "__metadata__"}


def _shape(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))[name]["shape"]


def kiln_driver(kiln, model, name, weights, out, defines=(), policy="full", extra=()):
    """Builds MODEL with --kv-cache POLICY (and the options extra, --quant w4 say) as a library at
    OUT/libNAME.a and bench/kiln_decode.c against it. Returns (driver, weights file or None, None) or
    (None, None, why)."""
    os.makedirs(out, exist_ok=True)
    lib = os.path.join(out, f"lib{name}.a")
    binfo, why = kiln_build(kiln, model, lib, weights, defines,
                            extra=["--kv-cache", policy, "--emit", "lib"] + list(extra))
    if not binfo:
        return None, None, why
    drv = os.path.join(out, f"kiln_decode_{name}")
    rc, so, se, _ = run(["cc", "-O2", "-std=c11", "-I", ROOT, f"-DKILN_MODEL=kiln_model_{name}",
                         os.path.join(BENCH, "kiln_decode.c"), lib, "-lm", "-lpthread", "-o", drv])
    if rc:
        return None, None, "compiling bench/kiln_decode.c: " + (se.strip().splitlines() or ["?"])[-1]
    return drv, (lib + ".weights" if os.path.exists(lib + ".weights") else None), None


def kiln_rows(drv, wfile, threads, vocab, prefill, decode, runs, steps, tokens=None):
    """Runs the driver; returns ({(threads, "prefill"|"decode", N): row}, None) or (rows so far, why)."""
    rows = {}
    rc, so, se, _ = run([drv, "--threads", threads, "--vocab", vocab, "--prefill", ",".join(map(str, prefill)),
                         "--decode", ",".join(map(str, decode)), "--runs", runs, "--steps", steps]
                        + (["--tokens", tokens] if tokens else []) + (["--weights", wfile] if wfile else []),
                        timeout=7200)
    for line in so.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            rows[(threads, r["what"], r.get("cached", r.get("tokens")))] = r
    return rows, ((se.strip().splitlines() or ["?"])[-1] if rc else None)


def bench(res, kiln, threads, quick):
    SECTION[0] = "decode"
    d = {"threads": threads, "kiln": {}, "ort": {}, "torch": {}, "agree": {}, "charlm": {}}
    res["decode"] = d
    out = os.path.join(OUT, "decode")
    os.makedirs(out, exist_ok=True)
    runs, steps, peer_runs = (2, 4, 3) if quick else (7, 32, 20)
    d["counts"] = {"kiln_runs": runs, "kiln_steps": steps, "peer_runs": peer_runs}

    weights = os.path.join(OUT, "gpt2-124m.safetensors")
    if not os.path.exists(weights):
        say("decode: GPT-2 124M weights")
        rc, so, se, _ = run([PY, "examples/gpt2/make_weights.py", "--preset", "124m", "--out", weights])
        if rc:
            return fail("decode: GPT-2 124M weights", (se.strip().splitlines() or ["?"])[-1])
    sizes = _st_bytes(weights)
    V, D = _shape(weights, "wte.weight")
    L = 1 + max(int(k.split(".")[1]) for k in sizes if k.startswith("h."))
    wpe = sizes.get("wpe.weight", 0)
    d["model"] = {"V": V, "D": D, "L": L, "weights": rel(weights),
                  "step_bytes": sum(sizes.values()) - wpe + wpe // _shape(weights, "wpe.weight")[0]}

    say("decode: kiln build --kv-cache full --emit lib")
    drv, wfile, why = kiln_driver(kiln, os.path.join(ROOT, "examples/gpt2/gpt2.kiln"), "gpt2", weights, out)
    if not drv:
        fail("decode: kiln", why)
    tokens = os.path.join(out, "tokens.i32")
    np.random.default_rng(5).integers(0, V, max(PAST) + 2).astype("<i4").tofile(tokens)

    # the peers' files: the step exported once, the pasts of each P from a PyTorch prefill
    onnx = os.path.join(out, "gpt2-step.onnx")
    if not os.path.exists(onnx):
        say("decode: exporting GPT-2's decode step with past key/values (torch.onnx.export)")
        rc, so, se, _ = run([PY, os.path.join(BENCH, "decode_peer.py"), "export", weights, "--onnx", onnx],
                            timeout=3600)
        if rc:
            fail("decode: ONNX export", (se.strip().splitlines() or ["?"])[-1])
    inputs = {}
    for P in PAST:
        idir = os.path.join(out, f"inputs-{P}")
        say(f"decode: the pasts of {P} tokens (PyTorch prefill)")
        rc, so, se, _ = run([PY, os.path.join(BENCH, "decode_peer.py"), "inputs", weights, tokens, "--past", P,
                             "--dir", idir], timeout=3600)
        if rc:
            fail(f"decode: inputs at {P}", (se.strip().splitlines() or ["?"])[-1])
        else:
            inputs[P] = sorted(os.path.join(idir, f) for f in os.listdir(idir) if f.endswith(".npy"))

    # agreement at the first P: kiln's step, PyTorch's, ONNX Runtime's
    P0 = PAST[0]
    logits = {}
    say(f"decode: logits of the step at {P0} cached tokens")
    if drv:
        kl = os.path.join(out, "kiln.logits.f32")
        rc, so, se, _ = run([drv, "--threads", max(threads), "--vocab", V, "--decode", P0, "--runs", 1,
                             "--tokens", tokens, "--logits-out", kl] + (["--weights", wfile] if wfile else []))
        if rc == 0:
            logits["kiln"] = np.fromfile(kl, dtype="<f4")
    tl = os.path.join(out, "torch.logits.npy")
    rc, so, se, _ = run([PY, os.path.join(BENCH, "decode_peer.py"), "logits", weights, tokens, "--past", P0,
                         "--out", tl], timeout=3600)
    if rc == 0:
        logits["PyTorch"] = np.load(tl).ravel()
    if os.path.exists(onnx) and P0 in inputs:
        ol = os.path.join(out, "ort.logits.npy")
        rc, so, se, _ = run(["node", os.path.join(BENCH, "ort_peer.js"), onnx] + inputs[P0]
                            + ["--threads", 1, "--runs", 1, "--out", ol])
        if rc == 0:
            logits["ONNX Runtime"] = np.load(ol).ravel()
    for a in ("kiln", "ONNX Runtime"):
        if a in logits and "PyTorch" in logits:
            b = logits["PyTorch"]
            d["agree"][a] = float(np.max(np.abs(logits[a] - b)) / np.max(np.abs(b)))

    for t in threads:
        if drv:
            say(f"decode: kiln, {t} thread(s)")
            rows, why = kiln_rows(drv, wfile, t, V, PAST[:1], PAST, runs, steps, tokens)
            d["kiln"].update(rows)
            if why:
                fail(f"decode: kiln, {t} threads", why)
        for P in PAST:
            if os.path.exists(onnx) and P in inputs:
                tries = []
                for variant in (("default", "no spin") if t > 1 else ("default",)):
                    say(f"decode: ONNX Runtime at {P}, {t} thread(s), {variant}")
                    rc, so, se, _ = run(["node", os.path.join(BENCH, "ort_peer.js"), onnx] + inputs[P]
                                        + ["--threads", t, "--runs", peer_runs]
                                        + (["--no-spin"] if variant == "no spin" else []))
                    r = json_line(rc, so, se)
                    r["variant"] = variant
                    tries.append(r)
                ok = [r for r in tries if "error" not in r]
                d["ort"][(t, P)] = min(ok, key=lambda r: r["median_ms"]) if ok else tries[0]
            say(f"decode: PyTorch eager at {P}, {t} thread(s)")
            rc, so, se, _ = run([PY, os.path.join(BENCH, "decode_peer.py"), "time", weights, "--past", P,
                                 "--threads", t, "--runs", peer_runs],
                                env={"OMP_NUM_THREADS": t, "OPENBLAS_NUM_THREADS": t}, timeout=3600)
            d["torch"][(t, P)] = json_line(rc, so, se)

    charlm(d, kiln, threads, out)
    return d


def charlm(d, kiln, threads, out):
    """Time per generated character of examples/charlm with and without the KV cache."""
    model = os.path.join(ROOT, "examples/charlm/charlm.kiln")
    weights = os.path.join(ROOT, "examples/charlm/charlm.safetensors")
    for label, extra in (("recompute", []), ("kv-cache full", ["--kv-cache", "full"])):
        exe = os.path.join(out, "charlm-" + ("kv" if extra else "nokv"))
        say(f"decode: charlm, {label}: kiln build")
        binfo, why = kiln_build(kiln, model, exe, weights, extra=extra)
        if not binfo:
            fail(f"decode: charlm build ({label})", why)
            continue
        for t in threads:
            say(f"decode: charlm, {label}, {t} thread(s): {GEN_N} characters")
            rc, so, se, _ = run([exe, "--prompt", GEN_PROMPT, "-n", GEN_N, "--seed", 1, "--threads", t])
            m = re.search(r"(\d+) tokens in ([\d.]+) s \(([\d.]+) tokens/s", se)
            if rc or not m:
                fail(f"decode: charlm ({label}, {t} threads)", (se.strip().splitlines() or ["?"])[-1])
                continue
            d["charlm"][(label, t)] = {"tokens": int(m.group(1)), "s": float(m.group(2)),
                                       "ms_per_char": 1e3 * float(m.group(2)) / int(m.group(1))}


# ---------------------------------------------------------------------------------------------
# report


def _triad(res, t):
    s = res.get("machine_meas", {}).get("stream", {}).get(f"dram_{t}")
    return s["triad"] if s else None


def headline(d, threads):
    if not d:
        return []
    parts = []
    for t in threads:
        k = d["kiln"].get((t, "decode", PAST[0]), {}).get("median_ms")
        o = d["ort"].get((t, PAST[0]), {}).get("median_ms")
        p = d["torch"].get((t, PAST[0]), {}).get("median_ms")
        if k:
            parts.append(f"{t} thread{'s' if t > 1 else ''}: kiln {fmt_ms(k)} ms, {fmt_ratio(o, k)} ONNX Runtime, "
                         f"{fmt_ratio(p, k)} PyTorch")
    return [f"GPT-2 124M decode step at {PAST[0]} cached tokens (KV cache): " + "; ".join(parts)] if parts else []


def report(res, w):
    d = res.get("decode")
    if not d or "model" not in d:
        return
    m, c = d["model"], d["counts"]
    step = m["step_bytes"]
    w("## Decode: GPT-2 124M through the KV cache")
    w("")
    w(f"fp32, random weights of GPT-2 124M's shape (`{m['weights']}`), one decode step with P tokens cached. "
      f"kiln: `examples/gpt2/gpt2.kiln` built with `kiln build --kv-cache full --emit lib`, driven by "
      f"`bench/kiln_decode.c`: reset, prefill P tokens, one timed decode step, {c['kiln_runs']} times after a "
      f"warm-up (median); 'then' is the median of the {c['kiln_steps']} consecutive steps that follow (generation). "
      f"ONNX Runtime: `bench/decode_peer.py`'s GPT-2 step (examples/gpt2/model.py's arithmetic in float32) "
      f"exported with per-layer past and present keys and values, as Hugging Face's GPT-2 export has them, fed the "
      f"pasts of P tokens; `node bench/ort_peer.js`, {c['peer_runs']} runs after a warm-up (at 2 threads also "
      f"without spinning, the faster kept). PyTorch: the same module, eager, with its cache. GB/s = the "
      f"{mib(step)} of weights a step reads ÷ the step's time; '% bw' divides by the memory triad bandwidth "
      f"measured above at the same thread count (the weights do not fit in the L3). The KV cache adds "
      + ", ".join(f"{mib(2 * m['L'] * P * m['D'] * 4)} at P = {P}" for P in PAST)
      + " of reads, not counted in GB/s.")
    w("")
    cols = [f"P = {P}: ms (GB/s, % bw)" for P in PAST]
    w("| engine | threads | " + " | ".join(cols) + " | kiln vs ONNX Runtime | kiln vs PyTorch |")
    w("|---|---|" + "---|" * len(cols) + "---|---|")
    for t in d["threads"]:
        bw = _triad(res, t)
        rows = [("kiln", lambda P: d["kiln"].get((t, "decode", P))),
                ("ONNX Runtime", lambda P: d["ort"].get((t, P))),
                ("PyTorch eager", lambda P: d["torch"].get((t, P)))]
        for label, get in rows:
            cells, ro, rp = [], [], []
            for P in PAST:
                r = get(P)
                if not r or "error" in r:
                    cells.append("failed" if r else "n/a")
                    continue
                gbs = step / (r["median_ms"] * 1e6)
                cell = f"{fmt_ms(r['median_ms'])} ({fmt(gbs)}, " + (f"{100 * gbs / bw:.0f}%" if bw else "n/a") + ")"
                if r.get("steps_median_ms"):
                    cell += f"; then {fmt_ms(r['steps_median_ms'])}"
                if r.get("variant") == "no spin":
                    cell += " ns"
                cells.append(cell)
                if label == "kiln":
                    ro.append(fmt_ratio(d["ort"].get((t, P), {}).get("median_ms"), r["median_ms"]))
                    rp.append(fmt_ratio(d["torch"].get((t, P), {}).get("median_ms"), r["median_ms"]))
            w(f"| {label} | {t} | " + " | ".join(cells) + f" | {' / '.join(ro)} | {' / '.join(rp)} |")
    w("")
    if d["agree"]:
        w(f"Logits of the step at P = {PAST[0]} against PyTorch's (max |a − b| ÷ max |b|): "
          + "; ".join(f"{k} {v:.1e}" for k, v in d["agree"].items()) + ".")
        w("")
    tg = []
    for t in d["threads"]:
        k = d["kiln"].get((t, "decode", PAST[0]), {}).get("median_ms")
        o = d["ort"].get((t, PAST[0]), {}).get("median_ms")
        bw = _triad(res, t)
        if k and o:
            tg.append(f"{t} thread{'s' if t > 1 else ''}: kiln's step takes {k / o:.2f}x ONNX Runtime's time "
                      f"({'met' if k / o <= 0.7 else 'not met'}: target at most 0.7x)")
        if k and bw and t == 1:
            share = step / (k * 1e6) / bw
            tg.append(f"1 thread: {100 * share:.0f}% of the memory bandwidth ({'met' if share >= 0.85 else 'not met'}"
                      f": target at least 85%)")
    if tg:
        w("Issue 13's targets at P = " + str(PAST[0]) + ": " + "; ".join(tg) + ".")
        w("")
    if d["charlm"]:
        w(f"charlm, {GEN_N} characters generated after a {len(GEN_PROMPT)}-character prompt (the program's "
          f"`--prompt ... -n {GEN_N} --seed 1`, its own tokens/s line; without a cache every character is a "
          f"forward pass over the text so far):")
        w("")
        w("| threads | recompute ms per character | KV cache ms per character | speed-up |")
        w("|---|---|---|---|")
        for t in d["threads"]:
            a = d["charlm"].get(("recompute", t), {}).get("ms_per_char")
            b = d["charlm"].get(("kv-cache full", t), {}).get("ms_per_char")
            w(f"| {t} | {fmt_ms(a)} | {fmt_ms(b)} | {fmt_ratio(a, b)} |")
        w("")
