"""`KerasPredictor`: the evals' `Predictor` over a loaded model, built from its family's engine.

The family decides the engine (cached decoding for palm and flanctl's t5, keras-hub's own
generate for presets); every engine speaks the one protocol of
`flanctl.models.generation.engine.GenerationEngine`, so this class only forwards to it. It sits
above both the families and the engines (the engines never import the families).
Callers that hold a family already can use `family.engine(model, tokenizer, batch_size)`
directly: it is a `Predictor` too.

Example:
    >>> predictor = KerasPredictor(model, ByteTokenizer(), "palm", batch_size=8)
    >>> predictor.generate(["Q: 2+2?\\nA:"], max_new_tokens=16, stop=["\\n"])
    [['...']]
    >>> predictor.loglikelihood(["Q: 2+2?\\nA:"], [[" 4", " 5"]])
    [[-3.1, -7.9]]
"""

from __future__ import annotations


class KerasPredictor:
    """Batched greedy/sampled generation and log-likelihood scoring through the family's engine.

    `family` is a family name (a preset's kind is then read from the model's class) or a
    `ModelFamily`; `tokenizer` None means the model's own (a preset's keras-hub tokenizer, or
    the byte tokenizer for a 259-token palm/t5 model).
    """

    def __init__(self, model, tokenizer, family, batch_size: int = 8):
        from flanctl.models.families import get_family

        self.model = model
        self.model_family = get_family(family, model=model)
        self.family = self.model_family.name
        self.batch_size = int(batch_size)
        self.engine = self.model_family.engine(model, tokenizer, batch_size=self.batch_size)
        self.tokenizer = self.engine.tokenizer

    def generate(self, prompts, max_new_tokens, stop, temperature=0.0, num_samples=1, seed=0):
        """For each prompt, `num_samples` continuations cut before EOS and the first stop."""
        return self.engine.generate(prompts, max_new_tokens, stop, temperature=temperature, num_samples=num_samples, seed=seed)

    def loglikelihood(self, prompts, continuations):
        """For each prompt, the summed log-probability of each of its continuations."""
        return self.engine.loglikelihood(prompts, continuations)
