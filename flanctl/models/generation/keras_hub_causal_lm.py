"""Generation and scoring for any keras-hub CausalLM preset, through keras-hub's own API.

Generation uses the task's `generate` with a keras-hub sampler (greedy, or a seeded random
sampler at the requested temperature; compiled once per temperature, its seed reset per batch)
and cuts the text at the stop sequences afterwards; scoring runs the task's forward pass
(`token_ids`, `padding_mask`) over the framed prompt and the continuation, compiled once per
shape.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from flanctl.errors import FlanctlError
from flanctl.models.compiled import CompiledModelFunction
from flanctl.models.generation.batching import bucket, right_pad
from flanctl.models.generation.engine import GenerationEngine, cut_at_stop, frame_decoder_prompt
from flanctl.models.generation.keras_hub_sampler import SamplerState
from flanctl.models.generation.tokenizers import live_tokenizer


class KerasHubCausalLMEngine(GenerationEngine):
    """The generation protocol over a keras-hub `CausalLM` (with its preprocessor)."""

    def __init__(self, model, tokenizer=None, batch_size: int = 8, frame=frame_decoder_prompt):
        import keras_hub

        if not isinstance(model, keras_hub.models.CausalLM) or isinstance(model, keras_hub.models.Seq2SeqLM):
            raise FlanctlError(
                f"KerasHubCausalLMEngine needs a keras-hub CausalLM preset; got {type(model).__name__} "
                "(Seq2SeqLM presets go through KerasHubSeq2SeqEngine: the preset family with encoder_decoder true)"
            )
        if model.preprocessor is None:
            raise FlanctlError("the preset has no preprocessor (tokenizer); save it with one, or use family palm/t5")
        self.model = model
        self.batch_size = int(batch_size)
        self.frame = frame
        self.hub_tokenizer = model.preprocessor.tokenizer
        self.tokenizer = tokenizer if tokenizer is not None else live_tokenizer(self.hub_tokenizer)
        self.sampler = SamplerState(model)
        self._forward = CompiledModelFunction(model, lambda ids, mask: model({"token_ids": ids, "padding_mask": mask}))

    def generate_batch(self, prompts, max_new_tokens, stop, temperature, seed):
        self.sampler.use(temperature, seed)  # compiles only when the temperature changes
        longest = max(len(self.tokenizer.encode(p)) for p in prompts)
        # +2 for the start token the preprocessor adds and keras-hub's end-token slot.
        max_length = bucket(longest + max_new_tokens + 2, 16)
        outs = self.model.generate(list(prompts), max_length=max_length, strip_prompt=True)
        outs = [outs] if isinstance(outs, str) else list(outs)
        texts = []
        for text in outs:
            text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
            ids = self.tokenizer.encode(text)[:max_new_tokens]
            texts.append(cut_at_stop(self.tokenizer.decode(ids), stop)[0])
        return texts

    def score_batch(self, prompts, continuations):
        rows, n_cont = [], []
        for prompt, cont in zip(prompts, continuations):
            ctx = self.frame(list(self.tokenizer.encode(prompt)), self.tokenizer)
            cont_ids = list(self.tokenizer.encode(cont))
            seq = ctx + cont_ids
            rows.append(seq)
            n_cont.append(min(len(cont_ids), len(seq) - 1))
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
