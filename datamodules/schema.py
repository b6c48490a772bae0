"""The versioned sample schema of unipixel-pl shards (``reference/DATA.md`` §11.2).

A shard sample is a group of tar members sharing a key: ``meta.json`` (this module's ``SampleMeta``), the original
media bytes (``f0000.jpg`` ... or ``video.mp4``) and, when the sample has masks, ``masks.json`` (targets),
``refer.json`` (mask prompts that differ from the targets), ``ignore.json`` (ignore regions) and ``gt.json``
(evaluation-only scoring data). Sampling, templates, prompts and processing happen online, so ``meta.json`` keeps
the raw annotation: turns of text with the objects they mention.

Differences from DATA.md §11.2: general and region conversations are ``turns`` of ``meta.json`` (no separate
``conv.json``); ``expand`` marks per-video records whose turns become one sample each (§11.3 step 2).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 1
"""Bumped on any incompatible change of ``meta.json`` or of the members; readers refuse other versions."""

FAMILIES: tuple[str, ...] = ("seg", "ref", "region", "mem", "mm", "mcq")
"""``seg`` text -> masks; ``ref`` point/box prompt -> text; ``region`` mask prompt -> text; ``mem`` point/box
prompt -> masks (PixelQA); ``mm`` general QA; ``mcq`` multiple choice."""
MEDIA_KINDS: tuple[str, ...] = ("image", "frames", "mp4", "none")
SEG_TURN_TYPES: tuple[str, ...] = ("query", "sentence", "explanatory", "question", "description")

META, MASKS, REFER, IGNORE, GT, VIDEO = "meta.json", "masks.json", "refer.json", "ignore.json", "gt.json", "video.mp4"
PROMPT_SLOT = "{}"
"""Marks a data type whose visual prompt kind (point or box) is drawn per sample, e.g. ``ref_{}``."""


class SchemaError(ValueError):
    """A ``meta.json`` that does not follow the schema."""


def frame_member(index: int, extension: str = "jpg") -> str:
    """Member name of frame ``index``: ``f0000.jpg``."""
    return f"f{index:04d}.{extension.lower().lstrip('.')}"


def sample_key(source: str, vid: str, qid: str | int = "") -> str:
    """``{source}__{vid}__{qid}`` with ``/``, ``.`` and spaces replaced (WebDataset splits keys at the first dot)."""
    parts = [str(part) for part in (source, vid, qid) if str(part) != ""]
    return "__".join(part.replace("/", "_").replace(".", "_").replace(" ", "_") for part in parts)


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of ``parts`` that is identical on every process and run (unlike ``hash``)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def prompt_kind(key: str, seed: int) -> str:
    """``point`` or ``box`` for a sample, 50/50 by a seeded hash of its key (DATA.md §11.3 step 4)."""
    return "point" if stable_hash("prompt", seed, key) % 2 == 0 else "box"


def resolve_data_type(template: str, key: str, seed: int) -> str:
    """The data type of one sample: ``template`` with its ``{}`` slot filled by ``prompt_kind``."""
    return template.replace(PROMPT_SLOT, prompt_kind(key, seed)) if PROMPT_SLOT in template else template


def template_types(template: str) -> dict[str, float]:
    """The data types a template resolves to, with the expected share of samples of each."""
    if PROMPT_SLOT not in template:
        return {template: 1.0}
    return {template.replace(PROMPT_SLOT, kind): 0.5 for kind in ("point", "box")}


@dataclass
class Media:
    """The visual input of a sample.

    Attributes:
        kind: ``image`` (one frame), ``frames`` (one member per frame), ``mp4`` (``video.mp4``, the original bytes,
            decoded with PyAV at the sampled frames) or ``none``.
        num_frames: frames available to the sampler (for ``mp4``: the annotated/strided frames listed in
            ``orig_frame_indices``).
        height, width: original frame size.
        frame_names: member name of each frame (``image`` and ``frames``).
        orig_frame_indices: index of each frame in the original video.
        prompt_frame: a frame the sampler must keep (benchmark ``frame_idx``, single-frame mode), or None.
        stride: temporal stride applied when writing (Ref-SAV keeps every 4th frame).
        single_frame_mode: masks exist on ``prompt_frame`` only (VideoRefer short captions).
    """

    kind: str = "image"
    num_frames: int = 1
    height: int = 0
    width: int = 0
    frame_names: list[str] = field(default_factory=list)
    orig_frame_indices: list[int] = field(default_factory=list)
    prompt_frame: int | None = None
    stride: int = 1
    single_frame_mode: bool = False


@dataclass
class ObjectInfo:
    """An annotated object: its id in the text (``[oid]``), category and row in the mask tables (-1: none)."""

    oid: int
    category: str = ""
    mask_index: int = -1


@dataclass
class Turn:
    """One question-answer unit before templating.

    Attributes:
        type: ``query``/``sentence``/``explanatory``/``question``/``description`` (seg), ``caption``/``qa``
            (ref, region, mm), ``mem`` (PixelQA), ``mcq``.
        text: the expression or question; ``<|ref|>`` marks point/box prompts (ref, mem families) and ``[k]``
            names object ``k``.
        answer: the answer, explanation or caption ("" for plain segmentation).
        objects: indices into ``SampleMeta.objects`` this turn targets or prompts, in order.
    """

    type: str
    text: str
    answer: str = ""
    objects: list[int] = field(default_factory=list)


@dataclass
class SampleMeta:
    """``meta.json``: everything about a sample except its media and mask bytes."""

    source: str
    split: str
    family: str
    data_type_template: str
    vid: str
    media: Media
    turns: list[Turn]
    qid: str = ""
    objects: list[ObjectInfo] = field(default_factory=list)
    expand: bool = False
    options: list[str] = field(default_factory=list)
    ans: str = ""
    task: str = ""
    eval: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    @property
    def key(self) -> str:
        return sample_key(self.source, self.vid, self.qid)

    @property
    def num_units(self) -> int:
        """Samples this record yields online: one per turn when ``expand``, else one."""
        return len(self.turns) if self.expand else 1

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> SampleMeta:
        """Parse and validate ``meta.json`` bytes; raises ``SchemaError`` naming the problem."""
        try:
            document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SchemaError(f"meta.json is not valid UTF-8 JSON: {error}") from error
        if not isinstance(document, dict):
            raise SchemaError(f"meta.json must be an object, got {type(document).__name__}")
        if document.get("schema") != SCHEMA_VERSION:
            raise SchemaError(
                f"meta.json has schema {document.get('schema')!r}, this reader reads schema {SCHEMA_VERSION}; "
                "rewrite the shards with `unipixel shards` of this version"
            )
        meta = _build(cls, document, "meta")
        validate_meta(meta)
        return meta


_NESTED: dict[str, tuple[type, bool]] = {"media": (Media, False), "objects": (ObjectInfo, True), "turns": (Turn, True)}
"""``SampleMeta`` fields holding dataclasses: name -> (type, is a list)."""


def _build(cls: type, document: Any, path: str) -> Any:
    """Instantiate dataclass ``cls`` from a JSON object, refusing unknown or missing keys."""
    if not isinstance(document, dict):
        raise SchemaError(f"{path} must be an object, got {type(document).__name__}")
    unknown = sorted(set(document) - {f.name for f in fields(cls)})
    if unknown:
        raise SchemaError(f"{path} has unknown field(s) {unknown}; known: {sorted(f.name for f in fields(cls))}")
    kwargs = dict(document)
    if cls is SampleMeta:
        for name in set(_NESTED) & set(kwargs):
            kwargs[name] = _build_nested(name, kwargs[name], f"{path}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise SchemaError(f"{path}: {error}") from error


def _build_nested(name: str, value: Any, path: str) -> Any:
    item_type, is_list = _NESTED[name]
    if not is_list:
        return _build(item_type, value, path)
    if not isinstance(value, list):
        raise SchemaError(f"{path} must be a list, got {type(value).__name__}")
    return [_build(item_type, item, f"{path}[{i}]") for i, item in enumerate(value)]


def validate_meta(meta: SampleMeta) -> None:
    """Raise ``SchemaError`` when ``meta`` is internally inconsistent."""
    if meta.family not in FAMILIES:
        raise SchemaError(f"unknown family {meta.family!r}; choose one of {FAMILIES}")
    media = meta.media
    if media.kind not in MEDIA_KINDS:
        raise SchemaError(f"unknown media kind {media.kind!r}; choose one of {MEDIA_KINDS}")
    if media.kind in ("image", "frames") and len(media.frame_names) != media.num_frames:
        raise SchemaError(f"media lists {len(media.frame_names)} frame names for num_frames={media.num_frames}")
    if media.kind == "mp4" and len(media.orig_frame_indices) != media.num_frames:
        raise SchemaError(
            f"an mp4 lists its sampler frames in orig_frame_indices: {len(media.orig_frame_indices)} for "
            f"num_frames={media.num_frames}"
        )
    if media.kind == "image" and media.num_frames != 1:
        raise SchemaError(f"an image has one frame, got num_frames={media.num_frames}")
    if media.kind != "none" and (media.num_frames < 1 or media.height < 1 or media.width < 1):
        raise SchemaError(f"media needs num_frames, height and width >= 1, got {media}")
    if media.prompt_frame is not None and not 0 <= media.prompt_frame < media.num_frames:
        raise SchemaError(f"prompt_frame {media.prompt_frame} outside the {media.num_frames} frames")
    if not meta.turns:
        raise SchemaError("a sample needs at least one turn")
    for index, turn in enumerate(meta.turns):
        bad = [o for o in turn.objects if not 0 <= o < len(meta.objects)]
        if bad:
            raise SchemaError(f"turn {index} names objects {bad} but the sample has {len(meta.objects)}")
