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
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.runtime import BlockReference, LoopContext, Macro, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace

from pipeline.sandbox.budget import (
    Budget,
    LimitExceeded,
    begin,
    charge,
    check_result,
    check_size,
    end,
    units,
)
from pipeline.sandbox.checks import FILTER_CHECKS, METHODS, check_binop
from pipeline.templatelimits import (
    CALL_UNITS,
    MAX_CHARS,
    MAX_INT_BITS,
    MAX_RANGE,
    MAX_SECONDS,
    MAX_WORK,
    REMOVED_FILTERS,
    UNIT_CHARS,
)

__all__ = [
    "MAX_CHARS",
    "MAX_INT_BITS",
    "MAX_RANGE",
    "MAX_SECONDS",
    "MAX_WORK",
    "BoundedSandbox",
    "Budget",
    "LimitExceeded",
    "begin",
    "end",
    "instrument",
]


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    check = FILTER_CHECKS.get(name)
    passes_context = getattr(func, "jinja_pass_arg", None) is not None
    what = f"the {name} filter"

    @functools.wraps(func)  # keeps jinja_pass_arg, which says what Jinja2 passes first
    def run(*args: Any, **kwargs: Any) -> Any:
        first = 1 if passes_context else 0
        if name == "join" and len(args) > first and not isinstance(args[first], str | list):
            args = (*args[:first], list(args[first]), *args[first + 1 :])  # count what it joins
        data = args[first:]
        charge(1 + (units(data[0]) if data else 0))
        if check is not None and data:
            check(*data, **kwargs)
        result = func(*args, **kwargs)
        check_result(what, result)
        charge(units(result))
        return result

    return run


def bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise LimitExceeded(f"range() of {len(numbers):,} numbers (at most {MAX_RANGE:,})")
    return numbers


def step(weight: int = 1) -> bool:
    """One loop iteration (``instrument`` puts the calls in)."""
    charge(weight)
    return True


_CALLABLE_GLOBALS = frozenset(map(id, (bounded_range, dict, Cycler, Joiner, Namespace)))
_RUNTIME_OBJECTS = (Macro, BlockReference, LoopContext, Joiner, Undefined)


_STEP = "knowngood_step"


class _Generator(CodeGenerator):
    """Compiles a call of ``environment.knowngood_step`` (which only ``instrument`` puts in a
    template: Jinja2's parser makes environment attributes for extensions, and we load none)
    to a direct call, bypassing the sandbox's ``call``: a loop iteration costs ~1 us more, not
    ~10."""

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        target = node.node
        if isinstance(target, nodes.EnvironmentAttribute) and target.name == _STEP:
            weight = (
                node.args[0].value if node.args and isinstance(node.args[0], nodes.Const) else 1
            )
            self.write(f"environment.{_STEP}({int(weight)})")
            return
        super().visit_Call(node, frame, forward_caller=forward_caller)

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
        self.finalize = _finalize
        self.filters = {
            name: _bounded_filter(name, func)
            for name, func in self.filters.items()
            if name not in REMOVED_FILTERS
        }

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        charge(1 + units(left) + units(right))
        check_binop(operator, left, right)
        result = self.binop_table[operator](left, right)
        check_result(f"the {operator} operator", result)
        return result

    def bounded_concat(self, parts: Iterable[Any]) -> str:
        texts = [str(p) for p in parts]
        size = sum(map(len, texts))
        charge(1 + size // UNIT_CHARS)
        check_size("~", size)
        return "".join(texts)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        args = __self.check_callable(__obj, args, kwargs)
        charge(CALL_UNITS + sum(map(units, args)))
        result = super().call(__context, __obj, *args, **kwargs)
        check_result(lambda: f"calling {_name(__obj)}", result)
        charge(units(result))
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
        methods = METHODS.get(type(owner))
        name = getattr(target, "__name__", "")
        if methods is None or name not in methods:
            raise SecurityError(f"calling {_name(obj)} is not allowed in a prompt template")
        if name == "join" and args and not isinstance(args[0], list | tuple):
            args = (list(args[0]), *args[1:])
        check = methods[name]
        if check is not None:
            check(owner, *args, **kwargs)
        return args


def _finalize(value: Any) -> Any:
    """Every ``{{ value }}`` written, charged by its size: output may pile up in a buffer (a
    macro's, a filter block's) before the rendered prompt's size is checked."""
    charge(1 + (len(value) // UNIT_CHARS if isinstance(value, str) else units(value)))
    return value


def _name(obj: Any) -> str:
    target = getattr(obj, "__wrapped__", obj)
    owner = getattr(target, "__self__", None)
    name = getattr(target, "__name__", type(obj).__name__)
    return f"{type(owner).__name__}.{name}()" if owner is not None else f"{name}()"


def instrument(ast: nodes.Template, env: BoundedSandbox) -> nodes.Template:
    """Charge every loop iteration: a call to ``environment.knowngood_step`` (which a template
    cannot rebind) at the top of each ``for`` body, for one unit plus the literal text the body
    writes (which may pile up in a macro's or a filter block's buffer before any check sees
    it), and before each ``if`` of a filtered loop (``for x in xs if test``), whose skipped items
    never reach the body."""
    for loop in list(ast.find_all(nodes.For)):
        weight = 1 + _literal_size(loop.body) // UNIT_CHARS
        step_here = nodes.ExprStmt(_step(loop.lineno, weight), lineno=loop.lineno)
        loop.body.insert(0, step_here.set_environment(env))
        if loop.test is not None:
            test = nodes.And(_step(loop.lineno, 1), loop.test, lineno=loop.lineno)
            loop.test = test.set_environment(env)
    return ast


def _step(lineno: int, weight: int) -> nodes.Call:
    charge_it = nodes.EnvironmentAttribute(_STEP, lineno=lineno)
    return nodes.Call(
        charge_it, [nodes.Const(weight, lineno=lineno)], [], None, None, lineno=lineno
    )


def _literal_size(body: list[nodes.Node]) -> int:
    """Characters of literal text in ``body``, outside the loops nested in it (they charge
    their own)."""
    size = 0
    stack: list[nodes.Node] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.TemplateData):
            size += len(node.data)
        elif not isinstance(node, nodes.For):
            stack.extend(node.iter_child_nodes())
    return size
