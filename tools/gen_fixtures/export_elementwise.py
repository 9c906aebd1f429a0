#!/usr/bin/python3
"""Exports models/fmod_op13.onnx: ONNX Mod (fmod=1, C's sign-of-dividend remainder) between
convolutions, as torch.fmod exports it: a scalar divisor on a conv output of both signs, and a
per-channel divisor tensor after a ReLU. Fixed batch 1 (torch's default export), 16 seeded input
samples and torch's outputs for them.
Run: /usr/bin/python3 tools/gen_fixtures/export_elementwise.py   (deterministic: fixed seeds)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "models")


class PhaseWrap(nn.Module):
    def __init__(self, gen):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.register_buffer("period", torch.rand(1, 8, 1, 1, generator=gen) + 0.5)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = torch.fmod(self.conv1(x), 0.75)
        y = torch.fmod(F.relu(self.conv2(y)), self.period)
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


def main():
    gen = torch.Generator().manual_seed(4321)
    torch.manual_seed(4321)
    model = PhaseWrap(gen).eval()
    x = torch.randn(16, 1, 3, 24, 24, generator=gen) * 2
    with torch.no_grad():
        y = torch.stack([model(s) for s in x])
    np.save(os.path.join(OUT, "fmod_input.npy"), x.reshape(16, 3, 24, 24).numpy())
    np.save(os.path.join(OUT, "fmod_op13_output.npy"), y.reshape(16, 4).numpy())
    path = os.path.join(OUT, "fmod_op13.onnx")
    torch.onnx.export(model, x[0], path, opset_version=13, input_names=["input"], output_names=["output"])
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
