"""The run filter language: ``metrics.acc > 0.9 and params.lr = 0.01``, parsed.

A pure module (no storage, no SQL): the metadata stores compile what it parses
(``groundwork.storage.search`` into SQL; the team server's client sends the text),
and the CLI, the SDK and the server validate with it.

* :func:`parse_filter` turns text into a small tree of frozen dataclasses
  (:class:`Comparison`, :class:`In`, :class:`Exists`, :class:`And`,
  :class:`Or`, :class:`Not` over :class:`Field`). Every syntax *and* type
  error is found here and raised as :class:`~groundwork.errors.InvalidFilter`
  with the 1-based column of the offending token.
* :func:`parse_order` turns ``"-metrics.acc, name"`` into :class:`OrderKey` s.

The grammar, in precedence order (``docs/filters.md`` is the user-facing version)::

    filter     := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | predicate
    predicate  := field op value
                | field ["not"] ("like" | "~") string      ("!~" is "not like")
                | field ["not"] "in" "(" value ("," value)* [","] ")"
                | field ["not"] "exists"
    op         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    field      := ("metrics" | "params" | "tags") "." key | attribute
    value      := number | string | "true" | "false"

Semantics in one rule: a predicate on a key (``metrics.acc > 0.9``,
``params.opt != 'adam'``) only matches runs that *have* that key, while
``not P`` is the exact complement of ``P`` (it also matches runs without it).

The parser is hand-written (no lark): it is a page long, and owning it is
what makes every message say what was expected, where.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field as dc_field
from datetime import datetime
from typing import Any, Literal, NoReturn, TypeAlias

from groundwork.errors import InvalidFilter

__all__ = [
    "ATTRIBUTES",
    "And",
    "Comparison",
    "Exists",
    "Expr",
    "Field",
    "In",
    "Not",
    "Or",
    "Value",
    "OrderKey",
    "parse_filter",
    "parse_order",
]

Namespace: TypeAlias = Literal["metrics", "params", "tags", "attr"]
Value: TypeAlias = str | int | float | bool

#: Run attributes a filter can name, and their types ("text", "time": epoch seconds or an ISO date, "number").
ATTRIBUTES: dict[str, str] = {
    "id": "text",
    "name": "text",
    "status": "text",
    "kind": "text",
    "parent": "text",
    "user": "text",
    "host": "text",
    "commit": "text",
    "branch": "text",
    "created": "time",
    "ended": "time",
    "duration": "number",
}
STATUSES = ("running", "finished", "failed", "crashed", "cached", "pruned")
NAMESPACES = ("metrics", "params", "tags")
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "like", "not like")

#: Limits that keep a filter inside what SQLite and PostgreSQL accept (expression depth, bound parameters).
MAX_LENGTH = 100_000
MAX_DEPTH = 50
MAX_CONDITIONS = 256
MAX_LIST = 10_000

_BARE_KEY = re.compile(r"[\w\-/.]+")
_HINT = "see docs/filters.md for the filter syntax"


# -- the tree ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """``metrics.acc`` is ``Field("metrics", "acc")``; ``status`` is ``Field("attr", "status")``."""

    namespace: Namespace
    key: str
    column: int = dc_field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        if self.namespace == "attr":
            return self.key
        key = self.key if _BARE_KEY.fullmatch(self.key) else "`" + self.key.replace("`", "``") + "`"
        return f"{self.namespace}.{key}"


@dataclass(frozen=True)
class Comparison:
    """``field op value``; ``op`` is one of :data:`OPERATORS` (``==`` and ``<>`` are normalized, ``~`` is ``like``)."""

    field: Field
    op: str
    value: Value
    column: int = dc_field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.field} {self.op} {_format_value(self.value)}"


@dataclass(frozen=True)
class In:
    """``field in (v1, v2, ...)``, or ``not in`` when ``negated``."""

    field: Field
    values: tuple[Value, ...]
    negated: bool = False
    column: int = dc_field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        values = ", ".join(_format_value(v) for v in self.values)
        return f"{self.field} {'not in' if self.negated else 'in'} ({values})"


@dataclass(frozen=True)
class Exists:
    """``field exists``: the run has that metric, param or tag (for an attribute: it is set)."""

    field: Field
    column: int = dc_field(default=0, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.field} exists"


@dataclass(frozen=True)
class And:
    terms: tuple[Expr, ...]

    def __str__(self) -> str:
        return " and ".join(_grouped(t) for t in self.terms)


@dataclass(frozen=True)
class Or:
    terms: tuple[Expr, ...]

    def __str__(self) -> str:
        return " or ".join(_grouped(t) for t in self.terms)


@dataclass(frozen=True)
class Not:
    term: Expr

    def __str__(self) -> str:
        inner = str(self.term)
        return f"not ({inner})" if isinstance(self.term, (And, Or)) else f"not {inner}"


Expr: TypeAlias = Comparison | In | Exists | And | Or | Not


def _grouped(expr: Expr) -> str:
    return f"({expr})" if isinstance(expr, (And, Or)) else str(expr)


def _format_value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# -- tokens ------------------------------------------------------------------------------------------

TokenKind: TypeAlias = Literal["ident", "number", "string", "op", "keyword", "(", ")", ",", "sign", "end"]
_KEYWORDS = frozenset({"and", "or", "not", "in", "like", "exists", "true", "false", "asc", "desc"})
_IDENT = re.compile(r"[^\W\d][\w\-/.]*")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_TRAILING = re.compile(r"[\w\-/.]*")
_OPERATORS = ("==", "!=", "<>", "<=", ">=", "!~", "=", "<", ">", "~")


@dataclass(frozen=True)
class _Token:
    kind: TokenKind
    text: str  # the source text
    column: int  # 1-based
    value: Any = None  # number / string / keyword (lowercased) / identifier parts (head, key or None)

    def describe(self) -> str:
        if self.kind == "end":
            return "end of filter"
        text = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return text if self.kind == "string" else f"'{text}'"


def _tokens(text: str, *, signs: bool = False) -> Iterator[_Token]:
    """Split ``text`` into tokens; with ``signs``, a ``-``/``+`` before a field is a token (ORDER BY)."""
    pos, n = 0, len(text)
    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            yield _Token("end", "", n + 1)
            return
        ch, col = text[pos], pos + 1
        if ch in "'\"":
            end, value = _scan_string(text, pos)
            yield _Token("string", text[pos:end], col, value)
            pos = end
        elif ch in "(),":
            yield _Token(ch, ch, col)  # type: ignore[arg-type]
            pos += 1
        elif (number := _NUMBER.match(text, pos)) and not (signs and ch in "+-"):
            end = number.end()
            if end < n and (text[end].isalnum() or text[end] in "_."):
                end = _TRAILING.match(text, end).end()  # type: ignore[union-attr]
                raise _error(f"invalid number '{text[pos:end]}' at column {col}", text, col)
            yield _Token("number", text[pos:end], col, _number(text[pos:end]))
            pos = end
        elif ident := _IDENT.match(text, pos):
            end = ident.end()
            word = ident.group()
            head, dot, key = word.partition(".")
            key_part: str | None = key if dot else None
            if word.endswith(".") and end < n and text[end] == "`" and word.count(".") == 1:
                end, key_part = _scan_backquoted(text, end)
            elif end < n and text[end] == "`":
                raise _error(
                    f"unexpected '`' at column {end + 1}: a backquoted key follows its namespace, "
                    "as in metrics.`val loss`",
                    text,
                    end + 1,
                )
            if key_part is None and word.lower() in _KEYWORDS:
                yield _Token("keyword", word, col, word.lower())
            else:
                yield _Token("ident", text[pos:end], col, (head, key_part))
            pos = end
        elif signs and ch in "+-":
            yield _Token("sign", ch, col, ch)
            pos += 1
        elif op := next((o for o in _OPERATORS if text.startswith(o, pos)), None):
            yield _Token("op", op, col, op)
            pos += len(op)
        elif ch == "`":
            raise _error(
                f"unexpected '`' at column {col}: a backquoted key follows its namespace, as in metrics.`val loss`",
                text,
                col,
            )
        else:
            raise _error(f"unexpected character {ch!r} at column {col}", text, col)


def _scan_string(text: str, start: int) -> tuple[int, str]:
    """A quoted string from ``start``: backslash escapes a quote or backslash; a doubled quote is a quote."""
    quote = text[start]
    out: list[str] = []
    pos, n = start + 1, len(text)
    while pos < n:
        ch = text[pos]
        if ch == "\\" and pos + 1 < n and text[pos + 1] in (quote, "\\"):
            out.append(text[pos + 1])
            pos += 2
        elif ch == quote:
            if pos + 1 < n and text[pos + 1] == quote:
                out.append(quote)
                pos += 2
            else:
                return pos + 1, "".join(out)
        else:
            out.append(ch)
            pos += 1
    raise _error(f"unterminated string at column {start + 1}", text, start + 1, hint=f"close it with {quote}")


def _scan_backquoted(text: str, start: int) -> tuple[int, str]:
    """A backquoted key from ``start`` (the backquote); a doubled backquote is a backquote."""
    out: list[str] = []
    pos, n = start + 1, len(text)
    while pos < n:
        if text[pos] == "`":
            if pos + 1 < n and text[pos + 1] == "`":
                out.append("`")
                pos += 2
                continue
            if not out:
                raise _error(f"empty key at column {start + 1}", text, start + 1)
            return pos + 1, "".join(out)
        out.append(text[pos])
        pos += 1
    raise _error(
        f"unterminated backquoted key at column {start + 1}", text, start + 1, hint="close it with `"
    )


def _number(text: str) -> int | float:
    if re.fullmatch(r"[+-]?\d+", text):
        value = int(text)
        if abs(value) < 2**53:
            return value
    return float(text)


def _error(message: str, text: str, column: int | None, hint: str | None = _HINT) -> InvalidFilter:
    return InvalidFilter(message, expression=text, column=column, hint=hint)


# -- parsing -----------------------------------------------------------------------------------------


def parse_filter(text: str) -> Expr:
    """Parse a filter expression; raises :class:`InvalidFilter` (with a column) on any error."""
    if not isinstance(text, str):
        raise InvalidFilter(f"a filter is text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise _error(f"filter too long ({len(text)} characters; at most {MAX_LENGTH})", text, None, hint=None)
    if not text.strip():
        raise _error("empty filter: expected a condition such as metrics.acc > 0.9", text, 1)
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str, tokens: list[_Token] | None = None) -> None:
        self.text = text
        self.tokens = list(_tokens(text)) if tokens is None else tokens
        self.pos = 0
        self.depth = 0
        self.conditions = 0

    # token helpers
    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.peek()
        self.pos += 1
        return token

    def at_keyword(self, *words: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "keyword" and token.value in words

    def fail(self, token: _Token, expected: str, hint: str | None = _HINT) -> NoReturn:
        raise _error(
            f"unexpected {token.describe()} at column {token.column}: expected {expected}",
            self.text,
            token.column,
            hint,
        )

    # grammar
    def parse(self) -> Expr:
        expr = self.or_expr()
        token = self.peek()
        if token.kind != "end":
            if token.kind == ")":
                self.fail(token, "'and', 'or' or the end of the filter (this ')' closes nothing)")
            self.fail(token, "'and', 'or' or the end of the filter")
        return expr

    def or_expr(self) -> Expr:
        terms = [self.and_expr()]
        while self.at_keyword("or"):
            self.advance()
            terms.append(self.and_expr())
        return terms[0] if len(terms) == 1 else Or(tuple(terms))

    def and_expr(self) -> Expr:
        terms = [self.not_expr()]
        while self.at_keyword("and"):
            self.advance()
            terms.append(self.not_expr())
        return terms[0] if len(terms) == 1 else And(tuple(terms))

    def not_expr(self) -> Expr:
        token = self.peek()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(
                f"filter nested too deeply at column {token.column} (at most {MAX_DEPTH} levels)",
                self.text,
                token.column,
                hint=None,
            )
        try:
            if self.at_keyword("not"):
                self.advance()
                return Not(self.not_expr())
            if token.kind == "(":
                self.advance()
                inner = self.or_expr()
                close = self.peek()
                if close.kind != ")":
                    self.fail(close, f"')' to close the '(' at column {token.column}, 'and' or 'or'")
                self.advance()
                return inner
            if token.kind == "ident":
                return self.predicate(self.field(self.advance()))
            previous = self.tokens[self.pos - 1] if self.pos else None
            after = f" after {previous.describe()}" if previous else ""
            hint = None
            if token.kind in ("number", "string"):
                hint = "a condition starts with the field, as in metrics.acc > 0.9"
            self.fail(
                token,
                f"a condition (a field such as metrics.acc, params.lr, tags.team or status, "
                f"'not' or '('){after}",
                hint or _HINT,
            )
        finally:
            self.depth -= 1

    def field(self, token: _Token) -> Field:
        head, key = token.value
        lowered = head.lower()
        if key is not None:
            if lowered in NAMESPACES:
                if not key:
                    raise _error(
                        f"missing key after '{head}.' at column {token.column}",
                        self.text,
                        token.column,
                        hint=f"write {lowered}.<key>, as in {lowered}.acc",
                    )
                return Field(lowered, key, token.column)
            guess = difflib.get_close_matches(lowered, NAMESPACES, n=1, cutoff=0.6)
            if guess:
                suggestion = f"{guess[0]}.{key}"
            elif key.lower() in ATTRIBUTES:
                suggestion = key.lower()
            else:
                suggestion = ""
            raise self.unknown(token, suggestion)
        if lowered in ATTRIBUTES:
            return Field("attr", lowered, token.column)
        if lowered in NAMESPACES:
            raise _error(
                f"missing key after '{head}' at column {token.column}",
                self.text,
                token.column,
                hint=f"write {lowered}.<key>, as in {lowered}.acc",
            )
        guess = difflib.get_close_matches(lowered, list(ATTRIBUTES), n=1, cutoff=0.7)
        raise self.unknown(token, guess[0] if guess else "", bare=head)

    def unknown(self, token: _Token, suggestion: str, bare: str | None = None) -> InvalidFilter:
        message = f"unknown field '{token.text}' at column {token.column}"
        if suggestion:
            message += f" (did you mean '{suggestion}'?)"
        elif bare is not None and _BARE_KEY.fullmatch(bare):
            message += f" (did you mean 'metrics.{bare}', 'params.{bare}' or 'tags.{bare}'?)"
        hint = "fields are metrics.<key>, params.<key>, tags.<key> or one of " + ", ".join(ATTRIBUTES)
        return _error(message, self.text, token.column, hint=hint)

    def predicate(self, field: Field) -> Expr:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise _error(
                f"too many conditions at column {field.column} (at most {MAX_CONDITIONS})",
                self.text,
                field.column,
                hint=None,
            )
        token = self.peek()
        negated = False
        if self.at_keyword("not"):
            if not self.at_keyword("in", "like", "exists", ahead=1):
                self.fail(self.peek(1), "'in', 'like' or 'exists' after 'not'")
            negated = True
            self.advance()
            token = self.peek()
        if token.kind == "op" or self.at_keyword("like"):
            self.advance()
            op = {"==": "=", "<>": "!=", "~": "like", "!~": "not like"}.get(token.value, token.value)
            if negated:
                op = "not like"
            value_token = self.peek()
            value = self.value(field, op, token)
            return Comparison(field, op, value, value_token.column)
        if self.at_keyword("in"):
            self.advance()
            return self.in_list(field, token, negated)
        if self.at_keyword("exists"):
            self.advance()
            found = Exists(field, field.column)
            return Not(found) if negated else found
        self.fail(token, f"an operator (=, !=, <, <=, >, >=, ~, like, in or exists) after '{field}'")

    def in_list(self, field: Field, in_token: _Token, negated: bool) -> In:
        keyword = "not in" if negated else "in"
        open_paren = self.peek()
        if open_paren.kind != "(":
            self.fail(open_paren, f"'(' after '{keyword}', as in {field} {keyword} ('a', 'b')")
        self.advance()
        values: list[Value] = []
        while True:
            if self.peek().kind == ")" and values:  # a trailing comma is fine
                break
            values.append(self.value(field, "in", in_token, list_item=True))
            if len(values) > MAX_LIST:
                raise _error(
                    f"too many values in the list at column {open_paren.column} (at most {MAX_LIST})",
                    self.text,
                    open_paren.column,
                    hint=None,
                )
            separator = self.peek()
            if separator.kind == ",":
                self.advance()
            elif separator.kind == ")":
                break
            else:
                self.fail(separator, f"',' or ')' to close the '(' at column {open_paren.column}")
        self.advance()
        return In(field, tuple(values), negated, open_paren.column)

    def value(self, field: Field, op: str, op_token: _Token, *, list_item: bool = False) -> Value:
        """The literal after ``op``, checked against the field's type."""
        token = self.advance()
        where = "in the list" if list_item else f"after '{op_token.text}'"
        if token.kind not in ("number", "string") and not (
            token.kind == "keyword" and token.value in ("true", "false")
        ):
            hint = "a value is a number, a 'quoted string', true or false"
            if token.kind == "ident":
                hint = f"quote text values: {field} {op_token.text} '{token.text}'"
            self.pos -= 1
            self.fail(token, f"a value {where}", hint)
        literal: Value = token.value if token.kind != "keyword" else token.value == "true"
        return self.check(field, op, token, literal)

    def check(self, field: Field, op: str, token: _Token, literal: Value) -> Value:
        """Type-check ``literal`` for ``field`` and ``op``; return the value to compare with."""
        col = token.column
        is_like = op in ("like", "not like")
        kind = {"metrics": "number", "params": "any", "tags": "text"}.get(field.namespace) or ATTRIBUTES[
            field.key
        ]
        what = f"metric '{field.key}'" if field.namespace == "metrics" else f"'{field}'"

        def fail(message: str, hint: str | None = _HINT) -> NoReturn:
            raise _error(f"{message} at column {col}", self.text, col, hint)

        ordered = op in ("<", "<=", ">", ">=")
        if is_like and token.kind != "string":
            fail(f"'{op}' needs a quoted pattern, not {token.describe()}", hint="as in name ~ 'base%'")
        if ordered and isinstance(literal, bool):
            fail(f"'{op}' cannot order {token.describe()}", hint="compare true and false with = or !=")
        if kind == "number" or kind == "time":
            if is_like:
                fail(f"{what} is a number: '{op}' only applies to text", hint="use =, !=, <, <=, >, >= or in")
            if isinstance(literal, bool):
                fail(f"{what} is a number: cannot compare it with {token.describe()}")
            if isinstance(literal, str):
                if kind == "time":
                    return self.timestamp(literal, col)
                fail(
                    f"{what} is a number: cannot compare it with the string {token.describe()}",
                    hint="numbers are written without quotes",
                )
            return literal
        if kind == "text":
            if isinstance(literal, bool):
                if field.namespace == "tags":
                    return literal
                fail(
                    f"{what} is text: cannot compare it with {token.describe()}",
                    hint=f"quote the value: {field} = '{token.text}'",
                )
            if isinstance(literal, (int, float)):
                if ordered:
                    fail(
                        f"{what} is text: '{op}' would compare it with {token.describe()} as text",
                        hint=f"quote the value to compare text ({field} {op} '{token.text}'); params compare numbers",
                    )
                return token.text  # tags and text attributes compare as text: tags.epoch = 3 is '3'
            if (
                field.key == "status"
                and field.namespace == "attr"
                and not is_like
                and literal not in STATUSES
            ):
                guess = difflib.get_close_matches(literal, STATUSES, n=1)
                extra = f" (did you mean '{guess[0]}'?)" if guess else ""
                fail(
                    f"unknown status {token.describe()}{extra}",
                    hint="a status is one of " + ", ".join(STATUSES),
                )
        return literal

    def timestamp(self, literal: str, col: int) -> float:
        try:
            moment = datetime.fromisoformat(literal.strip())
        except ValueError:
            raise _error(
                f"invalid date '{literal}' at column {col}: expected an ISO 8601 date such as "
                "'2026-05-01' or '2026-05-01T14:30' (local time unless it has an offset), or epoch seconds",
                self.text,
                col,
            ) from None
        return moment.timestamp()  # a naive datetime is local time


# -- ORDER BY ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderKey:
    """One sort key: a field and its direction."""

    field: Field
    descending: bool = False

    def __str__(self) -> str:
        return f"-{self.field}" if self.descending else str(self.field)


def parse_order(spec: str) -> list[OrderKey]:
    """The sort keys of ``"-metrics.acc"``, ``"params.lr"``, ``"name"``, ``"-created"``.

    A leading ``-`` (or a trailing ``desc``) sorts descending. Several fields may
    be joined with commas. Runs without the key sort last in both directions;
    params sort numbers (numerically) before text.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise _error("empty order: expected a field such as -metrics.acc or name", str(spec), 1)
    tokens = list(_tokens(spec, signs=True))
    keys: list[OrderKey] = []
    pos = 0

    def fail(token: _Token, expected: str) -> NoReturn:
        raise _error(
            f"unexpected {token.describe()} at column {token.column}: expected {expected}",
            spec,
            token.column,
            hint="order by a field, '-field' for descending, as in -metrics.acc, name",
        )

    while True:
        descending = False
        token = tokens[pos]
        if token.kind == "sign":
            descending = token.value == "-"
            pos += 1
            token = tokens[pos]
        if token.kind != "ident":
            fail(token, "a field such as metrics.acc, params.lr, name or created")
        field = _Parser(spec, tokens).field(token)
        pos += 1
        if tokens[pos].kind == "keyword" and tokens[pos].value in ("asc", "desc"):
            descending = descending != (tokens[pos].value == "desc")
            pos += 1
        keys.append(OrderKey(field, descending))
        if tokens[pos].kind == "end":
            return keys
        if tokens[pos].kind != ",":
            fail(tokens[pos], "',' or the end of the order")
        pos += 1
