#!/usr/bin/python3
"""Exports detectors the way edge detector repositories ship them (YOLO-FastestV2, YuNet,
Ultra-Light face): the batch is part of the graph.

- fixed_batch/detector_b1.onnx: torch.onnx.export's default (no dynamic_axes): input
  [1, 3, 48, 48]; ShuffleNetV2 channel shuffles written as YOLO-FastestV2 writes them
  (sizes read from x.data.size(), so Reshape targets such as [24, 2, 144] are constants), and
  heads that flatten to [1, -1, 9].
- fixed_batch/detector_dynbatch.onnx: the same network exported with a symbolic batch on the
  input, as a user asking for dynamic axes gets it: the Reshape constants still hold batch 1,
  so only batch 1 computes (batch 2 fails in a shuffle Reshape).
- fixed_batch/detector_input.npy: 40 seeded smooth images [40, 3, 48, 48] in [0, 1].
- fixed_batch/detector_b1_output.npy: torch's outputs for the first 2 images, one at a time.

Run: /usr/bin/python3 tools/gen_fixtures/export_fixed_batch.py   (deterministic: fixed seeds)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "fixed_batch")
SIZE = 48


def channel_shuffle(x):
    # YOLO-FastestV2's shufflenetv2.py: sizes from x.data, so the exporter bakes them in.
    batchsize, num_channels, height, width = x.data.size()
    x = x.reshape(batchsize * num_channels // 2, 2, height * width)
    x = x.permute(1, 0, 2)
    x = x.reshape(2, -1, num_channels // 2, height, width)
    return x[0], x[1]


class ShuffleBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        mid = cout // 2
        inp = cin if stride == 2 else cin // 2
        self.main = nn.Sequential(
            nn.Conv2d(inp, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid),
            nn.Conv2d(mid, cout - inp if stride == 1 else mid, 1, bias=False),
            nn.BatchNorm2d(cout - inp if stride == 1 else mid), nn.ReLU(inplace=True))
        self.proj = None
        if stride == 2:
            self.proj = nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
                nn.Conv2d(inp, cout - mid, 1, bias=False), nn.BatchNorm2d(cout - mid), nn.ReLU(inplace=True))

    def forward(self, x):
        if self.stride == 1:
            a, b = channel_shuffle(x)
            return torch.cat((a, self.main(b)), 1)
        return torch.cat((self.proj(x), self.main(x)), 1)


class Detector(nn.Module):
    """Stem, ShuffleNetV2 stages, an upsampled FPN level, and per-level heads (box, objectness,
    classes) flattened to [1, -1, 9] as fixed-batch exports do."""
    def __init__(self, anchors=3, classes=4):
        super().__init__()
        self.anchors, self.outs = anchors, 5 + classes
        self.stem = nn.Sequential(nn.Conv2d(3, 24, 3, 2, 1, bias=False), nn.BatchNorm2d(24), nn.ReLU(inplace=True))
        self.stage2 = nn.Sequential(ShuffleBlock(24, 48, 2), ShuffleBlock(48, 48, 1))
        self.stage3 = nn.Sequential(ShuffleBlock(48, 96, 2), ShuffleBlock(96, 96, 1))
        self.lat = nn.Sequential(nn.Conv2d(96 + 48, 48, 1, bias=False), nn.BatchNorm2d(48), nn.ReLU(inplace=True))
        self.head_small = nn.Conv2d(48, anchors * self.outs, 1)
        self.head_large = nn.Conv2d(96, anchors * self.outs, 1)

    def flatten_head(self, p):
        _, _, h, w = p.data.size()
        p = p.reshape(1, self.anchors, self.outs, h, w).permute(0, 1, 3, 4, 2)
        return torch.sigmoid(p).reshape(1, -1, self.outs)

    def forward(self, x):
        c2 = self.stage2(self.stem(x))
        c3 = self.stage3(c2)
        up = F.interpolate(c3, scale_factor=2.0, mode="nearest")
        p2 = self.lat(torch.cat((c2, up), 1))
        return torch.cat((self.flatten_head(self.head_small(p2)), self.flatten_head(self.head_large(c3))), 1)


def randomize_bn(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


def smooth_images(n, gen):
    # Low-frequency colour fields plus a little noise: activations with image-like statistics.
    coarse = torch.rand(n, 3, 6, 6, generator=gen)
    x = F.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return (x + 0.05 * torch.randn(n, 3, SIZE, SIZE, generator=gen)).clamp(0, 1)


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(2024)
    torch.manual_seed(2024)
    model = Detector()
    randomize_bn(model, gen)
    model.eval()
    data = smooth_images(40, gen)
    np.save(os.path.join(OUT, "detector_input.npy"), data.numpy())
    x = data[:1]
    with torch.no_grad():
        ref = torch.cat([model(data[i:i + 1]) for i in range(2)], 0)
    np.save(os.path.join(OUT, "detector_b1_output.npy"), ref.numpy())
    path = os.path.join(OUT, "detector_b1.onnx")
    torch.onnx.export(model, x, path, opset_version=13, input_names=["input"], output_names=["output"])
    print("wrote", path, file=sys.stderr)
    path = os.path.join(OUT, "detector_dynbatch.onnx")
    torch.onnx.export(model, x, path, opset_version=13, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}})
    print("wrote", path, file=sys.stderr)


if __name__ == "__main__":
    main()
