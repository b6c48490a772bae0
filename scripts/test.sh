#!/usr/bin/env bash
# Set up the environment, then run the linters and the whole test suite (CPU, offline).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${UNIPIXEL_VENV:-.venv}/bin/activate"
export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
ruff check .
ruff format --check .
pytest -q "$@"
