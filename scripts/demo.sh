#!/usr/bin/env bash
# The main job of the README.  For now: build gradc, check GPT-2 small (the
# book's chapter 4 model) and print its IR.  Training a small GPT and
# sampling from it replaces this once the runtime lands.
set -euo pipefail
cd "$(dirname "$0")/.."
GRADC_DEPS_MINIMAL=1 scripts/deps.sh
scripts/build.sh build
echo "== gradc check models/gpt2-small.json"
build/gradc check models/gpt2-small.json
echo
echo "== gradc check models/gpt2-small.json --set tie_embeddings=1"
build/gradc check models/gpt2-small.json --set tie_embeddings=1 | grep -i param
echo
echo "== gradc dump models/gpt2-small.json --stage=graph  (first block shown; full IR in build/gpt2-small.gir)"
build/gradc dump models/gpt2-small.json --stage=graph -o build/gpt2-small.gir
sed -n '1,60p' build/gpt2-small.gir
echo "  ... ($(wc -l < build/gpt2-small.gir) lines)"
