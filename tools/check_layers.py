#!/usr/bin/python3
"""Fails when an #include climbs the stage layering or breaks the LibTorch include rules.

Stages, lowest first (a file may include its own folder and lower stages only):
  core < ir < runtime, data, onnx < target < exec < quant < deploy < analysis < passes < api < tune < cli
Also: nothing includes <torch/torch.h>; no header (.h) includes <ATen/ATen.h>.
Run: /usr/bin/python3 tools/check_layers.py [SRC_DIR]
"""
import os
import re
import sys

RANK = {"core": 0, "ir": 1, "runtime": 2, "data": 2, "onnx": 2, "target": 3, "exec": 4, "quant": 5, "deploy": 6,
        "analysis": 7, "passes": 8, "api": 9, "tune": 10,
        "cli": 11}
INCLUDE = re.compile(r'^\s*#\s*include\s+[<"]([^>"]+)[>"]')


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
    problems = []
    checked = 0
    for root, _, files in os.walk(src):
        for name in files:
            if not name.endswith((".h", ".cpp", ".def")):
                continue
            path = os.path.join(root, name)
            stage = os.path.relpath(path, src).split(os.sep)[0]
            if stage not in RANK:
                problems.append(f"{path}: folder '{stage}' is not a known stage")
                continue
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    inc = m.group(1)
                    checked += 1
                    if inc == "torch/torch.h":
                        problems.append(f"{path}:{lineno}: <torch/torch.h> is banned (20 s per file on 2 cores)")
                    if inc == "ATen/ATen.h" and name.endswith(".h"):
                        problems.append(f"{path}:{lineno}: <ATen/ATen.h> in a header; include <ATen/core/Tensor.h>")
                    first = inc.split("/")[0]
                    if first in RANK and "/" in inc and first != stage and RANK[first] >= RANK[stage]:
                        problems.append(f"{path}:{lineno}: stage '{stage}' includes '{inc}' from stage '{first}', "
                                        f"which is not below it")
    for p in problems:
        print(p)
    print(f"check_layers: {checked} includes checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
