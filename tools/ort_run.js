// Runs an ONNX model in ONNX Runtime (npm onnxruntime-node) on float32 .npy inputs and writes each
// output as float32 .npy: the independent reference the exporter tests compare with.
// Usage: node tools/ort_run.js MODEL.onnx OUT_PREFIX NAME=IN.npy [NAME=IN.npy ...]
// Writes OUT_PREFIX.<k>.npy for output k (graph order) and prints one JSON line {names, dims}.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', 'node_modules', 'onnxruntime-node'));

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(file + ': not a .npy file');
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + hlen;
  const header = buf.toString('latin1', major === 1 ? 10 : 12, start);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header)) throw new Error(file + ': need little-endian float32, C order');
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(',').map(s => s.trim()).filter(s => s.length).map(Number);
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length));
  return { data, shape };
}

function writeNpy(file, data, dims) {
  let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims.join(', ') + (dims.length === 1 ? ',' : '') + '), }';
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.from(new Float32Array(data).buffer);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), body]));
}

(async () => {
  const [model, prefix, ...inputs] = process.argv.slice(2);
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  const feeds = {};
  for (const arg of inputs) {
    const eq = arg.indexOf('=');
    const { data, shape } = readNpy(arg.slice(eq + 1));
    feeds[arg.slice(0, eq)] = new ort.Tensor('float32', data, shape);
  }
  const out = await session.run(feeds);
  const dims = [];
  session.outputNames.forEach((name, k) => {
    const t = out[name];
    writeNpy(prefix + '.' + k + '.npy', Array.from(t.data, Number), t.dims);
    dims.push(t.dims);
  });
  console.log(JSON.stringify({ names: session.outputNames, dims }));
})().catch(e => { console.error('ort_run: ' + e.message); process.exit(1); });
