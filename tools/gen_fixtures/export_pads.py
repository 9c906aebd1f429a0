#!/usr/bin/python3
"""Exports models/pads_op13.onnx: the explicit paddings of style-transfer and segmentation nets,
ReflectionPad2d before a Conv (F.pad mode reflect), ReplicationPad2d with uneven sides before a
Conv (mode replicate: ONNX edge) and a zero ConstantPad2d before a MaxPool (not foldable into
it). Fixed batch 1, 16 seeded input samples and torch's outputs.
Run: /usr/bin/python3 tools/gen_fixtures/export_pads.py   (deterministic: fixed seeds)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "models")


class Pads(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.conv2 = nn.Conv2d(8, 8, 3)
        self.conv3 = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = F.relu(self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect")))   # [1, 8, 8, 8]
        y = F.relu(self.conv2(F.pad(y, (2, 1, 0, 1), mode="replicate")))  # [1, 8, 7, 9]
        y = F.max_pool2d(F.pad(y, (1, 0, 1, 0)), 2)                       # [1, 8, 4, 5]
        return self.conv3(y)


def main():
    torch.manual_seed(14142)
    model = Pads().eval()
    gen = torch.Generator().manual_seed(13562)
    x = torch.rand(16, 1, 3, 8, 8, generator=gen) * 2 - 1
    with torch.no_grad():
        y = torch.stack([model(s) for s in x])
    np.save(os.path.join(OUT, "pads_input.npy"), x.reshape(16, 3, 8, 8).numpy())
    np.save(os.path.join(OUT, "pads_op13_output.npy"), y.reshape(16, *y.shape[2:]).numpy())
    path = os.path.join(OUT, "pads_op13.onnx")
    torch.onnx.export(model, x[0], path, opset_version=13, input_names=["input"], output_names=["output"])
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
