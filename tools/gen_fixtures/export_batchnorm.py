#!/usr/bin/python3
"""A fixture that really holds BatchNormalization: Conv -> BatchNorm2d -> ReLU -> Flatten ->
Gemm -> BatchNorm1d, with non-trivial running statistics, exported by torch with
training=TrainingMode.PRESERVE on a model in eval mode, so torch keeps the BN nodes (its default
export folds them into the Conv). Writes tests/fixtures/models/batchnorm_op13.onnx,
batchnorm_input.npy and batchnorm_op13_output.npy (torch's eval output).
Run: /usr/bin/python3 tools/gen_fixtures/export_batchnorm.py   (deterministic: fixed seeds)
"""
import os

import numpy as np
import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "models")


class ConvBnNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 6 * 6, 5)
        self.bn1d = nn.BatchNorm1d(5)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        return self.bn1d(self.fc(torch.flatten(y, 1)))


def main():
    torch.manual_seed(7)
    model = ConvBnNet()
    gen = torch.Generator().manual_seed(8)
    for bn in (model.bn, model.bn1d):
        n = bn.num_features
        bn.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
        bn.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.3)
        bn.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
        bn.bias.data.copy_(torch.randn(n, generator=gen) * 0.2)
    model.eval()
    x = torch.randn(2, 3, 6, 6, generator=gen)
    with torch.no_grad():
        y = model(x)
    path = os.path.join(OUT, "batchnorm_op13.onnx")
    torch.onnx.export(model, x, path, opset_version=13, input_names=["input"], output_names=["output"],
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    np.save(os.path.join(OUT, "batchnorm_input.npy"), x.numpy())
    np.save(os.path.join(OUT, "batchnorm_op13_output.npy"), y.numpy())
    import onnx
    ops = [n.op_type for n in onnx.load(path).graph.node]
    print("ops:", ops)
    assert ops.count("BatchNormalization") == 2, ops


if __name__ == "__main__":
    main()
