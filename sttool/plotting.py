"""matplotlib, imported only when a plot is drawn: it is an optional extra (``sttool[plots]``)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from sttool.errors import SttoolError

PLOTS_DIR = "plots"
PLOTS_HINT = "plots need matplotlib: pip install 'sttool[plots]'"


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the file-only Agg backend, or a one-line error saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise SttoolError(PLOTS_HINT) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure, out_dir: Path, name: str) -> Path:
    """Write ``figure`` as ``out_dir/name`` (the folder is created) and close it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot().close(figure)
    return path
