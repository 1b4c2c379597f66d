"""`donkey serve`: a local web page that animates images with one model loaded once."""

from __future__ import annotations

import typer

from donkey.cli.choices import (
    ENGINE_HELP,
    Engine,
    Precision,
    allow_slow_option,
    device_option,
    precision_option,
)
from donkey.cli.common import MODEL_HELP, handles_errors, out, say, tagged


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
    from donkey.serve.run import ServeRequest
    from donkey.serve.run import serve as serve_page

    request = ServeRequest(
        model, engine, device, precision, allow_slow_precision, host, port, batch_size,
        max_frames, max_upload_mb,
    )  # fmt: skip
    serve_page(request, say, lambda message: tagged("warning:", "bold yellow", message), out.print)
