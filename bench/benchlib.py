"""What every section of kiln's benchmark harness shares: running a command and recording it for the
report's list of commands, recording failures, running kiln (check, build, a program's --bench) and
the peers' JSON lines, comparing outputs, and formatting numbers.

COMMANDS, FAILURES and SECTION are module state that harness.py and attention.py append to (SECTION[0]
names the part of the run the next commands belong to); nothing else here keeps state.
"""
import json
import os
import re
import shlex
import subprocess
import time

import numpy as np

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
OUT = os.path.join(BENCH, "out")
PY = "/usr/bin/python3"

COMMANDS = []  # (section, shell line) in the order run
FAILURES = []  # (what, reason)
SECTION = ["setup"]


def rel(p):
    """A path as it is written in the report: relative to the repository root where it is inside."""
    p = str(p)
    if p.startswith(ROOT + os.sep):
        return os.path.relpath(p, ROOT)
    return p


def shell_line(cmd, env):
    parts = [f"{k}={shlex.quote(str(v))}" for k, v in (env or {}).items()]
    parts += [shlex.quote(rel(c).replace(ROOT + os.sep, "")) for c in cmd]
    return " ".join(parts)


def run(cmd, env=None, timeout=1800, log=True, cwd=ROOT):
    """Runs cmd (a list) with extra environment variables env; returns (rc, stdout, stderr, seconds).
    A timeout or a missing program is rc -1 with the reason in stderr."""
    cmd = [str(c) for c in cmd]
    if log:
        COMMANDS.append((SECTION[0], shell_line(cmd, env)))
    full_env = dict(os.environ)
    full_env.update({k: str(v) for k, v in (env or {}).items()})
    t0 = time.time()
    try:
        p = subprocess.run(cmd, env=full_env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr, time.time() - t0
    except subprocess.TimeoutExpired:
        return -1, "", f"timed out after {timeout} s", time.time() - t0
    except OSError as e:
        return -1, "", str(e), time.time() - t0


def reason(rc, out, err):
    """A one-line reason for a failed command."""
    lines = [ln.strip() for ln in (err or "").splitlines() + (out or "").splitlines() if ln.strip()]
    # prefer a line that looks like an error message
    for ln in lines:
        if re.search(r"error|Error|ERROR|failed|Failed|cannot|No such", ln):
            msg = ln
            break
    else:
        msg = lines[-1] if lines else f"exit status {rc}"
    msg = msg.replace("|", "/")
    return (msg[:200] + "...") if len(msg) > 200 else msg


def fail(what, why):
    FAILURES.append((what, why))
    print(f"  FAILED {what}: {why}", flush=True)
    return None


def say(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# kiln and the peers

BENCH_RE = re.compile(r"bench: (\d+) runs, min ([\d.]+) ms, median ([\d.]+) ms")


def time_v(stderr):
    """The fields of /usr/bin/time -v that the harness reports: wall_s, user_s, maxrss_kb."""
    info = {}
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", stderr)
    if m:
        parts = [float(x) for x in m.group(1).split(":")]
        info["wall_s"] = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    if m:
        info["maxrss_kb"] = int(m.group(1))
    m = re.search(r"User time \(seconds\): ([\d.]+)", stderr)
    if m:
        info["user_s"] = float(m.group(1))
    return info


def kiln_bench(exe, inputs, threads, runs, weights=None, output=None, timeout=1800, timed=False):
    """Runs a kiln program with --bench (under /usr/bin/time -v when timed, adding maxrss_kb);
    returns ({"min_ms", "median_ms", "runs"}, None) or (None, why)."""
    cmd = [exe]
    if weights:
        cmd += ["--weights", weights]
    for k, v in inputs.items():
        cmd += ["--input", f"{k}={v}"]
    if output:
        cmd += ["--output", f"{output[0]}={output[1]}"]
    cmd += ["--bench", runs, "--threads", threads]
    if timed:
        cmd = ["/usr/bin/time", "-v"] + cmd
    rc, out, err, _ = run(cmd, timeout=timeout)
    m = BENCH_RE.search(out)
    if rc or not m:
        return None, reason(rc, out, err)
    r = {"runs": int(m.group(1)), "min_ms": float(m.group(2)), "median_ms": float(m.group(3))}
    if timed and "maxrss_kb" in time_v(err):
        r["maxrss_kb"] = time_v(err)["maxrss_kb"]
    return r, None


def kiln_build(kiln, model, out, weights=None, defines=(), timed=False, extra=()):
    """kiln build MODEL -o OUT [extra] (under /usr/bin/time -v when timed). Returns (info, None) or
    (None, why)."""
    cmd = [kiln, "build", model, "-o", out] + list(extra)
    if weights:
        cmd += ["--weights", weights]
    for d in defines:
        cmd += ["-D", d]
    if timed:
        cmd = ["/usr/bin/time", "-v"] + cmd
    rc, so, se, secs = run(cmd)
    if rc:
        return None, reason(rc, so, se)
    info = {"seconds": secs}
    info.update(time_v(se))
    info["weights_file"] = out + ".weights" if os.path.exists(out + ".weights") else None
    return info, None

UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "TiB": 1024 ** 4}


def kiln_check(kiln, model, weights=None, defines=(), extra=()):
    cmd = [kiln, "check", model] + list(extra)
    if weights:
        cmd += ["--weights", weights]
    for d in defines:
        cmd += ["-D", d]
    rc, out, err, _ = run(cmd)
    if rc:
        return None, reason(rc, out, err)
    info = {"inputs": [], "outputs": []}
    part = None
    for line in out.splitlines():
        if line.strip() in ("inputs:", "outputs:"):
            part = line.strip()[:-1]
            continue
        m = re.match(r"\s+(\w+): (\w+)\[([^\]]*)\]", line)
        if m and part:
            dims = [d.strip() for d in m.group(3).split(",") if d.strip()]
            info[part].append((m.group(1), m.group(2), dims))
        elif not line.startswith(" "):
            part = None
        if line.startswith("symbolic sizes:"):
            info["bounds"] = {a: int(b) for a, b in re.findall(r"(\w+) <= (\d+)", line)}
        m = re.match(r"FLOPs per run: ([\d.]+) (\w?)FLOP", line)
        if m:
            info["flop"] = float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m.group(2)]
        # "X peak, freeing each intermediate after its last use", or (after plan-memory) "X planned arena"
        m = re.match(r"activation memory: ([\d.]+) (\w+) (peak|planned arena)", line)
        if m and m.group(2) in UNITS:
            info["activation"] = float(m.group(1)) * UNITS[m.group(2)]
            info["activation_kind"] = m.group(3)
        m = re.match(r"largest intermediate: %\d+ = (\w+) : (\S+\[[^\]]*\]) \(([\d.]+) (\w+)\)", line)
        if m and m.group(4) in UNITS:
            info["largest"] = (m.group(1), m.group(2), float(m.group(3)) * UNITS[m.group(4)])
    return info, None


def size_text(path):
    """(text, data, bss) of an object, executable or archive (summed over members), from `size`."""
    rc, out, err, _ = run(["size", path], log=False)
    if rc:
        return None
    tot = [0, 0, 0]
    for line in out.splitlines()[1:]:
        f = line.split()
        if len(f) >= 3 and f[0].isdigit():
            for i in range(3):
                tot[i] += int(f[i])
    return tot


def pick(tries):
    """The measurement with the lowest median among the variants tried; the others are kept in
    'others' (variant -> median ms, or the error)."""
    ok = [d for d in tries if "error" not in d]
    best = min(ok, key=lambda d: d["median_ms"]) if ok else tries[0]
    best = dict(best)
    best["others"] = {d["variant"]: d.get("median_ms", d.get("error")) for d in tries if d is not best
                      and d["variant"] != best["variant"]}
    return best


def keep_lower(store, key, d):
    """The models section's rounds: store[key] keeps, of the measurements d it is given over the rounds, the
    one with the lower median (a failure only while nothing succeeded), and "round_medians" lists every
    round's median in order (None for a round that failed)."""
    old = store.get(key)
    meds = list((old or {}).get("round_medians", [])) + [d.get("median_ms") if "error" not in d else None]
    if old is None or ("error" in old and "error" not in d) or (
            "error" not in d and "error" not in old and d["median_ms"] < old["median_ms"]):
        old = dict(d)
    old["round_medians"] = meds
    store[key] = old
    return old


def json_line(rc, out, err):
    for line in reversed(out.splitlines()):
        if line.startswith("{"):
            try:
                d = json.loads(line)
                if rc == 0 and "median_ms" in d:
                    return d
            except ValueError:
                pass
    return {"error": reason(rc, out, err)}


def compare(path, ref):
    """max |a - ref| / max |ref|, or None when either is missing or the shapes differ."""
    try:
        a, b = np.load(path).astype(np.float64), np.load(ref).astype(np.float64)
    except (OSError, ValueError):
        return None
    if a.size != b.size:
        return f"shape {list(a.shape)} vs {list(b.shape)}"
    a = a.reshape(b.shape)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


# ---------------------------------------------------------------------------------------------
# formatting


def fmt(v, nd=1):
    if v is None:
        return "n/a"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.{nd}f}"
    return f"{v:.{nd + 1}f}"


def fmt_ms(v):
    if v is None:
        return "n/a"
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def fmt_ratio(num, den):
    if num is None or den is None or den <= 0:
        return "n/a"
    x = num / den
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x"


def mib(b):
    return f"{b / 1048576:.1f} MiB" if b >= 1048576 else f"{b / 1024:.1f} KiB"


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return float(np.exp(np.mean(np.log(xs)))) if xs else None
