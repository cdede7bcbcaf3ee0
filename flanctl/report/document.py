"""A tiny document model (headings, paragraphs, tables, images) rendered to Markdown and HTML.

The report is built once as a list of blocks, then written twice, so that `report.md` and
`report.html` always say the same thing. HTML is escaped by Jinja2's autoescaping; images are
embedded as base64 so that the HTML file can be mailed or uploaded on its own.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str | None = None


@dataclass
class Image:
    path: Path  # absolute path of the PNG; the Markdown links it relative to the report
    alt: str


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks) -> None:
        self.blocks.extend(blocks)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Document, base: Path) -> str:
    """Markdown with images linked relative to `base` (the report's folder)."""
    out = [f"# {doc.title}", ""]
    for block in doc.blocks:
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            out += [block.text, ""]
        elif isinstance(block, Table):
            if block.caption:
                out += [f"*{block.caption}*", ""]
            out.append("| " + " | ".join(_md_cell(h) for h in block.header) + " |")
            out.append("|" + "|".join(" --- " for _ in block.header) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("")
        elif isinstance(block, Image):
            out += [f"![{block.alt}]({block.path.relative_to(base).as_posix()})", ""]
    return "\n".join(out).rstrip() + "\n"


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.2rem; font-size: 0.92rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: 0.3rem; }
</style></head><body>
<h1>{{ title }}</h1>
{% for b in blocks %}
{%- if b.kind == "heading" %}<h{{ b.level }}>{{ b.text }}</h{{ b.level }}>
{%- elif b.kind == "paragraph" %}<p>{{ b.text|inline_code }}</p>
{%- elif b.kind == "table" %}<table>{% if b.caption %}<caption>{{ b.caption }}</caption>{% endif %}
<tr>{% for h in b.header %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in b.rows %}<tr>{% for c in row %}<td{% if c|is_num %} class="num"{% endif %}>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</table>
{%- elif b.kind == "image" %}<p><img alt="{{ b.alt }}" src="data:image/png;base64,{{ b.data }}"></p>
{%- endif %}
{% endfor %}
</body></html>
"""


def _is_num(text: object) -> bool:
    try:
        float(str(text).rstrip("%").replace(",", ""))
        return True
    except ValueError:
        return False


def _inline_code(text: str):
    """Escape `text` for HTML, then turn Markdown `code` spans into <code> elements."""
    import re

    from markupsafe import Markup, escape

    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


def to_html(doc: Document) -> str:
    """A standalone HTML page (images inlined)."""
    from jinja2 import Environment

    env = Environment(autoescape=True)
    env.filters["is_num"] = _is_num
    env.filters["inline_code"] = _inline_code
    blocks = []
    for b in doc.blocks:
        if isinstance(b, Heading):
            blocks.append({"kind": "heading", "text": b.text, "level": b.level})
        elif isinstance(b, Paragraph):
            blocks.append({"kind": "paragraph", "text": b.text})
        elif isinstance(b, Table):
            blocks.append({"kind": "table", "header": b.header, "rows": b.rows, "caption": b.caption})
        elif isinstance(b, Image):
            data = base64.b64encode(b.path.read_bytes()).decode("ascii")
            blocks.append({"kind": "image", "alt": b.alt, "data": data})
    return env.from_string(_HTML).render(title=doc.title, blocks=blocks)
