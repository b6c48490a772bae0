"""Random-Fourier position encodings with fixed Gaussian frequencies (MODEL.md §3.1).

Both encoders map a coordinate ``u`` normalised to ``[0, 1]`` to ``[sin(2π(2u−1)G), cos(2π(2u−1)G)]`` with a fixed
Gaussian matrix ``G`` kept as a persistent buffer named ``positional_encoding_gaussian_matrix`` (the checkpoint key).
The matrices are random and untrained: a checkpoint only works with the exact buffers it was trained with, so they
are always saved and loaded, never re-drawn. Evaluation runs in fp32 with autocast off and without gradient (as in
the reference), and the result is cast to the buffer's dtype.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def random_fourier_features(unit_coords: Tensor, gaussian_matrix: Tensor) -> Tensor:
    """Fourier features of coordinates in ``[0, 1]``, computed in fp32 with autocast off.

    Args:
        unit_coords: ``(..., K)`` coordinates normalised to ``[0, 1]``.
        gaussian_matrix: ``(K, F)`` frequencies.

    Returns:
        ``(..., 2F)`` fp32 ``[sin(2π(2u−1)G), cos(2π(2u−1)G)]``.
    """
    with torch.no_grad(), torch.autocast(device_type=unit_coords.device.type, enabled=False):
        centred = 2 * unit_coords.float() - 1
        phase = 2 * math.pi * (centred @ gaussian_matrix.float())
        return torch.cat([phase.sin(), phase.cos()], dim=-1)


class RandomFourierEncoding2D(nn.Module):
    """Drop-in for SAM 2's ``PositionEmbeddingRandom`` that always evaluates in fp32 (the reference's variant).

    Args:
        num_features: ``F``, frequencies per axis pair; the encoding width is ``2F``.
        gaussian_matrix: ``(2, F)`` frequencies to adopt (e.g. the ones SAM 2 drew); drawn from N(0, 1) if None.
    """

    def __init__(self, num_features: int, gaussian_matrix: Tensor | None = None) -> None:
        super().__init__()
        matrix = torch.randn(2, num_features) if gaussian_matrix is None else gaussian_matrix.detach().clone()
        if tuple(matrix.shape) != (2, num_features):
            raise ValueError(f"gaussian_matrix must be (2, {num_features}), got {tuple(matrix.shape)}")
        self.register_buffer("positional_encoding_gaussian_matrix", matrix)

    def forward(self, size: tuple[int, int]) -> Tensor:
        """Encode the centres of an ``(h, w)`` grid of cells: ``(2F, h, w)``."""
        height, width = size
        device = self.positional_encoding_gaussian_matrix.device
        y = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
        x = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
        grid = torch.stack(torch.meshgrid(x, y, indexing="xy"), dim=-1)
        return self._encode(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords: Tensor, image_size: tuple[int, int]) -> Tensor:
        """Encode pixel coordinates.

        Args:
            coords: ``(B, N, 2)`` (x, y) in pixels of an image of ``image_size``.
            image_size: ``(H, W)``; x is divided by W and y by H.

        Returns:
            ``(B, N, 2F)`` in the buffer's dtype.
        """
        scale = torch.tensor([image_size[1], image_size[0]], dtype=torch.float32, device=coords.device)
        return self._encode(coords.float() / scale)

    def _encode(self, unit_coords: Tensor) -> Tensor:
        matrix = self.positional_encoding_gaussian_matrix
        return random_fourier_features(unit_coords, matrix).to(matrix.dtype)


class RandomFourierEncoding1D(nn.Module):
    """The reference's ``PositionEmbedding1DRandom``: frame index ``t`` of ``L`` frames -> ``pe(t / (L − 1))``.

    Args:
        num_features: ``F``; the encoding width is ``2F``.
    """

    def __init__(self, num_features: int = 128) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(1, num_features))

    def forward(self, positions: Tensor, lengths: Tensor | int) -> Tensor:
        """Encode positions along sequences of the given lengths.

        Args:
            positions: ``(N,)`` indices (any real dtype), ``0 <= positions[i] < lengths[i]``.
            lengths: ``(N,)`` or a scalar: sequence lengths ``L >= 2``.

        Returns:
            ``(N, 2F)`` in the buffer's dtype.
        """
        lengths = torch.as_tensor(lengths, dtype=torch.float32, device=positions.device)
        unit = (positions.float() / (lengths - 1)).unsqueeze(-1)
        matrix = self.positional_encoding_gaussian_matrix
        return random_fourier_features(unit, matrix).to(matrix.dtype)
