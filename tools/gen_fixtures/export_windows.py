#!/usr/bin/python3
"""Exports models/windows_op13.onnx: the window and activation forms a TFLite file must express,
as a TensorFlow-trained net brought to ONNX has them: a stride-2 Conv padded on the bottom/right
only (TF's SAME), a depthwise Conv with channel multiplier 2, uneven explicit pads (no SAME
equivalent), an AveragePool counting its pads (count_include_pad=1), a plain AveragePool,
nearest upsampling, Sigmoid and Tanh gates, a Concat, and a Softmax head. Fixed batch 1,
16 seeded input samples and torch's outputs.
Run: /usr/bin/python3 tools/gen_fixtures/export_windows.py   (deterministic: fixed seeds)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "models")


class Windows(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2)                   # after a bottom/right pad: SAME
        self.dw = nn.Conv2d(8, 16, 3, padding=1, groups=8)         # depthwise, multiplier 2
        self.uneven = nn.Conv2d(16, 8, 3)                          # after pads (1, 1, 2, 0)
        self.gate = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(16, 5)

    def forward(self, x):
        y = F.relu(self.stem(F.pad(x, (0, 1, 0, 1))))                  # [1, 8, 8, 8]
        y = F.relu6(self.dw(y))                                         # [1, 16, 8, 8]
        y = self.uneven(F.pad(y, (1, 1, 2, 0)))                         # [1, 8, 8, 8]
        y = y * torch.sigmoid(self.gate(y))
        a = F.avg_pool2d(y, 3, stride=2, padding=1, count_include_pad=True)  # [1, 8, 4, 4]
        b = F.avg_pool2d(torch.tanh(y[:, :, :6, :]), 2)                 # [1, 8, 3, 4]
        b = F.interpolate(b, size=(4, 4), mode="nearest")               # [1, 8, 4, 4]
        z = torch.cat([a, b], 1).mean((2, 3))                           # [1, 16]
        return F.softmax(self.head(z), dim=1)


def main():
    torch.manual_seed(17320)
    model = Windows().eval()
    gen = torch.Generator().manual_seed(50807)
    x = torch.rand(16, 1, 3, 16, 16, generator=gen) * 2 - 1
    with torch.no_grad():
        y = torch.stack([model(s) for s in x])
    np.save(os.path.join(OUT, "windows_input.npy"), x.reshape(16, 3, 16, 16).numpy())
    np.save(os.path.join(OUT, "windows_op13_output.npy"), y.reshape(16, *y.shape[2:]).numpy())
    path = os.path.join(OUT, "windows_op13.onnx")
    torch.onnx.export(model, x[0], path, opset_version=13, input_names=["input"], output_names=["output"])
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
