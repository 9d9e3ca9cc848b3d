"""Model options, the methods users compare, and their defaults, validated with actionable errors."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from sttool.config.schema import closest
from sttool.errors import SttoolError

PAPER_BACKBONE = "vit_base_patch16_224.orig_in21k"


@dataclass(frozen=True)
class MethodSpec:
    """What a method trains and which adapter it adds; ``keep_rate`` is its default keep rate."""

    adapter: Literal["dense", "stage", "parallel", "lora", "none"]
    trains: Literal["adapters", "all", "head"]
    keep_rate: float
    summary: str
    head: Literal["bn_linear", "linear"] = "bn_linear"  # the official Sparse-Tuning code's head; EViT's is a plain Linear


_BASE_METHODS = {
    "sparse_tuning": MethodSpec("dense", "adapters", 0.7, "Sparse-Tuning: token sparsification + Dense Adapters (paper figure)"),
    "sparse_tuning_released": MethodSpec("stage", "adapters", 0.7, "Sparse-Tuning as in the released code: multi-branch adapters, stage sums"),
    "adaptformer": MethodSpec("parallel", "adapters", 1.0, "AdaptFormer: parallel adapter beside the MLP, scale 0.1"),
    "lora": MethodSpec("lora", "adapters", 1.0, "LoRA on the query and value projections"),
    "full": MethodSpec("none", "all", 1.0, "full fine-tuning of every parameter"),
    "linear": MethodSpec("none", "head", 1.0, "linear probe: only the head is trained"),
}

# Each baseline with EViT token sparsification switched on ("evit+adaptformer", ...); "evit" alone is
# EViT fine-tuning (all parameters, tokens pruned).
METHODS: dict[str, MethodSpec] = {
    **_BASE_METHODS,
    **{f"evit+{name}": replace(spec, keep_rate=0.7, head="linear", summary=f"EViT token sparsification + {spec.summary}")
       for name, spec in _BASE_METHODS.items() if not name.startswith("sparse_tuning")},
    "evit": replace(_BASE_METHODS["full"], keep_rate=0.7, head="linear", summary="EViT: full fine-tuning with token sparsification"),
}

# Per adapter kind: default bottleneck, scale and dropout (AdaptFormer's from its code; the Dense
# Adapter's bottleneck from the paper's 1.09 M parameters; its scale 1.0 as in the released code).
ADAPTER_DEFAULTS = {
    "dense": (32, 1.0, 0.0),
    "stage": (32, 1.0, 0.0),
    "parallel": (64, 0.1, 0.1),
}


@dataclass
class ModelConfig:
    """Everything that defines a model: backbone, weights, method and its options.

    ``None`` means "the method's default"; ``resolved()`` fills those in.
    """

    backbone: str = PAPER_BACKBONE
    weights: str | None = None  # None: random init; "hub": timm's pretrained weights; else a local file
    method: str = "sparse_tuning"
    num_classes: int | None = None  # None: from the data (recipes) or the backbone's own head (patching)
    img_size: int | None = None  # None: the backbone's own
    num_frames: int | None = None  # video: frames per clip (None: the model takes images)
    tubelet: int = 1  # video: frames per space-time patch
    tubelet_init: Literal["mean", "center"] = "mean"  # video: the image kernel spread over the tubelet, or on its centre frame
    keep_rate: float | None = None
    keep_layers: list[int] = field(default_factory=lambda: [4, 7, 10])  # 1-based blocks that prune
    fuse_token: bool = True
    token_score: Literal["auto", "cls", "mean", "pool"] = "auto"  # how pruning blocks rank tokens; auto: from the backbone
    bottleneck: int | None = None
    adapter_scale: float | None = None
    adapter_dropout: float | None = None
    lora_rank: int = 8
    lora_alpha: float | None = None
    head: Literal["bn_linear", "linear"] | None = None  # None: the method's (bn_linear; linear for EViT methods)
    drop_path: float = 0.0
    exit_layers: list[int] = field(default_factory=list)  # 1-based blocks followed by an early exit
    exit_bottleneck: int = 32  # bottleneck of the shared exit adapter
    exit_pool: Literal["token", "mean"] = "token"  # what an exit reads: the [CLS] token or the token mean

    @property
    def spec(self) -> MethodSpec:
        return METHODS[self.method]

    def check(self, where: str = "model") -> None:
        """Validate values that do not need the backbone; raises SttoolError naming the bad value."""
        if self.method not in METHODS:
            raise SttoolError(f"{where}.method: unknown method '{self.method}'; {closest(self.method, tuple(METHODS))}")
        if self.keep_rate is not None and not 0.0 < self.keep_rate <= 1.0:
            raise SttoolError(f"{where}.keep_rate: {self.keep_rate} is outside (0, 1]; 0.7 is the paper's default")
        if any(layer < 1 for layer in self.keep_layers):
            raise SttoolError(f"{where}.keep_layers: {self.keep_layers} must count blocks from 1")
        if len(set(self.keep_layers)) != len(self.keep_layers):
            raise SttoolError(f"{where}.keep_layers: {self.keep_layers} repeats a block")
        for name in ("bottleneck", "lora_rank", "num_classes", "img_size", "num_frames", "tubelet", "exit_bottleneck"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise SttoolError(f"{where}.{name}: {value} must be a positive integer")
        if self.num_frames is not None and self.num_frames % self.tubelet:
            raise SttoolError(f"{where}.num_frames: {self.num_frames} is not a multiple of tubelet {self.tubelet}")
        if not 0.0 <= self.drop_path < 1.0:
            raise SttoolError(f"{where}.drop_path: {self.drop_path} is outside [0, 1)")
        if self.adapter_dropout is not None and not 0.0 <= self.adapter_dropout < 1.0:
            raise SttoolError(f"{where}.adapter_dropout: {self.adapter_dropout} is outside [0, 1)")

    def check_depth(self, depth: int, where: str = "model") -> None:
        """Keep layers must name blocks of the backbone; exits sit before the last block (the final head)."""
        bad = [layer for layer in self.keep_layers if not 1 <= layer <= depth]
        if bad:
            raise SttoolError(
                f"{where}.keep_layers: {bad} outside the backbone's blocks 1..{depth} (from {self.keep_layers})"
            )
        bad = [layer for layer in self.exit_layers if not 1 <= layer < depth]
        if bad:
            raise SttoolError(
                f"{where}.exit_layers: {bad} outside blocks 1..{depth - 1}; the final head is always the last exit"
            )
        if sorted(set(self.exit_layers)) != list(self.exit_layers):
            raise SttoolError(f"{where}.exit_layers: {self.exit_layers} must be increasing, without repeats")

    def resolved(self) -> ModelConfig:
        """A copy with the method's defaults filled in, so a saved config says exactly what ran."""
        self.check()
        spec = self.spec
        bottleneck, scale, dropout = ADAPTER_DEFAULTS.get(spec.adapter, (None, None, None))
        return replace(
            self,
            keep_rate=spec.keep_rate if self.keep_rate is None else self.keep_rate,
            bottleneck=self.bottleneck if self.bottleneck is not None else bottleneck,
            adapter_scale=self.adapter_scale if self.adapter_scale is not None else scale,
            adapter_dropout=self.adapter_dropout if self.adapter_dropout is not None else dropout,
            lora_alpha=self.lora_alpha if self.lora_alpha is not None or spec.adapter != "lora" else float(self.lora_rank),
            keep_layers=list(self.keep_layers),
            head=self.head if self.head is not None else spec.head,
        )

    @property
    def is_evit(self) -> bool:
        return self.method.startswith("evit")

    @property
    def prunes(self) -> bool:
        rate = self.spec.keep_rate if self.keep_rate is None else self.keep_rate
        return rate < 1.0 and bool(self.keep_layers)
