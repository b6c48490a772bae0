#!/usr/bin/env bash
# The main job: set up, write the synthetic shards, train the tiny UniPixel from random weights (at most 15 minutes
# on CPU, configs/demo.yaml), test it on held-out shards, run `unipixel infer` on held-out synthetic media and print
# the results table with where everything is.
#   bash scripts/demo.sh [extra `unipixel fit/test` options, e.g. --trainer.max_steps=20]
# Environment: UNIPIXEL_OUT (runs/demo), UNIPIXEL_DATA ($UNIPIXEL_OUT/data), DEMO_TRAIN/DEMO_VAL/DEMO_TEST (shard sizes),
# UNIPIXEL_SKIP_SETUP=1 (use the active environment as is).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${UNIPIXEL_SKIP_SETUP:-0}" != 1 ]; then
  bash scripts/setup.sh
  # shellcheck disable=SC1091
  . "${UNIPIXEL_VENV:-.venv}/bin/activate"
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
OUT="${UNIPIXEL_OUT:-runs/demo}"
DATA="${UNIPIXEL_DATA:-$OUT/data}"

python scripts/demo_shards.py --out "$DATA" --train "${DEMO_TRAIN:-3000}" --val "${DEMO_VAL:-48}" --test "${DEMO_TEST:-192}"
python scripts/demo_media.py --out "$DATA/held_out_media"
ARGS=(--config configs/demo.yaml
      --data.init_args.train="[{path: $DATA/train}]" --data.init_args.val="[{path: $DATA/val}]"
      --data.init_args.test="[{path: $DATA/test}]"
      --trainer.default_root_dir "$OUT" --trainer.logger.init_args.save_dir "$OUT" "$@")
unipixel fit "${ARGS[@]}"
RUN="$(ls -td "$OUT"/tensorboard/version_*/ | head -n 1)"
CKPT="${RUN}checkpoints/last.ckpt"
unipixel test "${ARGS[@]}" --ckpt_path "$CKPT"
TEST_RUN="$(ls -td "$OUT"/tensorboard/version_*/ | head -n 1)"

# Inference loads a checkpoint directory: export last.ckpt (the demo trains with the tiny tokenizer), then run every
# request of requests.tsv (name, media, point, prompt, ...) with `unipixel infer`. Tabs become unit separators
# because `read` merges consecutive tabs and would shift the fields after an empty point.
EXPORT="${RUN}unipixel-checkpoint"
unipixel convert ckpt-to-ours "$CKPT" "$EXPORT" --tokenizer tiny
while IFS=$'\037' read -r name media point prompt _; do
  POINT=()
  if [ -n "$point" ]; then POINT=(--point "$point"); fi
  unipixel infer "$media" "$prompt" ${POINT[@]+"${POINT[@]}"} --ckpt "$EXPORT" --out "${RUN}infer/$name" \
    --max-new-tokens 32
done < <(tail -n +2 "$DATA/held_out_media/requests.tsv" | tr '\t' '\037')

python scripts/demo_report.py "${TEST_RUN}held_out_metrics.json" --checkpoint "$CKPT" --tensorboard "$OUT/tensorboard" \
  --infer "${RUN}infer" --requests "$DATA/held_out_media/requests.tsv"
