"""Regenerate configs/model/<preset>.yaml from the presets in unipixel_pl/config.py.

Run after changing a preset or a config default: ``python scripts/write_model_configs.py``.
tests/unit/test_config.py fails while a YAML and its preset disagree.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import OmegaConf

from unipixel_pl.config import preset

DESCRIPTIONS = {
    "unipixel-tiny": "UniPixel tiny: random weights, CPU tests and the demo.",
    "unipixel-3b": "UniPixel-3B: Qwen2.5-VL-3B + SAM 2.1 Hiera-B+ at 768 (reference/MODEL.md §2, §5.3).",
    "unipixel-7b": "UniPixel-7B: Qwen2.5-VL-7B + SAM 2.1 Hiera-B+ at 768 (reference/MODEL.md §2, §5.3).",
}
USAGE = (
    "# unipixel fit --config configs/model/{name}.yaml --config configs/data/synthetic.yaml"
    " --config configs/trainer/cpu.yaml\n"
)


def main() -> None:
    root = Path(__file__).resolve().parents[1] / "configs" / "model"
    for name, description in DESCRIPTIONS.items():
        body = OmegaConf.to_yaml(OmegaConf.create({"model": {"config": dataclasses.asdict(preset(name))}}))
        (root / f"{name}.yaml").write_text(f"# {description}\n" + USAGE.format(name=name) + body)


if __name__ == "__main__":
    main()
