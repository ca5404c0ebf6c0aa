from models.outcome import Failure, Success


def test_failure_description_is_code_then_params() -> None:
    assert Failure("HANDLE_INVALID", ("VM", "OpaqueRef:x")).description == [
        "HANDLE_INVALID",
        "VM",
        "OpaqueRef:x",
    ]


def test_outcomes_compare_by_value() -> None:
    assert Success("") == Success("")
    assert Success(1) != Success("1")
    assert Failure("X", ("a",)) != Failure("X", ())
