#!/usr/bin/python3
"""The block-training loop of EdgeQuant's TQT pass written in PyTorch eager (Debian's
python3-torch), for bench/tqt.sh to time in the same run as EdgeQuant.

Same loop, not the same numbers: the ONNX model's ops in graph order (Constant/Identity dropped,
as EdgeQuant's normalisation does), cut into blocks that start at a Conv/Gemm and hold up to
--block-size ops; per block the float targets of every cached batch, the loss over the cache,
--steps Adam steps (one cached batch per step, cycling) on the block's weights, biases and log2
scales with straight-through rounding (power-of-two fake quantization of weights, biases and
activations; half-up rounding as ESP32-S3), the loss over the cache again, rollback if worse,
then the block's quantized outputs for the next block. Scales start from max calibration.

Prints one line per block (ops, FLOPs per step, steps/s) and the total:
  reference_block K NAME ops=N mflop_per_step=F steps_per_s=S
  reference_tqt_s T
Also measures this machine's fp32 matrix-product rate (a 2048^3 GEMM through PyTorch and
NumPy, the better of the two, before and after the loop; the higher): peak_gflops G. With
--eq-log (the output of an EdgeQuant run of the same model and settings), it joins EdgeQuant's per-block lines to these: steps/s of both,
EdgeQuant's achieved GFLOP/s and fraction of the measured peak, and the time ratio
reference / EdgeQuant (block loop and whole TQT pass).

Run: /usr/bin/python3 bench/tqt_reference.py MODEL.onnx --data IDX.gz|random [--batches 32]
     [--batch 32] [--steps 500] [--block-size 4] [--lr 1.25e-4] [--threads 2] [--eq-log FILE]
"""
import re
import argparse
import gzip
import math
import time

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper, shape_inference

COMPUTE = {"Conv", "Gemm", "MatMul", "ConvTranspose"}


def load_idx_images(path, count):
    with gzip.open(path, "rb") as f:
        data = f.read()
    n, h, w = (int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
    images = np.frombuffer(data, np.uint8, offset=16).reshape(n, 1, h, w)[:count]
    return torch.from_numpy(images.astype(np.float32) / 255.0)


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class Graph:
    def __init__(self, path):
        model = shape_inference.infer_shapes(onnx.load(path))
        g = model.graph
        self.consts = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in g.initializer}
        self.alias = {}
        self.ops = []
        for n in g.node:
            if n.op_type == "Constant":
                self.consts[n.output[0]] = torch.from_numpy(numpy_helper.to_array(attrs(n)["value"]).copy())
            elif n.op_type == "Identity":
                self.alias[n.output[0]] = self.name(n.input[0])
            else:
                self.ops.append(n)
        self.input = g.input[0].name
        self.outputs = [self.name(o.name) for o in g.output]
        self.shapes = {}
        for v in list(g.value_info) + list(g.input) + list(g.output):
            self.shapes[v.name] = [d.dim_value for d in v.type.tensor_type.shape.dim]

    def name(self, v):
        while v in self.alias:
            v = self.alias[v]
        return v

    def ins(self, n):
        return [self.name(v) for v in n.input]


def run_op(n, xs, a):
    t = n.op_type
    if t == "Conv":
        pads = a.get("pads", [0, 0, 0, 0])
        x = xs[0]
        if pads[0] != pads[2] or pads[1] != pads[3]:
            x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
            pads = [0, 0, 0, 0]
        return F.conv2d(x, xs[1], xs[2] if len(xs) > 2 else None, a.get("strides", [1, 1]), pads[:2],
                        a.get("dilations", [1, 1]), a.get("group", 1))
    if t == "Gemm":
        w = xs[1].t() if a.get("transB", 0) else xs[1]
        return xs[0] @ w + (xs[2] if len(xs) > 2 else 0)
    if t == "Clip":
        return xs[0].clamp(float(xs[1]) if len(xs) > 1 else None, float(xs[2]) if len(xs) > 2 else None)
    if t == "Relu":
        return F.relu(xs[0])
    if t == "Add":
        return xs[0] + xs[1]
    if t == "MaxPool":
        pads = a.get("pads", [0, 0, 0, 0])
        return F.max_pool2d(xs[0], a["kernel_shape"], a.get("strides", a["kernel_shape"]), pads[:2])
    if t == "GlobalAveragePool":
        return xs[0].mean((2, 3), keepdim=True)
    if t == "Flatten":
        return xs[0].flatten(a.get("axis", 1))
    raise SystemExit(f"tqt_reference: op {t} ({n.name}) is not written here")


def cut_blocks(ops, block_size):
    blocks = [[]]
    for n in ops:
        compute = n.op_type in COMPUTE
        if compute and (len(blocks[-1]) >= block_size or (blocks[-1] and blocks[-1][0].op_type not in COMPUTE)):
            blocks.append([])
        blocks[-1].append(n)
    return [b for b in blocks if b]


def pow2_log(x):
    return math.ceil(math.log2(max(float(x.abs().max()), 1e-12) / 127.0))


def fake_quant(x, alpha, lo=-128, hi=127):
    a = alpha + (torch.round(alpha) - alpha).detach()
    s = torch.pow(2.0, a)
    v = x / s
    r = v + (torch.floor(v + 0.5) - v).detach()
    return torch.clamp(r, lo, hi) * s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", default="random")
    ap.add_argument("--batches", type=int, default=32)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--block-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1.25e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eq-log")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    g = Graph(args.model)
    shape = g.shapes[g.input][1:]
    if args.data == "random":
        data = torch.randn(args.batches * args.batch, *shape)
    else:
        data = load_idx_images(args.data, args.batches * args.batch)
    batches = [data[i * args.batch:(i + 1) * args.batch].contiguous() for i in range(args.batches)]
    readers = {}
    for n in g.ops:
        for v in g.ins(n):
            readers.setdefault(v, []).append(n)

    # Values quantized: every op output except a computing op's output read only by an activation
    # (fused on the chip), as EdgeQuant's plan does; calibration by max over the first batch.
    float_env = {g.input: batches[0]}
    for n in g.ops:
        xs = [float_env.get(v, g.consts.get(v)) for v in g.ins(n)]
        float_env[g.name(n.output[0])] = run_op(n, xs, attrs(n))
    alphas = {g.input: torch.tensor(float(pow2_log(batches[0])))}
    for n in g.ops:
        out = g.name(n.output[0])
        rd = readers.get(out, [])
        fused = n.op_type in COMPUTE and rd and all(r.op_type in ("Relu", "Clip") for r in rd)
        if not fused:
            alphas[out] = torch.tensor(float(pow2_log(float_env[out])))
    weights = {}
    for n in g.ops:
        if n.op_type in COMPUTE:
            w = g.name(n.input[1])
            weights[w] = g.consts[w].clone()
            alphas[w] = torch.tensor(float(pow2_log(weights[w])))
            if len(n.input) > 2:
                weights[g.name(n.input[2])] = g.consts[g.name(n.input[2])].clone()
    del float_env

    blocks = cut_blocks(g.ops, args.block_size)
    qcache = {g.input: [fake_quant(b, alphas[g.input]) for b in batches]}
    fcache = {g.input: list(batches)}

    def block_io(blk):
        inside = {g.name(n.output[0]) for n in blk}
        ins = []
        for n in blk:
            for v in g.ins(n):
                if v not in inside and v not in g.consts and v not in ins:
                    ins.append(v)
        outs = [g.name(n.output[0]) for n in blk
                if g.name(n.output[0]) in g.outputs or any(r not in blk for r in readers.get(g.name(n.output[0]), []))]
        return ins, outs

    def run_block(blk, env, quantized):
        env = dict(env)
        for n in blk:
            xs = []
            for k, v in enumerate(g.ins(n)):
                if v in env:
                    xs.append(env[v])
                    continue
                c = weights.get(v, g.consts.get(v))
                if quantized and v in weights:
                    if k == 1:
                        c = fake_quant(c, alphas[v])
                    else:  # bias on the grid of input scale x weight scale (int32)
                        sa = torch.round(alphas[g.ins(n)[0]]) + torch.round(alphas[g.ins(n)[1]])
                        c = fake_quant(c, sa.detach(), -2 ** 31, 2 ** 31 - 1)
                xs.append(c)
            y = run_op(n, xs, attrs(n))
            out = g.name(n.output[0])
            if quantized and out in alphas:
                y = fake_quant(y, alphas[out])
            env[out] = y
        return env

    def fill(cache, blk, ins, outs, quantized):
        with torch.no_grad():
            for o in outs:
                cache[o] = []
            for i in range(len(batches)):
                env = run_block(blk, {v: cache[v][i] for v in ins}, quantized)
                for o in outs:
                    cache[o].append(env[o])

    def mse(env, outs, targets):
        return sum(((env[o] - t) ** 2).mean() for o, t in zip(outs, targets))

    last_reader = {}
    for k, blk in enumerate(blocks):
        for v in block_io(blk)[0]:
            last_reader[v] = k
    peak_before = gemm_gflops()
    start = time.perf_counter()
    rows = []
    for k, blk in enumerate(blocks):
        ins, outs = block_io(blk)
        fill(fcache, blk, ins, outs, False)  # float targets from float inputs
        params, scales = [], []
        for n in blk:
            for k2, v in enumerate(g.ins(n)):
                if v in weights and n.op_type in COMPUTE and not any(p is weights[v] for p in params):
                    params.append(weights[v].requires_grad_())
                    if k2 == 1:
                        scales.append(alphas[v].requires_grad_())
            out = g.name(n.output[0])
            if out in alphas and not any(a is alphas[out] for a in scales):
                scales.append(alphas[out].requires_grad_())

        def cache_loss():
            with torch.no_grad():
                return sum(float(mse(run_block(blk, {v: qcache[v][i] for v in ins}, True), outs,
                                     [fcache[o][i] for o in outs])) for i in range(len(batches))) / len(batches)

        t0 = time.perf_counter()
        before = cache_loss()
        snapshot = [p.detach().clone() for p in params + scales]
        adam = torch.optim.Adam([{"params": params}, {"params": scales}], lr=args.lr)
        t_train = time.perf_counter()
        for step in range(args.steps):
            i = step % len(batches)
            adam.zero_grad()
            env = run_block(blk, {v: qcache[v][i] for v in ins}, True)
            mse(env, outs, [fcache[o][i] for o in outs]).backward()
            adam.step()
        train_s = time.perf_counter() - t_train
        after = cache_loss()
        if not after < before:
            with torch.no_grad():
                for p, s in zip(params + scales, snapshot):
                    p.copy_(s)
        for p in params + scales:
            p.requires_grad_(False)
        fill(qcache, blk, ins, outs, True)  # the trained block's outputs for the next blocks
        for v in [v for v in qcache if last_reader.get(v, -1) <= k]:  # freed after their last reader
            del qcache[v], fcache[v]
        flops = 0
        for n in blk:
            if n.op_type in COMPUTE:
                out = g.shapes[n.output[0]]
                w = g.consts[g.name(n.input[1])]
                per_out = w[0].numel() if n.op_type == "Conv" else w.shape[1 if attrs(n).get("transB") else 0]
                macs = args.batch * int(np.prod(out[1:])) * per_out
                # forward, weight gradient, and the input gradient except for the first block's input
                flops += 2 * macs * (2 if g.ins(n)[0] == g.input else 3)
        rows.append((blk[0].name, len(blk), flops, args.steps / max(train_s, 1e-9)))
        print(f"reference_block {k + 1} {blk[0].name} ops={len(blk)} mflop_per_step={flops / 1e6:.1f} "
              f"steps_per_s={args.steps / max(train_s, 1e-9):.1f} loss {before:.3e} -> {after:.3e} "
              f"block_s={time.perf_counter() - t0:.2f}", flush=True)
    ref_s = time.perf_counter() - start
    print(f"reference_tqt_s {ref_s:.2f}")

    peak = max(peak_before, gemm_gflops())
    print(f"peak_gflops {peak:.1f}")
    if args.eq_log:
        join(args.eq_log, rows, ref_s, peak)


def gemm_gflops():
    """fp32 rate of a 2048^3 matrix product, the better of PyTorch and NumPy, best of 3 each."""
    a = torch.randn(2048, 2048)
    an = a.numpy()
    best = 1e30
    for f in (lambda: a @ a, lambda: an @ an):
        for _ in range(3):
            t = time.perf_counter()
            f()
            best = min(best, time.perf_counter() - t)
    return 2 * 2048 ** 3 / best / 1e9


def join(path, rows, ref_s, peak):
    text = open(path).read()
    eq = re.findall(r"tqt: block (\d+)/\d+ \((.*), (\d+) ops\):.* ([\d.]+) steps/s", text)
    total = re.search(r"tqt: .* steps in ([\d.]+) s, (\d+) threads", text)
    if len(eq) != len(rows) or not total:
        raise SystemExit(f"tqt_reference: {path} has {len(eq)} block lines, the reference cut {len(rows)} blocks")
    print(f"{'block':>5} {'first op':<44} {'ops':>3} {'MFLOP/step':>10} {'EQ steps/s':>10} {'GFLOP/s':>8} "
          f"{'% peak':>6} {'ref steps/s':>11} {'EQ/ref':>6}")
    for (k, name, ops, eq_rate), (rname, rops, flops, ref_rate) in zip(eq, rows):
        if name != rname or int(ops) != rops:
            raise SystemExit(f"tqt_reference: block {k} is {name} ({ops} ops) in EdgeQuant, {rname} ({rops}) here")
        gflops = flops * float(eq_rate) / 1e9
        print(f"{k:>5} {name[-44:]:<44} {rops:>3} {flops / 1e6:>10.1f} {float(eq_rate):>10.1f} {gflops:>8.1f} "
              f"{100 * gflops / peak:>6.1f} {ref_rate:>11.1f} {float(eq_rate) / ref_rate:>6.2f}")
    eq_s = float(total.group(1))
    print(f"tqt pass: edgequant {eq_s:.2f} s ({total.group(2)} threads), PyTorch-eager reference {ref_s:.2f} s, "
          f"reference / edgequant = {ref_s / eq_s:.2f}")

if __name__ == "__main__":
    main()
