"""A deterministic, checkpointable stream of synthetic decoder-only batches.

Same dict format and `get_state`/`set_state` contract as `flanctl.data.build_train_stream`,
for the throughput bench and for exercising the train loop without a tokenizer or dataset.
Each row packs two "examples": a random prompt, then a target that counts upwards from the
prompt's last token, so a model can learn it and the loss goes down.
"""

from __future__ import annotations

import numpy as np


class SyntheticStream:
    """Batches of shape [batch, length]; batch `i` depends only on (seed, i)."""

    def __init__(self, batch: int, length: int, vocab: int, seed: int = 0):
        if length < 8:
            raise ValueError("length must be at least 8")
        self.batch, self.length, self.vocab, self.seed = batch, length, vocab, seed
        self.index = 0

    def get_state(self) -> dict:
        return {"index": self.index, "seed": self.seed}

    def set_state(self, state: dict) -> None:
        self.index, self.seed = int(state["index"]), int(state["seed"])

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        rng = np.random.default_rng([self.seed, self.index])
        self.index += 1
        B, L, V = self.batch, self.length, self.vocab
        half = L // 2
        tokens = np.zeros((B, L), np.int32)
        segments = np.zeros((B, L), np.int32)
        positions = np.zeros((B, L), np.int32)
        mask = np.zeros((B, L), np.float32)
        for row in range(B):
            start = 0
            for seg, seg_len in enumerate((half, L - half - 1), start=1):  # last slot stays padding
                prompt = max(2, seg_len // 2)
                ids = rng.integers(3, V, size=seg_len)
                ids[prompt:] = 3 + (ids[prompt - 1] - 3 + np.arange(1, seg_len - prompt + 1)) % (V - 3)
                tokens[row, start : start + seg_len] = ids
                segments[row, start : start + seg_len] = seg
                positions[row, start : start + seg_len] = np.arange(seg_len)
                # targets[t] = tokens[t+1]; the loss counts predictions of target tokens only.
                mask[row, start + prompt - 1 : start + seg_len - 1] = 1.0
                start += seg_len
        targets = np.zeros_like(tokens)
        targets[:, :-1] = tokens[:, 1:]
        targets = np.where(segments == np.roll(segments, -1, axis=1), targets, 0)
        return {"token_ids": tokens, "segment_ids": segments, "positions": positions, "targets": targets, "loss_mask": mask}
