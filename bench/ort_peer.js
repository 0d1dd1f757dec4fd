// ONNX Runtime side of kiln's model benchmarks (onnxruntime-node, CPU execution provider).
//
//   node bench/ort_peer.js MODEL.onnx INPUT.npy [INPUT.npy ...] --threads T --runs N [--no-spin]
//                          [--out OUT.npy] [--optimized OPT.onnx]
//
// Session options: graphOptimizationLevel 'all', intraOpNumThreads T, interOpNumThreads 1,
// executionMode 'sequential'; --no-spin adds the session config session.intra_op.allow_spinning=0
// (idle pool threads sleep instead of spinning). One warm-up run, then N timed runs (process.hrtime around each
// session.run). Prints one JSON line: {"min_ms", "median_ms", "runs", "threads", "ort"}.
// The inputs are fed under the model's input names, in order (one .npy file per input); the first
// output is written to --out. --optimized writes the graph as ONNX Runtime optimised it (session
// option optimizedModelFilePath), to see what its fusions made of the model.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));

const NPY_TYPES = {
  '<f4': ['float32', Float32Array], '<i4': ['int32', Int32Array],
  '<i8': ['int64', BigInt64Array], '<f8': ['float64', Float64Array],
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(file + ': not a .npy file');
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const hstart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', hstart, hstart + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(file + ': Fortran order');
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map(s => s.trim())
    .filter(s => s.length).map(Number);
  const t = NPY_TYPES[descr];
  if (!t) throw new Error(file + ': unsupported dtype ' + descr);
  const off = hstart + hlen;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new t[1](n);
  Buffer.from(data.buffer).set(buf.subarray(off, off + n * t[1].BYTES_PER_ELEMENT));
  return { type: t[0], shape, data };
}

function writeNpyF32(file, dims, data) {
  const shape = '(' + dims.join(', ') + (dims.length === 1 ? ',' : '') + ')';
  let h = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ', }';
  while ((10 + h.length + 1) % 64) h += ' ';
  h += '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(h.length, 8);
  const f32 = Float32Array.from(data);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(h, 'latin1'), Buffer.from(f32.buffer)]));
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const firstFlag = args.findIndex(a => a.startsWith('--'));
  const [model, ...inputs] = firstFlag < 0 ? args : args.slice(0, firstFlag);
  const threads = Number(opt('--threads', '1'));
  const runs = Number(opt('--runs', '5'));
  const out = opt('--out', null);
  const optimized = opt('--optimized', null);
  const noSpin = args.includes('--no-spin');
  if (!model || !inputs.length || !(threads >= 1) || !(runs >= 1)) {
    console.error('usage: node ort_peer.js MODEL.onnx INPUT.npy [INPUT.npy ...] --threads T --runs N ' +
                  '[--no-spin] [--out OUT.npy] [--optimized OPT.onnx]');
    process.exit(2);
  }
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1,
    executionMode: 'sequential', executionProviders: ['cpu'],
    ...(optimized ? { optimizedModelFilePath: optimized } : {}),
    ...(noSpin ? { extra: { session: { intra_op: { allow_spinning: '0' } } } } : {}),
  });
  if (inputs.length !== session.inputNames.length) {
    throw new Error(`${model} has ${session.inputNames.length} input(s), given ${inputs.length} file(s)`);
  }
  const feeds = {};
  inputs.forEach((file, i) => {
    const x = readNpy(file);
    feeds[session.inputNames[i]] = new ort.Tensor(x.type, x.data, x.shape);
  });
  let res = await session.run(feeds); // warm-up
  const times = [];
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    res = await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  const n = times.length;
  const median = n % 2 ? times[(n - 1) / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
  if (out) {
    const y = res[session.outputNames[0]];
    writeNpyF32(out, y.dims, y.data);
  }
  console.log(JSON.stringify({ min_ms: times[0], median_ms: median, runs, threads, spin: !noSpin,
    ort: ort.env.versions ? ort.env.versions.common : 'unknown' }));
}

main().catch(e => { console.error('ort_peer: ' + (e && e.message ? e.message : e)); process.exit(1); });
