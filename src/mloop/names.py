"""Names of models, deployments, aliases and experiments: one rule, checked at every entry point."""

from __future__ import annotations

import re

from mloop.errors import InvalidInput

NAME_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # also in the OpenAPI document, so clients see the rule
_NAME = re.compile(NAME_PATTERN)


def check_name(value: object, what: str) -> str:
    """Return ``value`` if it is a safe name (letters, digits, ``.``, ``_``, ``-``; 1–128 chars; no ``..``)."""
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise InvalidInput(
            f"Invalid {what} {value!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit, without '..'.",
            field=what.replace(" ", "_"),
        )
    return value
