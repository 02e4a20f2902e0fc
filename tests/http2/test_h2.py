"""Guards of the two h2 fixes in `avsclient.http2._h2`: they must track the installed h2."""

from __future__ import annotations

import ast
import inspect
import textwrap
from unittest import mock

import h2
import h2.config
import h2.connection
import h2.events
import pytest
from hyperframe.frame import DataFrame

from avsclient.http2 import FAST_RECEIVE_ACTIVE, VERIFIED_H2_VERSIONS, H2Connection


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
