"""``python -m sttool`` is the ``sttool`` command; ``torchrun ... -m sttool finetune RECIPE`` runs it on many GPUs."""

from sttool.cli.main import app

app(prog_name="sttool")
