"""Which host VM.start puts a VM on, and when that choice is the server's to make."""

from __future__ import annotations

from models.placement import server_chooses_host
from tests.models.helpers import driver


def test_with_two_hosts_that_can_take_it_the_server_chooses() -> None:
    d = driver(hosts=2)
    ref = d.new_vm()
    assert server_chooses_host(d.world, ref)


def test_an_affinity_host_that_can_take_the_vm_is_where_it_starts() -> None:
    d = driver(hosts=2)
    second = sorted(d.world.hosts)[1]
    ref = d.new_vm(affinity=second)
    assert not server_chooses_host(d.world, ref)
    d.ok("VM.start", ref, False, False)
    assert d.field(ref, "resident_on") == second


def test_an_affinity_host_that_cannot_take_it_leaves_the_choice_to_the_server() -> None:
    d = driver(hosts=3)
    second = sorted(d.world.hosts)[1]
    d.ok("host.disable", second)
    ref = d.new_vm(affinity=second)
    assert server_chooses_host(d.world, ref)  # the first and the third can take it
    d.ok("VM.start", ref, False, False)
    assert d.field(ref, "resident_on") != second


def test_with_one_host_that_can_take_it_the_host_is_predictable() -> None:
    d = driver(hosts=1)
    ref = d.new_vm()
    assert not server_chooses_host(d.world, ref)
