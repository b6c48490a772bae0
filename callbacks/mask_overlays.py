"""TensorBoard images of predicted vs ground-truth masks on fixed validation samples."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

from unipixel_pl.callbacks.overlay import denormalize, overlay_strip
from unipixel_pl.types import UniPixelBatch


class MaskOverlays(L.Callback):
    """Every validation run, log overlays for the first ``max_samples`` mask-bearing samples of the first batches.

    The validation data are deterministic, so the same samples are shown at every step and their masks can be
    compared over training. Images are logged as ``val_overlays/<index>`` (frames side by side).

    Args:
        max_samples: samples to draw per validation run.
    """

    def __init__(self, max_samples: int = 4) -> None:
        self.max_samples = max_samples
        self._drawn = 0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._drawn = 0

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: object,
        batch: UniPixelBatch,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        logger = trainer.logger
        if self._drawn >= self.max_samples or not isinstance(logger, TensorBoardLogger) or trainer.sanity_checking:
            return
        predictions = pl_module.predict_masks(batch)
        for predicted, target, frames in zip(predictions, batch.target_masks, batch.sam_frames, strict=True):
            if predicted is None or target is None or frames is None or self._drawn >= self.max_samples:
                continue
            image = overlay_strip(denormalize(frames), predicted, target.permute(1, 0, 2, 3))
            logger.experiment.add_image(f"val_overlays/{self._drawn}", image, trainer.global_step)
            self._drawn += 1
