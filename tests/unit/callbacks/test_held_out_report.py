"""The demo's headline metrics are read from the right logged test metrics."""

from __future__ import annotations

import pytest

from unipixel_pl.callbacks.held_out_report import headline_metrics


def test_headline_keys_come_from_their_sources() -> None:
    metrics = {
        "test/ciou": 0.5,
        "test/ciou/seg_image": 0.7,
        "test/video_jf": 0.4,
        "test/answer_acc/multimodal": 0.25,
        "test/answer_acc/ref_point": 1.0,
        "test/answer_acc/region_video": 0.5,
        "test/answer_acc/seg_image": 0.0,  # not a region task
    }
    headline = headline_metrics(metrics)
    assert headline == {"ciou": 0.7, "video_jf": 0.4, "mc_accuracy": 0.25, "region_accuracy": pytest.approx(0.75)}


def test_missing_sources_give_none_and_ciou_falls_back_to_overall() -> None:
    headline = headline_metrics({"test/ciou": 0.5})
    assert headline == {"ciou": 0.5, "video_jf": None, "mc_accuracy": None, "region_accuracy": None}
