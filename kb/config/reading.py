"""The shared readers of ``support.toml`` values: each takes a table, the key's full name for the message and
its default, and returns the value typed or raises ``ConfigError`` naming the key and the fix."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from decimal import Decimal

from kb.timestamps import NumberError, TimestampError, parse_clock, parse_date, parse_number


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def section(raw: dict, name: str) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{name} = {value!r} must be a table ([{name}])")
    return value


def string(table: dict, key: str, name: str, default: str) -> str:
    value = table.get(name, default)
    if not isinstance(value, str):
        raise ConfigError(f"{key} = {value!r} must be a string")
    return value.strip()


def clock(key: str, text) -> time:
    """A time of day "HH:MM" (``kb.timestamps.parse_clock``: ASCII digits, 00:00 to 23:59)."""
    try:
        return parse_clock(str(text))
    except TimestampError:
        raise ConfigError(f"{key}: {text!r} is not a time of day like \"09:00\" (00:00 to 23:59, digits 0-9)") from None


def dates(table: dict, key: str, name: str) -> tuple[date, ...]:
    values = table.get(name, [])
    if not isinstance(values, list):
        raise ConfigError(f"{key} = {values!r} must be a list of ISO dates")
    result = []
    for value in values:
        if isinstance(value, date) and not isinstance(value, datetime):
            result.append(value)
            continue
        try:
            result.append(parse_date(str(value)))
        except TimestampError:
            raise ConfigError(f"{key}: {value!r} is not an ISO date like \"2026-12-24\"") from None
    return tuple(sorted(set(result)))


def decimal(table: dict, key: str, name: str, default: Decimal) -> Decimal:
    """A TOML number, or text holding one in ASCII digits (``kb.timestamps.parse_number``)."""
    value = table.get(name, default)
    if isinstance(value, str):
        try:
            return parse_number(value)
        except NumberError:
            raise ConfigError(f"{key} = {value!r} must be a number written with the digits 0-9 and at most "
                              "4 decimals (e.g. 99.9)") from None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ConfigError(f"{key} = {value!r} must be a number")
    number = Decimal(str(value))
    if not number.is_finite():
        raise ConfigError(f"{key} = {value!r} must be a finite number")
    return number


def percentage(table: dict, key: str, name: str, default: Decimal) -> Decimal:
    """A percentage in (0, 100] with at most 4 decimals, as the database stores targets."""
    number = decimal(table, key, name, default)
    if not (0 < number <= 100) or number.as_tuple().exponent < -4:
        raise ConfigError(f"{key} = {table.get(name)!r} must be a percentage in (0, 100] with at most 4 decimals")
    return number

def positive_int(table: dict, key: str, name: str, default: int, *, at_most: int | None = None) -> int:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key} = {value!r} must be a whole number of at least 1")
    if at_most is not None and value > at_most:
        raise ConfigError(f"{key} = {value!r} must be at most {at_most}")
    return value

def ascii_names(table: dict, key: str, name: str, default: list[str], pattern: re.Pattern,
                 what: str) -> tuple[str, ...]:
    """A list of names, each stripped and made only of ``pattern``'s ASCII characters: a lookalike or invisible
    character in a name that decides what is trusted is refused, as every id is (rules §8)."""
    values = table.get(name, default)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{key} must be a list of {what}")
    for value in values:
        if not value.isascii():
            raise ConfigError(f"{key}: {value!r} holds a character that is not ASCII (a lookalike or an invisible "
                              f"one); write it in plain ASCII")
        if not pattern.fullmatch(value.strip()):
            raise ConfigError(f"{key}: {value!r} is not one of {what}")
    return tuple(dict.fromkeys(v.strip() for v in values))
