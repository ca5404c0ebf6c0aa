"""The legacy event.next's answer judged: its queue order, and its events coalesced per object
as one event.from over the same span answers them (both sides of each rule)."""

from __future__ import annotations

from conformance.judge.events import SeenEvent, coalesced, next_order_mismatch


def _seen(*events: tuple[str, str, str]) -> tuple[SeenEvent, ...]:
    return tuple(
        SeenEvent("vm", operation, ref, None if operation == "del" else {"name_label": ref}, id_)
        for id_, operation, ref in events
    )


def test_ids_that_rise_past_the_last_answered_are_xapis() -> None:
    assert next_order_mismatch(_seen(("4", "add", "a"), ("5", "mod", "a")), 3, str) is None


def test_an_event_answered_again_is_found() -> None:
    found = next_order_mismatch(_seen(("3", "add", "a"), ("4", "mod", "a")), 3, str)
    assert found is not None and found.where == "repeated event"


def test_an_id_that_is_no_queue_position_is_found() -> None:
    found = next_order_mismatch(_seen(("x", "add", "a")), -1, str)
    assert found is not None and found.where == "event id"


def test_an_add_after_a_mod_is_found() -> None:
    found = next_order_mismatch(_seen(("1", "mod", "a"), ("2", "add", "a")), -1, str)
    assert found is not None and "mod then add" in found.how


def test_coalescing_keeps_one_event_per_object_with_its_last_snapshot() -> None:
    seen = (
        SeenEvent("vm", "add", "a", {"name_label": "1"}, "1"),
        SeenEvent("vm", "mod", "a", {"name_label": "2"}, "2"),
        SeenEvent("vm", "mod", "b", {"name_label": "x"}, "3"),
        SeenEvent("vm", "del", "b", None, "4"),
        SeenEvent("task", "add", "t", {}, "5"),
        SeenEvent("task", "del", "t", None, "6"),
    )
    assert [(e.ref, e.operation, e.snapshot) for e in coalesced(seen)] == [
        ("a", "add", {"name_label": "2"}),
        ("b", "del", None),
    ]
