"""The one base class for errors a user causes and can fix (a bad config, a missing file, a refused endpoint).

The CLI prints such an error as a single `error: ...` line and exits non-zero; anything else is a bug and keeps
its traceback. Every stage raises a subclass (or this class) with a message that names the file, field or
endpoint and says what to do.
"""

from __future__ import annotations


class DefinemedError(Exception):
    """A problem the user can fix; its message is shown as one `error:` line."""


class PluginError(DefinemedError, ImportError):
    """A module named in DEFINEMED_PLUGINS cannot be imported."""
