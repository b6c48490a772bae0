#!/usr/bin/env bash
# Set up the environment, then train the tiny UniPixel on the synthetic corpus and test the trained checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${UNIPIXEL_VENV:-.venv}/bin/activate"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
OUT="${UNIPIXEL_OUT:-runs/demo}"
CONFIGS=(--config configs/model/unipixel-tiny.yaml --config configs/data/synthetic.yaml --config configs/trainer/cpu.yaml
         --trainer.default_root_dir "$OUT" --trainer.logger.init_args.save_dir "$OUT")
unipixel fit "${CONFIGS[@]}"
CKPT="$(ls -t "$OUT"/tensorboard/version_*/checkpoints/last.ckpt | head -n 1)"
unipixel test "${CONFIGS[@]}" --ckpt_path "$CKPT"
echo "checkpoint: $CKPT"
echo "TensorBoard: tensorboard --logdir $OUT/tensorboard"
