"""COCO RLE: our validating decoder against pycocotools, corrupt strings rejected, mask tables."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from unipixel_pl.datamodules.rle import (
    InvalidRLEError,
    MaskTable,
    decode_rle,
    encode_mask,
    parse_counts,
    polygons_to_mask,
    union_rles,
)


def _runs(mask: np.ndarray) -> list[int]:
    """Column-major run lengths starting with background, computed directly from the pixels."""
    flat = mask.T.reshape(-1).astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(edges).tolist()
    return [0, *runs] if flat[0] else runs


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode under numpy 2
@pytest.mark.parametrize("seed", range(4))
def test_encode_decode_round_trip_matches_pycocotools(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random((23, 31)) < [0.02, 0.5, 0.98, 0.3][seed]
    rle = encode_mask(mask)
    assert isinstance(rle["counts"], str) and rle["size"] == [23, 31]
    np.testing.assert_array_equal(decode_rle(rle), mask)
    coco = {"size": rle["size"], "counts": rle["counts"].encode()}
    np.testing.assert_array_equal(coco_mask.decode(coco).astype(bool), mask)
    assert parse_counts(rle["counts"]) == _runs(mask)


def test_uncompressed_counts_decode() -> None:
    mask = np.zeros((3, 4), dtype=bool)
    mask[1:, 2] = True
    np.testing.assert_array_equal(decode_rle({"size": [3, 4], "counts": _runs(mask)}), mask)


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ({"size": [4, 4], "counts": "\x7f"}, "character"),
        ({"size": [4, 4], "counts": "0i"}, "ends inside a number"),
        ({"size": [4, 4], "counts": "52"}, "cover 7 pixels"),
        ({"size": [4, 4], "counts": [3, -1, 14]}, "negative"),
        ({"size": [4], "counts": "0"}, "size"),
        ("not a dict", "must be a dict"),
    ],
)
def test_invalid_rles_raise_before_decoding(rle: object, message: str) -> None:
    with pytest.raises(InvalidRLEError, match=message):
        decode_rle(rle)  # type: ignore[arg-type]


def test_union_and_polygons() -> None:
    left, right = np.zeros((6, 6), dtype=bool), np.zeros((6, 6), dtype=bool)
    left[:, :2], right[:, 4:] = True, True
    union = union_rles([encode_mask(left), None, encode_mask(right)], 6, 6)
    np.testing.assert_array_equal(decode_rle(union), left | right)
    assert union_rles([None], 6, 6) is None
    square = polygons_to_mask([[2, 2, 6, 2, 6, 6, 2, 6]], 10, 10)
    assert square[3:6, 3:6].all() and not square[0].any() and not square[:, 8:].any()


def test_mask_table_round_trip_decodes_selected_rows_and_frames() -> None:
    rng = np.random.default_rng(0)
    masks = rng.random((2, 3, 5, 7)) < 0.4  # (O, T, H, W)
    masks[1, 2] = False
    table = MaskTable.from_json(MaskTable.from_masks(masks).to_json())
    assert table.objects[1][2] is None and table.num_frames == {3}
    decoded = table.decode([1, 0], [2, 0])
    np.testing.assert_array_equal(decoded, masks[[1, 0]][:, [2, 0]].transpose(1, 0, 2, 3))
    with pytest.raises(InvalidRLEError, match="size must be"):
        MaskTable.from_json({"size": [0, 3], "objects": []})
