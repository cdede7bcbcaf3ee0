"""Templates as data: YAML files of Jinja2 templates, rendered in a sandbox, in five formats.

Formats (the Flan collection's): zero-shot with and without options, few-shot with and
without options (exemplars from the same task's training split, delimiters drawn at random,
pruned to a token budget), and chain-of-thought ("Let's think step by step." ... "So the
answer is X."). A template that reaches for Python internals (`{{ ''.__class__ }}`) is refused
when the file is loaded, and the sandbox refuses it again at render time.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from flanctl.data.examples import Example
from flanctl.errors import FlanctlError

FORMATS = ("zero_shot_opts", "zero_shot_noopts", "few_shot_opts", "few_shot_noopts", "cot")
_BASE_FORMATS = ("zero_shot_opts", "zero_shot_noopts", "cot")
TEMPLATES_DIR = Path(__file__).with_name("templates")
DEFAULT_TEMPLATES = TEMPLATES_DIR / "generic.yaml"

_ENV = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


def _reaches_internals(ast: nodes.Template) -> str | None:
    """The first `_private` attribute or item a template touches, if any."""
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
    return _ENV.from_string(source)


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
    try:
        return template.render(_context(ex))
    except SecurityError as exc:
        raise FlanctlError(f"{where}: template refused by the sandbox: {exc}") from exc
    except UndefinedError as exc:
        raise FlanctlError(f"{where}: template uses an unknown variable: {exc}") from exc


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
