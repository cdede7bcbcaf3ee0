"""Pretraining objectives on raw text: causal LM, T5 span corruption, UL2's mixture of denoisers.

A raw-text task is tokenized into pieces of at most `ObjectiveLayout.text_length` tokens (a
document longer than that becomes several pieces; `end` marks a document's last piece). Each
piece drawn by the stream becomes one example here, then goes through the same packing and
unpacking as instruction examples, so the batches keep the seam's keys:

- causal_lm (decoder-only): [bos] text, loss on every next token (eos only after a document's end);
- span_corruption / ul2: (inputs, targets) built from the text by a seeded denoiser, then laid
  out as instruction examples are: decoder-only `[bos] inputs targets` with loss on the targets
  (prefix-LM form; with `model.attention: prefix` the batches also flag `[bos] inputs` as the
  prefix, which a prefix-LM palm model sees bidirectionally), encoder-decoder `inputs eos` ->
  `targets eos`.

The noise of an example is drawn from (mixture seed, task, draw index), so every epoch corrupts
a piece differently and a resumed stream repeats exactly the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flanctl.catalog.objectives import (
    DENOISERS,
    Denoiser,
    max_sentinels,
    max_text_length,
    noise_counts,
    sentinel_room_error,
)
from flanctl.errors import FlanctlError


@dataclass(frozen=True)
class ObjectiveLayout:
    """How an objective turns text into examples for one tokenizer, model vocabulary and row shape."""

    objective: str
    text_length: int  # tokens of raw text per example (a piece)
    sentinel_top: int  # sentinel k is sentinel_top - 1 - k
    modes: dict[str, np.ndarray]  # mode token text -> its ids


def _modes(objective: str, tokenizer) -> dict[str, np.ndarray]:
    out = {}
    for d in DENOISERS.get(objective, ()):
        if d.mode and d.mode not in out:
            out[d.mode] = np.asarray(tokenizer.encode(d.mode), np.int32)
    return out


def objective_layout(objective: str, tokenizer, mix, encoder_decoder: bool, model_vocab: int | None) -> ObjectiveLayout:
    """The text length per example that fits the row, and the sentinel ids, for `objective`."""
    modes = _modes(objective, tokenizer)
    mode_len = max((len(v) for v in modes.values()), default=0)
    row = mix.inputs_length + mix.targets_length
    bos = 0 if tokenizer.bos_id is None else 1
    if objective == "causal_lm":
        if encoder_decoder:
            raise FlanctlError("train.objective causal_lm trains a decoder-only model; an encoder-decoder model takes "
                               "span_corruption or ul2")
        n = row - bos
    else:
        if encoder_decoder:  # encoder: mode + inputs + eos; decoder: targets + eos
            n = min(max_text_length(d, mix.inputs_length - 1 - mode_len, mix.targets_length - 1) for d in DENOISERS[objective])
        else:  # one row: bos + mode + inputs + targets (the eos is the last position's target)
            n = min(max_text_length(d, row - bos - mode_len, None) for d in DENOISERS[objective])
    if n < 2:
        raise FlanctlError(f"train.objective {objective}: mixture.inputs_length/targets_length leave no room for text; make them longer")
    vocab = model_vocab or tokenizer.vocab_size
    error = sentinel_room_error(objective, max_sentinels(objective, n), vocab, tokenizer.vocab_size)
    if error:
        raise FlanctlError(error)
    return ObjectiveLayout(objective, int(n), int(vocab), modes)


def random_segmentation(rng: np.random.Generator, items: int, segments: int) -> np.ndarray:
    """`items` split into `segments` positive lengths, uniformly over such splits."""
    if segments <= 1:
        return np.asarray([items], np.int64)
    cuts = np.sort(rng.choice(np.arange(1, items), size=segments - 1, replace=False))
    return np.diff(np.concatenate([[0], cuts, [items]]))


def noise_mask(rng: np.random.Generator, n: int, density: float, mean_span: float) -> np.ndarray:
    """T5's span noise: boolean [n], noise in spans, text starting with a non-noise span."""
    noise, spans = noise_counts(n, density, mean_span)
    mask = np.zeros(n, bool)
    if spans == 0:
        return mask
    noise_len = random_segmentation(rng, noise, spans)
    keep_len = random_segmentation(rng, n - noise, spans)
    pos = 0
    for k, s in zip(keep_len, noise_len):
        pos += int(k)
        mask[pos:pos + int(s)] = True
        pos += int(s)
    return mask


def corrupt_spans(tokens: np.ndarray, mask: np.ndarray, sentinel_top: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets): each noise span -> one sentinel in the inputs; targets = sentinel + span, per span."""
    tokens = np.asarray(tokens, np.int32)
    prev = np.zeros_like(mask)
    prev[1:] = mask[:-1]
    start = mask & ~prev  # first token of each noise span
    sentinel = (sentinel_top - 1 - (np.cumsum(start) - 1)).astype(np.int32)
    inputs = np.where(start, sentinel, tokens)[~mask | start]
    pairs = np.stack([np.where(start, sentinel, -1), tokens])[:, mask]  # [sentinel or -1, token] per noise token
    flat = pairs.T.reshape(-1)
    return inputs.astype(np.int32), flat[flat >= 0].astype(np.int32)


def denoise(tokens: np.ndarray, d: Denoiser, rng: np.random.Generator, sentinel_top: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of one denoiser on a text (without the mode token)."""
    n = len(tokens)
    if d.prefix_lm:
        split = n - min(max(round(n * d.density), 1), max(n - 1, 1))
        return tokens[:split].astype(np.int32), tokens[split:].astype(np.int32)
    return corrupt_spans(tokens, noise_mask(rng, n, d.density, d.mean_span), sentinel_top)


def pick_denoiser(denoisers: tuple[Denoiser, ...], rng: np.random.Generator) -> Denoiser:
    w = np.asarray([d.weight for d in denoisers], np.float64)
    return denoisers[int(rng.choice(len(denoisers), p=w / w.sum()))]


class ObjectiveFeatures:
    """A drawn raw-text piece -> the compact features the packer takes (see `flanctl.data.stream`)."""

    def __init__(self, layout: ObjectiveLayout, features, seed: int, bos_id: int | None):
        self._layout = layout
        self._features = features  # DecoderFeatures or EncoderDecoderFeatures: (inputs, targets) -> packed arrays
        self._seed = seed
        self._pre = np.asarray([] if bos_id is None else [bos_id], np.int32)
        self._denoisers = DENOISERS.get(layout.objective, ())

    def pair(self, ex: dict) -> tuple[np.ndarray, np.ndarray, str]:
        """(inputs, targets, denoiser name) of a drawn piece; causal LM: no inputs, the text as targets."""
        text = np.asarray(ex["inputs"], np.int32)
        if self._layout.objective == "causal_lm":
            return np.zeros(0, np.int32), text, "causal_lm"
        rng = np.random.default_rng([self._seed, int(ex["task"]), int(ex["draw"])])
        d = pick_denoiser(self._denoisers, rng)
        inputs, targets = denoise(text, d, rng, self._layout.sentinel_top)
        if d.mode:
            inputs = np.concatenate([self._layout.modes[d.mode], inputs])
        return inputs, targets, d.name

    def __call__(self, ex: dict) -> dict:
        if self._layout.objective == "causal_lm":
            ids = np.concatenate([self._pre, np.asarray(ex["inputs"], np.int32)])
            code = ids * 2 + 1  # position j predicts token j+1
            if not ex.get("end", True):
                code[-1] -= 1  # a piece cut from a longer document: its last token predicts no eos
            return {"token_ids": code}
        inputs, targets, _ = self.pair(ex)
        return self._features({"inputs": inputs, "targets": targets})
