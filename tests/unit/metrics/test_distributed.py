"""Every metric gives exactly the single-process value when its samples are split unevenly over two processes
(torch.distributed with gloo on loopback)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torchmetrics import Metric

from unipixel_pl.metrics import CIoU, GIoU, MultipleChoiceAccuracy, ReVOSJF, VideoJF, VolumeJF

WORLD_SIZE = 2
SAMPLES = 5  # rank 0 gets 3, rank 1 gets 2


def build_metrics() -> dict[str, Metric]:
    return {
        "ciou": CIoU(),
        "giou": GIoU(),
        "video": VideoJF(("a", "b"), "mean_of_groups"),
        "revos": ReVOSJF(),
        "accuracy": MultipleChoiceAccuracy(tasks=["x", "y"]),
        "pixelqa": VolumeJF(),
    }


def samples() -> list[dict[str, tuple[Any, ...]]]:
    """Per sample, the update arguments of each metric; random masks of varying size, deterministic."""
    generator = torch.Generator().manual_seed(0)
    out = []
    for index in range(SAMPLES):
        height, width = 5 + index, 12 - index
        image = torch.rand(2, height, width, generator=generator) < 0.5
        clip = torch.rand(2, 3, height, width, generator=generator) < 0.3 + 0.1 * index
        objects = torch.rand(2, 2, 4, height, width, generator=generator) < 0.5
        out.append(
            {
                "ciou": (image[0], image[1]),
                "giou": (image[0], image[1]),
                "video": (clip[0], clip[1], index % 2),
                "revos": (clip[0], clip[1], index % 3),
                "accuracy": (
                    ["A", "(b)", "zz"][: 1 + index % 3],
                    [0, 1, 0][: 1 + index % 3],
                    4,
                    ["x", "y", ["x", "y"]][: 1 + index % 3],
                ),
                "pixelqa": (objects[0], objects[1]),
            }
        )
    return out


def evaluate(rank: int, world_size: int) -> dict[str, dict[str, torch.Tensor] | torch.Tensor]:
    metrics = build_metrics()
    for sample in samples()[rank::world_size]:
        for name, metric in metrics.items():
            metric.update(*sample[name])
    return {name: metric.compute() for name, metric in metrics.items()}


def worker(rank: int, port: int, out_dir: Path) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        torch.save(evaluate(rank, WORLD_SIZE), out_dir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.multiprocess
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork")  # Python 3.12+, benign here
def test_two_processes_equal_one(tmp_path: Path) -> None:
    # fork: the children inherit the imported torch and torchmetrics instead of importing them again (seconds)
    mp.start_processes(worker, args=(free_port(), tmp_path), nprocs=WORLD_SIZE, start_method="fork")
    expected = evaluate(0, 1)
    for rank in range(WORLD_SIZE):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result.keys() == expected.keys()
        for name, value in expected.items():
            values = value if isinstance(value, dict) else {"": value}
            got = result[name] if isinstance(result[name], dict) else {"": result[name]}
            assert got.keys() == values.keys(), name
            for key in values:
                assert torch.equal(got[key], values[key]), (rank, name, key, got[key], values[key])
