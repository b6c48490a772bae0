"""Fixed-point sums for the float states of the metrics.

Float addition is not associative, so a float64 sum reduced across processes can differ in its last bits from the
same sum taken in one process, and with how samples were split over ranks. Each per-sample value (all in [0, 1])
is instead rounded to an integer number of ``2**-36`` units and summed as int64: exact, order-free, and therefore
identical for any world size. The rounding error is below ``7.3e-12`` per value, and an int64 holds the sum of
``2**27`` (134 million) values.
"""

from __future__ import annotations

import torch
from torch import Tensor

SCALE = 2.0**36
"""Units per 1.0 of a fixed-point sum."""


def fixed_point_sum(values: Tensor) -> Tensor:
    """Sum of ``values`` as an int64 count of ``2**-36`` units.

    Args:
        values: ``(N,)`` or scalar floats in [0, 1].

    Returns:
        Scalar int64 tensor.
    """
    return torch.round(values.double() * SCALE).long().sum()


def from_fixed_point(total: Tensor) -> Tensor:
    """Float64 value of a fixed-point sum (any shape)."""
    return total.double() / SCALE
