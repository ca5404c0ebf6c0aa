"""Properties of the model alone, over random call sequences (Hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.checks import op_context
from models.memory import MemoryTuple, are_valid
from models.operations import allowed_operations
from models.outcome import Failure
from models.rpc import apply
from models.transition import Call
from tests.models.helpers import GIB, MIB, driver

SIZES = st.sampled_from([128 * MIB, 256 * MIB, 512 * MIB, GIB, 2 * GIB])

CALLS = st.one_of(
    st.tuples(
        st.sampled_from(
            [
                "VM.start",
                "VM.clean_shutdown",
                "VM.hard_shutdown",
                "VM.shutdown",
                "VM.pause",
                "VM.unpause",
                "VM.suspend",
                "VM.resume",
                "VM.clean_reboot",
                "VM.hard_reboot",
                "VM.destroy",
                "VM.power_state_reset",
                "VM.update_allowed_operations",
            ]
        ),
        st.just(()),
    ),
    st.tuples(st.sampled_from(["VM.clone", "VM.snapshot", "VM.checkpoint"]), st.just(("n",))),
    st.tuples(st.just("VM.set_memory_dynamic_range"), st.tuples(SIZES.map(str), SIZES.map(str))),
    st.tuples(st.just("VM.set_memory_static_range"), st.tuples(SIZES.map(str), SIZES.map(str))),
    st.tuples(st.just("VM.set_memory_limits"), st.tuples(*[SIZES.map(str)] * 4)),
    st.tuples(st.just("VM.set_memory"), st.tuples(SIZES.map(str))),
    st.tuples(st.just("VM.set_VCPUs_max"), st.tuples(st.integers(0, 4).map(str))),
    st.tuples(st.just("VM.set_is_a_template"), st.just((True,))),
    st.tuples(
        st.sampled_from(["VM.add_to_blocked_operations"]),
        st.tuples(
            st.sampled_from(["start", "clean_shutdown", "hard_shutdown", "destroy", "clone"]),
            st.just("b"),
        ),
    ),
    st.tuples(st.just("VM.set_blocked_operations"), st.just(({},))),
    st.tuples(st.just("VM.revert"), st.just(())),
)

RESUME_ARGS = {"VM.start": (False, False), "VM.resume": (False, False)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 5), CALLS), max_size=25))
def test_memory_order_and_allowed_operations_hold_in_every_reachable_world(
    steps: list[tuple[int, tuple[str, tuple[object, ...]]]],
) -> None:
    d = driver()
    d.new_vm()
    d.new_vm(memory_dynamic_min=str(GIB))
    for index, (method, args) in steps:
        guests = [r for r, vm in d.world.vms.items() if vm["is_control_domain"] is not True]
        if not guests:
            break
        ref = guests[index % len(guests)]
        before = d.world
        branches = apply(d.world, Call(method, (d.session, ref, *RESUME_ARGS.get(method, args))))
        assert branches, f"{method} produced no branch"
        for branch in branches:
            if isinstance(branch.outcome, Failure):
                assert branch.world == before, f"{method} failed but changed the world"
        d.world = branches[0].world
        for vm_ref, vm in d.world.vms.items():
            assert are_valid(MemoryTuple.from_record(vm)), (
                f"{method} broke the memory order of {vm_ref}"
            )
            expected = allowed_operations(vm_ref, vm, op_context(d.world, drivers=True))
            assert set(vm["allowed_operations"]) == set(expected), (
                f"stale allowed_operations after {method}"
            )
