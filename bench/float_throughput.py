#!/usr/bin/python3
"""Float inference throughput: EdgeQuant's executor vs ONNX Runtime (npm onnxruntime-node, all
graph optimizations, bench/ort_throughput.js) and vs Debian's PyTorch (eager, channels_last),
torchvision mobilenet_v2 architecture (random weights), batch 32, 3x224x224, same thread count,
best of 3, measured in the same run. Prints the figures and the ratios (target vs ONNX Runtime
>= 1.0).

Run: /usr/bin/python3 bench/float_throughput.py [--build build] [--threads 2]
"""
import argparse
import os
import re
import subprocess
import time

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(weights=None).eval()
    path = os.path.join(args.build, "bench", "mobilenet_v2.onnx")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    x = torch.randn(args.batch, 3, 224, 224)
    if not os.path.exists(path):
        torch.onnx.export(model, x[:1], path, opset_version=13, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})

    cl_model = model.to(memory_format=torch.channels_last)
    xc = x.contiguous(memory_format=torch.channels_last)
    best = 1e30
    with torch.no_grad():
        cl_model(xc)
        for _ in range(args.repeats):
            t = time.perf_counter()
            cl_model(xc)
            best = min(best, time.perf_counter() - t)
    torch_ips = args.batch / best

    out = subprocess.run([os.path.join(args.build, "bench", "bench_float"), path, "--batch", str(args.batch),
                          "--repeats", str(args.repeats), "--threads", str(args.threads)],
                         check=True, capture_output=True, text=True).stdout
    eq_ips = float(re.search(r"edgequant_images_per_s ([\d.]+)", out).group(1))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ort_out = subprocess.run(["node", os.path.join(root, "bench", "ort_throughput.js"), path, str(args.batch),
                              str(args.repeats), str(args.threads)], check=True, capture_output=True, text=True).stdout
    ort_ips = float(re.search(r"ort_images_per_s ([\d.]+)", ort_out).group(1))
    print(f"model: torchvision mobilenet_v2 (random weights), batch {args.batch}, 3x224x224, "
          f"{args.threads} threads, best of {args.repeats}")
    print(f"torch eager channels_last : {torch_ips:8.2f} images/s ({best:.3f} s/batch)")
    print(f"onnx runtime (node, all)  : {ort_ips:8.2f} images/s")
    print(f"edgequant executor        : {eq_ips:8.2f} images/s")
    print(f"ratio edgequant/ort       : {eq_ips / ort_ips:8.3f}   (target >= 1.0)")
    print(f"ratio edgequant/torch     : {eq_ips / torch_ips:8.3f}")


if __name__ == "__main__":
    main()
