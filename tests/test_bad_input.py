"""Bad input is refused by name: the catalogue of issue 12, one table per area.

Every case asserts the exception's type and that its message names the argument.
"""

from __future__ import annotations

import importlib

import pytest

_TABLES = ("optimizers", "curvature", "cli", "loop")


def _cases():
    out = []
    for table in _TABLES:
        try:
            module = importlib.import_module(f"_bad_cases_{table}")
        except ModuleNotFoundError as e:
            if e.name != f"_bad_cases_{table}":
                raise
            continue
        out.extend(pytest.param(c, id=f"{table}:{c.id}") for c in module.CASES)
    return out


CASES = _cases()


def test_the_catalogue_is_large():
    assert len(CASES) >= 150, len(CASES)


@pytest.mark.parametrize("c", CASES)
def test_bad_input_is_refused_by_name(c):
    with pytest.raises(c.raises) as info:
        c.call()
    message = str(info.value)
    for name in c.names:
        assert name in message, f"{name!r} not in {message!r}"
