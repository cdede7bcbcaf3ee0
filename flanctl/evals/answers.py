"""Answer extraction and normalisation: the rules that turn model text into a comparable answer.

Each rule follows the paper's protocol (Chung et al. 2022, Appendix D) and the original
benchmarks' scorers; where a rule has to pick between readings, the choice is written next to it.
"""

from __future__ import annotations

import re
import string
import unicodedata
from decimal import Decimal, InvalidOperation

# ----------------------------------------------------------------------------- shared

_ANSWER_IS = re.compile(r"the answer is", re.IGNORECASE)


def first_line(text: str) -> str:
    """The first line of `text` after leading whitespace, stripped (stop sequences may be missing)."""
    return text.lstrip().split("\n", 1)[0].strip()


def after_answer_is(text: str) -> str | None:
    """Text after the first "the answer is" (any case), or None when the phrase is absent."""
    match = _ANSWER_IS.search(text)
    return text[match.end():] if match else None


# ----------------------------------------------------------------------------- BBH

_LETTER_OPTION = re.compile(r"^\(([A-Z])\)$")
_LOOSE_LETTER = re.compile(r"^\(?([A-Z])\)?$")


def bbh_cot_answer(text: str) -> str:
    """CoT answer: after "the answer is", first line, one trailing "." removed, stripped.

    Without the phrase the whole output is read with the direct rule (first line, stripped):
    a model that skips the reasoning and answers outright is scored on that answer.
    """
    tail = after_answer_is(text)
    if tail is None:
        return bbh_direct_answer(text)
    answer = tail.strip().split("\n", 1)[0].strip()
    if answer.endswith("."):
        answer = answer[:-1]
    return answer.strip()


def bbh_direct_answer(text: str) -> str:
    """Direct answer: the stripped output (its first line, since nothing follows a direct answer)."""
    return first_line(text)


def bbh_canonical(answer: str | None, target: str) -> str | None:
    """Case-sensitive answer, except that "(B", "B)" and "B" count as "(B)" when the target is an option letter."""
    if answer is None:
        return None
    if _LETTER_OPTION.match(target):
        loose = _LOOSE_LETTER.match(answer)
        if loose:
            return f"({loose.group(1)})"
    return answer


# ----------------------------------------------------------------------------- MMLU

_MMLU_LETTER = re.compile(r"^\(?([A-D])(?:[).:\s]|$)")
_MMLU_BARE_OPTION = re.compile(r"^\(?([A-D])\)?\.?$")


def mmlu_letter(text: str, cot: bool) -> str | None:
    """The chosen letter A-D.

    Direct: the first line's leading letter, with or without brackets ("(B", "B.", "B) foo").
    CoT: the letter after "the answer is"; without that phrase only an output that is nothing
    but an option ("(B)", "B.") counts. A rationale cut before its answer gives None: reading
    its first letter would turn every rationale that starts with the article "A" into (A).
    """
    if cot:
        tail = after_answer_is(text)
        if tail is None:
            bare = _MMLU_BARE_OPTION.match(text.strip())
            return bare.group(1) if bare else None
        text = tail
    match = _MMLU_LETTER.match(first_line(text))
    return match.group(1) if match else None


# ----------------------------------------------------------------------------- TyDiQA (SQuAD)


def squad_normalize(text: str) -> str:
    """SQuAD v1.1 normalisation: lower case, no punctuation, no English articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


# ----------------------------------------------------------------------------- MGSM

# The phrase before the final answer in each language's exemplars (`mgsm/exemplars.json`);
# German exemplars use both forms.
MGSM_ANSWER_PHRASES: dict[str, tuple[str, ...]] = {
    "en": ("The answer is",),
    "de": ("Die Antwort lautet", "Die Antwort ist"),
    "es": ("La respuesta es",),
    "fr": ("La réponse est",),
    "ru": ("Ответ —", "Ответ:", "Ответ"),
    "zh": ("答案是",),
    "ja": ("答えは",),
    "th": ("คำตอบคือ",),
    "sw": ("Jibu ni",),
    "bn": ("উত্তর হল",),
    "te": ("సమాధానం",),
}

# A number with optional sign, thousands groups (",", or a space / no-break space between
# groups of three as French writes them), and decimals.
_NUMBER = re.compile(r"-?\d{1,3}(?:(?:,|[ \u00a0\u202f])\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?|-?\.\d+")


def _ascii_digits(text: str) -> str:
    """Map every Unicode decimal digit (Bengali, Thai, full-width, ...) to ASCII."""
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() and not ch.isascii() else ch for ch in text)


def parse_number(text: str) -> Decimal | None:
    """A number as a Decimal ("2,125" -> 2125, "18.0" -> 18, "1 000" -> 1000), or None."""
    cleaned = re.sub(r"[,\s\u00a0\u202f]", "", _ascii_digits(text))
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    return value.normalize() if value.is_finite() else None


def numbers_in(text: str) -> list[str]:
    """All number strings in `text`, in order."""
    return _NUMBER.findall(_ascii_digits(text))


def mgsm_answer(text: str, lang: str) -> Decimal | None:
    """The first number after the language's "the answer is" phrase (its last occurrence),
    else the last number in the text, else None."""
    phrases = MGSM_ANSWER_PHRASES.get(lang, ()) + MGSM_ANSWER_PHRASES["en"]
    lowered = text.lower()
    best = -1
    best_end = -1
    for phrase in phrases:
        pos = lowered.rfind(phrase.lower())
        if pos > best:
            best, best_end = pos, pos + len(phrase)
    if best >= 0:
        found = numbers_in(text[best_end:])
        if found:
            return parse_number(found[0])
    found = numbers_in(text)
    return parse_number(found[-1]) if found else None


def number_key(value: Decimal | None) -> str | None:
    """A hashable, canonical form of a number for comparison and voting ("18.0" and "18" agree)."""
    if value is None:
        return None
    value = value.normalize()
    # Decimal("1E+2") prints as 1E+2; quantize integers so that equal numbers print alike.
    if value == value.to_integral_value():
        return str(value.quantize(Decimal(1)))
    return str(value)
