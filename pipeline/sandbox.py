"""A Jinja2 sandbox that bounds what a prompt template may compute.

Jinja2's ``SandboxedEnvironment`` keeps a template away from Python's internals, but not from
the machine: ``{{ 'x' * 1000000000 }}`` allocates a gigabyte and nested loops run for hours. A
prompt template in a pull request is untrusted input, so this sandbox also meters it:

* every value a template makes (a string, a list) holds at most ``MAX_CHARS`` characters or
  items, and so does the rendered prompt. Operations that could make more are checked before
  they run (``*``, ``+``, ``**``, ``%``, ``~``, padding and joining), not after the allocation;
* a render does at most ``MAX_WORK`` units of work: one per loop iteration, filter and
  intercepted operator, ten per call, plus one per ten characters or items they touch; and it
  stops after ``MAX_SECONDS`` whatever it does (a backstop for work that is not metered);
* ``range()`` yields at most ``MAX_RANGE`` numbers; numbers stay under ``MAX_INT_BITS`` bits;
* only plain, linear-time methods of strings, lists and dicts may be called (no mutation), and
  the filters that cannot be bounded or are not deterministic (``random``, ``urlize``) are gone.

Limits raise :class:`LimitExceeded` (a Jinja2 ``SecurityError``) inside the template, so the
error carries the template line it happened on.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.runtime import BlockReference, LoopContext, Macro, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace

MAX_CHARS = 1_000_000  # characters (or items) of any value a template makes, and of the prompt
MAX_WORK = 1_000_000  # units of work per render
MAX_SECONDS = 5.0  # wall time per render, whatever the units say
MAX_RANGE = 100_000  # numbers from one range()
MAX_INT_BITS = 4_096  # bits of a number a template makes (about 1,200 digits)
UNIT_CHARS = 10  # characters or items touched per unit of work
CALL_UNITS = 10  # a call (a macro, a method) costs about as much as ten loop iterations
REMOVED_FILTERS = ("random", "urlize")


class LimitExceeded(SecurityError):
    """A template went past one of the sandbox's limits."""


@dataclass(slots=True)
class Budget:
    """What one render has spent."""

    work: int = 0
    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_SECONDS)

    def charge(self, units: int) -> None:
        self.work += units
        if self.work > MAX_WORK:
            raise LimitExceeded(
                f"the template takes more than {MAX_WORK:,} steps (loop iterations, calls, "
                "filters and operators, and the characters they handle)"
            )
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"the template takes more than {MAX_SECONDS:g} seconds to render")


_BUDGET: ContextVar[Budget | None] = ContextVar("knowngood_template_budget", default=None)


def begin() -> tuple[Any, Budget]:
    """Start metering a render on this thread or task: pass the token to :func:`end`."""
    budget = Budget()
    return _BUDGET.set(budget), budget


def end(token: Any) -> None:
    _BUDGET.reset(token)


def charge(units: int = 1) -> None:
    budget = _BUDGET.get()
    if budget is not None:  # None while Jinja2 folds constants at compile time: sizes still count
        budget.charge(units)


def _units(value: Any) -> int:
    return len(value) // UNIT_CHARS if isinstance(value, str | list | tuple | dict) else 0


def _too_long(what: str, size: int, unit: str = "characters") -> LimitExceeded:
    return LimitExceeded(f"{what} would make more than {MAX_CHARS:,} {unit} ({size:,})")


def _check_size(what: str, size: int, unit: str = "characters") -> None:
    if size > MAX_CHARS:
        raise _too_long(what, size, unit)


def _check_result(what: str | Callable[[], str], value: Any) -> None:
    """``what`` may be a function, called only to say what went wrong."""
    if isinstance(value, str | list | tuple | dict | set | frozenset):
        if len(value) > MAX_CHARS:
            unit = "characters" if isinstance(value, str) else "items"
            raise _too_long(what if isinstance(what, str) else what(), len(value), unit)
    elif type(value) is int and value.bit_length() > MAX_INT_BITS:
        said = what if isinstance(what, str) else what()
        raise LimitExceeded(f"{said} makes a number too large ({value.bit_length():,} bits)")


# --- what operators, methods and filters would make, checked before they run ----------------

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
    _check_size(what, len(fmt) + widths + _length(values))


def _length(values: Iterable[Any]) -> int:
    return sum(len(v) if isinstance(v, str) else 24 for v in values)


def _check_repeat(left: Any, right: Any) -> None:
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and type(n) is int:
            unit = "characters" if isinstance(seq, str) else "items"
            _check_size(f"{type(seq).__name__} * {n:,}", len(seq) * max(n, 0), unit)
    both_ints = type(left) is int and type(right) is int
    if both_ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise LimitExceeded(f"{left} * {right} makes a number too large")


def _check_power(left: Any, right: Any) -> None:
    big = type(left) is int and type(right) is int and right > 0 and abs(left) > 1
    if big and left.bit_length() * right > MAX_INT_BITS:
        raise LimitExceeded(f"{left} ** {right:,} makes a number too large")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        _check_repeat(left, right)
    elif operator == "**":
        _check_power(left, right)
    elif operator == "+" and isinstance(left, str | list | tuple) and isinstance(right, type(left)):
        _check_size("+", len(left) + len(right))
    elif operator == "%" and isinstance(left, str):
        _check_printf("%", left, right)


def _check_replace(s: str, old: Any, new: Any, *_: Any) -> None:
    if isinstance(old, str) and isinstance(new, str):
        times = s.count(old) if old else len(s) + 1
        _check_size("replace()", len(s) + times * max(len(new) - len(old), 0))


def _check_join(sep: str, items: Any) -> None:
    if isinstance(items, list | tuple):
        _check_size("join()", len(sep) * max(len(items) - 1, 0) + _length(items))


def _check_expandtabs(s: str, tabsize: Any = 8) -> None:
    if type(tabsize) is int:
        _check_size("expandtabs()", len(s) + s.count("\t") * max(tabsize, 0))


_NESTED_FIELD = re.compile(r"\{[^{}]*\{")
_FORMAT_SPEC = re.compile(r":([^{}]*)\}")


def _check_format(s: str, *args: Any, **kwargs: Any) -> None:
    """``s.format(...)``: the widths in the format specs bound what it makes."""
    if _NESTED_FIELD.search(s):
        raise LimitExceeded(
            "format(): a width or precision from an argument ({:{w}}) is not allowed"
        )
    widths = sum(int(n) for spec in _FORMAT_SPEC.findall(s) for n in _FORMAT_NUMBERS.findall(spec))
    _check_size("format()", len(s) + widths + _length(args) + _length(kwargs.values()))


def _check_width(s: str, width: Any = 0, *_: Any) -> None:
    if type(width) is int:
        _check_size("padding", max(len(s), width))


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
_METHODS: dict[type, dict[str, Check]] = {
    str: _STR_METHODS,
    list: _LIST_METHODS,
    tuple: _LIST_METHODS,
    dict: _DICT_METHODS,
}


def _indent_check(s: Any, width: Any = 4, *_: Any, **__: Any) -> None:
    if isinstance(s, str):
        pad = len(width) if isinstance(width, str) else width if type(width) is int else 0
        _check_size("the indent filter", len(s) + (s.count("\n") + 1) * max(pad, 0))


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
        _check_size("the center filter", max(len(str(value)), width))


def _batch_check(value: Any, linecount: Any = 1, *_: Any, **__: Any) -> None:
    if type(linecount) is int:
        _check_size("the batch filter", linecount, "items")


_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "indent": _indent_check,
    "join": _join_check,
    "replace": _replace_check,
    "format": _format_check,
    "slice": _slice_check,
    "center": _center_check,
    "batch": _batch_check,
}


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    check = _FILTER_CHECKS.get(name)
    passes_context = getattr(func, "jinja_pass_arg", None) is not None
    what = f"the {name} filter"

    @functools.wraps(func)  # keeps jinja_pass_arg, which says what Jinja2 passes first
    def run(*args: Any, **kwargs: Any) -> Any:
        first = 1 if passes_context else 0
        if name == "join" and len(args) > first and not isinstance(args[first], str | list):
            args = (*args[:first], list(args[first]), *args[first + 1 :])  # count what it joins
        data = args[first:]
        charge(1 + (_units(data[0]) if data else 0))
        if check is not None and data:
            check(*data, **kwargs)
        result = func(*args, **kwargs)
        _check_result(what, result)
        charge(_units(result))
        return result

    return run


def bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise LimitExceeded(f"range() of {len(numbers):,} numbers (at most {MAX_RANGE:,})")
    return numbers


def step() -> bool:
    """One loop iteration (``instrument`` puts the calls in)."""
    charge(1)
    return True


_CALLABLE_GLOBALS = frozenset(map(id, (bounded_range, dict, Cycler, Joiner, Namespace)))
_RUNTIME_OBJECTS = (Macro, BlockReference, LoopContext, Joiner, Undefined)


_STEP = "knowngood_step"


class _Generator(CodeGenerator):
    """Compiles ``environment.knowngood_step`` (which only ``instrument`` puts in a template:
    Jinja2's parser makes environment attributes for extensions, and we load none) to a direct
    call, bypassing the sandbox's ``call``: a loop iteration costs ~1 us more, not ~10."""

    def visit_EnvironmentAttribute(self, node: nodes.EnvironmentAttribute, frame: Frame) -> None:
        super().visit_EnvironmentAttribute(node, frame)
        if node.name == _STEP:
            self.write("()")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        """``a ~ b`` goes through ``environment.bounded_concat`` (Jinja2 joins it inline)."""
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """``ImmutableSandboxedEnvironment`` with the limits of this module."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals = {
            "range": bounded_range,
            "dict": dict,
            "cycler": Cycler,
            "joiner": Joiner,
            "namespace": Namespace,
        }
        setattr(self, _STEP, step)
        self.filters = {
            name: _bounded_filter(name, func)
            for name, func in self.filters.items()
            if name not in REMOVED_FILTERS
        }

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        charge(1 + _units(left) + _units(right))
        _check_binop(operator, left, right)
        result = self.binop_table[operator](left, right)
        _check_result(f"the {operator} operator", result)
        return result

    def bounded_concat(self, parts: Iterable[Any]) -> str:
        texts = [str(p) for p in parts]
        size = sum(map(len, texts))
        charge(1 + size // UNIT_CHARS)
        _check_size("~", size)
        return "".join(texts)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        args = __self.check_callable(__obj, args, kwargs)
        charge(CALL_UNITS + sum(map(_units, args)))
        result = super().call(__context, __obj, *args, **kwargs)
        _check_result(lambda: f"calling {_name(__obj)}", result)
        charge(_units(result))
        return result

    def check_callable(
        self, obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> tuple[Any, ...]:
        """Only template macros, Jinja2's helpers and an allow-list of methods may be called.
        Returns the arguments to call with (what ``str.join`` joins, as a list it can count)."""
        if isinstance(obj, _RUNTIME_OBJECTS) or id(obj) in _CALLABLE_GLOBALS:
            return args
        target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
        owner = getattr(target, "__self__", None)
        if isinstance(owner, LoopContext | Cycler):
            return args  # loop.cycle(), loop.changed(), cycler.next()
        methods = _METHODS.get(type(owner))
        name = getattr(target, "__name__", "")
        if methods is None or name not in methods:
            raise SecurityError(f"calling {_name(obj)} is not allowed in a prompt template")
        if name == "join" and args and not isinstance(args[0], list | tuple):
            args = (list(args[0]), *args[1:])
        check = methods[name]
        if check is not None:
            check(owner, *args, **kwargs)
        return args


def _name(obj: Any) -> str:
    target = getattr(obj, "__wrapped__", obj)
    owner = getattr(target, "__self__", None)
    name = getattr(target, "__name__", type(obj).__name__)
    return f"{type(owner).__name__}.{name}()" if owner is not None else f"{name}()"


def instrument(ast: nodes.Template, env: BoundedSandbox) -> nodes.Template:
    """Charge every loop iteration: a call to ``environment.knowngood_step`` (which a template
    cannot rebind) at the top of each ``for`` body, and before each ``if`` of a filtered loop
    (``for x in xs if test``), whose skipped items never reach the body."""
    for loop in list(ast.find_all(nodes.For)):
        step_here = nodes.ExprStmt(_step(loop.lineno, env), lineno=loop.lineno, environment=env)
        loop.body.insert(0, step_here)
        if loop.test is not None:
            test = nodes.And(_step(loop.lineno, env), loop.test, lineno=loop.lineno)
            loop.test = test.set_environment(env)
    return ast


def _step(lineno: int, env: BoundedSandbox) -> nodes.EnvironmentAttribute:
    return nodes.EnvironmentAttribute(_STEP, lineno=lineno, environment=env)
