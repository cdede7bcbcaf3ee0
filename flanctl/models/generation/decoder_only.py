"""Cached decoding and continuation scoring for `PaLMCausalLM` (any backend, jit on jax).

Prompts are left-padded to a common length P and decoded into a K/V cache of P + max_new
slots: one prefill call writes the prompts' keys/values, then one compiled step per new token
writes one slot with `keras.ops.slice_update` and attends over the cache with a mask of the
valid slots (padding never visible, so batched output equals one-by-one output).

Scoring options that share a context (`score_grouped`, MMLU's four answers after one long
few-shot prompt) runs the context once: a prefill call writes each context's K/V, the cache
rows are gathered once per option, and one call over the (short, right-padded) options attends
to them. Each continuation costs its own tokens instead of context + continuation tokens.

A prefix-LM model (`backbone.attention == "prefix"`) is run as it was trained: the prompt (or
scored context) is the prefix, so the prefill lets every prompt token see every other one;
the generated (or scored) tokens after it stay causal.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from keras import ops

from flanctl.models.compiled import CompiledModelFunction
from flanctl.models.generation.batching import bucket, left_pad, right_pad
from flanctl.models.generation.engine import frame_decoder_prompt
from flanctl.models.generation.sampling import select_next, step_seed
from flanctl.models.generation.token_engine import TokenEngine


def _cache_mask(key_valid, index, new_len: int):
    """Bool `[B, new_len, T]`: query `index + q` sees valid slots at or before itself."""
    total = ops.shape(key_valid)[1]
    slots = ops.arange(total, dtype="int32")[None, None, :]
    query_slots = (ops.cast(index, "int32") + ops.arange(new_len, dtype="int32"))[None, :, None]
    return ops.logical_and(ops.cast(key_valid, "bool")[:, None, :], slots <= query_slots)


def _prefix_cache_mask(key_valid, index, new_len: int):
    """Bool `[B, new_len, T]` of a prefix LM's prompt: every new token (all prompt tokens) sees
    every valid slot before `index + new_len`, later prompt tokens included. For one new token
    this is `_cache_mask`."""
    total = ops.shape(key_valid)[1]
    slots = ops.arange(total, dtype="int32")[None, None, :]
    end = ops.cast(index, "int32") + new_len
    visible = ops.logical_and(ops.cast(key_valid, "bool")[:, None, :], slots < end)
    return ops.broadcast_to(visible, (ops.shape(key_valid)[0], new_len, total))


class DecoderOnlyEngine(TokenEngine):
    """Generation and scoring over a `PaLMCausalLM` (token ids in, token ids out); a prefix-LM
    model attends bidirectionally over the prompt, as in training."""

    def __init__(self, model, tokenizer=None, batch_size: int = 8, frame=frame_decoder_prompt,
                 length_multiple: int = 16, option_multiple: int = 8):
        super().__init__(model, tokenizer, batch_size=batch_size, frame=frame)
        self.length_multiple = length_multiple
        self.option_multiple = option_multiple
        self.max_length = int(getattr(model.backbone, "max_sequence_length", 2560))
        #: True for a prefix LM: prompts and scored contexts are its prefix.
        self.prefix = getattr(model.backbone, "attention", "causal") == "prefix"
        self._prompt_mask = _prefix_cache_mask if self.prefix else _cache_mask
        self._decode = CompiledModelFunction(model, self._decode_fn, static_argnums=(5,))
        self._score = CompiledModelFunction(model, self._score_fn)
        self._score_shared = CompiledModelFunction(model, self._score_shared_fn)

    # -- compiled pieces ---------------------------------------------------------------
    def _decode_fn(self, token_ids, positions, key_valid, cache, index, temperature, seed):
        new_len = token_ids.shape[1]
        mask = self._prompt_mask(key_valid, index, new_len)  # the prefill: the prompt; then one token a call
        logits, cache = self.model.call_with_cache(token_ids, positions, mask, cache, index)
        return select_next(logits[:, -1, :], temperature, seed), cache

    def _score_fn(self, token_ids, segment_ids, positions, targets, weights, prefix):
        inputs = {"token_ids": token_ids, "segment_ids": segment_ids, "positions": positions}
        if self.prefix:
            inputs["prefix_mask"] = prefix
        logits = self.model(inputs)
        logp = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        picked = ops.take_along_axis(logp, ops.cast(targets, "int32")[:, :, None], axis=-1)[:, :, 0]
        return ops.sum(picked * weights, axis=-1)

    def _score_shared_fn(self, ctx_ids, ctx_positions, ctx_valid, owner, opt_ids, opt_positions, opt_targets, first_weight, opt_weights):
        """Summed log-probabilities `[R]` of R options given E contexts (`owner[r]` in [0, E))."""
        e, p = ctx_ids.shape
        r, l = opt_ids.shape
        # Prefill: contexts into a cache of P + Lopt slots (option slots invisible for now).
        key_valid = ops.concatenate([ops.cast(ctx_valid, "bool"), ops.zeros((e, l), dtype="bool")], axis=1)
        cache = self.model.empty_cache(e, p + l)
        logits, cache = self.model.call_with_cache(ctx_ids, ctx_positions, self._prompt_mask(key_valid, 0, p), cache, 0)
        last = ops.take(ops.log_softmax(ops.cast(logits[:, -1, :], "float32"), axis=-1), owner, axis=0)  # [R, V]
        first = ops.take_along_axis(last, ops.cast(opt_ids[:, :1], "int32"), axis=-1)[:, 0]
        # Options: each row reads its context's cache rows and its own earlier option slots.
        rows = ops.take(cache, owner, axis=0)
        key_valid = ops.concatenate([ops.take(ops.cast(ctx_valid, "bool"), owner, axis=0), ops.ones((r, l), dtype="bool")], axis=1)
        logits, _ = self.model.call_with_cache(opt_ids, opt_positions, _cache_mask(key_valid, p, l), rows, p)
        logp = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        picked = ops.take_along_axis(logp, ops.cast(opt_targets, "int32")[:, :, None], axis=-1)[:, :, 0]
        return first * first_weight + ops.sum(picked * opt_weights, axis=-1)

    # -- generation --------------------------------------------------------------------
    def generate_ids(
        self,
        prompts: list[list[int]],
        max_new_tokens: int,
        temperature: float,
        seed: int,
        finished: Callable[[int, list[int]], bool],
    ) -> list[list[int]]:
        """New token ids per prompt; a row stops once `finished(row, ids)` says so.

        The budget is cut to the room the model's length leaves after the longest prompt: a
        large budget never shortens a prompt (only a prompt longer than the model keeps its end)."""
        longest = max((len(p) for p in prompts), default=1)
        max_new_tokens = max(1, min(max_new_tokens, self.max_length - longest))
        keep = self.max_length - max_new_tokens
        prompts = [p[-keep:] if p else [self.pad_id] for p in prompts]
        b = len(prompts)
        plen = min(bucket(max(len(p) for p in prompts), self.length_multiple), keep)
        ids, valid, positions = left_pad(prompts, plen, self.pad_id)
        total = plen + max_new_tokens
        key_valid = np.concatenate([valid, np.ones((b, max_new_tokens), dtype=bool)], axis=1)
        cache = self.model.empty_cache(b, total)
        temperature = float(temperature)
        tok, cache = self._decode(ids, positions, key_valid, cache, np.int32(0), temperature, step_seed(seed, 0))
        pos = positions[:, -1] + 1
        out: list[list[int]] = [[] for _ in range(b)]
        done = np.zeros(b, dtype=bool)
        for step in range(max_new_tokens):
            tok_np = np.asarray(ops.convert_to_numpy(tok)).reshape(b)
            for row in np.flatnonzero(~done):
                out[row].append(int(tok_np[row]))
                done[row] = finished(int(row), out[row])
            if done.all() or step == max_new_tokens - 1:
                break
            tok, cache = self._decode(
                tok_np[:, None].astype(np.int32), pos[:, None].astype(np.int32), key_valid, cache,
                np.int32(plen + step), temperature, step_seed(seed, step + 1),
            )
            pos = pos + 1
        return out

    # -- scoring -----------------------------------------------------------------------
    def score(self, pairs: list[tuple[list[int], list[int]]], start_id: int) -> list[float]:
        """Summed log-probability of each continuation given its context (one batch)."""
        rows, weights = [], []
        for context, continuation in pairs:
            context = list(context) or [start_id]
            seq = (context + list(continuation))[-(self.max_length + 1):]
            n_cont = min(len(continuation), len(seq) - 1)
            rows.append(seq)
            weights.append(n_cont)
        length = min(bucket(max(len(r) for r in rows) - 1, self.length_multiple), self.max_length)
        inputs, valid = right_pad([r[:-1] for r in rows], length, self.pad_id)
        targets, _ = right_pad([r[1:] for r in rows], length, self.pad_id)
        w = np.zeros((len(rows), length), dtype=np.float32)
        for i, (row, n_cont) in enumerate(zip(rows, weights)):
            end = len(row) - 1
            w[i, end - n_cont : end] = 1.0
        segment_ids = valid.astype(np.int32)
        positions = np.broadcast_to(np.arange(length, dtype=np.int32), inputs.shape).copy()
        # The context is the prefix: every position before the first scored prediction, and it.
        prefix = (np.cumsum(w, axis=1) - w == 0).astype(np.int32) * segment_ids
        out = self._score(inputs, segment_ids, positions, targets, w, prefix)
        return [float(x) for x in np.asarray(ops.convert_to_numpy(out))]

    def score_grouped(self, groups: list[tuple[list[int], list[list[int]]]], start_id: int) -> list[list[float]]:
        """Per (context, continuations) group, each continuation's summed log-probability,
        the context run once per group (one batch: all continuations of all groups)."""
        opts = [[list(c)[: self.max_length - 1] for c in conts] for _, conts in groups]
        flat = [c for conts in opts for c in conts]
        if not flat:
            return [[] for _ in groups]
        lopt = bucket(max(1, max(len(c) for c in flat)), self.option_multiple)
        keep = max(1, self.max_length - lopt)
        contexts = [(list(ctx) or [start_id])[-keep:] for ctx, _ in groups]
        p = min(bucket(max(len(c) for c in contexts), self.length_multiple), keep)
        ctx_ids, ctx_valid, ctx_positions = left_pad(contexts, p, self.pad_id)
        owner = np.array([g for g, conts in enumerate(opts) for _ in conts], dtype=np.int32)
        opt_ids, _ = right_pad(flat, lopt, self.pad_id)
        targets = np.zeros_like(opt_ids)
        targets[:, :-1] = opt_ids[:, 1:]
        weights = np.zeros(opt_ids.shape, dtype=np.float32)
        for i, c in enumerate(flat):
            weights[i, : max(0, len(c) - 1)] = 1.0
        first = np.array([1.0 if c else 0.0 for c in flat], dtype=np.float32)
        ctx_len = np.array([len(c) for c in contexts], dtype=np.int32)[owner]
        opt_positions = (ctx_len[:, None] + np.arange(lopt, dtype=np.int32)[None, :]).astype(np.int32)
        out = self._score_shared(ctx_ids, ctx_positions, ctx_valid, owner, opt_ids, opt_positions, targets, first, weights)
        scores = iter(float(x) for x in np.asarray(ops.convert_to_numpy(out)))
        return [[next(scores) for _ in conts] for conts in opts]
