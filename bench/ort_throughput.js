// Float inference throughput of an ONNX model in ONNX Runtime (npm onnxruntime-node, CPU, all
// graph optimizations as a user gets them by default): random float32 input of the model's
// first input shape with the batch given, one warm-up run, best of the repeats.
// Usage: node bench/ort_throughput.js MODEL.onnx BATCH REPEATS THREADS
// Prints "ort_images_per_s <value>".
'use strict';
const path = require('path');
const ort = require(path.join(__dirname, '..', 'node_modules', 'onnxruntime-node'));

(async () => {
  const [model, batchArg, repeatsArg, threadsArg] = process.argv.slice(2);
  const batch = Number(batchArg || 32), repeats = Number(repeatsArg || 3), threads = Number(threadsArg || 2);
  const session = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'all', intraOpNumThreads: threads,
                                                             interOpNumThreads: 1, executionMode: 'sequential' });
  const name = session.inputNames[0];
  const dims = [batch, 3, 224, 224];
  const meta = session.inputMetadata && session.inputMetadata[0];
  if (meta && Array.isArray(meta.shape)) meta.shape.forEach((d, i) => { if (i > 0 && typeof d === 'number') dims[i] = d; });
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; ++i) data[i] = Math.random() * 2 - 1;
  const feeds = { [name]: new ort.Tensor('float32', data, dims) };
  await session.run(feeds);
  let best = 1e30;
  for (let r = 0; r < repeats; ++r) {
    const t = process.hrtime.bigint();
    await session.run(feeds);
    best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9);
  }
  console.log('ort_batch_s ' + best.toFixed(4));
  console.log('ort_images_per_s ' + (batch / best).toFixed(2));
})().catch(e => { console.error('ort_throughput: ' + e.message); process.exit(1); });
