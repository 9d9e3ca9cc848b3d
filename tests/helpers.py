"""Small builders shared by the tests."""

from __future__ import annotations

import torch
from timm.models.vision_transformer import VisionTransformer

TINY = dict(img_size=32, patch_size=8, embed_dim=48, depth=12, num_heads=3, num_classes=10)


def make_tiny_vit(seed: int = 0, **overrides) -> VisionTransformer:
    """A randomly initialised 12-block ViT with 16 patches + [CLS] (17 tokens), in eval mode."""
    torch.manual_seed(seed)
    return VisionTransformer(**{**TINY, **overrides}).eval()


def randomise_adapters(model: torch.nn.Module, seed: int = 0, std: float = 0.05) -> None:
    """Give every zero-initialised trainable tensor random values, so adapters change the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad and not name.startswith("head."):
                param.copy_(torch.randn(param.shape, generator=generator) * std)


def export_jax_npz(model: VisionTransformer, path) -> None:
    """Write ``model``'s weights in the original Google JAX ViT layout (as in ViT-B_16.npz)."""
    import numpy as np

    def arr(t):
        return t.detach().cpu().numpy()

    dim = model.embed_dim
    w = {
        "embedding/kernel": arr(model.patch_embed.proj.weight.permute(2, 3, 1, 0)),
        "embedding/bias": arr(model.patch_embed.proj.bias),
        "cls": arr(model.cls_token),
        "Transformer/posembed_input/pos_embedding": arr(model.pos_embed),
        "Transformer/encoder_norm/scale": arr(model.norm.weight),
        "Transformer/encoder_norm/bias": arr(model.norm.bias),
        "head/kernel": arr(model.head.weight.T),
        "head/bias": arr(model.head.bias),
    }
    for i, block in enumerate(model.blocks):
        p = f"Transformer/encoderblock_{i}/"
        heads = block.attn.num_heads
        w[p + "LayerNorm_0/scale"], w[p + "LayerNorm_0/bias"] = arr(block.norm1.weight), arr(block.norm1.bias)
        w[p + "LayerNorm_2/scale"], w[p + "LayerNorm_2/bias"] = arr(block.norm2.weight), arr(block.norm2.bias)
        for j, name in enumerate(("query", "key", "value")):
            weight = block.attn.qkv.weight[j * dim:(j + 1) * dim]
            w[p + f"MultiHeadDotProductAttention_1/{name}/kernel"] = arr(weight.T.reshape(dim, heads, -1))
            w[p + f"MultiHeadDotProductAttention_1/{name}/bias"] = arr(block.attn.qkv.bias[j * dim:(j + 1) * dim].reshape(heads, -1))
        w[p + "MultiHeadDotProductAttention_1/out/kernel"] = arr(block.attn.proj.weight.reshape(dim, heads, -1).permute(1, 2, 0))
        w[p + "MultiHeadDotProductAttention_1/out/bias"] = arr(block.attn.proj.bias)
        for r, fc in enumerate((block.mlp.fc1, block.mlp.fc2)):
            w[p + f"MlpBlock_3/Dense_{r}/kernel"] = arr(fc.weight.T)
            w[p + f"MlpBlock_3/Dense_{r}/bias"] = arr(fc.bias)
    np.savez(path, **w)


class TemplateImages(torch.utils.data.Dataset):
    """Learnable in a few steps: each class is a fixed random image; samples add noise to it.

    Implements the dataset contract the engine relies on (``num_classes``, ``class_names``,
    ``samples``, ``(tensor, label)`` items). ``hook(index)`` runs before a sample is read.
    """

    def __init__(self, n: int, classes: int = 4, seed: int = 0, size: int = 32, hook=None) -> None:
        generator = torch.Generator().manual_seed(123)
        self.templates = torch.randn(classes, 3, size, size, generator=generator)
        generator.manual_seed(seed)
        self.labels = torch.randint(classes, (n,), generator=generator).tolist()
        self.noise = torch.randn(n, 3, size, size, generator=generator)
        self.num_classes = classes
        self.class_names = [f"class{i}" for i in range(classes)]
        self.samples = [(f"sample{i}", label) for i, label in enumerate(self.labels)]
        self.hook = hook

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        if self.hook is not None:
            self.hook(index)
        image = self.templates[self.labels[index]] + 0.8 * self.noise[index] + 0.1 * torch.randn(self.templates.shape[1:])
        return image, self.labels[index]


def tiny_recipe_data(out_dir, **train) -> dict:
    """A recipe mapping for timm's 6-block test_vit at 32 px, trained on CPU in seconds."""
    return {
        "name": "tiny",
        "output_dir": str(out_dir),
        "model": {"backbone": "test_vit", "img_size": 32, "keep_layers": [2, 4]},
        "data": {"num_workers": 0},
        "optim": {"lr": 3e-3, "warmup_epochs": 1},
        "train": {"epochs": 3, "batch_size": 16, "device": "cpu", "precision": "fp32", **train},
    }
