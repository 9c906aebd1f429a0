// Runs a .tflite file in LiteRT (TFLite's runtime; npm @litertjs/core, its WebAssembly build with
// the XNNPACK CPU delegate) on float32 .npy inputs and writes each output as float32 .npy: the
// independent reference the `.tflite` tests compare with.
// Usage: node tools/tflite_run.js MODEL.tflite OUT_PREFIX IN.npy [IN.npy ...]   (inputs in order)
// Writes OUT_PREFIX.<k>.npy for output k and prints one JSON line {dims}. LiteRT.js exchanges
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
  const [model, prefix, ...inputs] = process.argv.slice(2);
  const log = console.log, warn = console.warn, error = console.error;
  console.log = console.warn = () => {};  // LiteRT's INFO lines and the missing WebGPU device
  console.error = (...a) => { if (!/WebGPU|^(INFO|WARNING): /.test(String(a[0]))) error(...a); };
  const litert = await import('@litertjs/core');
  await litert.loadLiteRt(wasmDir + '/');
  const compiled = await litert.loadAndCompile(new Uint8Array(fs.readFileSync(model)), { accelerator: 'wasm' });
  const feeds = inputs.map(f => { const { data, shape } = readNpy(f); return new litert.Tensor(data, shape); });
  const out = await compiled.run(feeds);
  const dims = [];
  out.forEach((t, k) => {
    const d = Array.from(t.type.layout.dimensions);
    writeNpy(prefix + '.' + k + '.npy', Array.from(t.toTypedArray(), Number), d);
    dims.push(d);
    t.delete();
  });
  feeds.forEach(t => t.delete());
  log(JSON.stringify({ dims }));
})().catch(e => { console.error('tflite_run: ' + (e && e.message ? e.message : e)); process.exit(1); });
