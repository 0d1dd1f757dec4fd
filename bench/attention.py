"""The attention section of kiln's benchmark harness (bench/harness.py --only attention).

The kernel alone, y = softmax(q @ k^T / sqrt(d), axis=-1) @ v, non-causal, q, k, v f32[12, T, d],
at every T in ATTN_T and d in ATTN_D, by four runners: kiln with its default passes (fuse-attention
makes one `attention` op that never stores the T x T scores), kiln with --passes canonicalize (the
scores stored, as written), ONNX Runtime on the same math exported from PyTorch (one ONNX file per d,
T symbolic), and PyTorch eager. For each: the median time at every thread count, the peak RSS of the
process (/usr/bin/time -v), and its output against PyTorch's; for kiln also what `kiln check` says
about activation memory and the arena the built program allocates (NAME_ACTIVATIONS_BYTES in the
header of `kiln build --emit lib`). report() writes the "## Attention" section of docs/PERF.md with
the targets of issue #6 and whether this run met them.

The number of runs is chosen per runner from its time at the previous T (T^2 scaling) so that the
timed runs take about 1 s, at least 3. At T = 8192 one run takes seconds (PyTorch eager over 10 s
at one thread), so the section's time is mostly the largest T: --attention-T trims it.
"""
import os
import re
import struct
import time

import numpy as np

from benchlib import (BENCH, COMMANDS, OUT, PY, SECTION, compare, fail, fmt, fmt_ms, fmt_ratio, json_line,
                      kiln_bench, kiln_build, kiln_check, mib, pick, reason, rel, run, say, time_v)

ATTN_T = [128, 512, 1024, 4096, 8192]
ATTN_D = [64, 128]
ATTN_H = 12
ATTN_MODEL = """\
# y = softmax(q @ k^T / sqrt(D), axis=-1) @ v per head, non-causal; written by bench/harness.py
model attention
const H = 12, T = 128, D = 64
input q: f32[H, T, D]
input k: f32[H, T, D]
input v: f32[H, T, D]
output y: f32[H, T, D]

y = softmax(q @ k.transpose(0, 2, 1) / sqrt(D), axis=-1) @ v
"""
ATTN_RUNNERS = (("fused", "kiln fused"), ("unfused", "kiln unfused"), ("ort", "ONNX Runtime"),
                ("torch", "PyTorch"))
ATTN_VARIANT_MAX_T = 1024  # up to this T the peers' pools are also tried without spinning (2+ threads)


def attn_flop(T, d):
    """q @ k^T and p @ v: 2 * T * T * d FLOP each per head (a multiply-add is 2); softmax not counted."""
    return 4.0 * ATTN_H * T * T * d


def mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def untimed(err):
    """stderr without what /usr/bin/time -v appended (so that reason() finds the program's own words)."""
    for mark in ("Command exited with non-zero status", "\tCommand being timed:"):
        if mark in err:
            err = err[:err.index(mark)]
    return err


def _varint(buf, i):
    r = s = 0
    while True:
        b = buf[i]
        i += 1
        r |= (b & 0x7F) << s
        s += 7
        if b < 0x80:
            return r, i


def _pb(buf):
    """(field, value) of one protobuf message: an int for a varint, bytes for everything else."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wt = key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt in (1, 5):
            size = 8 if wt == 1 else 4
            v, i = buf[i:i + size], i + size
        elif wt == 2:
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise ValueError(f"protobuf wire type {wt}")
        yield key >> 3, v


def onnx_nodes(path):
    """[(domain, op_type, {attribute: value})] of the nodes of an ONNX file's graph, in order, read
    with a minimal protobuf decoder (the onnx package is not installed here). ModelProto.graph is
    field 7, GraphProto.node 1; NodeProto.op_type 4, .domain 7, .attribute 5; AttributeProto.name 1,
    .f 2 (float), .i 3 (int); other attribute kinds are left out."""
    with open(path, "rb") as f:
        model = f.read()
    nodes = []
    for fg, graph in _pb(model):
        if fg != 7:
            continue
        for fn, node in _pb(graph):
            if fn != 1:
                continue
            op, domain, attrs = "", "", {}
            for f, v in _pb(node):
                if f == 4:
                    op = v.decode()
                elif f == 7:
                    domain = v.decode()
                elif f == 5:
                    name, val = None, None
                    for fa, va in _pb(v):
                        if fa == 1:
                            name = va.decode()
                        elif fa == 2:
                            val = round(struct.unpack("<f", va)[0], 6)
                        elif fa == 3:
                            val = va - (1 << 64) if va >= 1 << 63 else va
                    if name is not None and val is not None:
                        attrs[name] = val
            nodes.append((domain, op, attrs))
    return nodes


def attn_inputs(d, T, D):
    """Writes q, k, v f32[H, T, D] (N(0, 1), numpy default_rng([T, D])) into directory d."""
    rng = np.random.default_rng([T, D])
    paths = []
    for name in ("q", "k", "v"):
        p = os.path.join(d, f"{name}.npy")
        np.save(p, rng.standard_normal((ATTN_H, T, D), dtype=np.float32))
        paths.append(p)
    COMMANDS.append((SECTION[0], f"# harness.py wrote {rel(d)}/q.npy, k.npy, v.npy: f32[{ATTN_H}, {T}, {D}], "
                     f"numpy default_rng([{T}, {D}]) N(0, 1)"))
    return paths


def bench(res, kiln, threads, quick, Ts=None):
    """The attention kernel alone, y = softmax(q k^T / sqrt(d)) v with 12 heads: kiln with the
    fuse-attention pass (default passes) and without it (--passes canonicalize), ONNX Runtime on the
    same math exported from PyTorch, and PyTorch eager, at every T and head size d."""
    SECTION[0] = "attention"
    say("attention")
    t_start = time.time()
    Ts = Ts or ([128, 512] if quick else ATTN_T)
    target_s, max_runs = (0.2, 10) if quick else (1.0, 200)
    a = {"T": Ts, "d": ATTN_D, "H": ATTN_H, "cfg": {}, "export": {}, "ort_graph": {},
         "target_s": target_s, "max_runs": max_runs}
    res["attention"] = a
    top = os.path.join(OUT, "attention")
    os.makedirs(top, exist_ok=True)
    model = os.path.join(top, "attention.kiln")
    with open(model, "w") as f:
        f.write(ATTN_MODEL)
    COMMANDS.append((SECTION[0], f"# harness.py wrote {rel(model)}: y = softmax(q @ k.transpose(0, 2, 1) / "
                     f"sqrt(D), axis=-1) @ v, q, k, v, y f32[H, T, D], H = {ATTN_H}; T and D set by -D"))
    # one ONNX file per head size, T symbolic (traced at T = 16: tracing runs the module, and at
    # T = 8192 that alone takes seconds)
    onnx = {}
    for d in ATTN_D:
        ex = os.path.join(top, f"export_d{d}")
        os.makedirs(ex, exist_ok=True)
        path = os.path.join(top, f"attention_d{d}.onnx")
        if os.path.exists(path):
            os.remove(path)
        rc, out, err, secs = run([PY, os.path.join(BENCH, "torch_peer.py"), "export", "attention", "-"]
                                 + attn_inputs(ex, 16, d) + ["--onnx", path, "--dynamic-axis", 1],
                                 env={"OMP_NUM_THREADS": 2, "OPENBLAS_NUM_THREADS": 2}, timeout=600)
        a["export"][d] = {"ok": rc == 0, "seconds": secs, "why": None if rc == 0 else reason(rc, out, err)}
        if rc:
            fail(f"ONNX export of attention d {d}", a["export"][d]["why"])
        else:
            onnx[d] = path
    a["onnx"] = onnx
    prev = {}  # (runner, d, threads) -> (T, median ms) at the last T measured, to choose the runs
    for T in Ts:
        for d in ATTN_D:
            try:
                bench_config(a, kiln, model, onnx.get(d), T, d, threads, prev, target_s, max_runs)
            except Exception as e:  # one configuration's trouble does not stop the others
                fail(f"attention T {T} d {d}", f"the harness stopped on it: {type(e).__name__}: {e}")
    a["seconds"] = time.time() - t_start
    return a


def bench_config(a, kiln, model, onnx, T, d, threads, prev, target_s, max_runs):
    say(f"  T {T}, d {d}")
    t0 = time.time()
    c = {"runs": {}, "m": {}, "diff": {}, "check": {}, "arena": {}}
    a["cfg"][(T, d)] = c
    cd = os.path.join(OUT, "attention", f"T{T}_d{d}")
    os.makedirs(cd, exist_ok=True)
    q, k, v = attn_inputs(cd, T, d)
    c["io_bytes"] = 4 * ATTN_H * T * d * 4  # q, k, v and y
    defines = [f"T={T}", f"D={d}"]
    exes = {}
    for runner, passes in (("fused", []), ("unfused", ["--passes", "canonicalize"])):
        chk, why = kiln_check(kiln, model, None, defines, extra=passes)
        c["check"][runner] = chk or {"error": why}
        if not chk:
            fail(f"kiln check attention T {T} d {d} {runner}", why)
        exe = os.path.join(cd, f"attention_{runner}")
        info, why = kiln_build(kiln, model, exe, None, defines, extra=passes)
        if info:
            exes[runner] = exe
        else:
            fail(f"kiln build attention T {T} d {d} {runner}", why)
        # the arena the program allocates is in the library header: NAME_ACTIVATIONS_BYTES
        ld = os.path.join(cd, f"lib_{runner}")
        os.makedirs(ld, exist_ok=True)
        info, why = kiln_build(kiln, model, os.path.join(ld, "libattention.a"), None, defines,
                               extra=["--emit", "lib"] + passes)
        m = None
        if info and os.path.exists(os.path.join(ld, "attention.h")):
            with open(os.path.join(ld, "attention.h")) as f:
                m = re.search(r"#define \w+_ACTIVATIONS_BYTES (\d+)", f.read())
        if m:
            c["arena"][runner] = int(m.group(1))
        else:
            fail(f"kiln build --emit lib attention T {T} d {d} {runner}", why or "no ACTIVATIONS_BYTES in its header")
    scores = ATTN_H * T * T * 4
    for t in threads:
        for runner, label in ATTN_RUNNERS:
            key = (runner, d, t)
            est = prev[key][1] * (T / prev[key][0]) ** 2 if key in prev else attn_flop(T, d) / (10e6 * t)
            runs = int(min(max_runs, max(3, round(target_s * 1000 / max(est, 1e-3)))))
            c["runs"][(runner, t)] = runs
            yout = os.path.join(cd, f"y.{runner}.{t}.npy")
            if os.path.exists(yout):
                os.remove(yout)
            avail = mem_available()
            need = 2 * scores + 2 * c["io_bytes"] + (1 << 30)  # two T x T buffers at once, and slack
            if runner != "fused" and avail is not None and avail < need:
                c["m"][(runner, t)] = {"error": f"skipped: needs about {need / 2 ** 30:.1f} GiB, "
                                                f"{avail / 2 ** 30:.1f} GiB available"}
            else:
                c["m"][(runner, t)] = measure(a, runner, exes.get(runner), onnx, (q, k, v), T, d, t, runs, yout)
            r = c["m"][(runner, t)]
            if "error" in r:
                fail(f"attention T {T} d {d}, {label}, {t} thread(s)", r["error"])
            else:
                prev[key] = (T, r["median_ms"])
    # every output against PyTorch's at the first thread count
    ref = os.path.join(cd, f"y.torch.{threads[0]}.npy")
    if "error" not in c["m"].get(("torch", threads[0]), {"error": 1}):
        for t in threads:
            for runner in ("fused", "unfused", "ort"):
                if "error" not in c["m"].get((runner, t), {"error": 1}):
                    c["diff"][(runner, t)] = compare(os.path.join(cd, f"y.{runner}.{t}.npy"), ref)
    c["seconds"] = time.time() - t0


def measure(a, runner, exe, onnx, qkv, T, d, t, runs, yout):
    """One runner at one shape and thread count, under /usr/bin/time -v: {"median_ms", "maxrss_kb", ...}
    or {"error"}. At more than one thread and T <= ATTN_VARIANT_MAX_T the peers are also run with
    their pools told not to spin, and the faster is kept (pick)."""
    variants = t > 1 and T <= ATTN_VARIANT_MAX_T
    if runner in ("fused", "unfused"):
        if not exe:
            return {"error": "kiln build failed"}
        r, why = kiln_bench(exe, dict(zip("qkv", qkv)), t, runs, output=("y", yout), timed=True)
        return r or {"error": why}
    env = {"OMP_NUM_THREADS": t, "OPENBLAS_NUM_THREADS": t}
    tries = []
    if runner == "ort":
        if not onnx:
            return {"error": "no ONNX file: the export failed"}
        for flags in ([], ["--no-spin"]) if variants else ([],):
            extra = []
            if d not in a["ort_graph"] and not flags:  # once per d: the graph as ONNX Runtime optimised it
                a["ort_graph"][d] = os.path.join(OUT, "attention", f"attention_d{d}.ort-optimized.onnx")
                extra = ["--optimized", a["ort_graph"][d]]
            cmd = ["node", os.path.join(BENCH, "ort_peer.js"), onnx, *qkv, "--threads", t, "--runs", runs,
                   "--out", yout] + flags + extra
            tries.append(("no spin" if flags else "default", cmd, env))
    else:
        for passive in (False, True) if variants else (False,):
            cmd = [PY, os.path.join(BENCH, "torch_peer.py"), "time", "attention", "-", *qkv, "--threads", t,
                   "--runs", runs, "--out", yout]
            tries.append(("passive" if passive else "default", cmd,
                          {**env, "OMP_WAIT_POLICY": "PASSIVE"} if passive else env))
    results = []
    for variant, cmd, e in tries:
        rc, out, err, _ = run(["/usr/bin/time", "-v"] + cmd, env=e)
        r = json_line(rc, out, untimed(err))
        if "maxrss_kb" in time_v(err):
            r["maxrss_kb"] = time_v(err)["maxrss_kb"]
        r["variant"] = variant
        results.append(r)
    return pick(results)


# ---------------------------------------------------------------------------------------------
# report


def size_txt(b):
    if b is None:
        return "n/a"
    return "0 B" if b == 0 else f"{b / 2 ** 30:.2f} GiB" if b >= 2 ** 30 else mib(b)


def check_kind_text(cfg):
    """What `kiln check`'s 'activation memory' meant in this run (its form changed with plan-memory)."""
    kinds = sorted(set(ch.get("activation_kind") for c in cfg.values() for ch in c["check"].values()
                       if ch.get("activation_kind")))
    meaning = {"peak": "the peak of the intermediates and the output when each is freed after its last use "
                   "(inputs not counted)",
           "planned arena": "the arena its plan-memory pass laid out for the intermediates; inputs and "
                            "output are the caller's buffers"}
    return " or ".join(f"'{k}': {meaning[k]}" for k in kinds) or "(not printed)"


def attn_ms(c, runner, t):
    r = (c or {}).get("m", {}).get((runner, t)) or {}
    return r.get("median_ms")


def attn_ratio(c, runner, t):
    """runner's time ÷ kiln fused time: kiln fused's speed relative to runner."""
    f, o = attn_ms(c, "fused", t), attn_ms(c, runner, t)
    return o / f if f and o else None


def targets(a, threads):
    """The targets of issue #6, each as (name, verdict line), from what this run measured."""
    out = []
    cfg = a["cfg"]
    # 1. fused at least 1.5x faster than unfused at T = 1024
    name = "kiln fused at least 1.5x faster than kiln unfused at T = 1024"
    if 1024 not in a["T"]:
        out.append((name, "not measured: T = 1024 was not in this run"))
    else:
        cells, miss, have = [], 0, 0
        for d in a["d"]:
            for t in threads:
                x = attn_ratio(cfg.get((1024, d)), "unfused", t)
                if x is None:
                    cells.append(f"d {d}, {t} thread{'s' if t > 1 else ''}: not measured")
                    continue
                have += 1
                txt = f"d {d}, {t} thread{'s' if t > 1 else ''}: {x:.2f}x"
                if x < 1.5:
                    miss += 1
                    txt += f" (fused would have to be {1.5 / x:.2f}x faster)"
                cells.append(txt)
        verdict = ("not measured" if not have else "met" if not miss else
                   f"missed in {miss} of {have} measurements" if miss < have else "missed")
        out.append((name, f"**{verdict}**: " + "; ".join(cells) + "."))
    # 2. fused activation memory linear in T
    name = "kiln fused: activation memory growing linearly in T"
    Ts = [T for T in a["T"] if all(cfg.get((T, d), {}).get("check", {}).get("fused", {}).get("activation")
                                   is not None for d in a["d"])]
    if len(Ts) < 2:
        out.append((name, "not measured at two or more T"))
    else:
        lo, hi = min(Ts), max(Ts)
        parts, superlinear = [], False

        def span(m, d):
            if len(set(m[T] for T in Ts)) == 1:
                return f"{size_txt(m[lo])} at every T"
            return (f"{size_txt(m[lo])} at T = {lo}, {size_txt(m[hi])} at T = {hi} ({m[lo] / lo:.0f} and "
                    f"{m[hi] / hi:.0f} B per token; q, k, v and y take {4 * ATTN_H * d * 4} B per token)")

        for d in a["d"]:
            pk = {T: cfg[(T, d)]["check"]["fused"]["activation"] for T in Ts}
            ar = {T: cfg[(T, d)]["arena"].get("fused") for T in Ts}
            for m in (pk, ar):
                if m[lo] is not None and m[hi] is not None and m[hi] / hi > 1.01 * max(m[lo], 1) / lo:
                    superlinear = True
            if all(ar[T] is not None for T in Ts):
                txt = f"d {d}: the program's arena {span(ar, d)}" + (
                    " (`kiln check` agrees)" if ar == pk else f", `kiln check` {span(pk, d)}")
            else:
                txt = f"d {d}: `kiln check` {span(pk, d)}"
            rss = {T: cfg[(T, d)]["m"].get(("fused", threads[0]), {}).get("maxrss_kb") for T in Ts}
            if rss[lo] and rss[hi]:
                grow = (rss[hi] - rss[lo]) * 1024
                io = cfg[(hi, d)]["io_bytes"] - cfg[(lo, d)]["io_bytes"]
                txt += (f"; peak RSS grew by {size_txt(grow)} from T = {lo} to {hi}, while q, k, v and y grew by "
                        f"{size_txt(io)}")
            parts.append(txt)
        verdict = ("**not met**: it grows faster than T" if superlinear else
                   "**met**: neither the arena nor `kiln check`'s figure grows faster than T")
        out.append((name, verdict + ": " + "; ".join(parts) + "."))
    # 3. fused faster than ONNX Runtime at every T
    name = "kiln fused faster than ONNX Runtime at every T"
    have, miss = 0, []
    for T in a["T"]:
        for d in a["d"]:
            for t in threads:
                x = attn_ratio(cfg.get((T, d)), "ort", t)
                if x is None:
                    continue
                have += 1
                if x <= 1:
                    miss.append((T, d, t, x))
    if not have:
        out.append((name, "not measured"))
    elif not miss:
        out.append((name, f"**met** in all {have} measurements (every T, d and thread count)."))
    else:
        worst = min(miss, key=lambda m: m[3])
        byT = []
        for T in a["T"]:
            ms = [m for m in miss if m[0] == T]
            if ms:
                byT.append(f"T {T}: " + ", ".join(f"d {m[1]}, {m[2]} thread{'s' if m[2] > 1 else ''}: "
                                                  f"{m[3]:.2f}x" for m in ms))
        out.append((name, f"**missed in {len(miss)} of {have} measurements**: " + "; ".join(byT)
                    + f". The largest gap: T {worst[0]}, d {worst[1]}, {worst[2]} thread"
                    + ("s" if worst[2] > 1 else "") + f", where fused would have to be {1 / worst[3]:.2f}x faster."))
    return out


def headline(a, threads):
    cfg = a["cfg"]
    parts = []
    for t in threads:
        uf = [attn_ratio(cfg.get((1024, d)), "unfused", t) for d in a["d"]]
        ort = [x for x in (attn_ratio(cfg.get((T, d)), "ort", t) for T in a["T"] for d in a["d"]) if x]
        pt = [x for x in (attn_ratio(cfg.get((T, d)), "torch", t) for T in a["T"] for d in a["d"]) if x]
        bits = []
        if any(uf):
            bits.append("fused vs unfused at T = 1024 " + " / ".join(fmt_ratio(x, 1) if x else "n/a" for x in uf)
                        + " (d " + " / ".join(str(d) for d in a["d"]) + ")")
        if ort:
            bits.append(f"vs ONNX Runtime {min(ort):.2f}-{max(ort):.2f}x")
        if pt:
            bits.append(f"vs PyTorch {min(pt):.2f}-{max(pt):.2f}x")
        if bits:
            parts.append(f"{t} thread{'s' if t > 1 else ''}: " + ", ".join(bits))
    if not parts:
        return None
    T8 = max(a["T"])
    d0 = a["d"][0]
    ar = cfg.get((T8, d0), {}).get("arena", {})
    mem = ""
    if "fused" in ar and "unfused" in ar:
        mem = (f"; activation arena at T = {T8}, d = {d0}: fused {size_txt(ar['fused'])}, "
               f"unfused {size_txt(ar['unfused'])}")
    return (f"Attention ({a['H']} heads, T {min(a['T'])}-{T8}, d " + "/".join(str(d) for d in a["d"])
            + ", ranges over T and d): " + "; ".join(parts) + mem)


def report(res, w):
    a = res.get("attention")
    if not a:
        return
    threads = res["threads"]
    cfg = a["cfg"]
    w("## Attention")
    w("")
    w(f"The kernel alone: y = softmax(q @ kᵀ / √d, axis=-1) @ v, non-causal self-attention, q, k, v "
      f"f32[{a['H']}, T, d] ({a['H']} heads, batch 1), fp32, at T = " + ", ".join(str(T) for T in a["T"])
      + " and d = " + ", ".join(str(d) for d in a["d"]) + ". The inputs are N(0, 1). "
      "**kiln fused**: `bench/out/attention/attention.kiln` (`softmax(q @ k.transpose(0, 2, 1) / sqrt(D), "
      "axis=-1) @ v`, T and D set with `-D`) built with the default passes: fuse-attention makes it one "
      "`attention` op that never stores the T x T scores. **kiln unfused**: the same file built with "
      "`--passes canonicalize`: matmul, divide, softmax, matmul, with the T x T scores in memory (the "
      "arena below says how much). **ONNX Runtime**: `bench/torch_peer.py export attention` "
      "(`torch.onnx.export`, opset 14) of the PyTorch module below, one file per d with T a symbolic "
      "size, run by `node bench/ort_peer.js` with graph optimisation 'all' as in the model section. "
      "**PyTorch**: `bench/torch_models.py`'s `Attention`, eager, `torch.softmax(q @ k.transpose(-2, -1) / "
      "math.sqrt(d), dim=-1) @ v` (torch 1.13 has no `scaled_dot_product_attention`). Each runner does one "
      "warm-up run and then N timed runs, N chosen so that the timed runs take about "
      f"{a['target_s']:g} s (from the same runner's time at the previous T), at least 3 and at most "
      f"{a['max_runs']}. At 2 threads and T ≤ {ATTN_VARIANT_MAX_T}, ONNX Runtime and PyTorch were also "
      "measured with their pools told not to spin, and the faster is kept (as in the model section); "
      "at larger T one run takes long enough for that not to matter, and it would double the section's "
      "time. Ratios: peer time ÷ kiln fused time; 'fused vs unfused' is kiln unfused's time ÷ kiln "
      "fused's. GFLOP/s count the two products, 4·H·T²·d (a multiply-add is 2), not the softmax.")
    w("")
    ff = [(T, d, cfg[(T, d)]["check"].get("fused", {}).get("flop")) for (T, d) in cfg]
    low = [(T, d, f) for T, d, f in ff if f is not None and f < attn_flop(T, d) / 100]
    if low:
        T, d, f = low[0]
        w(f"(`kiln check` counts the fused `attention` op at {f / 1e6:.3f} MFLOP at T = {T}, d = {d}, "
          f"against {attn_flop(T, d) / 1e6:.1f} MFLOP for its two products: it does not count them, so the "
          "GFLOP/s here use the formula.)")
        w("")
    notes = []

    def cell(r, who):
        if not r:
            return "not run"
        if "error" in r:
            notes.append(f"{who}: {r['error']}")
            return f"failed (note {len(notes)})"
        txt = fmt_ms(r["median_ms"])
        others = r.get("others") or {}
        if r.get("variant", "default") != "default" or others:
            alt = "; ".join(f"{v}: {fmt_ms(x) if isinstance(x, (int, float)) else 'failed'}" for v, x in others.items())
            txt += f" ({r.get('variant', 'default')}" + (f"; {alt}" if alt else "") + ")"
        return txt

    for t in threads:
        w(f"### {t} thread{'s' if t > 1 else ''}")
        w("")
        w("| T | d | runs (fused / unfused / ORT / PyTorch) | kiln fused ms | kiln unfused ms | ONNX Runtime ms | "
          "PyTorch ms | fused vs unfused | kiln fused vs ONNX Runtime | kiln fused vs PyTorch | kiln fused GFLOP/s |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        for T in a["T"]:
            for d in a["d"]:
                c = cfg.get((T, d))
                if not c:
                    w(f"| {T} | {d} | not run | | | | | | | | |")
                    continue
                runs = " / ".join(str(c["runs"].get((r, t), "-")) for r, _ in ATTN_RUNNERS)
                cells = [cell(c["m"].get((r, t)), f"T {T}, d {d}, {label}, {t} thread(s)")
                         for r, label in ATTN_RUNNERS]
                f = attn_ms(c, "fused", t)
                gf = fmt(attn_flop(T, d) / (f * 1e6)) if f else "n/a"
                w(f"| {T} | {d} | {runs} | " + " | ".join(cells) + f" | {fmt_ratio(attn_ms(c, 'unfused', t), f)} | "
                  f"{fmt_ratio(attn_ms(c, 'ort', t), f)} | {fmt_ratio(attn_ms(c, 'torch', t), f)} | {gf} |")
        w("")
    for i, n in enumerate(notes, 1):
        w(f"{i}. {n}")
    if notes:
        w("")

    w("### Memory and agreement")
    w("")
    t0 = threads[0]
    w("`kiln check` prints the graph's 'activation memory' after the passes it is given (here "
      + check_kind_text(cfg) + ") and its largest intermediate. "
      "The arena is what the built program allocates for intermediates: `NAME_ACTIVATIONS_BYTES` in the "
      "header of `kiln build --emit lib` (inputs are read in place and the output is written into the "
      "caller's buffer, so neither is in it). Peak RSS is the maximum resident set size of the whole "
      f"benchmark process (`/usr/bin/time -v`, the {t0}-thread run), nothing subtracted: it also holds "
      "the program or interpreter and its libraries, the inputs as loaded from .npy (ONNX Runtime's "
      "node script holds the file's bytes and a typed-array copy of each), the output and its copy "
      "written to .npy; 'q, k, v, y' is what those four tensors take. 'output vs PyTorch' is "
      "max |y − y_torch| ÷ max |y_torch| against PyTorch's output, the largest over the thread counts.")
    w("")
    w("| T | d | q, k, v, y | `kiln check` activations, fused / unfused | arena, fused / unfused | largest "
      "intermediate, unfused | peak RSS kiln fused | kiln unfused | ONNX Runtime | PyTorch | output vs PyTorch "
      "(fused / unfused / ORT) |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")

    for T in a["T"]:
        for d in a["d"]:
            c = cfg.get((T, d))
            if not c:
                continue
            chk = " / ".join(size_txt(c["check"].get(r, {}).get("activation")) for r in ("fused", "unfused"))
            ar = " / ".join(size_txt(c["arena"].get(r)) for r in ("fused", "unfused"))
            lg = c["check"].get("unfused", {}).get("largest")
            lg = f"{lg[0]} {lg[1]}" if lg else "n/a"
            rss = [size_txt((c["m"].get((r, t0)) or {}).get("maxrss_kb", 0) * 1024 or None) for r, _ in ATTN_RUNNERS]

            def worst(r):
                v = [c["diff"].get((r, t)) for t in threads if c["diff"].get((r, t)) is not None]
                nums = [x for x in v if not isinstance(x, str)]
                return f"{max(nums):.1e}" if nums else (v[0] if v else "n/a")

            w(f"| {T} | {d} | {mib(c['io_bytes'])} | {chk} | {ar} | {lg} | " + " | ".join(rss)
              + f" | {worst('fused')} / {worst('unfused')} / {worst('ort')} |")
    w("")
    og = [(d, p) for d, p in a.get("ort_graph", {}).items() if p and os.path.exists(p)]
    if og:
        d, p = og[0]
        try:
            nodes = onnx_nodes(p)
        except (OSError, ValueError, IndexError, UnicodeDecodeError) as e:
            nodes = None
            w(f"ONNX Runtime's optimised graph ({rel(p)}) could not be read: {e}.")
        if nodes is not None:
            def node_txt(n):
                dom, op, at = n
                shown = {k: v for k, v in at.items() if v not in (0, 0.0)}
                inner = ([dom] if dom else []) + [f"{k} {v}" for k, v in shown.items()]
                return op + (f" ({', '.join(inner)})" if inner else "")

            fused_attn = [n for n in nodes if "Attention" in n[1]]
            try:
                exported = ", ".join(n[1] for n in onnx_nodes(a["onnx"][d]))
            except (KeyError, OSError, ValueError, IndexError, UnicodeDecodeError):
                exported = "?"
            w(f"What ONNX Runtime runs: with graph optimisation 'all' it rewrote the exported graph ({exported}) "
              "into " + ", ".join(node_txt(n) for n in nodes)
              + f" (`{rel(p)}`, written by `ort_peer.js --optimized`, d = {d}). "
              + ("It fused the attention into " + ", ".join(n[1] for n in fused_attn) + "."
                 if fused_attn else "No attention fusion: the scaled scores (H x T x T) are a tensor between "
                 "FusedMatMul and Softmax, as in kiln unfused and PyTorch."))
            w("")
    w("### Targets of issue #6")
    w("")
    for name, verdict in targets(a, threads):
        w(f"- {name}: {verdict}")
    w("")
    secs = a.get("seconds")
    if secs:
        w(f"This section took {secs / 60:.1f} min of the run ({len(cfg)} shapes x {len(threads)} thread counts x "
          f"4 runners, with the builds and the two ONNX exports); the largest shapes take most of it: "
          + ", ".join(f"T {T}, d {d}: {c['seconds']:.0f} s" for (T, d), c in cfg.items() if T == max(a["T"]))
          + ".")
        w("")

