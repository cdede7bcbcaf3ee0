"""The built-in pretraining corpus: plain prose about a generated world, and procedures written out.

`generate_corpus(n, seed)` gives n documents, the same for the same (n, seed) on every machine
(string seeds to `random.Random`, no hash randomisation). Every seed describes the same world,
`the_world()` (= `World(WORLD_SEED)`): people and towns with attributes (home town, trade,
birth year, colour, pet; a town's river, founding year, goods) and relations (siblings,
friends, neighbouring towns); the seed only draws which documents are written and how.
Each fact is written in several phrasings and in shuffled order, so that a model stores it
with the entity rather than with one sentence (what lets instruction finetuning later extract
it). Procedure documents write out counting, ordering, arithmetic, dates and spelling as
running text. There are no instructions and no question/answer formats: a model pretrained on
it knows facts it was never asked about; the built-in world tasks
(`flanctl.data.builtin_tasks`) ask about them.
"""

from __future__ import annotations

import datetime as _dt
import random

CORPUS_VERSION = "3"
#: The one world every corpus seed describes (the built-in world tasks ask about it).
WORLD_SEED = 0

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


def with_article(word: str) -> str:
    """"a baker", "an owl": the word behind its indefinite article, as the corpus writes it."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def _name(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + (rng.choice(_CODAS) if i == syllables - 1 else "")
                   for i in range(syllables)).capitalize()


class World:
    """People and towns of one seed, with attributes and relations."""

    def __init__(self, seed: int, people: int = 32, towns: int = 10):
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
        for i in range(1, people, 3):  # siblings (pairs) share a family name
            a, b = self.people[i - 1], self.people[i]
            b["family"], b["sibling"], a["sibling"] = a["family"], a["name"], b["name"]
        for i, p in enumerate(self.people):  # a friend is anyone but oneself and one's sibling
            others = [q["name"] for j, q in enumerate(self.people) if j != i and q["name"] != p.get("sibling")]
            p["friend"] = rng.choice(others)


_PERSON_PHRASES = {
    "town": ("{name} lives in {town}.", "{full} lives in {town}.", "The house of {name} stands in {town}."),
    "trade": ("{name} works as {trade_a}.", "{name} earns a living as {trade_a}.", "By trade, {name} is {trade_a}."),
    "born": ("{name} was born in {born}.", "{name} came into the world in {born}."),
    "colour": ("The favourite colour of {name} is {colour}.", "{name} likes {colour} more than any other colour.",
               "{name} always wears something {colour}."),
    "pet": ("{name} keeps {pet_a} called {pet_name}.", "{name} owns {pet_a} named {pet_name}.",
            "{pet_name} is the {pet} of {name}."),
    "friend": ("{name} is a good friend of {friend}.", "{name} and {friend} are close friends.",
               "On most evenings {name} visits {friend}, an old friend."),
    "sibling": ("{name} and {sibling} are siblings of the {family} family.", "{sibling} is the sibling of {name}.",
                "{name} grew up with {sibling}, a sibling."),
}
_TOWN_PHRASES = {
    "river": ("The town of {name} lies on the {river}.", "The {river} flows through {name}."),
    "founded": ("{name} was founded in {founded}.", "The first houses of {name} were built in {founded}."),
    "goods": ("{name} is known for its {goods}.", "Traders come to {name} for its {goods}."),
    "neighbour": ("The nearest town to {name} is {neighbour}.", "From {name} it is a short walk to {neighbour}."),
}


_WORLD: list[World] = []


def the_world() -> World:
    """The world of the corpus (`World(WORLD_SEED)`), built once per process."""
    if not _WORLD:
        _WORLD.append(World(WORLD_SEED))
    return _WORLD[0]


def _person_doc(w: World, rng: random.Random) -> str:
    p = rng.choice(w.people)
    full = f"{p['name']} {p['family']}"
    slots = {**p, "full": full, "trade_a": with_article(p["trade"]), "pet_a": with_article(p["pet"])}
    facts = [rng.choice(phrases).format(**slots) for key, phrases in _PERSON_PHRASES.items() if key in p]
    rng.shuffle(facts)
    opener = rng.choice((f"This is about {full}.", f"People in {p['town']} know {full} well.", f"{full} has an ordinary life.",
                         f"{full} is one of the people of {p['town']}."))
    return " ".join([opener] + facts[: rng.randint(3, len(facts))])


def _town_doc(w: World, rng: random.Random) -> str:
    t = rng.choice(w.towns)
    residents = sorted(p["name"] for p in w.people if p["town"] == t["name"])
    facts = [rng.choice(phrases).format(**t) for phrases in _TOWN_PHRASES.values()]
    rng.shuffle(facts)
    if residents:
        facts.append(f"Among those who live in {t['name']} are {', '.join(rng.sample(residents, min(4, len(residents))))}.")
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
    """n documents of the corpus of `seed`: 70% about the world, 30% procedures written out."""
    world = the_world()
    docs = []
    for i in range(n):
        rng = random.Random(f"flanctl-corpus/{CORPUS_VERSION}/doc/{seed}/{i}")
        kind = rng.random()
        if kind < 0.5:
            parts = [_person_doc(world, rng) for _ in range(rng.randint(1, 3))]
        elif kind < 0.7:
            parts = [_town_doc(world, rng)]
        else:
            parts = [rng.choice(_PROCEDURES)(rng) for _ in range(rng.randint(1, 3))]
        docs.append(" ".join(parts))
    return docs
