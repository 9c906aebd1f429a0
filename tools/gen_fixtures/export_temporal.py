#!/usr/bin/python3
"""Exports models/temporal_conv_op13.onnx: a keyword-spotting-style temporal convolution network
on a [1, 16 mel bins, 32 frames] feature map, as torch.onnx writes it: 1-D Conv with BatchNorm1d
(folded at import), a strided 1-D Conv, a dilated depthwise 1-D Conv, a pointwise 1-D Conv,
AvgPool1d and MaxPool1d, a residual Add, a global average over time (GlobalAveragePool on a 3-D
tensor) and a Linear head. Fixed batch 1 (torch's default export), 16 seeded input samples and
torch's outputs for them.
Run: /usr/bin/python3 tools/gen_fixtures/export_temporal.py   (deterministic: fixed seeds)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "models")


class TemporalNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv1d(16, 24, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm1d(24)
        self.down = nn.Conv1d(24, 32, 3, stride=2, padding=1)
        self.dw = nn.Conv1d(32, 32, 5, padding=4, dilation=2, groups=32)
        self.pw = nn.Conv1d(32, 32, 1)
        self.avg = nn.AvgPool1d(2, stride=2)
        self.max = nn.MaxPool1d(2, stride=2)
        self.head = nn.Linear(32, 6)

    def forward(self, x):
        y = F.relu(self.bn(self.stem(x)))
        y = F.relu(self.down(y))
        y = y + self.pw(F.relu(self.dw(y)))
        y = self.max(self.avg(y))
        return self.head(F.adaptive_avg_pool1d(y, 1).flatten(1))


def main():
    gen = torch.Generator().manual_seed(2468)
    torch.manual_seed(2468)
    model = TemporalNet()
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        model.bn.running_mean.copy_(torch.randn(24, generator=gen) * 0.2)
        model.bn.running_var.copy_(torch.rand(24, generator=gen) + 0.5)
        model.bn.weight.copy_(torch.rand(24, generator=gen) + 0.5)
        model.bn.bias.copy_(torch.randn(24, generator=gen) * 0.1)
    model.eval()
    x = torch.randn(16, 1, 16, 32, generator=gen)
    with torch.no_grad():
        y = torch.stack([model(s) for s in x])
    np.save(os.path.join(OUT, "temporal_conv_input.npy"), x.reshape(16, 16, 32).numpy())
    np.save(os.path.join(OUT, "temporal_conv_op13_output.npy"), y.reshape(16, 6).numpy())
    path = os.path.join(OUT, "temporal_conv_op13.onnx")
    torch.onnx.export(model, x[0], path, opset_version=13, input_names=["input"], output_names=["output"])
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
