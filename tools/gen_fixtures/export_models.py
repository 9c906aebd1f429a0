#!/usr/bin/python3
"""Exports the real-exporter-pattern fixtures with Debian's torch (torch.onnx.export).

For each net and opset in (11, 13) it writes tests/fixtures/models/<net>_op<opset>.onnx and a
seeded input / torch reference output pair (<net>_input.npy, <net>_op<opset>_output.npy).
Run: /usr/bin/python3 tools/gen_fixtures/export_models.py   (deterministic: fixed seeds)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "models")


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.block = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


class MobileNetV2Style(nn.Module):
    """ReLU6, depthwise 3x3, 1x1 expansions/projections, residual Add, GAP + classifier."""
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(inplace=True))
        self.blocks = nn.Sequential(InvertedResidual(16, 16, 1, 1), InvertedResidual(16, 24, 2, 4),
                                    InvertedResidual(24, 24, 1, 4), InvertedResidual(24, 32, 2, 4),
                                    InvertedResidual(32, 32, 1, 4))
        self.head = nn.Sequential(nn.Conv2d(32, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU6(inplace=True))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (self.down(x) if self.down is not None else x))


class ResNetStyle(nn.Module):
    """BN, MaxPool, residual blocks, Flatten + Gemm; a final BatchNorm1d that cannot fold."""
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        self.layer1 = BasicBlock(16, 16, 1)
        self.layer2 = BasicBlock(16, 32, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class DetectionHead(nn.Module):
    """FPN-style: upsample (Resize nearest + bilinear), Concat, per-anchor Reshape/Transpose, Sigmoid."""
    def __init__(self, anchors=3, classes=4):
        super().__init__()
        self.anchors, self.outs = anchors, 5 + classes
        self.c3 = nn.Conv2d(3, 16, 3, 2, 1)
        self.c4 = nn.Conv2d(16, 32, 3, 2, 1)
        self.c5 = nn.Conv2d(32, 32, 3, 2, 1)
        self.lat = nn.Conv2d(64, 32, 1)
        self.pred_small = nn.Conv2d(32, anchors * self.outs, 1)
        self.pred_large = nn.Conv2d(48, anchors * self.outs, 1)

    def decode(self, p):
        n, _, h, w = p.shape
        p = p.reshape(n, self.anchors, self.outs, h, w).permute(0, 1, 3, 4, 2)
        return torch.sigmoid(p).reshape(n, -1, self.outs)

    def forward(self, x):
        f3 = F.silu(self.c3(x))
        f4 = F.silu(self.c4(f3))
        f5 = F.silu(self.c5(f4))
        up5 = F.interpolate(f5, scale_factor=2.0, mode="nearest")
        p4 = F.silu(self.lat(torch.cat([f4, up5], 1)))
        up4 = F.interpolate(p4, size=f3.shape[2:], mode="bilinear", align_corners=False)
        p3 = torch.cat([f3, up4], 1)
        return torch.cat([self.decode(self.pred_small(p4)), self.decode(self.pred_large(p3))], 1)


def randomize_bn(model, gen):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def main():
    os.makedirs(OUT, exist_ok=True)
    nets = {"mobilenetv2_style": (MobileNetV2Style, (2, 3, 64, 64)),
            "resnet_style": (ResNetStyle, (2, 3, 64, 64)),
            "detection_head": (DetectionHead, (2, 3, 64, 64))}
    for name, (cls, shape) in nets.items():
        gen = torch.Generator().manual_seed(1234)
        torch.manual_seed(1234)
        model = cls()
        randomize_bn(model, gen)
        model.eval()
        x = torch.randn(*shape, generator=gen)
        np.save(os.path.join(OUT, f"{name}_input.npy"), x.numpy())
        with torch.no_grad():
            y = model(x)
        for opset in (11, 13):
            path = os.path.join(OUT, f"{name}_op{opset}.onnx")
            torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
            np.save(os.path.join(OUT, f"{name}_op{opset}_output.npy"), y.numpy())
            print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
