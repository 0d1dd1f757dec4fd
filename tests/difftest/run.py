#!/usr/bin/env python3
"""run.py: differential testing of kiln's passes and code generator on random models.

    python3 tests/difftest/run.py --difftest build/tests/difftest/difftest [--seed S] [--count N]
                                  [--out DIR] [--jobs J] [--quick] [--seconds S]

Generates N models with gen.py (seeds S*1000000 + 0 .. N-1), runs each with difftest (the
interpreter without passes as the oracle against the interpreter after the passes, each pass alone,
and the JIT at -O0/-O2 with 1 and 2 threads) and, for each model that mismatches or fails, minimises
it (minimise below) and writes the reproducer into DIR (default: difftest-failures in the current
directory) with difftest's report. --quick runs one of difftest's three -O2 variants per model, in
turn (difftest --sample), which makes a batch about twice as fast; ctest uses it. --seconds S starts
no model after S seconds (for a long run: --count is then an upper bound, and the summary says how
many ran). Prints one line per failing model, a progress line to stderr every 100 models, and a
summary line: `difftest: N graphs, M mismatches, F failures`. Exit status 1 when there was any.

Minimisation keeps the model failing while it (1) picks, of all variables, the earliest whose
value alone as the output still fails, (2) replaces each remaining statement by one of its operands
of the same type, when that still fails. Each step reruns difftest, so the reproducer is a model
file a person can read: usually three to six statements.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen  # noqa: E402


SAMPLE = None  # --quick: difftest's --sample, from the seed
CPU_SECONDS = 600  # of one difftest call (its threads' summed): a model that takes longer fails


def check(difftest, path, seed=0):
    """(status, report) of one model file: 0 match, 1 mismatch, 2 failure."""
    extra = ['--sample', str(seed % 3)] if SAMPLE else []
    # a hang is bounded by CPU time, not wall time: a long run at nice 19 on a busy machine may wait
    # minutes for a core, and a wall-clock timeout then killed models that were not hanging
    p = subprocess.run([difftest, path] + extra, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       preexec_fn=limit_cpu)
    if p.returncode not in (0, 1, 2):  # killed (the CPU limit: SIGXCPU) or crashed
        return 2, 'difftest %s ended with status %d (a signal when negative)\n%s' % (path, p.returncode, p.stdout)
    return p.returncode, p.stdout


def limit_cpu():
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def minimise(difftest, model, workdir, status):
    seed = model['seed']
    path = os.path.join(workdir, 'min%d.kiln' % seed)

    def fails(m, outs):
        with open(path, 'w') as f:
            f.write(gen.render(m, outs))
        return check(difftest, path, seed)[0] == status

    outs = list(model['outputs'])
    # (1) one output: the earliest variable that fails on its own
    types = {s['var']: s['type'] for s in model['stmts']}
    types.update(model.get('types', {}))
    for s in model['stmts']:
        for v in s.get('defines', [s['var']]):
            if types.get(v) is not None and fails(model, [v]):
                outs = [v]
                break
        else:
            continue
        break
    # (2) bypass statements: x = f(a, b) -> x = a, when a has x's type
    m = json.loads(json.dumps(model))
    changed = True
    while changed:
        changed = False
        for s in m['stmts']:
            if 'defines' in s or s['var'] in outs:
                continue
            for d in s['deps']:
                if d != s['expr'] and types.get(d) == s['type'] and d in types:
                    old = (s['expr'], s['deps'])
                    s['expr'], s['deps'] = d, [d]
                    if fails(m, outs):
                        changed = True
                        break
                    s['expr'], s['deps'] = old
    with open(path, 'w') as f:
        f.write(gen.render(m, outs))
    return path


def one(args, seed, workdir):
    kiln, m = gen.generate(seed, workdir)
    st, report = check(args.difftest, kiln, seed)
    if st == 0:  # a long run keeps only the failing models' files
        os.remove(kiln)
        os.remove(os.path.join(workdir, m['weights_file']))
        return seed, 0, None
    small = minimise(args.difftest, m, workdir, st)
    st2, report2 = check(args.difftest, small, seed)
    os.makedirs(args.out, exist_ok=True)
    dst = os.path.join(args.out, os.path.basename(kiln))
    shutil.copy(small, dst)
    shutil.copy(os.path.join(workdir, m['weights_file']), os.path.join(args.out, m['weights_file']))
    with open(dst + '.txt', 'w') as f:
        f.write(report2 or report)
    return seed, st, dst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--difftest', required=True)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--count', type=int, default=100)
    ap.add_argument('--out', default='difftest-failures')
    ap.add_argument('--jobs', type=int, default=1)
    ap.add_argument('--quick', action='store_true', help='one of the three -O2 variants per model, in turn')
    ap.add_argument('--seconds', type=float, default=0, help='start no model after this many seconds (0: no limit)')
    args = ap.parse_args()
    global SAMPLE
    SAMPLE = args.quick
    args.out = os.path.abspath(args.out)
    work = tempfile.mkdtemp(prefix='kiln-difftest-')
    mism = fail = done = 0
    start = time.time()
    try:
        seeds = iter(args.seed * 1000000 + i for i in range(args.count))
        with ThreadPoolExecutor(max_workers=args.jobs) as ex:
            running = set()
            while True:
                # keep `jobs` models in flight, in seed order, until the seeds or the time run out
                while len(running) < args.jobs and not (args.seconds and time.time() - start > args.seconds):
                    s = next(seeds, None)
                    if s is None:
                        break
                    running.add(ex.submit(one, args, s, work))
                if not running:
                    break
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in sorted(finished, key=lambda f: f.result()[0]):
                    seed, st, dst = fut.result()
                    done += 1
                    if done % 100 == 0:
                        print('difftest: %d graphs so far, %d mismatches, %d failures, %.0f s'
                              % (done, mism, fail, time.time() - start), file=sys.stderr, flush=True)
                    if not st:
                        continue
                    mism += st == 1
                    fail += st == 2
                    with open(dst + '.txt') as f:
                        first = f.readline().strip()
                    print('seed %d: %s: %s' % (seed, 'mismatch' if st == 1 else 'failure', dst))
                    print('    ' + first)
                    sys.stdout.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print('difftest: %d graphs, %d mismatches, %d failures' % (done, mism, fail))
    return 1 if mism or fail else 0


if __name__ == '__main__':
    sys.exit(main())
