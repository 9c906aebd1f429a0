#!/usr/bin/python3
"""ESP-DL's own runtime (../shared/espdl-oracle) and EdgeQuant's integer runtime on the .espdl
files Espressif's toolchain wrote (../shared/espdl-zoo), on the same inputs.

- Every file with test values: the oracle's Model::test() and EdgeQuant's `run` both pass.
- The streaming tutorial's whole-sequence model on a random input: the output codes of both
  runtimes are equal.
- Its streaming model, fed chunk after chunk: `edgequant run --embed-test-values` writes a copy
  with chunk 0 as test values; the oracle runs Model::test() (chunk 0 from reset), its own
  re-check (chunk 0 again) and then the 8 chunks of --npy, all with its caches carried, so
  EdgeQuant streams [c0, c0, c0..c7] and the 10 outputs must be equal code for code.
- EdgeQuant's own streaming export of tests/fixtures/models/causal_tcn_op13.onnx (c, esp32s3):
  chunk by chunk equals the whole-sequence file, and ESP-DL's runtime agrees chunk for chunk.
The esp32p4 files are run by the half-to-even build of the oracle, the others by the half-up one.
Usage: espdl_zoo_oracle.py EDGEQUANT_BIN ORACLE_DIR ZOO_DIR WORK_DIR. Exit 77: no oracle/zoo.
"""
import os
import re
import subprocess
import sys

import numpy as np

eq, oracle_src, zoo, work = sys.argv[1:5]
if not os.path.isfile(os.path.join(oracle_src, "build.sh")) or not os.path.isdir(zoo):
    print("SKIP: no ESP-DL oracle or zoo")
    sys.exit(77)
os.makedirs(work, exist_ok=True)


def build(variant):
    env = dict(os.environ, ESPDL_HOST_ROUND=variant)
    d = os.path.join(work, "espdl-oracle" if variant == "half_up" else "espdl-oracle-even")
    out = subprocess.run(["bash", os.path.join(oracle_src, "build.sh"), d], env=env, capture_output=True, text=True)
    if out.returncode:
        print("FAIL: the oracle did not build:", out.stderr[-2000:])
        sys.exit(1)
    return out.stdout.strip().splitlines()[-1]


oracles = {"half_up": build("half_up"), "half_even": build("half_even")}
WHOLE = "how_to_deploy_streaming_model_test_streaming_model_esp32p4_model.espdl"
STREAM = "how_to_deploy_streaming_model_test_streaming_model_esp32p4_streaming_model.espdl"
failures = 0


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def oracle_codes(stdout, exponent):
    rows = []
    for line in stdout.splitlines():
        if line.startswith("sample "):
            vals = line.split(":", 1)[1].split("argmax")[0].split()
            rows.append([round(float(v) * 2.0**-exponent) for v in vals])
    return np.array(rows)


def eq_codes(npz, exponent):
    z = np.load(npz)
    return np.rint(z[z.files[0]] * 2.0**-exponent).astype(int)


print(f"{'file':84s} {'rounding':9s} {'oracle':20s} edgequant")
for name in sorted(os.listdir(zoo)):
    if not name.endswith(".espdl") or name == STREAM:
        continue
    path = os.path.join(zoo, name)
    p4 = "esp32p4" in name or "_p4_" in name
    rounding = "half_even" if p4 else "half_up"
    o = run([oracles[rounding], path, "--log", "0"])
    o_ok = o.returncode == 0 and "RESULT Model::test() PASS" in o.stdout and "manual exact compare: PASS" in o.stdout
    target = ["-t", "esp32p4"] if p4 and name.startswith("how_to") else []
    e = run([eq, "run", path] + target)
    e_ok = e.returncode == 0 and "Model::test() PASS" in e.stdout
    failures += not (o_ok and e_ok)
    print(f"{name:84s} {rounding:9s} {'test PASS, exact' if o_ok else 'FAIL rc %d' % o.returncode:20s} "
          f"{'test PASS' if e_ok else 'FAIL: ' + (e.stderr.strip().splitlines() or ['?'])[-1]}")

# The whole-sequence model on a random input ([1, W=24, C=16] codes at the input exponent -5).
rng = np.random.default_rng(2026)
x = (rng.integers(-128, 128, size=(24, 16)) * 2.0**-5).astype(np.float32)
np.save(os.path.join(work, "zoo_whole.npy"), x[None])
np.save(os.path.join(work, "zoo_whole_oracle.npy"), x.T[None, :, None, :].copy())  # NCHW: W as width
e = run([eq, "run", os.path.join(zoo, WHOLE), "-t", "esp32p4", "-i", os.path.join(work, "zoo_whole.npy"),
         "-o", os.path.join(work, "zoo_whole.npz")])
o = run([oracles["half_even"], os.path.join(zoo, WHOLE), "--log", "0", "--npy",
         os.path.join(work, "zoo_whole_oracle.npy")])
mine = eq_codes(os.path.join(work, "zoo_whole.npz"), -8) if e.returncode == 0 else None
theirs = oracle_codes(o.stdout, -8)
ok = mine is not None and theirs.shape == mine.shape and (theirs == mine).all()
failures += not ok
print(f"whole-sequence model, random input: EdgeQuant == ESP-DL on {mine.size if mine is not None else 0} codes: "
      f"{'EXACT' if ok else 'DIFF'}")

# The streaming model: chunks of 3 frames, [c0, c0, c0..c7] through EdgeQuant.
chunks = x.reshape(8, 3, 16)
np.save(os.path.join(work, "zoo_stream10.npy"), np.concatenate([chunks[:1], chunks[:1], chunks]))
np.save(os.path.join(work, "zoo_stream_oracle.npy"), chunks.transpose(0, 2, 1)[:, :, None, :].copy())
embedded = os.path.join(work, "zoo_stream_with_test_values.espdl")
e = run([eq, "run", os.path.join(zoo, STREAM), "-t", "esp32p4", "-i", os.path.join(work, "zoo_stream10.npy"),
         "-o", os.path.join(work, "zoo_stream10.npz"), "--embed-test-values", embedded])
if e.returncode:
    print("FAIL: edgequant run on the streaming model:", e.stderr.strip())
    sys.exit(1)
mine = eq_codes(os.path.join(work, "zoo_stream10.npz"), -8)
o = run([oracles["half_even"], embedded, "--log", "0", "--npy", os.path.join(work, "zoo_stream_oracle.npy"),
         "--count", "8"])
test_pass = "RESULT Model::test() PASS" in o.stdout
m = re.search(r"host:([-\d ]+)", o.stdout)  # the oracle's re-check of chunk 0 (second run)
# (printed when it differs from the embedded chunk-0 output; equal otherwise)
recheck = np.array([int(v) for v in m.group(1).split()]) if m else (mine[0] if "compare: PASS" in o.stdout else None)
theirs = oracle_codes(o.stdout, -8)
ok = (test_pass and recheck is not None and (recheck == mine[1][: len(recheck)]).all() and theirs.shape == (8, 16)
      and (theirs == mine[2:]).all())
failures += not ok
print(f"streaming model, 10 chunks with caches carried: Model::test() (chunk 0 from reset) "
      f"{'PASS' if test_pass else 'FAIL'}; chunks 1-9 EdgeQuant == ESP-DL: {'EXACT' if ok else 'DIFF'}")
# And the stream ends where the whole sequence does.
whole = eq_codes(os.path.join(work, "zoo_whole.npz"), -8)
ends = (mine[-1] == whole[0]).all()
failures += not ends
print(f"streaming model's last chunk == whole-sequence model's output: {'EXACT' if ends else 'DIFF'}")
# EdgeQuant's own streaming export (export: streaming: {frames: 4}) of the causal fixture
# (tools/gen_fixtures/export_streaming.py), for c and esp32s3 (the oracle's half-up build): the
# stream of six 4-frame chunks equals the whole-sequence file's 24 frames, and ESP-DL's runtime
# gives the same codes chunk for chunk (the same [c0, c0, c0..c5] protocol as above).
fixtures = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
seq = np.load(os.path.join(fixtures, "models", "causal_tcn_input.npy"))[7:8]  # [1, 16, 24] NCW
chunks = np.stack([seq[0][:, 4 * i:4 * i + 4] for i in range(6)])  # [6, 16, 4]
np.save(os.path.join(work, "tcn_whole.npy"), seq)
np.save(os.path.join(work, "tcn_chunks.npy"), chunks)
np.save(os.path.join(work, "tcn_chunks8.npy"), np.concatenate([chunks[:1], chunks[:1], chunks]))
np.save(os.path.join(work, "tcn_chunks_oracle.npy"), chunks[:, :, None, :].copy())
for target in ["c", "esp32s3"]:
    out = os.path.join(work, "tcn_stream_" + target)
    q = run([eq, "quantize", os.path.join(fixtures, "models", "causal_tcn_op13.onnx"), "-t", target, "-c",
             os.path.join(fixtures, "models", "causal_tcn_input.npy"), "-s",
             os.path.join(fixtures, "settings", "streaming4.yaml"), "-o", out])
    if q.returncode:
        print("FAIL: quantize with streaming for", target, q.stderr.strip())
        failures += 1
        continue
    paths = {k: os.path.join(work, f"tcn_{target}_{k}.npz") for k in ["whole", "chunks", "chunks8"]}
    run([eq, "run", os.path.join(out, "model.espdl"), "-i", os.path.join(work, "tcn_whole.npy"), "-o", paths["whole"]])
    run([eq, "run", os.path.join(out, "model_streaming.espdl"), "-i", os.path.join(work, "tcn_chunks.npy"), "-o",
         paths["chunks"]])
    embedded = os.path.join(work, f"tcn_{target}_with_c0.espdl")
    run([eq, "run", os.path.join(out, "model_streaming.espdl"), "-i", os.path.join(work, "tcn_chunks8.npy"), "-o",
         paths["chunks8"], "--embed-test-values", embedded])
    z = {k: np.load(v) for k, v in paths.items()}
    z = {k: v[v.files[0]] for k, v in z.items()}
    stream = np.concatenate(list(z["chunks"]), axis=1)  # [8, 24]
    ends = np.array_equal(stream, z["whole"][0])
    o = run([oracles["half_up"], embedded, "--log", "0", "--npy", os.path.join(work, "tcn_chunks_oracle.npy"),
             "--count", "6"])
    exp = int(re.search(r"output exponent (-?\d+)", o.stdout).group(1)) if "output exponent" in o.stdout else 0
    theirs = oracle_codes(o.stdout, exp)
    mine = np.rint(z["chunks8"][2:] * 2.0**-exp).astype(int)  # [6, 8, 4] NCW
    same = theirs.shape == (6, 32) and np.array_equal(theirs.reshape(6, 4, 8).transpose(0, 2, 1), mine)
    ok = ends and same and "RESULT Model::test() PASS" in o.stdout
    failures += not ok
    print(f"causal_tcn {target} streaming (4 frames/run): chunks == whole sequence: {'EXACT' if ends else 'DIFF'}; "
          f"ESP-DL == EdgeQuant on 6 chunks: {'EXACT' if same else 'DIFF'}")
print(f"{failures} failure(s)")
sys.exit(1 if failures else 0)
