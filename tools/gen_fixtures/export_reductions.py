#!/usr/bin/python3
"""Exports models/reductions_op13.onnx: the reductions and Log of an audio/vision feature head:
per-channel peak (ReduceMax over H, W), the minimum over channels of the distance to it
(ReduceMin), per-channel energy (ReduceSum over H, W, the axes an input at opset 13), its log
(Log) and a mean (ReduceMean). Fixed batch 1, 16 seeded input samples and torch's outputs.
Run: /usr/bin/python3 tools/gen_fixtures/export_reductions.py   (deterministic: fixed seeds)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "models")


class Reductions(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        y = F.relu(self.conv(x))
        peak = torch.amax(y, dim=(2, 3), keepdim=True)
        low = torch.amin(y - peak, dim=1, keepdim=True)
        energy = torch.sum(y * y, dim=(2, 3))
        return torch.log(energy + 1.0) + torch.mean(low, dim=(2, 3))


def main():
    torch.manual_seed(31415)
    model = Reductions().eval()
    gen = torch.Generator().manual_seed(92653)
    x = torch.rand(16, 1, 3, 8, 8, generator=gen) * 2 - 1
    with torch.no_grad():
        y = torch.stack([model(s) for s in x])
    np.save(os.path.join(OUT, "reductions_input.npy"), x.reshape(16, 3, 8, 8).numpy())
    np.save(os.path.join(OUT, "reductions_op13_output.npy"), y.reshape(16, 8).numpy())
    path = os.path.join(OUT, "reductions_op13.onnx")
    torch.onnx.export(model, x[0], path, opset_version=13, input_names=["input"], output_names=["output"])
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
