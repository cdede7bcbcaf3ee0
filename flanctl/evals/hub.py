"""Loading suites from the Hugging Face hub through `datasets`, with a one-line error offline."""

from __future__ import annotations

import os
from typing import Any

from flanctl.errors import FlanctlError


def load_hub_split(hub_id: str, config: str | None, split: str, suite: str) -> list[dict[str, Any]]:
    """Rows of `hub_id`/`config`/`split` as dicts; raises FlanctlError saying to pass --data-dir
    when the hub cannot be reached (or HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set and the
    dataset is not cached)."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise FlanctlError(f"suite {suite}: the `datasets` package is needed to read {hub_id}; pass --data-dir DIR instead") from exc
    # Fail fast instead of waiting on retries when the network is known to be off.
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    try:
        ds = datasets.load_dataset(hub_id, config, split=split)
    except Exception as exc:  # noqa: BLE001 - any failure here means "no hub access"
        why = "offline" if offline else type(exc).__name__
        raise FlanctlError(
            f"suite {suite}: cannot load {hub_id}"
            f"{'/' + config if config else ''} ({split}) from the Hugging Face hub ({why}); "
            f"pass --data-dir DIR with the suite's original files"
        ) from exc
    return [dict(row) for row in ds]
