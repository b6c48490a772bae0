#!/usr/bin/env bash
# Set up the environment, then train the tiny UniPixel on the synthetic corpus and test it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${UNIPIXEL_VENV:-.venv}/bin/activate"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
OUT="${UNIPIXEL_OUT:-runs/demo}"
unipixel fit --config configs/demo.yaml --trainer.default_root_dir "$OUT"
unipixel test --config configs/demo.yaml --trainer.default_root_dir "$OUT" --ckpt_path last
