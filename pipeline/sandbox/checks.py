"""What operators, methods and filters would make, checked before they run: a template's
``'x' * 10**9`` must fail before it allocates a gigabyte, not after."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from pipeline.sandbox.budget import LimitExceeded, check_size
from pipeline.templatelimits import MAX_INT_BITS

_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_NUMBERS = re.compile(r"\d+")


def _check_printf(what: str, fmt: str, args: Any) -> None:
    """``fmt % args``: the widths and precisions in ``fmt`` (or, for ``*``, in ``args``) bound
    what it makes beyond the arguments themselves."""
    values = args if isinstance(args, tuple) else (args,)
    specs = [n for m in _PRINTF_SPEC.finditer(fmt) for n in m.groups() if n]
    widths = sum(int(n) for n in specs if n != "*")
    if "*" in specs:
        widths += sum(abs(v) for v in values if type(v) is int)
    check_size(what, len(fmt) + widths + _length(values))


def _length(values: Iterable[Any]) -> int:
    return sum(len(v) if isinstance(v, str) else 24 for v in values)


def _check_repeat(left: Any, right: Any) -> None:
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and type(n) is int:
            unit = "characters" if isinstance(seq, str) else "items"
            check_size(f"{type(seq).__name__} * {n:,}", len(seq) * max(n, 0), unit)
    both_ints = type(left) is int and type(right) is int
    if both_ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise LimitExceeded(f"{left} * {right} makes a number too large")


def _check_power(left: Any, right: Any) -> None:
    big = type(left) is int and type(right) is int and right > 0 and abs(left) > 1
    if big and left.bit_length() * right > MAX_INT_BITS:
        raise LimitExceeded(f"{left} ** {right:,} makes a number too large")


def check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        _check_repeat(left, right)
    elif operator == "**":
        _check_power(left, right)
    elif operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, type(left)):
        check_size("+", len(left) + len(right))
    elif operator == "%" and isinstance(left, str):
        _check_printf("%", left, right)


def _check_replace(s: str, old: Any, new: Any, *_: Any) -> None:
    if isinstance(old, str) and isinstance(new, str):
        times = s.count(old) if old else len(s) + 1
        check_size("replace()", len(s) + times * max(len(new) - len(old), 0))


def _check_join(sep: str, items: Any) -> None:
    if isinstance(items, list | tuple):
        check_size("join()", len(sep) * max(len(items) - 1, 0) + _length(items))


def _check_expandtabs(s: str, tabsize: Any = 8) -> None:
    if type(tabsize) is int:
        check_size("expandtabs()", len(s) + s.count("\t") * max(tabsize, 0))


_NESTED_FIELD = re.compile(r"\{[^{}]*\{")
_FORMAT_SPEC = re.compile(r":([^{}]*)\}")


def _check_format(s: str, *args: Any, **kwargs: Any) -> None:
    """``s.format(...)``: the widths in the format specs bound what it makes."""
    if _NESTED_FIELD.search(s):
        raise LimitExceeded(
            "format(): a width or precision from an argument ({:{w}}) is not allowed"
        )
    widths = sum(int(n) for spec in _FORMAT_SPEC.findall(s) for n in _FORMAT_NUMBERS.findall(spec))
    check_size("format()", len(s) + widths + _length(args) + _length(kwargs.values()))


def _check_width(s: str, width: Any = 0, *_: Any) -> None:
    if type(width) is int:
        check_size("padding", max(len(s), width))


Check = Callable[..., None] | None
_STR_METHODS: dict[str, Check] = {
    **dict.fromkeys(
        (
            *("capitalize", "casefold", "count", "endswith", "find", "index", "isalnum"),
            *("isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower"),
            *("isnumeric", "isspace", "istitle", "isupper", "lower", "lstrip", "partition"),
            *("removeprefix", "removesuffix", "rfind", "rindex", "rpartition", "rsplit"),
            *("rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title"),
            "upper",
        )
    ),
    **dict.fromkeys(("center", "ljust", "rjust", "zfill"), _check_width),
    "replace": _check_replace,
    "join": lambda sep, items=(), *_: _check_join(sep, items),
    "expandtabs": _check_expandtabs,
    "format": _check_format,
}
_LIST_METHODS: dict[str, Check] = dict.fromkeys(("count", "index", "copy"))
_DICT_METHODS: dict[str, Check] = dict.fromkeys(("get", "items", "keys", "values", "copy"))
METHODS: dict[type, dict[str, Check]] = {
    str: _STR_METHODS,
    list: _LIST_METHODS,
    tuple: _LIST_METHODS,
    dict: _DICT_METHODS,
}


def _indent_check(s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    if isinstance(s, str):
        pad = len(width) if isinstance(width, str) else width if type(width) is int else 0
        check_size("the indent filter", len(s) + (s.count("\n") + 1) * max(pad, 0))


def _join_check(value: Any, d: Any = "", *_: Any, **__: Any) -> None:
    if isinstance(value, list | tuple) and isinstance(d, str):
        _check_join(d, value)


def _replace_check(s: Any, old: Any = "", new: Any = "", *_: Any, **__: Any) -> None:
    if isinstance(s, str):
        _check_replace(s, old, new)


def _format_check(value: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, str):
        _check_printf("the format filter", value, args or tuple(kwargs.values()))


def _slice_check(value: Any, slices: Any = 1, *_: Any, **__: Any) -> None:
    if type(slices) is int and slices > 1_000:
        raise LimitExceeded(f"the slice filter: {slices:,} slices (at most 1,000)")


def _center_check(value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    if type(width) is int:
        check_size("the center filter", max(len(str(value)), width))


def _batch_check(value: Any, linecount: Any = 1, *_: Any, **__: Any) -> None:
    if type(linecount) is int:
        check_size("the batch filter", linecount, "items")


FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "indent": _indent_check,
    "join": _join_check,
    "replace": _replace_check,
    "format": _format_check,
    "slice": _slice_check,
    "center": _center_check,
    "batch": _batch_check,
}
