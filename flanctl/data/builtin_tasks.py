"""Built-in procedural tasks: seeded generators that need no download.

Every name in `flanctl.catalog.builtin` has a generator here (a test checks the two sets are
equal). A generator draws one item from a `random.Random`; `generate` turns that into a
deterministic, split-aware list of `Example`s:

- deterministic: the same (task, split, n, seed) always gives the same list;
- disjoint splits: an item belongs to train, validation or test according to a hash of its
  question text, so no question can appear in two splits, whatever the seeds;
- short answers (a few bytes), exact-match scorable, with a rationale for chain-of-thought.

The held-out tasks are built from skills the training tasks teach (letter manipulation,
arithmetic, tracking intervals, comparing letter multisets), in phrasings never trained on.

The world tasks ask about the world of the built-in pretraining corpus
(`flanctl.data.corpus.the_world()`), in instruction form, with the possible answers as options.
The world's people and towns are split in two halves. The sixteen finetuning world tasks ask
only about the first half: eight closed-book questions (home town, trade, pet, favourite colour,
friend, sibling, a town's river and goods) and eight further formats (family name, birth year,
pet's name, a town's founding year and nearest town, and three questions read backwards: who
lives in a town, whose pet has a name, which town lies on a river). The eleven held-out
`recall_*` tasks ask eleven of these kinds of question about the other half: seven of the first
eight (not siblings, who always pair across the halves, so that every held-out sibling fact is
a finetuning answer read backwards) and four of the further formats (birth year, pet's name,
pet owner, town resident). No finetuning example states a held-out fact: those are only in the
corpus's prose, so a model answers them only if pretraining taught it the facts and finetuning
taught it to answer questions about what it knows (the paper's reading of its Figure 4). World
tasks are not split by hash (`UNSPLIT_TASKS`): every split asks about the task's whole half.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import random
from collections.abc import Callable

from flanctl.catalog.builtin import BUILTIN_TASKS
from flanctl.data.corpus import COLOURS, GOODS, PETS, TRADES, the_world, with_article
from flanctl.data.examples import Example
from flanctl.errors import FlanctlError

SPLITS = ("train", "validation", "test")
# Hash buckets out of 10 that belong to each split (80/10/10).
_SPLIT_BUCKETS = {"train": range(0, 8), "validation": range(8, 9), "test": range(9, 10)}

# A small vocabulary of common concrete nouns (our own list), used by several tasks.
WORDS = (
    "apple", "river", "candle", "garden", "pencil", "window", "tiger", "orange", "basket", "planet",
    "rocket", "silver", "forest", "bridge", "monkey", "castle", "butter", "winter", "summer", "jacket",
    "ladder", "mirror", "pillow", "rabbit", "saddle", "turtle", "violin", "wallet", "yellow", "zebra",
    "anchor", "bottle", "carpet", "dinner", "engine", "falcon", "guitar", "hammer", "island", "jungle",
    "kettle", "lemon", "magnet", "needle", "oyster", "parrot", "quartz", "ribbon", "salmon", "tomato",
    "umbrella", "valley", "walnut", "cherry", "dragon", "feather", "glove", "harbor", "iron", "jelly",
    "kitten", "lizard", "meadow", "noodle", "onion", "pepper", "quilt", "rose", "spoon", "tunnel",
    "cloud", "stone", "bread", "chair", "table", "grape", "horse", "mouse", "paper", "plate",
    "sugar", "train", "whale", "clock", "brush", "coin", "drum", "flute", "lamp", "nest",
)
NAMES = ("Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Oscar", "Peggy", "Trent")
ITEMS = ("a red ball", "a blue hat", "a green book", "a yellow kite", "a white cup", "a black pen", "a purple scarf")
FRUITS = ("apple", "banana", "pear", "plum", "peach", "orange", "mango", "lemon")
ANIMALS = ("dog", "cat", "rabbit", "goat", "cow", "horse", "duck", "chicken")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

Item = tuple[str, str, str | None, list[str] | None]  # inputs, answer, rationale, options


def _plural(word: str, n: int) -> str:
    if n == 1:
        return word
    if word.endswith(("ch", "sh", "s", "x")):
        return word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _choices(rng: random.Random, answer: str, distractors, k: int = 4) -> list[str]:
    """`answer` plus up to `k - 1` distinct distractors, shuffled: the answer must be read off the list."""
    pool = [d for d in dict.fromkeys(str(d) for d in distractors) if d != answer]
    picked = rng.sample(pool, min(k - 1, len(pool))) + [answer]
    rng.shuffle(picked)
    return picked


def _near(n: int, spread: int = 5) -> list[int]:
    """Numbers close to `n` (plausible wrong answers for arithmetic)."""
    return [n + d for d in range(-spread, spread + 1) if d]


# --------------------------------------------------------------------------- train tasks


def _multistep_arithmetic(rng: random.Random) -> Item:
    a, b, c, d = (rng.randint(1, 12) for _ in range(4))
    op1, op2 = rng.choice("+-"), rng.choice("+-*")
    inner = a + b if op1 == "+" else a - b
    value = inner * c if op2 == "*" else (inner + c if op2 == "+" else inner - c)
    op3 = rng.choice("+-")
    result = value + d if op3 == "+" else value - d
    expr = f"(({a} {op1} {b}) {op2} {c}) {op3} {d}"
    rationale = f"{a} {op1} {b} = {inner}. {inner} {op2} {c} = {value}. {value} {op3} {d} = {result}."
    return f"Compute {expr}.", str(result), rationale, _choices(rng, str(result), _near(result) + [inner, value])


def _word_sorting(rng: random.Random) -> Item:
    words = rng.sample(WORDS, rng.randint(3, 4))
    ordered = sorted(words)
    return (
        "Sort these words alphabetically: " + ", ".join(words) + ".",
        " ".join(ordered),
        "Comparing first letters, then later letters, the order is " + ", ".join(ordered) + ".",
        _choices(rng, " ".join(ordered), [" ".join(words), " ".join(reversed(ordered)), " ".join(ordered[1:] + ordered[:1])]),
    )


def _object_counting(rng: random.Random) -> Item:
    kind, pool = rng.choice((("fruits", FRUITS), ("animals", ANIMALS)))
    other_pool = ANIMALS if pool is FRUITS else FRUITS
    chosen = rng.sample(pool, rng.randint(2, 3))
    counts = [rng.randint(1, 4) for _ in chosen]
    distractor = rng.choice(other_pool)
    parts = [f"{NUMBER_WORDS[n]} {_plural(w, n)}" for w, n in zip(chosen, counts)]
    parts.insert(rng.randint(0, len(parts)), f"a {distractor}")
    listing = ", ".join(parts[:-1]) + " and " + parts[-1]
    total = sum(counts)
    rationale = " + ".join(str(n) for n in counts) + f" = {total} {kind}; the {distractor} is not one of them."
    options = _choices(rng, str(total), [total + 1, total + 2, max(total - 1, 0), len(chosen), total + len(chosen)])
    return f"I have {listing}. How many {kind} do I have?", str(total), rationale, options


def _bool_expr(rng: random.Random, depth: int) -> tuple[str, bool]:
    if depth == 0 or rng.random() < 0.3:
        v = rng.random() < 0.5
        if rng.random() < 0.3:
            return f"not {v}", not v
        return str(v), v
    left, lv = _bool_expr(rng, depth - 1)
    right, rv = _bool_expr(rng, depth - 1)
    op = rng.choice(("and", "or"))
    return f"({left} {op} {right})", (lv and rv) if op == "and" else (lv or rv)


def _boolean_expressions(rng: random.Random) -> Item:
    expr, value = _bool_expr(rng, 2)
    if expr.startswith("(") and expr.endswith(")"):
        expr = expr[1:-1]
    return f"Evaluate: {expr}", str(value), f"Evaluating the innermost parts first, the expression is {value}.", ["True", "False"]


def _date_arithmetic(rng: random.Random) -> Item:
    start = _dt.date(2000, 1, 1) + _dt.timedelta(days=rng.randint(0, 9000))
    days = rng.randint(1, 40)
    later = rng.random() < 0.5
    end = start + _dt.timedelta(days=days if later else -days)
    word = "after" if later else "before"
    return (
        f"What is the date {days} days {word} {start.isoformat()}? Answer as YYYY-MM-DD.",
        end.isoformat(),
        f"Counting {days} days {word} {start.isoformat()} gives {end.isoformat()}.",
        _choices(rng, end.isoformat(), [(end + _dt.timedelta(days=d)).isoformat() for d in (-2, -1, 1, 2)] + [(start - (end - start)).isoformat()]),
    )


_PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}


def _bracket_completion(rng: random.Random) -> Item:
    stack: list[str] = []
    seq: list[str] = []
    for _ in range(rng.randint(3, 8)):
        if stack and rng.random() < 0.35:
            seq.append(_PAIRS[stack.pop()])
        else:
            b = rng.choice(tuple(_PAIRS))
            stack.append(b)
            seq.append(b)
    if not stack:
        b = rng.choice(tuple(_PAIRS))
        stack.append(b)
        seq.append(b)
    closing = " ".join(_PAIRS[b] for b in reversed(stack))
    return (
        "Close the open brackets, in order: " + " ".join(seq),
        closing,
        "The brackets still open, innermost first, are " + " ".join(reversed(stack)) + ".",
        None,
    )


def _swap_tracking(rng: random.Random) -> Item:
    people = rng.sample(NAMES, 3)
    items = rng.sample(ITEMS, 3)
    holding = dict(zip(people, items))
    setup = ", ".join(f"{p} has {i}" for p, i in holding.items())
    swaps = []
    for _ in range(rng.randint(1, 3)):
        a, b = rng.sample(people, 2)
        holding[a], holding[b] = holding[b], holding[a]
        swaps.append(f"{a} and {b} swap")
    who = rng.choice(people)
    return (
        f"{setup}. Then " + ", then ".join(swaps) + f". What does {who} have now?",
        holding[who],
        f"After the swaps {who} holds {holding[who]}.",
        list(items),
    )


def _navigation(rng: random.Random) -> Item:
    pos, heading = 0, 1  # on a line; heading +1 = forward, -1 = after turning around
    steps = []
    for _ in range(rng.randint(2, 5)):
        if steps and rng.random() < 0.3:
            heading = -heading
            steps.append("turn around")
        else:
            n = rng.randint(1, 5)
            pos += n * heading
            steps.append(f"take {n} steps")
    if pos and rng.random() < 0.5:  # walk back half the time so both answers are common
        if (-pos > 0) != (heading > 0):
            heading = -heading
            steps.append("turn around")
        steps.append(f"take {abs(pos)} steps")
        pos = 0
    back = pos == 0
    return (
        "Always face forward. " + ", ".join(steps).capitalize() + ". Are you back at the start?",
        "Yes" if back else "No",
        f"Adding the steps with their directions, you end {abs(pos)} steps from the start.",
        ["Yes", "No"],
    )


_UNITS = (("km", "m", 1000), ("m", "cm", 100), ("kg", "g", 1000), ("l", "ml", 1000), ("cm", "mm", 10), ("h", "min", 60))


def _unit_conversion(rng: random.Random) -> Item:
    big, small, factor = rng.choice(_UNITS)
    if rng.random() < 0.5:
        n = rng.randint(1, 20)
        a = n * factor
        opts = _choices(rng, str(a), [n, a * 10, a // 10 if factor > 10 else a + factor, a + factor])
        return f"Convert {n} {big} to {small}.", str(a), f"1 {big} = {factor} {small}, so {n} {big} = {a} {small}.", opts
    n = rng.randint(1, 20) * factor
    a = n // factor
    opts = _choices(rng, str(a), [n, a * 10, a + 1, max(a - 1, 0) or a + 2])
    return f"Convert {n} {small} to {big}.", str(a), f"{factor} {small} = 1 {big}, so {n} {small} = {a} {big}.", opts


def _list_operations(rng: random.Random) -> Item:
    xs = [rng.randint(0, 50) for _ in range(rng.randint(3, 6))]
    op = rng.choice(("max", "min", "sum", "reverse", "first", "last"))
    shown = "[" + ", ".join(map(str, xs)) + "]"
    if op == "max":
        q, a = f"What is the largest number in {shown}?", str(max(xs))
    elif op == "min":
        q, a = f"What is the smallest number in {shown}?", str(min(xs))
    elif op == "sum":
        q, a = f"What is the sum of {shown}?", str(sum(xs))
    elif op == "reverse":
        q, a = f"Reverse the list {shown}.", " ".join(map(str, reversed(xs)))
    elif op == "first":
        q, a = f"What is the first element of {shown}?", str(xs[0])
    else:
        q, a = f"What is the last element of {shown}?", str(xs[-1])
    if rng.random() < 0.3:  # membership, answered Yes/No
        probe = rng.choice(xs) if rng.random() < 0.5 else rng.randint(0, 50)
        yes = probe in xs
        return f"Is {probe} in the list {shown}?", "Yes" if yes else "No", f"The list {shown} {'contains' if yes else 'does not contain'} {probe}.", ["Yes", "No"]
    if op == "reverse":
        opts = _choices(rng, a, [" ".join(map(str, xs)), " ".join(map(str, sorted(xs))), " ".join(map(str, xs[1:] + xs[:1]))])
    elif op == "sum":
        opts = _choices(rng, a, _near(int(a), 3) + [max(xs)])
    else:  # the answer is one of the list's elements: options are the list itself
        opts = _choices(rng, a, xs)
    return q, a, f"Applying {op} to {shown} gives {a}.", opts


def _comparisons(rng: random.Random) -> Item:
    a = rng.randint(10, 999)
    b = a
    while b == a:
        b = rng.randint(10, 999) if rng.random() < 0.5 else int("".join(rng.sample(str(a), len(str(a)))) or a)
    big = max(a, b)
    if rng.random() < 0.5:
        yes = a > b
        return f"Is {a} larger than {b}?", "Yes" if yes else "No", f"{big} is greater than {min(a, b)}.", ["Yes", "No"]
    return f"Which number is larger: {a} or {b}?", str(big), f"{big} is greater than {min(a, b)}.", [str(a), str(b)]


def _string_edits(rng: random.Random) -> Item:
    w = rng.choice(WORDS)
    op = rng.choice(("reverse", "uppercase", "drop the vowels of"))
    if op == "reverse":
        a = w[::-1]
    elif op == "uppercase":
        a = w.upper()
    else:
        a = "".join(c for c in w if c not in "aeiou")
    edits = [w[::-1], w.upper(), "".join(c for c in w if c not in "aeiou"), w]
    return f"{op.capitalize()} the word '{w}'.", a, f"The letters of {w} are {' '.join(w)}; the result is {a}.", _choices(rng, a, edits)


def _logic_puzzles(rng: random.Random) -> Item:
    people = rng.sample(NAMES, 3)  # people[0] tallest
    clues = [f"{people[0]} is taller than {people[1]}", f"{people[1]} is taller than {people[2]}"]
    rng.shuffle(clues)
    ask = rng.choice(("tallest", "shortest"))
    ans = people[0] if ask == "tallest" else people[2]
    options = sorted(people)
    return (
        ". ".join(clues) + f". Who is the {ask}?",
        ans,
        f"From the clues the order from tallest is {', '.join(people)}, so the {ask} is {ans}.",
        options,
    )


def _to_base(n: int, base: int) -> str:
    digits = "0123456789abcdef"
    out = ""
    while True:
        n, r = divmod(n, base)
        out = digits[r] + out
        if n == 0:
            return out


_BASE_NAMES = {2: "binary", 8: "octal", 10: "decimal", 16: "hexadecimal"}


def _base_conversion(rng: random.Random) -> Item:
    n = rng.randint(2, 255)
    src, dst = rng.sample((2, 8, 10, 16), 2)
    shown, ans = _to_base(n, src), _to_base(n, dst)
    return (
        f"Convert the {_BASE_NAMES[src]} number {shown} to {_BASE_NAMES[dst]}.",
        ans,
        f"{shown} in {_BASE_NAMES[src]} is {n} in decimal, which is {ans} in {_BASE_NAMES[dst]}.",
        _choices(rng, ans, [_to_base(n, b) for b in (2, 8, 10, 16)] + [_to_base(n + 1, dst), shown]),
    )


def _sequence_continuation(rng: random.Random) -> Item:
    if rng.random() < 0.6:
        start, step = rng.randint(0, 20), rng.randint(1, 9) * rng.choice((1, 1, -1))
        seq = [start + i * step for i in range(5)]
        rule = f"add {step}"
    else:
        start, ratio = rng.randint(1, 5), rng.choice((2, 3))
        seq = [start * ratio**i for i in range(5)]
        rule = f"multiply by {ratio}"
    shown = ", ".join(map(str, seq[:4]))
    opts = _choices(rng, str(seq[4]), [seq[3], seq[4] + 1, seq[4] - 1, 2 * seq[3] - seq[2] if rule.startswith("m") else seq[3] * 2])
    return f"What comes next: {shown}, ?", str(seq[4]), f"Each term is the previous one; {rule}: {seq[3]} -> {seq[4]}.", opts


def _spelling(rng: random.Random) -> Item:
    w = rng.choice(WORDS)
    return f"Spell the word '{w}' letter by letter.", " ".join(w), f"{w} has {len(w)} letters: {' '.join(w)}.", None


def _parity(rng: random.Random) -> Item:
    n = rng.randint(0, 9999)
    a = "even" if n % 2 == 0 else "odd"
    if rng.random() < 0.5:
        ask = rng.choice(("even", "odd"))
        return f"Is {n} an {ask} number?", "Yes" if a == ask else "No", f"The last digit of {n} is {n % 10}, which is {a}.", ["Yes", "No"]
    return f"Is {n} even or odd?", a, f"The last digit of {n} is {n % 10}, which is {a}.", ["even", "odd"]


def _letter_counting(rng: random.Random) -> Item:
    w = rng.choice(WORDS)
    letter = rng.choice(w) if rng.random() < 0.85 else rng.choice("abcdefghijklmnopqrstuvwxyz")
    k = w.count(letter)
    if rng.random() < 0.4:
        return (
            f"Does the word '{w}' contain the letter '{letter}'?",
            "Yes" if k else "No",
            f"Spelled out, {w} is {' '.join(w)}; '{letter}' appears {k} times.",
            ["Yes", "No"],
        )
    return (
        f"How many times does the letter '{letter}' appear in '{w}'?",
        str(k),
        f"Spelled out, {w} is {' '.join(w)}; '{letter}' appears {k} times.",
        _choices(rng, str(k), range(5)),
    )


_COLORS = ("red", "blue", "green", "yellow", "white", "black", "purple", "brown")
_CATEGORIES = (("a fruit", FRUITS), ("an animal", ANIMALS), ("a colour", _COLORS), ("a name", NAMES))


def _category_pick(rng: random.Random) -> Item:
    """Pick the one option of a category among distractors: the answer is read off the options."""
    (label, pool), *others = rng.sample(_CATEGORIES, len(_CATEGORIES))
    answer = rng.choice(pool)
    distractors = [w for _, other in others for w in other if w not in pool]
    options = _choices(rng, answer, distractors)
    return (
        f"Which of these is {label}: {', '.join(options)}?",
        answer,
        f"{answer.capitalize()} is {label}; the others are not.",
        options,
    )


_ORDINALS = ("first", "second", "third", "fourth", "fifth")
_VERBS = (("packed", "pack"), ("bought", "buy"), ("found", "find"), ("lost", "lose"), ("painted", "paint"), ("borrowed", "borrow"))
_PERSON_VERBS = (("met", "meet"), ("called", "call"), ("visited", "visit"), ("helped", "help"))


def _anything(rng: random.Random) -> tuple[str, list[str]]:
    """One kind of thing and its pool (words, names, items, numbers), so answers vary in form."""
    kind = rng.choice(("word", "name", "item", "number"))
    pools = {"word": WORDS + FRUITS + ANIMALS, "name": NAMES, "item": ITEMS, "number": [str(n) for n in range(2, 100)]}
    return kind, list(pools[kind])


def _list_position(rng: random.Random) -> Item:
    """Read the n-th entry off a list: the answer is copied from the question (and the options)."""
    n = rng.randint(3, 5)
    entries = rng.sample(_anything(rng)[1], n)
    k = rng.randrange(n)
    where = "last" if k == n - 1 and rng.random() < 0.5 else _ORDINALS[k]
    options = _choices(rng, entries[k], entries)
    return (
        f"In the list {'; '.join(entries)}, which entry comes {where}?",
        entries[k],
        f"The entries in order are {'; '.join(entries)}. The {where} one is {entries[k]}.",
        options,
    )


def _mention_pick(rng: random.Random) -> Item:
    """Find what the sentence says: the answer is the option the question mentions."""
    who = rng.choice(NAMES)
    kind, pool = _anything(rng)
    pool = [f"{x} coins" if kind == "number" else x for x in pool if x != who]
    person = kind == "name"
    past, base = rng.choice(_PERSON_VERBS if person else _VERBS)
    thing = rng.choice(pool)
    options = _choices(rng, thing, pool)
    return (
        f"{who} {past} {thing} yesterday. {'Who' if person else 'What'} did {who} {base}?",
        thing,
        f"The sentence says that {who} {past} {thing}.",
        options,
    )


# --------------------------------------------------------------------------- world tasks


def _half(items: list, held_out: bool) -> list:
    """The finetuning half of the world's people or towns (even places) or the held-out half."""
    return items[1::2] if held_out else items[0::2]


_PERSON_QUESTIONS = {
    "town": ("Which town does {name} live in?", "In what town is the home of {name}?", "Where does {name} live?"),
    "trade": ("What does {name} do for a living?", "What is the trade of {name}?", "What work does {name} do?"),
    "pet": ("What kind of animal does {name} keep?", "Which animal is the pet of {name}?", "What pet does {name} have?"),
    "colour": ("What is the favourite colour of {name}?", "Which colour does {name} like best?",
               "What colour does {name} like most?"),
    "friend": ("Who is a good friend of {name}?", "Which of these people is a friend of {name}?"),
    "sibling": ("Who is the sibling of {name}?", "Which of these people is a sibling of {name}?"),
}
_TOWN_QUESTIONS = {
    "river": ("Which river does {name} lie on?", "What river flows through {name}?", "On which river is {name}?"),
    "goods": ("What is {name} known for?", "What do traders buy in {name}?", "Which goods is {name} famous for?"),
}


def _person_domain(attr: str, p: dict) -> list[str]:
    w = the_world()
    if attr in ("friend", "sibling"):  # other people, none of them a friend (either way round) or the sibling
        related = {p.get(attr)} | ({q["name"] for q in w.people if q["friend"] == p["name"]} if attr == "friend" else set())
        return [q["name"] for q in w.people if q["name"] != p["name"] and q["name"] not in related]
    return {"town": [t["name"] for t in w.towns], "trade": list(TRADES), "pet": list(PETS), "colour": list(COLOURS)}[attr]


def _reverse_of_finetuning(attr: str, p: dict) -> bool:
    """Whether a held-out person's `attr` answer is the reverse of a finetuning question's.

    Friendship and siblinghood read both ways ("X and Y are close friends"). If the answer is a
    finetuning-half person whose own `attr` is `p`, a finetuning example states the held-out
    fact the other way round, so the held-out question would not test pretraining alone.
    Siblings always pair across the halves, so no held-out sibling question is clean (there is
    no `recall_sibling`); about one held-out person in eight has such a friend.
    """
    if attr not in ("friend", "sibling"):
        return False
    finetuning = {q["name"]: q for q in _half(the_world().people, held_out=False)}
    other = finetuning.get(p[attr])
    return other is not None and other.get(attr) == p["name"]


def _ask_person(attr: str, held_out: bool):
    def item(rng: random.Random) -> Item:
        people = [q for q in _half(the_world().people, held_out) if attr in q]
        if held_out:
            people = [q for q in people if not _reverse_of_finetuning(attr, q)]
        p = rng.choice(people)
        answer = p[attr]
        options = _choices(rng, answer, _person_domain(attr, p))
        fact = {"town": f"{p['name']} lives in {p['town']}.", "trade": f"{p['name']} works as {with_article(p['trade'])}.",
                "pet": f"{p['name']} keeps {with_article(p['pet'])} called {p['pet_name']}.", "colour": f"The favourite colour of {p['name']} is {p['colour']}.",
                "friend": f"{p['name']} is a good friend of {p['friend']}.",
                "sibling": f"{p['name']} and {p.get('sibling')} are siblings."}[attr]
        return rng.choice(_PERSON_QUESTIONS[attr]).format(name=p["name"]), answer, fact, options

    return item


def _ask_town(attr: str, held_out: bool):
    def item(rng: random.Random) -> Item:
        towns = _half(the_world().towns, held_out)
        t = rng.choice(towns)
        # Every town has its own river, so the options come from the question's half: options
        # from both halves would teach finetuning that the held-out half's rivers are never
        # the answer, and a held-out question would then offer rivers that finetuning answered
        # with, which a model picks for having seen them as answers, not for what it knows.
        domain = [o["river"] for o in towns] if attr == "river" else list(GOODS)
        options = _choices(rng, t[attr], domain)
        fact = f"{t['name']} lies on the {t['river']}." if attr == "river" else f"{t['name']} is known for its {t['goods']}."
        return rng.choice(_TOWN_QUESTIONS[attr]).format(name=t["name"]), t[attr], fact, options

    return item


# More kinds of question about the world: the other facts the corpus states about a person or
# town (family, birth year, pet's name, a town's founding year and nearest town) and three
# questions read backwards (who lives in a town, whose pet has a name, which town lies on a
# river). The finetuning tasks ask them about the finetuning half, so that a larger mixture is
# a more varied one (the paper's task scaling). Four have a held-out counterpart about the
# other half (`recall_birth_year`, `recall_pet_name`, `recall_pet_owner`,
# `recall_town_resident`: person facts, 16 people, each stated only in the corpus's prose);
# family names are shared with a sibling across the halves, and the town questions have five
# towns a half, too few to measure, so those have none.


_MORE_PERSON_QUESTIONS = {
    "family": ("What is the family name of {name}?", "Which family does {name} belong to?"),
    "born": ("In which year was {name} born?", "When was {name} born?"),
    "pet_name": ("What is the name of the {pet} that {name} keeps?", "What is the {pet} of {name} called?"),
}
_MORE_TOWN_QUESTIONS = {
    "founded": ("In which year was {name} founded?", "When were the first houses of {name} built?"),
    "neighbour": ("Which town is nearest to {name}?", "What is the closest town to {name}?"),
}


def _ask_person_more(attr: str, held_out: bool = False):
    """A person's family name, birth year or pet's name."""
    def item(rng: random.Random) -> Item:
        people = _half(the_world().people, held_out)
        p = rng.choice(people)
        answer = str(p[attr])
        # Distractors from the question's half only (as for rivers): a held-out question
        # offering finetuning answers would let a model score by avoiding what it was
        # trained to answer about other people, not by knowing this one.
        domain = sorted({str(q[attr]) for q in people} - {answer})
        fact = {"family": f"{p['name']} {p['family']} is the full name.", "born": f"{p['name']} was born in {p['born']}.",
                "pet_name": f"{p['name']} keeps {with_article(p['pet'])} called {p['pet_name']}."}[attr]
        question = rng.choice(_MORE_PERSON_QUESTIONS[attr]).format(name=p["name"], pet=p["pet"])
        return question, answer, fact, _choices(rng, answer, domain)

    return item


def _ask_town_more(attr: str):
    """A finetuning-half town's founding year or nearest town (no held-out twin: 5 towns a half)."""
    def item(rng: random.Random) -> Item:
        w = the_world()
        t = rng.choice(_half(w.towns, held_out=False))
        answer = str(t[attr])
        domain = [str(o[attr]) for o in w.towns] if attr == "founded" else [o["name"] for o in w.towns if o is not t]
        fact = (f"{t['name']} was founded in {t['founded']}." if attr == "founded"
                else f"The nearest town to {t['name']} is {t['neighbour']}.")
        return rng.choice(_MORE_TOWN_QUESTIONS[attr]).format(name=t["name"]), answer, fact, _choices(rng, answer, domain)

    return item


def _ask_resident(held_out: bool = False):
    """Backwards: which person of the half lives in a town (of either half), among others who do not."""
    def item(rng: random.Random) -> Item:
        people = _half(the_world().people, held_out)
        p = rng.choice(people)
        options = _choices(rng, p["name"], [q["name"] for q in people if q["town"] != p["town"]])
        # A town has several residents, so the question names its candidates itself: it
        # has one answer also where a template shows no options (chain of thought).
        named = ", ".join(options[:-1]) + " or " + options[-1]
        q = rng.choice(("Which of {named} lives in {town}?", "Who has a home in {town}: {named}?"))
        fact = f"Among those who live in {p['town']} are {p['name']}."  # the corpus's wording of a town's residents
        return q.format(town=p["town"], named=named), p["name"], fact, options

    return item


def _ask_pet_owner(held_out: bool = False):
    """Backwards: whose pet has this name."""
    def item(rng: random.Random) -> Item:
        people = _half(the_world().people, held_out)
        p = rng.choice(people)
        domain = [q["name"] for q in people if q is not p]
        q = rng.choice(("Who keeps {pet_a} called {pet_name}?", "Whose {pet} is named {pet_name}?"))
        return (q.format(pet_a=with_article(p["pet"]), pet=p["pet"], pet_name=p["pet_name"]), p["name"],
                f"{p['pet_name']} is the {p['pet']} of {p['name']}.", _choices(rng, p["name"], domain))

    return item


def _river_town(rng: random.Random) -> Item:
    """Backwards: which finetuning-half town lies on a river."""
    towns = _half(the_world().towns, held_out=False)
    t = rng.choice(towns)
    q = rng.choice(("Which town lies on the {river}?", "Through which town does the {river} flow?"))
    return (q.format(river=t["river"]), t["name"], f"The {t['river']} flows through {t['name']}.",
            _choices(rng, t["name"], [o["name"] for o in towns]))


# --------------------------------------------------------------------------- held-out tasks


def _word_unscrambling(rng: random.Random) -> Item:
    w = rng.choice(WORDS)
    letters = list(w)
    while "".join(letters) == w and len(set(w)) > 1:
        rng.shuffle(letters)
    scrambled = "".join(letters)
    options = rng.sample([x for x in WORDS if x != w], 3) + [w]
    rng.shuffle(options)
    return (
        f"The letters '{scrambled}' are a shuffled word. Which word is it?",
        w,
        f"Rearranging {' '.join(scrambled)} spells {' '.join(w)}, which is {w}.",
        options,
    )


def _modular_arithmetic(rng: random.Random) -> Item:
    a, b, m = rng.randint(2, 30), rng.randint(2, 30), rng.randint(2, 9)
    op = rng.choice("+*-")
    v = a + b if op == "+" else (a * b if op == "*" else a - b)
    r = v % m
    return (
        f"What is ({a} {op} {b}) mod {m}?",
        str(r),
        f"{a} {op} {b} = {v}. {v} divided by {m} leaves remainder {r}.",
        None,
    )


_PLACES = ("the gym", "work", "the library", "the park", "a cafe", "the dentist", "school")


def _temporal_sequences(rng: random.Random) -> Item:
    who = rng.choice(NAMES)
    hours = sorted(rng.sample(range(7, 20), 6))  # 3 busy slots with one free gap among them
    busy = [(hours[0], hours[1]), (hours[2], hours[3]), (hours[4], hours[5])]
    places = rng.sample(_PLACES, 3)
    gaps = [(busy[i][1], busy[i + 1][0]) for i in range(2) if busy[i][1] < busy[i + 1][0]]
    if not gaps:
        busy[1] = (busy[1][0] + 1, busy[1][1]) if busy[1][0] + 1 < busy[1][1] else busy[1]
        gaps = [(busy[0][1], busy[1][0])] if busy[0][1] < busy[1][0] else [(busy[2][1], busy[2][1] + 1)]
    free = gaps[0]
    schedule = ", ".join(f"at {p} from {s} to {e}" for p, (s, e) in zip(places, busy))
    answer = f"{free[0]} to {free[1]}"
    options = [answer] + [f"{s} to {e}" for s, e in busy]
    rng.shuffle(options)
    return (
        f"{who} was {schedule}. The shop was open all day. When could {who} have gone to the shop?",
        answer,
        f"{who} was busy in the other intervals; the only free time is from {free[0]} to {free[1]}.",
        options,
    )


def _anagram_check(rng: random.Random) -> Item:
    w = rng.choice(WORDS)
    if rng.random() < 0.5:
        letters = list(w)
        rng.shuffle(letters)
        other = "".join(letters)
    else:
        other = rng.choice([x for x in WORDS if x != w and len(x) == len(w)] or [w + "s"])
    yes = sorted(w) == sorted(other)
    return (
        f"Do '{w}' and '{other}' use exactly the same letters?",
        "Yes" if yes else "No",
        f"Sorted, the letters are {''.join(sorted(w))} and {''.join(sorted(other))}.",
        ["Yes", "No"],
    )


GENERATORS: dict[str, Callable[[random.Random], Item]] = {
    "multistep_arithmetic": _multistep_arithmetic,
    "word_sorting": _word_sorting,
    "object_counting": _object_counting,
    "boolean_expressions": _boolean_expressions,
    "date_arithmetic": _date_arithmetic,
    "bracket_completion": _bracket_completion,
    "swap_tracking": _swap_tracking,
    "navigation": _navigation,
    "unit_conversion": _unit_conversion,
    "list_operations": _list_operations,
    "comparisons": _comparisons,
    "string_edits": _string_edits,
    "logic_puzzles": _logic_puzzles,
    "base_conversion": _base_conversion,
    "sequence_continuation": _sequence_continuation,
    "spelling": _spelling,
    "parity": _parity,
    "letter_counting": _letter_counting,
    "category_pick": _category_pick,
    "list_position": _list_position,
    "mention_pick": _mention_pick,
    "home_town": _ask_person("town", held_out=False),
    "trade": _ask_person("trade", held_out=False),
    "pet_kind": _ask_person("pet", held_out=False),
    "favourite_colour": _ask_person("colour", held_out=False),
    "friend": _ask_person("friend", held_out=False),
    "sibling": _ask_person("sibling", held_out=False),
    "town_river": _ask_town("river", held_out=False),
    "town_goods": _ask_town("goods", held_out=False),
    "family_name": _ask_person_more("family"),
    "birth_year": _ask_person_more("born"),
    "pet_name": _ask_person_more("pet_name"),
    "town_founded": _ask_town_more("founded"),
    "town_neighbour": _ask_town_more("neighbour"),
    "town_resident": _ask_resident(),
    "pet_owner": _ask_pet_owner(),
    "river_town": _river_town,
    "word_unscrambling": _word_unscrambling,
    "modular_arithmetic": _modular_arithmetic,
    "temporal_sequences": _temporal_sequences,
    "anagram_check": _anagram_check,
    "recall_home_town": _ask_person("town", held_out=True),
    "recall_trade": _ask_person("trade", held_out=True),
    "recall_pet_kind": _ask_person("pet", held_out=True),
    "recall_town_goods": _ask_town("goods", held_out=True),
    "recall_favourite_colour": _ask_person("colour", held_out=True),
    "recall_friend": _ask_person("friend", held_out=True),
    "recall_town_river": _ask_town("river", held_out=True),
    "recall_birth_year": _ask_person_more("born", held_out=True),
    "recall_pet_name": _ask_person_more("pet_name", held_out=True),
    "recall_pet_owner": _ask_pet_owner(held_out=True),
    "recall_town_resident": _ask_resident(held_out=True),
}

#: The world tasks are not split by hash: their world is small and fixed (a hash split would
#: leave a tenth of a half to a split, or none), so every split asks about the whole of the
#: task's half. What keeps the held-out measurement clean is the split of the world itself:
#: the held-out `recall_*` tasks ask about the half that no finetuning task asks about.
UNSPLIT_TASKS = frozenset(t.name for t in BUILTIN_TASKS.values() if t.category == "world knowledge")

#: Bump when a generator changes, so cached tokenized data is rebuilt.
GENERATOR_VERSION = "10"


def split_of(inputs: str) -> str:
    """The split a question belongs to, from a hash of its text (so splits never overlap)."""
    bucket = int.from_bytes(hashlib.blake2b(inputs.encode(), digest_size=4).digest(), "big") % 10
    for split, buckets in _SPLIT_BUCKETS.items():
        if bucket in buckets:
            return split
    raise AssertionError(bucket)


def generate(task: str, split: str, n: int, seed: int = 0) -> list[Example]:
    """`n` examples of built-in `task` from `split`, deterministic for `seed`.

    >>> generate("parity", "test", 1, seed=0)[0].answer in ("even", "odd")
    True
    """
    if task not in GENERATORS:
        known = ", ".join(sorted(GENERATORS))
        raise FlanctlError(f"unknown built-in task '{task}'; known tasks: {known}")
    if split not in SPLITS:
        raise FlanctlError(f"unknown split '{split}' for built-in task '{task}'; use one of {', '.join(SPLITS)}")
    gen = GENERATORS[task]
    rng = random.Random(f"{task}/{split}/{seed}")
    out: list[Example] = []
    attempts = 0
    # Rejection sampling: only items whose hash lands in this split's buckets are kept.
    while len(out) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise FlanctlError(f"built-in task '{task}' could not produce {n} '{split}' examples")
        inputs, answer, rationale, options = gen(rng)
        if task not in UNSPLIT_TASKS and split_of(inputs) != split:
            continue
        out.append(Example(inputs=inputs, targets=answer, options=options, rationale=rationale, answer=answer, task=task))
    return out
