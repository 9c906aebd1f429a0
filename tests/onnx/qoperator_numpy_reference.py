#!/usr/bin/python3
"""QLinearConv and QLinearMatMul with full-range 8-bit codes against exact integer arithmetic in
numpy (independent of ONNX Runtime, whose u8s8 kernels saturate int16 pair sums on x86 CPUs
without VNNI, so it cannot be the reference for 8-bit weights on every machine).

ONNX semantics: acc = sum((x - x_zp) * (w - w_zp)) (+ int32 bias), y = saturate(round_half_even(
acc * (x_scale * w_scale / y_scale)) + y_zp), the multiplier in float32 as the scales are stored.
Usage: qoperator_numpy_reference.py EDGEQUANT_CLI SCRATCH_DIR   (exit 0: every code equal)
"""
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

cli, scratch = sys.argv[1], sys.argv[2]
os.makedirs(scratch, exist_ok=True)
rng = np.random.default_rng(22)


def multiplier(x_s, w_s, y_s):
    return (np.float32(x_s) * np.asarray(w_s, np.float32)) / np.float32(y_s)


def requant(acc, m, y_zp, lo=0, hi=255):
    return np.clip(np.round(acc * m.astype(np.float64)) + y_zp, lo, hi)


def conv_int(x, w, pads, strides, x_zp):
    x = np.pad(x - x_zp, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    oh, ow = (h - kh) // strides[0] + 1, (wd - kw) // strides[1] + 1
    out = np.zeros((n, o, oh, ow), np.int64)
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * strides[0]:i * strides[0] + kh, j * strides[1]:j * strides[1] + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return out


x_s, x_zp, y_s, y_zp = 0.05, 128, 0.4, 110
w = rng.integers(-128, 128, (6, 4, 3, 3)).astype(np.int8)  # the full int8 range
w_s = rng.uniform(0.004, 0.02, 6).astype(np.float32)
b = rng.integers(-3000, 3000, 6).astype(np.int32)
xq = rng.integers(0, 256, (2, 4, 9, 9)).astype(np.uint8)  # the full uint8 range
# Large accumulators on purpose: max-magnitude codes in every position of one sample.
xq[1, :, :5, :5] = np.where(w[0, :, :1, :1] > 0, 255, 0).astype(np.uint8)
pads, strides = [1, 0, 2, 1], [2, 1]
acc = conv_int(xq.astype(np.int64), w.astype(np.int64), pads, strides, x_zp) + b[None, :, None, None]
want_conv = requant(acc, multiplier(x_s, w_s, y_s)[None, :, None, None], y_zp).astype(np.uint8)

# Power-of-two scales (multiplier 2^-5): exact .5 ties in every few outputs, where ONNX rounds to even.
w_p = (w // 16).astype(np.int8)
p_ws, p_ys = np.full(6, 0.0625, np.float32), 0.25
acc_p = conv_int(xq.astype(np.int64), w_p.astype(np.int64), pads, strides, x_zp)
want_pow2 = requant(acc_p, multiplier(0.0625, p_ws, p_ys)[None, :, None, None], y_zp).astype(np.uint8)
ties = int((acc_p % 16 == 8).sum())

a_s, a_zp, m_s, m_zp = 0.1, 128, 0.7, 128
bq = rng.integers(0, 256, (36, 5)).astype(np.uint8)
b_s, b_zp = np.float32(0.02), np.uint8(128)
aq = rng.integers(0, 256, (3, 36)).astype(np.uint8)
acc_mm = (aq.astype(np.int64) - a_zp) @ (bq.astype(np.int64) - int(b_zp))
want_mm = requant(acc_mm, multiplier(a_s, b_s, m_s), m_zp).astype(np.uint8)


def c(name, v):
    return numpy_helper.from_array(np.asarray(v), name)


nodes = [
    helper.make_node("QLinearConv", ["xq", "x_s", "x_zp", "w", "w_s", "w_zp", "y_s", "y_zp", "b"], ["conv"],
                     pads=pads, strides=strides),
    helper.make_node("QLinearConv", ["xq", "p_xs", "x_zp", "w_p", "p_ws", "w_zp", "p_ys", "y_zp"], ["conv_pow2"],
                     pads=pads, strides=strides),
    helper.make_node("QLinearMatMul", ["aq", "a_s", "a_zp", "bq", "b_s", "b_zp", "m_s", "m_zp"], ["mm"]),
]
inits = [c("x_s", np.float32(x_s)), c("x_zp", np.uint8(x_zp)), c("w", w), c("w_s", w_s),
         c("w_zp", np.zeros(6, np.int8)), c("y_s", np.float32(y_s)), c("y_zp", np.uint8(y_zp)), c("b", b),
         c("a_s", np.float32(a_s)), c("a_zp", np.uint8(a_zp)), c("bq", bq), c("b_s", b_s), c("b_zp", b_zp),
         c("m_s", np.float32(m_s)), c("m_zp", np.uint8(m_zp)), c("p_xs", np.float32(0.0625)), c("p_ws", p_ws), c("w_p", w_p),
         c("p_ys", np.float32(p_ys))]
graph = helper.make_graph(nodes, "qoperator_8bit",
                          [helper.make_tensor_value_info("xq", TensorProto.UINT8, list(xq.shape)),
                           helper.make_tensor_value_info("aq", TensorProto.UINT8, list(aq.shape))],
                          [helper.make_tensor_value_info("conv", TensorProto.UINT8, list(want_conv.shape)),
                           helper.make_tensor_value_info("conv_pow2", TensorProto.UINT8, list(want_pow2.shape)),
                           helper.make_tensor_value_info("mm", TensorProto.UINT8, list(want_mm.shape))], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
path = os.path.join(scratch, "qoperator_8bit.onnx")
onnx.save(model, path)
np.save(os.path.join(scratch, "xq.npy"), xq)
np.save(os.path.join(scratch, "aq.npy"), aq)
out = os.path.join(scratch, "out.npz")
r = subprocess.run([cli, "run", path, "-i", "xq=" + os.path.join(scratch, "xq.npy"), "-i",
                    "aq=" + os.path.join(scratch, "aq.npy"), "-o", out], capture_output=True, text=True)
if r.returncode != 0:
    print("edgequant run failed:", r.stdout, r.stderr)
    sys.exit(1)
got = np.load(out)
bad = 0
print(f"conv_pow2: {ties} exact ties, {int(((want_pow2 == 0) | (want_pow2 == 255)).sum())} saturated")
for name, want in (("conv", want_conv), ("conv_pow2", want_pow2), ("mm", want_mm)):
    g = got[name]
    diff = np.abs(g.astype(np.int64) - want.astype(np.int64))
    print(f"{name}: {want.size} codes, {int((diff > 0).sum())} differ (max {int(diff.max())}), "
          f"accumulator |max| {int(np.abs({'conv': acc, 'conv_pow2': acc_p, 'mm': acc_mm}[name]).max())}")
    bad += int((diff > 0).sum()) + int(g.shape != want.shape)
print(f"{1 - (bad > 0)} passed, {int(bad > 0)} failed")
sys.exit(1 if bad else 0)
