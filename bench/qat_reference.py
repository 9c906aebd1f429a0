#!/usr/bin/python3
"""A plain float training epoch of an ONNX classifier in PyTorch eager (Debian's python3-torch):
the reference bench/qat_table.sh times in the same run as EdgeQuant's QAT epoch.

The ONNX model's ops run in graph order through bench/tqt_reference.py's interpreter; the weights
and biases of every Conv/Gemm train with Adam (lr 1e-4) on cross-entropy, shuffled batches of
--batch from the IDX training set, no quantization. Prints:
  reference_float_epoch_s T   (training only: the data are loaded before the clock starts)
  reference_train_top1 A

Run: /usr/bin/python3 bench/qat_reference.py MODEL.onnx --data TRAIN-IDX.gz [--batch 64] [--threads 2]
"""
import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tqt_reference import COMPUTE, Graph, attrs, load_idx_images, run_op  # noqa: E402


def load_idx_labels(path):
    with gzip.open(path.replace("images-idx3", "labels-idx1"), "rb") as f:
        return torch.from_numpy(np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    g = Graph(args.model)
    x_all = load_idx_images(args.data, 10**9)
    y_all = load_idx_labels(args.data)
    params = []
    for n in g.ops:
        if n.op_type in COMPUTE:
            for v in g.ins(n)[1:]:
                if v in g.consts and not g.consts[v].requires_grad:
                    g.consts[v] = g.consts[v].float().requires_grad_(True)
                    params.append(g.consts[v])
    opt = torch.optim.Adam(params, lr=1e-4)
    order = torch.randperm(x_all.shape[0])
    correct = 0
    start = time.perf_counter()
    for b in range(0, x_all.shape[0], args.batch):
        idx = order[b:b + args.batch]
        env = {g.input: x_all[idx]}
        for n in g.ops:
            xs = [env[v] if v in env else g.consts[v] for v in g.ins(n) if v]
            env[g.name(n.output[0])] = run_op(n, xs, attrs(n))
        logits = env[g.outputs[0]].reshape(idx.shape[0], -1)
        loss = F.cross_entropy(logits, y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        correct += int((logits.argmax(1) == y_all[idx]).sum())
    secs = time.perf_counter() - start
    print(f"reference_float_epoch_s {secs:.2f}")
    print(f"reference_train_top1 {100.0 * correct / x_all.shape[0]:.2f}")


if __name__ == "__main__":
    main()
