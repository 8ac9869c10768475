"""Snapshot files under attack: limits for JSON as for msgpack, bounded reads, safe saves,
and a fuzz suite of damaged files through ``Snapshot.load`` and ``memactor report``."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memactor.codec import CodecError, DecodeLimits, decode_json, read_file
from memactor.events import EventKind, MemoryEvent
from memactor.metrics import Ledger, Snapshot, diff


def story() -> Snapshot:
    ledger = Ledger(clock=lambda: 5_000, series_capacity=4)
    ledger.apply(
        [
            MemoryEvent.unchecked(EventKind.ALLOC, "pool", 1, 4096, "cpu", "decode", 100),
            MemoryEvent.unchecked(EventKind.ALLOC, "pool", 2, 8192, "cpu", "encode", 200),
            MemoryEvent.unchecked(EventKind.RELEASE, "pool", 2, 8192, "cpu", "", 300),
            MemoryEvent.unchecked(EventKind.ALLOC, "gpu", 1, 1 << 20, "cuda:0", "up", 400),
        ]
    )
    ledger.sample()
    return ledger.snapshot("story")


STORY = story()
MSGPACK = STORY.to_msgpack()
JSON = STORY.to_json().encode()


def load_error(path: Path, **limits: int) -> str:
    with pytest.raises(CodecError) as caught:
        Snapshot.load(path, limits=DecodeLimits(**limits))
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


# -- decoder limits, for JSON as for msgpack ---------------------------------------------


def test_deeply_nested_json_is_a_codec_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert load_error(path) == ("expected a memactor snapshot payload: JSON nested too deeply")


def test_a_json_integer_of_too_many_digits_is_a_codec_error(tmp_path: Path) -> None:
    path = tmp_path / "digits.json"
    path.write_text('{"memactor": 1, "type": "snapshot", "label": ' + "7" * 5000 + "}")
    assert load_error(path).startswith(
        "expected a memactor snapshot payload: not valid JSON (Exceeds the limit (4300 digits)"
    )


def test_a_ten_mib_label_is_refused_from_json_as_from_msgpack(tmp_path: Path) -> None:
    body = STORY.to_dict() | {"label": "x" * (10 << 20)}
    as_json = tmp_path / "big.json"
    as_json.write_text(json.dumps(body))
    as_msgpack = tmp_path / "big.msgpack"
    as_msgpack.write_bytes(msgpack.packb(body))
    assert load_error(as_json) == (
        "expected a memactor snapshot payload: a string of 10485760 bytes is over the limit "
        "of 65536"
    )
    assert load_error(as_msgpack).startswith(
        "expected a memactor snapshot payload: not valid msgpack ("
    )


def test_json_arrays_and_payloads_keep_to_the_limits() -> None:
    with pytest.raises(CodecError, match=r"an array of 11 entries is over the limit of 10$"):
        decode_json(json.dumps({"x": [0] * 11}), "snapshot", limits=DecodeLimits(max_items=10))
    with pytest.raises(CodecError, match=r"a string of 8 bytes is over the limit of 7$"):
        decode_json(
            '{"k": "\u00e9\u00e9\u00e9\u00e9"}', "x", limits=DecodeLimits(max_string_bytes=7)
        )
    with pytest.raises(CodecError, match=r"^payload of 13 bytes is over the limit of 12$"):
        decode_json('{"k": "1234"}', "x", limits=DecodeLimits(max_bytes=12))


# -- bounded reads ------------------------------------------------------------------------


def test_dev_zero_is_refused_at_once() -> None:
    assert load_error(Path("/dev/zero")) == "not a regular file"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "snap.msgpack"
    os.mkfifo(fifo)
    assert load_error(fifo) == "not a regular file"


def test_a_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "snap.msgpack"
    path.write_bytes(MSGPACK)
    assert load_error(path, max_bytes=100) == f"{len(MSGPACK)} bytes is over the limit of 100"


def test_reads_stop_at_the_limit_whatever_stat_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file that grows after stat (or a file system whose sizes lie) reads as 0 bytes.
    path = tmp_path / "growing.msgpack"
    path.write_bytes(b"\x00" * 5000)
    real_fstat = os.fstat

    def lying_fstat(fd: int) -> Any:
        info = real_fstat(fd)
        return os.stat_result((*info[:6], 0, *info[7:]))

    monkeypatch.setattr(os, "fstat", lying_fstat)
    with pytest.raises(CodecError, match=r"^more than 1000 bytes is over the limit of 1000$"):
        read_file(path, limits=DecodeLimits(max_bytes=1000))
    assert len(read_file(path, limits=DecodeLimits(max_bytes=5000))) == 5000


def test_loaded_block_columns_share_the_files_buffer(tmp_path: Path) -> None:
    path = STORY.save(tmp_path / "snap.msgpack")
    loaded = Snapshot.load(path)
    assert loaded == STORY
    sizes = loaded.blocks.size
    assert not sizes.flags.owndata
    assert not sizes.flags.writeable
    assert np.shares_memory(loaded.blocks.size, loaded.blocks.block) is False
    assert diff(STORY, loaded).components  # usable as any snapshot


# -- saves ---------------------------------------------------------------------------------


def test_a_symlink_at_the_old_partial_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / ".snap.msgpack.partial").symlink_to(victim)
    STORY.save(tmp_path / "snap.msgpack")
    assert victim.read_text() == "precious"
    assert Snapshot.load(tmp_path / "snap.msgpack") == STORY


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    target = tmp_path / "snap.json"
    target.symlink_to(victim)
    STORY.save(target)
    assert victim.read_text() == "precious"
    assert not target.is_symlink()
    assert Snapshot.load(target) == STORY


def test_a_saved_file_gets_the_permissions_of_a_new_file(tmp_path: Path) -> None:
    mask = os.umask(0o027)
    try:
        path = STORY.save(tmp_path / "snap.msgpack")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_two_savers_to_one_path_do_not_collide(tmp_path: Path) -> None:
    target = tmp_path / "snap.msgpack"
    errors: list[BaseException] = []

    def save_many() -> None:
        try:
            for _ in range(20):
                STORY.save(target)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    savers = [threading.Thread(target=save_many) for _ in range(2)]
    for saver in savers:
        saver.start()
    for saver in savers:
        saver.join()
    assert errors == []
    assert [p.name for p in tmp_path.iterdir()] == ["snap.msgpack"]
    assert Snapshot.load(target) == STORY


def test_a_stale_partial_file_is_never_loaded_as_a_snapshot(tmp_path: Path) -> None:
    # What a save killed between its fsync and its rename leaves: a whole snapshot.
    stale = tmp_path / ".snap.msgpack.k3j4h5g6.partial"
    stale.write_bytes(MSGPACK)
    assert load_error(stale) == "an unfinished save's temporary file, not a snapshot"
    STORY.save(tmp_path / "snap.msgpack")
    assert stale.read_bytes() == MSGPACK  # another save's file: left alone


# -- fuzz: damaged files through Snapshot.load ---------------------------------------------

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def loads_or_refuses(folder: Path, data: bytes, suffix: str = ".msgpack") -> None:
    """Loading *data* gives a snapshot or a CodecError naming the file, never anything else."""
    path = folder / f"fuzz{suffix}"
    path.write_bytes(data)
    try:
        Snapshot.load(path)
    except CodecError as error:
        message = str(error)
    else:
        return
    assert message.startswith(f"{path}: ")
    assert "\n" not in message


BASES = st.sampled_from([MSGPACK, JSON])
HOSTILE_HEADERS = [
    b"\xdd\xff\xff\xff\xff",  # array32 of 4 G items
    b"\xdf\x7f\xff\xff\xff",  # map32 of 2 G entries
    b"\xc6\xff\xff\xff\xf0",  # bin32 of 4 GiB
    b"\xdb\x7f\xff\xff\xff",  # str32 of 2 GiB
    b"\xdc\xff\xff",  # array16
    b"\xc5\xff\xff",  # bin16
    b"\xcf\xff\xff\xff\xff\xff\xff\xff\xff",  # uint64 max
    b"\xd3\x80\x00\x00\x00\x00\x00\x00\x00",  # int64 min
    b"\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",  # float NaN
    b"\xc1",  # never used
    b"\xd4\x00\x00",  # ext
]


@settings(FUZZ, max_examples=400)
@given(BASES, st.integers(0, len(JSON)))
def test_fuzz_truncated_files(folder: Path, base: bytes, cut: int) -> None:
    loads_or_refuses(folder, base[: cut % (len(base) + 1)])


@settings(FUZZ, max_examples=500)
@given(BASES, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), min_size=1, max_size=8))
def test_fuzz_bit_flips(folder: Path, base: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(base)
    for position, bit in flips:
        data[position % len(data)] ^= 1 << bit
    loads_or_refuses(folder, bytes(data))


@settings(FUZZ, max_examples=400)
@given(st.sampled_from(HOSTILE_HEADERS), st.integers(0, 10**6), st.booleans())
def test_fuzz_hostile_sizes(folder: Path, header: bytes, position: int, overwrite: bool) -> None:
    at = position % len(MSGPACK)
    rest = MSGPACK[at + len(header) :] if overwrite else MSGPACK[at:]
    loads_or_refuses(folder, MSGPACK[:at] + header + rest)


@settings(FUZZ, max_examples=200)
@given(st.integers(1, 50_000), st.sampled_from(["array", "map", "json"]), st.booleans())
def test_fuzz_nesting(folder: Path, depth: int, how: str, as_label: bool) -> None:
    if how == "json":
        nested = "[" * depth + "]" * depth
        text = '{"memactor":1,"type":"snapshot","label":' + nested + "}" if as_label else nested
        loads_or_refuses(folder, text.encode(), ".json")
        return
    opener = b"\x91" if how == "array" else b"\x81\xa1k"
    nested_bytes = opener * depth + b"\xc0"
    if as_label:
        body = msgpack.unpackb(MSGPACK)
        body["label"] = None
        head = msgpack.packb(body)
        loads_or_refuses(folder, head.replace(b"\xa5label\xc0", b"\xa5label" + nested_bytes))
    else:
        loads_or_refuses(folder, nested_bytes)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            found += _paths(item, (*prefix, index))
    return found


WRONG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.binary(max_size=9),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-(2**63), 2**64 - 1), max_size=2),
)
BODY = msgpack.unpackb(MSGPACK)
BODY_PATHS = _paths(BODY)[1:]


@settings(FUZZ, max_examples=500)
@given(st.sampled_from(BODY_PATHS), WRONG_VALUES, st.booleans())
def test_fuzz_wrong_types(folder: Path, path: tuple[Any, ...], value: Any, as_json: bool) -> None:
    body = msgpack.unpackb(MSGPACK)
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    if as_json:
        try:
            text = json.dumps(body, default=lambda b: list(b)).encode()
        except ValueError:  # an int JSON cannot hold: nothing to try
            return
        loads_or_refuses(folder, text, ".json")
    else:
        loads_or_refuses(folder, msgpack.packb(body, use_bin_type=True))


@settings(FUZZ, max_examples=200)
@given(
    st.one_of(st.integers(-(2**63), 2**64 - 1), st.text(max_size=4), st.none()), st.text(max_size=9)
)
def test_fuzz_foreign_versions(folder: Path, version: Any, type_: str) -> None:
    body = msgpack.unpackb(MSGPACK) | {"memactor": version}
    loads_or_refuses(folder, msgpack.packb(body))
    if version == 1:
        body |= {"type": type_}
    loads_or_refuses(folder, json.dumps(body, default=lambda b: list(b)).encode(), ".json")


# -- a sample through the command line -----------------------------------------------------

CLI_SAMPLES: dict[str, Callable[[Path], Path]] = {
    "truncated": lambda folder: _write(folder / "cut.msgpack", MSGPACK[: len(MSGPACK) // 2]),
    "bit flip": lambda folder: _write(folder / "flip.msgpack", _flip(MSGPACK, 40)),
    "nested json": lambda folder: _write(folder / "deep.json", b"[" * 5000 + b"]" * 5000),
    "huge integer": lambda folder: _write(
        folder / "digits.json", b'{"memactor":1,"label":' + b"9" * 5000 + b"}"
    ),
    "dev zero": lambda folder: Path("/dev/zero"),
    "hostile size": lambda folder: _write(folder / "size.msgpack", b"\xdd\xff\xff\xff\xff"),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _flip(data: bytes, position: int) -> bytes:
    flipped = bytearray(data)
    flipped[position] ^= 0x10
    return bytes(flipped)


def test_damaged_files_through_the_command_line_exit_2_with_one_line(tmp_path: Path) -> None:
    paths = {name: make(tmp_path) for name, make in CLI_SAMPLES.items()}
    # Started together: each is a fresh interpreter, and they wait on nothing but themselves.
    runs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "memactor", "report", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, path in paths.items()
    }
    for name, run in runs.items():
        out, err = run.communicate(timeout=60)
        assert (name, run.returncode) == (name, 2), err
        assert out == ""
        assert err.startswith(f"memactor report: cannot read a snapshot from {paths[name]}: ")
        assert err.count("\n") == 1
        assert "Traceback" not in err
