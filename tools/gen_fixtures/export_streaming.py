#!/usr/bin/python3
"""Exports models/causal_tcn_op13.onnx: a causal temporal convolution network with per-frame
outputs (a wake-word/VAD head), as PyTorch users write causal convolutions: F.pad(x, (d*(k-1), 0))
then Conv1d without padding (ONNX: a Pad before each Conv, fused at import), dilated depthwise
blocks with a Swish (Sigmoid * x), a residual Add, a causal AvgPool1d and a pointwise classifier
giving [1, 8, T] logits. Every output frame depends on the current and past frames only, so the
model can run as a streaming model, a few frames at a time (`streaming:` in the setting). Fixed
batch 1 and T = 24 frames; 16 seeded input samples and torch's outputs.
Run: /usr/bin/python3 tools/gen_fixtures/export_streaming.py   (deterministic: fixed seeds)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "models")


class CausalBlock(nn.Module):
    def __init__(self, channels, dilation):
        super().__init__()
        self.left = 2 * dilation  # d * (k - 1), k = 3
        self.dw = nn.Conv1d(channels, channels, 3, dilation=dilation, groups=channels)
        self.pw = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        y = F.relu(self.dw(F.pad(x, (self.left, 0))))
        y = self.pw(y)
        return y * torch.sigmoid(y)


class CausalTcn(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Conv1d(16, 32, 1)
        self.b1 = CausalBlock(32, 1)
        self.b2 = CausalBlock(32, 2)
        self.avg = nn.AvgPool1d(3, stride=1)
        self.out = nn.Conv1d(32, 8, 1)

    def forward(self, x):
        y = self.inp(x)
        y = y + self.b2(self.b1(y))
        y = self.avg(F.pad(y, (2, 0)))
        return self.out(y)


def main():
    gen = torch.Generator().manual_seed(1357)
    torch.manual_seed(1357)
    model = CausalTcn().eval()
    x = torch.randn(16, 1, 16, 24, generator=gen)
    with torch.no_grad():
        y = torch.stack([model(s) for s in x])
        # Causality, checked in float before export: frames after t do not change output t.
        z = x[0].clone()
        z[..., 12:] = torch.randn(1, 16, 12, generator=gen)
        assert torch.allclose(model(z)[..., :12], y[0][..., :12], atol=1e-6)
    np.save(os.path.join(OUT, "causal_tcn_input.npy"), x.reshape(16, 16, 24).numpy())
    np.save(os.path.join(OUT, "causal_tcn_op13_output.npy"), y.reshape(16, 8, 24).numpy())
    path = os.path.join(OUT, "causal_tcn_op13.onnx")
    torch.onnx.export(model, x[0], path, opset_version=13, input_names=["input"], output_names=["logits"])
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
