"""Using a tuned model: predict classes for files (``Predictor``), and export it (``export_model``).

A Predictor loads a run folder, a checkpoint or a timm backbone with a classifier, reads images,
videos, folders and list files through the model's own evaluation transform (with the read deadline
of ``sttool.data.inputs``), batches them, and returns the top-k classes with probabilities; files it
cannot read are named and counted, never fatal. With ``early_exit`` a multi-exit run leaves at its
calibrated operating point (``exits.json``).

Export writes the no-early-exit model (early exit's batch shapes depend on the data) with a dynamic
batch dimension, as ``torch.export`` (``.pt2``) or ONNX through the dynamo exporter, then runs the
written model against eager PyTorch on a random batch and reports the largest difference.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from sttool.data.inputs import VALID, VIDEO_SUFFIXES, Preprocess, Sample, is_video, read_sample
from sttool.data.listfile import IMAGE_SUFFIXES
from sttool.data.samples import READ_TIMEOUT, read_lines
from sttool.errors import SttoolError
from sttool.models.exits import predict_early_exit
from sttool.models.vit import SparseViT
from sttool.progress import SILENT, Progress
from sttool.runs.folder import RunDir
from sttool.runs.load import class_names, input_spec, load_run, resolve_source, run_folder_of
from sttool.runtime import autocast, input_shape, resolve_device

LIST_SUFFIXES = (".txt", ".lst")


@dataclass
class Prediction:
    """The classes predicted for one input, most likely first."""

    path: str
    top: list[tuple[str, float]]  # (class name, probability)
    index: int  # the top class's index
    exit: int | None = None  # 0-based exit the input left at (early exit only; the last is the final head)


@dataclass
class PredictionReport:
    predictions: list[Prediction]
    bad: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of the inputs that could not be read


def expand_inputs(paths: Sequence[Path], clips: bool) -> list[Path]:
    """Files to predict: a list file gives its paths (first field, relative to the list), a folder its
    images (recursively) or, for a video model, its videos, or itself when it is a folder of frames."""
    found: list[Path] = []
    for path in paths:
        if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            found += [path.parent / text.split()[0] for _, text in read_lines(path) if not text.startswith("#")]
        elif path.is_dir():
            wanted = VIDEO_SUFFIXES if clips else IMAGE_SUFFIXES
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in wanted)
            found += files if files or not clips else [path]
        else:
            found.append(path)
    return found


class Predictor:
    """A model, how its inputs are read, and what its outputs mean."""

    def __init__(self, model: SparseViT, pre: Preprocess, names: list[str], precision: str = "fp32",
                 thresholds: list[float] | None = None) -> None:
        self.model, self.pre, self.names = model.eval(), pre, names
        self.precision, self.thresholds = precision, thresholds
        self.device = next(model.parameters()).device

    @classmethod
    def load(cls, target: str | Path, device: str = "auto", precision: str | None = None,
             timeout: float = READ_TIMEOUT) -> Predictor:
        """A run folder, checkpoint, adapter folder or Hub id; a name that is no path is a timm model with a
        classifier head."""
        torch_device = resolve_device(device)
        path = resolve_source(target)  # a Hub id (user/name) is fetched, or refused offline in one line
        if path.exists():
            model, recipe, checkpoint = load_run(path, torch_device)
            data = recipe.data
            pre = Preprocess(input_spec(model), data.augment, data.frame_sampling, data.frame_stride, timeout)
            exits = RunDir(run_folder_of(checkpoint)).read_exits() if getattr(model, "exits", None) is not None else None
            point = (exits or {}).get("operating_point")
            return cls(model, pre, class_names(checkpoint, recipe.num_classes), precision or recipe.train.precision,
                       point["thresholds"] if point else None)
        return cls._backbone(str(target), torch_device, precision or "fp32", timeout)

    @classmethod
    def _backbone(cls, name: str, device: torch.device, precision: str, timeout: float) -> Predictor:
        import timm

        from sttool.models.build import build_model

        try:
            pretrained = timm.models.get_pretrained_cfg(name)
        except RuntimeError:
            pretrained = None
        classes = getattr(pretrained, "num_classes", 0) if pretrained is not None else 0
        if not classes:
            raise SttoolError(f"'{name}' is neither a run folder, a checkpoint, nor a timm model with a classifier head; "
                              "predict with a tuned run (sttool predict runs/NAME ...)")
        model = build_model(name, weights="hub", method="linear", keep_rate=1.0, num_classes=classes, head="linear")
        names = [str(i) for i in range(classes)]
        if classes in (1000, 21841, 11821):
            from timm.data import ImageNetInfo, infer_imagenet_subset

            subset = infer_imagenet_subset(model)
            if subset:
                info = ImageNetInfo(subset)
                names = [info.index_to_description(i) for i in range(classes)]
        return cls(model.to(device), Preprocess(input_spec(model), timeout=timeout), names, precision)

    @property
    def clips(self) -> bool:
        return self.pre.spec.num_frames is not None

    @torch.no_grad()
    def probabilities(self, inputs: torch.Tensor, early_exit: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Class probabilities (B, K) of a batch of model inputs, and with ``early_exit`` the exit of each."""
        inputs = inputs.to(self.device)
        with autocast(self.device, self.precision):
            if early_exit:
                if self.thresholds is None:
                    raise SttoolError("early exit needs a run trained with exits and calibrated (its exits.json has an operating point)")
                logits, exits = predict_early_exit(self.model, inputs, self.thresholds)
                return logits.float().softmax(-1), exits
            return self.model(inputs).float().softmax(-1), None

    def predict(self, paths: Sequence[Path], top_k: int = 5, batch_size: int = 32, early_exit: bool = False,
                progress: Progress = SILENT) -> PredictionReport:
        """Top-k classes of every input; an input that cannot be read is named in ``bad`` and skipped."""
        if top_k < 1 or batch_size < 1:
            raise SttoolError(f"top-k {top_k} and batch size {batch_size} must be at least 1")
        files = expand_inputs(paths, self.clips)
        if not files:
            raise SttoolError(f"no inputs to predict in {', '.join(map(str, paths))}; valid: {VALID}, or a list file")
        report = PredictionReport([])
        task = progress.task("predicting", len(files))
        batch: list[Sample] = []
        for index, path in enumerate(files):
            try:
                if self.clips != is_video(path):
                    kind = "clips" if self.clips else "images"
                    raise SttoolError(f"{path}: the model takes {kind}")
                batch.append(read_sample(path, self.pre))
            except SttoolError as err:
                report.bad.append((str(path), str(err).removeprefix(f"{path}: ")))
            if len(batch) == batch_size or (index == len(files) - 1 and batch):
                report.predictions += self._classify(batch, top_k, early_exit)
                task.advance(len(batch))
                batch = []
        task.close()
        return report

    def _classify(self, samples: list[Sample], top_k: int, early_exit: bool) -> list[Prediction]:
        probs, exits = self.probabilities(torch.stack([s.inputs for s in samples]), early_exit)
        values, indices = probs.topk(min(top_k, probs.shape[1]), dim=1)  # (B, k)
        return [Prediction(str(s.path), [(self.names[int(i)], float(v)) for v, i in zip(vs, ids, strict=True)], int(ids[0]),
                           None if exits is None else int(exits[b]))
                for b, (s, vs, ids) in enumerate(zip(samples, values, indices, strict=True))]


ExportFormat = Literal["onnx", "torch"]
MAX_BATCH = 4096


def export_model(target: Path, fmt: ExportFormat, out: Path, check: bool = True) -> dict[str, Any]:
    """Write ``target``'s model (a run folder or checkpoint) to ``out`` with a dynamic batch size and, with
    ``check``, compare it with eager PyTorch on a random batch of another size."""
    if fmt not in ("onnx", "torch"):
        raise SttoolError(f"--format: '{fmt}' is not one of onnx, torch")
    model, _, checkpoint = load_run(target, torch.device("cpu"))
    notes = []
    if getattr(model, "exits", None) is not None:
        notes.append("exported without early exit (the final head, as evaluate reports it): early exit's batch shapes depend on the data")
    example = torch.randn(2, *input_shape(model))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp")  # the exporter writes here; nothing half-written reaches ``out``
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        if fmt == "torch":
            program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
            torch.export.save(program, str(staging / out.name))
        else:
            _require("onnx", "onnxscript")
            # weights beside the graph as OUT.data when the exporter puts them outside (it names that file after
            # the path it is given, so the staging file carries the final name)
            torch.onnx.export(model, (example,), str(staging / out.name), dynamo=True, dynamic_shapes=({0: batch},),
                              input_names=["inputs"], output_names=["logits"])
        written = sorted(staging.iterdir(), key=lambda f: f.name == out.name)  # the graph last, after its data
        for file in written:
            os.replace(file, out.parent / file.name)
    except SttoolError:
        raise
    except Exception as err:  # exporters raise many types; the model or torch version is to blame, say which
        raise SttoolError(f"exporting {checkpoint} as {fmt} failed: {type(err).__name__}: {str(err).splitlines()[0]}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = [out.parent / file.name for file in written]
    report: dict[str, Any] = {"checkpoint": str(checkpoint), "format": fmt, "out": str(out),
                              "files": [str(f) for f in files], "bytes": sum(f.stat().st_size for f in files),
                              "input_shape": ["batch", *input_shape(model)], "notes": notes}
    if check:
        report["check"] = _check_export(model, fmt, out, notes)
    return report


def _require(*modules: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise SttoolError(f"ONNX export needs {', '.join(missing)}: pip install 'sttool[onnx]'")


def _check_export(model: SparseViT, fmt: ExportFormat, out: Path, notes: list[str]) -> dict[str, Any] | None:
    """The written model against eager on a random batch of 3 (another size than the example's 2)."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(3, *input_shape(model), generator=generator)
    with torch.no_grad():
        expected = model(inputs)
        if fmt == "torch":
            got = torch.export.load(str(out)).module()(inputs)
        else:
            try:
                import onnxruntime
            except ImportError:
                notes.append("not checked: pip install onnxruntime (or 'sttool[onnx]') to compare it with PyTorch")
                return None
            session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {session.get_inputs()[0].name: inputs.numpy()})[0])
    difference = float((got - expected).abs().max())
    if not math.isfinite(difference):
        raise SttoolError(f"{out}: the exported model gives non-finite outputs where PyTorch does not")
    return {"batch": 3, "max_abs_difference": difference, "max_abs_logit": float(expected.abs().max())}


def load(target: str | Path, device: str = "auto", precision: str | None = None, timeout: float = READ_TIMEOUT) -> Predictor:
    """``sttool.load("runs/quickstart").predict([Path("photo.png")])``: a tuned run (or checkpoint, or a timm
    model with a classifier) ready to predict."""
    return Predictor.load(target, device, precision, timeout)
