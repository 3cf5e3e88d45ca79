"""Typed handles on configuration keys (MicroOcpp's idea): ``Key[V]`` is a key's canonical name
and its type in one value, so ``registry[K.HeartbeatInterval]`` reads as an ``int`` for mypy
and at run time.  The charger's handles are ``firmware.config_keys.K``; a plug-in makes its own
with ``int_key`` and the like.  Pure: no I/O."""

from __future__ import annotations

import enum
from typing import Generic, TypeVar


class KeyType(enum.Enum):
    BOOLEAN = "boolean"
    INTEGER = "integer"
    CSL = "comma-separated list"
    STRING = "string"


Value = bool | int | str | tuple[str, ...]
V = TypeVar("V", bool, int, str, tuple[str, ...])


class Key(str, Generic[V]):
    """A typed handle on a configuration key (MicroOcpp's idea): it IS the key's canonical name
    (a ``str``, so it goes wherever a name does: ``on_change``, ``watch``, ``sleep_until``) and
    it carries the key's type, so ``keys[K.HeartbeatInterval]`` reads as an ``int`` for mypy and
    at run time.  The charger's handles are declared once, in ``config_keys.K`` (a plug-in makes
    its own with ``int_key`` and the like); ``tests/unit/test_config_keys.py`` checks that every
    handle's type is its definition's."""

    type: KeyType

    @classmethod
    def of(cls, name: str, type: KeyType) -> Key[V]:
        handle = cls(name)
        handle.type = type
        return handle


def a_kind(kind: KeyType) -> str:
    """'an integer', 'a boolean': for messages."""
    return ("an " if kind.value[0] in "aeiou" else "a ") + kind.value


def bool_key(name: str) -> Key[bool]:
    return Key[bool].of(name, KeyType.BOOLEAN)


def int_key(name: str) -> Key[int]:
    return Key[int].of(name, KeyType.INTEGER)


def str_key(name: str) -> Key[str]:
    return Key[str].of(name, KeyType.STRING)


def csl_key(name: str) -> Key[tuple[str, ...]]:
    return Key[tuple[str, ...]].of(name, KeyType.CSL)


__all__ = ["Key", "KeyType", "V", "Value", "a_kind", "bool_key", "csl_key", "int_key", "str_key"]
