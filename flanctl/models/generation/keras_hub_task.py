"""Generation and scoring for any keras-hub CausalLM preset, through keras-hub's own API.

Generation uses the task's `generate` with a keras-hub sampler (greedy, or a seeded random
sampler at the requested temperature) and cuts the text at the stop sequences afterwards;
scoring runs the task's forward pass (`token_ids`, `padding_mask`) compiled once per shape.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from flanctl.errors import FlanctlError
from flanctl.models.compiled import CompiledModelFunction
from flanctl.models.generation.batching import bucket, chunks, right_pad


class KerasHubEngine:
    """Wraps a keras-hub `CausalLM` (with its preprocessor) behind the predictor's engine API."""

    def __init__(self, model, tokenizer=None):
        import keras_hub

        if not isinstance(model, keras_hub.models.CausalLM):
            raise FlanctlError(
                f"family 'preset' evaluation supports keras-hub CausalLM presets; got {type(model).__name__} "
                "(a Seq2SeqLM preset can be trained, but evaluate it with --predictions)"
            )
        if model.preprocessor is None:
            raise FlanctlError("the preset has no preprocessor (tokenizer); save it with one, or use family palm/t5")
        self.model = model
        self.hub_tokenizer = model.preprocessor.tokenizer
        if tokenizer is None:
            from flanctl.data.tokenizers import PresetTokenizer

            tokenizer = PresetTokenizer.__new__(PresetTokenizer)  # wrap the live tokenizer, no reload
            tokenizer._tok = self.hub_tokenizer
            tokenizer.vocab_size = int(self.hub_tokenizer.vocabulary_size())
            tokenizer.pad_id = int(getattr(self.hub_tokenizer, "pad_token_id", None) or 0)
            end = getattr(self.hub_tokenizer, "end_token_id", None)
            tokenizer.eos_id = int(end) if end is not None else None
            start = getattr(self.hub_tokenizer, "start_token_id", None)
            tokenizer.bos_id = int(start) if start is not None else None
            tokenizer.fingerprint = "preset-live"
        self.tokenizer = tokenizer
        self._forward = CompiledModelFunction(model, lambda ids, mask: model({"token_ids": ids, "padding_mask": mask}))

    def generate_text(self, prompts, max_new_tokens, stop, temperature, num_samples, seed, batch_size):
        import keras_hub

        from flanctl.models.generation.predictor import cut_at_stop

        flat = [p for p in prompts for _ in range(num_samples)]
        texts: list[str] = []
        for start, batch in chunks(flat, batch_size):
            if temperature <= 0:
                sampler = keras_hub.samplers.GreedySampler()
            else:
                sampler = keras_hub.samplers.RandomSampler(temperature=float(temperature), seed=seed + start)
            self.model.compile(sampler=sampler)
            longest = max(len(self.tokenizer.encode(p)) for p in batch)
            # +2 for the start token the preprocessor adds and keras-hub's end-token slot.
            max_length = bucket(longest + max_new_tokens + 2, 16)
            outs = self.model.generate(list(batch), max_length=max_length, strip_prompt=True)
            outs = [outs] if isinstance(outs, str) else list(outs)
            for text in outs:
                text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
                ids = self.tokenizer.encode(text)[:max_new_tokens]
                texts.append(cut_at_stop(self.tokenizer.decode(ids), stop)[0])
        return [texts[i * num_samples : (i + 1) * num_samples] for i in range(len(prompts))]

    def score(self, pairs, start_id: int) -> list[float]:
        rows, n_cont = [], []
        for ctx, cont in pairs:
            seq = list(ctx) + list(cont)
            rows.append(seq)
            n_cont.append(min(len(cont), len(seq) - 1))
        length = bucket(max(len(r) for r in rows), 16)
        ids, valid = right_pad(rows, length, self.tokenizer.pad_id or 0)
        logits = np.asarray(ops.convert_to_numpy(self._forward(ids, valid.astype(np.int32)))).astype(np.float64)
        top = logits.max(-1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
        out = []
        for i, (row, n) in enumerate(zip(rows, n_cont)):
            end = len(row) - 1
            out.append(float(sum(logp[i, j, row[j + 1]] for j in range(end - n, end))))
        return out
