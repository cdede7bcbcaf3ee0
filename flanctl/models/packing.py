"""Which families can pack several examples per row without contamination (no ML imports).

The data room asks `supports_packing(family)`; when it is False it emits one example per
row and the plan shows `packing_note(family)` as the reason.
"""

from __future__ import annotations

from flanctl.catalog.models import DECODER_FAMILIES as DECODER_ONLY_FAMILIES
from flanctl.catalog.models import is_decoder_only

_NOTES: dict[str, str] = {
    "preset": (
        "keras-hub preset models take only a padding mask (no segment ids), so packed examples "
        "would attend to each other; the data pipeline emits one example per row"
    ),
}


def supports_packing(family: str) -> bool:
    """True when the family's model masks attention by segment (packed rows stay separate)."""
    return family not in _NOTES and (is_decoder_only(family) or family in ("t5", "preset"))


def packing_note(family: str) -> str | None:
    """Why packing is off for `family` (None when it is supported)."""
    return _NOTES.get(family)
