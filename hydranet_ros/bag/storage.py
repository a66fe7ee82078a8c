"""Opening rosbag2 bags for reading and writing, with one clear error for every bad input.

A bag is a directory with metadata.yaml and one or more storage files (MCAP by default,
sqlite3 by option), the layout `ros2 bag` writes: `ros2 bag info`, Foxglove and rosbags open
what this module writes. Message definitions are embedded per connection.
"""
from __future__ import annotations

import io
import shutil
import struct
from pathlib import Path

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError

from hydranet_ros.bag.types import UnknownTypeError, ensure_type, typestore

STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
#: rosbag2 metadata version Kilted writes.
BAG_VERSION = 9


class BagError(Exception):
    """A bag that cannot be opened, read or written; the message is one line for a person."""


def qos_profile(reliable: bool = True, transient_local: bool = False, depth: int = 10) -> Qos:
    """A QoS profile as stored in bag metadata (offered_qos_profiles)."""
    zero = QosTime(sec=0, nsec=0)
    return Qos(history=QosHistory.KEEP_LAST, depth=depth,
               reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
               deadline=zero, lifespan=zero, liveliness=QosLiveliness.AUTOMATIC,
               liveliness_lease_duration=zero, avoid_ros_namespace_conventions=False)


class BagWriter:
    """Writes serialized (CDR) messages or rosbags message objects to a new bag."""

    def __init__(self, path, storage: str = 'mcap'):
        if storage not in STORAGES:
            raise BagError(f"unknown storage id '{storage}' (choose one of: {', '.join(STORAGES)})")
        self.path = Path(path)
        if self.path.exists():
            raise BagError(f'{self.path} already exists; bags are never overwritten (remove it or choose another path)')
        if not self.path.parent.is_dir():
            raise BagError(f'{self.path.parent} is not a directory')
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=STORAGES[storage])
        try:
            self._writer.open()
        except (WriterError, OSError) as exc:
            raise BagError(f'cannot create bag {self.path}: {exc}') from None
        self._connections = {}
        self.counts = {}
        self.closed = False

    def add_topic(self, topic: str, msgtype: str, qos: Qos | None = None):
        if topic not in self._connections:
            try:
                store = ensure_type(msgtype)
            except UnknownTypeError as exc:
                raise BagError(str(exc)) from None
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=store, offered_qos_profiles=[qos or qos_profile()])
            self.counts[topic] = 0
        return self._connections[topic]

    def write_raw(self, topic: str, stamp_ns: int, data: bytes):
        """Serialized CDR bytes on a topic added before."""
        self._writer.write(self._connections[topic], int(stamp_ns), data)
        self.counts[topic] += 1

    def write(self, topic: str, stamp_ns: int, msg, qos: Qos | None = None):
        """A rosbags message object (see hydranet_ros.bag.convert); the topic is added on first use."""
        conn = self.add_topic(topic, msg.__msgtype__, qos)
        self._writer.write(conn, int(stamp_ns), typestore().serialize_cdr(msg, msg.__msgtype__))
        self.counts[topic] += 1

    def flush(self):
        """Put what was written so far on disk (MCAP: close the open chunk; sqlite3: commit), so a
        recorder killed without warning loses at most what came after; `reindex` recovers the rest."""
        # rosbags has no public flush: this uses its storage writer's chunk and file (rosbags is
        # pinned in requirements.txt; the kill-and-reindex test fails if that layout changes).
        storage = getattr(self._writer, 'storage', None)
        if storage is None:
            return
        chunk = getattr(storage, 'chunk', None)
        if chunk is not None and chunk.bio.tell():
            storage.close_chunk()
        if hasattr(storage, 'bio'):
            storage.bio.flush()
        if hasattr(storage, 'conn'):
            storage.conn.commit()

    def close(self):
        if not self.closed:
            self.closed = True
            self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_reader(path) -> Reader:
    """An open rosbags Reader for a rosbag2 directory (or its metadata.yaml), or BagError."""
    path = Path(path)
    if path.is_file() and path.name == 'metadata.yaml':
        path = path.parent
    if not path.exists():
        raise BagError(f'no bag at {path}')
    if path.is_file():
        raise BagError(f'{path} is a file; a rosbag2 bag is a directory holding metadata.yaml and storage files')
    if not (path / 'metadata.yaml').is_file():
        raise BagError(f'{path} is not a rosbag2 bag (no metadata.yaml; a recorder killed without warning leaves '
                       f'none: run `record --reindex {path}` to rebuild it)')
    try:
        reader = Reader(path)
        reader.open()
    except ReaderError as exc:
        raise BagError(f'cannot read bag {path}: {_one_line(exc)}') from None
    except Exception as exc:   # corrupt storage files: sqlite3.DatabaseError, struct/zstd errors, ...
        raise BagError(f'cannot read bag {path}: {type(exc).__name__}: {_one_line(exc)}') from None
    return reader


def _mcap_records(stream):
    """(opcode, body) of each MCAP record from a binary stream positioned after the magic, one
    record in memory at a time; stops quietly at a record cut short (a killed writer)."""
    while True:
        head = stream.read(9)
        if len(head) < 9:
            return
        op, length = head[0], struct.unpack_from('<Q', head, 1)[0]
        body = stream.read(length)
        if len(body) < length:
            return
        yield op, memoryview(body)


def _zstd_decompress(data: bytes) -> bytes:
    try:
        from compression import zstd          # the standard library from Python 3.14
    except ImportError:
        from backports import zstd            # requirements.txt, for Python < 3.14
    return zstd.decompress(data)


def reindex(path) -> dict:
    """Rebuild a bag whose recorder was killed (MCAP without summary or metadata.yaml): every
    complete record is read back and written into a proper bag that replaces the broken one,
    streamed (one record or chunk in memory at a time). Returns message counts per topic. The
    broken files are kept beside it as <name>.broken."""
    path = Path(path)
    files = sorted(path.glob('*.mcap')) if path.is_dir() else []
    if not files:
        raise BagError(f'{path}: no .mcap file to reindex (sqlite3 bags stay readable without it)')
    for f in files:
        with open(f, 'rb') as stream:
            if stream.read(8) != b'\x89MCAP0\r\n':
                raise BagError(f'{f} is not an MCAP file')
    broken = path.with_name(path.name + '.broken')
    if broken.exists():
        raise BagError(f'{broken} exists; move it away first')
    schemas, channels = {}, {}

    def string(b, o):
        n = struct.unpack_from('<I', b, o)[0]
        return bytes(b[o + 4:o + 4 + n]).decode(), o + 4 + n

    def handle(op, rec, out):
        if op == 0x03:                                   # schema
            schemas[struct.unpack_from('<H', rec, 0)[0]] = string(rec, 2)[0]
        elif op == 0x04:                                 # channel: before its first message
            cid, sid = struct.unpack_from('<HH', rec, 0)
            topic = string(rec, 4)[0]
            channels[cid] = topic
            if schemas.get(sid) and topic not in out.counts:
                out.add_topic(topic, schemas[sid])
        elif op == 0x05:                                 # message
            topic = channels.get(struct.unpack_from('<H', rec, 0)[0])
            if topic in out.counts:
                out.write_raw(topic, struct.unpack_from('<Q', rec, 6)[0], bytes(rec[22:]))
        elif op == 0x06:                                 # chunk: its records, decompressed
            compression, o = string(rec, 28)
            size = struct.unpack_from('<Q', rec, o)[0]
            data = bytes(rec[o + 8:o + 8 + size])
            if compression == 'zstd':
                data = _zstd_decompress(data)
            elif compression:
                raise BagError(f'{path}: chunk compression {compression} is not supported by reindex')
            for inner in _mcap_records(io.BytesIO(data)):
                handle(*inner, out)

    path.rename(broken)
    try:
        with BagWriter(path, 'mcap') as out:
            for f in files:
                with open(broken / f.name, 'rb') as stream:
                    stream.read(8)
                    for op, rec in _mcap_records(stream):
                        handle(op, rec, out)
            counts = dict(out.counts)
    except BagError:
        shutil.rmtree(path, ignore_errors=True)
        broken.rename(path)
        raise
    return counts


def format_counts(counts: dict, empty: str = '(none)') -> str:
    """Messages per topic, one indented line each, topics aligned (what the tools print)."""
    width = max([len(t) for t in counts] + [5])
    return '\n'.join([f'  {t:<{width}}  {n}' for t, n in counts.items()] or [f'  {empty}'])


def _one_line(exc) -> str:
    return ' '.join(str(exc).split()) or type(exc).__name__


def read_messages(reader: Reader, topics=None):
    """(connection, timestamp_ns, raw bytes) in log-time order; BagError on corrupt data."""
    conns = [c for c in reader.connections if topics is None or c.topic in topics]
    if not conns:
        return     # (rosbags reads every connection when given none)
    try:
        yield from reader.messages(connections=conns)
    except BagError:
        raise
    except Exception as exc:
        raise BagError(f'bag {reader.path} is corrupt or truncated: {type(exc).__name__}: {_one_line(exc)}') from None


def deserialize(raw: bytes, msgtype: str):
    """CDR bytes of a bag message -> its rosbags message object; BagError if it cannot be decoded."""
    try:
        return typestore().deserialize_cdr(raw, msgtype)
    except Exception as exc:
        raise BagError(f'a {msgtype} message in the bag cannot be decoded: {_one_line(exc)}') from None
