#!/usr/bin/env python3
"""gen.py: random valid models in kiln's language, for differential testing (tests/difftest/).

    python3 tests/difftest/gen.py SEED OUTDIR      writes OUTDIR/dtSEED.kiln, .safetensors, .json

A model is a random DAG over a few inputs (f32[T, D] with T symbolic or static, an f32[D] vector,
integer indices) and weights (matrices, norm parameters, an embedding table) written to a
safetensors file beside it. Each statement appends one variable computed from earlier ones:
elementwise math and broadcasts, reductions, softmax, layernorm and rmsnorm (as builtins and spelled
out), GELU (erf and tanh forms, spelled out), attention written out the ways people write it
(divide or multiply the scale, before or after the product, causal mask added or by where, heads by
reshape and transpose), near-misses of those spellings that the fusion passes must leave alone,
matmuls, slices, concats, splits, reshapes, transposes and gathers. Values stay bounded: inputs are
in [-2, 2], weights small, and growing ops are followed by tanh or a norm.

The .json file holds the statements (variable, expression, type, operands) so that minimise.py can
rebuild the model from any subset. Only the Python standard library is used.
"""
import json
import os
import random
import struct
import sys


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.seed = seed
        self.stmts = []      # dicts: var, expr, type (dims list), deps
        self.vars = []       # (name, dims)
        self.weights = {}    # name -> (shape, values)
        self.inputs = []     # (name, dtype, dims, where)
        self.n = 0
        self.types = {}      # variables of tuple statements (split) -> dims
        r = self.r
        self.T = 'T' if r.random() < 0.7 else r.choice([3, 5, 8])
        self.TB = r.choice([4, 7, 12])
        self.D = r.choice([8, 12, 16])
        self.H = r.choice([h for h in (1, 2, 4) if self.D % h == 0])

    # -- helpers
    def fresh(self):
        self.n += 1
        return 'v%d' % self.n

    def weight(self, prefix, shape, scale=0.5):
        name = '%s%d' % (prefix, len(self.weights))
        cnt = 1
        for s in shape:
            cnt *= s
        self.weights[name] = (shape, [self.r.uniform(-scale, scale) for _ in range(cnt)])
        return 'w.' + name

    def add(self, expr, dims, deps):
        v = self.fresh()
        self.stmts.append({'var': v, 'expr': expr, 'type': dims, 'deps': deps})
        self.vars.append((v, dims))
        return v

    def pick(self, pred=lambda d: True):
        c = [v for v in self.vars if pred(v[1])]
        # prefer recent variables: deeper DAGs
        return self.r.choice(c[-6:]) if c and self.r.random() < 0.7 else (self.r.choice(c) if c else None)

    @staticmethod
    def tstr(dims):
        return 'f32[%s]' % ', '.join(str(d) for d in dims)

    # -- statements
    def unary(self):
        v, d = self.pick()
        f = self.r.choice(['tanh(%s)', 'sigmoid(%s)', 'relu(%s)', 'silu(%s)', 'gelu(%s)', 'gelu(%s, approximate="tanh")',
                           'abs(%s)', '-%s', 'exp(tanh(%s))', 'sqrt(abs(%s) + 1.0)', 'log(abs(%s) + 1.0)', 'erf(%s)',
                           'sin(%s)', 'cos(%s)', 'rsqrt(%s * %s + 1.0)', '%s.exp().tanh()', '%s * 0.5', '%s + 1.5',
                           'pow(%s, 2.0)', '%s ** 3', 'neg(%s)'])
        return self.add(f.replace('%s', v), d, [v])

    def binary(self):
        v, d = self.pick()
        r = self.r
        # an operand of the same shape, or one that broadcasts: [last], [rows, 1], scalar
        choices = [u for u in self.vars if u[1] == d]
        u = None
        kind = r.random()
        if kind < 0.5 and choices:
            u = r.choice(choices)[0]
        elif kind < 0.7 and isinstance(d[-1], int):
            u = 'p' if d[-1] == self.D else self.weight('b', [d[-1]])
        elif kind < 0.85 and len(d) >= 2:
            u = '%s.%s(axis=-1, keepdims=true)' % (r.choice([u2[0] for u2 in choices] or [v]), r.choice(['sum', 'mean', 'max', 'min']))
        else:
            u = r.choice(['2.0', '0.25', '3'])
        op = r.choice(['%s + %s', '%s - %s', '%s * %s', 'maximum(%s, %s)', 'minimum(%s, %s)', '%s / (abs(%s) + 1.0)',
                       'where(%s > 0.0, %s, %%s)'])
        if op.startswith('where'):
            cond = 'x' if d == [self.T, self.D] else v
            e = 'where(%s > 0.0, %s, %s)' % (cond, v, u)
        else:
            e = op % (v, u)
        deps = [v] + ([u] if u in [x[0] for x in self.vars] else [])
        if u.startswith('v') and '.' in u:
            deps.append(u.split('.')[0])
        return self.add(e, d, deps)

    def reduce(self):
        v, d = self.pick(lambda d: len(d) >= 2)
        r = self.r
        f = r.choice(['sum', 'mean', 'max', 'min', 'softmax', 'log_softmax'])
        ax = r.choice([-1, 0, len(d) - 1])
        if f in ('softmax', 'log_softmax'):
            return self.add('%s(%s, axis=%d)' % (f, v, ax), d, [v])
        keep = r.random() < 0.5
        nd = list(d)
        a = ax % len(d)
        if keep:
            nd[a] = 1
        else:
            del nd[a]
        e = '%s(%s, axis=%d%s)' % (f, v, ax, ', keepdims=true' if keep else '')
        if f == 'sum':
            e = 'tanh(%s)' % e
        return self.add(e, nd, [v])

    def norm(self):
        v, d = self.pick(lambda d: isinstance(d[-1], int))
        r = self.r
        n = d[-1]
        g, b = self.weight('g', [n], 1.0), self.weight('bb', [n], 0.5)
        k = r.randrange(6)
        if k == 0:
            e = 'layernorm(%s, %s, %s)' % (v, g, b)
        elif k == 1:
            e = 'rmsnorm(%s, %s)' % (v, g)
        elif k in (2, 3):
            # layernorm spelled out; k == 3 a near-miss (variance without the mean removed)
            m = self.add('mean(%s, axis=-1, keepdims=true)' % v, d[:-1] + [1], [v])
            c = self.add('%s - %s' % (v, m), d, [v, m])
            sq = '%s * %s' % ((c, c) if k == 2 else (v, v))
            var = self.add('mean(%s, axis=-1, keepdims=true)' % sq, d[:-1] + [1], [c, v])
            eps = r.choice(['1e-5', '1e-6'])
            e = '%s / sqrt(%s + %s) * %s + %s' % (c, var, eps, g, b) if r.random() < 0.5 else \
                '(%s) * rsqrt(%s + %s) * %s + %s' % (c, var, eps, g, b)
            return self.add(e, d, [c, var])
        elif k == 4:
            # rmsnorm spelled out
            ms = self.add('mean(%s * %s, axis=-1, keepdims=true)' % (v, v), d[:-1] + [1], [v])
            e = '%s * rsqrt(%s + 1e-6) * %s' % (v, ms, g)
            return self.add(e, d, [v, ms])
        else:
            e = 'layernorm(%s, %s)' % (v, g)
        return self.add(e, d, [v])

    def gelu_spelled(self):
        v, d = self.pick()
        k = self.r.randrange(4)
        if k == 0:
            e = '0.5 * %s * (1.0 + erf(%s / sqrt(2.0)))' % (v, v)
        elif k == 1:
            e = '%s * 0.5 * (1.0 + tanh(0.7978845608028654 * (%s + 0.044715 * %s ** 3)))' % (v, v, v)
        elif k == 2:  # near-miss: the wrong constant
            e = '0.5 * %s * (1.0 + erf(%s / 1.5))' % (v, v)
        else:  # near-miss: tanh form without the cube
            e = '0.5 * %s * (1.0 + tanh(0.7978845608028654 * (%s + 0.044715 * %s)))' % (v, v, v)
        return self.add(e, d, [v])

    def matmul(self):
        r = self.r
        v, d = self.pick()
        if len(d) == 2 and (r.random() < 0.3 or not isinstance(d[-1], int)):
            u = r.choice([x for x in self.vars if x[1] == d])[0]
            e = 'tanh(%s @ %s.T)' % (v, u) if r.random() < 0.5 else 'tanh(%s @ transpose(%s, 1, 0))' % (v, u)
            return self.add(e, [d[0], d[0]], [v, u])
        if not isinstance(d[-1], int):
            return self.unary()
        n = r.choice([4, 8, self.D, 12])
        w = self.weight('m', [d[-1], n], 1.0 / (d[-1] ** 0.5))
        e = '%s @ %s' % (v, w)
        if r.random() < 0.5:
            e += ' + ' + self.weight('b', [n], 0.3)
        if r.random() < 0.4:
            e = r.choice(['gelu(%s)', 'relu(%s)', 'tanh(%s)', '%s + 1.0']) % e
        return self.add(e, d[:-1] + [n], [v])

    def attention(self):
        r = self.r
        v, d = self.pick(lambda d: d == [self.T, self.D])
        T, D, H = self.T, self.D, self.H
        HD = D // H
        qkv = []
        for _ in range(3):
            w = self.weight('m', [D, D], 1.0 / D ** 0.5)
            x = self.add('(%s @ %s).reshape(%s, %d, %d).transpose(1, 0, 2)' % (v, w, T, H, HD), [H, T, HD], [v])
            qkv.append(x)
        q, k, vv = qkv
        kt = r.choice(['%s.transpose(0, 2, 1)', 'swapaxes(%s, 1, 2)', 'transpose(%s, -1, -2)']) % k
        form = r.randrange(4)
        if form == 0:
            s = '(%s @ %s) / sqrt(%d)' % (q, kt, HD)
        elif form == 1:
            s = '(%s @ %s) * %r' % (q, kt, 1.0 / HD ** 0.5)
        elif form == 2:
            s = '(%s * %r) @ %s' % (q, 1.0 / HD ** 0.5, kt)
        else:
            s = '%s @ %s' % (q, kt)  # no scale
        mask = r.randrange(3)
        if mask == 1:
            s = '%s + causal_mask(%s)' % (s, T)
        sv = self.add(s, [H, T, T], [q, k])
        if mask == 2:
            sv = self.add('where(causal_mask(%s) < 0.0, -inf, %s)' % (T, sv), [H, T, T], [sv])
        near = r.random() < 0.25
        axis = -1 if not near else r.choice([-2, 1])
        a = self.add('softmax(%s, axis=%d) @ %s' % (sv, axis, vv), [H, T, HD], [sv, vv])
        return self.add('%s.transpose(1, 0, 2).reshape(%s, %d)' % (a, T, D), [T, D], [a])

    def movement(self):
        r = self.r
        v, d = self.pick()
        k = r.randrange(7)
        if k == 0 and len(d) == 2:
            return self.add('%s.T' % v, [d[1], d[0]], [v])
        if k == 1 and isinstance(d[-1], int) and d[-1] >= 2:
            a = r.randrange(d[-1] - 1)
            b = r.randrange(a + 1, d[-1] + 1)
            return self.add('%s[..., %d:%d]' % (v, a, b) if False else 'slice(%s, %d, %d, axis=%d)' % (v, a, b, len(d) - 1),
                            d[:-1] + [b - a], [v])
        if k == 2 and len(d) >= 2 and d[0] == self.T:
            return self.add('%s[0:1]' % v, [1] + d[1:], [v])
        if k == 3:
            u = [x for x in self.vars if x[1][:-1] == d[:-1] and isinstance(x[1][-1], int) and isinstance(d[-1], int)]
            if u:
                u = r.choice(u)
                return self.add('concat(%s, %s, axis=-1)' % (v, u[0]), d[:-1] + [d[-1] + u[1][-1]], [v, u[0]])
        if k == 4 and isinstance(d[-1], int) and d[-1] % 2 == 0:
            a = self.fresh()
            b = self.fresh()
            self.stmts.append({'var': a + ', ' + b, 'expr': 'split(%s, 2, axis=-1)' % v, 'type': None, 'deps': [v],
                               'defines': [a, b]})
            self.types[a] = self.types[b] = d[:-1] + [d[-1] // 2]
            self.vars.append((a, d[:-1] + [d[-1] // 2]))
            self.vars.append((b, d[:-1] + [d[-1] // 2]))
            return self.add('%s * %s' % (a, b), d[:-1] + [d[-1] // 2], [a + ', ' + b])
        if k == 5 and len(d) == 2 and isinstance(d[-1], int) and d[-1] % 2 == 0:
            x = self.add('%s.reshape(%s, 2, %d)' % (v, d[0], d[-1] // 2), [d[0], 2, d[-1] // 2], [v])
            y = self.add('%s.transpose(1, 0, 2)' % x, [2, d[0], d[-1] // 2], [x])
            return self.add('tanh(%s).transpose(1, 0, 2).reshape(%s, %d)' % (y, d[0], d[-1]), d, [y])
        if k == 6 and len(d) == 2:
            return self.add('unsqueeze(%s, 0).expand(2, %s, %s)' % (v, d[0], d[1]), [2] + d, [v])
        return self.unary()

    def gather(self):
        r = self.r
        if r.random() < 0.5:
            rows = r.choice([5, 9, 16])
            tab = self.weight('emb', [rows, self.D], 1.0)
            idx = 'ix%d_lt%d' % (len(self.inputs), rows)
            self.inputs.append((idx, 'i32', [self.T], None))
            return self.add('%s[%s]' % (tab, idx), [self.T, self.D], [idx])
        v, d = self.pick(lambda d: isinstance(d[-1], int))
        n = r.choice([1, 3])
        idx = 'ix%d_lt%d' % (len(self.inputs), d[-1])
        self.inputs.append((idx, r.choice(['i32', 'i64']), [n], None))
        return self.add('%s[%s%s]' % (v, ':, ' * (len(d) - 1), idx), d[:-1] + [n], [v, idx])

    def build(self):
        r = self.r
        T, D = self.T, self.D
        self.inputs.append(('x', 'f32', [T, D], 'T <= %d' % self.TB if T == 'T' else None))
        self.inputs.append(('y', 'f32', [T, D], None))
        self.inputs.append(('p', 'f32', [D], None))
        self.vars += [('x', [T, D]), ('y', [T, D])]
        kinds = [(self.unary, 4), (self.binary, 5), (self.reduce, 2), (self.norm, 2), (self.gelu_spelled, 1),
                 (self.matmul, 3), (self.attention, 1), (self.movement, 3), (self.gather, 1)]
        n = r.randint(3, 12)
        for _ in range(n):
            f = r.choices([k[0] for k in kinds], [k[1] for k in kinds])[0]
            if f == self.attention and not any(v[1] == [T, D] for v in self.vars):
                f = self.unary
            if f == self.reduce and not any(len(v[1]) >= 2 for v in self.vars):
                f = self.unary
            if f == self.gather and r.random() < 0.5 and not any(isinstance(v[1][-1], int) for v in self.vars):
                f = self.unary
            f()
        outs = [self.vars[-1][0]]
        for v in self.vars[2:-1]:
            if r.random() < 0.15:
                outs.append(v[0])
        return outs


def render(model, outputs, keep=None):
    """The model file for these outputs: only the statements they need (keep: a set of statement
    indices to keep regardless, for minimise.py's edits)."""
    stmts = model['stmts']
    by_var = {}
    for i, s in enumerate(stmts):
        for v in s.get('defines', [s['var']]):
            by_var[v] = i
        by_var[s['var']] = i
    need, stack = set(), list(outputs)
    while stack:
        v = stack.pop()
        if v in by_var and by_var[v] not in need:
            need.add(by_var[v])
            stack += stmts[by_var[v]]['deps']
    used_inputs = set()
    for i in need:
        for dep in stmts[i]['deps']:
            used_inputs.add(dep)
        for inp in model['inputs']:
            if inp[0] in stmts[i]['expr']:
                used_inputs.add(inp[0])
    types = {s['var']: s['type'] for s in stmts}
    types.update(model.get('types', {}))
    lines = ['model dt%d' % model['seed']]
    if any('w.' in stmts[i]['expr'] for i in need):
        lines.append('weights "%s"' % model['weights_file'])
    first_sym = True
    for name, dt, dims, where in model['inputs']:
        # the first input declares the symbol; keep it whenever anything uses the symbol
        if name in used_inputs or name in outputs or (where and first_sym):
            w = ' where %s' % where if where else ''
            lines.append('input  %s: %s[%s]%s' % (name, dt, ', '.join(str(d) for d in dims), w))
            if where:
                first_sym = False
    for o in outputs:
        lines.append('output %s: %s' % (o, Gen.tstr(types[o])))
    for i in sorted(need):
        lines.append('%s = %s' % (stmts[i]['var'], stmts[i]['expr']))
    return '\n'.join(lines) + '\n'


def write_safetensors(path, weights):
    header, blob = {}, b''
    for name in sorted(weights):
        shape, vals = weights[name]
        data = struct.pack('<%df' % len(vals), *vals)
        header[name] = {'dtype': 'F32', 'shape': shape, 'data_offsets': [len(blob), len(blob) + len(data)]}
        blob += data
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + blob)


def generate(seed, outdir):
    g = Gen(seed)
    outs = g.build()
    base = 'dt%d' % seed
    model = {'seed': seed, 'stmts': g.stmts, 'inputs': g.inputs, 'outputs': outs,
             'weights_file': base + '.safetensors', 'types': g.types}
    os.makedirs(outdir, exist_ok=True)
    write_safetensors('%s/%s.safetensors' % (outdir, base), g.weights)
    with open('%s/%s.json' % (outdir, base), 'w') as f:
        json.dump(model, f)
    path = '%s/%s.kiln' % (outdir, base)
    with open(path, 'w') as f:
        f.write(render(model, outs))
    return path, model


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit('usage: gen.py SEED OUTDIR')
    print(generate(int(sys.argv[1]), sys.argv[2])[0])
