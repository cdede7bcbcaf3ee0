"""Templates as data: YAML files of Jinja2 templates, rendered in a sandbox, in five formats.

Formats (the Flan collection's): zero-shot with and without options, few-shot with and
without options (exemplars from the same task's training split, delimiters drawn at random,
pruned to a token budget), and chain-of-thought ("Let's think step by step." ... "So the
answer is X."). A template that reaches for Python internals (`{{ ''.__class__ }}`) is refused
when the file is loaded, and the sandbox refuses it again at render time.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

from flanctl.data.examples import Example
from flanctl.errors import FlanctlError

FORMATS = ("zero_shot_opts", "zero_shot_noopts", "few_shot_opts", "few_shot_noopts", "cot")
_BASE_FORMATS = ("zero_shot_opts", "zero_shot_noopts", "cot")
TEMPLATES_DIR = Path(__file__).with_name("templates")
DEFAULT_TEMPLATES = TEMPLATES_DIR / "generic.yaml"

#: The render budget of one template on one example: output (and any string or list made on
#: the way) in characters/items, loop iterations, and wall time. A template that needs more is
#: almost surely a mistake (`range(99999)` nested twice, `'a' * 10**10`, a recursive macro).
MAX_RENDER_CHARS = 1_000_000
MAX_LOOP_ITERATIONS = 100_000
MAX_RENDER_SECONDS = 2.0
_LIPSUM_MAX_PARAGRAPHS = 100


class RenderBudgetExceeded(Exception):
    """A template went over its render budget; the message names the limit."""


class _Budget:
    """Counters of the render in progress (one per thread: data workers render in parallel)."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS
        self.iterations = 0
        self.ticks = 0

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks % 256 == 0 and time.monotonic() > self.deadline:
            raise RenderBudgetExceeded(f"rendering took more than {MAX_RENDER_SECONDS:g} s")

    def iterate(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_LOOP_ITERATIONS:
            raise RenderBudgetExceeded(f"more than {MAX_LOOP_ITERATIONS} loop iterations")
        self.tick()


_ACTIVE = threading.local()


def _budget() -> _Budget | None:
    return getattr(_ACTIVE, "budget", None)


def _sized(value):
    """`value`, unless it is a string/list/tuple/dict longer than MAX_RENDER_CHARS."""
    if isinstance(value, (str, list, tuple, dict, set)) and len(value) > MAX_RENDER_CHARS:
        raise RenderBudgetExceeded(f"a value of more than {MAX_RENDER_CHARS} characters or items")
    return value


def _check_size_args(value, name: str, args, kwargs) -> None:
    """What says how big a result will be (widths, counts, format widths, replacements) is
    bounded before the result is made; `value` is the string or list the method/filter works on."""
    if isinstance(value, str) and _FORMAT_WIDTH.search(value) and name in ("format", "format_map"):
        raise RenderBudgetExceeded(f"a format width of more than {MAX_RENDER_CHARS} characters")
    if name == "replace" and isinstance(value, str) and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]) and args[0]:
        grown = len(value) + value.count(args[0]) * (len(args[1]) - len(args[0]))
        if grown > MAX_RENDER_CHARS:
            raise RenderBudgetExceeded(f"a value of more than {MAX_RENDER_CHARS} characters or items")
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_RENDER_CHARS:
            raise RenderBudgetExceeded(f"a size argument of {arg} (more than {MAX_RENDER_CHARS})")
        if isinstance(arg, str) and _FORMAT_WIDTH.search(arg):
            raise RenderBudgetExceeded(f"a format width of more than {MAX_RENDER_CHARS} characters")


#: A width or precision of 7+ digits in a %- or {}-format string.
_FORMAT_WIDTH = re.compile(r"(?:%[-+ #0]*|\{[^{}]*:[^{}]*?)\.?\d{7,}")


class _BudgetedSandbox(SandboxedEnvironment):
    """The sandbox, plus the render budget on every call, operator and loop."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context, operator, left, right):
        budget = _budget()
        if budget is not None:
            budget.tick()
            if operator == "*":
                for seq, n in ((left, right), (right, left)):
                    if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * max(n, 0) > MAX_RENDER_CHARS:
                        raise RenderBudgetExceeded(f"a value of more than {MAX_RENDER_CHARS} characters or items")
            if operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right * max(abs(left).bit_length(), 1) > 100_000:
                raise RenderBudgetExceeded("a number of more than 100000 bits")
        return _sized(super().call_binop(context, operator, left, right))

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja's signature)
        budget = _budget()
        if budget is None:
            return super().call(__context, __obj, *args, **kwargs)
        budget.tick()
        # str.format reaches here wrapped by the sandbox (`__wrapped__` is the bound method).
        owner = getattr(__obj, "__self__", None) or getattr(getattr(__obj, "__wrapped__", None), "__self__", None)
        if isinstance(owner, (str, list, tuple, dict)):
            _check_size_args(owner, getattr(__obj, "__name__", ""), args, kwargs)
        result = _sized(super().call(__context, __obj, *args, **kwargs))
        if isinstance(owner, (list, dict, set)):
            _sized(owner)  # list.extend / append grow their owner
        return result


def _budgeted_filter(name: str, func):
    """A filter with its size arguments bounded and its result sized."""
    skip = 2 if hasattr(func, "jinja_pass_arg") else 1  # (context/env,) value

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        budget = _budget()
        if budget is None:
            # Jinja folds constant filter calls at compile time, outside any budget: decline
            # (it then calls the filter at render time, within the budget).
            raise RenderBudgetExceeded("filters run only while rendering")
        budget.tick()
        if len(args) >= skip:
            _check_size_args(args[skip - 1], name, args[skip:], kwargs)
        return _sized(func(*args, **kwargs))

    return wrapper


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002 (jinja's names)
    if n > _LIPSUM_MAX_PARAGRAPHS or max > 1000:
        raise RenderBudgetExceeded(f"lipsum of more than {_LIPSUM_MAX_PARAGRAPHS} paragraphs of 1000 words")
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


def _budgeted_iter(iterable):
    """Every `for` loop of a template iterates through this (see `_BudgetLoops`)."""
    budget = _budget()
    for item in iterable:
        if budget is not None:
            budget.iterate()
        yield item


def _budgeted_join(*parts):
    """The `~` operator, with its result sized (doubling a string in a loop grows fast)."""
    budget = _budget()
    if budget is not None:
        budget.tick()
    return _sized("".join(str(p) for p in parts))


_ITER_NAME = "__flanctl_budgeted_iter"
_JOIN_NAME = "__flanctl_budgeted_join"


class _BudgetLoops(NodeTransformer):
    """Rewrites `for x in E` to iterate `_budgeted_iter(E)` and `a ~ b` to `_budgeted_join(a, b)`."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        node.iter = nodes.Call(nodes.Name(_ITER_NAME, "load"), [node.iter], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Call:
        self.generic_visit(node)
        return nodes.Call(nodes.Name(_JOIN_NAME, "load"), list(node.nodes), [], None, None, lineno=node.lineno)


_ENV = _BudgetedSandbox(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
_ENV.filters = {name: _budgeted_filter(name, f) for name, f in _ENV.filters.items()}
_ENV.globals.update({"lipsum": _lipsum, _ITER_NAME: _budgeted_iter, _JOIN_NAME: _budgeted_join})


def _reaches_internals(ast: nodes.Template) -> str | None:
    """The first `_private` attribute, item or name a template touches, if any."""
    for node in ast.find_all(nodes.Name):
        if node.name.startswith("__"):
            return node.name
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            return node.attr
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and str(node.arg.value).startswith("_"):
            return str(node.arg.value)
    return None


def compile_template(source: str, where: str):
    """A sandboxed Jinja2 template, or a one-line FlanctlError saying where and why not."""
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise FlanctlError(f"{where}: template syntax error: {exc.message} (line {exc.lineno})") from exc
    bad = _reaches_internals(ast)
    if bad is not None:
        raise FlanctlError(f"{where}: template refused: it reaches the internal attribute '{bad}'; templates may only use the example fields")
    return _ENV.from_string(_BudgetLoops().visit(ast))


@dataclass(frozen=True)
class Variant:
    """One template: how to render the input and the target."""

    inputs: object
    targets: object


@dataclass(frozen=True)
class TemplateSet:
    """Named variants per base format, loaded from one YAML file."""

    name: str
    variants: dict[str, tuple[Variant, ...]]
    fingerprint: str
    path: str


def load_templates(path: str | Path | None = None) -> TemplateSet:
    """Load and check a template YAML file (default: the generic templates shipped with flanctl)."""
    p = Path(path).resolve() if path else DEFAULT_TEMPLATES
    try:
        stamp = p.stat().st_mtime_ns  # an edited file is a different cache entry
    except OSError:
        stamp = -1
    return _load_templates_cached(str(p), stamp)


@lru_cache(maxsize=64)
def _load_templates_cached(path: str, stamp: int) -> TemplateSet:
    p = Path(path)
    if not p.exists():
        raise FlanctlError(f"templates file {p} does not exist; give a YAML file of templates (see {DEFAULT_TEMPLATES.name})")
    text = p.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise FlanctlError(f"{p}: not valid YAML: {exc}".replace("\n", " ")) from exc
    table = data.get("templates") if isinstance(data, dict) else None
    if not isinstance(table, dict) or not table:
        raise FlanctlError(f"{p}: expected a 'templates:' mapping of format -> list of {{inputs, targets}}")
    variants: dict[str, tuple[Variant, ...]] = {}
    for fmt, items in table.items():
        if fmt not in _BASE_FORMATS:
            raise FlanctlError(f"{p}: templates.{fmt}: unknown format; use {', '.join(_BASE_FORMATS)} (few-shot reuses the zero-shot ones)")
        if not isinstance(items, list) or not items:
            raise FlanctlError(f"{p}: templates.{fmt}: expected a non-empty list of {{inputs, targets}}")
        out = []
        for i, item in enumerate(items):
            where = f"{p}: templates.{fmt}[{i}]"
            if not isinstance(item, dict) or set(item) != {"inputs", "targets"}:
                raise FlanctlError(f"{where}: expected exactly the keys 'inputs' and 'targets'")
            out.append(Variant(compile_template(str(item["inputs"]), where + ".inputs"), compile_template(str(item["targets"]), where + ".targets")))
        variants[fmt] = tuple(out)
    if "zero_shot_noopts" not in variants:
        raise FlanctlError(f"{p}: templates.zero_shot_noopts is required (every other format falls back to it)")
    fp = hashlib.sha256(text.encode()).hexdigest()[:16]
    return TemplateSet(name=str(data.get("name", p.stem)), variants=variants, fingerprint=fp, path=str(p))


def _context(ex: Example) -> dict:
    options = list(ex.options or [])
    return {
        "inputs": ex.inputs,
        "targets": ex.targets,
        "answer": ex.answer if ex.answer is not None else ex.targets,
        "options": options,
        "options_text": "OPTIONS:\n" + "\n".join(f"- {o}" for o in options) if options else "",
        "rationale": ex.rationale or "",
    }


def _render(template, ex: Example, where: str) -> str:
    """Render within the budget; each way out is one line naming the file, the task and the limit."""
    stop = f"{where}: task {ex.task}: template stopped"
    fix = "simplify the template"
    _ACTIVE.budget = _Budget()
    try:
        size, parts = 0, []
        for part in template.generate(_context(ex)):
            size += len(part)
            if size > MAX_RENDER_CHARS:
                raise RenderBudgetExceeded(f"output of more than {MAX_RENDER_CHARS} characters")
            parts.append(part)
        return "".join(parts)
    except RenderBudgetExceeded as exc:
        raise FlanctlError(f"{stop}: {exc} (render budget per example); {fix}") from None
    except RecursionError:
        raise FlanctlError(f"{stop}: recursion too deep (a macro that calls itself without end?); {fix}") from None
    except MemoryError:
        raise FlanctlError(f"{stop}: out of memory while rendering; {fix}") from None
    except OverflowError as exc:
        raise FlanctlError(f"{stop}: number too large ({exc}); {fix}") from None
    except SecurityError as exc:
        raise FlanctlError(f"{where}: template refused by the sandbox: {exc}") from exc
    except UndefinedError as exc:
        raise FlanctlError(f"{where}: template uses an unknown variable: {exc}") from exc
    finally:
        _ACTIVE.budget = None


def effective_format(fmt: str, ex: Example, templates: TemplateSet) -> str:
    """The format actually used: options formats need options, CoT needs a rationale."""
    if fmt in ("zero_shot_opts", "few_shot_opts") and not ex.options:
        fmt = fmt.replace("_opts", "_noopts")
    if fmt == "cot" and (not ex.rationale or "cot" not in templates.variants):
        fmt = "zero_shot_noopts"
    if fmt == "zero_shot_opts" and "zero_shot_opts" not in templates.variants:
        fmt = "zero_shot_noopts"
    return fmt


@dataclass(frozen=True)
class Rendered:
    """A templated example: the model input, the target, the format used and the shots kept."""

    inputs: str
    targets: str
    format: str
    shots: int = 0


def _pick_exemplars(pool: Sequence[Example], ex: Example, shots: int, rng: random.Random) -> list[Example]:
    """`shots` exemplars from `pool`, never `ex` itself; O(shots), since pools hold up to a cap of 100k."""
    if shots <= 0 or not pool:
        return []
    picks = rng.sample(range(len(pool)), min(len(pool), shots + 1))
    return [pool[i] for i in picks if pool[i].inputs != ex.inputs][:shots]


def render_example(
    ex: Example,
    fmt: str,
    templates: TemplateSet,
    rng: random.Random,
    exemplars: Sequence[Example] = (),
    delimiters: Sequence[tuple[str, str]] = (("Q: ", "A: "),),
    shots: int = 0,
    count_tokens: Callable[[str], int] | None = None,
    token_budget: int | None = None,
) -> Rendered:
    """Render `ex` in format `fmt`.

    Few-shot: `shots` exemplars are taken from `exemplars` (the task's training pool, minus
    `ex` itself), each rendered with the same zero-shot variant and joined with a delimiter
    pair drawn from `delimiters`; exemplars are dropped from the end until the prompt fits
    `token_budget` tokens as counted by `count_tokens`.
    """
    fmt = effective_format(fmt, ex, templates)
    where = f"templates {templates.path}"
    if fmt in ("zero_shot_opts", "zero_shot_noopts", "cot"):
        variant = rng.choice(templates.variants[fmt])
        return Rendered(_render(variant.inputs, ex, where), _render(variant.targets, ex, where), fmt)

    base = "zero_shot_opts" if fmt == "few_shot_opts" and "zero_shot_opts" in templates.variants else "zero_shot_noopts"
    variant = rng.choice(templates.variants[base])
    q, a = delimiters[rng.randrange(len(delimiters))] if delimiters else ("", "")
    chosen = _pick_exemplars(exemplars, ex, shots, rng)
    # The zero-shot variant's trailing newline is dropped: here the delimiter marks the answer.
    blocks = [f"{q}{_render(variant.inputs, e, where).rstrip()}\n{a}{_render(variant.targets, e, where)}" for e in chosen]
    query = f"{q}{_render(variant.inputs, ex, where).rstrip()}\n{a}".rstrip(" ")
    target = _render(variant.targets, ex, where)
    if a.endswith(" "):
        target = " " + target  # keep "A: X" spacing when the delimiter's space was trimmed off the prompt
    if count_tokens is not None and token_budget is not None:
        sizes = [count_tokens(b) + 2 for b in blocks]  # +2 for the blank-line separator
        total = count_tokens(query) + sum(sizes)
        while blocks and total > token_budget:
            total -= sizes.pop()
            blocks.pop()
    prompt = "\n\n".join(blocks + [query])
    return Rendered(prompt, target, fmt, len(blocks))
