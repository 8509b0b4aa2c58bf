"""``eseal serve``: run the HTTP service (uvicorn) on this home."""

from __future__ import annotations

import os
import socket

import click

from eseal.cli.common import home_option


@click.command("serve")
@home_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to bind (loopback by default; put a TLS proxy in front)")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="worker processes (they share the database and the CA token)")
@click.option("--log-level", default="warning", show_default=True)
def command(home: str | None, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve CRLs, OCSP, timestamps, login and the enterprise/officer APIs."""
    import uvicorn

    from eseal.settings import load_settings

    settings = load_settings(home)
    os.environ["ESEAL_HOME"] = str(settings.home.resolve())
    config = uvicorn.Config("eseal.api.app:create_app", factory=True, host=host, port=port,
                            workers=workers, log_level=log_level, access_log=False,
                            http="eseal.api.protocol:ContractHttpToolsProtocol",
                            loop="uvloop")
    if workers <= 1:
        uvicorn.Server(config).run()
        return
    # With several workers uvicorn binds a socket asyncio does not know is TCP, so accepted
    # connections never get TCP_NODELAY and every keep-alive response waits ~40 ms (Nagle
    # against delayed ACK). Binding the socket here, as TCP, restores full speed.
    from uvicorn.supervisors import Multiprocess

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    Multiprocess(config, sockets=[sock]).run()
