"""VM.call_plugin (xapi_vm.ml): the one guest plugin there is, its functions, its rate limit.

xapi throttles the plugin per VM (``record_call_plugin_latest``): a call to
``guest-agent-operation`` less than ``vm_call_plugin_interval`` (10 s) after the last one let
through on the same VM is refused with VM_CALL_PLUGIN_RATE_LIMIT [VM; interval; wait], the wait
being what remains of the interval, in seconds, as OCaml prints a float. The last call is held
in a table local to the host the VM runs on (the call is forwarded there), so the model keys it
by (resident host, VM) in ``World.plugin_calls``. A call let through counts whatever its
function then answers; a refused call does not count, nor one stopped before the limit (not
running, another plugin).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType

from models.catalogue import roles_at_least
from models.checks import guarded
from models.errors import XenAPIError
from models.outcome import Failure, Value
from models.transition import Ctx, Result, as_map, attempt, done, failed
from models.world import Record, World

__all__ = [
    "CLOCK_SLACK",
    "GUEST_AGENT_PLUGIN",
    "PLUGIN_CALL_INTERVAL",
    "RATE_LIMIT",
    "call_plugin",
    "string_of_float",
]

GUEST_AGENT_PLUGIN = "guest-agent-operation"
RUN_SCRIPT_KEY = "allow_guest_agent_run_script"
"""The pool other_config key that allows the run-script function (Xapi_globs)."""
MAX_SCRIPT_BYTES = 1024
RATE_LIMIT = "VM_CALL_PLUGIN_RATE_LIMIT"
PLUGIN_CALL_INTERVAL = 10.0
"""xapi_globs.ml ``vm_call_plugin_interval``: seconds between two plugin calls on one VM."""
CLOCK_SLACK = 2.0
"""How far apart the model's clock and the host's may be, in seconds, when they time two calls:
``Call.now`` is the caller's clock to the second, and each call's latency moves the host's.
Within this distance of the interval the model offers both answers (its own reading first)."""


def string_of_float(value: float) -> str:
    """OCaml's ``string_of_float``: ``%.12g``, with a trailing ``.`` when that reads as an int."""
    text = f"{value:.12g}"
    return text if any(c in text for c in ".en") else f"{text}."


def call_plugin(ctx: Ctx, args: tuple[Value, ...]) -> Result:
    """VM.call_plugin (xapi_vm.ml): the op check (Running only), then the one plugin there is,
    ``guest-agent-operation``, then its rate limit, then one of its three functions."""
    ref, plugin, fn = str(args[0]), str(args[1]), str(args[2])
    script_args = {str(k): str(v) for k, v in as_map(args[3]).items()}

    def body(vm: Record) -> Result:
        if plugin != GUEST_AGENT_PLUGIN:
            raise XenAPIError("XENAPI_MISSING_PLUGIN", plugin)
        return rate_limited(
            ctx, ref, vm, lambda world: attempt(world, lambda: _run_fn(ctx, world, fn, script_args))
        )

    return guarded(ctx.world, ref, "call_plugin", body)


def _run_fn(ctx: Ctx, world: World, fn: str, args: dict[str, str]) -> Result:
    if fn in ("request-rdp-on", "request-rdp-off"):
        raise _not_executed(fn)  # the guests report no feature-ts2 in their guest metrics
    if fn == "run-script":
        _check_script(ctx, args)
        return done(world, "")  # no guest: xenopsd's task ends without a result
    text = f'The requested fn "{fn}" could not be found in plugin "{GUEST_AGENT_PLUGIN}".'
    raise XenAPIError("XENAPI_PLUGIN_FAILURE", "failed to find fn", text, text)


def rate_limited(ctx: Ctx, ref: str, vm: Record, then: Callable[[World], Result]) -> Result:
    """xapi_vm.ml record_call_plugin_latest: refuse a call within the interval of the last one
    let through on this VM (on its host), else record this one and go on with ``then``."""
    key = (str(vm["resident_on"]), ref)
    calls = _recent(ctx.world.plugin_calls, ctx.now)
    last = calls.get(key)
    elapsed = None if last is None else max(0.0, (ctx.now - last).total_seconds())
    if elapsed is None or elapsed >= PLUGIN_CALL_INTERVAL + CLOCK_SLACK:
        return then(_recorded(ctx.world, calls, key, ctx.now))
    wait = max(PLUGIN_CALL_INTERVAL - elapsed, 1e-9)
    refused = failed(
        ctx.world,
        Failure(RATE_LIMIT, (ref, string_of_float(PLUGIN_CALL_INTERVAL), string_of_float(wait))),
    )
    if elapsed <= PLUGIN_CALL_INTERVAL - CLOCK_SLACK:
        return refused
    accepted = then(_recorded(ctx.world, calls, key, ctx.now))
    return refused + accepted if elapsed < PLUGIN_CALL_INTERVAL else accepted + refused


def _recent(
    calls: Mapping[tuple[str, str], datetime.datetime], now: datetime.datetime
) -> dict[tuple[str, str], datetime.datetime]:
    """The calls still within reach of the interval (xapi's round of GC before each check)."""
    horizon = datetime.timedelta(seconds=PLUGIN_CALL_INTERVAL + CLOCK_SLACK)
    return {key: at for key, at in calls.items() if now - at < horizon}


def _recorded(
    world: World,
    calls: dict[tuple[str, str], datetime.datetime],
    key: tuple[str, str],
    now: datetime.datetime,
) -> World:
    return replace(world, plugin_calls=MappingProxyType({**calls, key: now}))


def _not_executed(fn: str) -> XenAPIError:
    text = (
        f'The requested fn "{fn}" of plugin "{GUEST_AGENT_PLUGIN}" could not be executed for '
        "lack of guest agent control feature."
    )
    return XenAPIError("XENAPI_PLUGIN_FAILURE", "failed to execute fn", text, text)


def _check_script(ctx: Ctx, args: dict[str, str]) -> None:
    """xapi_vm.ml run_script: allowed by the pool, required arguments, vm-power-admin (the
    permission of VM.checkpoint), a script of at most 1024 bytes."""
    if ctx.world.pool.other_config.get(RUN_SCRIPT_KEY) != "true":
        raise XenAPIError("FEATURE_RESTRICTED")
    for name in ("username", "password", "script"):
        if name not in args:
            raise XenAPIError(
                "XENAPI_PLUGIN_FAILURE", "missing argument", "", f"Argument {name} is required."
            )
    session = ctx.session
    if not session.superuser and session.role not in roles_at_least("vm-power-admin"):
        raise XenAPIError(
            "RBAC_PERMISSION_DENIED",
            "vm.call_plugin",
            "No permission to run script, must have VM power admin role or higher.",
        )
    if len(args["script"].encode()) > MAX_SCRIPT_BYTES:
        raise XenAPIError(
            "XENAPI_PLUGIN_FAILURE",
            "length restriction",
            "",
            f"The script length must not exceed {MAX_SCRIPT_BYTES} bytes",
        )
