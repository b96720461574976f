"""The eval fast paths give the same answers as the plain ones: cache keys built from shared
parts, memoised system prompts, and the cache's packs."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path
from typing import Any

import pytest

from pipeline.evals.cache import Cache, RequestKeys, cache_key
from pipeline.evals.plan import build_messages
from pipeline.repo import Agent, Case, Suite


def _value(rnd: random.Random, depth: int = 0) -> Any:
    kind = rnd.randrange(7 if depth < 3 else 4)
    if kind == 0:
        return rnd.randint(-5, 10**6)
    if kind == 1:
        return "".join(rnd.choice(string.printable + 'é€😀"\\') for _ in range(rnd.randrange(8)))
    if kind == 2:
        return rnd.choice([None, True, False, 1.5, -0.0])
    if kind == 3:
        return rnd.random()
    if kind == 4:
        return [_value(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    return {
        "".join(rnd.choice("abcXYZ_é") for _ in range(rnd.randrange(1, 5))): _value(rnd, depth + 1)
        for _ in range(rnd.randrange(4))
    }


def test_request_keys_equal_cache_key_byte_for_byte() -> None:
    rnd = random.Random(7)
    for _ in range(2000):
        params = _value(rnd, 1)
        fields: dict[str, Any] = {
            "model": rnd.choice(["openai/gpt-4o-mini", "x/é"]),
            "api_base": rnd.choice([None, "", "http://127.0.0.1:1/v1", "https://u:p@h/v1"]),
            "tools": rnd.choice([None, [], [_value(rnd, 1)]]),
            "params": params if isinstance(params, dict) else {"api_key": "s", "timeout": 3},
            "kind": rnd.choice(["chat", "embed"]),
        }
        messages = [_value(rnd, 1) for _ in range(rnd.randrange(3))]
        repeat = rnd.randrange(5)
        expected = cache_key(**fields, messages=messages, repeat_index=repeat)
        assert RequestKeys(**fields).key(messages, repeat) == expected


def test_request_keys_refuse_what_cache_key_refuses() -> None:
    keys = RequestKeys(model="m", api_base=None, tools=None, params={})
    with pytest.raises(TypeError, match="not JSON"):
        keys.key([{"content": object()}], 0)
    with pytest.raises(TypeError, match="not JSON"):
        RequestKeys(model="m", api_base=None, tools=None, params={"seed": object()})


def _agent(source: str) -> Agent:
    raw = {"model": {"provider": "p"}, "prompt": {"system": "p.md", "vars": {"company": "Acme"}}}
    return Agent("shop", Path("agents/shop"), raw, "p.md", source, ())


def test_memoised_prompts_render_each_case_as_the_plain_path_does() -> None:
    agent = _agent("You work for {{ company }}. You talk to {{ customer }}; n={{ n }}.")
    suite = Suite("s", "shop", "evals/shop/s.yaml", (), vars={"customer": "Ann"})
    cases = [
        Case(id="a", input="hi", expect=()),
        Case(id="b", input="hi", expect=(), vars={"customer": "Bob"}),
        Case(id="c", input=[{"role": "user", "content": "x"}], expect=()),
        Case(id="d", input="hi", expect=(), vars={"n": 1}),
        Case(id="e", input="hi", expect=(), vars={"n": 1.0}),
        Case(id="f", input="hi", expect=(), vars={"n": True}),
    ]
    prompts: dict[tuple[int, str], str] = {}
    for case in cases:
        if "n" not in case.vars:
            case = Case(id=case.id, input=case.input, expect=(), vars={**case.vars, "n": 0})
        memo = build_messages(agent, suite, case, prompts)
        assert memo == build_messages(agent, suite, case)
    texts = [m[0]["content"] for m in (build_messages(agent, suite, c, prompts) for c in cases[3:])]
    assert texts == [
        "You work for Acme. You talk to Ann; n=1.",
        "You work for Acme. You talk to Ann; n=1.0.",
        "You work for Acme. You talk to Ann; n=True.",
    ]


def test_a_final_prompt_is_sent_as_it_is_never_rendered_again() -> None:
    """A deployed bundle's prompt (Target.prompt) was rendered at build time: text that looks
    like a template in it is the prompt's own, and case variables do not apply."""
    agent = _agent("unused {{ company }}")
    suite = Suite("s", "shop", "evals/shop/s.yaml", (), vars={"customer": "Ann"})
    case = Case(id="a", input="hi", expect=(), vars={"company": "Other"})
    final = "Reply with {{ company }} literally; {% raw %} stays."
    for prompts in (None, {}):
        messages = build_messages(agent, suite, case, prompts, prompt=final)
        assert messages == [
            {"role": "system", "content": final},
            {"role": "user", "content": "hi"},
        ]


def test_many_puts_leave_one_private_pack(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    keys = [
        cache_key(model="m", api_base=None, messages=[i], tools=None, params={}, repeat_index=0)
        for i in range(300)
    ]
    for i, key in enumerate(keys):
        cache.put(key, {"text": f"answer {i}"})
    fresh = Cache(tmp_path)
    for i, key in enumerate(keys):
        assert cache.get(key) == fresh.get(key) == {"text": f"answer {i}"}
    (pack,) = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert pack == cache.pack and not pack.name.startswith(".")
    assert pack.stat().st_mode & 0o077 == 0  # private
    assert [json.loads(line)["key"] for line in pack.read_text().splitlines()] == keys
