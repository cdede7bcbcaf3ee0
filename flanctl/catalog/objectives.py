"""Facts of the training objectives: T5's span corruption and UL2's mixture of denoisers.

Pure Python (no numpy): `validate` checks sentinel room with these numbers, `plan` counts the
tokens of an objective with them, and the data room corrupts text with the same lengths.

- `instruction`: (inputs, targets) pairs of the mixture, loss on the targets (the paper's finetuning).
- `causal_lm`: raw text, loss on every token (PaLM's pretraining; cont-PaLM).
- `span_corruption`: T5 (Raffel et al. 2020, sec. 3.1.4): 15% of the tokens are noise, in spans of
  mean length 3; each noise span becomes one sentinel in the inputs, and the targets are each
  sentinel followed by its span. Sentinels are the top ids of the model's vocabulary
  (`vocab_size - 1 - k` for the k-th span), as T5's extra ids are.
- `ul2`: UL2's mixture of denoisers (Tay et al. 2022, sec. 3.1.2): R-denoisers (mean span 3 and 8,
  15% noise), X-denoisers (3 and 8 at 50%, 64 at 15% and 50%), and the S-denoiser (prefix LM, the
  last 25% of the text as target); the input starts with the paradigm's mode token ([NLU] for R,
  [NLG] for X, [S2S] for S, the names of the released UL2 checkpoint). The S-denoiser takes 20% of
  the examples and the six span denoisers share the rest equally. On a decoder-only model it is
  U-PaLM's UL2R in prefix-LM form: inputs then targets in one sequence, loss on the targets;
  with `model.attention: prefix` (palm) the inputs attend bidirectionally, as U-PaLM's prefix LM.
"""

from __future__ import annotations

from dataclasses import dataclass

OBJECTIVES = ("instruction", "causal_lm", "span_corruption", "ul2")
PRETRAINING_OBJECTIVES = ("causal_lm", "span_corruption", "ul2")

#: The built-in pretraining corpus: `source: {kind: builtin, path: corpus}`.
BUILTIN_CORPUS = "corpus"
#: Documents the built-in corpus generates when the collection gives no cap.
CORPUS_DEFAULT_DOCUMENTS = 20_000
#: Column of a raw-text source read for the pretraining objectives (map it with `columns: {text: ...}`).
TEXT_COLUMN = "text"


@dataclass(frozen=True)
class Denoiser:
    """One denoiser: span corruption (mean span, noise density) or prefix LM (`prefix_lm`)."""

    name: str
    mode: str  # mode token prepended to the inputs ('' = none)
    mean_span: float
    density: float
    weight: float
    prefix_lm: bool = False


SPAN_CORRUPTION = (Denoiser("span(3,0.15)", "", 3.0, 0.15, 1.0),)

_S_SHARE = 0.2
_SPAN = ((3.0, 0.15, "[NLU]"), (8.0, 0.15, "[NLU]"), (3.0, 0.5, "[NLG]"), (8.0, 0.5, "[NLG]"), (64.0, 0.15, "[NLG]"), (64.0, 0.5, "[NLG]"))
UL2 = tuple(
    [Denoiser(f"{'R' if m == '[NLU]' else 'X'}({mu:g},{r:g})", m, mu, r, (1 - _S_SHARE) / len(_SPAN)) for mu, r, m in _SPAN]
    + [Denoiser("S(prefix,0.25)", "[S2S]", 0.0, 0.25, _S_SHARE, prefix_lm=True)]
)

DENOISERS = {"span_corruption": SPAN_CORRUPTION, "ul2": UL2}


def noise_counts(n: int, density: float, mean_span: float) -> tuple[int, int]:
    """(noise tokens, noise spans) of a text of n tokens, as T5 rounds them."""
    if n < 2:
        return 0, 0
    noise = min(max(round(n * density), 1), n - 1)
    spans = max(round(noise / mean_span), 1)
    return noise, min(spans, noise, n - noise)


def denoised_lengths(n: int, d: Denoiser) -> tuple[int, int]:
    """(inputs, targets) token counts a text of n tokens becomes (mode token, bos/eos not counted)."""
    if d.prefix_lm:
        target = min(max(round(n * d.density), 1), max(n - 1, 1))
        return n - target, target
    noise, spans = noise_counts(n, d.density, d.mean_span)
    return n - noise + spans, noise + spans


def max_text_length(d: Denoiser, inputs_room: int, targets_room: int | None) -> int:
    """Longest text (tokens) whose denoised inputs and targets fit: encoder-decoder gives both rooms,
    decoder-only gives the whole row as `inputs_room` and None for targets (they share the row)."""
    lo, hi = 1, max(2, inputs_room * 4)
    best = 1
    while lo <= hi:
        n = (lo + hi) // 2
        a, b = denoised_lengths(n, d)
        fits = (a + b <= inputs_room) if targets_room is None else (a <= inputs_room and b <= targets_room)
        if fits:
            best, lo = n, n + 1
        else:
            hi = n - 1
    return best


def max_sentinels(objective: str, text_length: int) -> int:
    """Most sentinel ids one example of `text_length` tokens can use."""
    return max((noise_counts(text_length, d.density, d.mean_span)[1] for d in DENOISERS.get(objective, ()) if not d.prefix_lm), default=0)


def sentinels_needed(objective: str, encoder_decoder: bool, inputs_length: int, targets_length: int) -> int:
    """Most sentinel ids one example can use under `objective` with these row lengths (0 for an
    objective without spans): the room a model's vocabulary needs above the tokenizer's ids."""
    denoisers = DENOISERS.get(objective, ())
    if not denoisers:
        return 0
    if encoder_decoder:
        n = min(max_text_length(d, inputs_length - 1, targets_length - 1) for d in denoisers)
    else:
        n = min(max_text_length(d, inputs_length + targets_length - 1, None) for d in denoisers)
    return max_sentinels(objective, n)


def sentinel_room_error(objective: str, need: int, vocab: int, tokenizer_vocab: int) -> str | None:
    """The one-line refusal when `need` sentinels from the top of `vocab` would reach the
    tokenizer's ids, else None."""
    if not need or vocab - need >= tokenizer_vocab:
        return None
    return (f"train.objective {objective} takes up to {need} sentinel ids from the top of the model's vocabulary "
            f"({vocab}), which the tokenizer's {tokenizer_vocab} ids would overlap; set model.architecture.vocab_size to "
            f"at least {tokenizer_vocab + need} (a palm checkpoint's vocabulary grows on load)")
