"""The one generation protocol every family's engine speaks, and the text conventions it shares.

A family's `engine(model, tokenizer)` returns a `GenerationEngine`: text in, text out
(`generate`), and summed log-probabilities of given continuations (`loglikelihood`) — the
evals' `Predictor` protocol, so an engine can be handed to the evals as it is. The base class
does what every engine does alike (no new tokens, empty stop strings, `num_samples` copies of
each prompt next to each other, batches of `batch_size` with the seed offset by the batch's
start, results regrouped per prompt); an engine implements one batch of each:
`generate_batch` and `score_batch`. Engines that decode token ids themselves (palm, flanctl's
t5) share `TokenEngine` (flanctl.models.generation.token_engine); keras-hub presets, whose task
frames text through its own preprocessor, implement the two batch methods directly.

This module imports neither Keras nor any engine, so every engine can import it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from flanctl.models.generation.batching import chunks


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """`text` up to the earliest stop sequence, and whether one was found."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if 0 <= i < cut:
                cut = i
    return text[:cut], cut < len(text)


def frame_decoder_prompt(ids: list[int], tokenizer) -> list[int]:
    """A decoder-only prompt as training frames it (flanctl.data.stream): BOS first, when the
    tokenizer has one."""
    bos = getattr(tokenizer, "bos_id", None)
    return ([int(bos)] if bos is not None else []) + list(ids)


def frame_encoder_prompt(ids: list[int], tokenizer) -> list[int]:
    """An encoder input as training frames it (flanctl.data.stream): terminated by EOS."""
    eos = getattr(tokenizer, "eos_id", None)
    return list(ids) + ([int(eos)] if eos is not None else [])


class GenerationEngine(ABC):
    """Batched generation and continuation scoring over one loaded model.

    Subclasses set `tokenizer` (flanctl's interface: encode/decode, pad/eos/bos ids) and
    `batch_size`, and implement `generate_batch` and `score_batch`.
    """

    tokenizer: object
    batch_size: int = 8

    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int,
        stop: list[str],
        temperature: float = 0.0,
        num_samples: int = 1,
        seed: int = 0,
    ) -> list[list[str]]:
        """For each prompt, `num_samples` continuations (greedy at temperature 0), each cut
        before end-of-sequence and the first stop sequence, without the prompt."""
        if max_new_tokens <= 0:
            return [["" for _ in range(num_samples)] for _ in prompts]
        stop = [s for s in (stop or []) if s]
        # Each prompt repeated num_samples times, adjacent, so one batch holds its samples.
        flat = [p for p in prompts for _ in range(num_samples)]
        texts: list[str] = []
        for start, batch in chunks(flat, self.batch_size):
            texts.extend(self.generate_batch(batch, int(max_new_tokens), stop, float(temperature), seed + start))
        return [texts[i * num_samples : (i + 1) * num_samples] for i in range(len(prompts))]

    def loglikelihood(self, prompts: list[str], continuations: list[list[str]]) -> list[list[float]]:
        """For each prompt, the summed log-probability of each of its continuations."""
        flat = [(p, c) for p, conts in zip(prompts, continuations) for c in conts]
        scores: list[float] = []
        for _, batch in chunks(flat, self.batch_size):
            scores.extend(self.score_batch([p for p, _ in batch], [c for _, c in batch]))
        it = iter(scores)
        return [[next(it) for _ in conts] for conts in continuations]

    @abstractmethod
    def generate_batch(self, prompts: list[str], max_new_tokens: int, stop: list[str], temperature: float, seed: int) -> list[str]:
        """One continuation per prompt of one batch (stop sequences already non-empty)."""

    @abstractmethod
    def score_batch(self, prompts: list[str], continuations: list[str]) -> list[float]:
        """Summed log-probability of `continuations[i]` after `prompts[i]`, one batch."""
