"""The benchmark registry and every evaluation config under configs/eval/."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import REPO_ROOT
from unipixel_pl.evaluation import BENCHMARKS, EvaluationConfig, get_benchmark
from unipixel_pl.evaluation.benchmarks import FAMILIES
from unipixel_pl.evaluation.evaluator import BenchmarkEvaluator
from unipixel_pl.evaluation.scorers import SCORERS

EVAL_CONFIGS = sorted((REPO_ROOT / "configs/eval").glob("*.yaml"))
REQUIRED = {
    "refcoco-val",
    "refcoco-testA",
    "refcoco-testB",
    "refcoco+-val",
    "refcoco+-testA",
    "refcoco+-testB",
    "refcocog-val",
    "refcocog-test",
    "reason_seg-val",
    "reason_seg-test",
    "mevis-valid_u",
    "mevis-valid",
    "revos-valid",
    "ref_davis17-valid",
    "ref_youtube_vos-valid",
    "videorefer_q-single",
    "videorefer_q-multi",
    "pixelqa-point",
    "mvbench",
}


def test_every_required_benchmark_has_a_config() -> None:
    assert REQUIRED <= {path.stem for path in EVAL_CONFIGS}


@pytest.mark.parametrize("path", EVAL_CONFIGS, ids=lambda p: p.stem)
def test_eval_config_resolves_its_benchmark(path: Path) -> None:
    document = OmegaConf.to_container(OmegaConf.load(path))
    config = EvaluationConfig(**document["model"]["evaluation"])
    evaluator = BenchmarkEvaluator(config)
    assert evaluator.label == path.stem or evaluator.label.startswith(evaluator.benchmark.name)
    assert evaluator.protocol == evaluator.benchmark.protocols[0]  # the configs keep UniPixel's default
    assert document["data"]["init_args"]["test"][0]["path"].startswith("data/")
    assert f"--config configs/eval/{path.name}" in path.read_text()  # the header is the command


def test_registry_covers_every_family_with_a_scorer() -> None:
    assert set(SCORERS) == set(FAMILIES) == {benchmark.family for benchmark in BENCHMARKS.values()}
    assert get_benchmark("mvbench").prefill == "Best Option: (" and get_benchmark("mvbench").max_new_tokens == 256
    assert get_benchmark("videorefer_q").prefill == get_benchmark("pixelqa").prefill == "The best option is ("
    assert not get_benchmark("ref_youtube_vos").scored and get_benchmark("ref_youtube_vos").submission_root


def test_protocols_default_to_unipixel_and_bad_names_are_refused() -> None:
    assert get_benchmark("reason_seg").resolve_protocol(None) == "unipixel"
    assert get_benchmark("reason_seg").resolve_protocol("lisa") == "lisa"
    with pytest.raises(ValueError, match="no protocol 'lisa'.*'unipixel', 'davis'"):
        get_benchmark("mevis").resolve_protocol("lisa")
    with pytest.raises(ValueError, match="unknown benchmark 'refcocoX'"):
        get_benchmark("refcocoX")


def test_lisa_protocol_uses_lisa_giou() -> None:
    assert BenchmarkEvaluator(EvaluationConfig("reason_seg", protocol="lisa")).scorer.giou.union_eps == 1e-5
    assert BenchmarkEvaluator(EvaluationConfig("reason_seg")).scorer.giou.union_eps == 0.0
