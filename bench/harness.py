"""kiln's benchmark harness: runs every benchmark side by side and writes docs/PERF.md.

Started by bench/run.sh (which installs the peers and builds kiln first); run with /usr/bin/python3.

    harness.py [--kiln PATH] [--only gemm,models,compile,attention,decoders,decode,tokens] [--threads 1,2] [--quick]
               [--fresh] [--attention-T 128,512,1024,4096,8192] [--decoder-models llama-tiny,...]
               [--report PATH]

  --only     run only these parts (the report still gets the machine section: clock, FMA peak per
             thread count, memory bandwidth, which every "% of peak" and GB/s is compared with)
  --threads  thread counts to measure (default 1,2)
  --quick    fewer runs everywhere, only two GEMM shapes and attention at T 128 and 512: a smoke
             test of the harness, not numbers to publish
  --attention-T  the sequence lengths of the attention section
  --decoder-models  the models of the decoders section (bench/decoders.py; default llama-tiny,
             llamachar,llama-gpt2size,tinyllama, with --quick llama-tiny,llama-gpt2size)
  --report   the page to write (default docs/PERF.md): only the section of the CPU this runs on is
             replaced (bench/cpu.py)
  --fresh    delete bench/out/ first (generated weights, ONNX files, programs)

Nothing here is a test: no pass/fail, no thresholds. Every number in the report is measured in this
run; a measurement that fails is reported as failed with the reason.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

import numpy as np

import attention
import cpu
import decode
import decoders
import onnx_import
import onnx_quant
import tokens
from benchlib import (BENCH, COMMANDS, FAILURES, OUT, PY, ROOT, SECTION, compare, fail, fmt, fmt_ms,
                      fmt_ratio, geomean, json_line, keep_lower, kiln_bench, kiln_build, kiln_check, mib, pick, reason,
                      rel, run, say, shell_line, size_text)

sys.path.insert(0, os.path.join(ROOT, "examples", "common"))
from safetensors_io import save as st_save  # noqa: E402

GEMM_SHAPES = [(197, 768, 768), (197, 3072, 768), (197, 768, 3072), (128, 768, 768),
               (128, 3072, 768), (1024, 1024, 1024), (1, 768, 768), (1, 3072, 768)]


# gemm_peers --lib names of oneDNN (run on OpenMP: measured with OMP_WAIT_POLICY=PASSIVE too)
DNNL_LIBS = ("dnnl", "dnnl-u8s8s32", "dnnl-mm-int8", "dnnl-mm-bf16")

ALL_PARTS = ("gemm", "models", "compile", "attention", "decoders", "decode", "tokens")


def dot_peak(res, t, scheme, amx):
    """The measured peak (GOPS for int8, GFLOP/s for bf16) of t threads of the instruction kiln's
    int8 / bf16 kernel runs (AMX tdpbusd / tdpbf16ps, or AVX-512 vpdpbusd / vdpbf16ps), or None."""
    d = res.get("machine_meas", {}).get("dot", {}).get(t, {})
    key = ("amx_" if amx else "") + scheme + ("_peak_gops" if scheme == "int8" else "_peak_gflops")
    v = d.get(key)
    return v if isinstance(v, float) else None


def peak_gflops(res, t):
    """The fp32 FMA peak of t threads as bench/machine.c measured it in this run (t x one thread's
    rate over its own CPU time while t ran), or None. Never a number assumed from the CPU's name."""
    d = res.get("machine_meas", {}).get("fma", {}).get(t)
    return d.get("fma_peak_gflops") if d else None


# ---------------------------------------------------------------------------------------------
# machine


def sh_out(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def busy_processes():
    """Other processes using CPU right now (ps's %CPU is over the process lifetime)."""
    out = sh_out(["ps", "-eo", "pid,ppid,pcpu,etime,args", "--sort=-pcpu"])
    mine = {os.getpid(), os.getppid()}
    rows = []
    for line in out.splitlines()[1:]:
        f = line.split(None, 4)
        if len(f) < 5:
            continue
        pid, ppid, pcpu = int(f[0]), int(f[1]), float(f[2])
        if pid in mine or ppid in mine or pcpu < 20:
            continue
        rows.append(f"{f[4][:80]} ({pcpu:.0f}% CPU over its {f[3]} lifetime)")
    return rows[:4]


def load_snapshot():
    try:
        with open("/proc/loadavg") as f:
            la = " ".join(f.read().split()[:3])
    except OSError:
        la = "?"
    return {"loadavg": la, "busy": busy_processes(), "time": datetime.datetime.now().strftime("%H:%M:%S")}


def machine_info(kiln):
    lscpu = sh_out(["lscpu"])

    def field(name):
        m = re.search(r"^" + re.escape(name) + r":\s*(.+)$", lscpu, re.M)
        return m.group(1).strip() if m else "?"

    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    mhz = sorted(set(re.findall(r"cpu MHz\s*:\s*([\d.]+)", open("/proc/cpuinfo").read())))
    info = {
        "model": field("Model name"), "cpus": field("CPU(s)"), "cores_per_socket": field("Core(s) per socket"),
        "sockets": field("Socket(s)"), "threads_per_core": field("Thread(s) per core"),
        "l1d": field("L1d cache"), "l2": field("L2 cache"), "l3": field("L3 cache"),
        "hypervisor": field("Hypervisor vendor"), "family": field("CPU family"), "cpu_model": field("Model"),
        "mem_gib": mem_kb / 1024 / 1024, "kernel": platform.release(), "cpuinfo_mhz": ", ".join(mhz),
        "avx512": "avx512f" in lscpu,
        "gcc": sh_out(["gcc", "--version"]).splitlines()[0] if shutil.which("gcc") else "?",
        "node": sh_out(["node", "--version"]).strip(),
        "openblas_env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                         "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                         "KILN_THREADS", "DNNL_MAX_CPU_ISA")},
    }
    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(kiln)), "CMakeCache.txt")) as f:
            m = re.search(r"^CMAKE_BUILD_TYPE:STRING=(.*)$", f.read(), re.M)
            info["build_type"] = m.group(1) if m else "?"
    except OSError:
        info["build_type"] = "?"
    info["cpu"] = cpu.cpu_identity()
    info["git"] = sh_out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]).strip() or "?"
    dirty = sh_out(["git", "-C", ROOT, "status", "--porcelain"]).strip().splitlines()
    info["git_dirty"] = len(dirty)
    return info


def build_tools(res):
    """Compiles bench/gemm_peers.c and bench/machine.c into bench/out/."""
    SECTION[0] = "build the peers' programs"
    tools = {}
    for name, src, extra in (("gemm_peers", "gemm_peers.c", ["-ldnnl", "-lopenblas", "-fopenmp", "-lm"]),
                             ("machine", "machine.c", ["-fopenmp", "-lpthread"])):
        exe = os.path.join(OUT, name)
        rc, out, err, _ = run(["gcc", "-O2", "-o", exe, os.path.join(BENCH, src)] + extra)
        if rc:
            fail(f"building bench/{src}", reason(rc, out, err))
        else:
            tools[name] = exe
    res["tools"] = tools
    return tools


def parse_kv(text):
    d = {}
    for line in text.splitlines():
        f = line.split(None, 1)
        if len(f) == 2:
            try:
                d[f[0]] = float(f[1])
            except ValueError:
                d[f[0]] = f[1].strip()
    return d


def measure_machine(res, tools, threads):
    SECTION[0] = "machine: clock, FMA peak, memory bandwidth"
    m = {}
    if "machine" not in tools:
        res["machine_meas"] = m
        return m
    exe = tools["machine"]
    clocks = []
    for _ in range(3):
        rc, out, err, _ = run([exe, "clock"])
        if rc == 0:
            clocks.append(parse_kv(out).get("clock_ghz", 0.0))
    if clocks:
        m["clock_samples"] = clocks
        m["clock_ghz"] = max(clocks)
    else:
        fail("clock measurement", "machine clock failed")
    m["fma"] = {}
    for t in threads:
        rc, out, err, _ = run([exe, "fma", t])
        if rc == 0:
            kv = parse_kv(out)
            m["fma"][t] = kv
        else:
            fail(f"FMA microbenchmark {t} threads", reason(rc, out, err))
    # the dot-product peaks (int8 and bf16 on AVX-512 and on AMX tiles), measured as the FMA peak is
    m["dot"] = {}
    for t in threads:
        d = {}
        for what in ("int8", "bf16", "amx-int8", "amx-bf16"):
            rc, out, err, _ = run([exe, what, t])
            if rc == 0:
                d.update(parse_kv(out))
            else:
                fail(f"{what} peak microbenchmark {t} threads", reason(rc, out, err))
        m["dot"][t] = d
    m["stream"] = {}
    # memory: three arrays each at least as large as the L3 (so at most a third of the data can be
    # cached), 256 MiB at least; cache: three 4 MiB arrays (past the L2s of the cores here, inside L3)
    l3 = cpu.l3_mib(res["machine"].get("l3", ""))
    m["stream_mib"] = {"dram": max(256, int(l3 or 0)), "l3": 4}
    for t in threads:
        for label, size in m["stream_mib"].items():
            rc, out, err, _ = run([exe, "stream", t, size], env={"OMP_NUM_THREADS": t})
            if rc == 0:
                kv = parse_kv(out)
                m["stream"][f"{label}_{t}"] = {"copy": kv["copy_gbs"], "triad": kv["triad_gbs"], "mib": size}
            else:
                fail(f"stream {label} {t} threads", reason(rc, out, err))
    res["machine_meas"] = m
    return m


def peer_info(res, tools):
    SECTION[0] = "peer versions"
    info = {}
    if "gemm_peers" in tools:
        for lib in ("openblas", "dnnl"):
            rc, out, err, _ = run([tools["gemm_peers"], "--lib", lib, "--info"])
            info[lib] = out.strip() if rc == 0 else "failed: " + reason(rc, out, err)
        # Debian's OpenBLAS 0.3.21 does not know CPUs newer than it (Emerald Rapids, family 6 model 207,
        # is taken for a "Prescott", SSE3 only: 6 GFLOP/s) and so neither does PyTorch, which calls it.
        # Measure the peer at its best: tell it the newest AVX-512 core it has kernels for.
        flags = set(res["machine"]["cpu"]["flags"])
        if ("openblas corename: Prescott" in info.get("openblas", "") and "avx512f" in flags
                and not os.environ.get("OPENBLAS_CORETYPE")):
            core = "Cooperlake" if "avx512_bf16" in flags else "SkylakeX"
            os.environ["OPENBLAS_CORETYPE"] = core
            res["openblas_coretype"] = (core, "OpenBLAS took this AVX-512 CPU for a Prescott (SSE3)")
            COMMANDS.append((SECTION[0], f"export OPENBLAS_CORETYPE={core}  # OpenBLAS detected a Prescott"))
            rc, out, err, _ = run([tools["gemm_peers"], "--lib", "openblas", "--info"])
            info["openblas"] = out.strip() if rc == 0 else "failed: " + reason(rc, out, err)
    rc, out, err, _ = run(["node", "-e", "const o=require('./bench/node_modules/onnxruntime-node');"
                           "console.log(o.env.versions.common)"])
    info["ort"] = out.strip() if rc == 0 else "not loadable: " + reason(rc, out, err)
    rc, out, err, _ = run([PY, "-c", "import torch; print(torch.__version__)"])
    info["torch"] = out.strip() if rc == 0 else "not importable: " + reason(rc, out, err)
    res["peers"] = info
    return info


# ---------------------------------------------------------------------------------------------
# GEMM


def bench_gemm(res, kiln, tools, threads, quick):
    SECTION[0] = "GEMM"
    shapes = GEMM_SHAPES if not quick else [(197, 768, 768), (1, 768, 768)]
    min_time = 0.1 if quick else 0.5
    rng = np.random.default_rng(0)
    g = {"shapes": shapes, "kiln": {}, "openblas": {}, "dnnl": {}, "check": {},
         "dnnl-u8s8s32": {}, "dnnl-mm-int8": {}, "dnnl-mm-bf16": {}}
    progs = {}
    for (M, N, K) in shapes:
        d = os.path.join(OUT, "gemm", f"{M}x{N}x{K}")
        os.makedirs(d, exist_ok=True)
        model = os.path.join(d, "gemm.kiln")
        with open(model, "w") as f:
            f.write(f"# y[M, N] = x[M, K] @ w[K, N], written by bench/harness.py\nmodel gemm\n"
                    f'weights "gemm.safetensors"\nconst M = {M}, N = {N}, K = {K}\n'
                    f"input  x: f32[M, K]\noutput y: f32[M, N]\ny = x @ w.w\n")
        w = rng.standard_normal((K, N), dtype=np.float32)
        x = rng.standard_normal((M, K), dtype=np.float32)
        st_save(os.path.join(d, "gemm.safetensors"), {"w": w})
        np.save(os.path.join(d, "x.npy"), x)
        COMMANDS.append((SECTION[0], f"# harness.py wrote {rel(model)} (y = x @ w.w), {rel(d)}/gemm.safetensors "
                         f"(w: f32[{K}, {N}]) and {rel(d)}/x.npy (f32[{M}, {K}]): numpy default_rng(0) N(0, 1)"))
        exe = os.path.join(d, "gemm")
        info, why = kiln_build(kiln, model, exe)
        if not info:
            fail(f"kiln build of GEMM {M}x{N}x{K}", why)
            continue
        progs[(M, N, K)] = (exe, os.path.join(d, "x.npy"))
        # correctness: one plain run against numpy (in double)
        yp = os.path.join(d, "y.npy")
        rc, out, err, _ = run([exe, "--input", "x=" + os.path.join(d, "x.npy"), "--output", "y=" + yp])
        if rc == 0:
            ref = x.astype(np.float64) @ w.astype(np.float64)
            mag = np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64)
            g["check"][(M, N, K)] = float(np.max(np.abs(np.load(yp) - ref) / np.maximum(mag, 1e-30)))
    # int8 and bf16 (issue 15): the same model built with --quant int8 / bf16; --explain codegen says
    # whether its kernel is AMX's or AVX-512's
    qprogs = {}
    for scheme in ("int8", "bf16"):
        g["kiln_" + scheme] = {}
        for (M, N, K), (exe, xp) in list(progs.items()):
            d = os.path.dirname(exe)
            qexe = os.path.join(d, "gemm_" + scheme)
            model = os.path.join(d, "gemm.kiln")
            rc, out, err, _ = run([kiln, "build", model, "--quant", scheme, "--explain", "codegen", "-o", qexe])
            if rc:
                fail(f"kiln build --quant {scheme} of GEMM {M}x{N}x{K}", reason(rc, out, err))
                continue
            g.setdefault("amx", {})[scheme] = f"{scheme} GEMM (AMX" in err
            qprogs[(scheme, (M, N, K))] = (qexe, xp)

    def keep(lib, key, v):  # the better (lower-median) of the rounds
        if key not in g[lib] or v["median_ms"] < g[lib][key]["median_ms"]:
            g[lib][key] = v

    rounds = 1 if quick else 2
    g["rounds"] = rounds
    for rnd, t in [(rn, t) for rn in range(rounds) for t in threads]:
        say(f"GEMM at {t} thread(s), round {rnd + 1} of {rounds}")
        todo = [("kiln", s, p) for s, p in progs.items()] + [("kiln_" + sc, s, p) for (sc, s), p in qprogs.items()]
        for lib, (M, N, K), (exe, xp) in todo:
            probe, why = kiln_bench(exe, {"x": xp}, t, 3)
            if not probe:
                fail(f"{lib} GEMM {M}x{N}x{K} {t} threads", why)
                continue
            runs = int(min(1000, max(5, min_time * 1000 / max(probe["median_ms"], 1e-3))))
            r, why = kiln_bench(exe, {"x": xp}, t, runs)
            if r:
                keep(lib, ((M, N, K), t), r)
            else:
                fail(f"{lib} GEMM {M}x{N}x{K} {t} threads", why)
        if "gemm_peers" not in tools:
            continue
        args = [str(v) for s in shapes for v in s]
        # oneDNN runs on GNU OpenMP: at more than one thread, measured with its default wait policy
        # (spin, then sleep) and with OMP_WAIT_POLICY=PASSIVE, the better kept
        variants = [("openblas", {}), ("dnnl", {}), ("dnnl-u8s8s32", {}), ("dnnl-mm-int8", {}), ("dnnl-mm-bf16", {})]
        if t > 1:
            variants += [(lib, {"OMP_WAIT_POLICY": "PASSIVE"}) for lib in DNNL_LIBS]
        for lib, extra in variants:
            env = {"OPENBLAS_NUM_THREADS": t, "OMP_NUM_THREADS": t, **extra}
            rc, out, err, _ = run([tools["gemm_peers"], "--lib", lib, "--threads", t, "--min-time", min_time]
                                  + args, env=env)
            found = 0
            for line in out.splitlines():
                kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
                if line.startswith("gemm ") and kv:
                    key = ((int(kv["M"]), int(kv["N"]), int(kv["K"])), t)
                    keep(lib, key, {"runs": int(kv["runs"]), "min_ms": float(kv["min_ms"]),
                                    "median_ms": float(kv["median_ms"]), "maxrelerr": float(kv["maxrelerr"]),
                                    "passive": bool(extra), "impl": kv.get("impl")})
                    found += 1
            if rc or found < len(shapes):
                fail(f"{lib} GEMM at {t} threads" + (" (OMP_WAIT_POLICY=PASSIVE)" if extra else ""),
                     reason(rc, out, err))
    res["gemm"] = g
    return g


# ---------------------------------------------------------------------------------------------
# models


def model_specs(quick):
    big, small = (2, 5) if quick else (5, 20)
    specs = [
        dict(name="ViT-B/16", key="vit-b16", kind="vit", kiln="examples/vit/vit.kiln", defines=[],
             gen=[PY, "examples/vit/make_weights.py", "--preset", "vit-b16"], runs=big,
             what="224x224, 12 layers, D 768, random weights"),
        dict(name="ViT-Tiny", key="vit-tiny", kind="vit", kiln="examples/vit/vit.kiln",
             defines=["D=192", "H=3"], gen=[PY, "examples/vit/make_weights.py", "--preset", "vit-tiny"],
             runs=small, what="224x224, 12 layers, D 192, random weights"),
        dict(name="GPT-2 124M", key="gpt2-124m", kind="gpt2", kiln="examples/gpt2/gpt2.kiln", defines=[],
             gen=[PY, "examples/gpt2/make_weights.py", "--preset", "124m"], runs=big, T=128,
             what="prefill of 128 tokens, random weights"),
        dict(name="charlm", key="charlm", kind="charlm", kiln="examples/charlm/charlm.kiln", defines=[],
             weights="examples/charlm/charlm.safetensors", runs=small, T=256,
             what="trained character-level GPT, T = 256"),
        dict(name="vit-mnist", key="vit-mnist", kind="vit-mnist", kiln=None, defines=[], runs=small,
             what="trained MNIST ViT, batch 1"),
    ]
    # vit-mnist: whatever model file the example has, and the weights file it names
    cands = sorted(glob.glob(os.path.join(ROOT, "examples", "vit-mnist", "*.kiln")))
    if cands:
        specs[-1]["kiln"] = rel(cands[0])
    return specs


def weights_named_in(model_path):
    with open(model_path) as f:
        m = re.search(r'^\s*weights\s+"([^"]+)"', f.read(), re.M)
    return os.path.join(os.path.dirname(model_path), m.group(1)) if m else None


def make_input(spec, check, weights):
    """Writes the model's one input as .npy, following kiln's declaration. Returns (name, path)."""
    if len(check["inputs"]) != 1:
        raise RuntimeError(f"{len(check['inputs'])} inputs; the harness feeds models with one input")
    name, dtype, dims = check["inputs"][0]
    shape = []
    for d in dims:
        if d.isdigit():
            shape.append(int(d))
        elif d == "T" and "T" in spec:
            shape.append(spec["T"])
        elif d in ("B", "N", "BATCH"):
            shape.append(1)
        else:
            raise RuntimeError(f"input {name} has a symbolic size {d} the harness cannot choose")
    rng = np.random.default_rng(1)
    path = os.path.join(OUT, f"{spec['key']}.input.npy")
    ex = os.path.join(ROOT, "examples", spec["kind"], "ref")
    if dtype in ("i32", "i64"):
        V = None
        with open(weights, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            meta = json.loads(f.read(n)).get("__metadata__", {})
        try:
            V = json.loads(meta.get("config", "{}")).get("V")
        except ValueError:
            pass
        refs = sorted(glob.glob(os.path.join(ex, f"tokens_{shape[0]}.npy"))) if len(shape) == 1 else []
        if refs:
            a = np.load(refs[0]).reshape(shape)
        else:
            a = rng.integers(0, V or 2, size=shape)
        a = a.astype(np.int32 if dtype == "i32" else np.int64)
    else:
        a = rng.standard_normal(shape).astype(np.float32)
        if spec["kind"] == "vit-mnist":
            refs = glob.glob(os.path.join(ex, "images_*.npy"))
            if refs:
                a = np.load(refs[0])[:1].reshape(shape).astype(np.float32)
            else:
                a = rng.random(shape).astype(np.float32)
    np.save(path, a)
    COMMANDS.append((SECTION[0], f"# harness.py wrote {rel(path)}: {name} {a.dtype}{list(a.shape)}"))
    return name, path


QUANT_MODELS = list(onnx_quant.QUANT_KEYS)  # --quant-models


def bench_models(res, kiln, threads, quick, only_models=None):
    res["models"] = []
    for spec in model_specs(quick):
        if only_models and spec["key"] not in only_models:
            continue
        spec["rounds"] = 1 if quick else 2
        try:
            bench_model(res, kiln, threads, spec)
        except Exception as e:  # one model's trouble does not stop the others
            res["models"][-1]["status"] = f"the harness stopped on this model: {type(e).__name__}: {e}"
            fail(f"model {spec['name']}", res["models"][-1]["status"])
    return res["models"]


def bench_model(res, kiln, threads, spec):
    """Measures one model: weights, input, kiln build (timed), ONNX export, then each peer at each thread count."""
    SECTION[0] = f"model {spec['name']}"
    say(f"model {spec['name']}")
    r = {"spec": {k: v for k, v in spec.items() if k != "gen"}, "kiln": {}, "ort": {}, "torch": {},
         "diff": {}, "status": None}
    res["models"].append(r)
    if not spec["kiln"] or not os.path.exists(os.path.join(ROOT, spec["kiln"])):
        r["status"] = "not present in this checkout: " + (
            f"{spec['kiln']} is missing" if spec["kiln"] else f"no .kiln file in examples/{spec['kind']}/")
        say("  " + r["status"])
        return
    model = os.path.join(ROOT, spec["kiln"])
    # weights: generated into bench/out/ (reused when already there), or the example's own
    if "gen" in spec:
        weights = os.path.join(OUT, spec["key"] + ".safetensors")
        if not os.path.exists(weights):
            part = weights[:-len(".safetensors")] + ".partial.safetensors"  # no half-written file is reused
            rc, out, err, _ = run(spec["gen"] + ["--out", part], timeout=600)
            if rc:
                r["status"] = "weights generation failed: " + reason(rc, out, err)
                return
            os.replace(part, weights)
            COMMANDS.append((SECTION[0], f"mv {rel(part)} {rel(weights)}"))
        else:
            COMMANDS.append((SECTION[0], "# reused " + rel(weights) + " made earlier by: "
                             + shell_line(spec["gen"] + ["--out", weights], None)))
    else:
        weights = os.path.join(ROOT, spec["weights"]) if spec.get("weights") else weights_named_in(model)
    if not weights or not os.path.exists(weights):
        r["status"] = f"not present in this checkout: weights {rel(weights) if weights else '?'} missing"
        say("  " + r["status"])
        return
    r["weights"] = rel(weights)
    r["weights_path"] = weights
    check, why = kiln_check(kiln, model, weights, spec["defines"])
    if not check:
        r["status"] = "kiln check failed: " + why
        return
    try:
        in_name, in_path = make_input(spec, check, weights)
    except (RuntimeError, OSError, ValueError) as e:
        r["status"] = "cannot make the input: " + str(e)
        return
    r["input"] = (in_name, rel(in_path), list(np.load(in_path).shape), str(np.load(in_path).dtype))
    out_name = check["outputs"][0][0] if check["outputs"] else "output"
    # FLOPs at the benchmarked size (GPT-2's T bound is CTX, so count at CTX = T)
    if spec.get("T") and spec["kind"] == "gpt2":
        c2, _ = kiln_check(kiln, model, weights, spec["defines"] + [f"CTX={spec['T']}"])
        r["flop"] = c2.get("flop") if c2 else None
    elif check.get("flop") and spec["kind"] == "vit-mnist" and check.get("bounds", {}).get("B", 1) > 1:
        # counted at the batch bound; every op of this model is per image, so divide
        r["flop"] = check["flop"] / check["bounds"]["B"]
        r["flop_note"] = f"counted by `kiln check` at its bound B = {check['bounds']['B']} and divided by it"
    else:
        r["flop"] = check.get("flop")
    # compile (timed)
    exe = os.path.join(OUT, spec["key"])
    for stale in (exe, exe + ".weights"):
        if os.path.exists(stale):
            os.remove(stale)
    binfo, why = kiln_build(kiln, model, exe, weights, spec["defines"], timed=True)
    r["build"] = binfo
    if not binfo:
        r["build_error"] = why
        fail(f"kiln build {spec['name']}", why)
    else:
        binfo["exe_bytes"] = os.path.getsize(exe)
        binfo["exe_size"] = size_text(exe)
        if binfo["weights_file"]:
            binfo["weights_bytes"] = os.path.getsize(binfo["weights_file"])
    # ONNX export and PyTorch's own output (the reference for the output check)
    onnx = os.path.join(OUT, spec["key"] + ".onnx")
    ref = os.path.join(OUT, spec["key"] + ".torch.npy")
    for stale in (onnx, ref):
        if os.path.exists(stale):
            os.remove(stale)
    rc, out, err, secs = run([PY, os.path.join(BENCH, "torch_peer.py"), "export", spec["kind"], weights,
                              in_path, "--onnx", onnx, "--out", ref], env={"OMP_NUM_THREADS": 2,
                                                                          "OPENBLAS_NUM_THREADS": 2},
                             timeout=1200)
    r["export"] = {"ok": rc == 0, "seconds": secs, "onnx": onnx,
                   "bytes": os.path.getsize(onnx) if rc == 0 and os.path.exists(onnx) else None,
                   "why": None if rc == 0 else reason(rc, out, err)}
    if rc:
        fail(f"ONNX export {spec['name']}", r["export"]["why"])
    if r["export"]["ok"]:
        onnx_import.prepare(r, kiln, onnx, spec["key"])
        if spec["key"] in QUANT_MODELS:
            onnx_quant.prepare(r, kiln, onnx, spec, model, weights)
    runs = spec["runs"]
    # Every variant in turn (kiln, ONNX Runtime and its no-spin setting, kiln on the .onnx, the int8 rows,
    # PyTorch and its passive setting), at each thread count, round after round; each keeps the lower
    # median of its rounds, so that a noisy minute lands on every variant rather than on one peer.
    rounds = spec.get("rounds", 2)
    r["rounds"] = rounds
    tries = {}  # (peer, t, variant) -> the better of the rounds so far
    for rnd in range(rounds):
        for t in threads:
            say(f"  round {rnd + 1} of {rounds}, {t} thread(s)")
            model_round(res, r, spec, t, runs, exe, binfo, in_name, in_path, out_name, ref, tries)
    for t in threads:
        for peer in ("kiln", "ort", "torch"):
            if "error" in r[peer].get(t, {"error": "not run"}):
                fail(f"{peer} {spec['name']} {t} threads", r[peer].get(t, {}).get("error", "not run"))
    if binfo and shutil.which("perf"):
        r["profile"] = profile_kiln(exe, {in_name: in_path}, runs, binfo["weights_file"], spec["key"])
    r["status"] = "ok"


def model_round(res, r, spec, t, runs, exe, binfo, in_name, in_path, out_name, ref, tries):
    """One round of a model at t threads: each program once (`--bench runs`), the lower median of the
    rounds kept (benchlib.keep_lower); the peers' pool settings are variants, the faster kept (pick)."""
    # kiln
    if binfo:
        kout = os.path.join(OUT, f"{spec['key']}.kiln.{t}.npy")
        m, why = kiln_bench(exe, {in_name: in_path}, t, runs, weights=binfo["weights_file"], output=(out_name, kout))
        keep_lower(r["kiln"], t, m or {"error": why})
        if m:
            r["diff"][("kiln", t)] = compare(kout, ref)
    else:
        r["kiln"][t] = {"error": "kiln build failed: " + (r.get("build_error") or "?")}
    # ONNX Runtime; at more than one thread also without pool spinning, the better kept
    if r["export"]["ok"]:
        for flags in ([], ["--no-spin"]) if t > 1 else ([],):
            oout = os.path.join(OUT, f"{spec['key']}.ort.{t}{'.nospin' if flags else ''}.npy")
            rc, out, err, _ = run(["node", os.path.join(BENCH, "ort_peer.js"), r["export"]["onnx"], in_path,
                                   "--threads", t, "--runs", runs, "--out", oout] + flags,
                                  env={"OMP_NUM_THREADS": t, "OPENBLAS_NUM_THREADS": t})
            d = json_line(rc, out, err)
            d["variant"] = "no spin" if flags else "default"
            d["outfile"] = oout
            keep_lower(tries, ("ort", t, d["variant"]), d)
        r["ort"][t] = pick([v for k, v in tries.items() if k[:2] == ("ort", t)])
        if "error" not in r["ort"][t]:
            r["diff"][("ort", t)] = compare(r["ort"][t]["outfile"], ref)
    else:
        r["ort"][t] = {"error": "no ONNX model: export failed: " + (r["export"]["why"] or "?")}
    onnx_import.measure(r, t, runs, in_path, ref)
    onnx_quant.measure(r, t, runs, in_name, in_path, out_name, r.get("onnx_kiln", {}).get("output"), ref)
    # PyTorch eager; at more than one thread also with OMP_WAIT_POLICY=PASSIVE, the better kept
    for extra in ({}, {"OMP_WAIT_POLICY": "PASSIVE"}) if t > 1 else ({},):
        tout = os.path.join(OUT, f"{spec['key']}.torcheager.{t}.npy")
        rc, out, err, _ = run([PY, os.path.join(BENCH, "torch_peer.py"), "time", spec["kind"], r["weights_path"],
                               in_path, "--threads", t, "--runs", runs, "--out", tout],
                              env={"OMP_NUM_THREADS": t, "OPENBLAS_NUM_THREADS": t, **extra})
        d = json_line(rc, out, err)
        d["variant"] = "passive" if extra else "default"
        keep_lower(tries, ("torch", t, d["variant"]), d)
    r["torch"][t] = pick([v for k, v in tries.items() if k[:2] == ("torch", t)])
    if "blas" in r["torch"][t]:
        res.setdefault("torch_blas", r["torch"][t]["blas"])


# Where a kiln program spends its time: perf's samples by symbol, in groups named after the code
# generator's functions (codegen/: kiln_gemm_ukr* the micro-kernels, *gemm_tiles* the tile loops with
# the A packing and epilogue calls, node*_attention* the attention kernels, other node* functions the
# loops of elementwise ops, norms and data movement, kiln_*_run_raw the entry with the node functions
# LLVM inlined into it, libc's memmove/memcpy the reshape copies and the A micro-panel copies).
PROFILE_GROUPS = [
    ("GEMM micro-kernels", lambda s: s.startswith("kiln_gemm_ukr")),
    ("GEMM tile loops (A packing, epilogues)", lambda s: "gemm_tiles" in s or s.endswith("_epilogue")),
    ("attention", lambda s: "attention" in s),
    ("other kernels (elementwise, norms, movement)", lambda s: s.startswith("node")),
    ("entry (small kernels inlined)", lambda s: s.endswith("_run_raw")),
    ("libc copies (memmove, memcpy)", lambda s: "memmove" in s or "memcpy" in s),
    ("runtime pool", lambda s: s.startswith("rt_") or s.startswith("pool_") or "worker" in s),
]


def profile_kiln(exe, inputs, runs, weights, key):
    """perf record of the program's --bench at 1 thread; percentages by group, and the top symbols."""
    data = os.path.join(OUT, key + ".perf.data")
    cmd = ["perf", "record", "-q", "-o", data, exe]
    if weights:
        cmd += ["--weights", weights]
    for k, v in inputs.items():
        cmd += ["--input", f"{k}={v}"]
    cmd += ["--bench", runs, "--threads", 1]
    rc, out, err, _ = run(cmd, timeout=1800)
    if rc:
        return {"error": reason(rc, out, err)}
    rc, out, err, _ = run(["perf", "report", "-i", data, "--stdio", "--sort", "symbol"], timeout=600)
    if rc:
        return {"error": reason(rc, out, err)}
    syms = []
    for ln in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(\S+)", ln)
        if m:
            syms.append((float(m.group(1)), m.group(3), m.group(2)))
    groups = {name: 0.0 for name, _ in PROFILE_GROUPS}
    groups["other (kernel, libc, ...)"] = 0.0
    for pct, sym, kind in syms:
        for name, test in PROFILE_GROUPS:
            if kind == "." and test(sym):
                groups[name] += pct
                break
        else:
            groups["other (kernel, libc, ...)"] += pct
    return {"groups": groups, "top": sorted(syms, reverse=True)[:6]}


# ---------------------------------------------------------------------------------------------
# report


def headline(res, w):
    """A few lines at the top: the ratios that sum the run up."""
    lines = []
    g = res.get("gemm")
    if g:
        for t in res["threads"]:
            parts = []
            for lib, label in (("openblas", "OpenBLAS"), ("dnnl", "oneDNN")):
                rs = [g[lib][(s, t)]["median_ms"] / g["kiln"][(s, t)]["median_ms"]
                      for s in g["shapes"] if (s, t) in g[lib] and (s, t) in g["kiln"]]
                gm = geomean(rs)
                if gm:
                    parts.append(f"{gm:.2f}x {label} (range {min(rs):.2f}-{max(rs):.2f})")
            gf = [2.0 * s[0] * s[1] * s[2] / (g["kiln"][(s, t)]["median_ms"] * 1e6)
                  for s in g["shapes"] if (s, t) in g["kiln"]]
            if parts and gf:
                lines.append(f"GEMM, {t} thread{'s' if t > 1 else ''}: kiln {min(gf):.0f}-{max(gf):.0f} GFLOP/s; "
                             f"speed relative to the peers, geometric mean over the {len(gf)} shapes: "
                             + ", ".join(parts))
    for r in res.get("models") or []:
        if r["status"] != "ok":
            continue
        parts = []
        for t in res["threads"]:
            k = r["kiln"].get(t, {}).get("median_ms")
            o = r["ort"].get(t, {}).get("median_ms")
            p = r["torch"].get(t, {}).get("median_ms")
            if k:
                parts.append(f"{t} thread{'s' if t > 1 else ''}: kiln {fmt_ms(k)} ms, {fmt_ratio(o, k)} ONNX Runtime, "
                             f"{fmt_ratio(p, k)} PyTorch")
        if parts:
            lines.append(f"{r['spec']['name']}: " + "; ".join(parts))
    if res.get("attention"):
        ln = attention.headline(res["attention"], res["threads"])
        if ln:
            lines.append(ln)
    lines += decoders.headline(res.get("decoders"), res["threads"])
    lines += decode.headline(res.get("decode"), res["threads"])
    lines += tokens.headline(res.get("tokens"), res["threads"])
    mm = res.get("machine_meas", {})
    fma = mm.get("fma", {})
    share = None
    if fma and max(res["threads"]) in fma and mm.get("fma_end"):
        core = max(max(d.get("fma512_core_gflops", 0), d.get("fma256_core_gflops", 0)) for d in fma.values())
        nt = max(res["threads"])
        sh = [max(d.get("fma512_gflops", 0), d.get("fma256_gflops", 0)) / (core * nt) for d in (fma[nt], mm["fma_end"])]
        share = f"{100 * min(sh):.0f}-{100 * max(sh):.0f}%"
    if lines:
        w("## Headline")
        w("")
        w(f"{res['machine']['cpu']['label']}, {res['machine']['cpus']} cores, {res['date']}"
          + (f"; other processes left this run {share} of the {max(res['threads'])} "
             f"core{'s' if max(res['threads']) > 1 else ''} it used (see below), so the "
             "multi-thread figures above all are perturbed" if share else "")
          + ". Ratios are kiln's speed relative to the peer (peer time ÷ kiln time; above 1 = kiln faster).")
        w("")
        for ln in lines:
            w("- " + ln)
        w("")


def profile_report(res, w):
    prof = [r for r in res.get("models") or [] if r["status"] == "ok" and r.get("profile", {}).get("groups")]
    if not prof:
        return
    w("## Where kiln's time goes")
    w("")
    w("`perf record` of each model's program running `--bench` at 1 thread, `perf report --sort symbol`, "
      "the samples grouped by the generated functions' names (see PROFILE_GROUPS in bench/harness.py). "
      "Per cent of the samples.")
    w("")
    names = list(prof[0]["profile"]["groups"])
    w("| model | " + " | ".join(names) + " |")
    w("|---|" + "---|" * len(names))
    for r in prof:
        g = r["profile"]["groups"]
        w(f"| {r['spec']['name']} | " + " | ".join(f"{g[n]:.1f}" for n in names) + " |")
    w("")
    for r in prof:
        top = ", ".join(f"{sym} {pct:.1f}%" for pct, sym, _ in r["profile"]["top"])
        w(f"- {r['spec']['name']}, largest symbols: {top}")
    w("")


def targets11_report(res, w):
    """Issue 11's targets (fp32 at the peak on whichever CPU), each from this run's figures."""
    rows = []
    g = res.get("gemm")
    st = res.get("machine_meas", {}).get("stream", {})
    if g:
        for t in res["threads"]:
            big = [s for s in g["shapes"] if s[0] >= 128 and (s, t) in g["kiln"] and (s, t) in g["dnnl"]]
            if big:
                worst = min(big, key=lambda s: g["dnnl"][(s, t)]["median_ms"] / g["kiln"][(s, t)]["median_ms"])
                r = g["dnnl"][(worst, t)]["median_ms"] / g["kiln"][(worst, t)]["median_ms"]
                rows.append((f"GEMM >= 1.0x oneDNN on every M >= 128 shape, {t} thread{'s' if t > 1 else ''}",
                             r >= 1.0, f"lowest {r:.2f}x at {', '.join(map(str, worst))}"))
            for s in [s for s in g["shapes"] if s[0] == 1 and (s, t) in g["kiln"]]:
                gbs = 4.0 * s[1] * s[2] / (g["kiln"][(s, t)]["median_ms"] * 1e6)
                # the timed loop reuses the weights: they live in the L3 when they fit in it
                l3 = cpu.l3_mib(res["machine"].get("l3", ""))
                where = "l3" if l3 and 4.0 * s[1] * s[2] < l3 * 2 ** 20 else "dram"
                bw = (st.get(f"{where}_{t}") or {}).get("triad")
                if bw:
                    label = "L3" if where == "l3" else "memory"
                    rows.append((f"GEMM {', '.join(map(str, s))}, {t} thread{'s' if t > 1 else ''}: >= 85% of the "
                                 f"bandwidth of where the weights live ({label})", gbs >= 0.85 * bw,
                                 f"{gbs:.1f} GB/s = {100 * gbs / bw:.0f}% of the {label} triad {bw:.1f} GB/s"))
    for r in res.get("models") or []:
        if r["status"] != "ok" or r["spec"]["name"] not in ("ViT-B/16", "GPT-2 124M"):
            continue
        name = r["spec"]["name"]
        for t in res["threads"]:
            k = r["kiln"].get(t, {}).get("median_ms")
            o = r["ort"].get(t, {}).get("median_ms")
            if k and o:
                rows.append((f"{name}, {t} thread{'s' if t > 1 else ''}: >= 1.1x ONNX Runtime's speed", o / k >= 1.1,
                             f"{o / k:.2f}x"))
            pk = peak_gflops(res, t)
            if k and pk and r.get("flop"):
                gf = r["flop"] / (k * 1e6)
                rows.append((f"{name}, {t} thread{'s' if t > 1 else ''}: >= 85% of the measured FMA peak",
                             gf >= 0.85 * pk, f"{gf:.0f} GFLOP/s = {100 * gf / pk:.0f}% of {pk:.0f}"))
        if name == "ViT-B/16":
            k1 = r["kiln"].get(1, {}).get("median_ms")
            k2 = r["kiln"].get(2, {}).get("median_ms")
            if k1 and k2:
                rows.append(("ViT-B/16: 2 threads >= 1.8x 1 thread", k1 / k2 >= 1.8, f"{k1 / k2:.2f}x"))
    if not rows:
        return
    w("## Targets (issue 11), from this run")
    w("")
    w("| target | met | figure |")
    w("|---|---|---|")
    for what, ok, fig in rows:
        w(f"| {what} | {'yes' if ok else '**no**'} | {fig} |")
    w("")


def targets_report(res, w):
    """Issue #5's targets, each from this run's figures: met or missed, and by how much."""
    rows = []
    g = res.get("gemm")
    if g:
        for t in res["threads"]:
            big = [s for s in g["shapes"] if s[0] >= 128 and (s, t) in g["kiln"] and (s, t) in g["dnnl"]]
            if big:
                worst = min(big, key=lambda s: g["dnnl"][(s, t)]["median_ms"] / g["kiln"][(s, t)]["median_ms"])
                r = g["dnnl"][(worst, t)]["median_ms"] / g["kiln"][(worst, t)]["median_ms"]
                rows.append((f"GEMM at least 90% of oneDNN on every M >= 128 shape, {t} thread{'s' if t > 1 else ''}",
                             r >= 0.9, f"lowest {100 * r:.0f}% at {', '.join(map(str, worst))}"))
    mm = res.get("machine_meas", {})
    for r in res.get("models") or []:
        if r["status"] != "ok" or r["spec"]["name"] not in ("ViT-B/16", "GPT-2 124M"):
            continue
        name = r["spec"]["name"]
        for t in res["threads"]:
            k = r["kiln"].get(t, {}).get("median_ms")
            o = r["ort"].get(t, {}).get("median_ms")
            p = r["torch"].get(t, {}).get("median_ms")
            if k and o:
                rows.append((f"{name}, {t} thread{'s' if t > 1 else ''}: no slower than ONNX Runtime", k <= o,
                             f"kiln {fmt_ms(k)} ms, ONNX Runtime {fmt_ms(o)} ms: kiln takes {k / o:.2f}x its time"))
            if k and p:
                rows.append((f"{name}, {t} thread{'s' if t > 1 else ''}: at most 0.7x PyTorch's latency", k <= 0.7 * p,
                             f"kiln takes {k / p:.2f}x PyTorch's time"))
        if name == "ViT-B/16":
            k1 = r["kiln"].get(1, {}).get("median_ms")
            k2 = r["kiln"].get(2, {}).get("median_ms")
            if k1 and k2:
                rows.append(("ViT-B/16: 2 threads at least 1.7x faster than 1", k1 / k2 >= 1.7,
                             f"{k1 / k2:.2f}x"))
            b = r.get("build")
            if b:
                secs = b.get("wall_s", b.get("seconds"))
                rows.append(("ViT-B/16 compiles in under 10 s", secs < 10, f"{secs:.2f} s wall"))
    if not rows:
        return
    w("## Targets (issue #5), from this run")
    w("")
    w("| target | met | figure |")
    w("|---|---|---|")
    for what, ok, fig in rows:
        w(f"| {what} | {'yes' if ok else '**no**'} | {fig} |")
    w("")
    w("The M = 1 target (85% of the memory bandwidth) is read from the GEMM section's weights-streamed "
      "table: the timed loop keeps those weights in L3, so they are compared with the L3-resident STREAM "
      "figures there. Where a target is missed, the profile above shows where the time went.")
    w("")


def core_share(res):
    """The smaller of the start and end shares of the cores this run got (wall-time FMA rate on the most
    threads ÷ that many x one core's rate), or None."""
    mm = res.get("machine_meas", {})
    fma = mm.get("fma", {})
    nt = max(res["threads"])
    if nt not in fma:
        return None
    core = max(max(d.get("fma512_core_gflops", 0), d.get("fma256_core_gflops", 0)) for d in fma.values())
    shares = [max(d.get("fma512_gflops", 0), d.get("fma256_gflops", 0)) / (core * nt)
              for d in (fma[nt], mm.get("fma_end")) if d and core]
    return min(shares) if shares else None


def intro_lines():
    """The top of docs/PERF.md, above the sections of the CPUs measured."""
    return ["# kiln performance", "",
            "Each section below comes from one run of `sh bench/run.sh` on the CPU it names, which installs "
            "the peers if they are missing (Debian's `libdnnl-dev` and `libopenblas-dev`, npm's "
            "`onnxruntime-node` into `bench/node_modules/` and `node-llama-cpp` into `bench/llamacpp/`), builds "
            "kiln into `build-bench/`, runs the benchmarks side by side and rewrites that CPU's section of this "
            "file. Generated weights, ONNX and GGUF files and programs go to `bench/out/` (not committed). "
            "Options after `run.sh` go to `bench/harness.py`: `--only gemm,models,compile,attention,decoders,decode,tokens` "
            "(see bench/README.md), `--threads 1,2`, `--quick` (a smoke test of the harness, not numbers to "
            "publish), `--fresh`. Benchmarks are not tests: nothing here is part of ctest, and nothing passes "
            "or fails on a number.", "",
            "Every '% of peak' divides by the fp32 FMA rate that `bench/machine.c` measured on the same machine "
            "in the same run, at the same thread count, and every GB/s is compared with the bandwidth it "
            "measured: nothing is assumed from the CPU's name.", "",
            "Ratios are always **kiln's speed relative to the peer = peer time ÷ kiln time**, from median times "
            "measured in the same run: above 1 kiln is faster, below 1 kiln is slower."]


def rounds_text(models):
    n = sorted({m.get("rounds", 1) for m in models if m.get("status") == "ok"})
    return " or ".join(str(x) for x in n) or "1"


def write_report(res, path):
    L = []
    w = L.append
    mi, mm = res["machine"], res.get("machine_meas", {})
    clock = mm.get("clock_ghz")
    threads = res["threads"]
    intro = intro_lines()
    w("This section comes from one run of")
    w("")
    w("```sh")
    w(res.get("command", "sh bench/run.sh"))
    w("```")
    w("")
    if res.get("only_note"):
        w(res["only_note"])
        w("")
    sh = core_share(res)
    if sh is not None and sh < 0.5:
        w(f"**The machine was loaded: other processes left this run about {100 * sh:.0f}% of the cores it used "
          "(Machine, below). Every wall-time figure here, the 2-thread ones above all, is far from what this CPU "
          "does when idle, and so are the ratios between peers that suffered differently. Do not quote them; rerun "
          "on a quiet machine.**")
        w("")
    if res.get("quick"):
        w("**This report is from a `--quick` run: few repetitions, two GEMM shapes, attention at two "
          "sequence lengths, decoders without the TinyLlama-sized model. Do not quote it.**")
        w("")
    headline(res, w)
    w("## This run")
    w("")
    w(f"- date: {res['date']}; total time of `sh bench/run.sh`: {res.get('total_min', '?')} (harness "
      f"{res['elapsed_s'] / 60:.1f} min"
      + "".join(f"; {p} {sec / 60:.1f} min" for p, sec in res.get("part_s", {}).items()) + ")")
    w(f"- kiln: commit {mi['git']}" + (f" with {mi['git_dirty']} uncommitted changes in the work tree "
                                         "(other engineers work in this checkout)" if mi["git_dirty"] else "")
      + (f"; `{rel(res['kiln'])}` built by `cmake -S . -B build-bench -G Ninja && cmake --build build-bench` "
         "(through `scripts/setup.sh`"
         if os.path.abspath(res["kiln"]) == os.path.join(ROOT, "build-bench", "kiln") else
         f"; `{rel(res['kiln'])}` (given with --kiln; bench/run.sh did not build it")
      + f"; build type {mi.get('build_type', '?')}); models built with `kiln build` at "
      "its default -O2 for the host CPU")
    w(f"- machine: {mi['cpu']['label']}, {mi['cpus']} CPUs "
      f"({mi['sockets']} socket x {mi['cores_per_socket']} cores, {mi['threads_per_core']} thread per core), "
      f"{mi['mem_gib']:.1f} GiB memory, caches L1d {mi['l1d']}, L2 {mi['l2']}, L3 {mi['l3']}; "
      f"virtual machine ({mi['hypervisor']}), Linux {mi['kernel']}")
    w(f"- compilers: {mi['gcc']} (the peers' C programs, `-O2`); node {mi['node']}")
    load = res["load"]
    busy = [b for s in load for b in s["busy"]]
    w(f"- load average (1, 5, 15 min) at start {load[0]['loadavg']}, at end {load[-1]['loadavg']}"
      + ("" if not busy else "; other processes busy on this 2-core machine during the run: "
         + "; ".join(sorted(set(busy)))
         + ". **Numbers, the 2-thread ones above all, are perturbed by them.**"))
    env = mi["openblas_env"]
    w("- environment: " + ", ".join(f"{k}={'unset' if v is None else v}" for k, v in env.items())
      + (f". {res['openblas_coretype'][1]}, so the harness set OPENBLAS_CORETYPE={res['openblas_coretype'][0]} for "
         "every process it started (OpenBLAS and PyTorch); it sets no OPENBLAS_L2_SIZE"
         if res.get("openblas_coretype") else
         ". The harness sets none of OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
      + "; it sets OPENBLAS_NUM_THREADS and "
      "OMP_NUM_THREADS to the thread count for every peer process, and passes `--threads T` to kiln's programs.")
    peers = res.get("peers", {})
    w("- peers:")
    for lib, label in (("openblas", "OpenBLAS"), ("dnnl", "oneDNN")):
        if lib in peers:
            w(f"  - {label} (Debian package, linked by `bench/gemm_peers.c`): "
              + "; ".join(peers[lib].splitlines()))
    w(f"  - ONNX Runtime (npm `onnxruntime-node`, CPU execution provider, graph optimisation 'all', "
      f"intraOpNumThreads T, interOpNumThreads 1, sequential): {peers.get('ort', '?')}")
    w(f"  - PyTorch (Debian `python3-torch`, eager, `torch.no_grad()`, float32, `torch.set_num_threads(T)`): "
      f"{peers.get('torch', '?')}; its matmuls go through the system `libblas.so.3`, which here is "
      f"{res.get('torch_blas', 'not measured')}")
    w("")

    # machine measurements
    w("## Machine")
    w("")
    if clock:
        w(f"- core clock: **{clock:.2f} GHz**, measured by `bench/machine.c clock` (chains of 5 M dependent "
          f"register-register integer adds, one cycle each, timed by the thread's CPU time so that time spent descheduled does not "
          f"count; best of 3 x 300; samples {', '.join(f'{c:.2f}' for c in mm['clock_samples'])} GHz). /proc/cpuinfo says {mi['cpuinfo_mhz']} MHz, the TSC rate of the virtual machine, not the "
          "core clock.")
    fma = mm.get("fma", {})
    if fma:
        core = max([max(d.get("fma512_core_gflops", 0), d.get("fma256_core_gflops", 0)) for d in fma.values()])
        w("- **fp32 FMA peak**, measured by `bench/machine.c fma T` (each of T threads runs 12 independent "
          "chains of 512-bit and of 256-bit vfmadd; best of 5; the peak of T threads is T x the best rate "
          "one thread reached over its own CPU time while all T ran, at the faster vector width) and used for "
          "every '% peak' on this page: "
          + "; ".join(f"**{d['fma_peak_gflops']:.1f} GFLOP/s on {t} thread{'s' if t > 1 else ''}** "
                      f"({d.get('fma_peak_isa', '?')}"
                      + (f", {d['fma_peak_core_gflops'] / clock:.1f} FLOP/cycle per core at the measured clock"
                         if clock else "") + ")"
                      for t, d in fma.items() if d.get("fma_peak_gflops")) + ".")
        w("- FMA rates by wall time, all threads together (what the run could get of the cores): "
          + "; ".join(f"{t} thread{'s' if t > 1 else ''} {max(d.get('fma512_gflops', 0), d.get('fma256_gflops', 0)):.1f} "
                      f"GFLOP/s" for t, d in fma.items()) + ".")
        shares = []
        for label, d in [("start", fma.get(max(threads)))] + [("end", mm.get("fma_end"))]:
            if d and core:
                wall = max(d.get("fma512_gflops", 0), d.get("fma256_gflops", 0))
                shares.append(f"{100 * wall / (core * max(threads)):.0f}% at the {label}")
        if shares:
            w(f"- share of the {max(threads)} cores this run could get (wall-time FMA rate on {max(threads)} "
              f"threads ÷ {max(threads)} x one core's rate): " + ", ".join(shares)
              + ". Below 100% other processes were using the cores, and every wall-time figure on this page "
                "is slower than on a quiet machine by about that much.")
    st = mm.get("stream", {})
    if st:
        w("- memory bandwidth, `bench/machine.c stream` (STREAM-like, double arrays, best of the trials; "
          "copy counts 16 bytes per element, triad 24):")
        w("")
        w("| arrays | threads | copy GB/s | triad GB/s |")
        w("|---|---|---|---|")
        for t in threads:
            sizes = mm.get("stream_mib", {"dram": 256, "l3": 4})
            for label, desc in (("dram", f"3 x {sizes['dram']} MiB (memory; L3 is {mi['l3']})"),
                                ("l3", f"3 x {sizes['l3']} MiB (cache-resident: past the L2, inside the L3)")):
                s = st.get(f"{label}_{t}")
                if s:
                    w(f"| {desc} | {t} | {s['copy']:.1f} | {s['triad']:.1f} |")
    w("")

    # GEMM
    g = res.get("gemm")
    if g:
        w("## GEMM")
        w("")
        w("C[M, N] = A[M, K] @ B[K, N], fp32, row-major. kiln: the model file `y = x @ w.w` "
          "(bench/out/gemm/MxNxK/gemm.kiln, random weights in a safetensors file written with numpy), "
          "`kiln build`, timed by the program's own `--bench N` (one warm-up run, N chosen so the runs "
          "take about half a second). OpenBLAS `cblas_sgemm` and oneDNN `dnnl_sgemm`: `bench/gemm_peers.c`, two "
          "warm-up calls, then timed calls (clock_gettime) for half a second, at least 5. GFLOP/s = 2MNK / "
          "median time" + (f"; every case was measured in {g['rounds']} rounds (all shapes and thread counts, then again) "
          "and the round with the lower median is kept, which filters out some of the other processes' noise"
          if g.get("rounds", 1) > 1 else "") + ". oneDNN runs on GNU OpenMP: at more than one thread it was measured both with OpenMP's default wait "
          "policy and with OMP_WAIT_POLICY=PASSIVE, and the faster is kept, marked (P) when it is PASSIVE. "
          "kiln's `--bench` prints milliseconds with three decimals, so its M = 1 times (tens of µs) carry up to "
          "±0.5 µs of rounding (a few per cent). "
          "% peak = GFLOP/s ÷ the FMA peak measured at that thread count (Machine, above). In every case the "
          f"weights stay in memory between runs, so they are in cache where they fit (the L3 here is {mi['l3']}).")
        w("")
        if g["check"]:
            w("kiln's output was checked once per shape against numpy in double: largest error relative to "
              "Σ|a·b| " + f"{max(g['check'].values()):.1e}; the peers' sampled check: OpenBLAS "
              + f"{max([v['maxrelerr'] for v in g['openblas'].values()] or [float('nan')]):.1e}, oneDNN "
              + f"{max([v['maxrelerr'] for v in g['dnnl'].values()] or [float('nan')]):.1e}.")
            w("")
        for t in threads:
            w(f"### {t} thread{'s' if t > 1 else ''}")
            w("")
            w("| M, N, K | kiln median ms | kiln GFLOP/s | kiln % peak | OpenBLAS GFLOP/s | % peak | "
              "oneDNN GFLOP/s | % peak | kiln vs OpenBLAS | kiln vs oneDNN |")
            w("|---|---|---|---|---|---|---|---|---|---|")
            for s in g["shapes"]:
                M, N, K = s
                flop = 2.0 * M * N * K
                peak = peak_gflops(res, t)
                cells = [f"{M}, {N}, {K}"]
                times = {}
                for lib in ("kiln", "openblas", "dnnl"):
                    v = g[lib].get((s, t))
                    times[lib] = v["median_ms"] if v else None
                k = times["kiln"]
                cells.append(fmt_ms(k) if k else "failed")
                for lib in ("kiln", "openblas", "dnnl"):
                    tm = times[lib]
                    gf = flop / (tm * 1e6) if tm else None
                    passive = (g[lib].get((s, t)) or {}).get("passive")
                    cells.append((fmt(gf) + (" (P)" if passive else "")) if gf else "failed")
                    cells.append(f"{100 * gf / peak:.0f}%" if gf and peak else "n/a")
                cells.append(fmt_ratio(times["openblas"], k))
                cells.append(fmt_ratio(times["dnnl"], k))
                w("| " + " | ".join(cells) + " |")
            w("")
        # int8 and bf16
        if g.get("kiln_int8") or g.get("kiln_bf16"):
            amx = g.get("amx", {})
            w("### int8 and bf16")
            w("")
            w("The same models built with `kiln build --quant int8` (i8 weights per output channel, each row of "
              "x quantized at run time, exact i32 sums, then the rescale) and `--quant bf16` (bf16 weights, x "
              "rounded to bf16, f32 sums): codegen/qgemm.c's kernel, here "
              + ", ".join(f"{sc}: {'AMX tiles' if amx.get(sc) else 'AVX-512'}" for sc in ("int8", "bf16") if sc in amx)
              + " (what `--explain codegen` said). kiln's times include reading x in f32 and quantizing or "
              "rounding it; the peers' do not: `bench/gemm_peers.c` hands oneDNN A already in u8 (bf16). "
              "Peers: oneDNN `dnnl_gemm_u8s8s32` (u8 x s8 -> s32) and its matmul primitive (u8 x s8 -> s32, "
              "bf16 x bf16 -> f32; B reordered once, untimed, into the layout it asks for), implementation "
              + ", ".join(sorted({v['impl'] for lib in ('dnnl-mm-int8', 'dnnl-mm-bf16') for v in g[lib].values()
                                  if v.get('impl')})) + ". GOPS = 2MNK / median time; % peak: of the "
              "peak of the instruction measured by bench/machine.c at that thread count (AMX tdpbusd / "
              "tdpbf16ps, or AVX-512 vpdpbusd / vdpbf16ps, as the kernel uses; oneDNN's matmul against AMX's "
              "when its implementation says amx, dnnl_gemm_u8s8s32 against vpdpbusd's).")
            w("")
            for t in threads:
                w(f"#### {t} thread{'s' if t > 1 else ''}")
                w("")
                w("| M, N, K | kiln int8 ms | GOPS | % peak | u8s8s32 GOPS | % peak | oneDNN matmul int8 GOPS | % peak "
                  "| kiln vs matmul int8 | kiln bf16 ms | GFLOP/s | % peak | oneDNN matmul bf16 GFLOP/s | % peak "
                  "| kiln vs matmul bf16 |")
                w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
                for s in g["shapes"]:
                    M, N, K = s
                    flop = 2.0 * M * N * K
                    cells = [f"{M}, {N}, {K}"]

                    def rate(lib):
                        v = g.get(lib, {}).get((s, t))
                        return (v["median_ms"], flop / (v["median_ms"] * 1e6), v) if v else (None, None, None)

                    for sc, peers in (("int8", ("dnnl-u8s8s32", "dnnl-mm-int8")), ("bf16", ("dnnl-mm-bf16",))):
                        ms, gf, _ = rate("kiln_" + sc)
                        pk = dot_peak(res, t, sc, amx.get(sc))
                        cells += [fmt_ms(ms) if ms else "failed", fmt(gf) if gf else "failed",
                                  f"{100 * gf / pk:.0f}%" if gf and pk else "n/a"]
                        for lib in peers:
                            pms, pgf, v = rate(lib)
                            pk = dot_peak(res, t, sc, "amx" in ((v or {}).get("impl") or ""))
                            cells += [(fmt(pgf) + (" (P)" if v.get("passive") else "")) if pgf else "failed",
                                      f"{100 * pgf / pk:.0f}%" if pgf and pk else "n/a"]
                        pms, _, _ = rate(peers[-1])
                        cells.append(fmt_ratio(pms, ms))
                    w("| " + " | ".join(cells) + " |")
                w("")
            pk = [(t, {k: v for k, v in res.get("machine_meas", {}).get("dot", {}).get(t, {}).items()
                       if isinstance(v, float)}) for t in threads]
            w("Peaks measured (bench/machine.c: `machine int8|bf16|amx-int8|amx-bf16 T`): " + "; ".join(
                f"{t} thread{'s' if t > 1 else ''}: vpdpbusd {fmt(d.get('int8_peak_gops'))} GOPS, vdpbf16ps "
                f"{fmt(d.get('bf16_peak_gflops'))} GFLOP/s, tdpbusd {fmt(d.get('amx_int8_peak_gops'))} GOPS, tdpbf16ps "
                f"{fmt(d.get('amx_bf16_peak_gflops'))} GFLOP/s" for t, d in pk) + ".")
            w("")

        # M = 1: weights streamed
        ones = [s for s in g["shapes"] if s[0] == 1]
        if ones:
            w("### M = 1: weights streamed")
            w("")
            w("GB/s = K·N·4 bytes of weights ÷ median time (the activations are negligible). The timed loop "
              "runs the same product again and again, so the weights (2.25 MiB and 9 MiB) come from the "
              "L3 cache, not from memory: compare with the L3-resident copy/triad figures, and with memory's "
              "for what a model whose weights do not fit would get.")
            w("")
            w("| M, N, K | threads | weights | kiln GB/s | OpenBLAS GB/s | oneDNN GB/s | STREAM triad, L3-resident "
              "| STREAM triad, memory |")
            w("|---|---|---|---|---|---|---|---|")
            for t in threads:
                for s in ones:
                    M, N, K = s
                    byts = 4.0 * N * K
                    cells = [f"{M}, {N}, {K}", str(t), mib(byts)]
                    for lib in ("kiln", "openblas", "dnnl"):
                        v = g[lib].get((s, t))
                        cells.append(fmt(byts / (v["median_ms"] * 1e6)) if v else "failed")
                    for label in ("l3", "dram"):
                        sv = st.get(f"{label}_{t}")
                        cells.append(f"{sv['triad']:.1f}" if sv else "n/a")
                    w("| " + " | ".join(cells) + " |")
            w("")

    # models
    models = res.get("models")
    if models:
        w("## Whole models")
        w("")
        w("fp32, batch 1. kiln: `kiln build` then the program's `--bench N` (one warm-up run, N timed). "
          "ONNX Runtime: `node bench/ort_peer.js` on the ONNX file that `torch.onnx.export` (opset 14) wrote "
          "from the PyTorch module below, with the same weights. PyTorch: `bench/torch_peer.py time`, eager. "
          "Both peers: one warm-up run, then N timed runs. "
          + (f"Every program of a model (kiln, ONNX Runtime, PyTorch, kiln on the .onnx file and the int8 rows "
             f"below, each peer with each of its pool settings) was run in {rounds_text(models)} rounds that take "
             "every variant in turn at each thread count, and each keeps the lower median of its rounds, so that a "
             "noisy minute on this shared host lands on every variant rather than on one peer; `bench/out/"
             "results.json` lists every round's median (round_medians). "
             if max((m.get("rounds", 1) for m in models), default=1) > 1 else
             "Each program ran once, one after the other (one round: a noisy minute lands on one peer only). ")
          + "The PyTorch modules are the examples' own model.py: "
          "for `examples/vit` and `examples/gpt2`, whose `forward()` works in float64 on a dict it converts on "
          "every call, `bench/torch_models.py` runs the same body in float32 with model.py's own functions "
          "and the weights converted once; `examples/charlm` and `examples/vit-mnist` are their nn.Modules "
          "run through `forward_ref`, the plain formulation (their `forward` writes every product as a conv1d, "
          "a workaround for Debian's reference BLAS that also exported an ONNX graph of per-head Conv products; "
          "runs before 2026-12-02 17:00 measured that). At more than one thread each peer was also measured with its thread pool told not to "
          "spin (ONNX Runtime: session config `session.intra_op.allow_spinning=0`, 'no spin'; PyTorch: "
          "`OMP_WAIT_POLICY=PASSIVE`, 'passive'), because spinning pools collapse when other processes hold "
          "the cores, as they did during this run; the table keeps the faster and shows the other in brackets. "
          "kiln has no such setting (its pool spins and yields the CPU every 64 steps). PyTorch's matmuls go "
          "to OpenBLAS's own pthread pool (OPENBLAS_NUM_THREADS = T), the rest to its OpenMP pool. "
          "'kiln % peak' is kiln's GFLOP/s ÷ the FMA peak measured at that thread count. "
          "'output vs PyTorch' is max |y − y_torch| ÷ max |y_torch| on the benchmark input, "
          "a check that all three compute the same thing.")
        w("")
        w("| model | threads | runs | kiln median ms | ONNX Runtime median ms | PyTorch median ms | "
          "kiln vs ONNX Runtime | kiln vs PyTorch | kiln GFLOP/s | kiln % peak | output vs PyTorch (kiln / ORT) |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        notes = []
        for r in models:
            sp = r["spec"]
            name = f"{sp['name']}"
            if r["status"] != "ok":
                w(f"| {name} | | | {r['status']} | | | | | | | |")
                continue
            for t in threads:
                k, o, p = r["kiln"].get(t, {}), r["ort"].get(t, {}), r["torch"].get(t, {})

                def cell(d, who):
                    if not d:
                        return "not run"
                    if "error" in d:
                        notes.append(f"{sp['name']}, {who}, {t} thread(s): {d['error']}")
                        return f"failed (note {len(notes)})"
                    txt = fmt_ms(d["median_ms"])
                    others = {v: x for v, x in (d.get("others") or {}).items()}
                    if d.get("variant", "default") != "default" or others:
                        alt = "; ".join(f"{v}: {fmt_ms(x) if isinstance(x, (int, float)) else 'failed'}"
                                        for v, x in others.items())
                        txt += f" ({d.get('variant', 'default')}" + (f"; {alt}" if alt else "") + ")"
                    return txt

                km = k.get("median_ms")
                gf = r["flop"] / (km * 1e6) if km and r.get("flop") else None
                gfs = fmt(gf) if gf else "n/a"
                pk = peak_gflops(res, t)
                pct = f"{100 * gf / pk:.0f}%" if gf and pk else "n/a"

                def dfmt(v):
                    return "n/a" if v is None else (v if isinstance(v, str) else f"{v:.1e}")

                diff = f"{dfmt(r['diff'].get(('kiln', t)))} / {dfmt(r['diff'].get(('ort', t)))}"
                w(f"| {name} | {t} | {sp['runs']} | {cell(k, 'kiln')} | {cell(o, 'ONNX Runtime')} | "
                  f"{cell(p, 'PyTorch')} | {fmt_ratio(o.get('median_ms'), km)} | {fmt_ratio(p.get('median_ms'), km)} | "
                  f"{gfs} | {pct} | {diff} |")
        w("")
        for i, n in enumerate(notes, 1):
            w(f"{i}. {n}")
        if notes:
            w("")
        w("Inputs: " + "; ".join(f"{r['spec']['name']}: {r['input'][0]} {r['input'][3]}{r['input'][2]} "
                                  f"(`{r['input'][1]}`)" for r in models if r.get("input")) + ". "
          "Images are N(0, 1) noise (MNIST: a test image when the example ships one); tokens are the "
          "example's reference tokens when it has them, else uniform over the vocabulary.")
        w("")
        onnx_import.report(res, w)
        onnx_quant.report(res, w)

    # compile
    if models:
        w("## Compile time, compiler memory and sizes")
        w("")
        w("`/usr/bin/time -v kiln build MODEL -o OUT` (wall time, maximum resident set size). Executables "
          "embed their weights when these are at most 256 MiB; larger weights go to `OUT.weights`, mapped at "
          "start. `text` is from `size`.")
        w("")
        w("| model | GFLOP per run | compile wall s | compile user s | peak compiler RSS | executable | "
          "its text | weights file | ONNX file (export s) |")
        w("|---|---|---|---|---|---|---|---|---|")
        for r in models:
            sp = r["spec"]
            if r["status"] != "ok":
                w(f"| {sp['name']} | {r['status']} | | | | | | | |")
                continue
            b = r.get("build")
            ex = r.get("export", {})
            onnx = f"{mib(ex['bytes'])} ({ex['seconds']:.0f} s)" if ex.get("bytes") else f"failed: {ex.get('why')}"
            gfl = f"{r['flop'] / 1e9:.2f}" if r.get("flop") else "n/a"
            if not b:
                w(f"| {sp['name']} | {gfl} | failed: {r.get('build_error')} | | | | | | {onnx} |")
                continue
            w(f"| {sp['name']} | {gfl} | {b.get('wall_s', b['seconds']):.2f} | {b.get('user_s', 0):.2f} | "
              f"{mib(b['maxrss_kb'] * 1024) if b.get('maxrss_kb') else 'n/a'} | {mib(b['exe_bytes'])} | "
              f"{mib(b['exe_size'][0]) if b.get('exe_size') else 'n/a'} | "
              f"{mib(b['weights_bytes']) if b.get('weights_bytes') else 'embedded'} | {onnx} |")
        w("")
        gp = [r for r in models if r["status"] == "ok" and r["spec"]["kind"] == "gpt2"]
        w("GFLOP per run are `kiln check`'s count (a multiply-add is 2 FLOP, an elementwise op 1 per element), "
          "also used for kiln's GFLOP/s above."
          + (" GPT-2's are counted by `kiln check -D CTX=128` (its T bound is CTX; the benchmark runs T = 128)."
             if gp else "")
          + "".join(f" {r['spec']['name']}'s are {r['flop_note']}." for r in models if r.get("flop_note")))
        w("")
    rt = res.get("runtime_size")
    if rt:
        w(f"Runtime: `{rel(rt['path'])}` text {rt['text']} bytes ({mib(rt['text'])}), data {rt['data']}, "
          f"bss {rt['bss']}, summed over its {rt['members']} objects (`size`).")
        w("")

    profile_report(res, w)
    targets11_report(res, w)
    targets_report(res, w)
    attention.report(res, w)
    decoders.report(res, w)
    decode.report(res, w)
    tokens.report(res, w)

    if FAILURES:
        w("## What failed in this run")
        w("")
        for what, why in FAILURES:
            w(f"- {what}: {why}")
        w("")

    w("## Commands")
    w("")
    w("Every command the harness ran, in order, from the repository's root (environment variables "
      "it set are written before the command).")
    w("")
    w("<details><summary>show the commands</summary>")
    w("")
    last = None
    for sec, line in COMMANDS:
        if sec != last:
            if last is not None:
                w("```")
                w("")
            w(f"{sec}:")
            w("")
            w("```sh")
            last = sec
        w(line)
    if last is not None:
        w("```")
    w("")
    w("</details>")
    w("")
    c = mi["cpu"]
    title = f"{c['name']}: {c['vendor']} family {c['family']} model {c['model']}, {c['uarch']}, {res['date'][:10]}"
    cpu.merge_report(path, intro, c["key"], title, L)


# ---------------------------------------------------------------------------------------------


def plain(v):
    """res with every dict key a string, for JSON."""
    if isinstance(v, dict):
        return {(k if isinstance(k, str) else str(k)): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kiln", default=os.path.join(ROOT, "build-bench", "kiln"))
    ap.add_argument("--only", default=",".join(ALL_PARTS))
    ap.add_argument("--models", help="comma-separated model keys (vit-b16,vit-tiny,gpt2-124m,charlm,vit-mnist)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--quant-models", default=",".join(onnx_quant.QUANT_KEYS),
                    help="models of the models section that also get the int8 rows (bench/onnx_quant.py)")
    ap.add_argument("--attention-T", help="comma-separated T for the attention section "
                    "(default 128,512,1024,4096,8192; with --quick 128,512)")
    ap.add_argument("--decoder-models", help="comma-separated models of the decoders section "
                    "(llama-tiny,llamachar,llama-gpt2size,tinyllama; default all four)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--report", default=os.path.join(ROOT, "docs", "PERF.md"))
    ap.add_argument("--started", type=float, help="when run.sh started (seconds since the epoch), for the total time")
    a = ap.parse_args()
    QUANT_MODELS[:] = a.quant_models.split(",") if a.quant_models else []
    t_start = time.time()
    only = set(a.only.split(","))
    unknown = only - set(ALL_PARTS)
    if unknown:
        sys.exit(f"harness: --only {a.only}: unknown part(s) {', '.join(sorted(unknown))}; "
                 f"the parts are {', '.join(ALL_PARTS)}")
    threads = [int(t) for t in a.threads.split(",")]
    if a.fresh and os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT, exist_ok=True)
    kiln = os.path.abspath(a.kiln)
    if not os.access(kiln, os.X_OK):
        sys.exit(f"harness: no kiln at {kiln}: build it first (sh bench/run.sh does)")

    res = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), "threads": threads,
           "quick": a.quick, "kiln": kiln, "load": [load_snapshot()]}
    args, skip = [], False
    for x in sys.argv[1:]:  # the command as typed, without what run.sh adds
        if skip:
            skip = False
        elif x in ("--started", "--kiln", "--report"):
            skip = True
        elif not x.startswith(("--started=", "--kiln=", "--report=")):
            args.append(x)
    if kiln == os.path.join(ROOT, "build-bench", "kiln"):
        res["command"] = " ".join(["sh bench/run.sh"] + args)
    else:  # run by hand on a kiln built elsewhere
        res["command"] = " ".join(["/usr/bin/python3 bench/harness.py --kiln", rel(kiln)] + args)
    if os.sched_getscheduler(0) == os.SCHED_FIFO:  # run under chrt -f: say so, it is part of the method
        res["command"] = f"chrt -f {os.sched_getparam(0).sched_priority} " + res["command"]
    if only != set(ALL_PARTS):
        res["only_note"] = ("This run measured only " + ", ".join(p for p in ALL_PARTS if p in only)
                            + " (besides the machine); the sections of the other parts are absent, not failed.")
    res["machine"] = machine_info(res["kiln"])
    say(f"machine: {res['machine']['model']}, {res['machine']['cpus']} CPUs; load {res['load'][0]['loadavg']}")
    tools = build_tools(res)
    peer_info(res, tools)
    say("measuring clock, FMA peak and memory bandwidth")
    measure_machine(res, tools, threads)
    parts = [("gemm", lambda: bench_gemm(res, kiln, tools, threads, a.quick)),
             ("models", lambda: bench_models(res, kiln, threads, a.quick, a.models.split(",") if a.models else None)),
             ("attention", lambda: attention.bench(res, kiln, threads, a.quick, [int(T) for T in a.attention_T.split(",")]
                                                   if a.attention_T else None)),
             ("decoders", lambda: decoders.bench(res, kiln, threads, a.quick, a.decoder_models.split(",")
                                                 if a.decoder_models else (["llama-tiny", "llama-gpt2size"]
                                                                           if a.quick else None))),
             ("decode", lambda: decode.bench(res, kiln, threads, a.quick)),
             ("tokens", lambda: tokens.bench(res, kiln, threads, a.quick))]
    res["part_s"] = {}
    for part, go in parts:
        if part not in only and not (part == "models" and "compile" in only):
            continue
        t0 = time.time()
        try:
            go()
        except Exception as e:  # report what was measured, and this
            fail(f"the {part} benchmarks stopped", f"{type(e).__name__}: {e}")
        res["part_s"][part] = time.time() - t0
        say(f"{part}: done in {res['part_s'][part] / 60:.1f} min")
    rt = os.path.join(os.path.dirname(kiln), "libkiln_rt.a")
    if os.path.exists(rt):
        SECTION[0] = "runtime size"
        COMMANDS.append((SECTION[0], "size " + rel(rt)))
        s = size_text(rt)
        members = len([ln for ln in sh_out(["ar", "t", rt]).splitlines() if ln.strip()])
        if s:
            res["runtime_size"] = {"path": rt, "text": s[0], "data": s[1], "bss": s[2], "members": members}
    if "machine" in tools:  # the share of the cores the run could get, at its end
        SECTION[0] = "machine: CPU share at the end"
        rc, out, err, _ = run([tools["machine"], "fma", max(threads)])
        if rc == 0:
            res["machine_meas"]["fma_end"] = parse_kv(out)
    res["load"].append(load_snapshot())
    res["elapsed_s"] = time.time() - t_start
    res["total_min"] = f"{(time.time() - (a.started or t_start)) / 60:.1f} min"
    write_report(res, a.report)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(plain(res), f, indent=1, default=str)
    say(f"wrote {rel(a.report)} in {res['elapsed_s'] / 60:.1f} min"
        + (f"; {len(FAILURES)} measurement(s) failed (see the report)" if FAILURES else ""))


if __name__ == "__main__":
    main()
