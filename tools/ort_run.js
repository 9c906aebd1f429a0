// Runs an ONNX model in ONNX Runtime (npm onnxruntime-node) on float32 .npy inputs and writes each
// output as float32 .npy: the independent reference the exporter tests compare with.
// Usage: node tools/ort_run.js MODEL.onnx OUT_PREFIX NAME=IN.npy [NAME=IN.npy ...]
// Writes OUT_PREFIX.<k>.npy for output k (graph order) and prints one JSON line {names, dims}.
// A float16 model input is fed the .npy's values rounded to float16; float16 outputs are written
// as float32 (exact).
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', 'node_modules', 'onnxruntime-node'));
const { readNpy, writeNpy } = require('./npy.js');

// IEEE half <-> float32 through the bit patterns (Node 20 has no Float16Array).
const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
function toHalfBits(v) {
  f32[0] = v;
  const x = u32[0], sign = (x >>> 16) & 0x8000, exp = (x >>> 23) & 0xff, man = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {  // subnormal half: round the shifted mantissa to nearest even
    if (e < -10) return sign;
    const m = man | 0x800000, shift = 14 - e, half = 1 << (shift - 1);
    let r = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    if (rest > half || (rest === half && (r & 1))) r += 1;
    return sign | r;
  }
  let h = sign | (e << 10) | (man >>> 13);
  const rest = man & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h += 1;  // a carry into the exponent is right
  return h;
}
function fromHalfBits(h) {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >>> 10) & 0x1f, man = h & 0x3ff;
  if (exp === 0) return sign * man * Math.pow(2, -24);
  if (exp === 0x1f) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * Math.pow(2, exp - 15);
}

(async () => {
  const [model, prefix, ...inputs] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  const types = {};
  for (const m of session.inputMetadata || []) types[m.name] = m.type;
  const feeds = {};
  for (const arg of inputs) {
    const eq = arg.indexOf('=');
    const name = arg.slice(0, eq);
    const { data, shape } = readNpy(arg.slice(eq + 1));
    feeds[name] = types[name] === 'float16' ? new ort.Tensor('float16', Uint16Array.from(data, toHalfBits), shape)
                                             : new ort.Tensor('float32', data, shape);
  }
  const out = await session.run(feeds);
  const dims = [];
  session.outputNames.forEach((name, k) => {
    const t = out[name];
    writeNpy(prefix + '.' + k + '.npy', Array.from(t.data, t.type === 'float16' ? fromHalfBits : Number), t.dims);
    dims.push(t.dims);
  });
  console.log(JSON.stringify({ names: session.outputNames, dims }));
})().catch(e => { console.error('ort_run: ' + e.message); process.exit(1); });
