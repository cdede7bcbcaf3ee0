"""Answer extraction rules, with the tricky cases each rule has to get right."""

from decimal import Decimal

import pytest

from flanctl.evals.answers import (
    bbh_canonical,
    bbh_cot_answer,
    bbh_direct_answer,
    mgsm_answer,
    mmlu_letter,
    number_key,
    parse_number,
    squad_normalize,
)
from flanctl.evals.suites.base import majority


# ----------------------------------------------------------------------------- BBH CoT
@pytest.mark.parametrize(
    "text, expected",
    [
        (" Step one. So the answer is (D).", "(D)"),
        ("So the answer is True.", "True"),
        ("... So The Answer Is valid.", "valid"),  # phrase matched in any case
        ("So the answer is yes.\n\nQ: next question", "yes"),  # only the first line after it
        ("So the answer is ] } ].  ", "] } ]"),  # stripped, one trailing dot removed
        ("So the answer is 3.5..", "3.5."),  # exactly one trailing "." removed
        ("So the answer is    -219.", "-219"),
        ("the answer is (A). But the answer is (B).", "(A). But the answer is (B)"),  # first occurrence, first line
        ("  (C)  \nmore text", "(C)"),  # no phrase: direct rule on the text
        ("", ""),
    ],
)
def test_bbh_cot_answer(text, expected):
    assert bbh_cot_answer(text) == expected


def test_bbh_direct_answer_strips_and_takes_first_line():
    assert bbh_direct_answer("  False  ") == "False"
    assert bbh_direct_answer(" (B)\n\nQ: another") == "(B)"
    assert bbh_direct_answer("\n\n valid") == "valid"


@pytest.mark.parametrize(
    "answer, target, expected",
    [
        ("(B", "(B)", "(B)"),  # bracket missing
        ("B", "(B)", "(B)"),
        ("B)", "(B)", "(B)"),
        ("(b)", "(B)", "(b)"),  # case-sensitive: lower-case letter is not an option letter
        ("(B) 12/14/1937", "(B)", "(B) 12/14/1937"),  # extra text is not forgiven
        ("B", "B", "B"),  # non-option targets are compared as they are
        ("true", "True", "true"),  # case matters for free answers
        (None, "(A)", None),
    ],
)
def test_bbh_canonical(answer, target, expected):
    assert bbh_canonical(answer, target) == expected


# ----------------------------------------------------------------------------- MMLU
@pytest.mark.parametrize(
    "text, cot, expected",
    [
        (" B", False, "B"),
        (" (B", False, "B"),
        ("(C) because", False, "C"),
        ("D. Canberra", False, "D"),
        ("Based on the map", False, None),  # a word starting with B is not an answer
        ("", False, None),
        (" E", False, None),
        ("Let us see. So the answer is (A).", True, "A"),
        ("The answer is B.", True, "B"),
        ("the answer is (C", True, "C"),
        (" A", True, "A"),  # CoT without the phrase falls back to the direct rule
        ("I think the answer is unclear", True, None),
    ],
)
def test_mmlu_letter(text, cot, expected):
    assert mmlu_letter(text, cot=cot) == expected


# ----------------------------------------------------------------------------- TyDiQA
def test_squad_normalize():
    assert squad_normalize("The  Moon!") == "moon"
    assert squad_normalize("an Apple, a pear") == "apple pear"
    assert squad_normalize("Hämeenlinnassa.") == "hämeenlinnassa"
    # Non-Latin scripts keep their letters; only ASCII punctuation is removed.
    assert squad_normalize(" البحر المتوسط. ") == "البحر المتوسط"
    assert squad_normalize("বুড়িগঙ্গা") == "বুড়িগঙ্গা"


# ----------------------------------------------------------------------------- MGSM
@pytest.mark.parametrize(
    "text, lang, expected",
    [
        ("5 + 6 = 11. The answer is 11.", "en", "11"),
        ("It costs 2,125 dollars. The answer is 2,125.", "en", "2125"),
        ("The answer is $1,234,567.", "en", "1234567"),
        ("The answer is 18.0", "en", "18"),
        ("The answer is -3.", "en", "-3"),
        ("The answer is 0.50", "en", "0.5"),
        ("Roger has 5, then 6, so 11 in total", "en", "11"),  # no phrase: last number
        ("no numbers at all", "en", None),
        ("5 + 6 = 11. Die Antwort lautet 11.", "de", "11"),
        ("Die Antwort ist 70.000", "de", "70"),  # "." is a decimal point, not a German thousands mark
        ("La réponse est 1 000.", "fr", "1000"),  # French thousands space
        ("Ответ — 42.", "ru", "42"),
        ("5 + 6 = 11。答案是 11。", "zh", "11"),
        ("3+2で5台の車があるはずです。答えは5です。", "ja", "5"),
        ("5 + 6 = 11 คำตอบคือ 11", "th", "11"),
        ("5 + 6 = 11। উত্তর হল 11।", "bn", "11"),
        ("উত্তর হল ১২।", "bn", "12"),  # Bengali digits
        ("దశలవారీగా సమాధానం: 5+6=11. సమాధానం 11.", "te", "11"),  # label also says సమాధానం: last phrase wins
        ("5 + 6 = 11. Jibu ni 11.", "sw", "11"),
        ("Pasos: 3 + 4 = 7. La respuesta es 7 manzanas y 2 peras.", "es", "7"),  # first number after the phrase
        ("答えは１５です", "ja", "15"),  # full-width digits
    ],
)
def test_mgsm_answer(text, lang, expected):
    assert number_key(mgsm_answer(text, lang)) == expected


def test_numbers_compare_as_numbers():
    assert number_key(parse_number("2,125")) == number_key(parse_number("2125"))
    assert number_key(parse_number("18.0")) == number_key(parse_number("18"))
    assert number_key(parse_number("100")) == "100"  # not "1E+2"
    assert parse_number("abc") is None
    assert parse_number("1.5") == Decimal("1.5")


# ----------------------------------------------------------------------------- voting
def test_majority_vote_and_ties():
    assert majority(["11", "12", "11"]) == "11"
    assert majority(["12", "11"]) == "12"  # tie: first seen wins
    assert majority([None, "", "7", None]) == "7"  # empty answers do not vote
    assert majority([None, None]) is None
