"""MemoryEvent, EventKind and check_device: the checked front door of the event model."""

from __future__ import annotations

from typing import Any

import pytest

from memactor.events import MAX_BLOCK, MAX_SIZE, EventKind, MemoryEvent, check_device


def make(**overrides: Any) -> MemoryEvent:
    fields: dict[str, Any] = {
        "kind": EventKind.ALLOC,
        "component": "pool",
        "block": 1,
        "size": 4096,
        "device": "cpu",
        "owner": "decode",
        "timestamp_ns": 1_000,
    }
    fields.update(overrides)
    return MemoryEvent(**fields)


def test_event_kinds_have_stable_wire_values() -> None:
    # The codec writes int(kind): these numbers are part of the schema.
    assert [(kind.name, int(kind)) for kind in EventKind] == [
        ("ALLOC", 0),
        ("FREE", 1),
        ("RESIZE", 2),
        ("ACQUIRE", 3),
        ("RELEASE", 4),
        ("TRANSFER", 5),
    ]


def test_an_alloc_event_is_a_flat_tuple_of_eleven_fields() -> None:
    event = make()
    assert tuple(event) == (
        EventKind.ALLOC, "pool", 1, 4096, "cpu", "decode", 1_000, 0, None, (), 0
    )  # fmt: skip
    assert event.kind is EventKind.ALLOC
    assert (event.component, event.block, event.size) == ("pool", 1, 4096)
    assert (event.device, event.owner, event.timestamp_ns) == ("cpu", "decode", 1_000)
    assert (event.old_size, event.dst_device, event.tags, event.seq) == (0, None, (), 0)
    assert len(event) == 11


def test_an_event_is_immutable() -> None:
    event = make()
    with pytest.raises(AttributeError):
        event.size = 1  # type: ignore[misc]  # the point of the test
    assert not hasattr(event, "__dict__")


def test_kind_may_be_given_as_its_int() -> None:
    assert make(kind=1).kind is EventKind.FREE


def test_resize_and_transfer_carry_their_extra_field() -> None:
    resize = make(kind=EventKind.RESIZE, size=8192, old_size=4096)
    assert (resize.old_size, resize.size) == (4096, 8192)
    transfer = make(kind=EventKind.TRANSFER, dst_device="cuda:0")
    assert transfer.dst_device == "cuda:0"
    # old_size=0 is how "no old size" is stored; passing it explicitly is harmless.
    assert make(old_size=0).old_size == 0


def test_tags_are_sorted_string_pairs() -> None:
    assert make(tags={"stage": "decode", "batch": 3}).tags == (("batch", "3"), ("stage", "decode"))
    assert make(tags=[("b", "2"), ("a", "1")]).tags == (("a", "1"), ("b", "2"))
    assert make(tags={}).tags == ()
    assert make(tags=None).tags == ()


def test_timestamp_defaults_to_the_monotonic_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.monotonic_ns", lambda: 123_456)
    event = MemoryEvent(EventKind.ALLOC, "pool", block=1, size=1)
    assert event.timestamp_ns == 123_456
    assert (event.device, event.owner) == ("cpu", "")


def test_limits_are_inclusive() -> None:
    assert make(size=MAX_SIZE).size == MAX_SIZE
    assert make(size=0).size == 0
    assert make(block=MAX_BLOCK).block == MAX_BLOCK
    assert make(block=0).block == 0
    assert make(timestamp_ns=2**63 - 1).timestamp_ns == 2**63 - 1
    assert make(timestamp_ns=-(2**63)).timestamp_ns == -(2**63)
    assert make(kind=EventKind.RESIZE, old_size=MAX_SIZE).old_size == MAX_SIZE


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kind": 9}, r"^kind must be one of \['ALLOC', .*'TRANSFER'\], got 9$"),
        ({"kind": "ALLOC"}, r"^kind must be one of .*, got 'ALLOC'$"),
        ({"component": ""}, r"^component must be a non-empty string, got ''$"),
        ({"component": None}, r"^component must be a non-empty string, got None$"),
        ({"block": -1}, r"^block must be an int id from 0 to 2\*\*63-1, got -1$"),
        ({"block": MAX_BLOCK + 1}, r"^block must be an int id from 0 to 2\*\*63-1, got \d+$"),
        ({"block": 1.0}, r"^block must be an int id from 0 to 2\*\*63-1, got 1\.0$"),
        ({"block": True}, r"^block must be an int id from 0 to 2\*\*63-1, got True$"),
        ({"size": -1}, r"^size must not be negative, got -1$"),
        ({"size": MAX_SIZE + 1}, r"^size must be at most 281474976710655 bytes, got \d+$"),
        ({"size": 1.5}, r"^size must be an int number of bytes, got 1\.5$"),
        ({"size": True}, r"^size must be an int number of bytes, got True$"),
        ({"size": "4096"}, r"^size must be an int number of bytes, got '4096'$"),
        ({"device": "gpu"}, r"^device must be 'cpu' or 'cuda:N', got 'gpu'$"),
        ({"device": None}, r"^device must be 'cpu' or 'cuda:N', got None$"),
        ({"owner": 7}, r"^owner must be a string, got 7$"),
        ({"owner": None}, r"^owner must be a string, got None$"),
        ({"timestamp_ns": 1.5}, r"^timestamp_ns must be an int, got 1\.5$"),
        ({"timestamp_ns": True}, r"^timestamp_ns must be an int, got True$"),
        ({"timestamp_ns": 2**63}, r"^timestamp_ns must fit in a signed 64-bit int, got \d+$"),
        (
            {"timestamp_ns": -(2**63) - 1},
            r"^timestamp_ns must fit in a signed 64-bit int, got -\d+$",
        ),
        ({"kind": EventKind.RESIZE}, r"^old_size is required for a RESIZE event$"),
        ({"kind": EventKind.RESIZE, "old_size": -4}, r"^old_size must not be negative, got -4$"),
        (
            {"kind": EventKind.RESIZE, "old_size": MAX_SIZE + 1},
            r"^old_size must be at most \d+ bytes, got \d+$",
        ),
        (
            {"kind": EventKind.RESIZE, "old_size": "1"},
            r"^old_size must be an int number of bytes, got '1'$",
        ),
        ({"old_size": 5}, r"^old_size is only for RESIZE events, got 5$"),
        ({"kind": EventKind.TRANSFER}, r"^dst_device is required for a TRANSFER event$"),
        (
            {"kind": EventKind.TRANSFER, "dst_device": "tpu"},
            r"^dst_device must be 'cpu' or 'cuda:N', got 'tpu'$",
        ),
        ({"dst_device": "cuda:0"}, r"^dst_device is only for TRANSFER events, got 'cuda:0'$"),
    ],
)
def test_each_bad_field_is_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**overrides)


@pytest.mark.parametrize("seq", [-1, 2**63, 1.0, True, "1"])
def test_seq_is_a_non_negative_int64(seq: object) -> None:
    with pytest.raises(ValueError, match=r"^seq must be an int from 0"):
        make(seq=seq)


def test_the_first_bad_field_is_the_one_named() -> None:
    with pytest.raises(ValueError, match=r"^component must"):
        make(component="", size=-1, device="gpu")
    with pytest.raises(ValueError, match=r"^size must"):
        make(size=-1, device="gpu")


def test_unchecked_builds_without_checking() -> None:
    event = MemoryEvent.unchecked(EventKind.FREE, "", -5, -1, "nowhere", "x", 0)
    assert event == (EventKind.FREE, "", -5, -1, "nowhere", "x", 0, 0, None, (), 0)
    assert isinstance(event, MemoryEvent)
    checked = make(kind=EventKind.TRANSFER, dst_device="cuda:1", tags={"a": "b"})
    assert MemoryEvent.unchecked(*checked) == checked


@pytest.mark.parametrize("device", ["cpu", "cuda:0", "cuda:7", "cuda:10", "cuda:9999"])
def test_check_device_accepts_cpu_and_cuda_n(device: str) -> None:
    assert check_device(device) == device


@pytest.mark.parametrize(
    "device",
    [
        "",
        "CPU",
        "gpu",
        "cuda",
        "cuda:",
        "cuda:01",
        "cuda:-1",
        "cuda:10000",
        "cuda:x",
        " cpu",
        "cpu ",
        "cpu\n",
        "cuda:0\n",
        "cuda:٣",
        "cuda:1٣",
    ],
)
def test_check_device_refuses_anything_else(device: str) -> None:
    with pytest.raises(ValueError, match=r"^device must be 'cpu' or 'cuda:N', got .*$"):
        check_device(device)


@pytest.mark.parametrize("device", [None, 0, b"cpu"])
def test_check_device_refuses_non_strings(device: object) -> None:
    with pytest.raises(ValueError, match=r"^device must be 'cpu' or 'cuda:N', got .*$"):
        check_device(device)  # type: ignore[arg-type]  # the point of the test


def test_check_device_names_the_field_it_checks() -> None:
    with pytest.raises(ValueError, match=r"^dst_device must be 'cpu' or 'cuda:N', got 'tpu'$"):
        check_device("tpu", field="dst_device")
