"""Hypothesis strategies over the protobuf wire format: raw bytes, messages whose fields take hostile values,
and valid messages mutated byte by byte.

Messages are encoded here rather than by protobuf, which refuses to serialize what a hostile client sends anyway
(strings with lone surrogates, invalid UTF-8, fields under the wrong wire type).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

VARINT, FIXED64, LENGTH, GROUP_START, GROUP_END, FIXED32 = 0, 1, 2, 3, 4, 5
_VARINT_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_BOOL,
    FieldDescriptor.TYPE_ENUM,
}
_FIXED64_TYPES = {FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64, FieldDescriptor.TYPE_DOUBLE}
_FIXED32_TYPES = {FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_FLOAT}

LONE_SURROGATE = "\ud800".encode("utf-8", "surrogatepass")  # b"\xed\xa0\x80": not UTF-8, whatever Python allows
# What every string field is tried with, besides what hypothesis draws (names are for the report).
HOSTILE_TEXT: dict[str, bytes] = {
    "empty": b"",
    "NUL": b"\x00",
    "NUL inside": b"SOL\x00USDC",
    "lone surrogate": LONE_SURROGATE,
    "surrogate inside": b"SOL" + LONE_SURROGATE,
    "surrogate pair as CESU-8": "\ud83d\ude00".encode("utf-8", "surrogatepass"),
    "invalid UTF-8": b"\xff\xfe\xc0\x80",
    "overlong NUL": b"\xc0\x80",
    "right-to-left override": "\u202eDSU".encode(),
    "emoji": "\U0001f680".encode(),
    "whitespace only": b" \t\r\n",
    "64 KiB": b"7" * 65_536,
    "1 MiB": b"1" * (1 << 20),
    "3 MiB of NUL": b"\x00" * (3 << 20),
}
# Larger than grpc's default 4 MiB receive limit: grpc itself answers RESOURCE_EXHAUSTED.
OVERSIZED = b"x" * (5 << 20)


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers travel as 10-byte two's complement, as protobuf sends them
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def length_delimited(number: int, payload: bytes) -> bytes:
    return tag(number, LENGTH) + varint(len(payload)) + payload


def scalar(number: int, value: int) -> bytes:
    return tag(number, VARINT) + varint(value)


def text_bytes() -> st.SearchStrategy[bytes]:
    """Bytes for a string field: UTF-8 text, text with lone surrogates, arbitrary bytes, the hostile classics."""
    return st.one_of(
        st.text(max_size=80).map(lambda s: s.encode()),
        st.text(st.characters(codec=None), max_size=20).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.binary(max_size=80),
        st.sampled_from([v for v in HOSTILE_TEXT.values() if len(v) <= 65_536]),
        st.integers(min_value=1, max_value=40_000).map(lambda n: b"9" * n),
    )


def field_bytes(field: FieldDescriptor, text: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """One occurrence of `field`, usually under its own wire type, sometimes under a wrong one."""
    number = field.number
    if field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        right = text.map(lambda b: length_delimited(number, b))
    elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
        right = message_bytes(field.message_type, text, depth=1).map(lambda b: length_delimited(number, b))
    elif field.type in _VARINT_TYPES:
        values = st.one_of(st.integers(0, 20), st.integers(-(2**63), 2**64 - 1), st.sampled_from([2**32, 2**63]))
        right = values.map(lambda v: scalar(number, v))
    elif field.type in _FIXED64_TYPES:
        right = st.binary(min_size=8, max_size=8).map(lambda b: tag(number, FIXED64) + b)
    else:
        right = st.binary(min_size=4, max_size=4).map(lambda b: tag(number, FIXED32) + b)
    wrong = st.sampled_from([FIXED32, FIXED64, VARINT, LENGTH]).map(lambda w: wrong_wire_type(number, w))
    return st.one_of(right, right, right, wrong)


def wrong_wire_type(number: int, wire_type: int) -> bytes:
    return {
        VARINT: scalar(number, 1),
        FIXED64: tag(number, FIXED64) + b"\x01" * 8,
        LENGTH: length_delimited(number, b"\x01\x02"),
        FIXED32: tag(number, FIXED32) + b"\x01" * 4,
    }[wire_type]


def message_bytes(
    descriptor: Descriptor, text: st.SearchStrategy[bytes] | None = None, depth: int = 0
) -> st.SearchStrategy[bytes]:
    """Messages of `descriptor`'s type field by field, each field hostile; fields repeat, unknown ones appear."""
    text = text or text_bytes()
    if depth > 1 or not descriptor.fields:
        return st.binary(max_size=16)
    known = st.sampled_from(list(descriptor.fields)).flatmap(lambda f: field_bytes(f, text))
    unknown = st.tuples(st.integers(100, 2**29 - 1), st.binary(max_size=16)).map(lambda t: length_delimited(*t))
    return st.lists(st.one_of(known, known, known, unknown), max_size=len(descriptor.fields) + 3).map(b"".join)


@st.composite
def mutated(draw: Any, base: bytes) -> bytes:
    """`base` (a valid message) after one to four byte-level edits."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate", "splice"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if edit == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0xED, 0xC0]))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "delete" and data:
            del data[at : at + draw(st.integers(1, 4))]
        elif edit == "truncate":
            del data[at:]
        elif edit == "duplicate":
            data.extend(bytes(data))
        elif edit == "splice":
            data[at:at] = draw(st.sampled_from([LONE_SURROGATE, b"\x00", b"\xff" * 10, varint(2**64 - 1)]))
    return bytes(data)


def hostile_payloads(descriptor: Descriptor, valid: list[bytes]) -> st.SearchStrategy[bytes]:
    """What a hostile client sends to an RPC taking `descriptor`: all three kinds, about equally often."""
    return st.one_of(
        st.binary(max_size=300),
        message_bytes(descriptor),
        st.sampled_from(valid).flatmap(mutated),
    )
