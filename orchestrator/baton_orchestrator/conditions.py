"""`when:` conditions: a small, safe expression language over the run input and parent outputs.

    when: "$.steps.score.output.value >= 100 and $.input.region != 'eu'"

Grammar (parsed once, at definition time; evaluated without `eval`):
    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
    operand := path | literal | "(" expr ")"
    path    := "$.input" ("." key)*  |  "$.steps." name ".output" ("." key)*
    literal := number | 'string' | "string" | true | false | null

A path that leads nowhere is null. `==` / `!=` compare any JSON values; `<`, `<=`, `>`, `>=` compare two
numbers or two strings and are false for anything else. A bare operand is true when it is not null,
false, 0, "" or empty.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .engine.transitions import dig

MAX_LENGTH = 2000
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<path>\$\.[A-Za-z0-9_.\-]+)
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|<=|>=|<|>|\(|\))
      | (?P<word>[A-Za-z_]+)
    )""",
    re.VERBOSE,
)
_WORDS = {"and", "or", "not", "true", "false", "null"}
_COMPARE = ("==", "!=", "<", "<=", ">", ">=")


class ConditionError(ValueError):
    """A `when:` expression that does not parse; the message says where."""


@dataclass(frozen=True, slots=True)
class Condition:
    text: str
    tree: Any
    refs: frozenset[str]  # step names whose outputs it reads

    def evaluate(self, run_input: Any, outputs: dict[str, Any]) -> bool:
        return _truthy(_eval(self.tree, run_input, outputs))


def parse(text: str) -> Condition:
    if not isinstance(text, str) or not text.strip():
        raise ConditionError("a condition must be a non-empty string")
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"a condition may be at most {MAX_LENGTH} characters")
    parser = _Parser(_tokens(text))
    tree = parser.expr()
    if (extra := parser.peek()) is not None:
        raise ConditionError(f"unexpected {extra[1]!r} at position {extra[2]}")
    return Condition(text, tree, frozenset(_refs(tree)))


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ConditionError(f"cannot read {text[pos:].strip()[:20]!r} at position {pos}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "word" and value not in _WORDS:
            raise ConditionError(f"unknown word {value!r} at position {m.start(kind)} (paths start with '$.')")
        out.append((kind, value, m.start(kind)))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str, int]]) -> None:
        self.tokens, self.i = tokens, 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        tok = self.peek()
        if tok is None:
            raise ConditionError("the condition ends too early" + (f": expected {value!r}" if value else ""))
        if value is not None and tok[1] != value:
            raise ConditionError(f"expected {value!r} at position {tok[2]}, found {tok[1]!r}")
        self.i += 1
        return tok

    def _is(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[1] == value and tok[0] in ("op", "word")

    def expr(self) -> Any:
        left = self.conj()
        while self._is("or"):
            self.take()
            left = ("or", left, self.conj())
        return left

    def conj(self) -> Any:
        left = self.neg()
        while self._is("and"):
            self.take()
            left = ("and", left, self.neg())
        return left

    def neg(self) -> Any:
        if self._is("not"):
            self.take()
            return ("not", self.neg())
        return self.compare()

    def compare(self) -> Any:
        left = self.operand()
        tok = self.peek()
        if tok is not None and tok[0] == "op" and tok[1] in _COMPARE:
            self.take()
            return ("cmp", tok[1], left, self.operand())
        return left

    def operand(self) -> Any:
        kind, value, pos = self.take()
        if value == "(" and kind == "op":
            inner = self.expr()
            self.take(")")
            return inner
        if kind == "path":
            return ("path", *_path(value, pos))
        if kind == "number":
            return ("lit", json.loads(value))
        if kind == "string":
            return ("lit", _string(value))
        if kind == "word" and value in ("true", "false", "null"):
            return ("lit", json.loads(value))
        raise ConditionError(f"expected a value at position {pos}, found {value!r}")


def _path(text: str, pos: int) -> tuple[str | None, tuple[str, ...]]:
    parts = text[2:].split(".")
    if parts[0] == "input":
        return None, tuple(parts[1:])
    if parts[0] == "steps" and len(parts) >= 3 and parts[2] == "output" and parts[1]:
        return parts[1], tuple(parts[3:])
    raise ConditionError(f"unknown path {text!r} at position {pos}: use $.input… or $.steps.<name>.output…")


def _string(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _refs(tree: Any) -> set[str]:
    if tree[0] == "path":
        return {tree[1]} if tree[1] is not None else set()
    if tree[0] == "lit":
        return set()
    return set().union(*(_refs(t) for t in tree[1:] if isinstance(t, tuple)))


def _eval(tree: Any, run_input: Any, outputs: dict[str, Any]) -> Any:
    kind = tree[0]
    if kind == "lit":
        return tree[1]
    if kind == "path":
        value = run_input if tree[1] is None else outputs.get(tree[1])
        return dig(value, tree[2])
    if kind == "not":
        return not _truthy(_eval(tree[1], run_input, outputs))
    if kind == "and":
        return _truthy(_eval(tree[1], run_input, outputs)) and _truthy(_eval(tree[2], run_input, outputs))
    if kind == "or":
        return _truthy(_eval(tree[1], run_input, outputs)) or _truthy(_eval(tree[2], run_input, outputs))
    return _compare(tree[1], _eval(tree[2], run_input, outputs), _eval(tree[3], run_input, outputs))


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return _same(a, b)
    if op == "!=":
        return not _same(a, b)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    if not numbers and not (isinstance(a, str) and isinstance(b, str)):
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _same(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1, and 1 == 1.0.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and value != [] and value != {}
