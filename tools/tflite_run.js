// Runs a .tflite file in LiteRT (TFLite's runtime; npm @litertjs/core, its WebAssembly build with
// the XNNPACK CPU delegate) on float32 .npy inputs and writes each output as float32 .npy: the
// independent reference the `.tflite` tests compare with.
// Usage: node tools/tflite_run.js [--each] MODEL.tflite OUT_PREFIX IN.npy [IN.npy ...]   (inputs in order)
// Writes OUT_PREFIX.<k>.npy for output k and prints one JSON line {dims}. --each: the .npy files
// hold K samples along axis 0 for a batch-1 model; each runs on its own and the outputs are
// stacked along axis 0. LiteRT.js exchanges
// float32, int32 and uint8 tensors only: int8-I/O files are refused by it (export: tflite_io:
// float32 writes the same model with float32 ends).
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const { readNpy, writeNpy } = require('./npy.js');

// LiteRT.js loads its Emscripten glue as a browser script (importScripts in a worker): here the
// glue runs in this context, and Emscripten's own Node.js support loads the .wasm.
const wasmDir = path.join(__dirname, '..', 'node_modules', '@litertjs', 'core', 'wasm');
globalThis.self = globalThis;
globalThis.require = require;
globalThis.__dirname = wasmDir;
globalThis.__filename = path.join(wasmDir, 'litert.js');
globalThis.importScripts = (url) => {
  const file = url.startsWith('file:') ? new URL(url).pathname : url;
  vm.runInThisContext(fs.readFileSync(file, 'utf8'), { filename: file });
};

(async () => {
  const args = process.argv.slice(2);
  const each = args[0] === '--each';
  const [model, prefix, ...inputs] = each ? args.slice(1) : args;
  const log = console.log, warn = console.warn, error = console.error;
  console.log = console.warn = () => {};  // LiteRT's INFO lines and the missing WebGPU device
  console.error = (...a) => { if (!/WebGPU|^(INFO|WARNING): /.test(String(a[0]))) error(...a); };
  const litert = await import('@litertjs/core');
  await litert.loadLiteRt(wasmDir + '/');
  const compiled = await litert.loadAndCompile(new Uint8Array(fs.readFileSync(model)), { accelerator: 'wasm' });
  const arrays = inputs.map(readNpy);
  const runs = each ? arrays[0].shape[0] : 1;
  const stacked = [], dims = [];
  for (let r = 0; r < runs; ++r) {
    const feeds = arrays.map(({ data, shape }) => {
      if (!each) return new litert.Tensor(data, shape);
      const n = data.length / shape[0];
      return new litert.Tensor(data.slice(r * n, (r + 1) * n), [1, ...shape.slice(1)]);
    });
    const out = await compiled.run(feeds);
    out.forEach((t, k) => {
      if (r === 0) { stacked.push([]); dims.push(Array.from(t.type.layout.dimensions)); }
      stacked[k].push(...Array.from(t.toTypedArray(), Number));
      t.delete();
    });
    feeds.forEach(t => t.delete());
  }
  dims.forEach((d, k) => {
    const shape = each ? [runs, ...d.slice(1)] : d;
    writeNpy(prefix + '.' + k + '.npy', stacked[k], shape);
    dims[k] = shape;
  });
  log(JSON.stringify({ dims }));
})().catch(e => { console.error('tflite_run: ' + (e && e.message ? e.message : e)); process.exit(1); });
