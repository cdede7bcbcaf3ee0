"""Generation and scoring for `T5PackedSeq2SeqLM`: encoder once, then the decoder per token.

The encoder runs once per batch. The decoder re-reads its whole (right-padded, fixed-width)
prefix each step, compiled once per width; keras-hub's T5 layers do have a K/V cache, but
their cached path rebuilds its own padding-only masks, so the uncached decoder over a fixed
width is used here (cost O(n^2) in the target length, which is short for the evals: <= 512).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from keras import ops

from flanctl.models.compiled import CompiledModelFunction
from flanctl.models.generation.batching import bucket, right_pad
from flanctl.models.generation.sampling import select_next, step_seed


class EncoderDecoderEngine:
    """Token-level generation/scoring over a T5 task model (decoder start id = pad = 0)."""

    def __init__(self, model, pad_id: int = 0, start_id: int = 0, length_multiple: int = 16, max_input_length: int = 2048):
        self.model = model
        self.pad_id = pad_id
        self.start_id = start_id
        self.length_multiple = length_multiple
        self.max_input_length = max_input_length
        self._encode = CompiledModelFunction(model, lambda ids, seg: model.encode(ids, seg))
        self._next = CompiledModelFunction(model, self._next_fn, static_argnums=(5,))
        self._score = CompiledModelFunction(model, self._score_fn)

    def _next_fn(self, dec_ids, dec_seg, enc_out, enc_seg, step, temperature, seed):
        logits = self.model.decode_logits(dec_ids, dec_seg, enc_out, enc_seg)
        at = ops.take(logits, ops.cast(step, "int32"), axis=1)  # [B, V] at the current slot
        return select_next(at, temperature, seed)

    def _score_fn(self, enc_ids, enc_seg, dec_ids, dec_seg, targets, weights):
        enc_out = self.model.encode(enc_ids, enc_seg)
        logits = self.model.decode_logits(dec_ids, dec_seg, enc_out, enc_seg)
        logp = ops.log_softmax(logits, axis=-1)
        picked = ops.take_along_axis(logp, ops.cast(targets, "int32")[:, :, None], axis=-1)[:, :, 0]
        return ops.sum(picked * weights, axis=-1)

    def _encoder_batch(self, prompts: list[list[int]]):
        prompts = [p[-self.max_input_length:] or [self.pad_id] for p in prompts]
        length = bucket(max(len(p) for p in prompts), self.length_multiple)
        ids, valid = right_pad(prompts, length, self.pad_id)
        return ids, valid.astype(np.int32)

    def generate_ids(self, prompts, max_new_tokens: int, temperature: float, seed: int, finished: Callable[[int, list[int]], bool]):
        b = len(prompts)
        enc_ids, enc_seg = self._encoder_batch(prompts)
        enc_out = self._encode(enc_ids, enc_seg)
        width = bucket(max_new_tokens, self.length_multiple)
        dec = np.full((b, width), self.pad_id, dtype=np.int32)
        dec[:, 0] = self.start_id
        dec_seg = np.ones((b, width), dtype=np.int32)  # causal mask hides the future slots
        out: list[list[int]] = [[] for _ in range(b)]
        done = np.zeros(b, dtype=bool)
        for step in range(max_new_tokens):
            tok = self._next(dec, dec_seg, enc_out, enc_seg, np.int32(step), float(temperature), step_seed(seed, step))
            tok = np.asarray(ops.convert_to_numpy(tok)).reshape(b)
            for row in np.flatnonzero(~done):
                out[row].append(int(tok[row]))
                done[row] = finished(int(row), out[row])
            if done.all():
                break
            if step + 1 < width:
                dec[:, step + 1] = tok
        return out

    def score(self, pairs, start_id: int) -> list[float]:
        enc_ids, enc_seg = self._encoder_batch([ctx for ctx, _ in pairs])
        conts = [list(c) for _, c in pairs]
        width = bucket(max(1, max(len(c) for c in conts)), self.length_multiple)
        targets, valid = right_pad(conts, width, self.pad_id)
        dec = np.full_like(targets, self.pad_id)
        dec[:, 0] = self.start_id
        dec[:, 1:] = targets[:, :-1]
        dec_seg = np.ones_like(targets)
        out = self._score(enc_ids, enc_seg, dec, dec_seg, targets, valid.astype(np.float32))
        return [float(x) for x in np.asarray(ops.convert_to_numpy(out))]
