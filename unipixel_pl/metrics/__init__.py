"""Evaluation metrics (torchmetrics, sum-reduced states) and their functional forms (``reference/EVAL.md``)."""

from unipixel_pl.metrics.accuracy import MultipleChoiceAccuracy
from unipixel_pl.metrics.boxes import BoxAccuracy
from unipixel_pl.metrics.pixelqa import VolumeJF
from unipixel_pl.metrics.segmentation import CIoU, GIoU
from unipixel_pl.metrics.video import ReVOSJF, VideoJF

__all__ = ["BoxAccuracy", "CIoU", "GIoU", "MultipleChoiceAccuracy", "ReVOSJF", "VideoJF", "VolumeJF"]
