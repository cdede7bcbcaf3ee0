"""Generation and scoring for the evals: one engine protocol, one engine per kind of model.

    engine.py             GenerationEngine (the protocol), cut_at_stop, prompt framing
    token_engine.py       TokenEngine: shared base of the engines that decode token ids
    decoder_only.py       DecoderOnlyEngine (palm families)
    encoder_decoder.py    EncoderDecoderEngine (flanctl's packed t5)
    keras_hub_causal_lm.py, keras_hub_seq2seq.py   keras-hub CausalLM / Seq2SeqLM presets

A family's `engine(model, tokenizer)` picks the engine (flanctl.models.families); the engines
know nothing of families. `flanctl.models.KerasPredictor` wraps a family's engine for the evals.
"""

from flanctl.models.generation.engine import GenerationEngine, cut_at_stop
from flanctl.models.generation.token_engine import TokenEngine

__all__ = ["GenerationEngine", "TokenEngine", "cut_at_stop"]
