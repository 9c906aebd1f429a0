#!/usr/bin/python3
"""Trains a MobileNetV2-architecture Fashion-MNIST classifier (expansion 6, ReLU6, depthwise 3x3,
inverted residuals, no weight decay) with Debian's torch on CPU and exports it to ONNX (opset 13,
symbolic batch): the tuner's MobileNetV2 case (float 92.62 %; esp32s3 PTQ with auto 92.36, KL 92.07).

Input: [N, 1, 28, 28] pixels scaled to [0, 1]. Writes tests/fixtures/fashion/fmnist_mobilenetv2.onnx
and prints the float test top-1.
Run: /usr/bin/python3 tools/gen_fixtures/train_fashion_hard.py   (seeded; about 20 minutes on 2 cores)
"""
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from train_fashion import OUT, DwBlock, evaluate, load  # noqa: E402


class MobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        cfg = [(16, 16, 1), (16, 24, 2), (24, 24, 1), (24, 32, 2), (32, 32, 1), (32, 32, 1), (32, 64, 1)]
        self.blocks = nn.Sequential(*[DwBlock(a, b, s, expand=6) for a, b, s in cfg])
        self.head = nn.Sequential(nn.Conv2d(64, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU6())
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    model = MobileNetV2()
    epochs = 3
    opt = torch.optim.Adam(model.parameters(), lr=4e-3)
    steps = epochs * (len(xtr) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=steps)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr) - 127, 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}: test top-1 {evaluate(model, xte, yte):.2f}% ({time.time() - t0:.0f} s)",
              file=sys.stderr)
    model.eval()
    path = os.path.join(OUT, "fmnist_mobilenetv2.onnx")
    torch.onnx.export(model, xte[:1], path, opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    print(f"wrote {path}: float test top-1 {evaluate(model, xte, yte):.2f}%")


if __name__ == "__main__":
    main()
