"""Turn a recipe into the pieces of a run: datasets, model, optimiser, loaders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from sttool.config.recipe import Recipe
from sttool.engine.distributed import DistContext
from sttool.engine.exit_loss import ExitsForward, MultiExitLoss
from sttool.engine.mixup import soft_cross_entropy
from sttool.engine.sampling import BatchPlan, EpochBatchSampler, SeededDataset
from sttool.engine.token_labels import TokenLabelForward, TokenLabelLoss, add_token_head
from sttool.errors import SttoolError
from sttool.models.build import build_model
from sttool.models.vit import SparseViT

SPLITS = ("train", "val", "test")


def input_spec(model: SparseViT) -> Any:
    """What the data pipeline must produce for ``model``: size, normalisation, frames."""
    from timm.data import resolve_model_data_config

    from sttool.data import InputSpec

    spec = InputSpec.from_timm(resolve_model_data_config(model), num_frames=model.sttool_config.num_frames)
    return replace(spec, img_size=model.patch_embed.img_size[0])


def build_datasets(recipe: Recipe, spec: Any) -> dict[str, Dataset | None]:
    """Train (with augmentation), val and test datasets; a split the data lacks is None."""
    from sttool.data import build_dataset, has_split

    datasets: dict[str, Any] = {}
    for split in SPLITS:
        if split == "train" and recipe.data.stream:
            from sttool.data.synthetic.stream import StreamedTask

            datasets[split] = StreamedTask(recipe.data.task, recipe.data.stream)
        elif split == "train" or has_split(recipe.data, split):
            datasets[split] = build_dataset(recipe.data, split, spec, train=split == "train")
        else:
            datasets[split] = None
    if recipe.train.select == "val" and datasets["val"] is None:
        raise SttoolError(
            "train.select: val needs a validation split, and this dataset has none; set data.val_from_train=0.1 "
            "to hold out part of train, or train.select=last (never select on test)"
        )
    return datasets


def resolve_classes(recipe: Recipe, datasets: dict[str, Dataset | None]) -> Recipe:
    """Take the class count from the data, or check the recipe's against it."""
    found = datasets["train"].num_classes
    for split, dataset in datasets.items():
        if dataset is not None and dataset.num_classes != found:
            raise SttoolError(f"data: the {split} split has {dataset.num_classes} classes but train has {found} (root {recipe.data.root})")
    if recipe.model.num_classes is None:
        return replace(recipe, model=replace(recipe.model, num_classes=found))
    if recipe.model.num_classes != found:
        raise SttoolError(
            f"model.num_classes is {recipe.model.num_classes} but the data under {recipe.data.root} has {found} classes; "
            f"set model.num_classes={found} or leave it out"
        )
    return recipe


def create_model(recipe: Recipe, device: torch.device) -> SparseViT:
    """The recipe's model; seeded, so a backbone with ``weights: none`` is the same random one every time
    (checkpoints hold only trained tensors, so evaluation rebuilds the frozen part from the recipe)."""
    torch.manual_seed(recipe.train.seed)
    model = build_model(config=recipe.model)
    if recipe.train.token_labels > 0:
        add_token_head(model, recipe.model.num_classes)
    if recipe.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.to(device)


Objective = Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def training_objective(model: SparseViT, recipe: Recipe) -> tuple[nn.Module, Objective]:
    """The module the training loop calls (DDP wraps it) and the loss of its output given the soft
    targets, the labels and the foreground masks (when the data gives them)."""
    if recipe.train.token_labels > 0:
        return TokenLabelForward(model), TokenLabelLoss(recipe.train.token_labels, model.patch_embed.patch_size[0], recipe.model.num_classes)
    if getattr(model, "exits", None) is not None:
        exit_loss = MultiExitLoss(recipe.exits, len(model.exits.blocks) + 1)
        return ExitsForward(model), lambda outputs, targets, labels, masks: exit_loss(outputs, targets)
    return model, lambda logits, targets, labels, masks: soft_cross_entropy(logits, targets)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on trained matrices only: not on biases, norms, or position and class embeddings."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim <= 1 or name.endswith(("pos_embed", "cls_token", "time_embed", "reg_token"))
        (no_decay if skip else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def create_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    groups = [g for g in param_groups(model, recipe.optim.weight_decay) if g["params"]]
    if not groups:
        raise SttoolError(f"model.method {recipe.model.method} leaves nothing to train")
    return torch.optim.AdamW(groups, lr=recipe.optim.peak_lr(recipe.train.batch_size), betas=tuple(recipe.optim.betas))


def train_loader(dataset: Any, recipe: Recipe, context: DistContext, spec: Any = None,
                 device: torch.device | None = None) -> tuple[Any, Any]:
    """Deterministic micro-batches of this process (see ``sampling``) with seeded augmentation; for a
    streamed task, batches rendered on ``device`` (the loader is then its own sampler)."""
    from sttool.data import collate
    from sttool.data.synthetic.stream import StreamedTask, SyntheticStream

    train = recipe.train
    if train.batch_size % (train.accum_steps * context.world_size):
        raise SttoolError(
            f"train.batch_size {train.batch_size} is not divisible by accum_steps x processes "
            f"({train.accum_steps} x {context.world_size})"
        )
    if isinstance(dataset, StreamedTask):
        if len(dataset) < train.batch_size:
            raise SttoolError(f"data.stream: {len(dataset)} images per epoch is fewer than train.batch_size {train.batch_size}")
        stream = SyntheticStream(dataset, train.batch_size, train.accum_steps, context.world_size, context.rank, train.seed,
                                 spec, recipe.data.flips(), recipe.data.masks, device or torch.device("cpu"), train.max_steps_per_epoch)
        return stream, stream
    plan = BatchPlan(len(dataset), train.batch_size, train.accum_steps, context.world_size, context.rank, train.seed)
    if plan.steps_per_epoch == 0:
        raise SttoolError(f"train.batch_size {train.batch_size} is larger than the training set ({len(dataset)} samples)")
    sampler = EpochBatchSampler(plan, train.max_steps_per_epoch)
    workers = recipe.data.num_workers
    loader = DataLoader(
        SeededDataset(dataset, train.seed), batch_sampler=sampler, collate_fn=collate, num_workers=workers,
        persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
    )
    return loader, sampler


def eval_loader(dataset: Dataset, recipe: Recipe, context: DistContext) -> DataLoader:
    """This process's shard of an evaluation split, in order."""
    from sttool.data import collate

    seeded = SeededDataset(dataset, recipe.train.seed)
    shard = Subset(seeded, range(context.rank, len(dataset), context.world_size)) if context.enabled else seeded
    return DataLoader(
        shard, batch_size=recipe.train.eval_batch_size or recipe.train.batch_size, shuffle=False, collate_fn=collate,
        num_workers=recipe.data.num_workers, pin_memory=torch.cuda.is_available(),
    )
