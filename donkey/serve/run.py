"""`donkey serve` as one call: check the address, load the model once, warm it up and keep the
page running until Ctrl-C or SIGTERM."""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from donkey.model.errors import DonkeyError


@dataclass(frozen=True)
class ServeRequest:
    model: str | None = None
    engine: str | None = None
    device: str = "auto"
    precision: str = "fp32"
    allow_slow_precision: bool = False
    host: str = "127.0.0.1"
    port: int = 7860
    batch_size: int = 8
    max_frames: int = 1000
    max_upload_mb: int = 50


_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_request(request: ServeRequest) -> None:
    """What needs no import: the port and upload bounds, and Gradio being installed."""
    if not 0 < request.port < 65536:
        raise DonkeyError(f"--port must be 1-65535, got {request.port}")
    if request.max_upload_mb < 1:
        raise DonkeyError(f"--max-upload-mb must be at least 1, got {request.max_upload_mb}")
    if importlib.util.find_spec("gradio") is None:
        raise DonkeyError(
            "donkey serve needs Gradio, which is not installed: pip install 'donkey[web]'"
        )


def serve(
    request: ServeRequest,
    say: Callable[[str, str], None],
    warn: Callable[[str], None],
    line: Callable[[str], None],
) -> None:
    """Serves the page until it stops; `say` for cache builds, `warn` for a non-loopback host,
    `line` for the address being served."""
    check_request(request)
    from donkey.app.models import load_model
    from donkey.app.process import start_torch
    from donkey.runtime.backend import LoadOptions
    from donkey.serve.page import start
    from donkey.serve.service import AnimationService

    start_torch()
    host, port = request.host, request.port
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not is_loopback(host):
        warn(
            f"listening on {host}: any machine that can reach port {port} can use this page "
            "and this machine's CPU/GPU; there is no login"
        )
    _check_can_listen(host, port)  # before the model loads: a taken port fails at once
    options = LoadOptions(allow_slow_precision=request.allow_slow_precision)
    loaded = load_model(
        request.model, request.engine, request.device, request.precision, options,
        batch_size=request.batch_size, say=say,
    )  # fmt: skip
    loaded.open()
    service = AnimationService(loaded, batch_size=request.batch_size, max_frames=request.max_frames)
    service.warm_up()
    # SIGTERM unwinds like Ctrl-C, so the server closes and its work folder is removed.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        try:
            page, url = start(service, host, port, request.max_upload_mb)
        except OSError:
            # Gradio's own message names its environment variables and launch() arguments.
            raise DonkeyError(
                f"cannot listen on {host}:{port} (in use? choose another --port)"
            ) from None
        line(
            f"serving {loaded.path.name} ({loaded.engine} on {loaded.device}, "
            f"{service.size}x{service.size} px) at {url} (Ctrl-C stops)"
        )
        try:
            while page.is_running:
                time.sleep(0.2)
        finally:
            page.close()
    finally:
        service.close()


def _check_can_listen(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DonkeyError(f"--host {host}: cannot resolve ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise DonkeyError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _exit_on_sigterm(_signum, _frame) -> None:
    raise SystemExit(0)
