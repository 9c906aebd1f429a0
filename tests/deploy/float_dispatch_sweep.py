#!/usr/bin/env python3
"""Every op of a fixture model dispatched to float in turn (`dispatching_table: {op: float}`), for
ESP targets: `edgequant quantize` must exit 0 or 2 (a float op ESP-DL cannot run is refused by
name at `check`), never crash or report an internal error; and where it writes a .espdl file, the
integer runtime on that file (`edgequant run DIR/model.espdl`) must give the simulation's outputs
(`edgequant run DIR`) exactly, on two samples.
Usage: float_dispatch_sweep.py EDGEQUANT_BIN FIXTURES_DIR WORK_DIR [TARGET ...] (default esp32s3)
"""
import os
import subprocess
import sys

import numpy as np
import onnx

MODELS = ["resnet_style_op13", "mobilenetv2_style_op13", "detection_head_op13", "batchnorm_op13"]


def main():
    eq, fixtures, work = sys.argv[1:4]
    targets = sys.argv[4:] or ["esp32s3"]
    os.makedirs(work, exist_ok=True)
    setting, x_path = os.path.join(work, "float.yaml"), os.path.join(work, "x.npy")
    exported = refused = 0
    failures = []
    for stem in MODELS:
        model = os.path.join(fixtures, "models", stem + ".onnx")
        data = os.path.join(fixtures, "models", stem.replace("_op13", "_input.npy"))
        np.save(x_path, np.load(data)[:2])
        for node in onnx.load(model).graph.node:
            with open(setting, "w") as f:
                f.write('dispatching_table:\n  "%s": float\n' % node.name)
            for target in targets:
                out = os.path.join(work, "out")
                r = subprocess.run([eq, "quantize", model, "-t", target, "-c", data, "--calib-steps", "1",
                                    "--batch-size", "8", "-s", setting, "-o", out], capture_output=True, text=True)
                case = "%s %s %s" % (stem, node.name, target)
                if r.returncode == 2:
                    refused += 1
                    continue
                if r.returncode != 0:
                    failures.append("%s: quantize exit %d: %s" % (case, r.returncode, (r.stdout + r.stderr)[-300:]))
                    continue
                sim, integer = os.path.join(work, "sim.npz"), os.path.join(work, "int.npz")
                a = subprocess.run([eq, "run", out, "-i", x_path, "-o", sim], capture_output=True, text=True)
                b = subprocess.run([eq, "run", os.path.join(out, "model.espdl"), "-i", x_path, "-o", integer],
                                   capture_output=True, text=True)
                if a.returncode or b.returncode:
                    failures.append("%s: run exit %d / %d: %s" % (case, a.returncode, b.returncode, a.stderr + b.stderr))
                    continue
                want, got = np.load(sim), np.load(integer)
                diff = max(float(np.abs(want[k] - got[k]).max()) for k in want.files)
                exported += 1
                if diff != 0:
                    failures.append("%s: max |integer runtime - simulation| = %g" % (case, diff))
    print("float dispatch sweep: %d exported and exact, %d refused (exit 2), %d failures" % (exported, refused, len(failures)))
    for f in failures:
        print("FAIL", f)
    return 1 if failures or exported == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
