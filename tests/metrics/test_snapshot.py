"""Snapshots and live blocks: frozen pictures of the ledger, saved and loaded intact."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memactor.codec import SCHEMA_VERSION, CodecError, DecodeLimits, encode
from memactor.events import MAX_SIZE, EventKind, MemoryEvent
from memactor.metrics import CACHED, TOTAL, Ledger, LiveBlock, LiveBlocks, Snapshot


class FakeClock:
    def __init__(self, now_ns: int = 0) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def ev(kind: EventKind, component: str, block: int, size: int, **fields: Any) -> MemoryEvent:
    return MemoryEvent.unchecked(
        kind,
        component,
        block,
        size,
        fields.get("device", "cpu"),
        fields.get("owner", "decode"),
        fields.get("ts", 0),
        fields.get("old_size", 0),
        fields.get("dst"),
    )


ALLOC, FREE, RESIZE = EventKind.ALLOC, EventKind.FREE, EventKind.RESIZE
ACQUIRE, RELEASE, TRANSFER = EventKind.ACQUIRE, EventKind.RELEASE, EventKind.TRANSFER


def story_ledger() -> Ledger:
    """A small pipeline: a pool with a cache, a GPU stage, a transfer, one anomaly."""
    clock = FakeClock(1_000)
    ledger = Ledger(clock=clock, series_capacity=4)
    ledger.apply(
        [
            ev(ALLOC, "pool", 1, 4096, owner="decode", ts=100),
            ev(ALLOC, "pool", 2, 8192, owner="encode", ts=200),
            ev(RELEASE, "pool", 2, 8192),
            ev(ALLOC, "gpu", 1, 1 << 20, device="cuda:0", owner="upload", ts=300),
            ev(TRANSFER, "gpu", 1, 1 << 20, dst="cuda:0"),
            ev(FREE, "pool", 9, 1),
        ]
    )
    for now in (400, 500, 600, 700, 800, 900):
        clock.now_ns = now
        ledger.sample()
    clock.now_ns = 1_000
    return ledger


@pytest.fixture
def snapshot() -> Snapshot:
    return story_ledger().snapshot("after warm-up")


# -- what a snapshot holds --------------------------------------------------------------


def test_a_snapshot_freezes_everything_the_ledger_knows(snapshot: Snapshot) -> None:
    assert snapshot.label == "after warm-up"
    assert snapshot.monotonic_ns == 1_000
    assert snapshot.totals.bytes_reserved == 4096 + 8192 + (1 << 20)
    assert snapshot.totals.bytes_in_use == 4096 + (1 << 20)
    assert snapshot.totals.anomalies == 1
    assert [(c.component, c.device) for c in snapshot.components] == [
        ("gpu", "cpu"),
        ("gpu", "cuda:0"),
        ("pool", "cpu"),
    ]
    assert [o.owner for o in snapshot.owners] == ["decode", "encode", "upload"]
    assert [d.device for d in snapshot.devices] == ["cpu", "cuda:0"]
    assert snapshot.transfers == (("cpu", "cuda:0", 1, 1 << 20),)
    assert sorted(snapshot.blocks) == [
        LiveBlock("gpu", "cuda:0", 1, 1 << 20, "upload", 300),
        LiveBlock("pool", "cpu", 1, 4096, "decode", 100),
        LiveBlock("pool", "cpu", 2, 8192, None, 200),
    ]
    assert [(s.component, s.device) for s in snapshot.series] == [
        ("gpu", "cpu"),
        ("gpu", "cuda:0"),
        ("pool", "cpu"),
        (TOTAL, "*"),
    ]
    assert snapshot.series[-1].series.stride == 2  # six samples in a series of four


def test_a_snapshot_does_not_change_with_the_ledger() -> None:
    ledger = story_ledger()
    before = ledger.snapshot("before")
    ledger.apply([ev(FREE, "pool", 1, 4096), ev(ALLOC, "new", 1, 5)])
    ledger.sample()
    assert before.totals.bytes_in_use == 4096 + (1 << 20)
    assert len(before.blocks) == 3
    assert before.component("pool").live_blocks == 2
    assert before.blocks.size.flags.writeable is False


def test_a_snapshot_without_blocks_keeps_the_statistics() -> None:
    ledger = story_ledger()
    full, light = ledger.snapshot("full"), ledger.snapshot("light", blocks=False)
    assert len(light.blocks) == 0
    assert (light.totals, light.components, light.series) == (
        full.totals,
        full.components,
        full.series,
    )
    assert Snapshot.from_msgpack(light.to_msgpack()) == light


def test_ages_count_to_the_snapshot_moment(snapshot: Snapshot) -> None:
    ages = {(b.component, b.block): snapshot.age_ns(b) for b in snapshot.blocks}
    assert ages == {("gpu", 1): 700, ("pool", 1): 900, ("pool", 2): 800}
    later = story_ledger().snapshot(now_ns=5_000)
    assert max(later.age_ns(b) for b in later.blocks) == 4_900


def test_component_lookup_and_its_key_error(snapshot: Snapshot) -> None:
    assert snapshot.component("pool").bytes_cached == 8192
    assert snapshot.component("gpu", "cuda:0").bytes_in_use == 1 << 20
    with pytest.raises(
        KeyError, match=r"snapshot 'after warm-up' has no component 'pool' on 'cuda:0'"
    ):
        snapshot.component("pool", "cuda:0")
    with pytest.raises(KeyError, match=r"has no component 'nope' on 'cpu'"):
        snapshot.component("nope")


# -- round trips ------------------------------------------------------------------------


def test_msgpack_and_json_round_trip_equal(snapshot: Snapshot) -> None:
    assert Snapshot.from_msgpack(snapshot.to_msgpack()) == snapshot
    assert Snapshot.from_dict(json.loads(snapshot.to_json())) == snapshot
    assert Snapshot.from_dict(snapshot.to_dict()) == snapshot
    assert snapshot.to_dict()["memactor"] == SCHEMA_VERSION
    assert snapshot.to_dict()["type"] == "snapshot"


def test_an_empty_snapshot_round_trips() -> None:
    empty = Ledger(clock=FakeClock()).snapshot()
    assert Snapshot.from_msgpack(empty.to_msgpack()) == empty
    assert Snapshot.from_dict(json.loads(empty.to_json())) == empty


def test_save_picks_the_format_from_the_suffix(snapshot: Snapshot, tmp_path: Path) -> None:
    as_json = snapshot.save(tmp_path / "snap.json")
    as_msgpack = snapshot.save(str(tmp_path / "snap.msgpack"))
    other = snapshot.save(tmp_path / "snap.bin")
    forced = snapshot.save(tmp_path / "forced.msgpack", format="json")
    upper = snapshot.save(tmp_path / "SNAP.JSON")
    assert as_json == tmp_path / "snap.json"
    assert isinstance(as_msgpack, Path)
    assert as_json.read_bytes().startswith(b"{")
    assert upper.read_bytes().startswith(b"{")
    assert forced.read_bytes().startswith(b"{")
    assert msgpack.unpackb(as_msgpack.read_bytes())["type"] == "snapshot"
    assert msgpack.unpackb(other.read_bytes())["type"] == "snapshot"
    for path in (as_json, as_msgpack, other, forced, upper):
        assert Snapshot.load(path) == snapshot


def test_save_leaves_no_partial_file(snapshot: Snapshot, tmp_path: Path) -> None:
    snapshot.save(tmp_path / "snap.msgpack")
    snapshot.save(tmp_path / "snap.msgpack")  # over an existing file
    snapshot.save(tmp_path / "snap.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.json", "snap.msgpack"]


def test_a_failed_save_keeps_the_old_file_and_leaves_no_partial(
    snapshot: Snapshot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "snap.msgpack"
    target.write_bytes(b"the previous snapshot")

    def broken_replace(self: Path, target: Any) -> Path:
        raise OSError("disk on fire")

    monkeypatch.setattr(Path, "replace", broken_replace)
    with pytest.raises(OSError, match=r"^disk on fire$"):
        snapshot.save(target)
    monkeypatch.undo()
    assert target.read_bytes() == b"the previous snapshot"
    assert [p.name for p in tmp_path.iterdir()] == ["snap.msgpack"]


def test_saving_onto_a_directory_fails_cleanly(snapshot: Snapshot, tmp_path: Path) -> None:
    (tmp_path / "taken" / "inside").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        snapshot.save(tmp_path / "taken")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


SMALL_NAMES = st.sampled_from(["pool", "décodé", "gpu.buffers"])
OWNER_NAMES = st.sampled_from(["", "decode", "編碼", "upload"])


@st.composite
def ledger_histories(draw: st.DrawFn) -> Snapshot:
    """A ledger after a random history of events (some anomalous) and samples."""
    clock = FakeClock(draw(st.integers(0, 10**12)))
    ledger = Ledger(clock=clock, series_capacity=draw(st.sampled_from([2, 4, 8])))
    event = st.builds(
        lambda kind, component, block, size, device, owner, ts, dst: MemoryEvent.unchecked(
            kind,
            component,
            block,
            size,
            device,
            owner,
            ts,
            size // 2 if kind is RESIZE else 0,
            dst if kind is TRANSFER else None,
        ),
        st.sampled_from(EventKind),
        SMALL_NAMES,
        st.integers(0, 5),
        st.sampled_from([0, 1, 4096, 65_536, MAX_SIZE, -1]),
        st.sampled_from(["cpu", "cuda:0", "cuda:3"]),
        OWNER_NAMES,
        st.integers(-(10**12), 10**12),
        st.sampled_from(["cpu", "cuda:0", "bogus"]),
    )
    steps = draw(st.lists(st.one_of(st.lists(event, max_size=6), st.just("sample")), max_size=20))
    for step in steps:
        if step == "sample":
            clock.now_ns += draw(st.integers(0, 10**9))
            ledger.sample()
        else:
            ledger.apply(step)
    ledger.note_dropped(draw(st.integers(0, 3)))
    return ledger.snapshot(draw(st.text(max_size=10)))


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(ledger_histories())
def test_any_snapshot_round_trips_through_both_formats_and_files(snapshot: Snapshot) -> None:
    assert Snapshot.from_msgpack(snapshot.to_msgpack()) == snapshot
    assert Snapshot.from_dict(json.loads(snapshot.to_json())) == snapshot
    with tempfile.TemporaryDirectory() as folder:
        for name in ("s.msgpack", "s.json"):
            path = snapshot.save(Path(folder) / name)
            assert Snapshot.load(path) == snapshot


# -- loading what is not a good snapshot ------------------------------------------------


def written(tmp_path: Path, data: bytes, name: str = "bad.msgpack") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def load_error(path: Path, **kwargs: Any) -> str:
    with pytest.raises(CodecError) as caught:
        Snapshot.load(path, **kwargs)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message  # every message names the file
    return message.removeprefix(f"{path}: ")


def test_an_empty_file_is_truncated(tmp_path: Path) -> None:
    assert load_error(written(tmp_path, b"")) == "expected a memactor snapshot payload: truncated"


def test_every_truncation_is_refused_naming_the_file(snapshot: Snapshot, tmp_path: Path) -> None:
    data = snapshot.to_msgpack()
    for cut in sorted({1, 2, 10, len(data) // 3, len(data) // 2, len(data) - 1}):
        assert load_error(written(tmp_path, data[:cut])).endswith("truncated")
    text = snapshot.to_json().encode()
    for cut in (1, len(text) // 2, len(text) - 1):
        assert "not valid JSON" in load_error(written(tmp_path, text[:cut], "bad.json"))


def test_trailing_bytes_are_refused(snapshot: Snapshot, tmp_path: Path) -> None:
    message = load_error(written(tmp_path, snapshot.to_msgpack() + b"\x00"))
    assert message == "expected one memactor snapshot payload, found trailing bytes after it"


def test_random_bytes_are_not_a_snapshot(tmp_path: Path) -> None:
    # They parse as one small msgpack value and then garbage: not "trailing bytes".
    data = bytes(range(3, 67))
    assert load_error(written(tmp_path, data)) == (
        "expected a memactor snapshot payload, found something else"
    )


def test_json_that_is_not_utf8_is_a_codec_error(tmp_path: Path) -> None:
    message = load_error(written(tmp_path, b'{"memactor": "\xff\xfe"}', "bad.json"))
    assert message.startswith("expected a memactor snapshot payload: not valid JSON")


def test_a_json_file_with_a_byte_order_mark_loads(snapshot: Snapshot, tmp_path: Path) -> None:
    path = written(tmp_path, b"\xef\xbb\xbf" + snapshot.to_json().encode(), "bom.json")
    assert Snapshot.load(path) == snapshot


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00", r"expected a memactor snapshot payload: not valid msgpack"),
        (b"\xc1\xc1", r"expected a memactor snapshot payload: not valid msgpack"),
        (msgpack.packb([1, 2, 3]), r"expected a memactor snapshot payload, found something else"),
        (
            msgpack.packb({"hello": "world"}),
            r"expected a memactor snapshot payload, found something else",
        ),
        (b"[1, 2]", r"expected a memactor snapshot payload, found something else"),
        (b"\xef\xbb\xbf[1]", r"expected a memactor snapshot payload, found something else"),
        (b'{"hello": 1}', r"expected a memactor snapshot payload, found something else"),
        (b"{not json", r"expected a memactor snapshot payload: not valid JSON"),
        (
            encode("events", {"events": []}),
            r"expected a memactor snapshot payload, found a 'events' payload",
        ),
        (
            msgpack.packb({"memactor": 99, "type": "snapshot"}),
            r"expected schema version 1, found 99; this payload was written by another",
        ),
        (
            json.dumps({"memactor": 0, "type": "snapshot"}).encode(),
            r"expected schema version 1, found 0",
        ),
    ],
)
def test_a_foreign_file_is_refused_naming_the_file(
    tmp_path: Path, data: bytes, expected: str
) -> None:
    assert load_error(written(tmp_path, data)).startswith(expected.replace("\\", ""))


def test_damage_anywhere_is_a_codec_error_naming_the_file_or_a_snapshot(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    data = snapshot.to_msgpack()
    messages = []
    for position in range(0, len(data), 7):
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        path = written(tmp_path, bytes(damaged))
        try:
            Snapshot.load(path)  # a flipped byte inside a number may still load
        except CodecError as exc:
            messages.append(str(exc))
    assert messages
    assert all(message.startswith(f"{path}: ") for message in messages)


def test_a_file_over_the_size_limit_is_refused_before_reading(
    snapshot: Snapshot, tmp_path: Path
) -> None:
    path = snapshot.save(tmp_path / "big.msgpack")
    size = path.stat().st_size
    message = load_error(path, limits=DecodeLimits(max_bytes=100))
    assert message == f"{size} bytes is over the limit of 100"


def test_a_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Snapshot.load(tmp_path / "nowhere.msgpack")


def json_with(snapshot: Snapshot, change: Any) -> bytes:
    body = json.loads(snapshot.to_json())
    change(body)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda b: b.pop("label"), r"damaged snapshot: missing field 'label'"),
        (lambda b: b.pop("blocks"), r"damaged snapshot: missing field 'blocks'"),
        (lambda b: b["blocks"].pop("size"), r"damaged snapshot: missing field 'size'"),
        (
            lambda b: b["totals"].pop("malformed"),
            r"damaged snapshot: missing fields \['malformed'\]$",
        ),
        (
            lambda b: b["components"][0].pop("frees"),
            r"damaged snapshot: missing fields \['frees'\]$",
        ),
        (
            lambda b: b["components"][0].update(bytes_reserved="12"),
            r"damaged snapshot: field 'bytes_reserved' has a str, expected an integer$",
        ),
        (
            lambda b: b["components"][0].update(component=5),
            r"damaged snapshot: field 'component' has a int, expected a string$",
        ),
        (
            lambda b: b["components"][0].update(bogus=1),
            r"damaged snapshot: unexpected fields \['bogus'\]",
        ),
        (
            lambda b: b["totals"].update(anomalies=1.5),
            r"damaged snapshot: field 'anomalies' has a float, expected an integer$",
        ),
        (lambda b: b.update(label=7), r"damaged snapshot: expected a string, found 7"),
        (
            lambda b: b.update(monotonic_ns="soon"),
            r"damaged snapshot: expected an integer, found 'soon'",
        ),
        (lambda b: b.update(owners=[["decode", 1]]), r"damaged snapshot: "),
        (
            lambda b: b["blocks"]["size"].append(5),
            r"damaged snapshot: block columns differ in length",
        ),
        (
            lambda b: b["blocks"].update(account=[7, 7, 7]),
            r"damaged snapshot: column 'account' points past",
        ),
        (
            lambda b: b["blocks"].update(owner=[5, 5, 5]),
            r"damaged snapshot: column 'owner' points past",
        ),
        (
            lambda b: b["blocks"].update(size=[-1, 1, 1]),
            r"damaged snapshot: column 'size' holds a negative",
        ),
        (lambda b: b["blocks"].update(size=[2**70, 1, 1]), r"damaged snapshot: "),
        (lambda b: b["blocks"].update(size=[1e400, 1, 1]), r"damaged snapshot: "),
        (lambda b: b["series"][0].update(stride="x"), r"damaged snapshot: expected an integer"),
        (
            lambda b: b["series"][0]["times_ns"].append(1),
            r"damaged snapshot: series columns differ",
        ),
        (lambda b: b["components"][0].update(anomalies=[1]), r"damaged snapshot: "),
    ],
)
def test_a_damaged_json_file_names_the_problem(
    snapshot: Snapshot, tmp_path: Path, change: Any, expected: str
) -> None:
    path = written(tmp_path, json_with(snapshot, change), "bad.json")
    with pytest.raises(CodecError, match=rf"^{path}: {expected}"):
        Snapshot.load(path)


def test_a_damaged_msgpack_column_names_the_problem(snapshot: Snapshot, tmp_path: Path) -> None:
    body = msgpack.unpackb(snapshot.to_msgpack())
    body["blocks"]["size"] = body["blocks"]["size"][:-3]
    path = written(tmp_path, msgpack.packb(body))
    assert load_error(path) == "damaged snapshot: column 'size' has a partial item"
    body = msgpack.unpackb(snapshot.to_msgpack())
    body["series"][0]["times_ns"] = b"\x00" * 3
    path = written(tmp_path, msgpack.packb(body))
    assert load_error(path) == "damaged snapshot: series column 'times_ns' has a partial item"


# -- live blocks ------------------------------------------------------------------------


def columns(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "account": [0, 0, 1],
        "block": [1, 2, 1],
        "size": [10, 20, 30],
        "owner": [0, CACHED, 1],
        "allocated_ns": [5, 6, 7],
    }
    base.update(overrides)
    return base


ACCOUNTS = (("pool", "cpu"), ("gpu", "cuda:0"))
OWNERS = ("decode", "upload")


def test_live_blocks_read_as_rows() -> None:
    blocks = LiveBlocks.from_columns(ACCOUNTS, OWNERS, columns())
    assert len(blocks) == 3
    assert list(blocks) == [
        LiveBlock("pool", "cpu", 1, 10, "decode", 5),
        LiveBlock("pool", "cpu", 2, 20, None, 6),
        LiveBlock("gpu", "cuda:0", 1, 30, "upload", 7),
    ]
    assert [row.in_use for row in blocks] == [True, False, True]
    assert blocks.in_use.tolist() == [True, False, True]
    assert blocks.rows_of("pool", "cpu").tolist() == [True, True, False]
    assert blocks.rows_of("pool", "cuda:0").tolist() == [False, False, False]
    lent = blocks.select(blocks.in_use)
    assert [row.block for row in lent] == [1, 1]
    assert lent.accounts == ACCOUNTS


def test_live_blocks_are_read_only_and_compare_by_rows() -> None:
    blocks = LiveBlocks.from_columns(ACCOUNTS, OWNERS, columns())
    with pytest.raises(ValueError, match="read-only"):
        blocks.size[0] = 1
    same_rows = LiveBlocks.from_columns(
        (("gpu", "cuda:0"), ("pool", "cpu")),
        ("upload", "decode"),
        columns(account=[1, 1, 0], owner=[1, CACHED, 0]),
    )
    assert blocks == same_rows  # same rows, different tables
    assert blocks != LiveBlocks.empty()
    assert (blocks == "blocks") is False
    with pytest.raises(TypeError):
        hash(blocks)


def test_live_blocks_read_little_endian_buffers() -> None:
    buffers = {
        name: np.asarray(values, dtype=dtype).astype(np.dtype(dtype).newbyteorder("<")).tobytes()
        for (name, values), dtype in zip(
            columns().items(), [np.int32, np.int64, np.int64, np.int32, np.int64], strict=True
        )
    }
    assert LiveBlocks.from_columns(ACCOUNTS, OWNERS, buffers) == LiveBlocks.from_columns(
        ACCOUNTS, OWNERS, columns()
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"size": b"\x00" * 7}, r"^column 'size' has a partial item$"),
        ({"size": [[1, 2, 3]]}, r"^column 'size' must be an array of integers$"),
        ({"size": [1.5]}, r"^column 'size' must be an array of integers$"),
        ({"account": [2**40]}, r"^column 'account' holds a value beyond int32$"),
        ({"size": [1, 2]}, r"^block columns differ in length: \[2, 3\]$"),
        ({"account": [0, 0, 2]}, r"^column 'account' points past the accounts table$"),
        ({"account": [0, -1, 1]}, r"^column 'account' points past the accounts table$"),
        ({"owner": [0, 2, 1]}, r"^column 'owner' points past the owners table$"),
        ({"owner": [0, -2, 1]}, r"^column 'owner' points past the owners table$"),
        ({"size": [1, -1, 1]}, r"^column 'size' holds a negative size$"),
    ],
)
def test_live_blocks_refuse_bad_columns(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LiveBlocks.from_columns(ACCOUNTS, OWNERS, columns(**overrides))


def test_empty_live_blocks() -> None:
    empty = LiveBlocks.empty()
    assert len(empty) == 0
    assert list(empty) == []
    assert (empty.accounts, empty.owners) == ((), ())
    assert (empty.block.dtype, empty.account.dtype) == (np.dtype(np.int64), np.dtype(np.int32))


def test_a_file_in_the_first_schema_1_layout_still_loads() -> None:
    # Written by memactor before live blocks were collected without object arrays and
    # snapshot files were streamed; the layout is schema 1's first, and must keep loading.
    path = Path(__file__).parent / "data" / "schema1-layout1.msgpack"
    loaded = Snapshot.load(path)
    expected = story_ledger().snapshot("written by memactor at schema 1")
    assert dataclasses.replace(expected, wall_time_ns=loaded.wall_time_ns) == loaded
    assert sorted(loaded.blocks) == sorted(expected.blocks)
    assert loaded.blocks.size.flags.writeable is False
