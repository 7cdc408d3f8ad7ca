"""Config schema of the report stage."""

from __future__ import annotations

from typing import Literal

from definemed.schema import Strict


class ReportConfig(Strict):
    title: str = "DeFineMed report"
    formats: list[Literal["md", "html"]] = ["md", "html"]
