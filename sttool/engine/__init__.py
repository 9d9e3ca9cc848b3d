"""The fine-tuning and evaluation engine."""

from sttool.engine.trainer import finetune

__all__ = ["finetune"]
