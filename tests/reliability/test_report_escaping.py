"""report.md shows raw HTML from model answers, spans and titles literally, as report.html does."""

from __future__ import annotations

from pathlib import Path

from definemed.report.document import Example, Section, Table, render_html, render_markdown

EVIL = '<img src=x onerror="alert(1)"><script>steal()</script>'


def test_markdown_escapes_html_everywhere(tmp_path: Path) -> None:
    sections = [
        Section(
            title=f"Answers {EVIL}",
            anchor="a",
            blocks=[
                f"paragraph {EVIL}",
                Table(headers=["model", "answer"], rows=[[EVIL, "a|b"]], caption=EVIL),
                Example(title=f"prompt {EVIL}", text=f"line one\n{EVIL}", highlights=[EVIL]),
            ],
        )
    ]
    md = render_markdown(f"Report {EVIL}", sections, tmp_path / "figures")
    html_out = render_html(f"Report {EVIL}", sections)
    for out in (md, html_out):
        assert "<script>" not in out and "<img" not in out
    assert "&lt;script&gt;steal()&lt;/script&gt;" in md
    assert "a\\|b" in md  # table cells still escape the pipe
