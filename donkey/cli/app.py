"""The `donkey` command: a Typer app with one module per command.

Command modules import only Typer, rich and light parts of donkey at module level; PyTorch,
numpy, ONNX Runtime and imageio are imported inside the commands that use them, so
`donkey --help` and `donkey CMD --help` answer at once (tests/cli/test_startup.py checks it).
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

import typer
from typer.core import TyperGroup

from donkey.cli.animate_cmd import animate
from donkey.cli.bench_cmd import bench
from donkey.cli.configs_cmd import configs
from donkey.cli.convert_cmd import convert
from donkey.cli.eval_cmd import evaluate
from donkey.cli.export_cmd import export, lint
from donkey.cli.info_cmd import info
from donkey.cli.init_cmd import init
from donkey.cli.pairs_cmd import pairs
from donkey.cli.serve_cmd import serve
from donkey.cli.synth_cmd import synth
from donkey.cli.train_cmd import train

# click's UsageError (bad option value, unknown option, missing argument), found through the one
# exception class Typer exports because Typer >= 0.20 carries its own copy of click.
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class _Commands(TyperGroup):
    """Usage errors as one line on stderr ("error: ..."), like every other error of the
    commands, instead of Typer's framed box; exit status 2 as click gives them."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return self._main(*args, standalone_mode=standalone_mode, **kwargs)

    def _main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except _UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `donkey`: the help, as before
                exc.show()
                sys.exit(exc.exit_code)
            from donkey.cli.common import tagged

            where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            message = exc.format_message().replace("Value error, ", "").rstrip(".")
            tagged("error:", "bold red", f"{where}{message}; see --help")
            sys.exit(exc.exit_code)
        except typer.Abort:
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    name="donkey",
    cls=_Commands,
    help="Train Donkey-Net image-animation models and run them fast.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if not value:
        return
    from donkey.app.versions import version_lines

    for line in version_lines():
        print(line)
    raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        is_eager=True,
        callback=_print_version,
        help="Print the versions of donkey, PyTorch (and CUDA), ONNX Runtime, TensorRT; exit.",
    ),
) -> None:
    """Train Donkey-Net image-animation models and run them fast."""


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
app.command(name="configs")(configs)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Our own warnings (engine fallbacks, int8 speed) as one `warning:` line, like our errors;
    other libraries' keep Python's format, which says where they come from."""
    if "/donkey/" in str(filename).replace("\\", "/"):
        from donkey.cli.common import tagged

        tagged("warning:", "yellow", str(message))
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def main() -> None:
    app()
