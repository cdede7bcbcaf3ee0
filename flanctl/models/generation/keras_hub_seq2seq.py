"""Generation and scoring for any keras-hub Seq2SeqLM preset (T5, BART, ...), through the task.

Prompts are framed exactly as the preset's preprocessor frames them (its encoder and decoder
packers' start/end/pad ids), but packed here from token ids: the encoder is padded to the
batch's own length bucket (not the preprocessor's fixed `encoder_sequence_length`) and an
over-long prompt keeps its end (the question of a few-shot prompt), not its start.
Generation runs the task's own compiled `generate_step` (`make_generate_function`: encoder
once, keras-hub's K/V caches, its sampler) with EOS and every single-token stop sequence as
stop ids, so a batch ends as soon as every row has stopped; texts are then cut at the stop
sequences. Scoring is one forward pass of the task per batch over `decoder start + continuation`.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from flanctl.errors import FlanctlError
from flanctl.models.compiled import CompiledModelFunction
from flanctl.models.generation.batching import bucket
from flanctl.models.generation.engine import GenerationEngine, cut_at_stop
from flanctl.models.generation.keras_hub_sampler import SamplerState
from flanctl.models.generation.tokenizers import live_tokenizer


def _ids(value, hub_tokenizer) -> list[int]:
    """A packer's start/end value (None, an id, a token string, or a list of them) as ids."""
    if value is None:
        return []
    values = value if isinstance(value, (list, tuple)) else [value]
    return [int(hub_tokenizer.token_to_id(v)) if isinstance(v, str) else int(v) for v in values]


class KerasHubSeq2SeqEngine(GenerationEngine):
    """The generation protocol over a keras-hub `Seq2SeqLM` (with its preprocessor)."""

    def __init__(self, model, tokenizer=None, batch_size: int = 8, length_multiple: int = 16, max_input_length: int = 2048):
        import keras_hub

        if not isinstance(model, keras_hub.models.Seq2SeqLM):
            raise FlanctlError(f"KerasHubSeq2SeqEngine needs a keras-hub Seq2SeqLM; got {type(model).__name__}")
        pre = model.preprocessor
        if pre is None:
            raise FlanctlError("the Seq2SeqLM preset has no preprocessor (tokenizer); save it with one (task.save_to_preset)")
        if not pre.built:
            pre.build(None)
        self.model = model
        self.batch_size = int(batch_size)
        self.hub_tokenizer = pre.tokenizer
        self.tokenizer = tokenizer if tokenizer is not None else live_tokenizer(self.hub_tokenizer)
        self.length_multiple = length_multiple
        enc, dec = pre.encoder_packer, pre.decoder_packer
        self.enc_start, self.enc_end = _ids(enc.start_value, self.hub_tokenizer), _ids(enc.end_value, self.hub_tokenizer)
        self.enc_pad = int(enc.pad_value or 0)
        self.dec_start, self.dec_pad = _ids(dec.start_value, self.hub_tokenizer), int(dec.pad_value or 0)
        if not self.dec_start:
            raise FlanctlError(f"{type(model).__name__}: the preprocessor's decoder packer has no start token to decode from")
        end = getattr(self.hub_tokenizer, "end_token_id", None)
        self.end_ids = [int(end)] if end is not None else []
        limit = getattr(model.backbone, "max_sequence_length", None)  # BART: learned positions
        self.max_input_length = int(min(max_input_length, limit)) if limit else max_input_length
        self.sampler = SamplerState(model)
        self._forward = CompiledModelFunction(model, lambda x: model(x))

    # -- batch layout ------------------------------------------------------------------
    def _encoder_batch(self, prompts: list[str]):
        keep = self.max_input_length - len(self.enc_start) - len(self.enc_end)
        rows = [self.enc_start + self.tokenizer.encode(p)[-keep:] + self.enc_end for p in prompts]
        length = min(bucket(max(len(r) for r in rows), self.length_multiple), self.max_input_length)
        ids = np.full((len(rows), length), self.enc_pad, dtype=np.int32)
        mask = np.zeros((len(rows), length), dtype=bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = True
        return ids, mask

    def _stop_ids(self, stop: list[str]) -> tuple[int, ...]:
        """EOS plus every stop sequence that is exactly one token: stopping on such a token
        never changes the text, which is cut at the stop sequence anyway."""
        ids = list(self.end_ids)
        for s in stop:
            enc = self.tokenizer.encode(s)
            if len(enc) == 1 and self.tokenizer.decode(enc) == s and enc[0] not in ids:
                ids.append(enc[0])
        return tuple(ids)

    # -- generation --------------------------------------------------------------------
    def generate_batch(self, prompts, max_new_tokens, stop, temperature, seed):
        stop_ids = self._stop_ids(stop)
        p = len(self.dec_start)
        self.sampler.use(temperature, seed)
        generate = self.model.make_generate_function()  # rebuilt by compile() when the sampler changed
        enc_ids, enc_mask = self._encoder_batch(prompts)
        dec_ids = np.full((len(prompts), p + max_new_tokens), self.dec_pad, dtype=np.int32)
        dec_ids[:, :p] = self.dec_start
        dec_mask = np.zeros(dec_ids.shape, dtype=bool)
        dec_mask[:, :p] = True
        inputs = {
            "encoder_token_ids": ops.convert_to_tensor(enc_ids), "encoder_padding_mask": ops.convert_to_tensor(enc_mask),
            "decoder_token_ids": ops.convert_to_tensor(dec_ids), "decoder_padding_mask": ops.convert_to_tensor(dec_mask),
        }
        out = generate(inputs, stop_token_ids=stop_ids)
        new = np.asarray(ops.convert_to_numpy(out["decoder_token_ids"]))[:, p:]
        texts = []
        for row in new:
            ids = [int(t) for t in row]
            for i, t in enumerate(ids):
                if t in stop_ids:
                    ids = ids[: i + (0 if t in self.end_ids else 1)]
                    break
            texts.append(cut_at_stop(self.tokenizer.decode(ids), stop)[0])
        return texts

    # -- scoring -----------------------------------------------------------------------
    def score_batch(self, prompts: list[str], continuations: list[str]) -> list[float]:
        """Summed log-probability of each continuation (decoder) given its prompt (encoder)."""
        enc_ids, enc_mask = self._encoder_batch(prompts)
        conts = [self.tokenizer.encode(c) for c in continuations]
        p = len(self.dec_start)
        width = bucket(p + max(len(c) for c in conts), self.length_multiple)
        dec_ids = np.full((len(conts), width), self.dec_pad, dtype=np.int32)
        dec_mask = np.zeros(dec_ids.shape, dtype=bool)
        for i, c in enumerate(conts):
            dec_ids[i, : p + len(c)] = self.dec_start + c
            dec_mask[i, : p + len(c)] = True
        x = {"encoder_token_ids": enc_ids, "encoder_padding_mask": enc_mask, "decoder_token_ids": dec_ids, "decoder_padding_mask": dec_mask}
        logits = np.asarray(ops.convert_to_numpy(self._forward(x))).astype(np.float64)
        top = logits.max(-1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
        # logits at decoder slot j predict the token at slot j + 1
        return [float(sum(logp[i, p - 1 + j, t] for j, t in enumerate(c))) for i, c in enumerate(conts)]
