"""The bijection between the model's refs and the target's, and the names people read."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import cast

from conformance.judge.memo import IdentityMemo
from models.outcome import Encoded, Failure, Outcome, Success, Value
from models.world import NULL_REF

__all__ = ["RUN_TAG", "RefMap", "made_by_run", "run_label", "run_masked", "snapshots_of_new_vms"]

RUN_TAG = "xapi-conformance-run"
"""The other_config key that marks a VM as created by a run (value: the run id)."""

_RUN_MARK = "(xapi-conformance run {})"
"""How ``run_label`` marks a name with a run id."""
_RUN_MARKED = re.compile(re.escape(_RUN_MARK).replace(r"\{\}", r"([^()\s]+)"))


def run_label(label: str, run_id: str) -> str:
    """``label`` marked as the run's: the name of a copy of a VM the run did not make (a pool
    template's clone), which carries no run tag until the call after the copy adds one. A run
    stopped between the two calls leaves the copy to the closing sweep, which finds it by this
    name (``made_by_run``)."""
    return f"{label} {_RUN_MARK.format(run_id)}"


def made_by_run(record: Value, run_id: str) -> bool:
    """Whether a VM record is run ``run_id``'s or one of its workers' (``run_id.gw0``): tagged
    in other_config, or named by ``run_label``."""
    if not isinstance(record, Mapping):
        return False
    other = record.get("other_config")
    tag = other.get(RUN_TAG) if isinstance(other, Mapping) else None
    label = record.get("name_label")
    named = _RUN_MARKED.search(label) if isinstance(label, str) else None
    return _of_run(tag, run_id) or (named is not None and _of_run(named[1], run_id))


def run_masked(text: str) -> str:
    """``text`` (a reproducer's source) with the run ids that mark a run's VMs (their tag and
    ``run_label`` names) written ``RUN``: what differs between two runs of the same calls."""
    text = re.sub(rf"'{RUN_TAG}': '[^']*'", f"'{RUN_TAG}': 'RUN'", text)
    return _RUN_MARKED.sub(_RUN_MARK.format("RUN"), text)


def _of_run(mark: object, run_id: str) -> bool:
    return isinstance(mark, str) and (mark == run_id or mark.startswith(f"{run_id}."))


REF_PREFIX = "OpaqueRef:"


class RefMap:
    """Model ref ↔ target ref. Objects that existed before the run map to themselves.

    Each bound pair also gets a short name (``vm1``, ``task3``) for messages and reproducers.
    """

    KEEP = 256
    """Maps read from the target whose model view is remembered (``to_model``): a pool's
    records each, and the maps of them."""

    def __init__(self) -> None:
        self._to_target: dict[str, str] = {}
        self._to_model: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._kinds: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._binds = 0
        """Binds so far: a value mapped since the last one maps to the same again."""
        self._lock = threading.Lock()
        self._recently_mapped: IdentityMemo[Value] = IdentityMemo(keep=self.KEEP)
        """The model views of the last few maps ``to_model`` mapped, each right while no bind
        came between."""

    def bind(self, model_ref: str, target_ref: str, kind: str = "vm") -> None:
        """Record that ``model_ref`` is the model's view of ``target_ref``."""
        self._to_target[model_ref] = target_ref
        self._to_model[target_ref] = model_ref
        with self._lock:
            self._binds += 1  # after the tables: a view worked out meanwhile is not kept
        if model_ref not in self._names:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            self._names[model_ref] = f"{kind}{self._counts[kind]}"
            self._kinds[model_ref] = kind

    def kind(self, model_ref: str) -> str | None:
        """The class (``vm``, ``task``, ``session``) a bound ref was bound as, if bound."""
        return self._kinds.get(model_ref)

    def bound(self, kind: str) -> list[str]:
        """The model refs bound as ``kind``, in the order they were bound."""
        return [ref for ref, bound_kind in self._kinds.items() if bound_kind == kind]

    def is_bound(self, model_ref: str) -> bool:
        """Whether the model ref already has a target counterpart (or is the null ref)."""
        return model_ref == NULL_REF or model_ref in self._to_target

    def knows_target(self, target_ref: str) -> bool:
        """Whether ``target_ref`` is already bound."""
        return target_ref in self._to_model

    def name(self, model_ref: str) -> str | None:
        """The short name of a suite-created object, if it has one."""
        return self._names.get(model_ref)

    def to_target(self, value: Value) -> Value:
        """``value`` with every bound model ref replaced by its target ref."""
        return _mapped(value, self._to_target)

    def to_model(self, value: Value) -> Value:
        """``value`` with every bound target ref replaced by its model ref."""
        if not isinstance(value, Mapping):
            return _mapped(value, self._to_model)
        return self._recently_mapped.worked_out(value, self._binds, self._map_to_model)

    def _map_to_model(self, value: Mapping[str, Value]) -> Value:
        if value and all(isinstance(item, Mapping) for item in value.values()):
            # a map of records: each record that came back unchanged maps as before
            return {self._to_model.get(k, k): self.to_model(v) for k, v in value.items()}
        return _mapped(value, self._to_model)

    def outcome_to_model(self, outcome: Outcome) -> Outcome:
        """A target outcome in model terms: refs in values and error params mapped back."""
        if isinstance(outcome, Failure):
            return Failure(outcome.code, tuple(self._to_model.get(p, p) for p in outcome.params))
        return Success(self.to_model(outcome.value))

    def display_outcome(self, outcome: Outcome) -> Outcome:
        """An outcome with suite refs replaced by their short names."""
        if isinstance(outcome, Failure):
            return Failure(outcome.code, tuple(self._names.get(p, p) for p in outcome.params))
        return Success(self.display(outcome.value))

    def display_text(self, text: str) -> str:
        """``text`` with every suite ref in it (model's or target's) replaced by its short name."""
        if REF_PREFIX not in text:
            return text
        for model_ref, name in self._names.items():
            text = text.replace(model_ref, name)
            target_ref = self._to_target.get(model_ref)
            if target_ref:
                text = text.replace(target_ref, name)
        return text

    def display(self, value: Value) -> Value:
        """``value`` with suite refs replaced by their short names (for messages)."""
        return _mapped(value, self._names)


def snapshots_of_new_vms(
    before: Mapping[str, Mapping[str, Value]],
    after: Mapping[str, Mapping[str, Value]],
    refs: RefMap,
) -> list[str]:
    """Bound snapshots whose ``snapshot_of`` names a VM a call made without returning it.

    VM.revert of a snapshot whose VM was destroyed makes the VM again (xapi_vm_snapshot.ml
    ``create_vm_from_snapshot``) and answers nothing: a client learns the new ref from the
    snapshot's ``snapshot_of``. One snapshot per such VM, so that reading it binds the VM.
    """
    made_now = {r for r in after.keys() - before.keys() if not refs.is_bound(r)}
    if not made_now:
        return []
    found: dict[str, str] = {}
    for ref, vm in after.items():
        made = str(vm.get("snapshot_of", NULL_REF))
        if made in made_now and made not in found and refs.is_bound(ref):
            found[made] = ref
    return list(found.values())


def _mapped(value: Value, table: Mapping[str, str]) -> Value:
    if isinstance(value, str):
        return table.get(value, value)
    if isinstance(value, bool | int | float):
        return value  # asked first: asking for an abstract type (Mapping) is slow
    if isinstance(value, Encoded):
        return Encoded(_mapped(value.value, table))
    # An atom item is mapped in place (most of a record's are): no str equals a bool or a
    # number, so those come back as they are.
    get = cast("Callable[[Value, Value], Value]", table.get)
    if isinstance(value, Mapping):
        return {
            table.get(k, k): get(v, v) if type(v) in _ATOMS else _mapped(v, table)
            for k, v in value.items()
        }
    if isinstance(value, Sequence):
        return tuple(get(v, v) if type(v) in _ATOMS else _mapped(v, table) for v in value)
    return value


_ATOMS = frozenset({str, bool, int, float})
