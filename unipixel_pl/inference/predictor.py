"""The Python inference API: ``Predictor.from_pretrained(dir).predict(media, prompt, points=, boxes=, masks=)``.

Flow (MODEL.md §7): each request's media is sampled to 16 LLM frames (:mod:`~unipixel_pl.inference.encoding`), all
requests are decoded greedily together (:mod:`~unipixel_pl.inference.decoding`), and every ``<|seg|>`` of the prompt
or the answer becomes SAM 2 prompt tokens; SAM 2 then tracks the objects of all requests on one media together,
from frame 0 through every frame of the media, decoding each frame once (:mod:`~unipixel_pl.inference.streaming`).

Memory. :meth:`Predictor.stream` holds one frame at a time; :meth:`Predictor.predict` also returns every mask
``(O, T, H, W)`` (``O·T·H·W`` bytes). Measured with ``python -m benchmarks.inference_memory`` (CPU, 2 threads, fp32,
random weights, 320x240 frames, one object): the tiny preset on a 300-frame mp4 peaks at 703 MiB for the whole
process (697 MiB for 30 frames; the streamed SAM 2 pass stays within 4 MiB of the loaded model). SAM 2.1 Hiera-B+ at
768 alone stays between 1.14 and 1.30 GiB resident over 40 frames, high-water 1.40 GiB, flat once its memory bank
is full (frame 16), so 300 frames need the same. UniPixel-3B on a GPU is estimated at about 10 GB whatever the
length (7.8 GB of bf16 backbone weights, the 16-frame prefill and its logits, SAM 2 in fp32). ``docs/INFERENCE.md``
has the table and the breakdown.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from unipixel_pl.checkpoints.official import load_official
from unipixel_pl.checkpoints.ours import is_ours, load_ours
from unipixel_pl.datamodules.collate import Collator
from unipixel_pl.inference.decoding import batched_greedy_decode
from unipixel_pl.inference.encoding import EncodedRequest, encode_request
from unipixel_pl.inference.media import Media, MediaSource, open_media
from unipixel_pl.inference.requests import MaskPrompt, RegionPrompt, Request, read_mask
from unipixel_pl.inference.streaming import track_media
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.processing import UniPixelProcessor


class CheckpointError(ValueError):
    """A directory that is not a UniPixel checkpoint in our format or the official one."""


@dataclass
class InferenceSettings:
    """How requests are run."""

    max_new_tokens: int = 512
    """Most tokens generated per answer (the reference's evaluation uses 512)."""
    max_input_tokens: int = 16384
    """Longest accepted input (text and visual tokens); longer requests are refused."""
    llm_frames: int = 16
    """Frames sampled uniformly for the LLM (SAM 2 always sees every frame)."""
    batch_size: int = 8
    """Requests decoded together in one LLM batch."""

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "max_input_tokens", "llm_frames", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"InferenceSettings.{name} must be at least 1, got {getattr(self, name)}")


@dataclass
class Answer:
    """The text side of one request.

    Attributes:
        text: the generated answer, ``<|seg|>`` tokens kept, the final ``<|im_end|>`` dropped.
        token_ids: generated ids (``<|im_end|>`` included when reached).
        llm_frames: media frame indices the LLM saw.
        input_tokens: input length in tokens.
        num_objects: ``O``, one object per ``<|seg|>`` of the prompt and the answer, in that order.
    """

    text: str
    token_ids: list[int]
    llm_frames: list[int]
    input_tokens: int
    num_objects: int


@dataclass
class Prediction(Answer):
    """An answer with its masks: ``masks`` bool ``(O, T, H, W)`` over every frame of the media (O may be 0)."""

    masks: Tensor = field(default_factory=lambda: torch.zeros(0, 0, 0, 0, dtype=torch.bool))


@dataclass
class FrameMasks:
    """Masks of one frame for every request of a stream.

    Attributes:
        index: frame index in the media.
        rgb: uint8 ``(H, W, 3)`` frame.
        masks: per request bool ``(O_r, H, W)``.
        object_scores: per request ``(O_r,)`` SAM 2 object-presence logits (> 0: the object is visible).
    """

    index: int
    rgb: np.ndarray
    masks: list[Tensor]
    object_scores: list[Tensor]


@dataclass
class MediaStream:
    """Answers to requests about one media, and an iterator over its frames with their masks.

    ``frames`` yields nothing when no request has an object; each frame is decoded once for all requests.
    """

    media: Media
    answers: list[Answer]
    frames: Iterator[FrameMasks]


class Predictor:
    """UniPixel inference on images, videos and frame folders.

    Args:
        model: the model (put in eval mode here).
        processor: its processor.
        settings: generation and sampling settings.
    """

    def __init__(
        self, model: LitUniPixel, processor: UniPixelProcessor, settings: InferenceSettings | None = None
    ) -> None:
        self.model = model.eval()
        self.processor = processor
        self.settings = settings or InferenceSettings()
        self.collate = Collator(model.config.backbone.tokens.endoftext)

    @classmethod
    def from_pretrained(
        cls,
        checkpoint_dir: str | Path,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        settings: InferenceSettings | None = None,
    ) -> Predictor:
        """Load one of our checkpoint directories or an official one (detected by its files).

        Args:
            checkpoint_dir: ``unipixel.json`` + weights (ours) or ``config.json`` of ``pixel_qwen2_5_vl`` (official,
                loaded with the reference switches the published weights need).
            device: default ``cuda`` when available, else ``cpu``.
            dtype: the backbone's dtype; default bfloat16 on CUDA, float32 on CPU. The prompt encoder, pointer
                head and SAM 2 always run in float32 (read at ``dtype`` first: exact for bf16 checkpoints).
            settings: see :class:`InferenceSettings`.

        Raises:
            CheckpointError: not a UniPixel checkpoint, or one whose files do not fit its config (named).
        """
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        model, processor = load_checkpoint(checkpoint_dir, dtype)
        for part in (model.prompt_encoder, model.pointer_head, model.mask_decoder):
            part.float()  # SAM 2's point encoder needs float32 buffers; the three parts are small
        return cls(model.to(device), processor, settings)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def predict(
        self,
        media: MediaSource,
        prompt: str,
        points: Sequence[Sequence[float]] = (),
        boxes: Sequence[Sequence[float]] = (),
        masks: Sequence[object] = (),
    ) -> Prediction:
        """Answer one request.

        Args:
            media: image/video/folder path, PIL image, uint8 ``(T, H, W, 3)`` array or ``Media``.
            prompt: the question; one ``<|ref|>`` per point and box (points first, then boxes), ``[k]`` for mask k.
            points: ``(x, y)`` or ``(x, y, frame)`` in original pixels.
            boxes: ``(x1, y1, x2, y2)`` or ``(x1, y1, x2, y2, frame)``.
            masks: bool ``(H, W)`` arrays, mask image paths, or ``MaskPrompt``s (frame 0 unless given).

        Raises:
            MediaError, RequestError: bad media or request (see :func:`~unipixel_pl.inference.requests.check_request`).
        """
        regions = [_region(p, 2) for p in points] + [_region(b, 4) for b in boxes]
        return self.predict_batch([Request(media, prompt, regions, [_mask(m) for m in masks])])[0]

    def predict_batch(self, requests: Sequence[Request]) -> list[Prediction]:
        """Answer several requests (any media); the LLM runs them in batches, SAM 2 once per media."""
        medias = _open_all(requests)
        answers, tokens = self._generate(requests, medias)
        predictions: list[Prediction | None] = [None] * len(requests)
        for indices in _group_by_media(medias):
            media = medias[indices[0]]
            group = [answers[i] for i in indices]
            collected = _collect_masks(media, group, self._frames(media, [tokens[i] for i in indices], group))
            for i, masks in zip(indices, collected, strict=True):
                predictions[i] = Prediction(**vars(answers[i]), masks=masks)
        return [p for p in predictions if p is not None]

    def stream(self, requests: Sequence[Request]) -> MediaStream:
        """Answer requests about one media; masks arrive frame by frame (bounded memory for long videos).

        Raises:
            ValueError: the requests are about different media.
        """
        medias = _open_all(requests)
        if len(_group_by_media(medias)) != 1:
            raise ValueError("stream() takes requests about one media; use predict_batch() for several media")
        answers, tokens = self._generate(requests, medias)
        return MediaStream(medias[0], answers, self._frames(medias[0], tokens, answers))

    def _generate(self, requests: Sequence[Request], medias: list[Media]) -> tuple[list[Answer], list[Tensor]]:
        """Encode every request first (so bad input fails before any model work), then decode in batches."""
        settings, size = self.settings, self.model.config.mask_decoder.image_size
        encoded = [
            encode_request(self.processor, size, m, r, settings.llm_frames, settings.max_input_tokens)
            for m, r in zip(medias, requests, strict=True)
        ]
        answers, tokens = [], []
        for start in range(0, len(encoded), settings.batch_size):
            chunk_answers, chunk_tokens = self._decode(encoded[start : start + settings.batch_size])
            answers += chunk_answers
            tokens += chunk_tokens
        return answers, tokens

    @torch.no_grad()
    def _decode(self, encoded: list[EncodedRequest]) -> tuple[list[Answer], list[Tensor]]:
        batch = self.collate([e.record for e in encoded]).to(self.device)
        decoded = batched_greedy_decode(self.model, batch, self.settings.max_new_tokens)
        answers = [
            Answer(self._text(d.token_ids), d.token_ids, e.llm_frames, e.input_tokens, d.seg_states.shape[0])
            for d, e in zip(decoded, encoded, strict=True)
        ]
        head_dtype = next(self.model.pointer_head.parameters()).dtype
        return answers, [self.model.pointer_head(d.seg_states.to(head_dtype)) for d in decoded]

    def _text(self, token_ids: list[int]) -> str:
        end = self.model.config.backbone.tokens.im_end
        return self.processor.decode(token_ids[:-1] if token_ids[-1:] == [end] else token_ids).strip()

    def _frames(self, media: Media, tokens: list[Tensor], answers: list[Answer]) -> Iterator[FrameMasks]:
        """Track the objects of all requests together and split each frame's masks back per request."""
        counts = [answer.num_objects for answer in answers]
        for tracked in track_media(self.model.mask_decoder, media, torch.cat(tokens)):
            logits = tracked.segmentation.mask_logits.cpu()
            scores = tracked.segmentation.object_score_logits[:, 0].float().cpu()
            yield FrameMasks(tracked.index, tracked.rgb, list((logits > 0).split(counts)), list(scores.split(counts)))


def load_checkpoint(checkpoint_dir: str | Path, dtype: torch.dtype | None) -> tuple[LitUniPixel, UniPixelProcessor]:
    """Our checkpoint format (``unipixel.json``) or the official one (``config.json``), detected by its files.

    Raises:
        CheckpointError: neither, or files that do not fit (the cause is named).
    """
    path = Path(checkpoint_dir)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is not a directory; pass a UniPixel checkpoint directory")
    try:
        if is_ours(path):
            return load_ours(path, dtype)
        if (path / "config.json").is_file():
            return load_official(path, reference=True, dtype=dtype)
    except (FileNotFoundError, ValueError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise CheckpointError(f"cannot load checkpoint {str(path)!r}: {message}") from error
    raise CheckpointError(
        f"{str(path)!r} is not a UniPixel checkpoint: it has neither unipixel.json (unipixel-pl) nor config.json "
        "(official); convert other weights with `unipixel convert`"
    )


def _region(values: Sequence[float], count: int) -> RegionPrompt:
    """``count`` coordinates, optionally followed by a frame index."""
    values = list(values)
    frame = int(values.pop()) if len(values) == count + 1 else 0
    return RegionPrompt(tuple(float(v) for v in values), frame)


def _mask(value: object) -> MaskPrompt:
    if isinstance(value, MaskPrompt):
        return value
    if isinstance(value, (str, Path)):
        return MaskPrompt(read_mask(value), 0, str(value))
    return MaskPrompt(np.asarray(value).astype(bool))


def _open_all(requests: Sequence[Request]) -> list[Media]:
    """One ``Media`` per request; a source named by several requests is opened once."""
    opened: dict[object, Media] = {}
    for request in requests:
        key = _media_key(request.media)
        if key not in opened:
            opened[key] = open_media(request.media)
    return [opened[_media_key(request.media)] for request in requests]


def _media_key(source: MediaSource) -> object:
    return str(Path(source).resolve()) if isinstance(source, (str, Path)) else id(source)


def _group_by_media(medias: list[Media]) -> list[list[int]]:
    groups: dict[int, list[int]] = {}
    for index, media in enumerate(medias):
        groups.setdefault(id(media), []).append(index)
    return list(groups.values())


def _collect_masks(media: Media, answers: list[Answer], frames: Iterator[FrameMasks]) -> list[Tensor]:
    """Per request bool ``(O, T, H, W)`` assembled from the frame stream."""
    height, width = media.frame_size
    masks = [torch.zeros(a.num_objects, media.num_frames, height, width, dtype=torch.bool) for a in answers]
    for frame in frames:
        for target, frame_masks in zip(masks, frame.masks, strict=True):
            target[:, frame.index] = frame_masks
    return masks
