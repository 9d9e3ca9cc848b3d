"""Token labelling for pre-training from scratch: patch labels, masks that follow the image, recipe checks."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from sttool.data import DataConfig, InputSpec, build_dataset, build_loader
from sttool.data.synthetic.images import load_mask
from sttool.engine.micro_backbone import shipped_recipe
from sttool.engine.objectives import TokenLabelLoss, patch_labels
from sttool.errors import SttoolError
from sttool.models.micro import MICRO_NAME, export_backbone
from sttool.runs.recipe import load_recipe


def test_patch_labels_match_a_hand_count():
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, :2, :2] = True  # top-left patch fully on the object
    masks[0, 2, 2:] = True  # bottom-right patch: half its pixels -> still the object
    masks[1, 0, 0] = True  # a quarter of a patch -> background
    labels = torch.tensor([3, 1])
    expected = torch.tensor([[3, 5, 5, 3], [5, 5, 5, 5]])  # background is class K = 5
    assert torch.equal(patch_labels(masks, labels, patch=2, num_classes=5), expected)


def test_token_loss_adds_the_weighted_patch_cross_entropy():
    torch.manual_seed(0)
    logits, patch_logits = torch.randn(2, 5), torch.randn(2, 4, 6)
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, :2, :2] = True
    labels = torch.tensor([3, 1])
    targets = torch.nn.functional.one_hot(labels, 5).float()
    loss = TokenLabelLoss(0.5, patch=2, num_classes=5)((logits, patch_logits, []), targets, labels, masks)
    token_targets = [[3, 5, 5, 5], [1, 5, 5, 5]]
    slow = sum(torch.nn.functional.cross_entropy(patch_logits[b, i : i + 1], torch.tensor([token_targets[b][i]]))
               for b in range(2) for i in range(4)) / 8
    assert loss.item() == pytest.approx((torch.nn.functional.cross_entropy(logits, labels) + 0.5 * slow).item(), rel=1e-5)


def test_masks_are_flipped_with_their_images(synthetic_root):
    config = DataConfig(dataset="synthetic_images", root=str(synthetic_root), augment="none", hflip=True, masks=True, num_workers=0)
    spec = InputSpec(img_size=64, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), crop_pct=1.0)  # no resize: pixels compare
    dataset = build_dataset(config, "train", spec, train=True)
    path = dataset.entries[0].path
    raw_mask = torch.from_numpy(load_mask(path))
    raw_image = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255  # (3, H, W)
    seen = set()
    for seed in range(12):
        torch.manual_seed(seed)
        image, label, mask = dataset[0]
        flipped = not torch.equal(mask, raw_mask)
        assert torch.equal(mask, raw_mask.flip(-1) if flipped else raw_mask)
        assert torch.allclose(image, raw_image.flip(-1) if flipped else raw_image, atol=1e-6)
        seen.add(flipped)
    assert seen == {True, False} and label == dataset.entries[0].label
    batch = next(iter(build_loader(dataset, 4, True, 0, seed=0)))
    assert batch.masks.shape == (4, 64, 64) and batch.masks.dtype == torch.bool


VIT_RECIPE = shipped_recipe("micro_backbone.yaml")


def test_recipe_checks_what_token_labels_need(tmp_path):
    base = ["model.weights=none", f"output_dir={tmp_path}"]
    load_recipe(VIT_RECIPE, base)
    with pytest.raises(SttoolError, match="needs data.masks"):
        load_recipe(VIT_RECIPE, [*base, "data.masks=false"])
    with pytest.raises(SttoolError, match="keep_rate 1"):
        load_recipe(VIT_RECIPE, [*base, "model.keep_rate=0.7"])
    with pytest.raises(SttoolError, match="mixup"):
        load_recipe(VIT_RECIPE, [*base, "train.mixup=0.8"])


def test_exported_backbone_holds_timm_keys_only(tmp_path):
    import timm

    from sttool.runs.load import add_token_head

    model = timm.create_model(MICRO_NAME, num_classes=16)
    add_token_head(model, 16)
    export_backbone(model, tmp_path / "w.safetensors")
    state = load_file(str(tmp_path / "w.safetensors"))
    assert not any(k.startswith(("head.", "token_head.")) for k in state)
    assert set(state) == set(timm.create_model(MICRO_NAME, num_classes=0).state_dict())
    assert all(v.dtype == torch.float16 for v in state.values())


def test_micro_backbone_stages_chain_through_their_exports(tmp_path):
    """Stage 2 starts from the stem stage 1 trained (BatchNorm folded), stage 3 from stage 2's export, the
    final file is stage 3's backbone, and building again reuses every finished stage."""
    import timm
    import yaml

    from sttool.engine.micro_backbone import ATTENTION_RECIPE, STAGE_EXPORT, STEM_RECIPE, build_micro_backbone
    from sttool.models.build import load_local_weights
    from sttool.models.micro import StemClassifier
    from sttool.runs.checkpoint import load_trained_state, read_checkpoint

    out = tmp_path / "micro.safetensors"
    overrides = [f"output_dir={tmp_path / 'runs'}/{{name}}", f"data.root={tmp_path / 'pretrain'}", "train.epochs=1",
                 "train.max_steps_per_epoch=2", "optim.warmup_epochs=0", "train.batch_size=16", "data.stream=64"]
    result = build_micro_backbone(out=out, overrides=overrides, images_per_class=(0, 1, 1))
    stem, vit = load_recipe(shipped_recipe(STEM_RECIPE), overrides), load_recipe(VIT_RECIPE, overrides)
    stage1 = stem.run_dir / STAGE_EXPORT
    assert yaml.safe_load((vit.run_dir / "recipe.yaml").read_text())["model"]["weights"] == str(stage1)
    # the stage-1 file's stem computes what the trained CNN computes (convolution, BatchNorm in eval, ReLU)
    classifier = StemClassifier(16)
    state, _, _ = read_checkpoint(stem.run_dir / "checkpoints" / "last.safetensors")
    load_trained_state(classifier, state, "stage 1")
    backbone = timm.create_model(MICRO_NAME, num_classes=0)
    load_local_weights(backbone, str(stage1))
    x = torch.randn(2, 3, 64, 64)
    reference = x
    for index, (conv, norm) in enumerate(zip(classifier.convs, classifier.eval().norms, strict=True)):
        reference = norm(conv(reference))
        reference = torch.relu(reference) if index < len(classifier.convs) - 1 else reference
    with torch.no_grad():
        assert torch.allclose(backbone.patch_embed(x), reference.flatten(2).transpose(1, 2), atol=2e-2)  # fp16 file
    final, before = load_file(str(out)), load_file(str(stage1))
    assert set(final) == set(before) and not torch.equal(final["blocks.0.attn.qkv.weight"], before["blocks.0.attn.qkv.weight"])
    attention = load_recipe(shipped_recipe(ATTENTION_RECIPE), overrides)  # stage 3 starts from stage 2's export
    assert yaml.safe_load((attention.run_dir / "recipe.yaml").read_text())["model"]["weights"] == str(vit.run_dir / STAGE_EXPORT)
    assert yaml.safe_load((attention.run_dir / "recipe.yaml").read_text())["train"]["attention_labels"] > 0
    assert torch.equal(final["cls_token"], load_file(str(attention.run_dir / STAGE_EXPORT))["cls_token"])
    assert not torch.equal(final["cls_token"], load_file(str(vit.run_dir / STAGE_EXPORT))["cls_token"])
    again = build_micro_backbone(out=tmp_path / "again.safetensors", overrides=overrides, images_per_class=(0, 1, 1))
    assert again["checkpoint"] == result["checkpoint"]
    assert all(torch.equal(final[k], v) for k, v in load_file(str(tmp_path / "again.safetensors")).items())


def test_cls_attention_equals_row_zero_of_timms_attention_map():
    from sttool.engine.objectives import cls_attention
    from tests.helpers import make_tiny_vit

    attn = make_tiny_vit().blocks[3].attn
    x = torch.randn(2, 17, 48)
    B, N, C = x.shape
    q, k, _ = attn.qkv(x).reshape(B, N, 3, attn.num_heads, C // attn.num_heads).permute(2, 0, 3, 1, 4)
    full = ((q @ k.transpose(-2, -1)) * attn.scale).softmax(-1)  # (B, H, N, N), written out
    assert torch.allclose(cls_attention(attn, x), full[:, :, 0].mean(1), atol=1e-6)


def test_attention_target_is_the_cross_entropy_against_the_objects_pixel_share():
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, :2, :2] = True  # patch 0 whole (4 pixels)
    masks[0, 2, 2] = True  # and one pixel of patch 3
    row = torch.tensor([[0.2, 0.4, 0.1, 0.1, 0.2]])  # [CLS] first, then the 4 patches
    logits, patch_logits = torch.zeros(1, 5), torch.zeros(1, 4, 6)
    targets, labels = torch.nn.functional.one_hot(torch.tensor([1]), 5).float(), torch.tensor([1])
    with_target = TokenLabelLoss(0.0, 2, 5, attention_weight=2.0)((logits, patch_logits, [row, row]), targets, labels, masks)
    without = TokenLabelLoss(0.0, 2, 5)((logits, patch_logits, [row]), targets, labels, masks)
    share, renormalised = [0.8, 0, 0, 0.2], [0.5, 0.125, 0.125, 0.25]  # by hand
    expected = -sum(s * math.log(r) for s, r in zip(share, renormalised, strict=True))
    assert (with_target - without).item() == pytest.approx(2.0 * expected, rel=1e-5)
