"""Small helpers for the words groundwork prints (shared by core, CLI and server)."""

from __future__ import annotations


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``"1 step"``, ``"3 steps"``, ``"0 steps"``: a count with its noun agreeing."""
    return f"{count:,} {noun if count == 1 else (plural_form or noun + 's')}"


def number_span(numbers: list[int]) -> str:
    """``"none"``, ``"3"``, ``"1..4"``, ``"1, 3"``: a short description of version numbers."""
    if not numbers:
        return "none"
    if len(numbers) == 1:
        return str(numbers[0])
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}..{numbers[-1]}"
    if len(numbers) <= 6:
        return ", ".join(map(str, numbers))
    return f"{numbers[0]}..{numbers[-1]} ({len(numbers)} versions)"
