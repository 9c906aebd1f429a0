#!/usr/bin/python3
"""Exports models/conv_transpose_op13.onnx: a decoder's upsampling path, two ConvTranspose2d
(kernel 4 stride 2 pad 1; depthwise kernel 3 stride 2 pad 1 output_padding 1) between Convs,
the layers segmentation heads and generators use. Fixed batch 1, 16 seeded input samples and
torch's outputs.
Run: /usr/bin/python3 tools/gen_fixtures/export_conv_transpose.py   (deterministic: fixed seeds)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "models")


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.up1 = nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1, groups=8)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = F.relu(self.conv(x))
        y = F.relu(self.up1(y))  # [1, 8, 16, 16]
        return self.head(self.up2(y))  # [1, 4, 32, 32]


def main():
    torch.manual_seed(16180)
    model = Decoder().eval()
    gen = torch.Generator().manual_seed(33988)
    x = torch.rand(16, 1, 3, 8, 8, generator=gen) * 2 - 1
    with torch.no_grad():
        y = torch.stack([model(s) for s in x])
    np.save(os.path.join(OUT, "conv_transpose_input.npy"), x.reshape(16, 3, 8, 8).numpy())
    np.save(os.path.join(OUT, "conv_transpose_op13_output.npy"), y.reshape(16, 4, 32, 32).numpy())
    path = os.path.join(OUT, "conv_transpose_op13.onnx")
    torch.onnx.export(model, x[0], path, opset_version=13, input_names=["input"], output_names=["output"])
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
