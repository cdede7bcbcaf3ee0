"""Host-side batch layout for generation and scoring: padding, positions, length buckets."""

from __future__ import annotations

import numpy as np


def bucket(n: int, multiple: int) -> int:
    """Round `n` up to a multiple, so compiled functions see few distinct shapes."""
    return max(multiple, -(-n // multiple) * multiple)


def left_pad(rows: list[list[int]], length: int, pad_id: int):
    """Right-aligned prompts `[B, length]`, validity mask and positions starting at 0 per row.

    Left padding puts every prompt's last token in the same column, so one decode step serves
    the whole batch; the rotary positions and the mask make the padding invisible.
    """
    b = len(rows)
    ids = np.full((b, length), pad_id, dtype=np.int32)
    valid = np.zeros((b, length), dtype=bool)
    for i, row in enumerate(rows):
        if row:
            ids[i, length - len(row):] = row
            valid[i, length - len(row):] = True
    positions = np.maximum(np.cumsum(valid, axis=1) - 1, 0).astype(np.int32)
    return ids, valid, positions


def right_pad(rows: list[list[int]], length: int, pad_id: int):
    """Left-aligned rows `[B, length]` and their validity mask."""
    b = len(rows)
    ids = np.full((b, length), pad_id, dtype=np.int32)
    valid = np.zeros((b, length), dtype=bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        valid[i, : len(row)] = True
    return ids, valid


def chunks(items: list, size: int):
    """Consecutive slices of at most `size` items, with their start offsets."""
    for start in range(0, len(items), size):
        yield start, items[start : start + size]
