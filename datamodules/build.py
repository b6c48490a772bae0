"""Online sample construction: a shard record becomes frames plus a templated ``TaskSample``.

Per sample (``reference/DATA.md`` §11.3 steps 3-5): sample frames, decode only those, resolve the data type
(point or box by a seeded key hash), choose turns and templates, decode masks at the sampled frames and draw the
visual prompts. Training draws templates, turns and prompts from the sample's generator; evaluation takes the
first template, the first turns and deterministic prompts (center point, exact box).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from unipixel_pl.config import REF_TOKEN, SEG_TOKEN
from unipixel_pl.datamodules import templates as tpl
from unipixel_pl.datamodules.frames import decode_frames, sample_indices
from unipixel_pl.datamodules.health import bad
from unipixel_pl.datamodules.prompts import make_prompt
from unipixel_pl.datamodules.reader import Record
from unipixel_pl.datamodules.rle import InvalidRLEError, MaskTable
from unipixel_pl.datamodules.schema import Turn, resolve_data_type
from unipixel_pl.datamodules.tasks import PromptSpec, TaskSample, memory_prefix


@dataclass
class BuildConfig:
    """Online sampling settings.

    Attributes:
        sample_frames: frames sampled from a video (8 in training, 16 in evaluation).
        frame_sampler: ``random`` (TSN, training) or ``uniform`` (evaluation).
        max_conv_turns: segmentation turns drawn from a multi-expression record (RefCOCO family).
        sam_image_size: SAM 2 input side (scales the box jitter).
        train: random templates, turns and prompts; False takes the first of each and deterministic prompts.
        seed: seeds the point/box choice of each key.
    """

    sample_frames: int = 8
    frame_sampler: str = "random"
    max_conv_turns: int = 3
    sam_image_size: int = 768
    train: bool = True
    seed: int = 0


@dataclass
class BuiltSample:
    """What the encoder needs: ``frames`` uint8 ``(T, H, W, 3)`` (None for text-only) and the conversation.

    ``frame_indices`` are the sampled frames' indices among the record's frames (``meta.media``).
    """

    key: str
    data_type: str
    frames: np.ndarray | None
    task: TaskSample
    frame_indices: list[int]


class _Context:
    """One record being built: sampled frames, the generator (None in evaluation) and mask access."""

    def __init__(self, record: Record, config: BuildConfig, rng: np.random.Generator) -> None:
        self.record, self.config, self.meta = record, config, record.meta
        self.rng = rng if config.train else None
        self.data_type = resolve_data_type(self.meta.data_type_template, record.key, config.seed)
        media = self.meta.media
        self.media = None if media.kind == "none" else ("image" if media.kind == "image" else "video")
        self.indices: list[int] = []
        if self.media is not None:
            self.indices = sample_indices(
                media.num_frames, config.sample_frames, config.frame_sampler, rng, keep=media.prompt_frame
            )
        self.preferred = self.indices.index(media.prompt_frame) if media.prompt_frame in self.indices else None

    def turns(self, limit: int) -> list[Turn]:
        """The expanded record's turn, else up to ``limit`` turns (random in training, the first in evaluation)."""
        turns = self.meta.turns
        if self.record.turn is not None:
            return [turns[self.record.turn]]
        count = min(limit, len(turns))
        if self.rng is None:
            return turns[:count]
        return [turns[i] for i in self.rng.choice(len(turns), size=count, replace=False)]

    def conversation_turns(self) -> list[Turn]:
        """The expanded record's turn, else every turn in order (conversations keep their order)."""
        return self.meta.turns if self.record.turn is None else [self.meta.turns[self.record.turn]]

    def masks(self, objects: list[int], refer: bool = False) -> np.ndarray:
        """``(T, O, H, W)`` bool masks of ``objects`` (indices into ``meta.objects``) at the sampled frames."""
        table = (self.record.refer or self.record.masks) if refer else self.record.masks
        rows = [self.meta.objects[o].mask_index for o in objects]
        if table is None or min(rows, default=0) < 0:
            raise bad(self.record.unit_key, "missing_member", f"objects {objects} have no masks", self.record.url)
        return self._decode(table, rows)

    def _decode(self, table: MaskTable, rows: list[int]) -> np.ndarray:
        try:
            return table.decode(rows, self.indices)
        except InvalidRLEError as error:
            raise bad(self.record.unit_key, "invalid_rle", str(error), self.record.url) from error

    def prompts(self, masks: np.ndarray, kind: str) -> list[PromptSpec]:
        """One ``kind`` prompt per object of ``(T, O, H, W)`` masks; an object empty on every frame is bad data."""
        prompts = []
        for o in range(masks.shape[1]):
            prompt = make_prompt(kind, masks[:, o], self.rng, self.config.sam_image_size, self.preferred)
            if prompt is None:
                detail = f"prompt object {o} is empty on the sampled frames"
                raise bad(self.record.unit_key, "empty_object", detail, self.record.url)
            prompts.append(prompt)
        return prompts

    def conversation(self, pairs: list[tuple[str, str]]) -> list[dict]:
        """Chat messages; the media (if any) opens the first user turn."""
        messages: list[dict] = []
        for index, (question, answer) in enumerate(pairs):
            content: list[dict] = [{"type": "text", "text": question}]
            if index == 0 and self.media is not None:
                content.insert(0, {"type": self.media})
            messages += [{"role": "user", "content": content}, {"role": "assistant", "content": answer}]
        return messages

    def check_ref_tokens(self, turn: Turn) -> None:
        """Raise unless the turn has one ``<|ref|>`` per object, and at least one."""
        count = turn.text.count(REF_TOKEN)
        if count != len(turn.objects) or count == 0:
            detail = f"turn has {count} {REF_TOKEN} for {len(turn.objects)} object(s): {turn.text!r}"
            raise bad(self.record.unit_key, "bad_meta", detail, self.record.url)


def _union_per_turn(ctx: _Context, turns: list[Turn]) -> np.ndarray:
    """``(T, turns, H, W)``: each turn's objects merged into its one target."""
    return np.stack([ctx.masks(turn.objects).any(axis=1) for turn in turns], axis=1)


def _segmentation(ctx: _Context) -> TaskSample:
    turns = ctx.turns(ctx.config.max_conv_turns)
    media = ctx.media or "image"
    pairs = [
        (tpl.seg_question(t.type, t.text, media, ctx.rng), tpl.seg_answer(t.type, t.answer, ctx.rng)) for t in turns
    ]
    return TaskSample(ctx.data_type, ctx.conversation(pairs), seg_masks=_union_per_turn(ctx, turns))


def _referring(ctx: _Context) -> TaskSample:
    turn = ctx.turns(1)[0]
    text = turn.text or tpl.choose(tpl.REF_SHORT_CAPTION, ctx.rng)
    ctx.check_ref_tokens(Turn(turn.type, text, turn.answer, turn.objects))
    prompts = ctx.prompts(ctx.masks(turn.objects), ctx.data_type.split("_")[1])
    return TaskSample(ctx.data_type, ctx.conversation([(text, turn.answer)]), prompts=prompts)


def _region(ctx: _Context) -> TaskSample:
    turns = ctx.conversation_turns()
    objects = sorted({o for turn in turns for o in turn.objects}) or list(range(len(ctx.meta.objects)))
    masks = ctx.masks(objects, refer=True)
    empty = [o for i, o in enumerate(objects) if not masks[:, i].any()]
    if empty:
        detail = f"mask prompts of objects {empty} are empty on the sampled frames"
        raise bad(ctx.record.unit_key, "empty_object", detail, ctx.record.url)
    oids = [ctx.meta.objects[o].oid for o in objects]
    pairs = [(_region_question(ctx, turn), turn.answer) for turn in turns]
    pairs[0] = (memory_prefix(len(ctx.indices), masks, oids) + pairs[0][0], pairs[0][1])
    return TaskSample(ctx.data_type, ctx.conversation(pairs), refer_masks=masks)


def _region_question(ctx: _Context, turn: Turn) -> str:
    if turn.text:
        return turn.text
    oids = ", ".join(f"[{ctx.meta.objects[o].oid}]" for o in turn.objects)
    return tpl.choose(tpl.REGION_DESCRIPTION, ctx.rng).format(oids)


def _memory(ctx: _Context) -> TaskSample:
    turn = ctx.turns(1)[0]
    ctx.check_ref_tokens(turn)
    question = turn.text
    if turn.answer:
        letter = "ABCD"[int(ctx.rng.integers(4))] if ctx.rng is not None else "A"
        question = tpl.MEMORY_OPTIONS.format(question, letter, turn.answer)
    question = tpl.choose(tpl.SEG_MEMORY, ctx.rng).format(question)
    answer = " ".join(f"[{ctx.meta.objects[o].oid}] {SEG_TOKEN}" for o in turn.objects)
    masks = ctx.masks(turn.objects)
    prompts = ctx.prompts(masks, ctx.data_type.split("_")[1])
    return TaskSample(ctx.data_type, ctx.conversation([(question, answer)]), seg_masks=masks, prompts=prompts)


def _general(ctx: _Context) -> TaskSample:
    turns = ctx.conversation_turns()
    return TaskSample(ctx.data_type, ctx.conversation([(turn.text, turn.answer) for turn in turns]))


def _multiple_choice(ctx: _Context) -> TaskSample:
    turn = ctx.turns(1)[0]
    question = tpl.mcq_question(turn.text, ctx.meta.options)
    return TaskSample(ctx.data_type, ctx.conversation([(question, tpl.MCQ_ANSWER.format(ctx.meta.ans))]))


FAMILY_BUILDERS: dict[str, Callable[[_Context], TaskSample]] = {
    "seg": _segmentation,
    "ref": _referring,
    "region": _region,
    "mem": _memory,
    "mm": _general,
    "mcq": _multiple_choice,
}


def build_sample(record: Record, config: BuildConfig, rng: np.random.Generator) -> BuiltSample:
    """Frames and conversation of one record (one turn of it when expanded).

    Raises:
        BadSampleError: corrupt frames, invalid masks, or an object empty on every sampled frame where a prompt
            needs it.
    """
    ctx = _Context(record, config, rng)
    frames = None if ctx.media is None else decode_frames(record, ctx.indices)
    task = FAMILY_BUILDERS[record.meta.family](ctx)
    return BuiltSample(record.unit_key, ctx.data_type, frames, task, ctx.indices)
