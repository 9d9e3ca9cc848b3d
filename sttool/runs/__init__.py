"""A run on disk: its recipe (``recipe``), its folder and files (``folder``), its checkpoints
(``checkpoint``) and its model (``load``). Everything that reads or writes a run goes through here."""

from sttool.runs.folder import RunDir
from sttool.runs.load import find_checkpoint, load_run
from sttool.runs.recipe import Recipe, load_recipe

__all__ = ["Recipe", "RunDir", "find_checkpoint", "load_recipe", "load_run"]
