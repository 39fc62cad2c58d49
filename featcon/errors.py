"""featcon's own exceptions: errors a user can act on, each with a message that names the field,
file or folder at fault and what to do.

Every class derives from :class:`FeatconError`; the entry points (``experiments/``) treat these
as the user's to fix and the rest as bugs. Each also derives from the builtin type that callers
caught before these classes existed (``ValueError``, ``FileNotFoundError``), so existing
``except ValueError`` clauses keep working.
"""


class FeatconError(Exception):
  """Base of the errors that featcon raises on purpose, with a message meant for the user."""


class ConfigError(FeatconError, ValueError):
  """A config field has a value that is not allowed (the message names field, value, allowed)."""


class WorkdirError(FeatconError, ValueError):
  """A workdir lacks what a stage needs, or holds what it must not (the message names the
  folder and the command that makes what is missing)."""
