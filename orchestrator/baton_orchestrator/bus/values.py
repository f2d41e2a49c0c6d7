"""What a JSON value may hold to be stored in PostgreSQL and forwarded to every SDK.

PostgreSQL's jsonb refuses NUL characters and lone surrogates; orjson, which encodes every job, stops at
255 levels of nesting and at integers beyond 64 bits (and turns larger integer literals into lossy
floats when decoding); Java and JavaScript SDKs read numbers as 64-bit values. A value that breaks one of
these rules would fail a whole batch far from where it came in, so it is refused where it enters: at the
API (422) and in the results codec (the attempt fails with `invalid_result`).

The checks on raw bytes run in C (bytes.find / count, one regex) and only a suspicious message pays
for a walk over its decoded value, so the hot path keeps its cost.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Fan-in and the job envelope each add a level: 128 leaves room below orjson's limit of 255.
MAX_DEPTH = 128
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_LONG_DIGITS = re.compile(rb"\d{19,}")


class InvalidValue(ValueError):
    """A JSON value Baton cannot store or forward losslessly; the message says which rule it broke."""


def check_value(value: Any, what: str = "value") -> None:
    """Raise InvalidValue unless `value` (decoded JSON) can be stored and forwarded as it is."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_str(item, what)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not INT_MIN <= item <= INT_MAX:
                raise InvalidValue(f"{what} holds an integer outside the signed 64-bit range: {_short(item)}")
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise InvalidValue(f"{what} holds a number that is not finite")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise InvalidValue(f"{what} is nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, val in item.items():
                    _check_str(str(key), what)
                    stack.append((val, depth + 1))
            else:
                stack.extend((val, depth + 1) for val in item)
        else:
            raise InvalidValue(f"{what} holds a {type(item).__name__}, which is not a JSON value")


def check_raw(raw: bytes, value: Any, what: str = "value") -> None:
    """The same rules for a value orjson decoded from `raw`: a full walk only when the bytes hint at a problem."""
    if b"\\u0000" in raw:
        check_value(value, what)  # a false hint (an escaped backslash before "u0000") passes the walk
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        check_value(value, what)
    if _LONG_DIGITS.search(raw):
        _check_long_literals(raw, what)


def _check_long_literals(raw: bytes, what: str) -> None:
    # orjson has already turned an over-range integer literal into a float; only the text still shows it.
    def exact_int(text: str) -> int:
        number = int(text)
        if not INT_MIN <= number <= INT_MAX:
            raise InvalidValue(f"{what} holds an integer outside the signed 64-bit range: {_short(number)}")
        return number

    try:
        json.loads(raw, parse_int=exact_int)
    except InvalidValue:
        raise
    except ValueError as exc:  # orjson accepted it, so this cannot happen for well-formed input
        raise InvalidValue(f"{what} is not valid JSON: {exc}") from None


def _check_str(text: str, what: str) -> None:
    if "\x00" in text:
        raise InvalidValue(f"{what} holds a NUL character (\\u0000), which PostgreSQL cannot store")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValue(f"{what} holds a lone surrogate, which is not valid Unicode") from None


def _short(number: int) -> str:
    digits = str(number)
    return digits if len(digits) <= 30 else f"{digits[:12]}…({len(digits)} digits)"
