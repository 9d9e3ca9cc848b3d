"""Kept-token pictures: the dropped patches are exactly those the model's own selections dropped,
for images and space-time clips; the object-share rule by hand; unreadable inputs as one-line errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from timm.models.vision_transformer import VisionTransformer
from typer.testing import CliRunner

from sttool.cli.main import app
from sttool.data.inputs import Preprocess, read_sample
from sttool.data.video.write import write_video
from sttool.errors import SttoolError
from sttool.models import ForwardState, patch_model
from sttool.runs.load import input_spec
from sttool.visualize import kept_tokens as model_source
from sttool.visualize.kept_tokens import (
    ModelChoice,
    ModelLoader,
    kept_tokens_figure,
    object_shares,
    output_paths,
    patches_on_object,
    trace_selections,
    visualize_kept_tokens,
)
from sttool.visualize.render import Style

runner = CliRunner()
EXACT = Style(source="input", grid=False)  # panels from the model's input, no grid: pixels can be checked


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_sparse_vit(fuse: bool = True, **video) -> torch.nn.Module:
    """12 blocks, 8 x 8 patches of 4 px at 32 px (or 4 x 4 of 8 px for clips), pruning at 4, 7, 10."""
    torch.manual_seed(0)
    patch = 8 if video else 4
    vit = VisionTransformer(img_size=32, patch_size=patch, embed_dim=48, depth=12, num_heads=3, num_classes=10)
    return patch_model(vit, keep_rate=0.5, fuse_token=fuse, **video).eval()


def kept_by_one_hot(selections: list, num_patches: int, batch: int) -> list[torch.Tensor]:
    """Independent of the tracker: push one-hot token ids through the model's own ``apply``; a candidate
    row still exactly one-hot is an original patch, a fused row is a mix of weights below 1."""
    tokens = torch.eye(1 + num_patches).expand(batch, -1, -1)  # (B, N, N): token i is e_i, [CLS] first
    stages = []
    for selection in selections:
        if selection is None:
            continue
        tokens = selection.apply(tokens)
        rows = tokens[:, 1:]  # (B, M, N) candidates
        one_hot = ((rows == 1).sum(-1) == 1) & ((rows != 0).sum(-1) == 1)  # (B, M)
        kept = torch.zeros(batch, num_patches, dtype=torch.bool)
        for b in range(batch):
            kept[b, rows[b][one_hot[b]].argmax(-1) - 1] = True
        stages.append(kept)
    return stages


def model_selections(model, inputs: torch.Tensor) -> list:
    state = ForwardState()
    with torch.no_grad():
        model.forward_features(inputs, state=state)
    return state.selections


@pytest.mark.parametrize("fuse", [True, False])
def test_tracing_matches_the_selections_applied_to_one_hot_tokens(fuse):
    model = tiny_sparse_vit(fuse)
    torch.manual_seed(1)
    inputs = torch.randn(3, 3, 32, 32)
    selections = model_selections(model, inputs)
    stages = trace_selections(selections, 64, 3)
    expected = kept_by_one_hot(selections, 64, 3)
    assert [s.block for s in stages] == [4, 7, 10]
    assert [s.tokens for s in stages] == ([34, 19, 11] if fuse else [33, 17, 9])
    for stage, kept in zip(stages, expected, strict=True):
        assert torch.equal(stage.kept, kept)
    assert stages[0].kept.sum(1).tolist() == [32, 32, 32]
    if fuse:  # at the first stage the fused row of one-hot tokens sums to the fused [CLS] attention
        fused_row = selections[3].apply(torch.eye(65).expand(3, -1, -1))[:, -1]
        torch.testing.assert_close(stages[0].fused_weight, fused_row.sum(-1))
        assert all(0 < float(s.fused_weight.max()) < 1 for s in stages)
    else:
        assert all(s.fused_weight is None for s in stages)


def panel_pixels(png: Path, box: tuple[int, int, int, int], scale: int) -> np.ndarray:
    with Image.open(png) as image:
        return np.asarray(image.convert("RGB").crop(box))[::scale, ::scale]  # back to input pixels


def masked_patches(panel: np.ndarray, original: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """bool (h, w): patches whose pixels were changed; changed patches must be darker everywhere."""
    h, w = grid
    size = panel.shape[0] // h
    patches = lambda a: a.reshape(h, size, w, size, 3).swapaxes(1, 2).reshape(h, w, -1).astype(int)  # noqa: E731
    new, old = patches(panel), patches(original)
    same = (new == old).all(-1)
    darker = (new < old).all(-1)
    assert (same | darker).all(), "a patch is neither kept as is nor masked everywhere"
    return ~same


def bright_image(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    """Pixels in [90, 255], so that darkening changes every pixel of a dropped patch."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(90, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def test_picture_masks_exactly_the_patches_the_model_dropped(tmp_path):
    model = tiny_sparse_vit()
    pre = Preprocess(input_spec(model))
    path = bright_image(tmp_path / "photo.jpg", (45, 60))
    [result] = visualize_kept_tokens([path], lambda video: (model, pre), tmp_path / "out", EXACT)
    assert result.png == tmp_path / "out" / "photo_kept_tokens.png"
    sample = read_sample(path, pre)
    figure, _ = kept_tokens_figure(model, sample, EXACT)
    assert figure.image.size == Image.open(result.png).size
    expected = kept_by_one_hot(model_selections(model, sample.inputs[None]), 64, 1)
    shown = panel_pixels(result.png, figure.boxes[0][0], figure.scale)
    assert np.array_equal(shown, sample.frames[0])  # the first panel is the model's (transformed) input
    assert len(figure.boxes) == 1 + len(expected)
    for column, kept in enumerate(expected, start=1):
        panel = panel_pixels(result.png, figure.boxes[column][0], figure.scale)
        assert np.array_equal(masked_patches(panel, shown, (8, 8)), ~kept[0].view(8, 8).numpy())
    assert [s["kept_patches"] for s in result.stages] == [int(k.sum()) for k in expected]


def test_clip_grid_masks_the_space_time_tokens_of_each_frame(tmp_path):
    model = tiny_sparse_vit(num_frames=4, tubelet=2)  # 2 time slots x 16 patches
    pre = Preprocess(input_spec(model))
    rng = np.random.default_rng(0)
    frames = [rng.integers(90, 256, (32, 32, 3), dtype=np.uint8) for _ in range(6)]
    video = tmp_path / "clip.avi"
    write_video(video, frames)  # lossless: decodes to exactly these frames
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{index:03d}.png")
    [result, from_folder] = visualize_kept_tokens([video, folder], lambda is_clip: (model, pre), style=EXACT)
    assert result.png == tmp_path / "clip_kept_tokens.png" and from_folder.png == tmp_path / "frames_kept_tokens.png"
    assert np.array_equal(np.asarray(Image.open(result.png)), np.asarray(Image.open(from_folder.png)))
    sample = read_sample(video, pre)
    figure, _ = kept_tokens_figure(model, sample, EXACT)
    expected = kept_by_one_hot(model_selections(model, sample.inputs[None]), 32, 1)
    assert len(figure.boxes) == 4 and all(len(column) == 4 for column in figure.boxes)  # input + 3 stages, 4 frames
    for frame in range(4):
        shown = panel_pixels(result.png, figure.boxes[0][frame], figure.scale)
        assert np.array_equal(shown, sample.frames[frame])
        for column, kept in enumerate(expected, start=1):
            panel = panel_pixels(result.png, figure.boxes[column][frame], figure.scale)
            slot = kept[0].view(2, 4, 4)[frame // 2]  # tokens are numbered t * h * w + p
            assert np.array_equal(masked_patches(panel, shown, (4, 4)), ~slot.numpy())


def test_object_share_rule_by_hand():
    mask = np.zeros((16, 16), dtype=bool)
    mask[:8, :8] = True  # patch (0, 0): covered
    mask[:4, 8:] = True  # patch (0, 1): exactly half, on the object
    mask[8:, :8].flat[:31] = True  # patch (1, 0): 31 of 64 pixels, off the object
    assert patches_on_object(mask, (2, 2)).tolist() == [[True, True], [False, False]]
    kept = [np.array([[True, True], [True, False]]), np.array([[False, True], [False, False]]), np.zeros((2, 2), bool)]
    shares = object_shares(mask, (2, 2), kept)
    assert shares["object_pixels"] == pytest.approx((64 + 32 + 31) / 256)
    assert shares["object_patches"] == 0.5
    assert shares["kept_on_object"] == [pytest.approx(2 / 3), 1.0, None]


def test_synthetic_mask_follows_the_evaluation_transform(synthetic_root):
    model = tiny_sparse_vit()
    pre = Preprocess(input_spec(model))  # resize to 36 px, centre crop 32
    image = next((synthetic_root / "images" / "test").rglob("*.png"))
    sample = read_sample(image, pre)
    with Image.open(synthetic_root / "masks" / image.relative_to(synthetic_root / "images")) as mask:
        small = np.asarray(mask.convert("L").resize((36, 36), Image.NEAREST))[2:34, 2:34] >= 128
    assert sample.mask.shape == (32, 32)
    assert (sample.mask == small).mean() > 0.95  # the same geometry; only edge pixels may differ
    [result] = visualize_kept_tokens([image], lambda video: (model, pre), synthetic_root.parent / "kept")
    assert result.object["object_pixels"] == pytest.approx(sample.mask.mean())


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16"])
def test_any_photo_mode_and_size_becomes_the_model_input(tmp_path, mode):
    path = tmp_path / f"photo.{'tiff' if mode in ('CMYK', 'I;16') else 'png'}"
    Image.new("RGB", (37, 23), (200, 120, 40)).convert(mode).save(path)
    sample = read_sample(path, Preprocess(input_spec(tiny_sparse_vit())))
    assert sample.inputs.shape == (3, 32, 32) and sample.frames.shape == (1, 32, 32, 3)


def test_default_backbone_without_its_weights_says_what_to_give(monkeypatch, tmp_path):
    monkeypatch.setattr(model_source, "MICRO_WEIGHTS", tmp_path / "missing.safetensors")
    with pytest.raises(SttoolError, match=r"--run RUN_DIR.*--backbone NAME --weights PATH"):
        ModelLoader(ModelChoice())(False)


def test_missing_and_unreadable_images_are_one_line_errors(tmp_path):
    bare = ["--backbone", "test_vit", "--weights", "none", "--keep-layers", "2,4"]
    result = runner.invoke(app, ["visualize", "kept-tokens", str(tmp_path / "nope.jpg"), *bare])
    assert result.exit_code == 2 and "nope.jpg: file not found" in result.output
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    result = runner.invoke(app, ["visualize", "kept-tokens", str(broken), *bare])
    assert result.exit_code == 2, result.output
    assert "broken.jpg: not an image PIL can identify" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3


def test_bare_backbone_from_the_command_line(tmp_path):
    image = bright_image(tmp_path / "a.png", (40, 40))
    result = runner.invoke(app, ["visualize", "kept-tokens", str(image), "--backbone", "test_vit", "--weights", "none",
                                 "--keep-layers", "2,4", "--keep-rate", "0.5"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a_kept_tokens.png").is_file() and "a_kept_tokens.png" in result.output


def test_output_names_repeat_no_name_and_stay_plain_when_unique(tmp_path):
    sources = [tmp_path / "circle" / "0.png", tmp_path / "star" / "0.png", tmp_path / "star" / "1.png",
               tmp_path / "a" / "x" / "0.png", tmp_path / "b" / "x" / "0.png"]
    names = [path.name for path in output_paths(sources, tmp_path / "out")]
    assert names == ["circle_0_kept_tokens.png", "star_0_kept_tokens.png", "1_kept_tokens.png",
                     "x_0_kept_tokens.png", "x_0_2_kept_tokens.png"]
    beside = output_paths(sources[:2], None)  # different folders: no clash, plain names
    assert beside == [tmp_path / "circle" / "0_kept_tokens.png", tmp_path / "star" / "0_kept_tokens.png"]


def test_a_photo_through_a_224_px_model_is_drawn_from_the_original_at_the_panel_size(tmp_path):
    import xml.etree.ElementTree as ET

    from sklearn.datasets import images as sklearn_images

    photo = Path(sklearn_images.__file__).parent / "china.jpg"  # 640 x 427 JPEG, shipped inside scikit-learn
    torch.manual_seed(0)
    model = patch_model(VisionTransformer(img_size=224, patch_size=16, embed_dim=48, depth=12, num_heads=3, num_classes=10),
                        method="sparse_tuning").eval()
    pre = Preprocess(input_spec(model))  # timm's default evaluation: short side to 256, centre crop 224
    style = Style(panel=320, dpi=300)
    [result] = visualize_kept_tokens([photo], lambda video: (model, pre), tmp_path, style, ("png", "pdf", "svg"))
    sample = read_sample(photo, pre)
    figure, stages = kept_tokens_figure(model, sample, style)
    left, top, right, bottom = figure.boxes[0][0]
    assert (right - left, bottom - top) == (322, 322)  # 14 patches of 23 px: the panel size, not the model's 224
    with Image.open(result.png) as png:
        assert png.size == figure.image.size and round(png.info["dpi"][0]) == 300
        first = np.asarray(png.convert("RGB").crop(figure.boxes[0][0])).astype(int)
    # by hand: 427 -> 256 px scales by 256/427; 640 -> 383 px; the 224-px centre crop starts at (80, 16)
    scale = 256 / 427
    box = (80 / scale, 16 / scale, 304 / scale, 240 / scale)
    with Image.open(photo) as image:
        region = image.convert("RGB").crop(box)
    reference = np.asarray(region.resize((322, 322), Image.Resampling.LANCZOS)).astype(int)
    interior = np.ones((322, 322), bool)
    interior[::23] = interior[:, ::23] = False  # the grid lines
    assert np.abs(first[interior] - reference[interior]).max() <= 1
    with Image.open(photo) as image:  # what torchvision showed the model, redone with PIL
        model_view = np.asarray(image.convert("RGB").resize((383, 256), Image.Resampling.BICUBIC).crop((80, 16, 304, 240))).astype(int)
    assert np.abs(model_view - sample.frames[0].astype(int)).mean() < 2  # the region drawn is the one the model saw
    assert (tmp_path / "china_kept_tokens.pdf").read_bytes().startswith(b"%PDF")
    svg = ET.parse(tmp_path / "china_kept_tokens.svg").getroot()
    rects = [e for e in svg.iter() if e.tag.endswith("rect")][1:]  # the first rect is the white page
    assert len(rects) == sum(196 - int(s.kept[0].sum()) for s in stages)  # one shaded square per dropped patch
    texts = [e for e in svg.iter() if e.tag.endswith("text")]
    assert any("block 10" in (t.text or "") for t in texts) and all(int(t.get("font-size")) >= 20 for t in texts)
