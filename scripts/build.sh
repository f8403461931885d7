#!/usr/bin/env bash
# Configure and build gradc into build/ (or $1).  Extra args go to cmake.
#   scripts/build.sh                 release-with-debug-info build in build/
#   scripts/build.sh build-asan -DGRADC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DGRADC_WERROR=ON "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
