"""`KerasPredictor`: the evals' `Predictor` protocol over flanctl's Keras models.

Text in, text out: it tokenizes prompts, batches them, runs the family's engine (cached
decoding, continuation scoring) and cuts outputs at end-of-sequence and stop sequences.

Example:
    >>> predictor = KerasPredictor(model, ByteTokenizer(), "palm", batch_size=8)
    >>> predictor.generate(["Q: 2+2?\\nA:"], max_new_tokens=16, stop=["\\n"])
    [['...']]
    >>> predictor.loglikelihood(["Q: 2+2?\\nA:"], [[" 4", " 5"]])
    [[-3.1, -7.9]]
"""

from __future__ import annotations

from flanctl.errors import FlanctlError
from flanctl.models.generation.batching import chunks
from flanctl.catalog.models import DECODER_FAMILIES


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """`text` up to the earliest stop sequence, and whether one was found."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if 0 <= i < cut:
                cut = i
    return text[:cut], cut < len(text)


def default_tokenizer(model):
    """flanctl's byte tokenizer when the model's vocabulary is the byte vocabulary (259)."""
    from flanctl.data.tokenizers import ByteTokenizer

    vocab = getattr(getattr(model, "backbone", None), "vocabulary_size", None)
    if vocab == ByteTokenizer.vocab_size:
        return ByteTokenizer()
    raise FlanctlError(
        f"no tokenizer for this model (vocabulary {vocab}): save it with "
        "save_preset(model, dir, tokenizer=...) or pass the spec's tokenizer to KerasPredictor"
    )


class KerasPredictor:
    """Batched greedy/sampled generation with a KV cache, and log-likelihood scoring."""

    def __init__(self, model, tokenizer, family: str, batch_size: int = 8):
        self.model = model
        self.family = family
        self.batch_size = int(batch_size)
        if family in DECODER_FAMILIES:
            from flanctl.models.generation.decoder_only import DecoderOnlyEngine

            self.tokenizer = tokenizer if tokenizer is not None else default_tokenizer(model)
            self.engine = DecoderOnlyEngine(model, pad_id=self.tokenizer.pad_id or 0)
        elif family == "t5":
            from flanctl.models.generation.encoder_decoder import EncoderDecoderEngine

            self.tokenizer = tokenizer if tokenizer is not None else default_tokenizer(model)
            self.engine = EncoderDecoderEngine(model, pad_id=self.tokenizer.pad_id or 0)
        elif family == "preset":
            import keras_hub

            if isinstance(model, keras_hub.models.Seq2SeqLM):
                from flanctl.models.generation.keras_hub_seq2seq import KerasHubSeq2SeqEngine

                self.engine = KerasHubSeq2SeqEngine(model, tokenizer)
            else:
                from flanctl.models.generation.keras_hub_task import KerasHubEngine

                self.engine = KerasHubEngine(model, tokenizer)
            self.tokenizer = self.engine.tokenizer
        else:
            raise FlanctlError(f"KerasPredictor: unknown family {family!r}; use palm, cont-palm, u-palm, t5 or preset")
        eos = getattr(self.tokenizer, "eos_id", None)
        self.eos_id = int(eos) if eos is not None else None

    def generate(self, prompts, max_new_tokens, stop, temperature=0.0, num_samples=1, seed=0):
        """For each prompt, `num_samples` continuations cut before EOS and the first stop."""
        if max_new_tokens <= 0:
            return [["" for _ in range(num_samples)] for _ in prompts]
        stop = [s for s in (stop or []) if s]
        if hasattr(self.engine, "generate_text"):  # keras-hub presets decode text themselves
            return self.engine.generate_text(prompts, max_new_tokens, stop, temperature, num_samples, seed, self.batch_size)
        encoded = [self._prompt_ids(p) for p in prompts]
        # Each prompt repeated num_samples times, adjacent, so one batch holds its samples.
        flat = [ids for ids in encoded for _ in range(num_samples)]
        texts: list[str] = []
        for start, batch in chunks(flat, self.batch_size):
            finished = self._finished_fn(stop)
            ids = self.engine.generate_ids(batch, max_new_tokens, temperature, seed + start, finished)
            texts.extend(self._to_text(row, stop) for row in ids)
        return [texts[i * num_samples : (i + 1) * num_samples] for i in range(len(prompts))]

    def loglikelihood(self, prompts, continuations):
        """For each prompt, the summed log-probability of each of its continuations."""
        if hasattr(self.engine, "score_text"):  # keras-hub Seq2SeqLM presets frame text themselves
            flat = [(p, c) for p, conts in zip(prompts, continuations) for c in conts]
            flat_scores: list[float] = []
            for _, batch in chunks(flat, self.batch_size):
                flat_scores.extend(self.engine.score_text([p for p, _ in batch], [c for _, c in batch]))
            it = iter(flat_scores)
            return [[next(it) for _ in conts] for conts in continuations]
        start_id = self.tokenizer.bos_id if getattr(self.tokenizer, "bos_id", None) is not None else (self.eos_id or 0)
        if hasattr(self.engine, "score_grouped"):  # the context runs once for all its continuations
            return self._loglikelihood_grouped(prompts, continuations, start_id)
        pairs, owners = [], []
        for i, (prompt, conts) in enumerate(zip(prompts, continuations)):
            ctx = self._prompt_ids(prompt)
            for c in conts:
                pairs.append((ctx, self.tokenizer.encode(c)))
                owners.append(i)
        scores: list[float] = []
        for _, batch in chunks(pairs, self.batch_size):
            scores.extend(self.engine.score(batch, start_id))
        out: list[list[float]] = [[] for _ in prompts]
        for owner, s in zip(owners, scores):
            out[owner].append(s)
        return out

    def _loglikelihood_grouped(self, prompts, continuations, start_id):
        """Batches of whole groups holding at most `batch_size` continuations (at least one
        group), taken in order of context length so that each batch pads its contexts little."""
        groups = [(self._prompt_ids(p), [self.tokenizer.encode(c) for c in conts]) for p, conts in zip(prompts, continuations)]
        order = sorted(range(len(groups)), key=lambda i: len(groups[i][0]))
        out: list[list[float]] = [[] for _ in groups]
        batch: list[int] = []

        def flush():
            for i, scores in zip(batch, self.engine.score_grouped([groups[i] for i in batch], start_id)):
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
    def _prompt_ids(self, prompt: str) -> list[int]:
        """Prompt ids framed as in training (flanctl.data.stream): decoder-only rows start
        with BOS (when the tokenizer has one); the T5 encoder input ends with EOS."""
        ids = list(self.tokenizer.encode(prompt))
        if self.family == "t5":
            return ids + ([self.eos_id] if self.eos_id is not None else [])
        bos = getattr(self.tokenizer, "bos_id", None)
        return ([int(bos)] if bos is not None else []) + ids

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
