"""Benchmark evaluation: generation-based scoring of each benchmark in ``unipixel test`` (``docs/EVAL.md``).

``EvaluationConfig`` (the model's ``evaluation`` argument) names a benchmark of ``BENCHMARKS``; the model then hands
its test steps to ``evaluator.BenchmarkEvaluator``.
"""

from unipixel_pl.evaluation.benchmarks import BENCHMARKS, Benchmark, get_benchmark
from unipixel_pl.evaluation.config import EvaluationConfig

__all__ = ["BENCHMARKS", "Benchmark", "EvaluationConfig", "get_benchmark"]
