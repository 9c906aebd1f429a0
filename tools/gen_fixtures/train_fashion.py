#!/usr/bin/python3
"""Trains the two Fashion-MNIST float models used by the PTQ end-to-end tests and the demo, with
Debian's torch on CPU (a few minutes), and exports them to ONNX (opset 13, symbolic batch).

Input: [N, 1, 28, 28] float pixels scaled to [0, 1] (EdgeQuant's default IDX preprocessing).
Writes tests/fixtures/fashion/{fmnist_mobilenet,fmnist_resnet}.onnx and prints float test top-1.
Run: /usr/bin/python3 tools/gen_fixtures/train_fashion.py   (seeded; about 3 minutes on 2 cores)
"""
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "fashion")


def load(kind):
    with gzip.open(f"{DATA}/{kind}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
    with gzip.open(f"{DATA}/{kind}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


class DwBlock(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand, 3x3 depthwise, 1x1 project, ReLU6."""
    def __init__(self, cin, cout, stride, expand=3):
        super().__init__()
        h = cin * expand
        self.res = stride == 1 and cin == cout
        self.body = nn.Sequential(nn.Conv2d(cin, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                                  nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                                  nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.body(x)
        return x + y if self.res else y


class MobileNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.blocks = nn.Sequential(DwBlock(16, 16, 1), DwBlock(16, 24, 2), DwBlock(24, 24, 1), DwBlock(24, 40, 2),
                                    DwBlock(40, 40, 1))
        self.head = nn.Sequential(nn.Conv2d(40, 96, 1, bias=False), nn.BatchNorm2d(96), nn.ReLU6())
        self.fc = nn.Linear(96, 10)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        return F.relu(y + (x if self.down is None else self.down(x)))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 24, 3, 1, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU(),
                                  nn.MaxPool2d(2))
        self.layers = nn.Sequential(Basic(24, 24, 1), Basic(24, 48, 2), Basic(48, 48, 1))
        self.fc = nn.Linear(48 * 7 * 7 // 49, 10)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def evaluate(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            correct += (model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum().item()
    return 100.0 * correct / len(x)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    os.makedirs(OUT, exist_ok=True)
    for name, cls, epochs in (("fmnist_mobilenet", MobileNet, 4), ("fmnist_resnet", ResNet, 3)):
        torch.manual_seed(0)
        model = cls()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        steps = epochs * (len(xtr) // 128)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
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
                if (i // 128) % 100 == 0:
                    print(f"{name} epoch {epoch + 1} step {i // 128}: loss {loss.item():.3f} ({time.time() - t0:.0f} s)",
                          file=sys.stderr, flush=True)
            print(f"{name} epoch {epoch + 1}: test top-1 {evaluate(model, xte, yte):.2f}% ({time.time() - t0:.0f} s)",
                  file=sys.stderr)
        model.eval()
        path = os.path.join(OUT, f"{name}.onnx")
        torch.onnx.export(model, xte[:1], path, opset_version=13, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        print(f"wrote {path}: float test top-1 {evaluate(model, xte, yte):.2f}%")


if __name__ == "__main__":
    main()
