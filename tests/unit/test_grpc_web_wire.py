"""gRPC-Web's wire format: frames, text mode, grpc-timeout, status lines."""

from __future__ import annotations

import base64

import grpc
import pytest

from server.bridge import grpc_web_wire as wire


def test_one_message_round_trips_through_a_frame() -> None:
    assert wire.frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert wire.request_message(wire.frame(b"abc")) == b"abc"
    assert wire.request_message(wire.frame(b"")) == b""  # a request with every field at its default


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        (b"", grpc.StatusCode.INVALID_ARGUMENT, "exactly one message, got 0"),
        (wire.frame(b"a") + wire.frame(b"b"), grpc.StatusCode.INVALID_ARGUMENT, "exactly one message, got 2"),
        (b"\x00\x00\x00", grpc.StatusCode.INVALID_ARGUMENT, "truncated frame header"),
        (b"\x00\x00\x00\x00\x09abc", grpc.StatusCode.INVALID_ARGUMENT, "9 bytes announced, 3 sent"),
        (b"\x01\x00\x00\x00\x01a", grpc.StatusCode.UNIMPLEMENTED, "compressed"),
        (wire.frame(b"", wire.TRAILERS), grpc.StatusCode.INVALID_ARGUMENT, "flags 0x80"),
    ],
)
def test_malformed_requests_say_what_is_wrong(body: bytes, code: grpc.StatusCode, says: str) -> None:
    with pytest.raises(wire.WireError) as e:
        wire.request_message(body)
    assert e.value.code == code and says in e.value.message


@pytest.mark.parametrize(
    ("content_type", "response_type"),
    [
        ("application/grpc-web", wire.BINARY_TYPE),
        ("application/grpc-web+proto", wire.BINARY_TYPE),
        ("Application/GRPC-Web+proto; charset=utf-8", wire.BINARY_TYPE),
        ("application/grpc-web-text", wire.TEXT_TYPE),
        ("application/grpc-web-text+proto", wire.TEXT_TYPE),
        ("application/grpc-web+json", None),
        ("application/json", None),
        (None, None),
    ],
)
def test_content_types(content_type: str | None, response_type: str | None) -> None:
    fmt = wire.format_of(content_type)
    assert (fmt.content_type if fmt else None) == response_type


def test_text_mode_reads_padded_chunks_one_after_another_and_writes_each_chunk_padded() -> None:
    text = wire.Format(wire.TEXT_TYPE)
    frame = wire.frame(b"hello")  # 10 bytes: a padded base64 chunk
    body = base64.b64encode(frame[:4]) + b"\r\n" + base64.b64encode(frame[4:])
    assert wire.request_message(text.decode(body)) == b"hello"
    assert text.encode(frame) == base64.b64encode(frame)
    assert wire.Format(wire.BINARY_TYPE).encode(frame) == frame
    with pytest.raises(wire.WireError, match="not valid base64"):
        text.decode(b"AAAA*AAA")
    with pytest.raises(wire.WireError, match="not valid base64"):
        text.decode(b"AAAAA")


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("1S", 1.0), ("1500m", 1.5), ("2M", 120.0), ("1H", 3600.0), ("250000u", 0.25), ("99999999n", 0.1)],
)
def test_grpc_timeout(header: str | None, seconds: float | None) -> None:
    assert wire.parse_timeout(header) == pytest.approx(seconds)


@pytest.mark.parametrize("header", ["", "1", "S", "-1S", "1.5S", "123456789S", "1s", "1 S x"])
def test_bad_grpc_timeout_is_refused_naming_the_header(header: str) -> None:
    with pytest.raises(wire.WireError) as e:
        wire.parse_timeout(header)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "grpc-timeout" in e.value.message


def test_status_lines_percent_encode_the_message_and_carry_binary_metadata_as_base64() -> None:
    lines = wire.status_headers(
        grpc.StatusCode.NOT_FOUND, "ünï 100%\r\n", [("grpc-status-details-bin", b"\x00\xff"), ("x-k", "v")]
    )
    assert lines == [
        (b"grpc-status", b"5"),
        (b"grpc-message", b"%C3%BCn%C3%AF 100%25%0D%0A"),
        (b"grpc-status-details-bin", b"AP8="),
        (b"x-k", b"v"),
    ]
    assert wire.status_headers(grpc.StatusCode.OK, "") == [(b"grpc-status", b"0")]
    assert wire.trailer_frame([(b"grpc-status", b"0")]) == b"\x80\x00\x00\x00\x10grpc-status: 0\r\n"


def test_status_lines_never_repeat_the_status_from_the_trailing_metadata() -> None:
    lines = wire.status_headers(grpc.StatusCode.INTERNAL, "x", [("grpc-status", "0"), ("content-type", "a")])
    assert lines == [(b"grpc-status", b"13"), (b"grpc-message", b"x")]
