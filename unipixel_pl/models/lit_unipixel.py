"""``LitUniPixel``: the one module the Trainer drives. It composes the four parts and owns steps, losses,
metrics, logging and optimizers (``reference/MODEL.md`` §4, §6, §7)."""

from __future__ import annotations

import warnings

import lightning as L
import numpy as np
import torch
from torch import Tensor

from unipixel_pl.config import GenerationConfig, LoraConfig, OptimizerConfig, UniPixelConfig, preset
from unipixel_pl.distributed import shard_model
from unipixel_pl.evaluation.config import EvaluationConfig
from unipixel_pl.evaluation.evaluator import BenchmarkEvaluator
from unipixel_pl.metrics import CIoU
from unipixel_pl.models.backbone import Backbone, BackboneOutput
from unipixel_pl.models.generation import greedy_generate
from unipixel_pl.models.held_out import HeldOutMetrics
from unipixel_pl.models.init_weights import load_initial_weights
from unipixel_pl.models.inputs import build_inputs_embeds
from unipixel_pl.models.lora import LORA_MARKER, inject_lora
from unipixel_pl.models.losses import check_mask_targets, lm_loss, sample_objects
from unipixel_pl.models.mask_decoder import MaskDecoder
from unipixel_pl.models.mask_loss import MaskLossTerms
from unipixel_pl.models.optim import apply_trainable, eval_frozen_modules, parameter_groups, warmup_cosine
from unipixel_pl.models.pixel_pipeline import prepare_batch
from unipixel_pl.models.pointer_head import PointerHead
from unipixel_pl.models.prompt_encoder import PromptEncoder
from unipixel_pl.types import UniPixelBatch, UniPixelOutput

# Our datamodules leave the batch-transfer hooks to the model on purpose (the model prepares its own pixels), so
# Lightning's notice that the model's `on_after_batch_transfer` is used although a datamodule was given is noise.
warnings.filterwarnings("ignore", message=r"You have overridden `on_after_batch_transfer` in `LightningModule` but")


class LitUniPixel(L.LightningModule):
    """UniPixel: Qwen2.5-VL backbone + prompt encoder + pointer head + SAM 2.1 mask decoder.

    Args:
        config: the model; defaults to the ``unipixel-tiny`` preset.
        optimizer: AdamW, schedule, per-module learning rates and freezing.
        generation: decoding settings for ``predict``.
        seed: seeds the backbone's random initialisation, the per-sample object subsampling and each step's dropout.
        lora: LoRA adapters on the backbone (None: no LoRA).
        init_weights: start from these weights instead of the random/donor initialisation: one of our checkpoint
            directories (``unipixel_pl.checkpoints.ours``) or a training checkpoint of a previous stage (a
            ``.ckpt`` file or a sharded directory), Fourier buffers included.
        evaluation: score a benchmark in ``test`` by greedy generation instead of the teacher-forced held-out
            metrics (``docs/EVAL.md``); None keeps the held-out metrics.
    """

    def __init__(
        self,
        config: UniPixelConfig | None = None,
        optimizer: OptimizerConfig | None = None,
        generation: GenerationConfig | None = None,
        seed: int = 0,
        lora: LoraConfig | None = None,
        init_weights: str | None = None,
        evaluation: EvaluationConfig | None = None,
    ) -> None:
        super().__init__()
        self.config = config or preset("unipixel-tiny")
        self.optimizer_config = optimizer or OptimizerConfig()
        self.generation_config = generation or GenerationConfig()
        self.seed = seed
        self.lora_config = lora
        self.init_weights = init_weights
        self.save_hyperparameters()
        cfg = self.config
        self.backbone = Backbone(cfg.backbone)
        self.prompt_encoder = PromptEncoder(
            llm_hidden=cfg.backbone.hidden_size,
            sam_hidden=cfg.mask_decoder.hidden_dim,
            sam_image_size=cfg.mask_decoder.image_size,
            merger_width=cfg.backbone.vision.hidden_size * cfg.backbone.vision.spatial_merge_size**2,
            temporal_features=cfg.temporal_features,
            mem_pooling=cfg.mem_pooling,
            bf16_coords_in_training=cfg.bf16_prompt_coords,
        )
        self.pointer_head = PointerHead(
            cfg.backbone.hidden_size, cfg.mask_decoder.hidden_dim, cfg.mask_decoder.prompt_tokens
        )
        self.mask_decoder = MaskDecoder(cfg.mask_decoder, cfg.loss)
        self.val_iou, self.test_iou = CIoU(), CIoU()
        self.val_held_out, self.test_held_out = HeldOutMetrics(), HeldOutMetrics()
        self.evaluator = None if evaluation is None else BenchmarkEvaluator(evaluation)

    @classmethod
    def from_preset(cls, name: str, **kwargs: object) -> LitUniPixel:
        """Build (and materialise) a model from a named preset, e.g. ``LitUniPixel.from_preset("unipixel-tiny")``."""
        model = cls(preset(name), **kwargs)  # type: ignore[arg-type]
        model.configure_model()
        return model

    def configure_model(self) -> None:
        """Build the backbone late (FSDP2 shards it right here), initialise the heads from their donors as the
        reference does (or load ``init_weights``), add LoRA, apply freezing, and shard under FSDP2."""
        if self.backbone.model is not None:
            return
        # Seeded here: strategies re-seed the global generator differently before this hook runs.
        cuda = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(self.seed)
            self._build_backbone()
            if self.lora_config is not None:
                inject_lora(self.backbone.hf_model, self.lora_config)
        trainable = self.optimizer_config.trainable
        if self.lora_config is not None and trainable is not None:
            trainable = [*trainable, LORA_MARKER]
        apply_trainable(self, trainable)
        if self.device_mesh is not None:
            shard_model(self, self.device_mesh["data_parallel"], self.trainer.precision)

    def _build_backbone(self) -> None:
        """Load ``init_weights``, or build the backbone at random and copy the heads' donor parameters."""
        if self.init_weights is not None:
            load_initial_weights(self, self.init_weights)
            return
        self.backbone.configure_model()
        self.prompt_encoder.init_from_sam2(self.mask_decoder.prompt_encoder)
        self.prompt_encoder.init_from_merger(self.backbone.hf_model.model.visual.merger.mlp)

    # ------------------------------------------------------------------ forward
    def prepare_batch(self, batch: UniPixelBatch) -> UniPixelBatch:
        """Build the float model inputs from the batch's uint8 host media on its device, in place (a no-op once
        done); see ``unipixel_pl.models.pixel_pipeline``."""
        return prepare_batch(batch, self.config.backbone.vision, self.config.mask_decoder.image_size)

    def on_after_batch_transfer(self, batch: UniPixelBatch, dataloader_idx: int) -> UniPixelBatch:
        return self.prepare_batch(batch)

    def run_backbone(self, batch: UniPixelBatch, use_cache: bool = False) -> BackboneOutput:
        """Fill every placeholder and run the LLM on the whole batch (preparing its host media first)."""
        self.prepare_batch(batch)
        embeds = build_inputs_embeds(batch, self.backbone, self.prompt_encoder, self.config.backbone.tokens)
        return self.backbone(
            inputs_embeds=embeds,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            mm_token_type_ids=batch.mm_token_type_ids,
            video_grid_thw=batch.video_grid_thw,
            use_cache=use_cache,
        )

    def seg_prompts(self, hidden_states: Tensor, input_ids: Tensor) -> list[Tensor]:
        """Per sample the ``(O_b, n, S)`` prompt tokens of its ``<|seg|>`` tokens, in sequence order."""
        states, batch_index, _ = self.pointer_head.select_seg_states(
            hidden_states, input_ids, self.config.backbone.tokens.seg
        )
        tokens = self.pointer_head(states)
        return [tokens[batch_index == b] for b in range(input_ids.shape[0])]

    def forward(self, batch: UniPixelBatch) -> UniPixelOutput:
        """Teacher-forced forward: logits, LM loss and SAM 2 mask loss (when the batch carries labels/masks)."""
        return self._teacher_forced(batch)[0]

    def _teacher_forced(self, batch: UniPixelBatch) -> tuple[UniPixelOutput, list[Tensor]]:
        """The forward output and, per sample, the prompt tokens of its ``<|seg|>`` tokens."""
        out = self.run_backbone(batch)
        text_loss = None
        if batch.labels is not None:
            text_loss = lm_loss(out.logits, batch.labels, self.config.loss.lm_reduction)
        prompts = self.seg_prompts(out.hidden_states, batch.input_ids)
        mask_terms, mask_logits = self._mask_loss(batch, prompts)
        mask_loss = None if mask_terms is None else mask_terms.total
        weights = self.config.loss
        parts = [w * v for w, v in ((weights.lm, text_loss), (weights.mask, mask_loss)) if v is not None]
        total = torch.stack(parts).sum() if parts else None
        terms = {} if mask_terms is None else mask_terms.detached()
        return UniPixelOutput(total, text_loss, mask_loss, out.logits, mask_logits, mask_loss_terms=terms), prompts

    def _mask_loss(
        self, batch: UniPixelBatch, prompts: list[Tensor]
    ) -> tuple[MaskLossTerms | None, list[Tensor | None]]:
        """Mean over mask-bearing samples of the SAM 2 loss terms; also the chosen high-res mask logits per sample."""
        losses, logits = [], []
        for b, tokens in enumerate(prompts):
            targets = batch.target_masks[b] if b < len(batch.target_masks) else None
            frames = batch.sam_frames[b] if b < len(batch.sam_frames) else None
            if targets is None or frames is None:
                logits.append(None)
                continue
            check_mask_targets(b, frames, targets, tokens.shape[0])
            keep = sample_objects(targets.shape[1], self.config.loss.sample_objects, self._object_generator(b))
            decoded = self.mask_decoder(frames, tokens[keep])
            losses.append(self.mask_decoder.loss_terms(decoded, targets[:, keep], self.config.loss.global_object_count))
            logits.append(decoded.high_res_masks[:, :, 0])
        return (MaskLossTerms.mean(losses) if losses else None), logits

    def _object_generator(self, sample: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.global_step * 1009 + sample)

    # ------------------------------------------------------------------ steps
    def train(self, mode: bool = True) -> LitUniPixel:
        """Train or eval mode; in train mode fully frozen modules stay in eval mode when
        ``optimizer.frozen_modules_eval`` holds (MODEL.md §11 #11)."""
        super().train(mode)
        if mode and self.optimizer_config.frozen_modules_eval:
            eval_frozen_modules(self)
        return self

    def on_train_start(self) -> None:
        # Freezing happens in configure_model and Lightning keeps each module's own mode across fit and validation
        # loops (it never calls train()), so the frozen modules' eval mode is set once here.
        self.train()

    def on_train_batch_start(self, batch: UniPixelBatch, batch_idx: int) -> None:
        # Dropout draws from a generator seeded by the step and rank, so a resumed run replays the same masks.
        entropy = [self.seed, self.current_epoch, batch_idx, self.global_rank]
        torch.manual_seed(int(np.random.SeedSequence(entropy).generate_state(1)[0]))

    def training_step(self, batch: UniPixelBatch, batch_idx: int) -> Tensor:
        output = self(batch)
        if output.loss is None:
            raise ValueError("training batch has neither supervised tokens nor target masks")
        self._log_losses("train", output, batch.batch_size)
        return output.loss + self._zero_for_idle_heads()

    def _zero_for_idle_heads(self) -> Tensor:
        """``0 x`` the sum of every trainable parameter of the prompt encoder, pointer head and SAM 2.

        Which of them a step uses depends on the batch and even on the model's state (SAM 2's object-score
        branches), so without this some get no gradient. With it every one gets a gradient, zero when idle,
        on every rank: FSDP2 reduce-scatters exactly the parameters that have one, so the ranks must agree.
        AdamW then also moves idle parameters by their momentum, as the reference's DeepSpeed (flat gradient
        buffers) does.
        """
        parts = (self.prompt_encoder, self.pointer_head, self.mask_decoder)
        params = [param for part in parts for param in part.parameters() if param.requires_grad]
        return torch.stack([param.sum() for param in params]).sum() * 0.0 if params else torch.zeros(())

    def validation_step(self, batch: UniPixelBatch, batch_idx: int) -> None:
        self._evaluate("val", batch, self.val_iou, self.val_held_out)

    def test_step(self, batch: UniPixelBatch, batch_idx: int) -> None:
        if self.evaluator is not None:
            self.evaluator.test_step(self, batch)  # type: ignore[arg-type]
            return
        self._evaluate("test", batch, self.test_iou, self.test_held_out)

    def on_validation_epoch_end(self) -> None:
        self._log_held_out("val", self.val_held_out)

    def on_test_epoch_end(self) -> None:
        if self.evaluator is not None:
            self.evaluator.on_test_epoch_end(self)
            return
        self._log_held_out("test", self.test_held_out)

    def _log_held_out(self, stage: str, held_out: HeldOutMetrics) -> None:
        """Per-task and per-source cIoU and answer accuracy and video J&F of the epoch, over every rank's samples."""
        for name, value in held_out.compute_and_reset().items():
            self.log(f"{stage}/{name}", value)

    def _evaluate(self, stage: str, batch: UniPixelBatch, iou: CIoU, held_out: HeldOutMetrics) -> None:
        """Teacher-forced losses and answer accuracy, plus the IoU (overall, per task) and video J&F of masks
        decoded from the ground-truth ``<|seg|>`` tokens."""
        output, prompts = self._teacher_forced(batch)
        self._log_losses(stage, output, batch.batch_size)
        held_out.update_answers(batch, output.logits)
        predicted = self.segment_prompts(batch, prompts)
        held_out.update(batch, predicted)
        for masks, targets in zip(predicted, batch.target_masks, strict=True):
            if masks is not None and targets is not None:
                iou.update(masks.flatten(0, 1), targets.transpose(0, 1).flatten(0, 1))
        if iou.update_count:
            self.log(f"{stage}/ciou", iou, batch_size=batch.batch_size)

    @torch.no_grad()
    def predict_masks(self, batch: UniPixelBatch) -> list[Tensor | None]:
        """Teacher-forced masks: per sample ``(O, T, S, S)`` bool from its ``<|seg|>`` tokens, or None."""
        return self.segment_prompts(batch, self._teacher_forced(batch)[1])

    @torch.no_grad()
    def segment_prompts(self, batch: UniPixelBatch, prompts: list[Tensor]) -> list[Tensor | None]:
        """Decode ``(O, T, S, S)`` bool masks at SAM 2 resolution for samples with frames and prompt tokens."""
        masks: list[Tensor | None] = []
        for b, tokens in enumerate(prompts):
            frames = batch.sam_frames[b] if b < len(batch.sam_frames) else None
            if frames is None or tokens.shape[0] == 0:
                masks.append(None)
                continue
            masks.append(self.mask_decoder.segment(frames, tokens, (frames.shape[-2], frames.shape[-1])))
        return masks

    def predict_step(self, batch: UniPixelBatch, batch_idx: int) -> list[UniPixelOutput]:
        """Greedy generation, one sample at a time; a mask for every ``<|seg|>`` in the prompt or generated."""
        return [greedy_generate(self, batch, b, self.generation_config.max_new_tokens) for b in range(batch.batch_size)]

    def _log_losses(self, stage: str, output: UniPixelOutput, batch_size: int) -> None:
        """The total, LM and mask losses and each unweighted mask-loss term (``{stage}/mask_focal`` ...)."""
        sync = stage != "train"
        terms = {f"mask_{name}": value for name, value in output.mask_loss_terms.items()}
        losses = {"loss": output.loss, "lm_loss": output.lm_loss, "mask_loss": output.mask_loss, **terms}
        for name, value in losses.items():
            if value is not None:
                self.log(f"{stage}/{name}", value, batch_size=batch_size, prog_bar=name == "loss", sync_dist=sync)

    # ------------------------------------------------------------------ optimizers
    def configure_optimizers(self) -> dict:
        cfg = self.optimizer_config
        groups = parameter_groups(self, cfg)
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
        # Measured lazily: counting batches now would build the train loader before a resumed checkpoint is loaded.
        scheduler = warmup_cosine(
            optimizer, lambda: max(1, int(self.trainer.estimated_stepping_batches)), cfg.warmup_ratio
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
