#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test (unit, conformance, CLI, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh build
cd build
ctest --output-on-failure -j "$(nproc)"
