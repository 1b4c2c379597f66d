"""The `donkey` command: a Typer app with one module per command."""

from __future__ import annotations

import torch
import typer

from donkey.cli.animate_cmd import animate
from donkey.cli.bench_cmd import bench
from donkey.cli.convert_cmd import convert
from donkey.cli.eval_cmd import evaluate
from donkey.cli.export_cmd import export, lint
from donkey.cli.info_cmd import info
from donkey.cli.init_cmd import init
from donkey.cli.pairs_cmd import pairs
from donkey.cli.serve_cmd import serve
from donkey.cli.synth_cmd import synth
from donkey.cli.train_cmd import train

app = typer.Typer(
    name="donkey",
    help="Train Donkey-Net image-animation models and run them fast.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _process_settings() -> None:
    """Train Donkey-Net image-animation models and run them fast."""
    # Gaussian heatmaps and softmax masks underflow into denormals, which cost CPUs 10-100x
    # per operation (torch CPU inference at batch 8: 80 -> 100 frames/s when flushed). Set
    # before the first parallel region, because worker threads copy the main thread's mode.
    torch.set_flush_denormal(True)


app.command(name="init")(init)
app.command(name="info")(info)
app.command(name="animate")(animate)
app.command(name="train")(train)
app.command(name="eval")(evaluate)
app.command(name="convert")(convert)
app.command(name="synth")(synth)
app.command(name="pairs")(pairs)
app.command(name="export")(export)
app.command(name="lint")(lint)
app.command(name="bench")(bench)
app.command(name="serve")(serve)


def main() -> None:
    app()
