"""The one currency every layer exchanges: the outcome of a XenAPI call."""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["Encoded", "Failure", "Int32", "Outcome", "Success", "Value"]

Value: TypeAlias = (
    "str | int | float | bool | datetime.datetime | Encoded | Int32 | Sequence[Value] "
    "| Mapping[str, Value]"
)
"""A XenAPI value as Python holds it.

int is int64, float is a double, str covers strings, refs and enum values, a Sequence is a set
(held as a tuple), a Mapping is a map or a record, ``Encoded`` is a string of encoded XML-RPC,
``Int32`` an int xapi marshals as a 32-bit int. Wire codecs translate to and from this.
"""


@dataclass(frozen=True)
class Encoded:
    """A string holding the XML-RPC ``<value>`` text of ``value``, as xapi fills ``task.result``.

    The model says *what* is encoded; only the wire codecs know *how*.
    """

    value: Value


@dataclass(frozen=True)
class Int32:
    """An int xapi marshals as ``Rpc.Int32`` (``<i4>`` over XML-RPC, a number over JSON-RPC),
    unlike the datamodel's ints (int64: bare text over XML-RPC). event.from's
    ``valid_ref_counts`` are such ints. Decoded answers hold plain ints."""

    value: int


@dataclass(frozen=True)
class Success:
    """A call that succeeded with ``value`` (``""`` for void)."""

    value: Value


@dataclass(frozen=True)
class Failure:
    """A call that failed: xapi's ErrorDescription is ``[code, *params]``."""

    code: str
    params: tuple[str, ...] = ()

    @property
    def description(self) -> list[str]:
        """The ErrorDescription list as it goes on the wire."""
        return [self.code, *self.params]


Outcome: TypeAlias = Success | Failure
