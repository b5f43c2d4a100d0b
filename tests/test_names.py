from __future__ import annotations

import pytest

from mloop.errors import InvalidInput
from mloop.names import check_name


@pytest.mark.parametrize("name", ["flights", "my-model_2", "a.b", "X" * 128])
def test_good_names_pass(name: str) -> None:
    assert check_name(name, "model name") == name


@pytest.mark.parametrize(
    "name", ["", "../x", "..", "a/b", "a\\b", "/abs", "x" * 129, "a\x00b", "%2e%2e%2f", ".hidden", "-flag", "a..b", "naïve", 5, None]
)
def test_bad_names_are_refused_with_the_rule(name: object) -> None:
    with pytest.raises(InvalidInput, match="Invalid model name .* use 1-128 letters"):
        check_name(name, "model name")
