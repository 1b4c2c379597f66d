"""The `donkey` command: a Typer app with one module per command."""

from __future__ import annotations

import typer

from donkey.cli.animate_cmd import animate
from donkey.cli.info_cmd import info
from donkey.cli.init_cmd import init

app = typer.Typer(
    name="donkey",
    help="Train Donkey-Net image-animation models and run them fast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.command(name="init")(init)
app.command(name="info")(info)
app.command(name="animate")(animate)


def main() -> None:
    app()
