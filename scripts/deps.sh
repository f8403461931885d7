#!/usr/bin/env bash
# Install what gradc needs to build and test, from Debian packages only.
# Does nothing when every package is already present.
#   scripts/deps.sh          build + test dependencies
#   GRADC_DEPS_MINIMAL=1     only what the build and the core tests need
set -euo pipefail

PKGS=(cmake gcc g++ make clang llvm-19-dev llvm-19-tools libopenblas-dev libcjson-dev
      python3 python3-numpy)
if [[ "${GRADC_DEPS_MINIMAL:-0}" != 1 ]]; then
  PKGS+=(python3-torch nodejs npm)
fi

missing=()
for p in "${PKGS[@]}"; do
  # nodejs may come from another repo (nodesource) that bundles npm
  if [[ $p == npm ]] && command -v npm >/dev/null 2>&1; then continue; fi
  if [[ $p == nodejs ]] && command -v node >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
