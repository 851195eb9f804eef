"""Read TensorFlow checkpoints -- Google's original BERT releases -- without TensorFlow.

Google published BERT as a zip holding ``bert_config.json``, ``vocab.txt`` and a TensorFlow
checkpoint: ``bert_model.ckpt.index`` plus one or more ``bert_model.ckpt.data-NNNNN-of-MMMMM`` files.
TensorFlow calls this pair a *tensor bundle*. This module reads it with the standard library and
numpy only; the layers of the format, from the outside in, are:

1. **Footer** -- the last 48 bytes of the ``.index`` file: two *block handles* (varint offset and
   varint size; the first points at the "metaindex" block, unused by bundles, the second at the
   *index block*), zero padding up to 40 bytes, then an 8-byte magic number. This is the
   LevelDB/SSTable table format, which TensorFlow reuses for its index.
2. **Blocks** -- each block handle names ``size`` bytes of block contents, followed by a 5-byte
   trailer: one byte of compression type (0 = none, 1 = snappy) and a *masked* CRC-32C of the
   contents plus that type byte.
3. **Index block -> data blocks** -- a block is a run of key/value records, each key stored as "the
   first ``shared`` bytes of the previous key, then ``non_shared`` new bytes" (prefix compression),
   ended by an array of *restart points* (uint32 offsets where a key is stored whole) and their
   count. The index block's values are block handles of the data blocks; the data blocks' records
   are the actual entries, sorted by key.
4. **Entries** -- in the data blocks the key is a tensor's name and the value a serialized
   ``BundleEntryProto`` protobuf: dtype (TensorFlow's ``DataType`` enum), shape, shard id, byte
   offset and size inside that shard, and a masked CRC-32C of the bytes. The entry with the
   *empty* key is instead a ``BundleHeaderProto``: number of shards, byte order, format version.
5. **Shards** -- ``<prefix>.data-<shard:05d>-of-<num_shards:05d>`` hold the raw tensor bytes
   back to back, in C order, in the byte order the header declares.

Protobuf messages are decoded by hand (the wire format is small: varints, fixed 32/64-bit words,
length-delimited bytes), and CRC-32C is computed in Python from a 256-entry table, with numpy
running many slices of a large tensor side by side so that a 400 MB checkpoint still checks in
seconds. Every problem with the files becomes a :class:`~minibert.errors.CheckpointError` naming
the file, what was wrong and what to do; no ``IndexError`` or ``struct.error`` escapes.

On top of the reader sit :data:`GOOGLE_TO_HF`, one table translating Google's variable names into
Hugging Face's BERT state-dict names, and :func:`load_tf_bert`, which applies it.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import struct
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from minibert.errors import CheckpointError, CheckpointNotFoundError

__all__ = [
    "GOOGLE_TO_HF",
    "TRANSPOSE",
    "AS_IS",
    "TensorEntry",
    "BundleHeader",
    "crc32c",
    "is_tf_checkpoint",
    "read_tf_index",
    "read_tf_checkpoint",
    "load_tf_bert",
    "map_google_name",
    "read_google_config",
]


# =============================================================================================
# CRC-32C (Castagnoli), as TensorFlow and LevelDB use it.
# =============================================================================================

_CRC32C_POLY = 0x82F63B78  # the Castagnoli polynomial, bit-reversed (the CRC is computed LSB first)


def _make_crc_table() -> List[int]:
    """table[b] = the CRC register after feeding byte b into a zero register."""
    table = []
    for byte in range(256):
        reg = byte
        for _ in range(8):
            reg = (reg >> 1) ^ (_CRC32C_POLY if reg & 1 else 0)
        table.append(reg)
    return table


_CRC_TABLE = _make_crc_table()
_CRC_TABLE_NP = np.array(_CRC_TABLE, dtype=np.uint32)


def _crc_register_bytewise(reg: int, data) -> int:
    """Feed ``data`` into the raw CRC register ``reg`` one byte at a time (no pre/post inversion)."""
    table = _CRC_TABLE
    for b in bytes(data):
        reg = table[(reg ^ b) & 0xFF] ^ (reg >> 8)
    return reg


# Feeding zero bytes into the register is a linear map over GF(2); a 32x32 bit matrix is stored as
# the list of its 32 columns (the image of each single bit).
def _gf2_apply(matrix: List[int], vector: int) -> int:
    result, bit = 0, 0
    while vector:
        if vector & 1:
            result ^= matrix[bit]
        vector >>= 1
        bit += 1
    return result


def _zero_bytes_operator(count: int) -> List[int]:
    """The matrix that advances the register over ``count`` zero bytes (by repeated squaring)."""
    power = [_CRC_TABLE[(1 << b) & 0xFF] ^ ((1 << b) >> 8) for b in range(32)]  # one zero byte
    result = [1 << b for b in range(32)]  # identity
    while count:
        if count & 1:
            result = [_gf2_apply(power, col) for col in result]
        power = [_gf2_apply(power, col) for col in power]
        count >>= 1
    return result


_PARALLEL_MIN_BYTES = 1 << 16


def _crc_register_parallel(reg: int, data: np.ndarray) -> int:
    """Same as :func:`_crc_register_bytewise`, for large inputs.

    The CRC is linear, so ``crc(A || B) = shift_len(B)(crc(A)) xor crc_from_zero(B)``. We cut the data
    into ``lanes`` equal slices, run the table update on all slices at once with numpy (one numpy
    step per byte *position*, not per byte), then chain the slice results with the zero-byte shift.
    """
    n = data.size
    length = max(1024, int(math.sqrt(32 * n)))  # balances numpy steps (length) against chaining (lanes)
    lanes = n // length
    columns = np.ascontiguousarray(data[: lanes * length].reshape(lanes, length).T)
    lane_regs = np.zeros(lanes, dtype=np.uint32)
    table = _CRC_TABLE_NP
    for row in columns:
        lane_regs = table[(lane_regs ^ row) & 0xFF] ^ (lane_regs >> 8)

    # Chaining: shift the running register over `length` zero bytes, then xor in the next slice.
    shift = _zero_bytes_operator(length)
    byte_tables = [[_gf2_apply(shift, v << (8 * k)) for v in range(256)] for k in range(4)]
    t0, t1, t2, t3 = byte_tables
    for lane_reg in lane_regs.tolist():
        reg = (t0[reg & 0xFF] ^ t1[(reg >> 8) & 0xFF] ^ t2[(reg >> 16) & 0xFF] ^ t3[reg >> 24]) ^ lane_reg
    return _crc_register_bytewise(reg, data[lanes * length:].tobytes())


def crc32c(data, crc: int = 0) -> int:
    """The CRC-32C of ``data`` (bytes-like), continuing a previous ``crc`` (0 to start)."""
    reg = crc ^ 0xFFFFFFFF
    view = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
    if view.size < _PARALLEL_MIN_BYTES:
        reg = _crc_register_bytewise(reg, view.tobytes())
    else:
        reg = _crc_register_parallel(reg, view)
    return reg ^ 0xFFFFFFFF


_CRC_MASK_DELTA = 0xA282EAD8


def _unmask_crc(masked: int) -> int:
    """Undo LevelDB's CRC masking (stored CRCs are rotated and offset so a CRC of CRCs is not trivial)."""
    rot = (masked - _CRC_MASK_DELTA) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# =============================================================================================
# Errors and a bounds-checked byte cursor.
# =============================================================================================

_INDEX_HINT = ("The .index file is damaged or is not a TensorFlow checkpoint index; "
               "copy or download the checkpoint again.")
_DATA_HINT = ("The data file is damaged or belongs to another checkpoint; copy or download the "
              "checkpoint again (all of its .index and .data-* files together).")

_DTYPE_HINT = ("This reader knows TensorFlow's numeric dtypes, bool and string; the checkpoint uses "
               "another one, or its index is corrupt.")


def _error(where: str, what: str, hint: str = _INDEX_HINT) -> CheckpointError:
    return CheckpointError(f"{where}: {what}. {hint}")


class _Cursor:
    """Reads varints and fixed-width integers from ``data``; running off the end is a CheckpointError."""

    def __init__(self, data: bytes, where: str, start: int = 0, end: Optional[int] = None):
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end
        self.where = where

    def at_end(self) -> bool:
        return self.pos >= self.end

    def take(self, count: int, what: str) -> bytes:
        if count < 0 or self.pos + count > self.end:
            raise _error(self.where, f"truncated data: {what} needs {count} bytes at offset {self.pos}, "
                                     f"only {max(self.end - self.pos, 0)} remain")
        chunk = self.data[self.pos:self.pos + count]
        self.pos += count
        return chunk

    def varint(self, what: str, bits: int = 64) -> int:
        """An unsigned base-128 varint (7 bits per byte, low groups first, high bit = "more")."""
        result, shift = 0, 0
        while True:
            if self.pos >= self.end:
                raise _error(self.where, f"truncated data: {what} (a varint) runs past the end")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift >= 70:  # 10 bytes carry 64 bits; more is never valid
                raise _error(self.where, f"malformed varint for {what} (longer than 10 bytes)")
        if result >> bits:
            raise _error(self.where, f"varint for {what} does not fit in {bits} bits")
        return result

    def fixed32(self, what: str) -> int:
        return struct.unpack("<I", self.take(4, what))[0]

    def fixed64(self, what: str) -> int:
        return struct.unpack("<Q", self.take(8, what))[0]


def _to_signed64(value: int) -> int:
    """Protobuf sends negative int32/int64 as their 64-bit two's complement."""
    return value - (1 << 64) if value >= 1 << 63 else value


# =============================================================================================
# Protobuf wire format, decoded by hand.
# =============================================================================================

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


def _parse_protobuf(data: bytes, where: str) -> Dict[int, list]:
    """Split a serialized message into ``{field_number: [values...]}``.

    Varint fields give ints, fixed fields give ints, length-delimited fields give bytes (a nested
    message, a string or packed numbers -- the caller knows which). Unknown fields are kept too,
    which is what lets newer writers add fields without breaking this reader.
    """
    cur = _Cursor(data, where)
    fields: Dict[int, list] = {}
    while not cur.at_end():
        key = cur.varint("field key")
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise _error(where, "protobuf field number 0 is invalid")
        if wire_type == _VARINT:
            value = cur.varint(f"field {number}")
        elif wire_type == _FIXED64:
            value = cur.fixed64(f"field {number}")
        elif wire_type == _LENGTH_DELIMITED:
            value = cur.take(cur.varint(f"length of field {number}"), f"field {number}")
        elif wire_type == _FIXED32:
            value = cur.fixed32(f"field {number}")
        else:  # 3 and 4 are the long-deprecated "groups"; 6 and 7 do not exist
            raise _error(where, f"unsupported protobuf wire type {wire_type} in field {number}")
        fields.setdefault(number, []).append((wire_type, value))
    return fields


def _scalar(fields: Dict[int, list], number: int, wire_type: int, default, where: str, name: str):
    """The last value of a singular field (protobuf's rule: the last one wins)."""
    values = fields.get(number)
    if not values:
        return default
    got_type, value = values[-1]
    if got_type != wire_type:
        raise _error(where, f"protobuf field {name} has wire type {got_type}, expected {wire_type}")
    return value


def _messages(fields: Dict[int, list], number: int, where: str, name: str) -> List[bytes]:
    out = []
    for got_type, value in fields.get(number, []):
        if got_type != _LENGTH_DELIMITED:
            raise _error(where, f"protobuf field {name} should be a message, has wire type {got_type}")
        out.append(value)
    return out


# =============================================================================================
# Entries of the bundle: BundleHeaderProto and BundleEntryProto.
# =============================================================================================

# TensorFlow's DataType enum -> numpy dtype (byte order applied later). bfloat16 has no numpy
# type: it is read as its raw uint16 pattern and widened to float32 (its upper 16 bits).
_DTYPES = {
    1: ("float32", np.dtype("float32")),
    2: ("float64", np.dtype("float64")),
    3: ("int32", np.dtype("int32")),
    4: ("uint8", np.dtype("uint8")),
    5: ("int16", np.dtype("int16")),
    6: ("int8", np.dtype("int8")),
    7: ("string", None),
    8: ("complex64", np.dtype("complex64")),
    9: ("int64", np.dtype("int64")),
    10: ("bool", np.dtype("uint8")),  # one byte per value; converted to numpy bool after reading
    14: ("bfloat16", np.dtype("uint16")),
    17: ("uint16", np.dtype("uint16")),
    18: ("complex128", np.dtype("complex128")),
    19: ("float16", np.dtype("float16")),
    22: ("uint32", np.dtype("uint32")),
    23: ("uint64", np.dtype("uint64")),
}
_DT_STRING = 7


@dataclass(frozen=True)
class BundleHeader:
    """The entry stored under the empty key: how many data shards there are and their byte order."""

    num_shards: int
    big_endian: bool
    version: int


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives: shard, byte range, dtype, shape and the (masked) CRC-32C of its bytes."""

    name: str
    dtype: int           # TensorFlow DataType enum value
    shape: Tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    masked_crc32c: int
    partitioned: bool    # stored as slices under other keys (partitioned variables)

    @property
    def dtype_name(self) -> str:
        return _DTYPES[self.dtype][0] if self.dtype in _DTYPES else f"DataType#{self.dtype}"


def _parse_header(value: bytes, where: str) -> BundleHeader:
    fields = _parse_protobuf(value, where)
    num_shards = _to_signed64(_scalar(fields, 1, _VARINT, 0, where, "num_shards"))
    endianness = _scalar(fields, 2, _VARINT, 0, where, "endianness")
    version = 0
    for raw in _messages(fields, 3, where, "version"):
        version = _scalar(_parse_protobuf(raw, where), 1, _VARINT, 0, where, "version.producer")
    if num_shards < 1 or num_shards > 99999:
        raise _error(where, f"header says the checkpoint has {num_shards} data shards")
    if endianness not in (0, 1):
        raise _error(where, f"header has unknown byte order code {endianness} (0 = little, 1 = big)")
    return BundleHeader(num_shards=num_shards, big_endian=endianness == 1, version=version)


def _parse_shape(raw: bytes, where: str) -> Tuple[int, ...]:
    """TensorShapeProto: repeated ``dim`` (field 2, each with ``size`` in field 1), ``unknown_rank`` (3)."""
    fields = _parse_protobuf(raw, where)
    if _scalar(fields, 3, _VARINT, 0, where, "shape.unknown_rank"):
        raise _error(where, "stored tensor has a shape of unknown rank")
    dims = []
    for dim_raw in _messages(fields, 2, where, "shape.dim"):
        size = _to_signed64(_scalar(_parse_protobuf(dim_raw, where), 1, _VARINT, 0, where, "dim.size"))
        if size < 0:
            raise _error(where, f"stored tensor has a negative dimension ({size})")
        dims.append(size)
    return tuple(dims)


def _parse_entry(name: str, value: bytes, where: str) -> TensorEntry:
    """BundleEntryProto: dtype(1) shape(2) shard_id(3) offset(4) size(5) crc32c(6, fixed32) slices(7)."""
    fields = _parse_protobuf(value, where)
    shape_raw = _messages(fields, 2, where, "shape")
    entry = TensorEntry(
        name=name,
        dtype=_scalar(fields, 1, _VARINT, 0, where, "dtype"),
        shape=_parse_shape(shape_raw[-1], where) if shape_raw else (),
        shard_id=_to_signed64(_scalar(fields, 3, _VARINT, 0, where, "shard_id")),
        offset=_to_signed64(_scalar(fields, 4, _VARINT, 0, where, "offset")),
        size=_to_signed64(_scalar(fields, 5, _VARINT, 0, where, "size")),
        masked_crc32c=_scalar(fields, 6, _FIXED32, 0, where, "crc32c"),
        partitioned=bool(fields.get(7)),
    )
    if entry.offset < 0 or entry.size < 0:
        raise _error(where, f"negative byte range (offset {entry.offset}, size {entry.size})")
    if entry.shard_id < 0:
        raise _error(where, f"negative shard id {entry.shard_id}")
    if entry.dtype in _DTYPES and entry.dtype != _DT_STRING:
        # Fixed-width data: shape and byte count must agree before we trust either.
        dtype_name, np_dtype = _DTYPES[entry.dtype]
        needed = math.prod(entry.shape) * np_dtype.itemsize
        if needed != entry.size:
            raise _error(where, f"{dtype_name} tensor of shape {list(entry.shape)} needs {needed} bytes, "
                                f"the index says {entry.size}")
    return entry


# =============================================================================================
# The SSTable: footer, blocks, prefix-compressed records.
# =============================================================================================

_TABLE_MAGIC = 0xDB4775248B80FB57   # LevelDB's table magic number, stored little-endian
_FOOTER_SIZE = 48                   # two handles padded to 40 bytes + 8 bytes of magic
_BLOCK_TRAILER_SIZE = 5             # 1 byte compression type + 4 bytes masked CRC-32C
_NO_COMPRESSION, _SNAPPY = 0, 1


def _read_block_handle(cur: _Cursor, what: str) -> Tuple[int, int]:
    return cur.varint(f"{what} offset"), cur.varint(f"{what} size")


def _snappy_decompress(data: bytes, where: str) -> bytes:
    """Snappy raw format: varint length, then literal runs and back-references (copies)."""
    cur = _Cursor(data, where)
    expected = cur.varint("snappy uncompressed length", bits=32)
    out = bytearray()
    while not cur.at_end():
        tag = cur.take(1, "snappy tag")[0]
        kind = tag & 3
        if kind == 0:  # literal: length-1 in the tag, or in the 1-4 bytes after it
            length = tag >> 2
            if length >= 60:
                length = int.from_bytes(cur.take(length - 59, "snappy literal length"), "little")
            out += cur.take(length + 1, "snappy literal")
            continue
        if kind == 1:
            length = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | cur.take(1, "snappy copy offset")[0]
        elif kind == 2:
            length, offset = (tag >> 2) + 1, int.from_bytes(cur.take(2, "snappy copy offset"), "little")
        else:
            length, offset = (tag >> 2) + 1, int.from_bytes(cur.take(4, "snappy copy offset"), "little")
        if offset == 0 or offset > len(out):
            raise _error(where, f"snappy back-reference to offset {offset} with only {len(out)} bytes written")
        for _ in range(length):  # byte by byte: a copy may overlap the bytes it is producing
            out.append(out[-offset])
        if len(out) > expected:
            break
    if len(out) != expected:
        raise _error(where, f"snappy block decompressed to {len(out)} bytes, header promised {expected}")
    return bytes(out)


def _read_block(data: bytes, offset: int, size: int, path: str, what: str) -> bytes:
    """The contents of the block at [offset, offset + size), its trailer checked and compression undone."""
    where = f"{path} ({what} at offset {offset})"
    limit = len(data) - _FOOTER_SIZE
    if offset + size + _BLOCK_TRAILER_SIZE > limit:
        raise _error(where, f"block of {size} bytes runs past the end of the table ({limit} bytes "
                            f"before the footer): the file is truncated or the block handle is corrupt")
    contents = data[offset:offset + size]
    compression = data[offset + size]
    stored_crc = struct.unpack_from("<I", data, offset + size + 1)[0]
    actual_crc = crc32c(data[offset:offset + size + 1])  # the type byte is covered too
    if _unmask_crc(stored_crc) != actual_crc:
        raise _error(where, f"block checksum mismatch (stored {_unmask_crc(stored_crc):#010x}, "
                            f"computed {actual_crc:#010x})")
    if compression == _NO_COMPRESSION:
        return contents
    if compression == _SNAPPY:
        return _snappy_decompress(contents, where)
    raise _error(where, f"unknown block compression type {compression} (0 = none and 1 = snappy "
                        f"are supported)")


def _block_records(block: bytes, where: str) -> Iterator[Tuple[bytes, bytes]]:
    """The (key, value) records of one block, undoing the shared-prefix compression of keys."""
    if len(block) < 4:
        raise _error(where, f"block of {len(block)} bytes is too short to hold its restart count")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    records_end = len(block) - 4 - 4 * num_restarts
    if records_end < 0:
        raise _error(where, f"block claims {num_restarts} restart points, more than its "
                            f"{len(block)} bytes can hold")
    for k in range(num_restarts):
        restart = struct.unpack_from("<I", block, records_end + 4 * k)[0]
        if restart > records_end:
            raise _error(where, f"restart point {k} at offset {restart} lies outside the records")
    cur = _Cursor(block, where, end=records_end)
    key = b""
    while not cur.at_end():
        shared = cur.varint("shared key length", bits=32)
        non_shared = cur.varint("unshared key length", bits=32)
        value_length = cur.varint("value length", bits=32)
        if shared > len(key):
            raise _error(where, f"record shares {shared} bytes with a previous key of {len(key)} bytes")
        key = key[:shared] + cur.take(non_shared, "key")
        yield key, cur.take(value_length, "value")


def _read_table(path: str) -> List[Tuple[bytes, bytes]]:
    """All (key, value) records of an SSTable file, in key order."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint index ({exc}).") from exc
    if len(data) < _FOOTER_SIZE:
        raise _error(path, f"file is {len(data)} bytes, shorter than the {_FOOTER_SIZE}-byte table footer")
    footer_start = len(data) - _FOOTER_SIZE
    magic = struct.unpack_from("<Q", data, len(data) - 8)[0]
    if magic != _TABLE_MAGIC:
        raise _error(path, f"bad magic number {magic:#018x} at the end of the file "
                           f"(expected {_TABLE_MAGIC:#018x}): this is not a TensorFlow checkpoint "
                           f"index, or it is truncated")
    footer = _Cursor(data, f"{path} (footer)", start=footer_start, end=len(data) - 8)
    _read_block_handle(footer, "metaindex handle")  # unused by tensor bundles
    index_offset, index_size = _read_block_handle(footer, "index handle")

    index_block = _read_block(data, index_offset, index_size, path, "index block")
    records: List[Tuple[bytes, bytes]] = []
    for _, handle in _block_records(index_block, f"{path} (index block)"):
        cur = _Cursor(handle, f"{path} (index block)")
        block_offset, block_size = _read_block_handle(cur, "data block handle")
        block = _read_block(data, block_offset, block_size, path, "data block")
        records.extend(_block_records(block, f"{path} (data block at offset {block_offset})"))
    for (previous, _), (key, _) in zip(records, records[1:]):
        if key <= previous:
            raise _error(path, f"keys out of order ({previous!r} then {key!r})")
    return records


# =============================================================================================
# Paths: prefix, .index file, or folder.
# =============================================================================================

def _index_files_in(folder: str) -> List[str]:
    found = glob.glob(os.path.join(glob.escape(folder), "*.ckpt.index"))
    found += glob.glob(os.path.join(glob.escape(folder), "*.ckpt-*.index"))  # training checkpoints
    return sorted(set(found))


def _resolve_prefix(path) -> str:
    """The checkpoint prefix (``.../bert_model.ckpt``) for a prefix, an ``.index`` file or a folder."""
    path = os.fspath(path)
    if os.path.isdir(path):
        found = _index_files_in(path)
        if len(found) == 1:
            return found[0][: -len(".index")]
        if not found:
            raise CheckpointNotFoundError(f"{path}: no TensorFlow checkpoint (*.ckpt.index) in this folder; "
                                          f"point at the folder that holds bert_model.ckpt.index, or pass "
                                          f"the checkpoint prefix itself.")
        names = ", ".join(os.path.basename(p) for p in found)
        raise CheckpointError(f"{path}: several TensorFlow checkpoints in this folder ({names}); "
                              f"pass the one you want as a prefix, e.g. {found[0][:-len('.index')]}")
    if path.endswith(".index") and os.path.isfile(path):
        return path[: -len(".index")]
    if os.path.isfile(path + ".index"):
        return path
    raise CheckpointNotFoundError(f"{path}: no TensorFlow checkpoint here (looked for {path}.index); pass "
                                  f"the prefix like .../bert_model.ckpt, its .index file, or its folder.")


def is_tf_checkpoint(path) -> bool:
    """True for a folder holding a ``*.ckpt.index``, an ``.index`` file, or a prefix whose ``.index`` exists."""
    try:
        path = os.fspath(path)
        if os.path.isdir(path):
            return bool(_index_files_in(path))
        return (path.endswith(".index") and os.path.isfile(path)) or os.path.isfile(path + ".index")
    except (TypeError, ValueError, OSError):
        return False


def _shard_path(prefix: str, shard: int, num_shards: int) -> str:
    return f"{prefix}.data-{shard:05d}-of-{num_shards:05d}"


# =============================================================================================
# Public reader.
# =============================================================================================

def read_tf_index(path) -> Tuple[BundleHeader, Dict[str, TensorEntry]]:
    """Parse a checkpoint's ``.index`` file: its header and, by name, where each tensor lives."""
    prefix = _resolve_prefix(path)
    index_path = prefix + ".index"
    header: Optional[BundleHeader] = None
    entries: Dict[str, TensorEntry] = {}
    for key, value in _read_table(index_path):
        if key == b"":
            header = _parse_header(value, f"{index_path} (header entry)")
            continue
        # surrogateescape: names are UTF-8 in practice, but arbitrary bytes must not crash the reader
        name = key.decode("utf-8", errors="surrogateescape")
        entries[name] = _parse_entry(name, value, f"{index_path} (entry {name!r})")
    if header is None:
        raise _error(index_path, "no header entry (the record with the empty key) in the index")
    for entry in entries.values():
        if entry.shard_id >= header.num_shards:
            raise _error(f"{index_path} (entry {entry.name!r})",
                         f"tensor is in shard {entry.shard_id}, but the header declares {header.num_shards} shards")
    return header, entries


def _decode_tensor(entry: TensorEntry, raw: bytearray, big_endian: bool, where: str) -> np.ndarray:
    """Turn the raw bytes of a numeric tensor into a numpy array in native byte order."""
    if entry.dtype not in _DTYPES:
        raise _error(where, f"unknown dtype enum {entry.dtype}", _DTYPE_HINT)
    dtype_name, np_dtype = _DTYPES[entry.dtype]
    count = math.prod(entry.shape)  # matches entry.size: checked when the index was parsed
    stored = np_dtype.newbyteorder(">" if big_endian else "<")
    array = np.frombuffer(raw, dtype=stored, count=count).reshape(entry.shape)
    if dtype_name == "bool":
        return array != 0
    if dtype_name == "bfloat16":
        # bfloat16 is the top half of a float32: widen by shifting the 16 bits into place.
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np_dtype, copy=True)  # native order, writable, owns its memory


def _decode_strings(entry: TensorEntry, raw: bytearray, verify: bool, where: str) -> np.ndarray:
    """A string tensor: every element's length (varint), a masked CRC-32C of those lengths, the bytes.

    Both checksums hash each length as a 4-byte little-endian integer (not as the varint stored);
    the entry's checksum then continues over the stored length checksum and the string bytes.
    """
    count = math.prod(entry.shape)
    if count > len(raw):  # every element needs at least one length byte
        raise _error(where, f"{count} strings cannot fit in {len(raw)} bytes", _DATA_HINT)
    cur = _Cursor(bytes(raw), where)
    lengths = [cur.varint("string length", bits=32) for _ in range(count)]
    length_crc_bytes = cur.take(4, "checksum of the string lengths")
    strings = [cur.take(n, "string bytes") for n in lengths]
    if not cur.at_end():
        raise _error(where, f"{entry.size - cur.pos} unexpected bytes after the last string", _DATA_HINT)
    if verify:
        length_crc = crc32c(b"".join(struct.pack("<I", n) for n in lengths))
        if _unmask_crc(struct.unpack("<I", length_crc_bytes)[0]) != length_crc:
            raise _error(where, "checksum mismatch in the string lengths", _DATA_HINT)
        total = crc32c(b"".join(strings), crc32c(length_crc_bytes, length_crc))
        if total != _unmask_crc(entry.masked_crc32c):
            raise _error(where, f"checksum mismatch (index says crc32c {_unmask_crc(entry.masked_crc32c):#010x}, "
                                f"data has {total:#010x})", _DATA_HINT)
    array = np.empty(count, dtype=object)
    array[:] = strings
    return array.reshape(entry.shape)


def read_tf_checkpoint(path, *, verify_checksums: bool = True,
                       include_strings: bool = False) -> Dict[str, np.ndarray]:
    """Read every variable of a TensorFlow checkpoint, by its TensorFlow name, as numpy arrays.

    ``path`` is the prefix (``.../bert_model.ckpt``), its ``.index`` file, or a folder holding exactly
    one ``*.ckpt.index``. bfloat16 tensors come back as float32 (exactly: bfloat16 is a truncated
    float32). String tensors (never model weights) are skipped unless ``include_strings`` is True,
    which returns them as numpy object arrays of ``bytes``. Each tensor's CRC-32C is checked
    against the index unless ``verify_checksums`` is False.
    """
    prefix = _resolve_prefix(path)
    header, entries = read_tf_index(prefix)
    index_path = prefix + ".index"

    by_shard: Dict[int, List[TensorEntry]] = {}
    for entry in entries.values():
        if entry.dtype == _DT_STRING and not include_strings:
            continue
        if entry.partitioned:
            raise CheckpointError(f"{index_path}: variable {entry.name!r} is partitioned into slices, "
                                  f"which this reader does not support; re-save it unpartitioned.")
        if entry.dtype not in _DTYPES:
            raise _error(f"{index_path} (entry {entry.name!r})", f"unknown dtype enum {entry.dtype}",
                         _DTYPE_HINT)
        by_shard.setdefault(entry.shard_id, []).append(entry)

    tensors: Dict[str, np.ndarray] = {}
    for shard_id, shard_entries in sorted(by_shard.items()):
        shard_path = _shard_path(prefix, shard_id, header.num_shards)
        if not os.path.isfile(shard_path):
            raise CheckpointNotFoundError(
                f"{shard_path}: data shard {shard_id} of {header.num_shards} is missing; the index "
                f"{index_path} needs it. Copy all of the checkpoint's .data-* files next to the index.")
        with open(shard_path, "rb") as f:
            shard_size = os.fstat(f.fileno()).st_size
            for entry in sorted(shard_entries, key=lambda e: e.offset):  # sequential reads
                where = f"{shard_path} (tensor {entry.name!r})"
                if entry.offset + entry.size > shard_size:
                    raise _error(where, f"bytes [{entry.offset}, {entry.offset + entry.size}) lie outside "
                                        f"the {shard_size}-byte file: it is truncated or the index is wrong",
                                 _DATA_HINT)
                f.seek(entry.offset)
                raw = bytearray(entry.size)
                if f.readinto(raw) != entry.size:
                    raise _error(where, "short read", _DATA_HINT)
                if entry.dtype == _DT_STRING:
                    tensors[entry.name] = _decode_strings(entry, raw, verify_checksums, where)
                    continue
                if verify_checksums:
                    actual = crc32c(raw)
                    if actual != _unmask_crc(entry.masked_crc32c):
                        raise _error(where, f"checksum mismatch (index says crc32c "
                                            f"{_unmask_crc(entry.masked_crc32c):#010x}, data has "
                                            f"{actual:#010x})", _DATA_HINT)
                tensors[entry.name] = _decode_tensor(entry, raw, header.big_endian, f"{index_path} "
                                                     f"(entry {entry.name!r})")
    return {name: tensors[name] for name in sorted(tensors)}


# =============================================================================================
# Google's BERT names -> Hugging Face's.
# =============================================================================================

TRANSPOSE = "transpose"   # TF dense kernels are (in, out); torch Linear weights are (out, in)
AS_IS = "as-is"

# One row per variable; "{}" stands for the layer index. Every other name in a Google checkpoint is
# either optimizer state (skipped, see _OPTIMIZER_*) or unexpected.
GOOGLE_TO_HF: Dict[str, Tuple[str, str]] = {
    "bert/embeddings/word_embeddings": ("bert.embeddings.word_embeddings.weight", AS_IS),
    "bert/embeddings/position_embeddings": ("bert.embeddings.position_embeddings.weight", AS_IS),
    "bert/embeddings/token_type_embeddings": ("bert.embeddings.token_type_embeddings.weight", AS_IS),
    "bert/embeddings/LayerNorm/gamma": ("bert.embeddings.LayerNorm.weight", AS_IS),
    "bert/embeddings/LayerNorm/beta": ("bert.embeddings.LayerNorm.bias", AS_IS),
    "bert/encoder/layer_{}/attention/self/query/kernel": ("bert.encoder.layer.{}.attention.self.query.weight", TRANSPOSE),
    "bert/encoder/layer_{}/attention/self/query/bias": ("bert.encoder.layer.{}.attention.self.query.bias", AS_IS),
    "bert/encoder/layer_{}/attention/self/key/kernel": ("bert.encoder.layer.{}.attention.self.key.weight", TRANSPOSE),
    "bert/encoder/layer_{}/attention/self/key/bias": ("bert.encoder.layer.{}.attention.self.key.bias", AS_IS),
    "bert/encoder/layer_{}/attention/self/value/kernel": ("bert.encoder.layer.{}.attention.self.value.weight", TRANSPOSE),
    "bert/encoder/layer_{}/attention/self/value/bias": ("bert.encoder.layer.{}.attention.self.value.bias", AS_IS),
    "bert/encoder/layer_{}/attention/output/dense/kernel": ("bert.encoder.layer.{}.attention.output.dense.weight", TRANSPOSE),
    "bert/encoder/layer_{}/attention/output/dense/bias": ("bert.encoder.layer.{}.attention.output.dense.bias", AS_IS),
    "bert/encoder/layer_{}/attention/output/LayerNorm/gamma": ("bert.encoder.layer.{}.attention.output.LayerNorm.weight", AS_IS),
    "bert/encoder/layer_{}/attention/output/LayerNorm/beta": ("bert.encoder.layer.{}.attention.output.LayerNorm.bias", AS_IS),
    "bert/encoder/layer_{}/intermediate/dense/kernel": ("bert.encoder.layer.{}.intermediate.dense.weight", TRANSPOSE),
    "bert/encoder/layer_{}/intermediate/dense/bias": ("bert.encoder.layer.{}.intermediate.dense.bias", AS_IS),
    "bert/encoder/layer_{}/output/dense/kernel": ("bert.encoder.layer.{}.output.dense.weight", TRANSPOSE),
    "bert/encoder/layer_{}/output/dense/bias": ("bert.encoder.layer.{}.output.dense.bias", AS_IS),
    "bert/encoder/layer_{}/output/LayerNorm/gamma": ("bert.encoder.layer.{}.output.LayerNorm.weight", AS_IS),
    "bert/encoder/layer_{}/output/LayerNorm/beta": ("bert.encoder.layer.{}.output.LayerNorm.bias", AS_IS),
    "bert/pooler/dense/kernel": ("bert.pooler.dense.weight", TRANSPOSE),
    "bert/pooler/dense/bias": ("bert.pooler.dense.bias", AS_IS),
    "cls/predictions/transform/dense/kernel": ("cls.predictions.transform.dense.weight", TRANSPOSE),
    "cls/predictions/transform/dense/bias": ("cls.predictions.transform.dense.bias", AS_IS),
    "cls/predictions/transform/LayerNorm/gamma": ("cls.predictions.transform.LayerNorm.weight", AS_IS),
    "cls/predictions/transform/LayerNorm/beta": ("cls.predictions.transform.LayerNorm.bias", AS_IS),
    "cls/predictions/output_bias": ("cls.predictions.bias", AS_IS),
    # Google computes the NSP logits as pooled @ output_weights^T: already (out, in), like torch.
    "cls/seq_relationship/output_weights": ("cls.seq_relationship.weight", AS_IS),
    "cls/seq_relationship/output_bias": ("cls.seq_relationship.bias", AS_IS),
}

# Training state in Google's checkpoints: their AdamWeightDecayOptimizer's slots (adam_m, adam_v),
# tf.train.AdamOptimizer's (Adam, Adam_1, beta1_power, beta2_power) and the step counter.
_OPTIMIZER_SUFFIXES = ("/adam_m", "/adam_v", "/Adam", "/Adam_1")
_OPTIMIZER_NAMES = frozenset({"global_step", "beta1_power", "beta2_power"})

_PATTERNS = [(re.compile("^" + re.escape(tf_name).replace(r"\{\}", r"(\d+)") + "$"), hf_name, how)
             for tf_name, (hf_name, how) in GOOGLE_TO_HF.items()]


def map_google_name(tf_name: str) -> Optional[Tuple[str, str]]:
    """``(hf_name, TRANSPOSE or AS_IS)`` for a Google variable name, or None if the table lacks it."""
    for pattern, hf_name, how in _PATTERNS:
        match = pattern.match(tf_name)
        if match:
            return hf_name.format(*match.groups()), how
    return None


def _is_optimizer_state(tf_name: str) -> bool:
    return tf_name in _OPTIMIZER_NAMES or tf_name.endswith(_OPTIMIZER_SUFFIXES)


def load_tf_bert(path, *, verify_checksums: bool = True):
    """Read a Google BERT checkpoint and rename it into a Hugging Face BERT state dict.

    Returns ``(state_dict, skipped)``: ``state_dict`` maps HF names to torch tensors (kernels
    transposed into torch's (out, in) layout, dtypes as stored, bfloat16 as float32); ``skipped``
    lists the TensorFlow names deliberately left out (optimizer slots, ``global_step``, string
    tensors). A variable that is neither in :data:`GOOGLE_TO_HF` nor optimizer state is kept under
    its TensorFlow name (e.g. ``"output_weights"`` of a fine-tuned classifier), so the model loader
    reports it as an unexpected key instead of it vanishing silently.
    """
    import torch  # here, so that importing this module stays light

    prefix = _resolve_prefix(path)
    _, entries = read_tf_index(prefix)
    arrays = read_tf_checkpoint(prefix, verify_checksums=verify_checksums)
    skipped = sorted(name for name, entry in entries.items() if entry.dtype == _DT_STRING)

    state_dict: Dict[str, "torch.Tensor"] = {}
    for tf_name, array in arrays.items():
        if _is_optimizer_state(tf_name):
            skipped.append(tf_name)
            continue
        mapped = map_google_name(tf_name)
        if mapped is None:
            state_dict[tf_name] = torch.from_numpy(array)
            continue
        hf_name, how = mapped
        if how == TRANSPOSE:
            if array.ndim != 2:
                raise CheckpointError(f"{prefix}.index: {tf_name!r} should be a 2-D kernel, its shape is "
                                      f"{list(array.shape)}; this is not a Google BERT checkpoint.")
            array = np.ascontiguousarray(array.T)
        state_dict[hf_name] = torch.from_numpy(array)
    return state_dict, sorted(skipped)


# =============================================================================================
# bert_config.json
# =============================================================================================

# Google's bert_config.json says "gelu", but Google's BERT code computes GELU with the tanh
# approximation, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). Hugging Face calls that form
# "gelu_new" and reserves "gelu" for the exact erf form, so we translate to keep outputs exact.
_GOOGLE_ACTIVATIONS = {"gelu": "gelu_new"}


def read_google_config(path) -> dict:
    """Read Google's ``bert_config.json`` (a file, or the folder holding it) as HF-style config keys.

    The key names already match Hugging Face's ``config.json``; this adds ``model_type`` and the
    LayerNorm epsilon Google's code hard-codes (1e-12), and renames ``hidden_act`` "gelu" to
    "gelu_new" (see ``_GOOGLE_ACTIVATIONS``).
    """
    path = os.fspath(path)
    file = os.path.join(path, "bert_config.json") if os.path.isdir(path) else path
    try:
        with open(file, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError as exc:
        raise CheckpointNotFoundError(f"{file}: no bert_config.json here; Google's BERT zips ship one "
                                      f"next to bert_model.ckpt.index.") from exc
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON/UTF-8, oversized integers
        raise CheckpointError(f"{file}: cannot read it as JSON ({exc or 'nested too deeply'}); fix or replace "
                              "the file.") from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{file}: expected a JSON object of BERT settings, found {type(raw).__name__}.")
    config = dict(raw)
    config.setdefault("model_type", "bert")
    config.setdefault("layer_norm_eps", 1e-12)
    act = config.get("hidden_act")
    if isinstance(act, str):
        config["hidden_act"] = _GOOGLE_ACTIVATIONS.get(act, act)
    return config
