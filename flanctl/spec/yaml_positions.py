"""Safe YAML loading that remembers where every key and value came from.

PyYAML's `SafeLoader` is the only loader used: a `!!python/object` (or any other unknown
tag) is refused by its constructor before anything is built, so no spec can run code.
On top of it, `PositionLoader` records the 1-based line and column of each mapping key and
value and of each sequence item, so that a validation error at a path such as
`('train', 'steps')` can be reported as `file:line:col`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from flanctl.errors import SpecError

# A path into the spec data: mapping keys and list indexes, as pydantic's error `loc`.
Path_ = tuple[Any, ...]

# Anchors and aliases can make a small text describe a huge tree ("billion laughs");
# walking it for positions (and validating it) must stay bounded.
MAX_NODES = 200_000


@dataclass(frozen=True)
class Mark:
    """A place in a source: a file (or a `--set` override) and a 1-based line and column."""

    file: str
    line: int | None = None
    col: int | None = None

    def error(self, message: str) -> SpecError:
        return SpecError(message, self.file, self.line, self.col)


@dataclass(frozen=True)
class NodePos:
    """Where a value sits: the mark of its key (None for list items and the root) and of the value."""

    key: Mark | None
    value: Mark

    @property
    def best_key(self) -> Mark:
        """The key if there is one (errors about a field point at its name), else the value."""
        return self.key or self.value


Positions = dict[Path_, NodePos]


def _mark(file: str, m: yaml.Mark | None) -> Mark:
    if m is None:
        return Mark(file)
    return Mark(file, m.line + 1, m.column + 1)


class PositionLoader(yaml.SafeLoader):
    """SafeLoader that keeps, for every mapping and list it builds, the marks of its entries.

    The marks are stored by the id of the built container in `self.entry_marks`; the
    containers stay alive in the returned document, so the ids stay valid while it does.
    """

    def __init__(self, stream: str, file: str):
        super().__init__(stream)
        self.file = file
        self.entry_marks: dict[int, dict[Any, tuple[Mark | None, Mark]]] = {}
        self.nodes_built = 0

    def construct_yaml_map(self, node: yaml.MappingNode):  # type: ignore[override]
        data: dict = {}
        yield data
        self._refuse_duplicate_keys(node)
        data.update(self.construct_mapping(node))  # flattens `<<` merge keys into node.value
        marks: dict[Any, tuple[Mark | None, Mark]] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node)
            # Later duplicates win in the dict, so they win here too.
            marks[key] = (_mark(self.file, key_node.start_mark), _mark(self.file, value_node.start_mark))
        self.entry_marks[id(data)] = marks

    def _refuse_duplicate_keys(self, node: yaml.MappingNode) -> None:
        """A key written twice in one mapping silently drops the first value in YAML; refuse it.

        Keys that come in through `<<: *anchor` merges may be overridden (that is their point),
        so only the mapping's own scalar keys are compared, before merging.
        """
        seen: dict[tuple[str, str], yaml.Mark] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            ident = (key_node.tag, key_node.value)
            if ident in seen:
                first = seen[ident]
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key_node.value}' (first at line {first.line + 1}); keep one", key_node.start_mark)
            seen[ident] = key_node.start_mark

    def construct_yaml_seq(self, node: yaml.SequenceNode):  # type: ignore[override]
        data: list = []
        yield data
        data.extend(self.construct_sequence(node))
        self.entry_marks[id(data)] = {
            i: (None, _mark(self.file, item.start_mark)) for i, item in enumerate(node.value)
        }

    def construct_object(self, node, deep=False):  # type: ignore[override]
        self.nodes_built += 1
        if self.nodes_built > MAX_NODES:
            raise yaml.constructor.ConstructorError(None, None, f"document too large (more than {MAX_NODES} nodes)", node.start_mark)
        return super().construct_object(node, deep=deep)


PositionLoader.add_constructor("tag:yaml.org,2002:map", PositionLoader.construct_yaml_map)
PositionLoader.add_constructor("tag:yaml.org,2002:seq", PositionLoader.construct_yaml_seq)


def _yaml_error(file: str, exc: yaml.YAMLError) -> SpecError:
    """One-line SpecError at the YAML problem's mark (1-based)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    text = f"{context}, {problem}" if context and problem and context not in problem else problem
    if "could not determine a constructor for the tag" in text:
        text = f"{text} (Python and other custom tags are refused; write plain YAML)"
    message = _one_line(f"invalid YAML: {text}")
    if mark is None:
        return SpecError(message, file)
    return SpecError(message, file, mark.line + 1, mark.column + 1)


def _reader_error(file: str, text: str, exc: yaml.reader.ReaderError) -> SpecError:
    """A control character YAML does not allow, placed by its index in the text."""
    pos = exc.position if isinstance(exc.position, int) else 0
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    char = exc.character
    shown = f"#x{ord(char):04x}" if isinstance(char, str) else f"#x{char:04x}" if isinstance(char, int) else "?"
    return SpecError(f"invalid YAML: unacceptable character {shown} (control characters are not allowed)", file, line, col)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def load_yaml_text(text: str, file: str) -> tuple[Any, Positions, NodePos]:
    """Parse one YAML document; return (data, positions by path, position of the root).

    Raises `SpecError` at the offending mark for syntax errors, refused tags, several
    documents in one file, recursive aliases and documents too large to walk.
    """
    try:
        loader = PositionLoader(text, file)  # the reader checks every character here
    except yaml.reader.ReaderError as exc:
        raise _reader_error(file, text, exc) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}, NodePos(None, Mark(file, 1, 1))
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(file, exc) from None
    except RecursionError:
        raise SpecError("invalid YAML: nested too deeply", file) from None
    finally:
        loader.dispose()
    root = NodePos(None, _mark(file, node.start_mark))
    positions: Positions = {(): root}
    _collect(data, (), loader.entry_marks, positions, set(), [0], file)
    return data, positions, root


def _collect(value: Any, path: Path_, marks: dict, out: Positions, on_path: set[int], count: list[int], file: str) -> None:
    """Walk the built data and record the marks of every entry under its path."""
    if not isinstance(value, (dict, list)):
        return
    if id(value) in on_path:
        pos = out.get(path)
        where = pos.value if pos else Mark(file)
        raise where.error("invalid YAML: an alias refers to a node that contains it (recursive data)")
    entries = marks.get(id(value), {})
    on_path.add(id(value))
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        count[0] += 1
        if count[0] > MAX_NODES:
            raise SpecError(f"invalid YAML: document too large (aliases expand to more than {MAX_NODES} nodes)", file)
        child_path = path + (key,)
        if key in entries:
            key_mark, value_mark = entries[key]
            out[child_path] = NodePos(key_mark, value_mark)
        _collect(child, child_path, marks, out, on_path, count, file)
    on_path.discard(id(value))
