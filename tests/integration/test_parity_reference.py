"""Parity with the official UniPixel implementation on a recorded fixture, through the production converter.

The fixture directory (env ``UNIPIXEL_REFERENCE_FIXTURE``, default ``<repo>/../shared/fixtures/reference-tiny``)
holds an official checkpoint, ``inputs.safetensors``, ``outputs.safetensors`` and ``manifest.json``. Everything is
driven by the manifest: for every case and mode (``eval`` = inference forward, ``train`` = training forward with
losses, ``gen`` = greedy generation) the official forward/generate keyword arguments are rebuilt from the stored
tensors as our ``UniPixelBatch``, the model loaded by ``load_official(..., reference=True)`` runs through its
public methods, and every recorded output is compared within the manifest's recommended tolerances. An output
this test cannot produce fails the test rather than being skipped.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor

from unipixel_pl.checkpoints.official import load_official
from unipixel_pl.models.generation import greedy_decode, greedy_generate
from unipixel_pl.models.inputs import mem_embeddings, ref_embeddings
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.models.mask_loss import object_normaliser, sam2_mask_loss
from unipixel_pl.rope_index import TEXT, VIDEO, get_rope_index
from unipixel_pl.types import UniPixelBatch, VisualPrompt

REPO = Path(__file__).resolve().parents[2]
FIXTURE = Path(os.environ.get("UNIPIXEL_REFERENCE_FIXTURE", REPO.parent / "shared" / "fixtures" / "reference-tiny"))

if not (FIXTURE / "manifest.json").is_file():
    pytest.skip(
        f"no reference fixture at {FIXTURE} (set UNIPIXEL_REFERENCE_FIXTURE to a directory with manifest.json)",
        allow_module_level=True,
    )

MANIFEST: dict[str, Any] = json.loads((FIXTURE / "manifest.json").read_text())
MODES = {"eval": "forward_kwargs", "train": "forward_kwargs", "gen": "generate_kwargs"}
RUNS = [(case, mode) for case, spec in MANIFEST["cases"].items() for mode in MODES if mode in spec]
MEASURED: dict[str, float] = {}


class Fixture:
    """The loaded fixture: manifest, stored tensors, the converted model and the tolerances."""

    def __init__(self, root: Path) -> None:
        self.inputs = load_file(str(root / MANIFEST.get("inputs_file", "inputs.safetensors")))
        self.outputs = load_file(str(root / MANIFEST.get("outputs_file", "outputs.safetensors")))
        self.model, _ = load_official(root / MANIFEST["checkpoint"]["dir"], reference=True, dtype=torch.float32)
        self.tolerance = MANIFEST["recommended_tolerance"]

    def arguments(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments with every stored-tensor name replaced by the tensor (lists kept as lists)."""
        return {key: self._resolve(value) for key, value in spec.items()}

    def _resolve(self, value: Any) -> Any:
        return self.inputs[value] if isinstance(value, str) else [self._resolve(item) for item in value]


@pytest.fixture(scope="module")
def fixture() -> Fixture:
    torch.manual_seed(0)
    return Fixture(FIXTURE)


# ---------------------------------------------------------------- official kwargs -> UniPixelBatch


def build_batch(model: LitUniPixel, kwargs: dict[str, Any]) -> tuple[UniPixelBatch, Tensor]:
    """Our batch for the official forward/generate keyword arguments, and the ``rope_deltas`` of its positions.

    Images (``pixel_values``/``image_grid_thw``, Qwen's image path) become one-temporal-patch videos, which is how
    unipixel-pl feeds every image: same vision features, same positions (temporal index 0), and the pad tokens are
    replaced by vision features either way.
    """
    known = {
        "input_ids", "attention_mask", "labels", "pixel_values", "image_grid_thw", "pixel_values_videos",
        "video_grid_thw", "second_per_grid_ts", "frames", "frame_size", "point_coords", "point_labels",
        "point_frames", "refer_mask", "label_mask", "label_obj_to_frame_idx",
    }  # fmt: skip
    unknown = sorted(set(kwargs) - known)
    assert not unknown, f"manifest passes keyword arguments this test cannot map to UniPixelBatch: {unknown}"
    tokens = model.config.backbone.tokens
    input_ids, pixels, grids = _vision_inputs(kwargs, tokens.image, tokens.video)
    types = torch.where(input_ids == tokens.video, VIDEO, TEXT)
    attention_mask = kwargs["attention_mask"].long()
    vision = model.config.backbone.vision
    position_ids, rope_deltas = get_rope_index(
        input_ids,
        types,
        video_grid_thw=grids,
        second_per_grid_ts=kwargs.get("second_per_grid_ts"),
        attention_mask=attention_mask,
        spatial_merge_size=vision.spatial_merge_size,
        tokens_per_second=vision.tokens_per_second,
        rule=model.config.backbone.rope_index,
    )
    _check_obj_to_frame_idx(kwargs.get("label_obj_to_frame_idx", []))
    batch = UniPixelBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        mm_token_type_ids=types,
        labels=kwargs.get("labels"),
        pixel_values_videos=pixels,
        video_grid_thw=grids,
        video_sample_index=_video_samples(input_ids, tokens.video, grids),
        sam_frames=list(kwargs.get("frames", [])),
        frame_sizes=[tuple(int(side) for side in size) for size in kwargs.get("frame_size", [])],
        prompts=_visual_prompts(kwargs),
        refer_masks=list(kwargs.get("refer_mask", [])),
        target_masks=list(kwargs.get("label_mask", [])),
    )
    return batch, rope_deltas


def _vision_inputs(kwargs: dict[str, Any], image_id: int, video_id: int) -> tuple[Tensor, Tensor | None, Tensor | None]:
    input_ids = kwargs["input_ids"]
    if "pixel_values" not in kwargs:
        return input_ids, kwargs.get("pixel_values_videos"), kwargs.get("video_grid_thw")
    assert "pixel_values_videos" not in kwargs, "mixed image and video inputs in one call are not supported"
    grids = kwargs["image_grid_thw"]
    assert (grids[:, 0] == 1).all(), f"an image must have one temporal patch, got image_grid_thw {grids.tolist()}"
    return torch.where(input_ids == image_id, video_id, input_ids), kwargs["pixel_values"], grids


def _video_samples(input_ids: Tensor, video_id: int, grids: Tensor | None) -> Tensor | None:
    if grids is None:
        return None
    samples = [b for b in range(input_ids.shape[0]) if (input_ids[b] == video_id).any()]
    assert len(samples) == grids.shape[0], "one video (or image) per sample is expected"
    return torch.tensor(samples)


def _visual_prompts(kwargs: dict[str, Any]) -> list[list[VisualPrompt]]:
    """``point_coords[b][o]: (1, P, 2)``, ``point_labels[b][o]: (1, P)``, ``point_frames[b] = [LongTensor(O)]``."""
    if "point_coords" not in kwargs:
        return []
    prompts = []
    per_sample = zip(kwargs["point_coords"], kwargs["point_labels"], kwargs["point_frames"], strict=True)
    for coords, labels, frames in per_sample:
        objects = zip(coords, labels, torch.cat(list(frames)).tolist(), strict=True)
        prompts.append([VisualPrompt(xy[0].float(), label[0].long(), int(t)) for xy, label, t in objects])
    return prompts


def _check_obj_to_frame_idx(per_sample: list[Tensor]) -> None:
    """Our mask decoder supervises object ``o`` of frame ``t`` with entry ``[t, 0]``, the reference's only layout."""
    for table in per_sample:
        frames = torch.arange(table.shape[0]).view(-1, 1).expand(table.shape[:2])
        assert torch.equal(table[..., 0].long(), frames) and not table[..., 1].any(), table


# ---------------------------------------------------------------- running each mode


def masks_outputs(model: LitUniPixel, batch: UniPixelBatch, prompts: Tensor) -> dict[str, Tensor]:
    """Inference masks of prompt tokens ``(O, n, S)`` in the reference's per-``<|seg|>`` call order."""
    if not batch.sam_frames or prompts.shape[0] == 0:
        return {}
    tracked = list(model.mask_decoder.stream_segment(batch.sam_frames[0], prompts, batch.frame_sizes[0]))
    logits = torch.stack([frame.mask_logits for frame in tracked], dim=1)  # (O, T, H, W)
    produced = {
        "sam2_decoder_ious": torch.stack([frame.ious for frame in tracked], dim=1).flatten(0, 1),
        "sam2_decoder_object_score_logits": torch.stack([f.object_score_logits for f in tracked], dim=1).flatten(0, 1),
    }
    for k in range(logits.shape[0]):
        produced[f"seg_mask_logits.{k}"] = logits[k : k + 1]
        produced[f"seg_masks.{k}"] = logits[k : k + 1] > 0
    return produced


@torch.no_grad()
def run_eval(model: LitUniPixel, batch: UniPixelBatch, rope_deltas: Tensor) -> dict[str, Tensor]:
    """Inference forward: logits, intermediates and a mask for every input ``<|seg|>`` (plus a trailing one when
    the last position's raw-logit argmax is ``<|seg|>``, the reference's generation trigger)."""
    tokens = model.config.backbone.tokens
    out = model.run_backbone(batch)
    produced = {
        "logits": out.logits,
        "seg_head_out": model.pointer_head.seg_head(out.hidden_states),
        "position_ids": batch.position_ids,
        "rope_deltas": rope_deltas,
        "ref_emb": ref_embeddings(batch, model.prompt_encoder, tokens.ref),
    }
    if batch.pixel_values_videos is not None:
        vision = model.backbone.encode_vision(batch.pixel_values_videos, batch.video_grid_thw)
        merge = model.config.backbone.vision.spatial_merge_size
        produced |= {
            "visual_out": vision.embeds,
            "merger_mlp_in": vision.merger_inputs,
            "mem_emb": mem_embeddings(batch, vision, model.prompt_encoder, tokens.mem, merge),
        }
    prompts = model.seg_prompts(out.hidden_states, batch.input_ids)[0]
    if int(out.logits[0, -1].argmax()) == tokens.seg:
        prompts = torch.cat([prompts, model.pointer_head(out.hidden_states[0, -1:])])
    return produced | masks_outputs(model, batch, prompts)


@torch.no_grad()
def run_train(model: LitUniPixel, batch: UniPixelBatch) -> dict[str, Tensor]:
    """Training-mode forward: total, LM and mask losses, and the SAM 2 training outputs and loss terms."""
    model.train()
    try:
        output = model(batch)
        produced = {"loss_total": output.loss, "loss_lm": output.lm_loss, "loss_seg": output.mask_loss}
        if batch.target_masks:
            produced |= _sam2_training_outputs(model, batch)
    finally:
        model.eval()
    return {name: value for name, value in produced.items() if value is not None}


def _sam2_training_outputs(model: LitUniPixel, batch: UniPixelBatch) -> dict[str, Tensor]:
    prompts = model.seg_prompts(model.run_backbone(batch).hidden_states, batch.input_ids)
    parts: dict[str, list[Tensor]] = {}
    produced = {}
    for frames, targets, tokens in zip(batch.sam_frames, batch.target_masks, prompts, strict=True):
        decoded = model.mask_decoder(frames, tokens)
        normaliser = object_normaliser(targets.shape[1], targets.device, model.config.loss.global_object_count)
        terms = sam2_mask_loss(
            decoded.multimask_logits, decoded.ious, decoded.object_score_logits, targets, model.config.loss, normaliser
        )
        for name, value in (
            ("core_loss", terms.total),
            ("loss_mask", terms.focal),
            ("loss_dice", terms.dice),
            ("loss_iou", terms.iou),
            ("loss_class", terms.object_score),
        ):
            parts.setdefault(f"loss_seg_parts.{name}", []).append(value)
        produced |= {
            "sam2_ious": decoded.ious,
            "sam2_lowres_multimasks": decoded.low_res_multimask_logits,
            "sam2_object_score_logits": decoded.object_score_logits,
        }
    return produced | {name: torch.stack(values) for name, values in parts.items()}


@torch.no_grad()
def run_gen(model: LitUniPixel, batch: UniPixelBatch, num_new_tokens: int) -> dict[str, Tensor]:
    """Greedy generation: ids and masks through ``greedy_generate``; step logits and mask logits from the same
    decoding's ``greedy_decode`` trace."""
    generated = greedy_generate(model, batch, 0, num_new_tokens)
    decoded = greedy_decode(model, batch, num_new_tokens, keep_step_logits=True)
    produced = {"output_ids": generated.sequences[0], "step_logits": decoded.step_logits}
    masks = masks_outputs(model, batch, model.pointer_head(decoded.seg_states))
    if generated.masks[0] is not None:
        for k, mask in enumerate(generated.masks[0]):
            assert torch.equal(mask[None], masks[f"seg_masks.{k}"]), "greedy_generate and stream_segment disagree"
    return produced | masks


# ---------------------------------------------------------------- comparison


def tolerance_of(what: str, tolerances: dict[str, Any]) -> dict[str, float]:
    """The manifest's ``atol``/``rtol`` for a floating-point output named ``what`` (``<case>.<mode>.<what>``)."""
    if what.startswith("loss"):
        entry = tolerances["losses"]
    elif what.startswith(("sam2", "seg_mask_logits")):
        entry = tolerances["sam2_decoder_outputs_and_mask_logits"]
    else:
        entry = tolerances["logits_step_logits_seg_head_out_embeddings"]
    return {"atol": float(entry["atol"]), "rtol": float(entry["rtol"])}


def binary_mask_threshold(tolerances: dict[str, Any]) -> float:
    """``|logit|`` below which a recorded binary-mask pixel may differ (parsed from the manifest's rule text)."""
    match = re.search(r"\|logit\|\s*<\s*([0-9.eE+-]+)", str(tolerances.get("binary_masks", "")))
    return float(match.group(1)) if match else 0.0


def compare(name: str, ours: Tensor | None, fixture: Fixture) -> None:
    """Assert that ``ours`` matches the recorded output ``name`` and record the max difference."""
    expected = fixture.outputs[name]
    assert ours is not None, f"{name}: nothing produced"
    ours = ours.detach().cpu()
    assert tuple(ours.shape) == tuple(expected.shape), f"{name}: shape {tuple(ours.shape)} vs {tuple(expected.shape)}"
    what = name.split(".", 2)[2]
    if expected.dtype == torch.bool:
        logits_name = name.replace("seg_masks", "seg_mask_logits")
        decided = torch.ones_like(expected)
        if logits_name in fixture.outputs:
            decided = fixture.outputs[logits_name].abs() >= binary_mask_threshold(fixture.tolerance)
        differing = int((ours.bool() != expected)[decided].sum())
        MEASURED[name] = differing
        assert differing == 0, f"{name}: {differing} decided pixel(s) differ"
    elif not expected.is_floating_point():
        MEASURED[name] = int((ours.long() != expected.long()).sum())
        assert torch.equal(ours.long(), expected.long()), f"{name}: {ours.tolist()} vs {expected.tolist()}"
    else:
        MEASURED[name] = (ours.float() - expected.float()).abs().max().item() if expected.numel() else 0.0
        torch.testing.assert_close(ours.float(), expected.float(), **tolerance_of(what, fixture.tolerance), msg=name)


@pytest.mark.parametrize(("case", "mode"), RUNS, ids=[f"{case}-{mode}" for case, mode in RUNS])
def test_matches_recorded_outputs(fixture: Fixture, case: str, mode: str) -> None:
    spec = MANIFEST["cases"][case][mode]
    batch, rope_deltas = build_batch(fixture.model, fixture.arguments(spec[MODES[mode]]))
    expected = spec["outputs"]
    if mode == "eval":
        produced = run_eval(fixture.model, batch, rope_deltas)
    elif mode == "train":
        produced = run_train(fixture.model, batch)
    else:
        produced = run_gen(fixture.model, batch, fixture.outputs[f"{case}.gen.output_ids"].numel())
    if "num_seg_masks" in spec:
        assert sum(name.startswith("seg_masks.") for name in produced) == spec["num_seg_masks"], case
    for name in expected:
        compare(name, produced.get(name.split(".", 2)[2]), fixture)
    report = ", ".join(f"{name.split('.', 2)[2]}={MEASURED[name]:.3g}" for name in expected)
    print(f"\n{case}.{mode}: {report}")
