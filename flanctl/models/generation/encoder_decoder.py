"""Cached decoding and continuation scoring for `T5PackedSeq2SeqLM` (any backend, jit on jax).

Per batch, one compiled call runs the encoder over the right-padded prompts and projects its
output into every decoder layer's cross-attention keys/values (`[B, layers, 2, Le, H, kv]`),
once. Then one compiled step per new token feeds the previous token at slot `step`, writes its
self-attention keys/values into a cache of `bucket(max_new_tokens)` slots and attends over the
slots at or before `step` (and the real encoder positions only), so batched output equals
one-by-one output. Every row starts at decoder slot 0 with the start id, so no decoder padding
is needed and the relative position bias is the same as in the full forward pass.
Scoring runs the decoder over `start + continuation` in one pass; continuations that share a
context (`score_grouped`) share one encoder pass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from keras import ops

from flanctl.models.compiled import CompiledModelFunction
from flanctl.models.generation.batching import bucket, right_pad
from flanctl.models.generation.engine import frame_encoder_prompt
from flanctl.models.generation.sampling import select_next, step_seed
from flanctl.models.generation.token_engine import TokenEngine


class EncoderDecoderEngine(TokenEngine):
    """Token-level generation/scoring over a T5 task model (decoder start id = pad = 0)."""

    def __init__(self, model, tokenizer=None, batch_size: int = 8, frame=frame_encoder_prompt,
                 decoder_start_id: int = 0, length_multiple: int = 16, max_input_length: int = 2048):
        super().__init__(model, tokenizer, batch_size=batch_size, frame=frame)
        self.decoder_start_id = decoder_start_id
        self.length_multiple = length_multiple
        self.max_input_length = max_input_length
        self._prime = CompiledModelFunction(model, self._prime_fn)
        self._step = CompiledModelFunction(model, self._step_fn, static_argnums=(5,))
        self._score = CompiledModelFunction(model, self._score_fn)
        self._score_grouped = CompiledModelFunction(model, self._score_grouped_fn)
        self._uncached = None  # built on first use by _generate_ids_uncached

    # -- compiled pieces ---------------------------------------------------------------
    def _prime_fn(self, enc_ids, enc_seg):
        """Encoder once, then its cross-attention keys/values for every decoder layer."""
        return self.model.cross_attention_cache(self.model.encode(enc_ids, enc_seg))

    def _step_fn(self, token_ids, self_cache, cross_cache, enc_valid, index, temperature, seed):
        b, new_len = token_ids.shape[0], token_ids.shape[1]
        total = ops.shape(self_cache)[3]
        slots = ops.arange(total, dtype="int32")[None, None, :]
        queries = (ops.cast(index, "int32") + ops.arange(new_len, dtype="int32"))[None, :, None]
        self_mask = ops.broadcast_to(slots <= queries, (b, new_len, total))
        enc_valid = ops.cast(enc_valid, "bool")[:, None, :]
        cross_mask = ops.broadcast_to(enc_valid, (b, new_len, ops.shape(enc_valid)[2]))
        logits, self_cache = self.model.decode_with_cache(
            token_ids, ops.cast(self_mask, "int32"), ops.cast(cross_mask, "int32"), self_cache, cross_cache, index
        )
        return select_next(logits[:, -1, :], temperature, seed), self_cache

    def _score_fn(self, enc_ids, enc_seg, dec_ids, dec_seg, targets, weights):
        return self._score_from_encoder(self.model.encode(enc_ids, enc_seg), enc_seg, dec_ids, dec_seg, targets, weights)

    def _score_grouped_fn(self, enc_ids, enc_seg, owner, dec_ids, dec_seg, targets, weights):
        """Like `_score_fn`, with the encoder run once per context and its output gathered
        for each continuation row (`owner[r]` = the row's context)."""
        enc_out = ops.take(self.model.encode(enc_ids, enc_seg), owner, axis=0)
        enc_seg = ops.take(enc_seg, owner, axis=0)
        return self._score_from_encoder(enc_out, enc_seg, dec_ids, dec_seg, targets, weights)

    def _score_from_encoder(self, enc_out, enc_seg, dec_ids, dec_seg, targets, weights):
        logits = self.model.decode_logits(dec_ids, dec_seg, enc_out, enc_seg)
        logp = ops.log_softmax(logits, axis=-1)
        picked = ops.take_along_axis(logp, ops.cast(targets, "int32")[:, :, None], axis=-1)[:, :, 0]
        return ops.sum(picked * weights, axis=-1)

    def _encoder_batch(self, prompts: list[list[int]]):
        prompts = [p[-self.max_input_length:] or [self.pad_id] for p in prompts]
        length = bucket(max(len(p) for p in prompts), self.length_multiple)
        ids, valid = right_pad(prompts, length, self.pad_id)
        return ids, valid.astype(np.int32)

    # -- generation --------------------------------------------------------------------
    def generate_ids(self, prompts, max_new_tokens: int, temperature: float, seed: int, finished: Callable[[int, list[int]], bool]):
        """New token ids per prompt; a row stops once `finished(row, ids)` says so."""
        b = len(prompts)
        enc_ids, enc_seg = self._encoder_batch(prompts)
        cross_cache = self._prime(enc_ids, enc_seg)
        enc_valid = ops.convert_to_tensor(enc_seg)  # on the device once, not once per step
        cache = self.model.empty_decoder_cache(b, bucket(max_new_tokens, self.length_multiple))
        temperature = float(temperature)
        tok_in = np.full((b, 1), self.decoder_start_id, dtype=np.int32)
        out: list[list[int]] = [[] for _ in range(b)]
        done = np.zeros(b, dtype=bool)
        for step in range(max_new_tokens):
            tok, cache = self._step(tok_in, cache, cross_cache, enc_valid, np.int32(step), temperature, step_seed(seed, step))
            tok_np = np.asarray(ops.convert_to_numpy(tok)).reshape(b).astype(np.int32)
            for row in np.flatnonzero(~done):
                out[row].append(int(tok_np[row]))
                done[row] = finished(int(row), out[row])
            if done.all():
                break
            tok_in = tok_np[:, None]
        return out

    def _generate_ids_uncached(self, prompts, max_new_tokens: int, temperature: float, seed: int, finished):
        """Reference decoder without a cache: the whole fixed-width decoder prefix is re-read
        every step (O(n^2) in the output length). Kept for tests and `bench/eval_throughput.py`."""
        if self._uncached is None:
            def next_fn(dec_ids, dec_seg, enc_out, enc_seg, step, temp, step_key):
                logits = self.model.decode_logits(dec_ids, dec_seg, enc_out, enc_seg)
                return select_next(ops.take(logits, ops.cast(step, "int32"), axis=1), temp, step_key)

            self._uncached = (
                CompiledModelFunction(self.model, lambda ids, seg: self.model.encode(ids, seg)),
                CompiledModelFunction(self.model, next_fn, static_argnums=(5,)),
            )
        encode, next_token = self._uncached
        b = len(prompts)
        enc_ids, enc_seg = self._encoder_batch(prompts)
        enc_out = encode(enc_ids, enc_seg)
        width = bucket(max_new_tokens, self.length_multiple)
        dec = np.full((b, width), self.pad_id, dtype=np.int32)
        dec[:, 0] = self.decoder_start_id
        dec_seg = np.ones((b, width), dtype=np.int32)  # the causal mask hides the future slots
        out: list[list[int]] = [[] for _ in range(b)]
        done = np.zeros(b, dtype=bool)
        for step in range(max_new_tokens):
            tok = next_token(dec, dec_seg, enc_out, enc_seg, np.int32(step), float(temperature), step_seed(seed, step))
            tok = np.asarray(ops.convert_to_numpy(tok)).reshape(b)
            for row in np.flatnonzero(~done):
                out[row].append(int(tok[row]))
                done[row] = finished(int(row), out[row])
            if done.all():
                break
            if step + 1 < width:
                dec[:, step + 1] = tok
        return out

    # -- scoring -----------------------------------------------------------------------
    def _decoder_rows(self, conts: list[list[int]]):
        """Decoder inputs (start id + continuation), targets and weights, right-padded."""
        width = bucket(max(1, max(len(c) for c in conts)), self.length_multiple)
        targets, valid = right_pad(conts, width, self.pad_id)
        dec = np.full_like(targets, self.pad_id)
        dec[:, 0] = self.decoder_start_id
        dec[:, 1:] = targets[:, :-1]
        return dec, np.ones_like(targets), targets, valid.astype(np.float32)

    def score(self, pairs, start_id: int) -> list[float]:
        """Summed log-probability of each continuation (decoder) given its context (encoder)."""
        enc_ids, enc_seg = self._encoder_batch([ctx for ctx, _ in pairs])
        out = self._score(enc_ids, enc_seg, *self._decoder_rows([list(c) for _, c in pairs]))
        return [float(x) for x in np.asarray(ops.convert_to_numpy(out))]

    def score_grouped(self, groups, start_id: int) -> list[list[float]]:
        """Per (context, continuations) group, each continuation's summed log-probability,
        the encoder run once per context (one batch: all continuations of all groups)."""
        conts = [[list(c) for c in cs] for _, cs in groups]
        flat = [c for cs in conts for c in cs]
        if not flat:
            return [[] for _ in groups]
        enc_ids, enc_seg = self._encoder_batch([list(ctx) for ctx, _ in groups])
        owner = np.array([g for g, cs in enumerate(conts) for _ in cs], dtype=np.int32)
        out = self._score_grouped(enc_ids, enc_seg, owner, *self._decoder_rows(flat))
        scores = iter(float(x) for x in np.asarray(ops.convert_to_numpy(out)))
        return [[next(scores) for _ in cs] for cs in conts]
