"""A minimal document model (sections of paragraphs, tables, figures) rendered to Markdown and to HTML.

Both renderings come from the same objects, so the HTML never has to parse the Markdown back. Figures are PNG
bytes: files beside report.md, base64 inside report.html (self-contained, no network).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1b1f24;line-height:1.45}
h1{border-bottom:2px solid #2b6cb0;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#edf2f7}td:first-child,th:first-child{text-align:left}figure{margin:1em 0}
figcaption{font-size:.9em;color:#555}img{max-width:100%}pre{background:#f6f8fa;padding:.8em;overflow-x:auto;
white-space:pre-wrap}mark{background:#fed7d7}.note{color:#555;font-size:.92em}
"""


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]
    caption: str = ""
    css_id: str = ""


@dataclass
class Figure:
    name: str
    png: bytes
    caption: str


@dataclass
class Example:
    """A quoted answer with spans to highlight."""

    title: str
    text: str
    highlights: list[str] = field(default_factory=list)


@dataclass
class Link:
    """A link to another artifact of the run (relative to the report folder)."""

    text: str
    href: str


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[str | Table | Figure | Example | Link] = field(default_factory=list)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def md_escape(text: str) -> str:
    """Text from model answers, spans and titles as Markdown that renders it literally: raw HTML (a `<script>`
    in an answer, an `<img onerror=...>` in a title) is shown, never interpreted, as report.html does."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md_table(t: Table) -> str:
    lines = []
    if t.caption:
        lines.append(f"*{md_escape(t.caption)}*\n")
    lines.append("| " + " | ".join(md_escape(h) for h in t.headers) + " |")
    lines.append("|" + "|".join("---" for _ in t.headers) + "|")
    for row in t.rows:
        lines.append("| " + " | ".join(md_escape(fmt(c)).replace("|", "\\|").replace("\n", " ") for c in row) + " |")
    return "\n".join(lines)


def render_markdown(title: str, sections: list[Section], figure_dir: Path) -> str:
    figure_dir.mkdir(parents=True, exist_ok=True)
    out = [f"# {md_escape(title)}\n"]
    for s in sections:
        out.append(f"\n## {md_escape(s.title)}\n")
        for b in s.blocks:
            if isinstance(b, Table):
                out.append(_md_table(b) + "\n")
            elif isinstance(b, Figure):
                (figure_dir / f"{b.name}.png").write_bytes(b.png)
                caption = md_escape(b.caption)
                out.append(f"![{caption}]({figure_dir.name}/{b.name}.png)\n\n*{caption}*\n")
            elif isinstance(b, Link):
                out.append(f"[{md_escape(b.text)}]({b.href})\n")
            elif isinstance(b, Example):
                quoted = "\n".join("> " + md_escape(ln) for ln in (b.text or "(empty)").splitlines())
                marks = f"\n\nflagged: {', '.join(md_escape(repr(h)) for h in b.highlights)}" if b.highlights else ""
                out.append(f"**{md_escape(b.title)}**\n\n{quoted}{marks}\n")
            else:
                out.append(md_escape(b) + "\n")
    return "\n".join(out)


def _highlight(text: str, spans: list[str]) -> str:
    escaped = html.escape(text or "(empty)")
    for span in sorted(set(spans), key=len, reverse=True):
        if span:
            escaped = escaped.replace(html.escape(span), f"<mark>{html.escape(span)}</mark>")
    return escaped


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in row) + "</tr>" for row in t.rows)
    cap = f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""
    tid = f' id="{t.css_id}"' if t.css_id else ""
    return f"<table{tid}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(title: str, sections: list[Section]) -> str:
    toc = "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in sections)
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1><nav><ul>{toc}</ul></nav>"
    ]
    for s in sections:
        parts.append(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>')
        for b in s.blocks:
            if isinstance(b, Table):
                parts.append(_html_table(b))
            elif isinstance(b, Figure):
                data = base64.b64encode(b.png).decode()
                parts.append(
                    f'<figure><img class="plot" alt="{html.escape(b.caption)}" data-name="{b.name}" '
                    f'src="data:image/png;base64,{data}">'
                    f"<figcaption>{html.escape(b.caption)}</figcaption></figure>"
                )
            elif isinstance(b, Link):
                parts.append(f'<p><a class="artifact" href="{html.escape(b.href)}">{html.escape(b.text)}</a></p>')
            elif isinstance(b, Example):
                parts.append(f"<h4>{html.escape(b.title)}</h4><pre>{_highlight(b.text, b.highlights)}</pre>")
            else:
                parts.append(f"<p>{html.escape(b)}</p>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
