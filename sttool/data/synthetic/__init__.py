"""Synthetic data, generated locally in seconds: shapes on cluttered backgrounds (with foreground
masks) and shapes whose direction of motion is the class. The embedded default; nothing downloads."""

from sttool.data.synthetic.generate import SyntheticOptions, make_synthetic
from sttool.data.synthetic.images import SetReport, load_mask, mask_path

__all__ = ["SetReport", "SyntheticOptions", "load_mask", "make_synthetic", "mask_path"]
