"""`darkroom local up` on a port in use ends at once with a message and exit 2, instead of
werkzeug's log line and a wait for a server that never comes up; the API's port follows
the cloud's, so its URL is the same at every start."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from darkroom.cli.main import app
from darkroom.local.ports import PortInUse, check_port_free


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def test_a_listening_port_is_reported_with_what_it_was_for(busy_port: int) -> None:
    with pytest.raises(PortInUse, match=f"port {busy_port} on 127.0.0.1 \\(the API\\) is in use"):
        check_port_free("127.0.0.1", busy_port, "the API")


def test_port_zero_is_always_free() -> None:
    check_port_free("127.0.0.1", 0, "anything")


@pytest.mark.parametrize("taken", ["cloud", "api"])
def test_local_up_on_a_port_in_use_exits_2_naming_it(busy_port: int, taken: str) -> None:
    # The API's port defaults to the cloud's + 1: either being taken stops the start.
    port = busy_port if taken == "cloud" else busy_port - 1
    result = CliRunner().invoke(app, ["local", "up", "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert f"port {busy_port} on 127.0.0.1" in result.output
    assert "Traceback" not in result.output
