#!/usr/bin/env bash
# Installs every Debian package (and the two npm packages) EdgeQuant's build, tests, benchmarks
# and fixture scripts need. Idempotent: re-running only checks that everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev libopenblas0-pthread libdnnl-dev
  ocl-icd-opencl-dev  # libdnnl-dev's CMake config requires OpenCL (a Recommends only: --no-install-recommends skips it)
  libonnx-dev libprotobuf-dev protobuf-compiler
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
  flatbuffers-compiler libflatbuffers-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopencv-dev zlib1g-dev
  libonnx-testdata dataset-fashion-mnist
  python3-torch python3-torchvision python3-numpy python3-onnx
  clang-format  # the style.clang_format test (Debian 12: version 14)
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Node.js runs ONNX Runtime (npm onnxruntime-node) and LiteRT (npm @litertjs/core, TFLite's
# runtime as WebAssembly) in the exporter tests. The machine's Node.js
# is used when present; Debian's otherwise.
if ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
# onnxruntime-node ships its CPU binaries in the package; ONNXRUNTIME_NODE_INSTALL=skip stops its
# install script from downloading anything else. Versions pinned by package-lock.json.
if [ ! -f node_modules/onnxruntime-node/package.json ] || [ ! -f node_modules/@litertjs/core/package.json ]; then
  echo "install-deps: npm ci (onnxruntime-node, @litertjs/core)"
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
fi

echo "install-deps: all dependencies present"
