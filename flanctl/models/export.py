"""`flanctl export`: a finished run's model written for other tools.

    hf          a Hugging Face transformers folder (config.json, safetensors, tokenizer files)
                through the family's `export_hf`: flanctl's own writer for t5
                (T5ForConditionalGeneration), keras-hub's `export_to_transformers` for the
                keras-hub families that have one.
    keras-hub   a keras-hub preset folder (the run's own export/, copied): plain keras-hub loads
                it; flanctl's palm / t5 classes register on `import flanctl.models`.

The model comes from the run's `export/` folder; the caller (the CLI) resolves the run and its
plan and passes the family and a tokenizer factory, so this room never reads the plan.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from flanctl.errors import FlanctlError

FORMATS = ("hf", "keras-hub")


def export_run_model(family, source: Path, out: Path, fmt: str = "hf", tokenizer_factory: Callable[[], object] | None = None) -> Path:
    """Write the model saved at `source` (a run's export/) to `out` in format `fmt`."""
    if fmt not in FORMATS:
        raise FlanctlError(f"--format {fmt!r}: use {' or '.join(FORMATS)}")
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise FlanctlError(f"{source}: no exported model; finish `flanctl apply` first")
    if out.exists() and any(out.iterdir()):
        raise FlanctlError(f"{out}: exists and is not empty; pass another --out or remove it")
    if fmt == "keras-hub":
        shutil.copytree(source, out, dirs_exist_ok=True)
        return out
    model, tokenizer = family.load(str(source))
    if tokenizer is None and tokenizer_factory is not None:
        tokenizer = tokenizer_factory()
    try:
        return family.export_hf(model, out, tokenizer)
    except FlanctlError:
        if out.exists() and not any(out.iterdir()):
            out.rmdir()
        raise
