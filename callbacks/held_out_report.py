"""Final held-out metrics: a JSON file with the demo's headline keys, and TensorBoard hyper-parameters with them."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

# Headline key -> the logged test metric it reads (first present wins).
HEADLINE_SOURCES: dict[str, tuple[str, ...]] = {
    "ciou": ("test/ciou/seg_image", "test/ciou"),
    "video_jf": ("test/video_jf",),
    "mc_accuracy": ("test/answer_acc/multimodal",),
}
REGION_TASK_PREFIXES = ("ref_", "region_")


def headline_metrics(metrics: dict[str, float]) -> dict[str, float | None]:
    """``ciou`` (image referring segmentation), ``video_jf``, ``mc_accuracy`` and ``region_accuracy`` (mean answer
    accuracy over the point/box/mask region-question tasks); None where the test data had no such samples."""
    headline: dict[str, float | None] = {}
    for key, sources in HEADLINE_SOURCES.items():
        headline[key] = next((metrics[name] for name in sources if name in metrics), None)
    region = [v for k, v in metrics.items() if k.startswith("test/answer_acc/") and _is_region(k)]
    headline["region_accuracy"] = sum(region) / len(region) if region else None
    return headline


def _is_region(name: str) -> bool:
    return name.removeprefix("test/answer_acc/").startswith(REGION_TASK_PREFIXES)


class HeldOutReport(L.Callback):
    """After ``test``: write ``{"ciou", "video_jf", "mc_accuracy", "region_accuracy", "metrics", "checkpoint"}``
    to ``path`` and log the model's hyper-parameters with the headline metrics to TensorBoard's HPARAMS tab.

    Args:
        path: JSON file to write; None writes ``held_out_metrics.json`` into the logger's version directory.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path

    @rank_zero_only
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        headline = headline_metrics(metrics)
        path = (
            Path(self.path)
            if self.path
            else Path(trainer.log_dir or trainer.default_root_dir) / "held_out_metrics.json"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        report = {**headline, "metrics": metrics, "checkpoint": trainer.ckpt_path}
        path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        print(f"held-out metrics: {path}")
        if trainer.logger is not None:
            final = {f"final/{k}": v for k, v in headline.items() if v is not None}
            trainer.logger.log_hyperparams(_flat_hparams(pl_module), final)


def _flat_hparams(pl_module: L.LightningModule) -> dict[str, object]:
    """The optimizer settings and model sizes most worth comparing across runs, as flat scalars."""
    config, optimizer = getattr(pl_module, "config", None), getattr(pl_module, "optimizer_config", None)
    params: dict[str, object] = {"seed": getattr(pl_module, "seed", 0)}
    if optimizer is not None:
        params |= {"lr": optimizer.lr, "weight_decay": optimizer.weight_decay, "warmup_ratio": optimizer.warmup_ratio}
        params |= {f"lr/{k}": v for k, v in optimizer.module_lrs.items()}
    if config is not None:
        backbone = config.backbone
        params |= {"llm_hidden": backbone.hidden_size, "llm_layers": backbone.num_hidden_layers}
        params |= {"vit_hidden": backbone.vision.hidden_size, "vit_depth": backbone.vision.depth}
        params |= {"sam_image_size": config.mask_decoder.image_size, "sam_hidden": config.mask_decoder.hidden_dim}
    params["parameters"] = sum(p.numel() for p in pl_module.parameters())
    return params
