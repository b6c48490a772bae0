#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv (or $UNIPIXEL_VENV).
# torch==2.13.0 goes in first so nothing can pull another (CUDA) build; sam2 is built without CUDA and without
# build isolation, as its isolated build would download CUDA torch and torchvision.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${UNIPIXEL_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q "torch==2.13.0"
pip install -q "setuptools>=69" wheel
python -c "import sam2" 2>/dev/null || SAM2_BUILD_CUDA=0 pip install -q --no-deps --no-build-isolation "sam2==1.1.0"
pip install -q -e ".[dev]"
python - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"torch was replaced by {torch.__version__}; re-run setup"
PY
