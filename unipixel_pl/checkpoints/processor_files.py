"""The Qwen2.5-VL processor configs of an official checkpoint (``preprocessor_config.json`` and the video one).

The official code loads its processor from these files with ``do_resize=False`` (frames are resized beforehand,
DATA.md §4); they hold the patch geometry and the CLIP normalisation, which our processor takes from the config.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unipixel_pl.config import BackboneConfig
from unipixel_pl.vision_patchify import CLIP_MEAN, CLIP_STD

PROCESSOR_CLASS = "Qwen2_5_VLProcessor"


def processor_configs(backbone: BackboneConfig) -> dict[str, dict[str, Any]]:
    """File name -> content of the image and video processor configs for ``backbone``'s vision tower."""
    vision = backbone.vision
    common = {
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": False,
        "image_mean": list(CLIP_MEAN),
        "image_std": list(CLIP_STD),
        "merge_size": vision.spatial_merge_size,
        "patch_size": vision.patch_size,
        "temporal_patch_size": vision.temporal_patch_size,
        "processor_class": PROCESSOR_CLASS,
        "resample": 3,
        "rescale_factor": 1 / 255,
    }
    return {
        "preprocessor_config.json": {**common, "image_processor_type": "Qwen2VLImageProcessor"},
        "video_preprocessor_config.json": {**common, "video_processor_type": "Qwen2VLVideoProcessor"},
    }


def write_processor_files(backbone: BackboneConfig, out_dir: Path) -> None:
    """Write :func:`processor_configs` into ``out_dir``."""
    for name, content in processor_configs(backbone).items():
        (out_dir / name).write_text(json.dumps(content, indent=2) + "\n")
