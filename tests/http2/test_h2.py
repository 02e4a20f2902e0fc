"""Guards of the h2 fixes in `avsclient.http2._h2`: they must track the installed h2."""

from __future__ import annotations

import ast
import inspect
import textwrap
from unittest import mock

import h2
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.stream
import pytest
from h2.connection import ConnectionInputs, ConnectionState, H2ConnectionStateMachine
from h2.stream import StreamInputs, StreamState
from hyperframe.frame import DataFrame
from hypothesis import given
from hypothesis import strategies as st

from avsclient.http2 import FAST_RECEIVE_ACTIVE, VERIFIED_H2_VERSIONS, H2Connection
from avsclient.http2._h2 import FAST_SEND_ACTIVE


def _function_ast(function: object) -> ast.FunctionDef:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef)
    # Compare code only: drop the docstring.
    if isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
        node.body = node.body[1:]
    return node


def test_installed_h2_is_a_verified_version() -> None:
    """The fast path is active; a new h2 needs the copy re-checked and the set extended."""
    assert h2.__version__ in VERIFIED_H2_VERSIONS
    assert FAST_RECEIVE_ACTIVE
    assert FAST_SEND_ACTIVE


def test_override_equals_h2_receive_frame_minus_the_trace_call() -> None:
    """The override is h2's `_receive_frame` with exactly one statement removed."""
    ours = _function_ast(H2Connection._receive_frame)
    theirs = _function_ast(h2.connection.H2Connection._receive_frame)
    trace = theirs.body[1]
    assert "trace" in ast.unparse(trace)
    assert "repr(frame)" in ast.unparse(trace)
    theirs.body = [theirs.body[0], *theirs.body[2:]]
    assert ast.dump(ours) == ast.dump(theirs)


def _server_and_client(
    cls: type[h2.connection.H2Connection],
) -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    client = cls(h2.config.H2Configuration(client_side=True))
    server = cls(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


@pytest.mark.parametrize(("cls", "reprs"), [(h2.connection.H2Connection, 1), (H2Connection, 0)])
def test_data_frames_are_formatted_only_by_stock_h2(
    cls: type[h2.connection.H2Connection], reprs: int
) -> None:
    """Stock h2 still builds repr(frame) per DATA frame (the fix is needed); ours does not."""
    client, server = _server_and_client(cls)
    client.send_headers(
        1, [(":method", "POST"), (":path", "/"), (":scheme", "https"), (":authority", "x")]
    )
    server.receive_data(client.data_to_send())
    client.send_data(1, b"x" * 1000)
    wire = client.data_to_send()
    with mock.patch.object(DataFrame, "__repr__", autospec=True, return_value="F") as spy:
        events = server.receive_data(wire)
    assert spy.call_count == reprs
    assert [type(e) for e in events] == [h2.events.DataReceived]


def test_stock_h2_cannot_finish_streams_after_goaway() -> None:
    """The GOAWAY fix is still needed: a stock h2 client rejects frames of covered streams."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    client.send_headers(
        1, [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "x")]
    )
    server.receive_data(client.data_to_send())
    server.announce_goaway(last_stream_id=1)
    client.receive_data(server.data_to_send())
    server.send_headers(1, [(":status", "200")], end_stream=True)
    with pytest.raises(h2.exceptions.ProtocolError):
        client.receive_data(server.data_to_send())


def test_streams_finish_after_announce_goaway_and_new_ones_are_refused() -> None:
    """With our class a covered stream completes after GOAWAY; opening a new one fails."""
    client, server = _server_and_client(H2Connection)
    for stream_id in (1, 3):
        client.send_headers(
            stream_id,
            [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "x")],
        )
    server.receive_data(client.data_to_send())
    assert isinstance(server, H2Connection)
    server.announce_goaway(last_stream_id=1)
    server.send_headers(1, [(":status", "200")])
    server.send_data(1, b"body", end_stream=True)
    events = client.receive_data(server.data_to_send())
    assert [type(e) for e in events] == [
        h2.events.ConnectionTerminated,
        h2.events.ResponseReceived,
        h2.events.DataReceived,
        h2.events.StreamEnded,
    ]
    assert isinstance(client, H2Connection)
    assert client.goaway_received == 1
    client.send_data(3, b"still allowed on an open stream")
    with pytest.raises(h2.exceptions.ProtocolError, match="GOAWAY"):
        client.send_headers(
            5, [(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "x")]
        )


# -- fix 3: the short DATA path ----------------------------------------------------------------

_REQUEST = [(":method", "POST"), (":path", "/"), (":scheme", "https"), (":authority", "x")]


def test_short_data_path_assumes_identity_transitions_of_the_installed_h2() -> None:
    """What the short path skips must do nothing in the installed h2: SEND_DATA keeps the
    stream and connection states and calls no handler, and the output buffer is a bytearray."""
    for state in (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE):
        assert h2.stream._transitions[(state, StreamInputs.SEND_DATA)] == (None, state)
    for conn_state in (ConnectionState.CLIENT_OPEN, ConnectionState.SERVER_OPEN):
        transition = H2ConnectionStateMachine._transitions[(conn_state, ConnectionInputs.SEND_DATA)]
        assert transition == (None, conn_state)
    client, _ = _server_and_client(H2Connection)
    assert isinstance(client._data_to_send, bytearray)


class _Reference(H2Connection):
    """Our class with h2's own `send_data`: the short path's reference."""

    def send_data(
        self,
        stream_id: int,
        data: bytes | memoryview,
        end_stream: bool = False,
        pad_length: int | None = None,
    ) -> None:
        h2.connection.H2Connection.send_data(self, stream_id, data, end_stream, pad_length)


_STREAMS = (1, 3, 5)
_sends = st.tuples(
    st.just("send"),
    st.sampled_from(_STREAMS),
    st.one_of(st.integers(0, 400), st.integers(0, 20_000)),
    st.sampled_from((False, False, False, False, False, True)),  # end_stream
    st.sampled_from((None, None, None, None, 0, 255)),  # padding
    st.sampled_from(["bytes", "view", "slice", "bytearray"]),
)
_operations = st.lists(
    st.one_of(
        _sends,
        _sends,  # sends are most of the operations
        _sends,
        st.tuples(st.just("window"), st.sampled_from((0, *_STREAMS)), st.integers(1, 40_000)),
        st.tuples(st.just("respond"), st.sampled_from(_STREAMS)),  # -> HALF_CLOSED_REMOTE
        st.tuples(st.just("reset"), st.sampled_from(_STREAMS)),
        st.tuples(
            st.just("goaway"),
        ),
    ),
    min_size=5,
    max_size=40,
)


def _payload(size: int, kind: str) -> bytes | memoryview:
    data = bytes(range(256)) * (size // 256 + 2)
    if kind == "view":
        return memoryview(data[:size])
    if kind == "slice":
        return memoryview(data)[3 : 3 + size]
    if kind == "bytearray":
        return bytearray(data[:size])  # type: ignore[return-value]
    return data[:size]


def _snapshot(conn: h2.connection.H2Connection) -> object:
    return (
        conn.state_machine.state,
        conn.outbound_flow_control_window,
        {
            sid: (s.state_machine.state, s.outbound_flow_control_window)
            for sid, s in conn.streams.items()
        },
        conn.data_to_send(),
    )


@given(_operations)
def test_short_data_path_matches_h2(operations: list[tuple[object, ...]]) -> None:
    """Any sequence of sends (sizes past the windows and the frame size, END_STREAM,
    padding, views), window updates, responses, resets and GOAWAY: the same bytes, windows,
    states and errors as h2's own `send_data`."""
    fast, server = _server_and_client(H2Connection)
    slow, _ = _server_and_client(_Reference)
    for sid in _STREAMS:
        for conn in (fast, slow):
            conn.send_headers(sid, _REQUEST)
    server.receive_data(slow.data_to_send())
    fast.data_to_send()
    for op in operations:
        outcomes = []
        if op[0] == "send":
            _, sid, size, end, pad, kind = op
            for conn in (fast, slow):
                try:
                    conn.send_data(sid, _payload(size, kind), end_stream=end, pad_length=pad)
                except h2.exceptions.H2Error as exc:
                    outcomes.append(type(exc))
                else:
                    outcomes.append(None)
            wire = slow.data_to_send()
            assert fast.data_to_send() == wire
            try:
                server.receive_data(wire)
            except h2.exceptions.H2Error:
                return  # h2 let through something the server refuses: state diverges
        else:
            try:
                if op[0] == "window":
                    server.increment_flow_control_window(op[2], stream_id=op[1] or None)
                elif op[0] == "respond":
                    server.send_headers(op[1], [(":status", "200")], end_stream=True)
                elif op[0] == "reset":
                    server.reset_stream(op[1])
                else:
                    assert isinstance(server, H2Connection)
                    server.announce_goaway(last_stream_id=5)  # the streams go on
            except h2.exceptions.H2Error:
                continue  # not possible in the server's state
            wire = server.data_to_send()
            for conn in (fast, slow):
                try:
                    conn.receive_data(wire)
                except h2.exceptions.H2Error as exc:
                    outcomes.append(type(exc))
                else:
                    outcomes.append(None)
        assert outcomes[0] == outcomes[1]
        assert _snapshot(fast) == _snapshot(slow)


def test_short_data_path_is_taken_for_plain_frames() -> None:
    """A plain frame does not go through hyperframe's DataFrame; an END_STREAM one does."""
    client, _ = _server_and_client(H2Connection)
    client.send_headers(1, _REQUEST)
    client.data_to_send()
    with mock.patch.object(DataFrame, "serialize", autospec=True, return_value=b"") as spy:
        client.send_data(1, memoryview(b"abc"))
        assert spy.call_count == 0
        client.send_data(1, b"", end_stream=True)
        assert spy.call_count == 1
