#!/usr/bin/python3
"""Exports models/depth_space_op13.onnx: a super-resolution-style head moving data between depth
and space: PixelShuffle (DepthToSpace, mode CRD, as torch exports it), SpaceToDepth on one
channel, and DepthToSpace in mode DCR (as tf2onnx writes TF's depth_to_space; here from a
torch.autograd.Function whose forward is ONNX's definition by reshape/transpose), between
convolutions. Fixed batch 1, 16 seeded input samples and torch's outputs.
Run: /usr/bin/python3 tools/gen_fixtures/export_depth_space.py   (deterministic: fixed seeds)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "models")


class DepthToSpaceDCR(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b):
        n, c, h, w = x.shape
        return x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)

    @staticmethod
    def symbolic(g, x, b):
        return g.op("DepthToSpace", x, blocksize_i=b, mode_s="DCR")


class SpaceToDepth(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b):
        n, c, h, w = x.shape
        return x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)

    @staticmethod
    def symbolic(g, x, b):
        return g.op("SpaceToDepth", x, blocksize_i=b)


class DepthSpace(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.conv2 = nn.Conv2d(4, 1, 1)
        self.conv3 = nn.Conv2d(4, 8, 3, padding=1)
        self.conv4 = nn.Conv2d(2, 4, 3, stride=2, padding=1)

    def forward(self, x):
        y = self.shuffle(F.relu(self.conv1(x)))             # [1, 4, 16, 16], CRD
        y = SpaceToDepth.apply(self.conv2(y), 2)            # [1, 4, 8, 8]
        y = DepthToSpaceDCR.apply(F.relu(self.conv3(y)), 2)  # [1, 2, 16, 16]
        return self.conv4(y)                                # [1, 4, 8, 8]


def main():
    torch.manual_seed(27182)
    model = DepthSpace().eval()
    gen = torch.Generator().manual_seed(81828)
    x = torch.rand(16, 1, 3, 8, 8, generator=gen) * 2 - 1
    with torch.no_grad():
        y = torch.stack([model(s) for s in x])
    np.save(os.path.join(OUT, "depth_space_input.npy"), x.reshape(16, 3, 8, 8).numpy())
    np.save(os.path.join(OUT, "depth_space_op13_output.npy"), y.reshape(16, 4, 8, 8).numpy())
    path = os.path.join(OUT, "depth_space_op13.onnx")
    torch.onnx.export(model, x[0], path, opset_version=13, input_names=["input"], output_names=["output"])
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
