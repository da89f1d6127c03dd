"""gRPC-Web's wire format, as PROTOCOL-WEB.md in grpc/grpc defines it: pure functions, no I/O.

A message travels in a frame: one flag byte (0x00 data, 0x01 compressed, 0x80 trailers) and a four-byte
big-endian length. The response ends with a trailer frame whose payload is HTTP/1-style header lines
(`grpc-status: 0\\r\\n`), so the status reaches browsers that cannot read HTTP trailers. In the text mode
(`application/grpc-web-text`) the same bytes travel base64-encoded, for clients that read the body as text.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import grpc

DATA = 0x00
COMPRESSED = 0x01
TRAILERS = 0x80
_HEADER = struct.Struct(">BI")

BINARY_TYPE = "application/grpc-web+proto"
TEXT_TYPE = "application/grpc-web-text+proto"
# What a client may send, with the response content type each gets; a bare type means protobuf.
_FORMATS = {
    "application/grpc-web": BINARY_TYPE,
    "application/grpc-web+proto": BINARY_TYPE,
    "application/grpc-web-text": TEXT_TYPE,
    "application/grpc-web-text+proto": TEXT_TYPE,
}

# grpc-timeout: at most 8 digits and a unit (PROTOCOL-HTTP2.md).
_TIMEOUT = re.compile(r"^([0-9]{1,8})([HMSmun])$")
_TIMEOUT_UNIT_S = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# grpc-message keeps printable ASCII but '%' as is and percent-encodes every other UTF-8 byte.
_PLAIN = frozenset(range(0x20, 0x7F)) - {ord("%")}
_BASE64_CHUNK = re.compile(rb"[A-Za-z0-9+/]*(?:={1,2}|$)")

Metadata = Sequence[tuple[str, str | bytes]]
Headers = list[tuple[bytes, bytes]]


class WireError(Exception):
    """A request the bridge cannot relay: answered with `code` and `message` as a gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Format:
    """The request's encoding, kept for the response: binary frames or base64 text."""

    content_type: str

    @property
    def text(self) -> bool:
        return self.content_type == TEXT_TYPE

    def encode(self, chunk: bytes) -> bytes:
        """One chunk of the response body; each base64 chunk is padded on its own, as text clients expect."""
        return base64.b64encode(chunk) if self.text else chunk

    def decode(self, body: bytes) -> bytes:
        return decode_base64_chunks(body) if self.text else body


def format_of(content_type: str | None) -> Format | None:
    """The Format of a request's content type (parameters ignored), None when it is not gRPC-Web protobuf."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    response_type = _FORMATS.get(media)
    return Format(response_type) if response_type else None


def decode_base64_chunks(body: bytes) -> bytes:
    """Base64 text that may be several padded chunks one after another (each client write is padded)."""
    compact = b"".join(body.split())
    out = bytearray()
    position = 0
    while position < len(compact):
        match = _BASE64_CHUNK.match(compact, position)
        if match is None or match.end() == position:
            raise WireError(grpc.StatusCode.INVALID_ARGUMENT, "grpc-web-text body is not valid base64")
        try:
            out += base64.b64decode(match.group(), validate=True)
        except binascii.Error:
            raise WireError(grpc.StatusCode.INVALID_ARGUMENT, "grpc-web-text body is not valid base64") from None
        position = match.end()
    return bytes(out)


def frame(payload: bytes, flags: int = DATA) -> bytes:
    return _HEADER.pack(flags, len(payload)) + payload


def request_message(body: bytes) -> bytes:
    """The one message of a request body (gRPC-Web has no client streaming), as serialized protobuf bytes."""
    messages: list[bytes] = []
    position = 0
    while position < len(body):
        if len(body) - position < _HEADER.size:
            raise WireError(grpc.StatusCode.INVALID_ARGUMENT, "malformed gRPC-Web frame: truncated frame header")
        flags, length = _HEADER.unpack_from(body, position)
        position += _HEADER.size
        if len(body) - position < length:
            raise WireError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"malformed gRPC-Web frame: {length} bytes announced, {len(body) - position} sent",
            )
        if flags & COMPRESSED:
            raise WireError(grpc.StatusCode.UNIMPLEMENTED, "compressed request messages are not supported")
        if flags != DATA:
            raise WireError(grpc.StatusCode.INVALID_ARGUMENT, f"malformed gRPC-Web frame: flags {flags:#04x}")
        messages.append(body[position : position + length])
        position += length
    if len(messages) != 1:
        raise WireError(
            grpc.StatusCode.INVALID_ARGUMENT, f"a gRPC-Web request carries exactly one message, got {len(messages)}"
        )
    return messages[0]


def parse_timeout(value: str | None) -> float | None:
    """`grpc-timeout` (e.g. `1500m`) in seconds; None when absent."""
    if value is None:
        return None
    match = _TIMEOUT.match(value.strip())
    if match is None:
        raise WireError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"grpc-timeout must be 1 to 8 digits and a unit (H, M, S, m, u, n), got {value[:40]!r}",
        )
    return int(match.group(1)) * _TIMEOUT_UNIT_S[match.group(2)]


def percent_encode(message: str) -> str:
    return "".join(chr(b) if b in _PLAIN else f"%{b:02X}" for b in message.encode())


def metadata_headers(metadata: Iterable[tuple[str, str | bytes]]) -> Headers:
    """gRPC metadata as HTTP header lines; binary (`-bin`) values base64-encoded, as gRPC carries them."""
    headers: Headers = []
    for key, value in metadata:
        text = base64.b64encode(value) if isinstance(value, bytes) else value.encode("latin-1")
        headers.append((key.lower().encode("latin-1"), text))
    return headers


def status_headers(code: grpc.StatusCode, message: str, trailing: Metadata = ()) -> Headers:
    """The status as header lines: a trailer frame's payload, or the headers of a trailers-only response."""
    headers: Headers = [(b"grpc-status", str(code.value[0]).encode())]
    if message:
        headers.append((b"grpc-message", percent_encode(message).encode()))
    reserved = {b"grpc-status", b"grpc-message", b"content-type"}
    headers += [(k, v) for k, v in metadata_headers(trailing) if k not in reserved]
    return headers


def trailer_frame(headers: Headers) -> bytes:
    return frame(b"".join(k + b": " + v + b"\r\n" for k, v in headers), TRAILERS)
