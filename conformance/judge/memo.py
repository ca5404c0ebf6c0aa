"""What was worked out from an answer's objects, remembered by the object's identity.

A record the target answers again unchanged is decoded to the very same object
(``xmlrpc.decode_response`` keeps the records whose text recurs), and nothing changes a decoded
answer once made; so what was worked out from that object (its typed record, its model view) is
still right while the object lives and the conditions it was worked out under (``tag``) hold.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["IdentityMemo"]

S = TypeVar("S")
T = TypeVar("T")


class IdentityMemo(Generic[T]):
    """The last ``keep`` results worked out from objects, by identity. Thread-safe; the work
    itself runs outside the lock."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._by_id: dict[int, tuple[object, Hashable, T]] = {}

    def worked_out(self, source: S, tag: Hashable, work: Callable[[S], T]) -> T:
        """``work(source)``, or what it gave for this very ``source`` under an equal ``tag``. The
        source is held with its result, so its identity cannot pass to another object."""
        with self._lock:
            known = self._by_id.get(id(source))
        if known is not None and known[0] is source and known[1] == tag:
            return known[2]
        result = work(source)
        with self._lock:
            self._by_id[id(source)] = (source, tag, result)
            if len(self._by_id) > self._keep:
                del self._by_id[next(iter(self._by_id))]
        return result
