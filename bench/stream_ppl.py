"""Streaming perplexity of a character model through its KV cache, per eviction policy and budget,
against the sliding window that recomputes the last W characters for every prediction (StreamingLLM's
baseline). Writes docs/STREAMING.md (a table and the commands that made it) and docs/streaming.png
(gnuplot). Not a test and not a timing: every figure is nats per character on held-out text.

  /usr/bin/python3 bench/stream_ppl.py [--chars N] [--budgets 64,128,256] [--policy TEMPLATE ...]
                                       [--baseline-chars N] [--threads N] [--jobs N] [--model charlm]
                                       [--note TEXT]

The model is the trained Llama-style character model (examples/llamachar, rotary positions, context
256) compiled from examples/llama/llama.kiln. The text is the held-out 10% of tinyshakespeare.txt
(examples/charlm/eval's split), its first --chars characters (default: all 111,540). A policy
template names a --kv-cache policy with the budget B filled in: {B}, {B2} (B/2) and {BS} (B - 4, for
four sink tokens), e.g. "window:{B}" or "sinks:4,window:{BS},positions=cache" (docs/PASSES.md: the
rotary model's keys rotated by their rank within the cache, as StreamingLLM does). The baseline runs the model over up to
W = B characters for each prediction, n - 1 runs per budget, so it reads the first --baseline-chars
characters (default 20,000) unless told otherwise; the policies are scored on the same prefix too,
in a second column, so the comparison is like for like.
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as B  # noqa: E402

LLAMACHAR = ["examples/llama/llama.kiln", "-D", "V=65", "-D", "D=192", "-D", "H=6", "-D", "KVH=2", "-D", "F=512",
             "-D", "L=4", "-D", "CTX=256", "--weights", "examples/llamachar/llamachar.safetensors"]
MODELS = {"llamachar": LLAMACHAR, "charlm": ["examples/charlm/charlm.kiln"]}
DESCRIBE = {"llamachar": "The trained Llama-style character model (examples/llamachar: rotary\npositions, context 256)",
            "charlm": "The trained GPT-style character model (examples/charlm: learned positions, context\n256; past the position table its stream prefills the last 128 characters again)"}
# the rotary model's positions within the cache for every policy that keeps old tokens, and sinks with
# absolute positions (the default) for contrast; a window's distances are the same either way
# (charlm's learned position table has no positions=cache: its policies keep absolute positions)
DEFAULT_POLICIES = {"llamachar": ["window:{B}", "sinks:4,window:{BS}", "sinks:4,window:{BS},positions=cache",
                                  "tova:{B},positions=cache", "h2o:heavy={B2},recent={B2},positions=cache",
                                  "cascade:{B},n=4,sinks=4,positions=cache"],
                    "charlm": ["window:{B}", "sinks:4,window:{BS}", "tova:{B}", "h2o:heavy={B2},recent={B2}",
                               "cascade:{B},n=4,sinks=4"]}


def heldout(n):
    data = open(os.path.join(B.ROOT, "..", "shared", "data", "tinyshakespeare.txt"), "rb").read()
    text = data[len(data) * 9 // 10:]  # int(0.9 * len) of charlm's train.py
    return text[:n] if n else text


def nats(out):
    m = re.search(r"^([0-9.]+) nats/char", out, re.M)
    return float(m.group(1)) if m else None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chars", type=int, default=0, help="score the first N held-out characters (0: all)")
    p.add_argument("--baseline-chars", type=int, default=20000)
    p.add_argument("--budgets", default="64,128,256")
    p.add_argument("--policy", action="append", help="a policy template (repeatable)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2, help="programs run at once")
    p.add_argument("--model", default="llamachar", choices=sorted(MODELS),
                   help="charlm has learned positions: past 256 its stream prefills again")
    p.add_argument("--kiln", default=os.path.join(B.ROOT, "build", "kiln"))
    p.add_argument("--note", default="", help="a sentence for the report: the machine and its load during the run")
    a = p.parse_args()
    policies = a.policy or DEFAULT_POLICIES[a.model]
    budgets = [int(x) for x in a.budgets.split(",")]
    out = os.path.join(B.OUT, "stream")
    os.makedirs(out, exist_ok=True)
    full_txt, pre_txt = os.path.join(out, "heldout.txt"), os.path.join(out, "prefix.txt")
    full = heldout(a.chars)
    open(full_txt, "wb").write(full)
    open(pre_txt, "wb").write(full[:a.baseline_chars])

    # one program per (policy, budget), and one without a cache for the baseline
    B.SECTION[0] = "build"
    builds = {}
    for b in budgets:
        for t in policies:
            pol = t.format(B=b, B2=b // 2, BS=b - 4)
            exe = os.path.join(out, re.sub(r"[^A-Za-z0-9]+", "_", pol))
            rc, o, e, _ = B.run([a.kiln, "build", *MODELS[a.model], "--kv-cache", pol, "-o", exe])
            if rc:
                sys.exit(f"stream_ppl: kiln build --kv-cache {pol} failed: {e.strip()}")
            builds[(t, b)] = (pol, exe)
    plain = os.path.join(out, "plain")
    rc, o, e, _ = B.run([a.kiln, "build", *MODELS[a.model], "-o", plain])
    if rc:
        sys.exit(f"stream_ppl: kiln build failed: {e.strip()}")

    B.SECTION[0] = "score"
    jobs = []
    for (t, b), (pol, exe) in builds.items():
        jobs.append(((t, b, "full"), [exe, "--eval", full_txt, "--stream", "--threads", a.threads]))
        jobs.append(((t, b, "prefix"), [exe, "--eval", pre_txt, "--stream", "--threads", a.threads]))
    for b in budgets:
        jobs.append((("baseline", b, "prefix"), [plain, "--eval", pre_txt, "--window", b, "--threads", a.threads]))

    def one(job):
        key, cmd = job
        rc, o, e, s = B.run(cmd, timeout=6 * 3600)
        print(f"stream_ppl: {' '.join(str(k) for k in key)}: {nats(o)} nats/char ({s:.0f} s)", flush=True)
        return key, (nats(o) if rc == 0 else None, o)

    with ThreadPoolExecutor(max_workers=a.jobs) as ex:
        res = dict(ex.map(one, jobs))

    write_report(a, policies, budgets, builds, res, len(full), len(full[:a.baseline_chars]), out)


def write_report(a, policies, budgets, builds, res, nfull, npre, out):
    def cell(key):
        v = res.get(key, (None, ""))[0]
        return f"{v:.4f}" if v is not None else "failed"

    lines = ["# Streaming perplexity through the KV cache", "",
             "Written by `bench/stream_ppl.py`; do not edit by hand. " + DESCRIBE[a.model],
             "scores the held-out 10% of tinyshakespeare.txt",
             "as one stream, character by character through `decode`, with each KV-cache policy at each budget",
             "(tokens per layer). The baseline recomputes the model over the last W = budget characters for",
             "every prediction (`PROGRAM --eval FILE --window W`); it is costly, so it reads the first",
             f"{npre:,} characters, and every policy is scored on that prefix too. Figures in nats/char",
             f"(lower is better); the model's windowed held-out figure (non-overlapping windows of 256) is in",
             f"examples/{a.model}/ref/heldout_nats.txt." + (" " + a.note if a.note else ""), "",
             f"| policy | budget | nats/char, all {nfull:,} characters | nats/char, first {npre:,} | baseline (window recompute), first {npre:,} |",
             "|---|---:|---:|---:|---:|"]
    for b in budgets:
        for t in policies:
            pol = builds[(t, b)][0]
            lines.append(f"| `{pol}` | {b} | {cell((t, b, 'full'))} | {cell((t, b, 'prefix'))} | {cell(('baseline', b, 'prefix'))} |")
    lines += ["", "![nats/char against budget](streaming.png)", "",
              "Made by (the held-out text and its prefix written to bench/out/stream/ first):", "", "```",
              "/usr/bin/python3 bench/stream_ppl.py " + " ".join(shlex.quote(x) for x in sys.argv[1:]), "```", "", "which ran:", "", "```"]
    lines += [c for _, c in B.COMMANDS]
    lines += ["```", ""]
    docs = os.path.join(B.ROOT, "docs")
    open(os.path.join(docs, "STREAMING.md"), "w").write("\n".join(lines))

    # the plot: nats/char (first npre characters) against the budget, one line per policy and the baseline
    dat = os.path.join(out, "stream.dat")
    with open(dat, "w") as f:
        f.write("budget " + " ".join(f'"{t}"' for t in policies) + ' "window recompute"\n')
        for b in budgets:
            vals = [res.get((t, b, "prefix"), (None,))[0] for t in policies] + [res.get(("baseline", b, "prefix"), (None,))[0]]
            f.write(f"{b} " + " ".join("NaN" if v is None else f"{v:.4f}" for v in vals) + "\n")
    if shutil.which("gnuplot"):
        ncol = len(policies) + 1
        script = "\n".join([
            "set terminal pngcairo size 800,500" if "pngcairo" in term_list() else "set terminal png size 800,500",
            f"set output '{os.path.join(docs, 'streaming.png')}'",
            "set title '" + a.model + ": streaming nats/char on held-out text by KV-cache budget'",
            "set xlabel 'budget (cached tokens per layer)'", "set ylabel 'nats/char'", "set logscale x 2",
            "set key top right", "set grid",
            f"plot for [i=2:{ncol + 1}] '{dat}' using 1:i with linespoints title columnheader(i)"])
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    else:
        print("stream_ppl: gnuplot not installed (apt-get install gnuplot-nox): no plot", file=sys.stderr)
    print("stream_ppl: wrote docs/STREAMING.md")


def term_list():
    p = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True)
    return p.stdout + p.stderr


if __name__ == "__main__":
    main()
