"""The shape of one bad-input case, shared by the ``_bad_cases_*`` tables.

Each table module exports ``CASES: list[Case]``; ``test_bad_input.py`` runs them all.
A case calls the library with one bad argument and expects an exception of type
``raises`` whose message contains every string in ``names`` (the argument's name,
and where it helps the bad value or the fix).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[], Any]
    raises: type[BaseException] | tuple[type[BaseException], ...]
    names: tuple[str, ...]


def case(id: str, call: Callable[[], Any], raises: Any, *names: str) -> Case:
    return Case(id, call, raises, tuple(names))
