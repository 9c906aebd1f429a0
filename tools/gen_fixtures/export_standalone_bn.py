#!/usr/bin/python3
"""Exports models/standalone_bn_op13.onnx: BatchNormalization with no Conv to fold into, as audio
and tabular front ends have it: a BatchNorm2d normalising the input, and one after a residual Add
(torch folds BN into a preceding Conv at export, so these two stay BatchNormalization nodes).
Import rewrites them into Mul + Add with per-channel constants, as ESP-PPQ does. Fixed batch 1,
16 seeded input samples and torch's outputs.
Run: /usr/bin/python3 tools/gen_fixtures/export_standalone_bn.py   (deterministic: fixed seeds)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "models")


def randomize(bn, gen):
    with torch.no_grad():
        n = bn.num_features
        bn.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
        bn.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.3)
        bn.weight.copy_(torch.rand(n, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(n, generator=gen) * 0.2)


class StandaloneBn(nn.Module):
    def __init__(self, gen):
        super().__init__()
        self.norm = nn.BatchNorm2d(3)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.post = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)
        randomize(self.norm, gen)
        randomize(self.post, gen)

    def forward(self, x):
        y = F.relu(self.conv1(self.norm(x)))
        y = self.post(y + self.conv2(y))
        return self.fc(F.adaptive_avg_pool2d(F.relu(y), 1).flatten(1))


def main():
    gen = torch.Generator().manual_seed(97531)
    torch.manual_seed(97531)
    model = StandaloneBn(gen).eval()
    x = torch.randn(16, 1, 3, 16, 16, generator=gen) * 1.5 + 0.5
    with torch.no_grad():
        y = torch.stack([model(s) for s in x])
    np.save(os.path.join(OUT, "standalone_bn_input.npy"), x.reshape(16, 3, 16, 16).numpy())
    np.save(os.path.join(OUT, "standalone_bn_op13_output.npy"), y.reshape(16, 5).numpy())
    path = os.path.join(OUT, "standalone_bn_op13.onnx")
    torch.onnx.export(model, x[0], path, opset_version=13, input_names=["input"], output_names=["output"])
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
