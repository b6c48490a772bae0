"""Probe: can SAM 2, trained from scratch, let its prompt tokens choose one object among several?

Trains the tiny UniPixel on the ``seg`` task alone (on-the-fly synthetic images) and prints, every ``--every``
steps on held-out images: cIoU of the mask SAM 2 decodes, the mean IoU of the best of its candidate masks, the
predicted mask's area fraction and its IoU with every shape of the scene together ("union"). docs/DEMO.md's probe
table comes from this script, e.g.

    python scripts/probe_seg_binding.py --objects 2 --answer "It is the {name} {seg}." --identity-prompt \\
        --sam-width 128 --single-mask --focal 5 --dice 5

``--identity-prompt`` bypasses the LLM: the prompt tokens are a learned embedding of the two tokens before each
``<|seg|>``, so with ``--answer "It is the {name} {seg}."`` they are a perfect code of the named object.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from statistics import mean

import torch
from torch import Tensor, nn

from unipixel_pl.config import UniPixelConfig, preset
from unipixel_pl.datamodules.synthetic import SyntheticDataModule
from unipixel_pl.datamodules.tasks import SEG_ANSWER
from unipixel_pl.metrics import CIoU
from unipixel_pl.metrics.functional import intersection_and_union, query_iou
from unipixel_pl.models.lit_unipixel import LitUniPixel
from unipixel_pl.types import UniPixelBatch

BACKGROUND_SPREAD = 1.0
"""A SAM 2 input pixel belongs to a shape when a channel is this far (normalised units) from the frame mean; the
grey noise background stays within about 0.3."""


class IdentityPromptModel(LitUniPixel):
    """The prompt tokens of a ``<|seg|>`` are a learned embedding of the two tokens before it (no LLM state)."""

    def configure_model(self) -> None:
        super().configure_model()
        width = self.config.mask_decoder.hidden_dim
        self.identity = nn.Embedding(self.config.backbone.vocab_size, self.config.mask_decoder.prompt_tokens * width)

    def seg_prompts(self, hidden_states: Tensor, input_ids: Tensor) -> list[Tensor]:
        rows, position = torch.nonzero(input_ids[:, 1:] == self.config.backbone.tokens.seg, as_tuple=True)
        codes = self.identity(input_ids[rows, position]) + self.identity(input_ids[rows, position - 1])
        tokens = codes.unflatten(-1, (self.config.mask_decoder.prompt_tokens, self.config.mask_decoder.hidden_dim))
        return [tokens[rows == b] for b in range(input_ids.shape[0])]


def probe_config(args: argparse.Namespace) -> UniPixelConfig:
    """The tiny preset with the probe's SAM 2 width, mask mode and loss weights."""
    config = preset("unipixel-tiny")
    mask_decoder = dataclasses.replace(
        config.mask_decoder, hidden_dim=args.sam_width, multimask_output=not args.single_mask
    )
    loss = dataclasses.replace(config.loss, focal=args.focal, dice=args.dice)
    return dataclasses.replace(config, mask_decoder=mask_decoder, loss=loss, temporal_features=args.sam_width // 2)


@torch.no_grad()
def evaluate(model: LitUniPixel, batches: list[UniPixelBatch]) -> dict[str, float]:
    """cIoU, best-of-candidates IoU, area fraction and IoU with all shapes, over ``batches`` (one target each)."""
    model.eval()
    ciou, best, area, union = CIoU(), [], [], []
    for batch in batches:
        prompts = model.seg_prompts(model.run_backbone(batch).hidden_states, batch.input_ids)
        for frames, target, tokens in zip(batch.sam_frames, batch.target_masks, prompts, strict=True):
            candidates = model.mask_decoder(frames, tokens).multimask_logits[0, 0] > 0  # (M, S, S)
            truth = target[0, 0].expand_as(candidates)
            best.append(query_iou(*intersection_and_union(candidates, truth)).max().item())
            mask = model.mask_decoder.segment(frames, tokens, frames.shape[-2:])  # (O, T, S, S)
            ciou.update(mask.flatten(0, 1), target.transpose(0, 1).flatten(0, 1))
            shapes = (frames[0] - frames[0].mean(dim=(1, 2), keepdim=True)).abs().amax(dim=0) > BACKGROUND_SPREAD
            area.append(mask[0, 0].float().mean().item())
            union.append(query_iou(*intersection_and_union(mask[0, 0], shapes)).item())
    model.train()
    return {"ciou": ciou.compute().item(), "best_of_M": mean(best), "area": mean(area), "union_iou": mean(union)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=2, help="shapes per image")
    parser.add_argument("--answer", default=SEG_ANSWER, help="seg answer template ({seg}, {name})")
    parser.add_argument("--identity-prompt", action="store_true", help="prompt tokens from a learned token code")
    parser.add_argument("--sam-width", type=int, default=32, help="SAM 2 hidden width")
    parser.add_argument("--single-mask", action="store_true", help="one mask per prompt instead of 3 candidates")
    parser.add_argument("--focal", type=float, default=100.0, help="focal loss weight")
    parser.add_argument("--dice", type=float, default=5.0, help="dice loss weight")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clip", type=float, default=0.0, help="gradient norm clip (0: none)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--test-images", type=int, default=64)
    args = parser.parse_args()

    torch.manual_seed(0)
    config = probe_config(args)
    model = (IdentityPromptModel if args.identity_prompt else LitUniPixel)(config)
    model.configure_model()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 30))
    data = SyntheticDataModule(
        config,
        tasks=["seg"],
        batch_size=args.batch_size,
        video_frames=1,
        train_samples=args.steps * args.batch_size,
        test_samples=args.test_images,
        objects=(args.objects, args.objects),
        seg_answer=args.answer,
    )
    train, test = iter(data.train_dataloader()), list(data.test_dataloader())
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        loss = model(next(train)).loss
        optimizer.zero_grad()
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        warmup.step()
        if step % args.every == 0 or step == args.steps:
            scores = " ".join(f"{name}={value:.3f}" for name, value in evaluate(model, test).items())
            print(f"step {step:5d}  {time.perf_counter() - start:6.0f} s  loss={loss.item():.3f}  {scores}", flush=True)


if __name__ == "__main__":
    main()
