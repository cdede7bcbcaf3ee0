"""The built-in pretraining corpus: plain prose about a generated world, and procedures written out.

`generate_corpus(n, seed)` gives n documents, the same for the same (n, seed) on every machine
(string seeds to `random.Random`, no hash randomisation). The world (`World(seed)`) holds
people and towns with attributes (home town, trade, birth year, colour, pet; a town's river,
founding year, goods) and relations (siblings, friends, neighbouring towns); documents describe
them in varied sentences. Procedure documents write out counting, ordering, arithmetic, dates
and spelling as running text. There are no instructions and no question/answer formats: a model
pretrained on it knows facts it was never asked about.
"""

from __future__ import annotations

import datetime as _dt
import random

CORPUS_VERSION = "1"

_ONSETS = ("b", "br", "c", "d", "dr", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "st", "t", "th", "v", "w", "z")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou")
_CODAS = ("", "n", "r", "l", "s", "th", "m", "k", "nd", "x")
TRADES = ("baker", "potter", "weaver", "smith", "fisher", "miller", "carpenter", "healer", "scribe", "farmer", "brewer", "mason")
COLOURS = ("red", "blue", "green", "yellow", "white", "black", "purple", "orange", "grey", "brown")
PETS = ("dog", "cat", "goat", "owl", "horse", "rabbit", "parrot", "tortoise")
GOODS = ("salt", "wool", "apples", "copper", "glass", "honey", "timber", "cheese", "linen", "pottery")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
                "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty")
WORDS = ("apple", "river", "candle", "garden", "pencil", "window", "tiger", "basket", "planet", "rocket", "silver", "forest",
         "bridge", "castle", "butter", "winter", "summer", "ladder", "mirror", "rabbit", "violin", "anchor", "bottle", "carpet",
         "engine", "falcon", "guitar", "hammer", "island", "kettle", "lemon", "magnet", "needle", "parrot", "ribbon", "tomato",
         "valley", "walnut", "cherry", "meadow", "tunnel", "cloud", "stone", "bread", "chair", "horse", "paper", "sugar")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _name(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + (rng.choice(_CODAS) if i == syllables - 1 else "")
                   for i in range(syllables)).capitalize()


class World:
    """People and towns of one seed, with attributes and relations."""

    def __init__(self, seed: int, people: int = 48, towns: int = 12):
        rng = random.Random(f"flanctl-corpus/{CORPUS_VERSION}/world/{seed}")
        names: set[str] = set()

        def fresh(syl: int) -> str:
            while True:
                n = _name(rng, syl)
                if n not in names:
                    names.add(n)
                    return n

        self.towns = []
        for _ in range(towns):
            self.towns.append({"name": fresh(2), "river": fresh(2) + " River", "founded": rng.randint(1100, 1850),
                               "goods": rng.choice(GOODS)})
        for i, t in enumerate(self.towns):
            t["neighbour"] = self.towns[(i + 1 + rng.randrange(towns - 1)) % towns]["name"]
        self.people = []
        for _ in range(people):
            self.people.append({"name": fresh(2), "family": fresh(2), "town": rng.choice(self.towns)["name"],
                                "trade": rng.choice(TRADES), "born": rng.randint(1950, 2005), "colour": rng.choice(COLOURS),
                                "pet": rng.choice(PETS), "pet_name": fresh(1)})
        for i, p in enumerate(self.people):  # siblings share a family name; friends are anyone else
            if i % 3 == 1:
                p["family"] = self.people[i - 1]["family"]
                p["sibling"] = self.people[i - 1]["name"]
                self.people[i - 1]["sibling"] = p["name"]
            p["friend"] = self.people[(i + 1 + rng.randrange(people - 1)) % people]["name"]


def _person_doc(w: World, rng: random.Random) -> str:
    p = rng.choice(w.people)
    full = f"{p['name']} {p['family']}"
    facts = [
        f"{full} lives in {p['town']}, where {p['name']} works as {_a(p['trade'])}.",
        f"{p['name']} was born in {p['born']}.",
        f"The favourite colour of {p['name']} is {p['colour']}.",
        f"{p['name']} keeps {_a(p['pet'])} called {p['pet_name']}.",
        f"{p['name']} is a good friend of {p['friend']}.",
    ]
    if "sibling" in p:
        facts.append(f"{p['name']} and {p['sibling']} are siblings of the {p['family']} family.")
    rng.shuffle(facts)
    opener = rng.choice((f"This is about {full}.", f"People in {p['town']} know {full} well.", f"{full} has an ordinary life."))
    return " ".join([opener] + facts[: rng.randint(3, len(facts))])


def _town_doc(w: World, rng: random.Random) -> str:
    t = rng.choice(w.towns)
    residents = sorted(p["name"] for p in w.people if p["town"] == t["name"])
    facts = [
        f"The town of {t['name']} lies on the {t['river']}.",
        f"{t['name']} was founded in {t['founded']}.",
        f"{t['name']} is known for its {t['goods']}.",
        f"The nearest town to {t['name']} is {t['neighbour']}.",
    ]
    rng.shuffle(facts)
    if residents:
        facts.append(f"Among those who live in {t['name']} are {', '.join(residents[:4])}.")
    return " ".join(facts)


def _counting_doc(rng: random.Random) -> str:
    a = rng.randint(0, 12)
    b = a + rng.randint(3, 8)
    words = [NUMBER_WORDS[i] for i in range(a, min(b, 20) + 1)]
    thing = rng.choice(WORDS)
    k = rng.randint(2, 7)
    listing = ", ".join([thing] * k)
    return (f"Counting up from {a} to {min(b, 20)} goes {', '.join(str(i) for i in range(a, min(b, 20) + 1))}, "
            f"or in words {', '.join(words)}. In the list {listing} the word {thing} appears {k} times, "
            f"which is {NUMBER_WORDS[k]} times.")


def _ordering_doc(rng: random.Random) -> str:
    words = rng.sample(WORDS, rng.randint(3, 6))
    nums = rng.sample(range(1, 100), rng.randint(3, 6))
    return (f"Sorted alphabetically, the words {', '.join(words)} come out as {', '.join(sorted(words))}. "
            f"The numbers {', '.join(map(str, nums))} in increasing order are {', '.join(map(str, sorted(nums)))}; "
            f"the largest of them is {max(nums)} and the smallest is {min(nums)}.")


def _arithmetic_doc(rng: random.Random) -> str:
    a, b = rng.randint(2, 60), rng.randint(2, 40)
    c, d = rng.randint(2, 12), rng.randint(2, 12)
    e = rng.randint(1, 9)
    return (f"Adding {b} to {a} gives {a + b}, and taking {b} away from {a} leaves {a - b}. "
            f"{c} times {d} is {c * d}. Working out ({c} + {d}) * {e} step by step: first {c} + {d} = {c + d}, "
            f"then {c + d} * {e} = {(c + d) * e}.")


def _date_doc(rng: random.Random) -> str:
    start = _dt.date(2000, 1, 1) + _dt.timedelta(days=rng.randint(0, 9000))
    n = rng.randint(1, 40)
    later = start + _dt.timedelta(days=n)
    return (f"The day after {start.isoformat()} is {(start + _dt.timedelta(days=1)).isoformat()}. "
            f"Counting {n} days on from {start.isoformat()} lands on {later.isoformat()}, "
            f"a {later.strftime('%A')} in {MONTHS[later.month - 1]} {later.year}. "
            f"{MONTHS[start.month - 1]} is month number {start.month} of the year.")


def _spelling_doc(rng: random.Random) -> str:
    word = rng.choice(WORDS)
    return (f"The word {word} is spelled {'-'.join(word)}. It has {len(word)} letters, starts with {word[0]} and "
            f"ends with {word[-1]}. Backwards it reads {word[::-1]}.")


_PROCEDURES = (_counting_doc, _ordering_doc, _arithmetic_doc, _date_doc, _spelling_doc)


def generate_corpus(n: int, seed: int = 0) -> list[str]:
    """n documents of the corpus of `seed`: half about the world, half procedures written out."""
    world = World(seed)
    docs = []
    for i in range(n):
        rng = random.Random(f"flanctl-corpus/{CORPUS_VERSION}/doc/{seed}/{i}")
        kind = rng.random()
        if kind < 0.3:
            parts = [_person_doc(world, rng) for _ in range(rng.randint(1, 3))]
        elif kind < 0.45:
            parts = [_town_doc(world, rng)]
        else:
            parts = [rng.choice(_PROCEDURES)(rng) for _ in range(rng.randint(1, 3))]
        docs.append(" ".join(parts))
    return docs
