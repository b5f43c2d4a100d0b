"""A table checked against declared rules, on Pandera: each column's type, range, allowed values, nulls, uniqueness
and pattern, and whether columns not named are allowed. Every failure is collected (not only the first), counted per
column and check, with a few of the failing values, so one run says everything that is wrong with the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Dtype = Literal["float", "int", "bool", "str", "category", "datetime"]
_PANDERA_TYPES = {"float": "float64", "int": "int64", "bool": "bool", "str": "str", "category": "category", "datetime": "datetime64[ns]"}


class ColumnRule(BaseModel):
    """What one column must hold: ``dtype`` (``coerce`` converts to it first), ``min``/``max`` (inclusive), ``isin``,
    ``pattern`` (a regular expression the whole value matches), ``nullable``, ``unique``; ``required: false`` lets it
    be absent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dtype: Dtype | None = None
    coerce: bool = False
    min: float | None = None
    max: float | None = None
    isin: list[Any] | None = Field(default=None, min_length=1)
    pattern: str | None = Field(default=None, min_length=1)
    nullable: bool = True
    unique: bool = False
    required: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> ColumnRule:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        if self.coerce and self.dtype is None:
            raise ValueError("coerce needs a dtype to convert to")
        if self.pattern is not None:
            import re

            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} is not a regular expression: {exc}") from None
        return self


@dataclass(frozen=True)
class Failure:
    """One rule broken: the column, the check, how many values broke it (0: the column itself, missing or not
    declared) and a few of them."""

    column: str
    check: str
    count: int
    examples: list[Any] = field(default_factory=list)

    def __str__(self) -> str:
        if self.count == 0:
            return f"{self.column}: {self.check}"
        shown = ", ".join(repr(v) for v in self.examples)
        return f"{self.column}: {self.check} failed for {self.count} value(s)" + (f" (e.g. {shown})" if shown else "")


def _schema(rules: dict[str, ColumnRule], strict: bool) -> Any:
    import pandera.pandas as pa

    columns = {}
    for name, rule in rules.items():
        checks = []
        if rule.min is not None:
            checks.append(pa.Check.ge(rule.min))
        if rule.max is not None:
            checks.append(pa.Check.le(rule.max))
        if rule.isin is not None:
            checks.append(pa.Check.isin(rule.isin))
        if rule.pattern is not None:
            checks.append(pa.Check.str_matches(rf"(?:{rule.pattern})\Z"))  # matched from the start, to the end: the whole value
        columns[name] = pa.Column(_PANDERA_TYPES[rule.dtype] if rule.dtype else None, checks, nullable=rule.nullable,
                                  unique=rule.unique, coerce=rule.coerce, required=rule.required)
    return pa.DataFrameSchema(columns, strict=strict)


def check_table(frame: Any, rules: dict[str, ColumnRule], *, strict: bool = False, examples: int = 3) -> tuple[Any, list[Failure]]:
    """``frame`` checked (and coerced where a rule asks) → (the table, every failure); no failures means it passed."""
    import pandera.pandas as pa

    try:
        return _schema(rules, strict).validate(frame, lazy=True), []
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    failures: list[Failure] = []
    table = {"column_in_dataframe": "missing (the column is required)", "column_in_schema": "not declared (strict allows only the named columns)"}
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        if column is None or column != column:  # a table-level check: each failing case names a column
            failures.extend(Failure(str(v), table.get(str(check), str(check)), 0) for v in group["failure_case"])
        else:  # counted, and only a few values turned into Python objects (a broken range on 10 M rows is 10 M cases)
            shown = [v.item() if hasattr(v, "item") else v for v in group["failure_case"].head(examples)]
            failures.append(Failure(str(column), str(check), int(len(group)), shown))
    return frame, failures
