"""Building a statement whose parameters depend on its caller, without counting `$n` by hand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sql:
    """An SQL expression written into the statement as it is (never client input)."""

    text: str


NOW = Sql("now()")


@dataclass(frozen=True)
class Added:
    """An amount added to what the column holds: `column = column + $n`."""

    amount: Any


@dataclass
class Parameters:
    """The statement's parameters in order; each `add` answers the placeholder that names its value."""

    values: list[Any] = field(default_factory=list)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"

    def assignments(self, columns: Mapping[str, Any]) -> str:
        """`column = $n, …` for an UPDATE's SET list; an `Sql` value is written as it is."""
        return ", ".join(f"{column} = {self._expression(column, value)}" for column, value in columns.items())

    def _expression(self, column: str, value: Any) -> str:
        if isinstance(value, Sql):
            return value.text
        if isinstance(value, Added):
            return f"{column} + {self.add(value.amount)}"
        return self.add(value)
