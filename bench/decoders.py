"""The decoders section of kiln's benchmark (issue 18): Llama-architecture decoders, kiln against
llama.cpp, prefill and decode, kiln fp32 / w8 / w4 / bf16 and llama.cpp's F32 / Q8_0 / Q4_0 / F16, the
agreement of the logits, and the held-out loss of the trained model in each precision.

Models (random weights written by examples/llama/make_weights.py, the safetensors kiln compiles;
bench/gguf_write.py turns each into GGUF files for llama.cpp):
  llama-gpt2size  a Llama-form model of GPT-2-small's size: V 50257, D 768, 12 layers, 12 heads (no
                  grouping), F 2048 (the gated MLP's 8D/3, so about GPT-2 small's parameter count)
  tinyllama       TinyLlama-1.1B's shape: V 32000, D 2048, 22 layers, 32 query / 4 key-value heads, F 5632
  llama-tiny      examples/llama/llama-tiny.safetensors (V 128, D 64): only the agreement check (its
                  F = 172 is not a multiple of 32, so it has no Q8_0/Q4_0 files, and CTX = 64)
  llamachar       examples/llamachar (trained on tinyshakespeare, V 65, D 192, CTX 256): the agreement
                  check and the held-out loss (nats/char) of kiln fp32 / w8 / w4 / bf16 and llama.cpp
                  F32 / Q8_0 / Q4_0 / F16 on the same token ids: kiln's program `--eval` and
                  `llama_peer --eval --window 256`, both in non-overlapping windows of 256 characters

llama.cpp: the prebuilt CPU libraries of npm's node-llama-cpp (bench/llamacpp/package.json pins the
version; `npm install --ignore-scripts` there), its C API driven by bench/llama_peer.c, compiled against
the headers of the llama.cpp source the package bundles (a git bundle, unpacked into bench/out/). Weights
read into memory, not mapped; one context per run, threads for both batch and single-token work.

kiln: examples/llama/llama.kiln built for each size, fp32 weights: the program (for the logits check)
and, with `--kv-cache full --emit lib`, a library timed by bench/kiln_decode.c (bench/decode.py builds
both): prefill N is the prefill entry on N tokens into an empty cache; decode after N is one decode step
with N tokens cached (reset and prefill before each timed step), and then STEPS steps in a row (what
generation does, and what llama.cpp's steps are: back to back). kiln's prefill computes the logits of
every position, llama.cpp's of the last only (what generation asks for). The same with choose-quant's
weight-only schemes (`--quant w8`, `--quant w4`) and bf16 (`--quant bf16`), against llama.cpp's Q8_0,
Q4_0 and F16 files (SCHEME_PEER).

GB/s of a decode step = the bytes of the weights one step reads (every tensor but the token embedding,
of which it reads one row: from the GGUF file's header for llama.cpp and kiln fp32; for kiln's
quantized builds the weights blob it wrote minus the fp32 embedding table, which only the gather
reads) / the step's time, against the memory bandwidth bench/machine.c measured.
"""
import glob
import json
import os
import re
import shutil
import struct

import numpy as np

import cpu
import decode
import gguf_write
from benchlib import (BENCH, COMMANDS, OUT, PY, ROOT, SECTION, fail, fmt, fmt_ms, fmt_ratio, kiln_bench,
                      kiln_build, mib, rel, run, say)

LLAMACPP = os.path.join(BENCH, "llamacpp")
LIBDIR_GLOB = "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
BUNDLE = "node_modules/node-llama-cpp/llama/gitRelease.bundle"

MODELS = {
    "llama-gpt2size": dict(name="Llama-form, GPT-2-small size", args=["--V", "50257", "--D", "768", "--H", "12",
                                                                       "--KVH", "12", "--F", "2048", "--L", "12",
                                                                       "--CTX", "2048"],
                           types=("f32", "f16", "q8_0", "q4_0"), kiln_quant=("w8", "w4", "bf16")),
    # fewer repetitions: a prefill of 512 tokens takes llama.cpp seconds per run here, kiln's full pass over
    # 1025 tokens about 15 s
    "tinyllama": dict(name="TinyLlama-1.1B shape", args=["--preset", "tinyllama"], types=("f32", "f16", "q8_0", "q4_0"),
                      counts=(3, 8, 3, 2)),
    "llama-tiny": dict(name="examples/llama tiny", weights="examples/llama/llama-tiny.safetensors", types=("f32",),
                       agreement_only=True),
    "llamachar": dict(name="examples/llamachar (trained)", weights="examples/llamachar/llamachar.safetensors",
                      types=("f32", "f16", "q8_0", "q4_0"), agreement_only=True, heldout=("fp32", "w8", "w4", "bf16")),
}
DEFAULT = ("llama-tiny", "llamachar", "llama-gpt2size", "tinyllama")
PREFILL = (128, 512)
DECODE = (128, 1024)
STEPS = 16  # kiln's decode steps in a row after each 'decode after N' measurement
AGREE_T = 64  # tokens of the logits check (llama-tiny's CTX is 64)
SCHEME_PEER = {"fp32": "f32", "w8": "q8_0", "w4": "q4_0", "bf16": "f16"}  # kiln's scheme: llama.cpp's type
DATA = os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare.txt")


def setup_llamacpp():
    """Builds bench/llama_peer.c against the npm package's libraries; returns (exe, libdir, version) or
    (None, why, None)."""
    libdir = os.path.join(LLAMACPP, LIBDIR_GLOB)
    bundle = os.path.join(LLAMACPP, BUNDLE)
    libs = {p: glob.glob(os.path.join(libdir, p)) for p in ("libllama.v*.so", "libggml.v*.so", "libggml-base.so")}
    if not all(libs.values()) or not os.path.exists(bundle):
        return None, (f"llama.cpp's libraries or source bundle are missing under {rel(LLAMACPP)}/node_modules "
                      "(bench/run.sh installs them: npm install --ignore-scripts in bench/llamacpp)"), None
    try:
        with open(os.path.join(LLAMACPP, "node_modules/node-llama-cpp/package.json")) as f:
            version = "node-llama-cpp " + json.load(f)["version"]
        with open(os.path.join(LLAMACPP, "node_modules/node-llama-cpp/llama/llama.cpp.info.json")) as f:
            info = json.load(f)
            version += f", llama.cpp {info.get('llamaCppGithubRepo', '?')} release {info.get('tag', '?')}"
    except (OSError, ValueError, KeyError):
        version = "?"
    src = os.path.join(OUT, "llamacpp-src")
    if not os.path.exists(os.path.join(src, "include", "llama.h")):
        shutil.rmtree(src, ignore_errors=True)
        os.makedirs(src)
        for cmd in (["git", "init", "-q", src], ["git", "-C", src, "fetch", "-q", bundle, "HEAD"]):
            rc, out, err, _ = run(cmd)
            if rc:
                return None, "unpacking llama.cpp's source bundle: " + (err.strip() or out.strip()), None
        rc, out, err, _ = run(["sh", "-c", f"git -C {src} archive FETCH_HEAD include ggml/include | tar x -C {src}"])
        if rc:
            return None, "extracting llama.cpp's headers: " + err.strip(), None
    exe = os.path.join(OUT, "llama_peer")
    rc, out, err, _ = run(["gcc", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror",
                           "-I", os.path.join(src, "include"), "-I", os.path.join(src, "ggml", "include"),
                           "-o", exe, os.path.join(BENCH, "llama_peer.c"), "-L", libdir]
                          + ["-l:" + os.path.basename(libs[p][0]) for p in libs] + ["-lm", f"-Wl,-rpath,{libdir}"])
    if rc:
        return None, "building bench/llama_peer.c: " + (err.strip().splitlines() or ["?"])[-1], None
    return exe, libdir, version


def weights_for(key, spec):
    if spec.get("weights"):
        return os.path.join(ROOT, spec["weights"])
    path = os.path.join(OUT, key + ".safetensors")
    if not os.path.exists(path):
        part = os.path.join(OUT, key + ".partial.safetensors")
        rc, out, err, _ = run([PY, "examples/llama/make_weights.py"] + spec["args"] + ["--out", part], timeout=1800)
        if rc:
            raise RuntimeError("make_weights.py failed: " + (err.strip().splitlines() or ["?"])[-1])
        os.replace(part, path)
    else:
        COMMANDS.append((SECTION[0], f"# reused {rel(path)} made earlier by: /usr/bin/python3 "
                         f"examples/llama/make_weights.py {' '.join(spec['args'])} --out {rel(path)}"))
    return path


def gguf_for(weights, key, typ):
    path = os.path.join(OUT, f"{key}.{typ}.gguf")
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(weights):
        rc, out, err, _ = run([PY, os.path.join(BENCH, "gguf_write.py"), weights, path, "--type", typ], timeout=3600)
        if rc:
            raise RuntimeError("gguf_write.py failed: " + (err.strip().splitlines() or ["?"])[-1])
    else:
        COMMANDS.append((SECTION[0], f"# reused {rel(path)} made earlier by: /usr/bin/python3 bench/gguf_write.py "
                         f"{rel(weights)} {rel(path)} --type {typ}"))
    return path


def gguf_step_bytes(path):
    """Bytes of the tensors a decode step reads: all but token_embd (one row of it), from the header."""
    with open(path, "rb") as f:
        def u(fmt_):
            return struct.unpack("<" + fmt_, f.read(struct.calcsize("<" + fmt_)))

        def s():
            (n,) = u("Q")
            return f.read(n).decode()

        def skip(vt):
            sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
            if vt == 8:
                s()
            elif vt == 9:
                et, n = u("IQ")
                if et == 8:
                    for _ in range(n):
                        s()
                else:
                    f.seek(sizes[et] * n, 1)
            else:
                f.seek(sizes[vt], 1)

        assert f.read(4) == b"GGUF"
        _, nt, nkv = u("IQQ")
        for _ in range(nkv):
            s()
            skip(u("I")[0])
        total = 0
        for _ in range(nt):
            name = s()
            (nd,) = u("I")
            dims = u(f"{nd}Q")
            (t,) = u("I")
            u("Q")
            if name != "token_embd.weight":
                total += gguf_write.nbytes(list(reversed(dims)), t)
    return total


def embedding_bytes(weights):
    """(bytes of the token embedding table, bytes of one row) of a Llama safetensors file."""
    header, _, _ = gguf_write.st_open(weights)
    info = header["model.embed_tokens.weight"]
    n = info["data_offsets"][1] - info["data_offsets"][0]
    return n, n // info["shape"][0]


def heldout_files(vocab):
    """The held-out text of tinyshakespeare (the last 10%, as examples/charlm/eval takes it) and its token
    ids (the index of each character in the model's vocabulary) as raw int32: (text path, ids path)."""
    with open(DATA, "rb") as f:
        data = f.read()
    held = data[len(data) * 9 // 10:]
    txt = os.path.join(OUT, "decoders", "heldout.txt")
    ids = os.path.join(OUT, "decoders", "heldout.i32")
    with open(txt, "wb") as f:
        f.write(held)
    index = {ord(c): i for i, c in enumerate(vocab)}
    np.array([index[b] for b in held], dtype="<i4").tofile(ids)
    return txt, ids


def heldout(m, key, spec, kiln, exe, libdir, weights, ggufs, cfg, threads):
    """The held-out loss of kiln's builds (fp32 and each scheme of spec['heldout']) and of llama.cpp's
    files, on the same text: m['heldout'][label] = {'nats': x, 'predicted': n}."""
    _, meta, _ = gguf_write.st_open(weights)
    txt, ids = heldout_files(meta["vocab"])
    m["heldout"] = {}
    for scheme in spec["heldout"]:
        say(f"decoders: {spec['name']}: held-out loss, kiln {scheme}")
        prog = os.path.join(OUT, "decoders", f"{key}-{scheme}")
        binfo, why = kiln_build(kiln, os.path.join(ROOT, "examples/llama/llama.kiln"), prog, weights,
                                defines_of(cfg, cfg["CTX"]),
                                extra=["--kv-cache", "full"] + (["--quant", scheme] if scheme != "fp32" else []))
        if not binfo:
            fail(f"kiln build {spec['name']} {scheme}", why)
            continue
        rc, out, err, _ = run([prog, "--eval", txt, "--threads", threads], timeout=3600)
        nats = re.search(r"^([\d.]+) nats/char", out, re.M)
        pred = re.search(r"\((\d+) predicted\)", out)
        if rc or not nats or not pred:
            fail(f"kiln --eval {spec['name']} {scheme}", (err.strip().splitlines() or ["?"])[-1])
            continue
        m["heldout"][f"kiln {scheme}"] = {"nats": float(nats.group(1)), "predicted": int(pred.group(1))}
    for scheme in spec["heldout"]:
        typ = SCHEME_PEER[scheme]
        if not exe or typ not in ggufs:
            continue
        say(f"decoders: {spec['name']}: held-out loss, llama.cpp {typ.upper()}")
        rc, out, err, _ = run([exe, "--lib", libdir, "--model", ggufs[typ], "--threads", threads, "--eval", ids,
                               "--window", cfg["CTX"]], timeout=3600)
        rows = [r for r in llama_json(out) if r.get("what") == "eval"]
        if rc or not rows:
            fail(f"llama.cpp --eval {spec['name']} {typ}", (err.strip().splitlines() or ["?"])[-1])
            continue
        m["heldout"][f"llama.cpp {typ.upper()}"] = {"nats": rows[0]["nats_per_token"], "predicted": rows[0]["predicted"]}


def llama_json(out):
    rows = []
    for line in out.splitlines():
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows


def cfg_of(weights):
    header, meta, _ = gguf_write.st_open(weights)
    return json.loads(meta["config"])


def defines_of(cfg, ctx):
    return [f"{k}={cfg[k]}" for k in ("V", "D", "H", "KVH", "F", "L")] + [f"CTX={ctx}"]


def tokens_file(V, T, seed):
    path = os.path.join(OUT, "decoders", f"tokens_V{V}_T{T}_s{seed}.npy")
    if not os.path.exists(path):
        np.save(path, np.random.default_rng(seed).integers(3, V, T).astype(np.int32))
    return path


def compare(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return {"rel": float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)),
            "top1": float(np.mean(a.argmax(-1) == b.argmax(-1)))}


def bench(res, kiln, threads, quick, only_models=None):
    SECTION[0] = "decoders"
    d = {"models": {}, "threads": threads}
    res["decoders"] = d
    os.makedirs(os.path.join(OUT, "decoders"), exist_ok=True)
    say("decoders: building the llama.cpp runner")
    exe, libdir, version = setup_llamacpp()
    if not exe:
        fail("llama.cpp peer", libdir)
    d["llamacpp"] = version
    counts = (2, 4, 1, 1) if quick else (5, 16, 5, 3)
    d["settings"] = dict(zip(("llama_runs", "llama_steps", "kiln_runs_prefill", "kiln_runs_decode"), counts))
    keys = only_models or list(DEFAULT)
    for key in keys:
        if key not in MODELS:
            fail(f"decoders: model {key}", f"unknown; the models are {', '.join(MODELS)}")
            continue
        spec = MODELS[key]
        SECTION[0] = f"decoders: {spec['name']}"
        runs, steps, kruns_prefill, kruns_decode = counts if quick else spec.get("counts", counts)
        m = {"name": spec["name"], "llama": {}, "kiln": {}, "agree": {}, "bytes": {},
             "counts": dict(zip(("llama_runs", "llama_steps", "kiln_runs_prefill", "kiln_runs_decode"),
                                (runs, steps, kruns_prefill, kruns_decode)))}
        d["models"][key] = m
        try:
            say(f"decoders: {spec['name']}: weights")
            weights = weights_for(key, spec)
            cfg = cfg_of(weights)
            m["cfg"] = cfg
            m["weights"] = rel(weights)
            ggufs = {}
            for typ in spec["types"]:
                say(f"decoders: {spec['name']}: GGUF {typ}")
                ggufs[typ] = gguf_for(weights, key, typ)
                m["bytes"][typ] = {"file": os.path.getsize(ggufs[typ]), "step": gguf_step_bytes(ggufs[typ])}
            # kiln build (T up to 1025 for decode after 1024; the tiny model's CTX bounds it)
            ctx = cfg["CTX"] if spec.get("agreement_only") else max(cfg["CTX"], max(DECODE) + 1, max(PREFILL))
            kexe = os.path.join(OUT, "decoders", key)
            say(f"decoders: {spec['name']}: kiln build")
            binfo, why = kiln_build(kiln, os.path.join(ROOT, "examples/llama/llama.kiln"), kexe, weights,
                                    defines_of(cfg, ctx))
            if not binfo:
                fail(f"kiln build {spec['name']}", why)
            m["kiln_build"] = binfo
            drv = None
            if not spec.get("agreement_only"):
                say(f"decoders: {spec['name']}: kiln build --kv-cache full --emit lib")
                drv, dweights, why = decode.kiln_driver(kiln, os.path.join(ROOT, "examples/llama/llama.kiln"),
                                                        "llama", weights, os.path.join(OUT, "decoders"),
                                                        defines_of(cfg, ctx))
                if not drv:
                    fail(f"kiln --kv-cache full {spec['name']}", why)
            qdrv = {}
            emb, row = embedding_bytes(weights)
            for scheme in spec.get("kiln_quant", ()):
                say(f"decoders: {spec['name']}: kiln build --kv-cache full --quant {scheme} --emit lib")
                qd, qw, why = decode.kiln_driver(kiln, os.path.join(ROOT, "examples/llama/llama.kiln"), "llama",
                                                 weights, os.path.join(OUT, "decoders", f"{key}-{scheme}"),
                                                 defines_of(cfg, ctx),
                                                 extra=["--quant", scheme, "--weights-mode", "external"])
                if not qd:
                    fail(f"kiln --kv-cache full --quant {scheme} {spec['name']}", why)
                    continue
                qdrv[scheme] = (qd, qw)
                m["bytes"][scheme] = {"file": os.path.getsize(qw), "step": os.path.getsize(qw) - emb + row}
            # agreement on the fp32 file: llama.cpp, kiln, PyTorch on the same tokens
            T = min(AGREE_T, cfg["CTX"])
            tok = tokens_file(cfg["V"], T, 1)
            tok_i32 = tok[:-4] + ".i32"
            np.load(tok).astype("<i4").tofile(tok_i32)
            outs = {}
            say(f"decoders: {spec['name']}: logits of {T} tokens (llama.cpp, kiln, PyTorch)")
            if exe:
                lo = os.path.join(OUT, "decoders", f"{key}.llama.f32.logits")
                rc, out, err, _ = run([exe, "--lib", libdir, "--model", ggufs["f32"], "--threads", max(threads),
                                       "--logits", tok_i32, "--logits-out", lo], timeout=3600)
                if rc == 0:
                    outs["llama.cpp"] = np.fromfile(lo, dtype="<f4").reshape(T, cfg["V"])
                else:
                    fail(f"llama.cpp logits {spec['name']}", (err.strip().splitlines() or ["?"])[-1])
            if binfo:
                ko = os.path.join(OUT, "decoders", f"{key}.kiln.logits.npy")
                r, why = kiln_bench(kexe, {"tokens": tok}, max(threads), 1, weights=binfo["weights_file"],
                                    output=("logits", ko))
                if r:
                    outs["kiln"] = np.load(ko).reshape(T, cfg["V"])
                else:
                    fail(f"kiln logits {spec['name']}", why)
            big = os.path.getsize(weights) > 1e9  # a float64 copy would not fit comfortably: float32
            po = os.path.join(OUT, "decoders", f"{key}.torch.logits.npy")
            rc, out, err, _ = run([PY, os.path.join(BENCH, "llama_reference.py"), weights, tok, po]
                                  + (["--float32"] if big else []),
                                  env={"OMP_NUM_THREADS": max(threads), "OPENBLAS_NUM_THREADS": max(threads)},
                                  timeout=3600)
            if rc == 0:
                outs["PyTorch"] = np.load(po)
                m["torch_dtype"] = "float32" if big else "float64"
            else:
                fail(f"PyTorch logits {spec['name']}", (err.strip().splitlines() or ["?"])[-1])
            for a, b in (("llama.cpp", "PyTorch"), ("kiln", "PyTorch"), ("llama.cpp", "kiln")):
                if a in outs and b in outs:
                    m["agree"][f"{a} vs {b}"] = compare(outs[a], outs[b])
            m["agree_T"] = T
            if spec.get("heldout") and os.path.exists(DATA):
                heldout(m, key, spec, kiln, exe, libdir, weights, ggufs, cfg, max(threads))
            if spec.get("agreement_only"):
                continue
            # timing
            for t in threads:
                for typ in spec["types"]:
                    if not exe:
                        break
                    # at more than one thread also with the pool's threads sleeping when idle (poll 0), as
                    # the other sections try ONNX Runtime and PyTorch without spinning; the faster is kept
                    for variant, poll in (("default", 50), ("no spin", 0)) if t > 1 else (("default", 50),):
                        say(f"decoders: {spec['name']}: llama.cpp {typ.upper()}, {t} thread(s)"
                            + (f", {variant}" if t > 1 else ""))
                        rc, out, err, _ = run([exe, "--lib", libdir, "--model", ggufs[typ], "--threads", t,
                                               "--prefill", ",".join(map(str, PREFILL)),
                                               "--decode", ",".join(map(str, DECODE)), "--runs", runs,
                                               "--steps", steps, "--poll", poll], timeout=7200)
                        if rc:
                            fail(f"llama.cpp {spec['name']} {typ} {t} threads ({variant})",
                                 (err.strip().splitlines() or ["?"])[-1])
                        for row in llama_json(out):
                            row["variant"] = variant
                            if row["what"] == "model":
                                m.setdefault("llama_model", {})[typ] = row
                                continue
                            if row["what"] not in ("prefill", "decode"):
                                continue
                            k = (typ, t, row["what"], row["tokens"] if row["what"] == "prefill" else row["cached"])
                            old = m["llama"].get(k)
                            if old is None or row["median_ms"] < old["median_ms"]:
                                if old:
                                    row["other"] = (old["variant"], old["median_ms"])
                                m["llama"][k] = row
                            else:
                                old["other"] = (variant, row["median_ms"])
                if not drv:
                    continue
                say(f"decoders: {spec['name']}: kiln prefill {', '.join(map(str, PREFILL))} and decode after "
                    f"{', '.join(map(str, DECODE))}, {t} thread(s)")
                rows, why = decode.kiln_rows(drv, dweights, t, cfg["V"], PREFILL, DECODE,
                                             max(kruns_prefill, kruns_decode), STEPS)
                m["kiln"].update(rows)
                if why:
                    fail(f"kiln prefill/decode {spec['name']} {t} threads", why)
                for scheme, (qd, qw) in qdrv.items():
                    say(f"decoders: {spec['name']}: kiln {scheme}, {t} thread(s)")
                    rows, why = decode.kiln_rows(qd, qw, t, cfg["V"], PREFILL, DECODE,
                                                 max(kruns_prefill, kruns_decode), STEPS)
                    m.setdefault("kiln_q", {}).setdefault(scheme, {}).update(rows)
                    if why:
                        fail(f"kiln {scheme} prefill/decode {spec['name']} {t} threads", why)
        except Exception as e:  # one model's trouble does not stop the others
            fail(f"decoders: {spec['name']}", f"{type(e).__name__}: {e}")
    return d


# ---------------------------------------------------------------------------------------------
# report


def _bw(res, t, nbytes):
    """(triad GB/s, "mem" or "L3") of where nbytes of weights live between decode steps: the L3 when they
    fit in it (the steps reuse them), else memory."""
    l3 = cpu.l3_mib(res.get("machine", {}).get("l3", ""))
    where = "l3" if l3 and nbytes and nbytes < l3 * 2 ** 20 else "dram"
    s = res.get("machine_meas", {}).get("stream", {}).get(f"{where}_{t}")
    return (s["triad"] if s else None), ("L3" if where == "l3" else "mem")


def headline(d, threads):
    """One line per timed model for the report's headline: kiln fp32 vs llama.cpp F32, and llama.cpp Q4_0's decode."""
    lines = []
    for key, m in (d or {}).get("models", {}).items():
        parts = []
        for t in threads:
            k = m["kiln"].get((t, "prefill", PREFILL[0]), {}).get("median_ms")
            ll = m["llama"].get(("f32", t, "prefill", PREFILL[0]), {}).get("median_ms")
            kd = _step_ms(m["kiln"].get((t, "decode", DECODE[0])))
            ld = m["llama"].get(("f32", t, "decode", DECODE[0]), {}).get("median_ms")
            if k and ll:
                parts.append(f"{t} thread{'s' if t > 1 else ''}: prefill {PREFILL[0]} {fmt_ratio(ll, k)} llama.cpp F32"
                             + (f", decode after {DECODE[0]} {fmt_ratio(ld, kd)}" if kd and ld else ""))
        if parts:
            lines.append(f"{m['name']}, kiln fp32 vs llama.cpp: " + "; ".join(parts))
        parts = []
        for t in threads:
            qs = []
            for scheme, rows in m.get("kiln_q", {}).items():
                k = _step_ms(rows.get((t, "decode", DECODE[0])))
                ll = m["llama"].get((SCHEME_PEER[scheme], t, "decode", DECODE[0]), {}).get("median_ms")
                if k and ll:
                    qs.append(f"{scheme} {fmt_ratio(ll, k)} {SCHEME_PEER[scheme].upper()}")
            if qs:
                parts.append(f"{t} thread{'s' if t > 1 else ''}: " + ", ".join(qs))
        if parts:
            lines.append(f"{m['name']}, decode after {DECODE[0]}, kiln's quantized builds vs llama.cpp's: "
                         + "; ".join(parts))
        if m.get("heldout"):
            lines.append(f"{m['name']}, held-out nats/char: " + ", ".join(
                f"{k} {v['nats']:.4f}" for k, v in m["heldout"].items()))
    return lines


def _step_ms(r):
    """kiln's time of a decode step for the comparison with llama.cpp's steps (which run back to back):
    the median of its steps in a row when measured, else of its single steps after a prefill."""
    if not r or "error" in r:
        return None
    return r.get("steps_median_ms") or r.get("median_ms")


def report(res, w):
    d = res.get("decoders")
    if not d:
        return
    threads = d["threads"]
    w("## Decoders: kiln and llama.cpp")
    w("")
    w(f"Llama-architecture models with random weights (`examples/llama/make_weights.py`), the same safetensors "
      f"file compiled by kiln (`examples/llama/llama.kiln`, fp32) and written as GGUF for llama.cpp by "
      f"`bench/gguf_write.py` (F32, F16, Q8_0, Q4_0: every matrix in the type, including the token embedding "
      f"and the output; norms F32). llama.cpp: {d.get('llamacpp') or 'not available'}, the npm package's "
      f"prebuilt CPU libraries driven through its C API by `bench/llama_peer.c`; weights read into memory "
      f"(not mapped), its default KV cache (F16) and flash-attention setting, threads = T for both batch and "
      f"single-token work, in one thread pool attached to the context (as llama-bench does); at more than one "
      f"thread measured with the pool's default polling and with its idle threads sleeping (poll 0), the faster "
      f"kept, marked 'ns' (no spin) when it is the latter. Prefill N: one llama_decode of N tokens into an empty cache, logits of the last "
      f"token (runs after a warm-up, median; how many is given per model). Decode after N: N tokens cached, "
      f"then one token at position N, removed again after each step (steps after a warm-up, median). kiln: "
      f"`examples/llama/llama.kiln` built with `--kv-cache full --emit lib` and timed by `bench/kiln_decode.c`: "
      f"prefill N is the prefill entry on N tokens into an empty cache (it computes the logits of every "
      f"position); decode after N is one decode step with N tokens cached, from a reset and a prefill of N "
      f"before each timed step (runs after a warm-up, median), then {STEPS} steps in a row (their median in "
      f"brackets: what generation does, and how llama.cpp's steps run). kiln's quantized builds are "
      f"choose-quant's schemes for every matmul (`--quant w8`: i8 weights, a scale per column; `--quant w4`: "
      f"i4 weights, a scale per group of 32 along K; `--quant bf16`: bf16 weights and activations, f32 sums), "
      f"the token embedding left in fp32 (only its gather reads it), against llama.cpp's Q8_0 (i8, an f16 "
      f"scale per 32), Q4_0 (4-bit, an f16 scale per 32; token embedding too) and F16. The ratios to llama.cpp "
      f"divide by kiln's steps in a row where measured. "
      f"GB/s = the bytes of weights one decode step reads (every tensor but the token embedding) ÷ the step's "
      f"time; '% bw' divides by the triad bandwidth measured above at the same thread count, of the L3 ('L3') "
      f"when those bytes fit in it (the steps reuse them, so they stay there) or else of memory ('mem'); "
      f"KV-cache reads are not counted.")
    w("")
    for key, m in d["models"].items():
        cfg = m.get("cfg")
        if not cfg:
            continue
        spec = MODELS.get(key, {})
        shape = (f"V {cfg['V']}, D {cfg['D']}, {cfg['L']} layers, {cfg['H']} heads / {cfg['KVH']} key-value heads, "
                 f"F {cfg['F']}")
        w(f"### {m['name']} ({shape})")
        w("")
        if m["bytes"]:
            w("Files: " + ", ".join((f"kiln {t} weights blob" if t in SCHEME_PEER else t.upper())
                                    + f" {mib(b['file'])} ({mib(b['step'])} read per decode step)"
                                    for t, b in m["bytes"].items()) + f"; safetensors `{m['weights']}`.")
            w("")
        if not spec.get("agreement_only"):
            c = m.get("counts", d["settings"])
            w(f"Repetitions: llama.cpp {c['llama_runs']} prefill runs and {c['llama_steps']} decode steps, kiln "
              f"{c['kiln_runs_prefill']} prefill runs and {c['kiln_runs_decode']} decode runs, each after a warm-up.")
            w("")
            cols = ([f"prefill {n}: ms (tokens/s)" for n in PREFILL]
                    + [f"decode after {n}: ms (tokens/s, GB/s, % bw)" for n in DECODE])
            w("| engine, weights | threads | " + " | ".join(cols) + " |")
            w("|---|---|" + "---|" * len(cols))
            for t in threads:
                rows = [("kiln, fp32 (KV cache)", "f32", lambda kind, n: m["kiln"].get((t, kind, n)))]
                for scheme in m.get("kiln_q", {}):
                    rows.append((f"kiln, {scheme} (KV cache)", scheme,
                                 lambda kind, n, scheme=scheme: m["kiln_q"][scheme].get((t, kind, n))))
                for typ in spec.get("types", ()):
                    rows.append((f"llama.cpp, {typ.upper()}", typ,
                                 lambda kind, n, typ=typ: m["llama"].get((typ, t, kind, n))))
                for label, typ, get in rows:
                    cells = []
                    for n in PREFILL:
                        r = get("prefill", n)
                        cells.append("failed" if r and "error" in r else "n/a" if not r else
                                     f"{fmt_ms(r['median_ms'])} ({fmt(n / r['median_ms'] * 1e3)})"
                                     + (" ns" if r.get("variant") == "no spin" else ""))
                    for n in DECODE:
                        r = get("decode", n)
                        if not r or "error" in r:
                            cells.append("failed" if r else "n/a")
                            continue
                        step = m["bytes"].get(typ, {}).get("step")
                        gbs = step / (r["median_ms"] * 1e6) if step else None
                        bw, where = _bw(res, t, step)
                        cells.append(f"{fmt_ms(r['median_ms'])}"
                                     + (f" [{fmt_ms(r['steps_median_ms'])}]" if r.get("steps_median_ms") else "")
                                     + f" ({fmt(1e3 / r['median_ms'])}, {fmt(gbs)}, "
                                     + (f"{100 * gbs / bw:.0f}% {where}" if gbs and bw else "n/a") + ")"
                                     + (" ns" if r.get("variant") == "no spin" else ""))
                    w(f"| {label} | {t} | " + " | ".join(cells) + " |")
            w("")
            ratios = []
            for t in threads:
                parts = []
                for kind, ns in (("prefill", PREFILL), ("decode", DECODE)):
                    for n in ns:
                        r = m["kiln"].get((t, kind, n))
                        k = _step_ms(r) if kind == "decode" else (r or {}).get("median_ms")
                        ll = m["llama"].get(("f32", t, kind, n), {}).get("median_ms")
                        if k and ll:
                            parts.append(f"{kind} {n} {fmt_ratio(ll, k)}")
                if parts:
                    ratios.append(f"{t} thread{'s' if t > 1 else ''}: " + ", ".join(parts))
            if ratios:
                w("kiln fp32's speed relative to llama.cpp F32 (llama.cpp time ÷ kiln time; issue 18's targets: "
                  "prefill >= 1.5x, decode >= 1.0x): " + "; ".join(ratios) + ".")
                w("")
            qratios = []
            for scheme, rows in m.get("kiln_q", {}).items():
                peer = SCHEME_PEER[scheme]
                for t in threads:
                    parts = []
                    for kind, ns in (("prefill", PREFILL), ("decode", DECODE)):
                        for n in ns:
                            r = rows.get((t, kind, n))
                            k = _step_ms(r) if kind == "decode" else (r or {}).get("median_ms")
                            ll = m["llama"].get((peer, t, kind, n), {}).get("median_ms")
                            if k and ll:
                                parts.append(f"{kind} {n} {fmt_ratio(ll, k)}")
                    if parts:
                        qratios.append(f"{scheme} vs {peer.upper()}, {t} thread{'s' if t > 1 else ''}: "
                                       + ", ".join(parts))
            if qratios:
                w("kiln's quantized builds' speed relative to llama.cpp's (issue 18's targets: decode, kiln 8-bit "
                  ">= 1.0x Q8_0 and 4-bit >= 1.0x Q4_0): " + "; ".join(qratios) + ".")
                w("")
        if m.get("heldout"):
            h = m["heldout"]
            pred = {v["predicted"] for v in h.values()}
            w(f"Held-out loss: the last 10% of tinyshakespeare ({'/'.join(map(str, sorted(pred)))} predicted "
              f"characters, non-overlapping windows of {cfg['CTX']}), the same token ids for both: kiln's "
              f"program `--eval` (built with `--kv-cache full` and the scheme), llama.cpp's from its logits "
              f"through the C API (`bench/llama_peer.c --eval --window {cfg['CTX']}`), nats per character:")
            w("")
            w("| weights | kiln | llama.cpp |")
            w("|---|---|---|")
            for scheme in spec.get("heldout", ()):
                peer = SCHEME_PEER[scheme].upper()
                k, ll = h.get(f"kiln {scheme}"), h.get(f"llama.cpp {peer}")
                w(f"| {scheme} / {peer} | " + (f"{k['nats']:.4f}" if k else "n/a") + " | "
                  + (f"{ll['nats']:.4f}" if ll else "n/a") + " |")
            w("")
        if m["agree"]:
            w(f"Logits on {m.get('agree_T')} tokens of the fp32 weights (max |a − b| ÷ max |b| over all "
              f"positions and the vocabulary; top-1: the share of positions whose largest logit is the same "
              f"token); PyTorch is examples/llama/model.py in {m.get('torch_dtype', '?')}, llama.cpp keeps its "
              f"KV cache in F16: " + "; ".join(f"{k} {v['rel']:.1e} (top-1 {100 * v['top1']:.0f}%)"
                                               for k, v in m["agree"].items()) + ".")
            w("")
