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

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    text,
    true,
)

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
    parse_filter,
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


# -- the planner: a page costs what it shows -------------------------------------------------------
#
# The runs table stays quick at 100,000 runs because a page never reads more than it shows:
# * a page is LIMIT/OFFSET over indexed columns. Sorting by one metric or one param walks the
#   ``(key, value)`` index of ``latest_metrics`` / ``params`` instead of computing a sort key
#   for every run (:func:`page_ids`);
# * a selective filter is driven from an index: when one ``and``-ed condition such as
#   ``metrics.acc > 0.99`` matches few runs (counted on its ``(key, value)`` index, up to a
#   cap), the query starts from those runs instead of walking every run newest first
#   (:func:`drivers`); the same makes a filtered count cheap.

#: A driving condition is counted up to this many runs (an index range scan of at most this many entries).
DRIVER_CAP = 10_000

_runs = schema.runs
_DRIVER_OPS: dict[str, Callable[[ColumnElement[Any], Any], ColumnElement[bool]]] = {
    "=": lambda c, v: c == v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
}


class Plan:
    """A parsed filter compiled to SQL, with the index-backed candidate sets its ``and``-ed conditions allow."""

    def __init__(self, expr: Expr | None) -> None:
        self.expr = expr
        self.where: ColumnElement[bool] | None = None if expr is None else compile_filter(expr)
        self.drivers: list[Select[Any]] = [] if expr is None else drivers(expr)
        self._sizes: list[int] | None = None

    def smallest(self, conn: Connection) -> tuple[Select[Any], int] | None:
        """The driver that matches the fewest runs (counted up to ``DRIVER_CAP``), with that count."""
        if not self.drivers:
            return None
        if self._sizes is None:
            self._sizes = [
                int(conn.execute(select(func.count()).select_from(d.limit(DRIVER_CAP + 1).subquery())).scalar() or 0)
                for d in self.drivers
            ]
        size, index = min((size, i) for i, size in enumerate(self._sizes))
        return self.drivers[index], size

    def for_page(self, conn: Connection, needed: int, all_runs: int) -> ColumnElement[bool] | None:
        """The WHERE clause of a page that ends ``needed`` runs in.

        Walking runs newest first reads about ``needed / selectivity`` runs; starting from a
        driver reads its ``size`` runs and sorts them. With a driver's selectivity taken as
        ``size / all_runs``, starting from it is cheaper when ``size² < needed · all_runs``.
        """
        best = self.smallest(conn)
        if self.where is None or best is None:
            return self.where
        driver, size = best
        if not worth_driving(size, needed, all_runs):
            return self.where
        return and_(_runs.c.id.in_(driver), self.where)

    def for_count(self, conn: Connection) -> ColumnElement[bool] | None:
        """A count visits every match anyway: starting from the smallest driver never costs more."""
        best = self.smallest(conn)
        if self.where is None or best is None:
            return self.where
        return and_(_runs.c.id.in_(best[0]), self.where)


def worth_driving(size: int, needed: int, all_runs: int) -> bool:
    """Whether starting a page from a driver of ``size`` runs beats walking ``all_runs`` newest first."""
    return size <= DRIVER_CAP and size * size <= needed * max(all_runs, 1)


def drivers(expr: Expr) -> list[Select[Any]]:
    """Candidate run-id sets, one per top-level ``and``-ed condition that an index answers.

    Each equals the runs its condition matches, as :func:`compile_filter` compiles it:
    ``metrics.K op number`` on ``latest_metrics (key, value)``, ``params.K op number`` on
    ``params (key, value_num)``, and ``status = '…'`` / ``name = '…'`` on their indexes.
    Since every condition of an ``and`` must hold, any one of them may start the query;
    the filter itself still applies.
    """
    terms: list[Expr] = []
    pending: list[Expr] = [expr]
    while pending:
        term = pending.pop()
        if isinstance(term, And):
            pending.extend(term.terms)
        else:
            terms.append(term)
    out: list[Select[Any]] = []
    for term in terms:
        if not isinstance(term, Comparison) or term.op not in _DRIVER_OPS:
            continue
        namespace, key, value = term.field.namespace, term.field.key, term.value
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if namespace == "metrics" and numeric:
            lm = schema.latest_metrics
            out.append(select(lm.c.run_id).where(lm.c.key == key, _DRIVER_OPS[term.op](lm.c.value, value)))
        elif namespace == "params" and numeric:
            p = schema.params
            out.append(select(p.c.run_id).where(p.c.key == key, _DRIVER_OPS[term.op](p.c.value_num, value)))
        elif namespace == "attr" and key in ("status", "name") and term.op == "=" and isinstance(value, str):
            out.append(select(_runs.c.id).where(_runs.c[key] == value))
    return out


def page_ids(
    conn: Connection, where: ColumnElement[bool] | None, keys: Sequence[OrderKey], limit: int | None, offset: int
) -> list[str]:
    """The ids of one page, in order.

    The order is exactly :func:`order_clauses`' (runs without the key last, NaN metrics
    after numbers, then newest first). One metric or param is served from its index in
    segments (has a value / NaN or text / missing) so that a page costs what it shows.
    """
    newest = [_runs.c.created_at.desc(), _runs.c.id]
    single = keys[0] if len(keys) == 1 and keys[0].field.namespace in ("metrics", "params") else None
    if single is None or limit is None:
        query = select(_runs.c.id).order_by(*order_clauses(keys), *newest)
        if where is not None:
            query = query.where(where)
        if limit is not None:
            query = query.limit(limit)
        return [r[0] for r in conn.execute(query.offset(offset))]
    key, descending = single.field.key, single.descending
    segments = _metric_segments(key, descending) if single.field.namespace == "metrics" else _param_segments(key, descending)
    if where is not None:
        segments = [s.where(where) for s in segments]
    return _segmented(conn, segments, limit, offset)


def _direction(column: Any, descending: bool) -> Any:
    return column.desc() if descending else column.asc()


def _metric_segments(key: str, descending: bool) -> list[Select[Any]]:
    lm = schema.latest_metrics
    newest = [_runs.c.created_at.desc(), _runs.c.id]
    joined = select(_runs.c.id).join(lm, and_(lm.c.run_id == _runs.c.id, lm.c.key == key))
    present = exists().where(lm.c.run_id == _runs.c.id, lm.c.key == key)
    return [
        joined.where(lm.c.value.is_not(None)).order_by(_direction(lm.c.value, descending), *newest),
        joined.where(lm.c.value.is_(None)).order_by(*newest),  # NaN
        select(_runs.c.id).where(~present).order_by(*newest),
    ]


def _param_segments(key: str, descending: bool) -> list[Select[Any]]:
    p = schema.params
    newest = [_runs.c.created_at.desc(), _runs.c.id]
    joined = select(_runs.c.id).join(p, and_(p.c.run_id == _runs.c.id, p.c.key == key))
    present = exists().where(p.c.run_id == _runs.c.id, p.c.key == key)
    return [
        joined.where(p.c.value_num.is_not(None)).order_by(
            _direction(p.c.value_num, descending), _direction(p.c.value, descending), *newest
        ),
        joined.where(p.c.value_num.is_(None)).order_by(_direction(p.c.value, descending), *newest),  # text values
        select(_runs.c.id).where(~present).order_by(*newest),
    ]


def _segmented(conn: Connection, segments: list[Select[Any]], limit: int, offset: int) -> list[str]:
    """LIMIT/OFFSET over the concatenation of ordered segments, counting a segment only when skipped whole."""
    out: list[str] = []
    skip = offset
    for index, segment in enumerate(segments):
        need = limit - len(out)
        if need <= 0:
            break
        got = [r[0] for r in conn.execute(segment.limit(need).offset(skip))]
        out.extend(got)
        if len(got) == need or index == len(segments) - 1:
            continue
        if got:
            skip = 0
        else:
            size = conn.execute(select(func.count()).select_from(segment.order_by(None).subquery())).scalar()
            skip = max(0, skip - int(size or 0))
    return out


def parse_search(
    filter: str | Expr | None, order_by: str | Sequence[str] | Sequence[OrderKey] | None
) -> tuple[Expr | None, list[OrderKey]]:
    """A filter and sort given as text (or already parsed), parsed: what every store's search takes."""
    expr: Expr | None
    if filter is None or (isinstance(filter, str) and not filter.strip()):
        expr = None
    elif isinstance(filter, str):
        expr = parse_filter(filter)
    else:
        expr = filter
    specs: list[Any] = [order_by] if isinstance(order_by, str) else list(order_by or [])
    keys: list[OrderKey] = []
    for spec in specs:
        if isinstance(spec, OrderKey):
            keys.append(spec)
        elif isinstance(spec, str) and spec.strip():
            keys.extend(parse_order(spec))
    return expr, keys


_SKIP_SCAN = """
WITH RECURSIVE k(key) AS (
    SELECT min(key) FROM {table}
    UNION ALL
    SELECT (SELECT min(key) FROM {table} WHERE key > k.key) FROM k WHERE k.key IS NOT NULL
)
SELECT key FROM k WHERE key IS NOT NULL LIMIT :limit
"""


def all_keys(conn: Connection, limit: int, project: str | None = None) -> dict[str, list[str]]:
    """Distinct param, metric and tag keys, of one project's runs when ``project`` is given.

    Without a project, params and metrics skip-scan their ``(key, ...)`` index.
    """
    if project is None:
        params = [r[0] for r in conn.execute(text(_SKIP_SCAN.format(table="params")), {"limit": limit})]
        metrics = [r[0] for r in conn.execute(text(_SKIP_SCAN.format(table="latest_metrics")), {"limit": limit})]
        tags = [r[0] for r in conn.execute(select(schema.tags.c.key).distinct().order_by(schema.tags.c.key).limit(limit))]
        return {"params": params, "metrics": metrics, "tags": tags}
    out: dict[str, list[str]] = {}
    for name, table in (("params", schema.params), ("metrics", schema.latest_metrics), ("tags", schema.tags)):
        query = (
            select(table.c.key)
            .join(_runs, _runs.c.id == table.c.run_id)
            .where(_runs.c.project == project)
            .distinct()
            .order_by(table.c.key)
            .limit(limit)
        )
        out[name] = [r[0] for r in conn.execute(query)]
    return out
