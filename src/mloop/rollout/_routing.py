"""Deterministic traffic splitting: a request key always lands on the same arm for a given weight."""

from __future__ import annotations

import hashlib
from enum import StrEnum

from mloop.errors import InvalidInput


class Arm(StrEnum):
    BASELINE = "baseline"
    CANDIDATE = "candidate"


def bucket(key: str) -> float:
    """A stable number in [0, 100) for ``key`` (BLAKE2b, so it is uniform and the same in every process)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100.0


def route(key: str, candidate_percent: float) -> Arm:
    """``CANDIDATE`` for ``candidate_percent`` % of keys, ``BASELINE`` for the rest.

    >>> sum(route(str(i), 10) is Arm.CANDIDATE for i in range(10_000))
    1029
    """
    if not 0.0 <= candidate_percent <= 100.0:
        raise InvalidInput(f"candidate_percent must be within [0, 100], got {candidate_percent}.", field="candidate_percent")
    return Arm.CANDIDATE if bucket(key) < candidate_percent else Arm.BASELINE
