"""The sans-IO client core, fed by a server-side h2 connection in memory (no sockets)."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import given
from hypothesis import strategies as st

from avsclient.exceptions import (
    ConnectionClosed,
    ConnectionDraining,
    LocalProtocolError,
    RemoteProtocolError,
)
from avsclient.http2 import ClientCore, ConnectionConfig, ConnectionState, H2Connection
from avsclient.http2.core import _TRANSITIONS, _Input
from avsclient.http2.events import (
    ConnectionTerminated,
    DataReceived,
    GoAwayReceived,
    PingAcknowledged,
    ResponseReceived,
    SettingsReceived,
    StreamEnded,
    StreamRefused,
    StreamResetReceived,
    TrailersReceived,
    WindowUpdated,
)

STREAM_WINDOW = 100_000


class Pair:
    """A ClientCore wired to a server-side H2Connection in memory."""

    def __init__(self, max_streams: int = 100, server_window: int = 65_535) -> None:
        config = ConnectionConfig(stream_window=STREAM_WINDOW, connection_window=1_000_000)
        self.core = ClientCore(config)
        self.server = H2Connection(h2.config.H2Configuration(client_side=False))
        self.server.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: max_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: server_window,
            },
        )
        self.core.initiate()
        self.server.initiate_connection()
        self.server_events = self.server.receive_data(self.core.data_to_send())
        self.preface_events = self.to_client()
        self.to_server()

    def to_server(self) -> list[h2.events.Event]:
        return self.server.receive_data(self.core.data_to_send())

    def to_client(self) -> list[object]:
        return list(self.core.receive_data(self.server.data_to_send()))

    def get(self, path: str = "/", *, end_stream: bool = True) -> int:
        stream_id = self.core.open_stream(
            "GET", path, scheme="https", authority="avs", end_stream=end_stream
        )
        self.to_server()
        return stream_id


def test_preface_advertises_large_windows_and_no_push() -> None:
    """Our SETTINGS carry the configured windows; the connection window is raised too."""
    pair = Pair()
    settings = next(e for e in pair.server_events if isinstance(e, h2.events.RemoteSettingsChanged))
    changed = {int(k): v.new_value for k, v in settings.changed_settings.items()}
    assert changed[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] == STREAM_WINDOW
    assert changed[h2.settings.SettingCodes.ENABLE_PUSH] == 0
    update = next(e for e in pair.server_events if isinstance(e, h2.events.WindowUpdated))
    assert update.delta == 1_000_000 - 65_535
    assert isinstance(pair.preface_events[0], SettingsReceived)
    assert pair.core.max_concurrent_streams == 100


def test_response_body_and_end_become_events() -> None:
    """HEADERS, DATA, trailers and END_STREAM map to our events, headers decoded."""
    pair = Pair()
    stream_id = pair.get("/ping")
    pair.server.send_headers(stream_id, [(":status", "204"), ("x-amzn-requestid", "r1")])
    pair.server.send_data(stream_id, b"abc")
    pair.server.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)
    events = pair.to_client()
    assert events == [
        ResponseReceived(stream_id=stream_id, status=204, headers=(("x-amzn-requestid", "r1"),)),
        DataReceived(stream_id=stream_id, data=b"abc", flow_controlled_length=3),
        TrailersReceived(stream_id=stream_id, headers=(("grpc-status", "0"),)),
        StreamEnded(stream_id=stream_id),
    ]
    assert "3 bytes" in repr(events[1])
    assert pair.core.open_stream_ids == ()


def test_window_is_handed_back_only_when_acknowledged() -> None:
    """Received data shrinks the server's window until the consumer acknowledges it."""
    pair = Pair()
    stream_id = pair.get()
    pair.server.send_headers(stream_id, [(":status", "200")])
    for _ in range(4):
        pair.server.send_data(stream_id, b"x" * 15_000)
    pair.to_client()
    assert pair.core.data_to_send() == b""  # nothing handed back yet
    assert pair.server.local_flow_control_window(stream_id) == STREAM_WINDOW - 60_000
    pair.core.acknowledge(stream_id, 60_000)
    pair.to_server()
    assert pair.server.local_flow_control_window(stream_id) == STREAM_WINDOW


def test_send_data_splits_to_frame_size_and_stops_at_the_window() -> None:
    """A big chunk becomes frames of at most max_frame_size, up to the send window."""
    pair = Pair(server_window=40_000)
    stream_id = pair.get("/events", end_stream=False)
    sent = pair.core.send_data(stream_id, b"a" * 100_000, end_stream=True)
    assert sent == 40_000
    frames = parse_frames(pair.core.data_to_send())
    assert [f.body_len for f in frames] == [16_384, 16_384, 7_232]
    assert all(isinstance(f, DataFrame) and "END_STREAM" not in f.flags for f in frames)
    assert pair.core.send_window(stream_id) == 0
    assert pair.core.send_data(stream_id, b"rest") == 0


def test_window_update_unblocks_and_end_stream_goes_with_the_last_byte() -> None:
    """After WINDOW_UPDATE the remainder is sent, END_STREAM on its last frame."""
    pair = Pair(server_window=10)
    stream_id = pair.get("/events", end_stream=False)
    assert pair.core.send_data(stream_id, b"0123456789abc", end_stream=True) == 10
    pair.to_server()
    pair.server.increment_flow_control_window(100, stream_id)
    assert WindowUpdated(stream_id=stream_id) in pair.to_client()
    assert pair.core.send_data(stream_id, b"abc", end_stream=True) == 3
    (frame,) = parse_frames(pair.core.data_to_send())
    assert "END_STREAM" in frame.flags
    with pytest.raises(LocalProtocolError, match="not open for sending"):
        pair.core.send_data(stream_id, b"more")


def test_try_send_frame_queues_one_frame_or_nothing() -> None:
    """A chunk within the windows and the frame size is one DATA frame; otherwise nothing is
    queued (send_data then waits or says why): past the window, past the frame size, an
    ended body, an unknown stream, a closed connection. A GOAWAY does not stop it."""
    pair = Pair(server_window=1_000)
    stream_id = pair.get("/events", end_stream=False)
    assert pair.core.try_send_frame(stream_id, b"a" * 320)
    (frame,) = parse_frames(pair.core.data_to_send())
    assert isinstance(frame, DataFrame)
    assert frame.data == b"a" * 320
    assert "END_STREAM" not in frame.flags
    assert pair.core.send_window(stream_id) == 680
    assert not pair.core.try_send_frame(stream_id, b"b" * 681)  # past the window
    assert pair.core.send_window(stream_id) == 680
    assert not pair.core.try_send_frame(99, b"c")  # not a stream of ours
    pair.to_server()
    pair.server.announce_goaway(last_stream_id=stream_id)
    pair.to_client()
    assert pair.core.state is ConnectionState.DRAINING
    assert pair.core.try_send_frame(stream_id, b"d")  # the stream may finish
    pair.core.send_data(stream_id, b"", end_stream=True)
    assert not pair.core.try_send_frame(stream_id, b"e")  # the body has ended
    assert pair.core.data_to_send().endswith(b"d" + bytes.fromhex("000000000100000001"))

    big = Pair(server_window=100_000)
    stream_id = big.get("/events", end_stream=False)
    assert not big.core.try_send_frame(stream_id, b"f" * 16_385)  # past the frame size
    assert big.core.data_to_send() == b""
    big.core.receive_data(b"")
    assert big.core.state is ConnectionState.CLOSED
    assert not big.core.try_send_frame(stream_id, b"g")


def test_stream_limit_is_reported_not_exceeded() -> None:
    """can_open_stream() is False at the server's limit; open_stream() refuses then."""
    pair = Pair(max_streams=1)
    pair.get(end_stream=False)
    assert not pair.core.can_open_stream()
    with pytest.raises(LocalProtocolError, match="1 concurrent"):
        pair.get()


def test_goaway_refuses_streams_above_last_stream_id() -> None:
    """GOAWAY drains the connection: covered streams go on, later ones are refused."""
    pair = Pair()
    first, second = pair.get(), pair.get()
    assert isinstance(pair.server, H2Connection)
    pair.server.announce_goaway(last_stream_id=first, additional_data=b"bye")
    events = pair.to_client()
    assert events == [
        GoAwayReceived(last_stream_id=first, error_code=0, additional_data=b"bye"),
        StreamRefused(stream_id=second, last_stream_id=first, error_code=0),
    ]
    assert pair.core.state is ConnectionState.DRAINING
    with pytest.raises(ConnectionDraining):
        pair.core.can_open_stream()
    pair.server.send_headers(first, [(":status", "200")], end_stream=True)
    assert pair.to_client()[-1] == StreamEnded(stream_id=first)


def test_rst_stream_and_malformed_status_are_stream_errors() -> None:
    """RST_STREAM and a non-numeric :status reset one stream; the connection lives."""
    pair = Pair()
    first, second = pair.get(), pair.get()
    pair.server.reset_stream(first, 8)
    assert pair.to_client() == [StreamResetReceived(stream_id=first, error_code=8, remote=True)]
    frame = HeadersFrame(second)
    frame.data = pair.server.encoder.encode([(":status", "abc")])
    frame.flags.add("END_HEADERS")
    events = pair.core.receive_data(frame.serialize())
    assert events == [StreamResetReceived(stream_id=second, error_code=1, remote=False)]
    assert pair.core.state is ConnectionState.OPEN


def test_ping_is_acknowledged_with_its_payload() -> None:
    """send_ping() returns the payload that PingAcknowledged carries back."""
    pair = Pair()
    payload = pair.core.send_ping()
    pair.to_server()
    assert pair.to_client() == [PingAcknowledged(payload=payload)]
    with pytest.raises(ValueError, match="8 bytes"):
        pair.core.send_ping(b"short")


def test_end_of_input_loses_open_streams() -> None:
    """b"" ends the connection; open streams are listed as lost; later use fails."""
    pair = Pair()
    stream_id = pair.get()
    assert pair.core.receive_data(b"") == [
        ConnectionTerminated(
            open_stream_ids=(stream_id,), reason="the server closed the connection", clean=False
        )
    ]
    assert pair.core.state is ConnectionState.CLOSED
    with pytest.raises(ConnectionClosed):
        pair.get()
    with pytest.raises(LocalProtocolError):
        pair.core.receive_data(b"late bytes")


def test_protocol_error_is_sticky_and_queues_goaway() -> None:
    """A broken frame raises RemoteProtocolError now and on every later call."""
    pair = Pair()
    bad = WindowUpdateFrame(0)
    bad.window_increment = 0  # RFC 9113 section 6.9: a zero increment is a PROTOCOL_ERROR
    with pytest.raises(RemoteProtocolError) as first:
        pair.core.receive_data(bad.serialize())
    goaway = parse_frames(pair.core.data_to_send())[-1]
    assert isinstance(goaway, GoAwayFrame)  # the server is told why
    assert goaway.error_code == 1
    with pytest.raises(RemoteProtocolError) as again:
        pair.core.receive_data(b"\0" * 9)
    assert again.value is first.value
    with pytest.raises(RemoteProtocolError):
        pair.core.can_open_stream()


def test_non_http2_server_is_detected_from_its_first_bytes() -> None:
    """A first frame that is not SETTINGS (an HTTP/1.1 reply) fails at once, byte by byte."""
    core = ClientCore()
    core.initiate()
    reply = b"HTTP/1.1 400 Bad Request\r\n\r\n"
    for index in range(8):
        assert core.receive_data(reply[index : index + 1]) == []
    with pytest.raises(RemoteProtocolError, match="not speaking HTTP/2"):
        core.receive_data(reply[8:])


def test_settings_may_arrive_split_at_any_byte() -> None:
    """The preface check works whatever the split of the server's first frame."""
    wire = SettingsFrame(0).serialize()
    for split in range(len(wire) + 1):
        core = ClientCore()
        core.initiate()
        events = core.receive_data(wire[:split]) if split else []
        events += core.receive_data(wire[split:]) if split < len(wire) else []
        assert [type(e) for e in events] == [SettingsReceived]


def test_close_sends_goaway_and_is_idempotent() -> None:
    """close() queues GOAWAY once; the core then refuses new work."""
    pair = Pair()
    pair.core.close()
    pair.core.close()
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in pair.to_server())
    with pytest.raises(ConnectionClosed):
        pair.core.send_ping()


def test_initiate_twice_is_misuse() -> None:
    """initiate() runs once."""
    core = ClientCore()
    core.initiate()
    with pytest.raises(LocalProtocolError):
        core.initiate()


@given(st.sampled_from(ConnectionState), st.sampled_from(_Input))
def test_every_state_input_pair_is_defined_or_an_error(
    state: ConnectionState, event: _Input
) -> None:
    """A pair in the table moves to its target; any other pair ends in ERROR and raises."""
    core = ClientCore()
    core._machine.state = state
    if (state, event) in _TRANSITIONS:
        core._machine.feed(event)
        assert core.state is _TRANSITIONS[(state, event)][1]
    else:
        with pytest.raises(LocalProtocolError):
            core._machine.feed(event)
        assert core.state is ConnectionState.ERROR


@pytest.mark.parametrize(
    "kwargs",
    [
        {"connect_timeout": 0},
        {"ping_timeout": float("nan")},
        {"stream_window": 0},
        {"connection_window": 1000},
        {"stream_window": 2**24, "connection_window": 2**20},
        {"max_inbound_frame_size": 100},
        {"max_header_list_size": 10},
        {"read_size": 1},
        {"write_buffer_limit": 1},
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, float]) -> None:
    """ConnectionConfig checks its values when built."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies per field
        ConnectionConfig(**kwargs)  # type: ignore[arg-type]


def parse_frames(data: bytes) -> list[Frame]:
    """Split bytes into hyperframe frames."""
    frames = []
    view = memoryview(data)
    while view:
        frame, length = Frame.parse_frame_header(view[:9])
        frame.parse_body(view[9 : 9 + length])
        frames.append(frame)
        view = view[9 + length :]
    return frames
