#!/usr/bin/python3
"""Exports models/instance_norm_op13.onnx: a small style-transfer generator (Conv, InstanceNorm2d
with affine parameters, ReLU, a residual block, Conv back to 3 channels), as fast neural style and
GAN generators are built. torch writes InstanceNormalization nodes; ESP-DL has no such module, so
`prepare` decomposes them for ESP targets. Fixed batch 1, 16 seeded input samples and torch's
outputs.
Run: /usr/bin/python3 tools/gen_fixtures/export_instance_norm.py   (deterministic: fixed seeds)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "models")


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.in1 = nn.InstanceNorm2d(8, affine=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.in2 = nn.InstanceNorm2d(8, affine=True)
        self.conv3 = nn.Conv2d(8, 3, 3, padding=1)
        with torch.no_grad():  # trained-looking affine parameters
            for n in (self.in1, self.in2):
                n.weight.uniform_(0.6, 1.4)
                n.bias.uniform_(-0.3, 0.3)

    def forward(self, x):
        y = F.relu(self.in1(self.conv1(x)))
        y = y + F.relu(self.in2(self.conv2(y)))
        return torch.tanh(self.conv3(y))


def main():
    torch.manual_seed(11235)
    model = Generator().eval()
    gen = torch.Generator().manual_seed(81321)
    x = torch.rand(16, 1, 3, 16, 16, generator=gen) * 2 - 1
    with torch.no_grad():
        y = torch.stack([model(s) for s in x])
    np.save(os.path.join(OUT, "instance_norm_input.npy"), x.reshape(16, 3, 16, 16).numpy())
    np.save(os.path.join(OUT, "instance_norm_op13_output.npy"), y.reshape(16, 3, 16, 16).numpy())
    path = os.path.join(OUT, "instance_norm_op13.onnx")
    torch.onnx.export(model, x[0], path, opset_version=13, input_names=["input"], output_names=["output"])
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
