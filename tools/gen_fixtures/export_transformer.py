#!/usr/bin/python3
"""Exports models/transformer_block_op{13,17}.onnx: a one-head transformer encoder block over 8 tokens
of 16 features, as keyword-spotting and OCR heads have it. At opset 13 torch writes each LayerNorm
as the normalisation block ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add; the
projections as MatMul (+ Add); attention as MatMul of two activations, Div by a constant, Softmax
and MatMul; the pooling as ReduceMean over tokens. At opset 17 each LayerNorm is one
LayerNormalization node (the same torch model: transformer_block_op13_output.npy is the reference
for both). Fixed batch 1, 16 seeded input samples and
torch's outputs.
Run: /usr/bin/python3 tools/gen_fixtures/export_transformer.py   (deterministic: fixed seeds)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "models")
T, C, CLASSES = 8, 16, 5


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(C, C)
        self.norm1 = nn.LayerNorm(C)
        self.q = nn.Linear(C, C)
        self.k = nn.Linear(C, C)
        self.v = nn.Linear(C, C)
        self.norm2 = nn.LayerNorm(C)
        self.ff = nn.Linear(C, C)
        self.head = nn.Linear(C, CLASSES)
        with torch.no_grad():  # non-trivial affine parameters, as a trained LayerNorm has
            for n in (self.norm1, self.norm2):
                n.weight.uniform_(0.6, 1.4)
                n.bias.uniform_(-0.3, 0.3)

    def forward(self, x):
        x = self.embed(x)
        h = self.norm1(x)
        att = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2) / 3.0, dim=-1)
        x = x + att @ self.v(h)
        x = x + torch.relu(self.ff(self.norm2(x)))
        return self.head(x.mean(dim=1))


def main():
    torch.manual_seed(24680)
    model = Block().eval()
    gen = torch.Generator().manual_seed(13579)
    x = torch.randn(16, 1, T, C, generator=gen)
    with torch.no_grad():
        y = torch.stack([model(s) for s in x])
    np.save(os.path.join(OUT, "transformer_block_input.npy"), x.reshape(16, T, C).numpy())
    np.save(os.path.join(OUT, "transformer_block_op13_output.npy"), y.reshape(16, CLASSES).numpy())
    for opset in (13, 17):  # opset 17: each LayerNorm is one LayerNormalization node
        path = os.path.join(OUT, "transformer_block_op%d.onnx" % opset)
        torch.onnx.export(model, x[0], path, opset_version=opset, input_names=["input"], output_names=["output"])
        print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
