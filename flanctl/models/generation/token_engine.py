"""`TokenEngine`: the shared base of the engines that decode and score token ids themselves.

It turns the text-level protocol into ids and back: prompts are encoded and framed as in
training (the family's `frame_prompt`: BOS first for decoder-only, EOS last for an encoder),
generation stops a row at EOS or once a stop sequence appears in its tail, and outputs are
cut before EOS and the first stop sequence. Scoring passes whole groups of continuations that
share a prompt, so that an engine can run the prompt once for all of them (MMLU's four
answers after one long few-shot prompt).

A subclass implements `generate_ids` and `score_grouped` over its model.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

from flanctl.models.generation.engine import GenerationEngine, cut_at_stop, frame_decoder_prompt
from flanctl.models.generation.tokenizers import default_tokenizer


class TokenEngine(GenerationEngine):
    """Text-level protocol over an id-level engine (flanctl's palm and t5 task models).

    `tokenizer` None means the model's default (the byte tokenizer for a 259-token vocabulary);
    `frame(ids, tokenizer)` frames an encoded prompt as training did.
    """

    def __init__(self, model, tokenizer=None, batch_size: int = 8, frame: Callable = frame_decoder_prompt):
        self.model = model
        self.tokenizer = tokenizer if tokenizer is not None else default_tokenizer(model)
        self.batch_size = int(batch_size)
        self.frame = frame
        self.pad_id = int(getattr(self.tokenizer, "pad_id", None) or 0)
        eos = getattr(self.tokenizer, "eos_id", None)
        self.eos_id = int(eos) if eos is not None else None
        bos = getattr(self.tokenizer, "bos_id", None)
        #: The id an empty context is scored after (decoder-only: BOS, else EOS).
        self.context_start_id = int(bos) if bos is not None else (self.eos_id or 0)

    # -- what a subclass implements ------------------------------------------------------
    @abstractmethod
    def generate_ids(
        self,
        prompts: list[list[int]],
        max_new_tokens: int,
        temperature: float,
        seed: int,
        finished: Callable[[int, list[int]], bool],
    ) -> list[list[int]]:
        """New token ids per (framed) prompt; a row stops once `finished(row, ids)` says so."""

    @abstractmethod
    def score_grouped(self, groups: list[tuple[list[int], list[list[int]]]], start_id: int) -> list[list[float]]:
        """Per (context ids, continuation ids) group, each continuation's summed
        log-probability (one batch: all continuations of all groups)."""

    # -- the protocol ------------------------------------------------------------------
    def prompt_ids(self, prompt: str) -> list[int]:
        """Prompt ids framed as in training (see `frame`)."""
        return self.frame(list(self.tokenizer.encode(prompt)), self.tokenizer)

    def generate_batch(self, prompts, max_new_tokens, stop, temperature, seed):
        ids = self.generate_ids([self.prompt_ids(p) for p in prompts], max_new_tokens, temperature, seed, self._finished_fn(stop))
        return [self._to_text(row, stop) for row in ids]

    def score_batch(self, prompts, continuations):
        groups = [(self.prompt_ids(p), [list(self.tokenizer.encode(c))]) for p, c in zip(prompts, continuations)]
        return [scores[0] for scores in self.score_grouped(groups, self.context_start_id)]

    def loglikelihood(self, prompts: list[str], continuations: list[list[str]]) -> list[list[float]]:
        """Batches of whole groups holding at most `batch_size` continuations (at least one
        group), taken in order of context length so that each batch pads its contexts little."""
        groups = [(self.prompt_ids(p), [list(self.tokenizer.encode(c)) for c in conts]) for p, conts in zip(prompts, continuations)]
        order = sorted(range(len(groups)), key=lambda i: len(groups[i][0]))
        out: list[list[float]] = [[] for _ in groups]
        batch: list[int] = []

        def flush():
            for i, scores in zip(batch, self.score_grouped([groups[i] for i in batch], self.context_start_id)):
                out[i] = scores

        for i in order:
            if batch and sum(len(groups[j][1]) for j in batch) + len(groups[i][1]) > self.batch_size:
                flush()
                batch = []
            batch.append(i)
        if batch:
            flush()
        return out

    # -- helpers -----------------------------------------------------------------------
    def _finished_fn(self, stop: list[str]):
        eos = self.eos_id
        tok = self.tokenizer

        def finished(row: int, ids: list[int]) -> bool:
            if eos is not None and ids and ids[-1] == eos:
                return True
            if stop:
                # Only the tail can hold a stop sequence that just appeared.
                tail = tok.decode(ids[-(max(len(s) for s in stop) * 4 + 8):])
                return any(s in tail for s in stop)
            return False

        return finished

    def _to_text(self, ids: list[int], stop: list[str]) -> str:
        if self.eos_id is not None and self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        text, _ = cut_at_stop(self.tokenizer.decode(ids), stop)
        return text
