"""The port a server actually listens on: with port 0 the system picks a free one, and whoever
started the server learns it from here (no "find a free port, then bind it" race)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import uvicorn


def bound_port(server: uvicorn.Server) -> int:
    """The port of a started server's first listening socket."""
    return server.servers[0].sockets[0].getsockname()[1]


class PortReportingServer(uvicorn.Server):
    """Writes the bound port to `port_file` once listening (atomically: a reader sees all or
    nothing), so a test or script can wait for the file instead of guessing a port."""

    def __init__(self, config: uvicorn.Config, port_file: Path | None = None) -> None:
        super().__init__(config)
        self.port_file = port_file

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.port_file is not None and self.started:
            partial = self.port_file.with_name(self.port_file.name + ".partial")
            partial.write_text(f"{bound_port(self)}\n")
            os.replace(partial, self.port_file)
