"""Labelling prompts: one Markdown file per language under `definemed/assets/prompts/`.

A file holds a shared part (rubric and the `{document}` slot) followed by answer sections introduced by a line
`<!-- answer: NAME -->`. Generative labellers use the `json` section, scoring labellers the `yesno` section,
so both read the same rubric. Only `{document}` is substituted, so JSON braces in a prompt need no escaping.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

_SECTION = re.compile(r"^<!-- answer: (\w+) -->[ \t]*$", re.MULTILINE)
SLOT = "{document}"


def read_template_file(name: str) -> str:
    """A prompt file: an existing path, or a file name under `definemed/assets/prompts/`."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.read_text(encoding="utf-8")
    try:
        return resources.files("definemed").joinpath("assets", "prompts", name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"labelling prompt '{name}' is neither a file nor in definemed/assets/prompts/"
        ) from None


def load_template(name: str, answer: str) -> str:
    """The shared part of prompt `name` plus its `answer` section; errors name what the file offers."""
    text = read_template_file(name)
    parts = _SECTION.split(text)
    common, sections = parts[0], dict(zip(parts[1::2], parts[2::2], strict=True))
    if not sections:  # a plain file without sections is used as it is
        template = text
    elif answer not in sections:
        raise ValueError(f"prompt '{name}' has no '<!-- answer: {answer} -->' section (has: {sorted(sections)})")
    else:
        template = common.rstrip() + "\n\n" + sections[answer].strip() + "\n"
    if SLOT not in template:
        raise ValueError(f"prompt '{name}' has no {SLOT} slot")
    return template


def render(template: str, text: str, max_chars: int) -> str:
    """Put the document (cut to `max_chars`) into the template's single slot."""
    return template.replace(SLOT, text[:max_chars], 1)
