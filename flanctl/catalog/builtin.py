"""Built-in procedural tasks: names, one-line descriptions, whether they have answer options.

These tasks need no download, so the quickstart and the tests can finetune and evaluate on
them offline. `flanctl/data/builtin_tasks.py` implements a generator for exactly these names
(a test checks both ways). The held-out tasks are never trained on: the `builtin` eval suite
uses them to measure generalisation to unseen tasks, as the paper's held-out benchmarks do.
The "world knowledge" tasks ask about the world the built-in pretraining corpus describes: a
model answers the held-out ones only by combining what pretraining taught it with the
question answering finetuning taught it (the paper's reading of its Figure 4).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinTask:
    """One procedural task: its name, what it asks, and whether answers come with options."""

    name: str
    description: str
    has_options: bool
    category: str


def _t(name: str, description: str, has_options: bool, category: str) -> BuiltinTask:
    return BuiltinTask(name, description, has_options, category)


#: Tasks the `builtin` collection trains on.
BUILTIN_TRAIN: tuple[BuiltinTask, ...] = (
    _t("multistep_arithmetic", "Evaluate a nested integer expression such as ((3 + 4) * 2 - 5).", True, "arithmetic"),
    _t("word_sorting", "Sort a list of words alphabetically.", True, "string manipulation"),
    _t("object_counting", "Count the objects of a kind in a sentence listing possessions.", True, "counting"),
    _t("boolean_expressions", "Evaluate a boolean expression of True/False with not/and/or.", True, "logic"),
    _t("date_arithmetic", "Give the date N days before or after a given date (YYYY-MM-DD).", True, "arithmetic"),
    _t("bracket_completion", "Close the open brackets of a sequence of ()[]{}<> in order.", False, "string manipulation"),
    _t("swap_tracking", "Track who holds which item after a sequence of pairwise swaps.", True, "tracking"),
    _t("navigation", "Decide whether a sequence of steps and turns returns to the start.", True, "tracking"),
    _t("unit_conversion", "Convert a quantity between metric units (e.g. km to m, g to kg).", True, "arithmetic"),
    _t("list_operations", "Apply an operation (max, min, sum, reverse, first, last) to a list of integers.", True, "lists"),
    _t("comparisons", "Say which of two numbers is larger.", True, "comparison"),
    _t("string_edits", "Apply an edit (reverse, uppercase, drop vowels) to a word.", True, "string manipulation"),
    _t("logic_puzzles", "Order people from clues like 'A is taller than B'.", True, "logic"),
    _t("base_conversion", "Convert an integer between bases 2, 8, 10 and 16.", True, "arithmetic"),
    _t("sequence_continuation", "Give the next term of an arithmetic or geometric sequence.", True, "lists"),
    _t("spelling", "Spell a word letter by letter, separated by spaces.", False, "string manipulation"),
    _t("parity", "Say whether an integer is even or odd.", True, "comparison"),
    _t("letter_counting", "Count how often a letter occurs in a word.", True, "counting"),
    _t("category_pick", "Pick the one option of a category (fruit, animal, colour, name) among distractors.", True, "classification"),
    _t("list_position", "Give the entry at a position (first, second, ..., last) of a short list.", True, "retrieval"),
    _t("mention_pick", "Say which of the options a sentence mentions (what someone packed, bought, ...).", True, "retrieval"),
    _t("home_town", "Closed-book: the town a person of the corpus's world lives in (finetuning half).", True, "world knowledge"),
    _t("trade", "Closed-book: a person's trade (finetuning half of the world).", True, "world knowledge"),
    _t("pet_kind", "Closed-book: the kind of pet a person keeps (finetuning half of the world).", True, "world knowledge"),
    _t("favourite_colour", "Closed-book: a person's favourite colour (finetuning half of the world).", True, "world knowledge"),
    _t("friend", "Closed-book: a friend of a person (finetuning half of the world).", True, "world knowledge"),
    _t("sibling", "Closed-book: a person's sibling (finetuning half of the world).", True, "world knowledge"),
    _t("town_river", "Closed-book: the river a town lies on (finetuning half of the world).", True, "world knowledge"),
    _t("town_goods", "Closed-book: what a town is known for (finetuning half of the world).", True, "world knowledge"),
    _t("family_name", "Closed-book: a person's family name (finetuning half of the world).", True, "world knowledge"),
    _t("birth_year", "Closed-book: the year a person was born (finetuning half of the world).", True, "world knowledge"),
    _t("pet_name", "Closed-book: the name of a person's pet (finetuning half of the world).", True, "world knowledge"),
    _t("town_founded", "Closed-book: the year a town was founded (finetuning half of the world).", True, "world knowledge"),
    _t("town_neighbour", "Closed-book: the town nearest to a town (finetuning half of the world).", True, "world knowledge"),
    _t("town_resident", "Closed-book, read backwards: which of some people lives in a town (finetuning half).", True, "world knowledge"),
    _t("pet_owner", "Closed-book, read backwards: who keeps the pet of a given name (finetuning half).", True, "world knowledge"),
    _t("river_town", "Closed-book, read backwards: which town lies on a river (finetuning half).", True, "world knowledge"),
)

#: Tasks never trained on; the `builtin` eval suite scores them (exact match or option accuracy).
BUILTIN_HELD_OUT: tuple[BuiltinTask, ...] = (
    _t("word_unscrambling", "Recover a word from its scrambled letters (the word list is given as options).", True, "string manipulation"),
    _t("modular_arithmetic", "Compute (a op b) mod m for small integers.", False, "arithmetic"),
    _t("temporal_sequences", "Given a schedule of activities, say when a person was free.", True, "tracking"),
    _t("anagram_check", "Say whether two words are anagrams of each other.", True, "string manipulation"),
    _t("recall_home_town", "Closed-book: the home town of a person of the held-out half of the world (only the corpus says).", True, "world knowledge"),
    _t("recall_trade", "Closed-book: the trade of a person of the held-out half (only the corpus says).", True, "world knowledge"),
    _t("recall_pet_kind", "Closed-book: the kind of pet a person of the held-out half keeps (only the corpus says).", True, "world knowledge"),
    _t("recall_town_goods", "Closed-book: what a town of the held-out half is known for (only the corpus says).", True, "world knowledge"),
    _t("recall_favourite_colour", "Closed-book: the favourite colour of a person of the held-out half (only the corpus says).", True, "world knowledge"),
    _t("recall_friend", "Closed-book: a friend of a person of the held-out half (only the corpus says; never a finetuning answer read backwards).", True, "world knowledge"),
    _t("recall_town_river", "Closed-book: the river a town of the held-out half lies on (only the corpus says).", True, "world knowledge"),
    _t("recall_birth_year", "Closed-book: the year a person of the held-out half was born (only the corpus says).", True, "world knowledge"),
    _t("recall_pet_name", "Closed-book: the name of the pet of a person of the held-out half (only the corpus says).", True, "world knowledge"),
    _t("recall_pet_owner", "Closed-book, read backwards: which person of the held-out half keeps the pet of a given name.", True, "world knowledge"),
    _t("recall_town_resident", "Closed-book, read backwards: which of some people of the held-out half lives in a town.", True, "world knowledge"),
)

#: Names only, in catalog order (the data room's generators implement exactly these).
BUILTIN_TRAIN_TASKS: tuple[str, ...] = tuple(t.name for t in BUILTIN_TRAIN)
BUILTIN_HELD_OUT_TASKS: tuple[str, ...] = tuple(t.name for t in BUILTIN_HELD_OUT)
#: name -> BuiltinTask for every built-in task.
BUILTIN_TASKS: dict[str, BuiltinTask] = {t.name: t for t in BUILTIN_TRAIN + BUILTIN_HELD_OUT}

assert not set(BUILTIN_TRAIN_TASKS) & set(BUILTIN_HELD_OUT_TASKS), "train and held-out tasks must be disjoint"
