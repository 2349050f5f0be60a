#!/usr/bin/env bash
# test.sh — installs dependencies, builds pinvault and runs every test suite.
# Usage: bash deploy/test.sh   (from anywhere; works on a fresh Debian 12 machine as root)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash deploy/install-deps.sh
build=${PINVAULT_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPINVAULT_WERROR=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
if [[ ! -f tests/interop/node_modules/juicebox-sdk/package.json ]]; then
  (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
fi
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" ${PINVAULT_CTEST_ARGS:-}
