"""Run search in SQL: the filter language compiled to WHERE clauses, sort keys to ORDER BY.

The language itself (parsing, validation, error columns) is :mod:`groundwork.filters`;
this module is its SQL half, so that only the storage layer writes SQL:

* :func:`compile_filter` turns a parsed tree into a SQLAlchemy WHERE clause over
  ``schema.runs``: metrics, params and tags become correlated ``EXISTS``
  subqueries on ``latest_metrics``, ``params`` and ``tags``.
* :func:`order_clauses` turns :class:`~groundwork.filters.OrderKey` s into ORDER BY
  expressions (runs without the key last, in both directions).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, false, func, not_, or_, select, true

from groundwork.errors import InvalidFilter
from groundwork.filters import (
    OPERATORS,
    And,
    Comparison,
    Exists,
    Expr,
    Field,
    In,
    Not,
    Or,
    OrderKey,
    Value,
    parse_order,
)
from groundwork.storage import schema

_HINT = "see docs/filters.md for the filter syntax"

_runs = schema.runs

_ATTRIBUTE_COLUMNS: dict[str, Callable[[], ColumnElement[Any]]] = {
    "id": lambda: _runs.c.id,
    "name": lambda: _runs.c.name,
    "status": lambda: _runs.c.status,
    "kind": lambda: _runs.c.kind,
    "parent": lambda: _runs.c.parent_id,
    "user": lambda: _runs.c.user,
    "host": lambda: _runs.c.host,
    "commit": lambda: _runs.c.git_commit,
    "branch": lambda: _runs.c.git_branch,
    "created": lambda: _runs.c.created_at,
    "ended": lambda: _runs.c.ended_at,
    "duration": lambda: _runs.c.ended_at - _runs.c.created_at,
}
_NULLABLE = frozenset({"parent", "user", "host", "commit", "branch", "ended", "duration"})


def compile_filter(expr: Expr) -> ColumnElement[bool]:
    """A WHERE clause over ``schema.runs`` for a parsed filter.

    Never NULL: every predicate is two-valued, so ``not`` is an exact complement.
    """
    if isinstance(expr, And):
        return and_(*(compile_filter(t) for t in expr.terms))
    if isinstance(expr, Or):
        return or_(*(compile_filter(t) for t in expr.terms))
    if isinstance(expr, Not):
        return not_(compile_filter(expr.term))
    if isinstance(expr, (Comparison, In, Exists)):
        return _predicate(expr)
    raise InvalidFilter(f"not a filter expression: {expr!r}")


def _predicate(expr: Comparison | In | Exists) -> ColumnElement[bool]:
    field = expr.field
    if field.namespace == "attr":
        if field.key not in _ATTRIBUTE_COLUMNS:
            raise InvalidFilter(f"unknown field '{field.key}'", hint=_HINT)
        column = _ATTRIBUTE_COLUMNS[field.key]()
        if isinstance(expr, Exists):
            return column.is_not(None) if field.key in _NULLABLE else true()
        condition = _condition(expr, column, None, field)
        return and_(column.is_not(None), condition) if field.key in _NULLABLE else condition
    if field.namespace == "metrics":
        table = schema.latest_metrics.alias()
        text = number = table.c.value
    elif field.namespace == "params":
        table = schema.params.alias()
        text, number = table.c.value, table.c.value_num
    elif field.namespace == "tags":
        table = schema.tags.alias()
        text = number = table.c.value
    else:
        raise InvalidFilter(f"unknown namespace '{field.namespace}'", hint=_HINT)
    where = [table.c.run_id == _runs.c.id, table.c.key == field.key]
    if not isinstance(expr, Exists):
        where.append(_condition(expr, text, number if field.namespace == "params" else None, field))
    return exists().where(*where)


def _condition(
    expr: Comparison | In, text: ColumnElement[Any], number: ColumnElement[Any] | None, field: Field
) -> ColumnElement[bool]:
    """The value test of a predicate. ``number`` is the numeric column of a param (``value_num``)."""
    if isinstance(expr, In):
        matches = [_equals(text, number, v) for v in _dedupe(expr.values)]
        found = or_(*matches) if matches else false()
        return not_(found) if expr.negated else found
    op, value = expr.op, expr.value
    if op not in OPERATORS:
        raise InvalidFilter(f"unknown operator '{op}' in {field}", hint=_HINT)
    if op in ("like", "not like"):
        if not isinstance(value, str):
            raise InvalidFilter(f"'{op}' needs a text pattern for {field}", hint=_HINT)
        return text.ilike(value, escape="\\") if op == "like" else text.not_ilike(value, escape="\\")
    if op == "=":
        return _equals(text, number, value)
    if op == "!=":
        return not_(_equals(text, number, value))
    if isinstance(value, bool):
        raise InvalidFilter(f"'{op}' cannot order booleans ({field})", hint=_HINT)
    column = number if number is not None and not isinstance(value, str) else text
    return _ORDERED[op](column, value)


_ORDERED: dict[str, Callable[[ColumnElement[Any], Value], ColumnElement[bool]]] = {
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
}


def _equals(text: ColumnElement[Any], number: ColumnElement[Any] | None, value: Value) -> ColumnElement[bool]:
    """``column = value``, never NULL (so ``not`` and ``not in`` are exact complements)."""
    if isinstance(value, bool):
        return func.lower(text) == ("true" if value else "false")
    if isinstance(value, (int, float)) and number is not None:
        if math.isnan(value):
            return false()
        return and_(number.is_not(None), number == value)  # a param that is not a number equals no number
    if isinstance(value, float) and math.isnan(value):
        return false()
    return and_(text.is_not(None), text == value)


def _dedupe(values: Sequence[Value]) -> list[Value]:
    seen: list[Value] = []
    for v in values:
        if not any(type(v) is type(s) and v == s for s in seen):
            seen.append(v)
    return seen


# -- ORDER BY ----------------------------------------------------------------------------------------


def order_clauses(keys: Sequence[OrderKey]) -> list[ColumnElement[Any]]:
    """ORDER BY expressions for parsed sort keys (params sort numbers, numerically, before text)."""
    return [clause for key in keys for clause in _order(key.field, key.descending)]


def order_by_clause(spec: str) -> list[ColumnElement[Any]]:
    """ORDER BY expressions for ``"-metrics.acc"``, ``"params.lr"``, ``"name"``, ``"-created"``."""
    return order_clauses(parse_order(spec))


def _order(field: Field, descending: bool) -> list[ColumnElement[Any]]:
    def direction(column: ColumnElement[Any]) -> ColumnElement[Any]:
        return (column.desc() if descending else column.asc()).nulls_last()

    if field.namespace == "attr":
        return [direction(_ATTRIBUTE_COLUMNS[field.key]())]
    if field.namespace == "metrics":
        lm = schema.latest_metrics.alias()
        value = select(lm.c.value).where(lm.c.run_id == _runs.c.id, lm.c.key == field.key).scalar_subquery()
        # NaN is stored as NULL: sort it after every number, before runs without the metric
        present = exists().where(lm.c.run_id == _runs.c.id, lm.c.key == field.key)
        return [direction(value), case((present, 0), else_=1).asc()]
    if field.namespace == "params":
        p = schema.params.alias()
        where = (p.c.run_id == _runs.c.id, p.c.key == field.key)
        number = select(p.c.value_num).where(*where).scalar_subquery()
        text = select(p.c.value).where(*where).scalar_subquery()
        return [direction(number), direction(text)]
    t = schema.tags.alias()
    text = select(t.c.value).where(t.c.run_id == _runs.c.id, t.c.key == field.key).scalar_subquery()
    return [direction(text)]
