"""`donkey serve`: a local web page that animates images with one model loaded once."""

from __future__ import annotations

import importlib.util
import ipaddress
import logging
import signal
import socket
import time

import typer

from donkey.cli.choices import (
    ENGINE_HELP,
    Engine,
    Precision,
    allow_slow_option,
    device_option,
    precision_option,
)
from donkey.cli.common import MODEL_HELP, handles_errors, out, say, start_torch, tagged
from donkey.model.errors import DonkeyError

_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@handles_errors
def serve(
    model: str | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    engine: Engine | None = typer.Option(None, help=ENGINE_HELP),
    device: str = device_option(),
    precision: Precision = precision_option(),
    allow_slow_precision: bool = allow_slow_option(),
    host: str = typer.Option(
        "127.0.0.1",
        help="Address to listen on. Anything but loopback lets other machines use the page "
        "(no login): a warning is logged.",
    ),
    port: int = typer.Option(7860, help="TCP port."),
    batch_size: int = typer.Option(
        8, "--batch-size", "-b", help="Driving frames per inference batch."
    ),
    max_frames: int = typer.Option(
        1000, "--max-frames", help="Longest driving clip the page accepts, in frames."
    ),
    max_upload_mb: int = typer.Option(
        50, "--max-upload-mb", help="Largest upload the page accepts, in MB."
    ),
) -> None:
    """Serve a web page at http://HOST:PORT to animate images in a browser.

    The model is chosen here and loaded once; requests wait in one queue and run one at a
    time. Needs the web extra: pip install 'donkey[web]'.
    """
    if not 0 < port < 65536:
        raise DonkeyError(f"--port must be 1-65535, got {port}")
    if max_upload_mb < 1:
        raise DonkeyError(f"--max-upload-mb must be at least 1, got {max_upload_mb}")
    if importlib.util.find_spec("gradio") is None:
        raise DonkeyError(
            "donkey serve needs Gradio, which is not installed: pip install 'donkey[web]'"
        )
    start_torch()
    from donkey.app.models import load_model
    from donkey.serve.page import start
    from donkey.serve.service import AnimationService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if not is_loopback(host):
        tagged(
            "warning:",
            "bold yellow",
            f"listening on {host}: any machine that can reach port {port} can use this page "
            "and this machine's CPU/GPU; there is no login",
        )
    _check_can_listen(host, port)  # before the model loads: a taken port fails at once
    from donkey.runtime.backend import LoadOptions

    options = LoadOptions(allow_slow_precision=allow_slow_precision)
    loaded = load_model(model, engine, device, precision, options, batch_size=batch_size, say=say)
    for backend in loaded.graphs.values():
        backend.activate()
    service = AnimationService(loaded, batch_size=batch_size, max_frames=max_frames)
    service.warm_up()
    # SIGTERM unwinds like Ctrl-C, so the server closes and its work folder is removed.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        try:
            page, url = start(service, host, port, max_upload_mb)
        except OSError:
            # Gradio's own message names its environment variables and launch() arguments.
            raise DonkeyError(
                f"cannot listen on {host}:{port} (in use? choose another --port)"
            ) from None
        out.print(
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
