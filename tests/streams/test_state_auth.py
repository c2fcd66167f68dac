"""Issue 14, "state nobody can forge": saved state is signed, and checked before it is unpickled.

A save is a pickle, and unpickling runs code. Every case below that must be
refused is built around a pickle whose ``__reduce__`` creates a marker file
(:class:`Bomb`): the file's absence proves that nothing was unpickled. Also
here: the key's settings (``KUZET_STATE_KEY``, ``KUZET_STATE_KEY_FILE``), the
worker refusing to start without one, the store's warning and metric for a
refused save (a fake Kafka client), and the private folders Kuzet makes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pickle
import secrets
import stat
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import msgspec
import pytest
from prometheus_client import CollectorRegistry

import streams.state as state_module
from detectors.engine import SnapshotError
from detectors.errors import ConfigError
from streams import cli
from streams.folders import FolderError, private_folder
from streams.metrics import Metrics
from streams.settings import Settings
from streams.state import (
    REJECT_REASONS,
    STATE_VERSION,
    StateKey,
    StateRejected,
    StateStore,
    TaskState,
    dump,
    require_state_key,
    restore,
    seal,
)
from streams.worlds import parse_worlds, run_worlds

SECRET = secrets.token_bytes(32)
KEY = StateKey.derive(SECRET)
TASK = "payments/1"


class Bomb:
    """Creates ``marker`` when unpickled: the proof that a pickle was (or was not) read."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def bomb_blob(marker: Path) -> bytes:
    """A save-shaped pickle (format, payload) that runs code when read."""
    return pickle.dumps((STATE_VERSION, Bomb(marker)), protocol=pickle.HIGHEST_PROTOCOL)


def split(records: list[tuple[str, bytes]]) -> tuple[bytes, dict[str, bytes]]:
    """The manifest's value and the chunks by record key, as the store reads them."""
    *chunks, (key, manifest) = records
    assert key == TASK
    return manifest, dict(chunks)


def sealed(blob: bytes, key: StateKey = KEY, offset: int = 7) -> tuple[bytes, dict[str, bytes]]:
    return split(seal(key, TASK, offset, blob, 3, "w0"))


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 64 bytes, so every save here spans several."""
    monkeypatch.setattr(state_module, "CHUNK_BYTES", 64)


def a_state() -> TaskState:
    outcomes = Counter({f"outcome-{n}": n for n in range(40)})
    return TaskState("payments", 1, position=7, outcomes=outcomes, max_ts=1.6e9)


# --- what is signed round-trips; the bomb is live ------------------------------------


def test_a_signed_save_round_trips(small_chunks):
    state = a_state()
    manifest, chunks = sealed(dump(state))
    assert len(chunks) > 3
    back, saved = restore(KEY, TASK, manifest, chunks)
    assert back == state
    assert (saved.generation, saved.writer, saved.offset, saved.version) == (
        3,
        "w0",
        7,
        STATE_VERSION,
    )


def test_the_bomb_goes_off_when_a_signed_save_holds_it(tmp_path: Path, small_chunks):
    """The control: the marker appears as soon as the pickle is read. Signed with the
    key, it is read (and then refused, being no TaskState): the key is the trust."""
    marker = tmp_path / "unpickled"
    manifest, chunks = sealed(bomb_blob(marker))
    with pytest.raises(SnapshotError) as error:
        restore(KEY, TASK, manifest, chunks)
    assert not isinstance(error.value, StateRejected)
    assert marker.exists()


# --- what is refused, never unpickled ------------------------------------------------


Saved = tuple[bytes, dict[str, bytes]]  #: a manifest's value, and the chunks by record key


def flip_a_chunk(manifest: bytes, chunks: dict[str, bytes], blob: bytes) -> Saved:
    name = sorted(chunks)[1]
    chunks[name] = chunks[name][:10] + bytes([chunks[name][10] ^ 1]) + chunks[name][11:]
    return manifest, chunks


def edit_manifest(**changes):
    def edit(manifest: bytes, chunks: dict[str, bytes], blob: bytes) -> Saved:
        fields = msgspec.msgpack.decode(manifest)
        assert set(changes) <= set(fields)
        return msgspec.msgpack.encode(fields | changes), chunks

    return edit


def drop_a_chunk(manifest: bytes, chunks: dict[str, bytes], blob: bytes) -> Saved:
    del chunks[sorted(chunks)[-1]]
    return manifest, chunks


def another_partition(manifest: bytes, chunks: dict[str, bytes], blob: bytes) -> Saved:
    """payments/2's genuine save, renamed to stand for payments/1."""
    records = seal(KEY, "payments/2", 7, blob, 3, "w0")
    return split([(k.replace("payments/2", TASK), v) for k, v in records])


def garbage(manifest: bytes, chunks: dict[str, bytes], blob: bytes) -> Saved:
    return b"\xc1 not msgpack", chunks


def wrong_shape(manifest: bytes, chunks: dict[str, bytes], blob: bytes) -> Saved:
    return msgspec.msgpack.encode([1, 2]), chunks


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (flip_a_chunk, "bad_mac"),
        (edit_manifest(offset=0), "bad_mac"),  # replay the partition from its start
        (edit_manifest(size=12), "bad_mac"),
        (edit_manifest(generation=4), "incomplete"),  # names chunks that are not there
        (edit_manifest(chunks=10**12), "incomplete"),  # and no time is spent looking
        (edit_manifest(version=STATE_VERSION + 1), "version"),
        (edit_manifest(mac=b""), "unsigned"),
        (edit_manifest(mac=bytes(32)), "bad_mac"),
        (edit_manifest(key_id="0" * 16), "other_key"),
        (drop_a_chunk, "incomplete"),
        (another_partition, "bad_mac"),
        (garbage, "malformed"),
        (wrong_shape, "malformed"),
    ],
    ids=[
        "chunk-flipped",
        "offset-changed",
        "size-changed",
        "generation-changed",
        "chunks-huge",
        "version-changed",
        "mac-removed",
        "mac-zeroed",
        "key-id-changed",
        "chunk-missing",
        "another-partitions-save",
        "manifest-garbage",
        "manifest-wrong-shape",
    ],
)
def test_a_tampered_save_is_refused_without_unpickling(
    tmp_path: Path, small_chunks, tamper, reason
):
    marker = tmp_path / "unpickled"
    blob = bomb_blob(marker)
    manifest, chunks = tamper(*sealed(blob), blob)
    with pytest.raises(StateRejected) as error:
        restore(KEY, TASK, manifest, chunks)
    assert error.value.reason == reason
    assert reason in REJECT_REASONS
    assert f"the saved state of {TASK}" in str(error.value)
    assert not marker.exists(), "the refused pickle was read"


def test_a_save_signed_with_another_key_is_refused_without_unpickling(tmp_path: Path, small_chunks):
    marker = tmp_path / "unpickled"
    other = StateKey.derive(secrets.token_bytes(32))
    with pytest.raises(StateRejected, match="another key") as error:
        restore(KEY, TASK, *sealed(bomb_blob(marker), key=other))
    assert error.value.reason == "other_key"

    # The other key's save, claiming this key's id: the MAC still tells.
    manifest, chunks = sealed(bomb_blob(marker), key=StateKey(other.mac_key, KEY.key_id))
    with pytest.raises(StateRejected) as error:
        restore(KEY, TASK, manifest, chunks)
    assert error.value.reason == "bad_mac"
    assert not marker.exists()


def test_an_unsigned_save_of_format_1_is_refused_without_unpickling(tmp_path: Path):
    """A save as the worker wrote it before saves were signed (a sha256, no mac)."""
    marker = tmp_path / "unpickled"
    blob = pickle.dumps((1, Bomb(marker)))
    old = {
        "generation": 5,
        "writer": "0123456789ab",
        "chunks": 1,
        "size": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "offset": 42,
    }
    manifest = msgspec.msgpack.encode(old)
    with pytest.raises(StateRejected, match="not signed") as error:
        restore(KEY, TASK, manifest, {f"{TASK}/5.0123456789ab/0": blob})
    assert error.value.reason == "unsigned"
    assert not marker.exists()


def test_the_mac_covers_every_manifest_field():
    """Every field the manifest carries but the mac itself goes into the mac."""
    manifest, _ = sealed(b"x" * 10)
    fields = msgspec.msgpack.decode(manifest)
    assert set(fields) == {
        "generation",
        "writer",
        "chunks",
        "size",
        "offset",
        "version",
        "key_id",
        "mac",
    }
    base = state_module._manifest_decoder.decode(manifest)
    blob = b"x" * 10
    reference = state_module._mac(KEY, TASK, base, blob)
    for name, value in [
        ("generation", 4),
        ("writer", "w1"),
        ("chunks", 2),
        ("size", 11),
        ("offset", 8),
        ("version", STATE_VERSION + 1),
        ("key_id", "f" * 16),
    ]:
        changed = msgspec.structs.replace(base, **{name: value})
        assert state_module._mac(KEY, TASK, changed, blob) != reference, name
    assert state_module._mac(KEY, "payments/2", base, blob) != reference


# --- the store: a refused save is a warning and a count, and the partition starts empty -----


class FakeProducer:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []

    async def send(self, topic, value, key=None, partition=None):
        self.records.append((key, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def fake_consumer(records: list[tuple[bytes, bytes | None]]):
    """An AIOKafkaConsumer that holds ``records`` in one partition of the state topic."""

    class Consumer:
        def __init__(self, **kwargs) -> None:
            self.read = False

        async def start(self) -> None: ...

        async def stop(self) -> None: ...

        def assign(self, tps) -> None:
            self.tps = tps

        async def seek_to_beginning(self, *tps) -> None: ...

        async def end_offsets(self, tps):
            return {tp: len(records) for tp in tps}

        async def getmany(self, *tps, timeout_ms=0):
            self.read = True
            return {tps[0]: [SimpleNamespace(key=k, value=v) for k, v in records]}

        async def position(self, tp) -> int:
            return len(records) if self.read else 0

    return Consumer


async def saved_and_read(monkeypatch, tamper, secret: bytes = SECRET, reject=None):
    """Save a state through a StateStore, ``tamper`` with its records, read it back."""
    producer = FakeProducer()
    writer = StateStore(producer, "kuzet-state", 1, {}, key=SECRET)  # type: ignore[arg-type]
    state = a_state()
    await writer.save(state, dump(state))
    records = tamper(producer.records)
    monkeypatch.setattr(state_module, "AIOKafkaConsumer", fake_consumer(records))
    reader = StateStore(None, "kuzet-state", 1, {}, key=secret, on_reject=reject)  # type: ignore[arg-type]
    return state, await reader.read([("payments", 1)]), reader


async def test_the_store_reads_back_what_it_signed(monkeypatch, small_chunks):
    state, read, reader = await saved_and_read(monkeypatch, lambda records: records)
    assert read == {TASK: state}
    assert reader.generations == {TASK: 1}


async def test_a_refused_save_is_logged_counted_and_the_partition_starts_empty(
    monkeypatch, small_chunks, caplog: pytest.LogCaptureFixture
):
    def flip(records):
        key, value = records[0]
        return [(key, bytes([value[0] ^ 1]) + value[1:]), *records[1:]]

    metrics = Metrics(CollectorRegistry())
    caplog.set_level(logging.WARNING, "streams.state")
    _, read, reader = await saved_and_read(monkeypatch, flip, reject=metrics.record_state_rejected)
    assert read == {}  # the worker then takes the group's committed offset, empty state
    assert reader.generations == {}
    sample = metrics.registry.get_sample_value
    assert sample("kuzet_state_rejected_total", {"reason": "bad_mac"}) == 1
    assert [sample("kuzet_state_rejected_total", {"reason": r}) for r in REJECT_REASONS].count(
        0
    ) == len(REJECT_REASONS) - 1
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "fails authentication" in record.getMessage()
    assert "committed offset with empty state" in record.getMessage()


async def test_a_worker_with_another_key_reads_nothing(monkeypatch, small_chunks):
    reasons: list[str] = []
    _, read, _ = await saved_and_read(
        monkeypatch, lambda records: records, secrets.token_bytes(32), reasons.append
    )
    assert read == {} and reasons == ["other_key"]


# --- the key: settings, and no start without it --------------------------------------

GOOD = secrets.token_hex(32)


def test_the_key_is_read_from_hex():
    assert Settings.from_env({}).state_key is None
    assert Settings.from_env({"KUZET_STATE_KEY": GOOD}).state_key == bytes.fromhex(GOOD)
    assert Settings.from_env({"KUZET_STATE_KEY": f" {GOOD.upper()}\n"}).state_key == bytes.fromhex(
        GOOD
    )
    assert GOOD not in repr(Settings.from_env({"KUZET_STATE_KEY": GOOD}))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (GOOD[:62], "holds 31 bytes: it must hold at least 64 hex digits"),
        ("correct horse battery staple, a long passphrase!", "is not hex"),
        ("00" * 32, "is a pattern, not a random key"),
        ("deadbeef" * 16, "is a pattern"),
        (GOOD[:-1], "is not hex"),
    ],
    ids=["short", "passphrase", "zeros", "repeated", "odd-digits"],
)
def test_a_weak_or_malformed_key_is_refused(raw, message):
    with pytest.raises(ConfigError, match=message) as error:
        Settings.from_env({"KUZET_STATE_KEY": raw})
    assert "KUZET_STATE_KEY" in str(error.value) and "openssl rand -hex 32" in str(error.value)
    assert raw not in str(error.value)


def key_file(tmp_path: Path, mode: int, text: str = GOOD) -> Path:
    path = tmp_path / "state.key"
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def test_the_key_is_read_from_a_file_of_its_owner_alone(tmp_path: Path):
    path = key_file(tmp_path, 0o600)
    settings = Settings.from_env({"KUZET_STATE_KEY_FILE": str(path)})
    assert settings.state_key == bytes.fromhex(GOOD)
    assert Settings.from_env({"KUZET_STATE_KEY_FILE": str(key_file(tmp_path, 0o400))}).state_key


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644])
def test_a_key_file_others_may_read_or_write_is_refused(tmp_path: Path, mode: int):
    path = key_file(tmp_path, mode)
    with pytest.raises(ConfigError, match=r"may be read or written by other users.*chmod 600"):
        Settings.from_env({"KUZET_STATE_KEY_FILE": str(path)})


def test_a_key_file_of_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = key_file(tmp_path, 0o600)
    real_fstat = os.fstat

    def foreign(fd):
        info = real_fstat(fd)
        fields = list(info)
        fields[stat.ST_UID] = 4242 if os.getuid() != 4242 else 4243
        return os.stat_result(fields)

    monkeypatch.setattr(os, "fstat", foreign)
    with pytest.raises(ConfigError, match=r"belongs to another user \(uid 424[23]\)"):
        Settings.from_env({"KUZET_STATE_KEY_FILE": str(path)})


def test_key_and_key_file_are_not_both_set_and_a_missing_file_is_named(tmp_path: Path):
    path = key_file(tmp_path, 0o600)
    with pytest.raises(ConfigError, match="not both"):
        Settings.from_env({"KUZET_STATE_KEY": GOOD, "KUZET_STATE_KEY_FILE": str(path)})
    with pytest.raises(ConfigError, match=r"KUZET_STATE_KEY_FILE=.*cannot be read"):
        Settings.from_env({"KUZET_STATE_KEY_FILE": str(tmp_path / "nowhere")})
    with pytest.raises(ConfigError, match=r"Is a directory|not a regular file"):
        Settings.from_env({"KUZET_STATE_KEY_FILE": str(tmp_path)})


def test_the_worker_does_not_start_without_a_key(monkeypatch, capsys):
    with pytest.raises(ConfigError) as error:
        require_state_key(Settings())
    assert "KUZET_STATE_KEY" in str(error.value) and "KUZET_STATE_KEY_FILE" in str(error.value)
    assert require_state_key(Settings(state_key=bytes.fromhex(GOOD))) == bytes.fromhex(GOOD)

    # Refused before anything touches Kafka (an unreachable broker would take seconds).
    for name in ("KUZET_STATE_KEY", "KUZET_STATE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KUZET_BROKER", "127.0.0.1:1")
    assert cli.main(["worker"]) == 2
    assert "no key is set: set KUZET_STATE_KEY" in capsys.readouterr().err


# --- private folders --------------------------------------------------------------------


@pytest.fixture
def open_umask():
    """Umask 0: a folder that comes out 0700 was made so, not left so by the umask."""
    old = os.umask(0)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_private_folder_and_its_new_parents_are_0700(tmp_path: Path, open_umask):
    folder = private_folder(tmp_path / "a" / "b" / "c")
    assert folder.is_dir()
    assert [mode(p) for p in (folder, folder.parent, folder.parent.parent)] == [0o700] * 3
    assert private_folder(folder) == folder  # again: as it is


def test_an_existing_folder_of_the_user_is_made_private(tmp_path: Path, open_umask):
    folder = tmp_path / "old"
    folder.mkdir(mode=0o755)
    assert mode(folder) == 0o755
    private_folder(folder)
    assert mode(folder) == 0o700


def test_a_folder_of_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o755)
    monkeypatch.setattr(os, "getuid", lambda: folder.stat().st_uid + 1)
    with pytest.raises(FolderError, match=r"belongs to another user") as error:
        private_folder(folder)
    assert str(folder) in str(error.value)
    assert mode(folder) == 0o755  # left as it was


def test_a_file_where_the_folder_should_be_is_refused(tmp_path: Path):
    (tmp_path / "file").write_text("")
    with pytest.raises(FolderError, match="is not a folder"):
        private_folder(tmp_path / "file")


def test_kuzet_worlds_refuses_a_work_folder_of_another_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    specs = parse_worlds('[[world]]\nname = "a"\nrole = "tuning"\nseed = 1\nscale = 0.01\n')
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(os, "getuid", lambda: work.stat().st_uid + 1)
    with pytest.raises(FolderError, match="belongs to another user"):
        run_worlds(specs, work)
    assert list(work.iterdir()) == []  # no world was generated into it
