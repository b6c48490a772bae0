"""A stage-1 model from a Qwen2.5-VL directory and a SAM 2.1 ``.pt``, with the reference's head initialisation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from tests.unit.checkpoints.synthetic import tiny_config
from unipixel_pl.checkpoints.qwen_sam2 import build_from_qwen_sam2
from unipixel_pl.checkpoints.tokens import add_unipixel_tokens, token_ids_from_tokenizer
from unipixel_pl.config import SPECIAL_TOKENS, TokenIds
from unipixel_pl.models.backbone import Backbone
from unipixel_pl.models.mask_decoder import MaskDecoder
from unipixel_pl.models.sam2_model import upstream_key_to_reference
from unipixel_pl.tokenizer import TINY_VOCAB_SIZE


def qwen_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level stand-in for Qwen2.5's tokenizer: regular tokens, then Qwen's specials (no UniPixel ones)."""
    vocabulary = {f"w{i}": i for i in range(TINY_VOCAB_SIZE)}
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="w0"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.add_special_tokens([AddedToken(token, special=True) for token in SPECIAL_TOKENS[:-3]])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>")


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Backbone]:
    """A tiny Qwen2.5-VL-Instruct directory written by transformers itself (legacy weight names)."""
    path = tmp_path_factory.mktemp("qwen")
    torch.manual_seed(11)
    backbone = Backbone(tiny_config().backbone)
    backbone.configure_model()
    backbone.hf_model.save_pretrained(str(path))
    qwen_tokenizer().save_pretrained(str(path))
    return path, backbone


@pytest.fixture(scope="module")
def sam2_pt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MaskDecoder]:
    """A tiny SAM 2.1 checkpoint in Meta's format (upstream ``gamma`` names)."""
    torch.manual_seed(12)
    decoder = MaskDecoder(tiny_config().mask_decoder)
    path = tmp_path_factory.mktemp("sam2") / "sam2.1_tiny.pt"
    torch.save({"model": decoder.sam2.state_dict()}, path)
    return path, decoder


def test_weights_are_loaded_and_heads_initialised_like_the_reference(
    qwen_dir: tuple[Path, Backbone], sam2_pt: tuple[Path, MaskDecoder]
) -> None:
    (path, backbone), (pt, decoder) = qwen_dir, sam2_pt
    sam = tiny_config().mask_decoder
    model, processor = build_from_qwen_sam2(path, pt, sam, seed=5)
    for key, value in backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    for key, value in decoder.sam2.state_dict().items():
        assert torch.equal(model.mask_decoder.sam2.state_dict()[key], value), key
    encoder, sam_encoder = model.prompt_encoder, model.mask_decoder.prompt_encoder
    for (name, ours), (_, theirs) in zip(
        encoder.ref_encoder.named_parameters(), sam_encoder.named_parameters(), strict=True
    ):
        assert torch.equal(ours, theirs), name
    pe = "pe_layer.positional_encoding_gaussian_matrix"
    assert not torch.equal(encoder.ref_encoder.get_buffer(pe), sam_encoder.get_buffer(pe))  # its own draw
    merger = model.backbone.hf_model.model.visual.merger.mlp
    for ours, theirs in zip(encoder.msk_proj.parameters(), merger.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    for linear in (encoder.ref_proj_single, encoder.ref_proj_double, encoder.ref_proj[1], encoder.tem_proj):
        bound = (6 / (linear.in_features + linear.out_features)) ** 0.5
        assert linear.weight.abs().max() <= bound and linear.weight.std() > bound / 3 and not linear.bias.any()
    assert 0.01 < encoder.tem_emb.weight.std() < 0.03
    assert processor.token_ids == TokenIds.after_vocabulary(TINY_VOCAB_SIZE)
    assert model.config.mem_pooling == "raster" and model.config.temporal_features == sam.hidden_dim // 2


def test_same_seed_same_heads_and_reference_switch(
    qwen_dir: tuple[Path, Backbone], sam2_pt: tuple[Path, MaskDecoder]
) -> None:
    sam = tiny_config().mask_decoder
    first, _ = build_from_qwen_sam2(qwen_dir[0], sam2_pt[0], sam, seed=1)
    second, _ = build_from_qwen_sam2(qwen_dir[0], sam2_pt[0], sam, seed=1, reference=True)
    assert torch.equal(first.pointer_head.seg_head[1].weight, second.pointer_head.seg_head[1].weight)
    assert torch.equal(first.prompt_encoder.tem_pe.positional_encoding_gaussian_matrix,
                       second.prompt_encoder.tem_pe.positional_encoding_gaussian_matrix)  # fmt: skip
    assert second.config.mem_pooling == "reference" and not second.config.mask_decoder.rope_grad


def test_4x_config_layout_and_reference_sam2_names_are_accepted(
    qwen_dir: tuple[Path, Backbone], sam2_pt: tuple[Path, MaskDecoder], tmp_path: Path
) -> None:
    path = Path(qwen_dir[0])
    data = json.loads((path / "config.json").read_text())
    text = data.pop("text_config")
    rope = text.pop("rope_parameters")
    legacy = {**text, **data, "rope_theta": rope["rope_theta"], "rope_scaling": {**rope, "type": "mrope"}}
    legacy["rope_scaling"].pop("rope_theta")
    for name in path.iterdir():
        (tmp_path / name.name).write_bytes(name.read_bytes())
    (tmp_path / "config.json").write_text(json.dumps(legacy))
    state = {upstream_key_to_reference(k): v for k, v in sam2_pt[1].sam2.state_dict().items()}
    torch.save({"model": state}, tmp_path / "sam2.pt")
    model, _ = build_from_qwen_sam2(tmp_path, tmp_path / "sam2.pt", tiny_config().mask_decoder)
    assert (
        model.config.backbone == build_from_qwen_sam2(path, sam2_pt[0], tiny_config().mask_decoder)[0].config.backbone
    )


def test_wrong_inputs_are_refused(
    qwen_dir: tuple[Path, Backbone], sam2_pt: tuple[Path, MaskDecoder], tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="no config.json"):
        build_from_qwen_sam2(tmp_path, sam2_pt[0])
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "pixel_qwen2_5_vl"}))
    with pytest.raises(ValueError, match="official-to-ours"):
        build_from_qwen_sam2(tmp_path, sam2_pt[0])
    torch.save({"weights": {}}, tmp_path / "bad.pt")
    with pytest.raises(KeyError, match="no 'model' entry"):
        build_from_qwen_sam2(qwen_dir[0], tmp_path / "bad.pt", tiny_config().mask_decoder)


def test_unipixel_tokens_are_added_after_qwens_specials() -> None:
    tokenizer = qwen_tokenizer()
    with pytest.raises(ValueError, match=r"<\|ref\|>"):
        token_ids_from_tokenizer(tokenizer)
    assert add_unipixel_tokens(tokenizer) == ["<|ref|>", "<|seg|>", "<|mem|>"]
    assert add_unipixel_tokens(tokenizer) == []
    ids = token_ids_from_tokenizer(tokenizer)
    assert (ids.ref, ids.seg, ids.mem) == (502, 503, 504)
    assert tokenizer.encode("w3 <|seg|> w4", add_special_tokens=False) == [3, 503, 4]


def test_current_transformers_weight_names_are_accepted(
    qwen_dir: tuple[Path, Backbone], sam2_pt: tuple[Path, MaskDecoder], tmp_path: Path
) -> None:
    path, backbone = qwen_dir
    for name in path.iterdir():
        (tmp_path / name.name).write_bytes(name.read_bytes())
    legacy = load_file(str(path / "model.safetensors"))
    current = {re.sub(r"^(model\.)(?!visual)|^visual\.", _current_prefix, key): value for key, value in legacy.items()}
    assert "model.language_model.norm.weight" in current and "model.visual.merger.ln_q.weight" in current
    save_file(current, str(tmp_path / "model.safetensors"))
    model, _ = build_from_qwen_sam2(tmp_path, sam2_pt[0], tiny_config().mask_decoder)
    for key, value in backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


def _current_prefix(match: re.Match[str]) -> str:
    return "model.language_model." if match.group(0) == "model." else "model.visual."
