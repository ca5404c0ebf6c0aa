"""JSON-RPC v1 and v2 as xapi speaks it (rpclib ``Jsonrpc``, ``Api_server.jsoncallback``).

Values: an int is a JSON number, a float a number (``NaN``/``Infinity`` as Python and Yojson
write them), a datetime the basic ISO text ``YYYYMMDDTHH:MM:SSZ`` as a string, a set an array,
a map or record an object, ``Encoded(v)`` the string of XML-RPC text that xapi stores in
``task.result`` (whatever the transport). Members are written in rpclib's order, compactly, in UTF-8.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

from conformance.wire.base import XAPI_TYPING, Quirks, WireFormatError
from conformance.wire.typed import (
    INT64_MAX,
    INT64_MIN,
    datetime_text,
    failure_from_wire,
    raw_value,
)
from conformance.wire.xmlrpc import value_text
from models.outcome import Encoded, Failure, Int32, Outcome, Success, Value

__all__ = [
    "JsonRpcRequest",
    "Version",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "id_mismatch",
]

Version: TypeAlias = Literal["1.0", "2.0"]
"""A JSON-RPC version: ``"1.0"`` has no ``jsonrpc`` member, ``"2.0"`` has ``"jsonrpc": "2.0"``."""

ERROR_CODE = 1
"""The ``code`` of every v2 error object (``Api_server_common.error_code_lit``)."""

_EXCERPT = 200


@dataclass(frozen=True)
class JsonRpcRequest:
    """A decoded JSON-RPC request; ``params`` hold raw JSON values (lists, dicts, numbers)."""

    method: str
    params: tuple[object, ...]
    id: object
    version: Version


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def _json_value(value: Value, quirks: Quirks = XAPI_TYPING) -> object:
    """The JSON-ready form of a ``Value`` (``quirks``: wrongly typed, for seeded faults)."""
    if isinstance(value, bool) and quirks.bool_text:
        return str(value).lower()
    if isinstance(value, int) and not isinstance(value, bool) and quirks != XAPI_TYPING:
        number = int(float(value)) if quirks.int_through_double else value
        return str(number) if quirks.int_typed else number
    if value == "" and isinstance(value, str) and quirks.empty_as_null:
        return None
    if isinstance(value, str) and quirks.non_bmp_mangled:
        return "".join("\ufffd\ufffd" if ord(char) > 0xFFFF else char for char in value)
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime.datetime):
        return quirks.date(datetime_text(value))
    if isinstance(value, Encoded):
        return value_text(value.value)
    if isinstance(value, Int32):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): _json_value(item, quirks) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [_json_value(item, quirks) for item in value]
    raise TypeError(f"not a XenAPI value: {value!r}")


def _dumps(document: dict[str, object]) -> bytes:
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (a client's "\ud800") stays a JSON escape
        return json.dumps(document, separators=(",", ":")).encode("ascii")


def encode_request(
    method: str, params: Sequence[Value], id: object, version: Version = "2.0"
) -> bytes:
    """A request as a client sends it: ``{"jsonrpc": "2.0", "method", "params", "id"}``.

    Version ``"1.0"`` omits the ``jsonrpc`` member. ``id`` should be an int or a str, the only
    ids xapi accepts. Raises ``TypeError`` for a non-Value param.
    """
    document: dict[str, object] = {} if version == "1.0" else {"jsonrpc": "2.0"}
    document.update(method=method, params=[_json_value(param) for param in params], id=id)
    return _dumps(document)


def encode_response(
    outcome: Outcome, id: object, version: Version, quirks: Quirks = XAPI_TYPING
) -> bytes:
    """xapi's response bytes for ``outcome`` (server side).

    - v1: ``{"result": X, "error": null, "id": id}`` or
      ``{"result": null, "error": ["CODE", *params], "id": id}``;
    - v2: ``{"jsonrpc": "2.0", "result": X, "id": id}`` or
      ``{"jsonrpc": "2.0", "error": {"code": 1, "message": "CODE", "data": [*params]}, "id": id}``.
    """
    if version == "1.0":
        return _dumps(_v1_response(outcome, id, quirks))
    return _dumps(_v2_response(outcome, id, quirks))


def _v1_response(outcome: Outcome, id: object, quirks: Quirks) -> dict[str, object]:
    if isinstance(outcome, Success):
        return {"result": _json_value(outcome.value, quirks), "error": None, "id": id}
    return {"result": None, "error": outcome.description, "id": id}


def _v2_response(outcome: Outcome, id: object, quirks: Quirks) -> dict[str, object]:
    if isinstance(outcome, Success):
        return {"jsonrpc": "2.0", "result": _json_value(outcome.value, quirks), "id": id}
    error = {"code": ERROR_CODE, "message": outcome.code, "data": list(outcome.params)}
    return {"jsonrpc": "2.0", "error": error, "id": id}


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def _int64(text: str) -> int:
    number = int(text)
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError(f"integer out of the int64 range: {text}")
    return number


def _first_wins(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """An object; with duplicate names the first wins, as with rpclib's ``List.assoc``."""
    document: dict[str, object] = {}
    for key, value in pairs:
        document.setdefault(key, value)
    return document


def _loads(body: bytes) -> dict[str, object]:
    """Parse a JSON object, or raise ``WireFormatError`` quoting the body."""
    try:
        document = json.loads(body, object_pairs_hook=_first_wins, parse_int=_int64)
    except (ValueError, RecursionError) as error:
        raise WireFormatError(f"malformed JSON ({error}); received {_excerpt(body)}") from None
    if not isinstance(document, dict):
        raise WireFormatError(f"not a JSON object; received {_excerpt(body)}")
    return document


def _excerpt(body: bytes) -> str:
    text = body[:_EXCERPT].decode("utf-8", "replace")
    return repr(text + ("…" if len(body) > _EXCERPT else ""))


def _is_id(value: object) -> bool:
    """rpclib accepts an int or a string id; null means a notification, which xapi refuses."""
    return isinstance(value, str | int) and not isinstance(value, bool)


def id_mismatch(answer_id: object, request_id: object) -> str | None:
    """What is wrong with an answer's ``id`` for the request with ``request_id``, if anything:
    rpclib echoes the id it read, of the same JSON type (a number stays a number)."""
    if type(answer_id) is type(request_id) and answer_id == request_id:
        return None
    return (
        f"the id member is {json.dumps(answer_id)} where the request's was {json.dumps(request_id)}"
    )


def _version(document: dict[str, object]) -> Version:
    if "jsonrpc" not in document:
        return "1.0"
    if document["jsonrpc"] == "2.0":
        return "2.0"
    raise WireFormatError(f"unsupported jsonrpc member {document['jsonrpc']!r}")


def decode_request(body: bytes) -> JsonRpcRequest:
    """Decode a request (server side), as rpclib's ``version_id_and_call_of_string`` does.

    ``method`` must be a string and ``id`` an int or a string (present and non-null). In v1
    ``params`` must be an array; in v2 it may be missing or null (``[]``), and an object is taken
    as the single param (rpclib's named-params case). Anything else raises ``WireFormatError``:
    xapi answers those with HTTP 500.
    """
    document = _loads(body)
    try:
        return _request(document)
    except WireFormatError as error:
        raise WireFormatError(f"{error}; received {_excerpt(body)}") from None


def _request(document: dict[str, object]) -> JsonRpcRequest:
    method = document.get("method")
    if not isinstance(method, str):
        raise WireFormatError("the method member is missing or not a string")
    version = _version(document)
    params = _request_params(document, version)
    if not _is_id(document.get("id")):
        raise WireFormatError("the id member is missing, null or neither an int nor a string")
    return JsonRpcRequest(method, params, document["id"], version)


def _request_params(document: dict[str, object], version: Version) -> tuple[object, ...]:
    params = document.get("params")
    if isinstance(params, list):
        return tuple(params)
    if version == "2.0" and params is None:
        return ()
    if version == "2.0" and isinstance(params, dict):
        return (params,)
    raise WireFormatError("the params member is missing or not an array")


def decode_response(body: bytes, request_id: object = None) -> Outcome:
    """The outcome of a v1 or v2 response (client side) to the request with ``request_id``.

    Results become ``Value`` trees (arrays as tuples). A v2 error is the ``{code, message,
    data}`` object, or the raw ``[code, …]`` array xapi sends when a failure happens outside
    dispatch. Raises ``WireFormatError``, quoting the body, for garbage, a missing or non-int,
    non-string ``id``, an ``id`` other than the request's (given one: rpclib echoes it, of the
    same JSON type, and a client matches answers to requests by it), or both or neither of
    ``result``/``error``. A null, the result or within it, reads as ``WireNull`` (judged a
    mismatch where it is typed).
    """
    document = _loads(body)
    try:
        return _response(document, request_id)
    except WireFormatError as error:
        raise WireFormatError(f"{error}; received {_excerpt(body)}") from None


def _response(document: dict[str, object], request_id: object) -> Outcome:
    answer_id = document.get("id")
    if not _is_id(answer_id):
        raise WireFormatError("the id member is missing, null or neither an int nor a string")
    problem = id_mismatch(answer_id, request_id) if request_id is not None else None
    if problem:
        raise WireFormatError(problem)
    if _version(document) == "1.0":
        return _v1_outcome(document)
    return _v2_outcome(document)


def _v1_outcome(document: dict[str, object]) -> Outcome:
    if "result" not in document or "error" not in document:
        raise WireFormatError("a v1 response needs both result and error members")
    result, error = document["result"], document["error"]
    if error is None:
        return Success(raw_value(result))
    if result is None:
        return failure_from_wire(error)
    raise WireFormatError("a v1 response with both a result and an error")


def _v2_outcome(document: dict[str, object]) -> Outcome:
    has_result, has_error = "result" in document, "error" in document
    if has_result and not has_error:
        return Success(raw_value(document["result"]))
    if has_error and not has_result:
        return _v2_failure(document["error"])
    raise WireFormatError("a v2 response needs exactly one of result and error")


def _v2_failure(error: object) -> Failure:
    if isinstance(error, list):
        return failure_from_wire(error)
    if not isinstance(error, dict):
        raise WireFormatError(f"the v2 error is neither an object nor an array: {error!r}")
    code, message, data = error.get("code"), error.get("message"), error.get("data", [])
    if not isinstance(code, int) or isinstance(code, bool) or not isinstance(message, str):
        raise WireFormatError("the v2 error object needs an int code and a string message")
    if not isinstance(data, list):
        raise WireFormatError(f"the v2 error data is not an array: {data!r}")
    return failure_from_wire([message, *data])
