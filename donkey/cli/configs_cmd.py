"""`donkey configs`: the configs shipped with the package, listed or printed."""

from __future__ import annotations

import typer

from donkey.cli.common import handles_errors, out
from donkey.model.named_configs import bundled_config, config_names, description


@handles_errors
def configs(
    name: str | None = typer.Argument(
        None, help="Print this config (a name from the list). Without it: list them all."
    ),
) -> None:
    """List the configs the package ships, or print one. Every command that takes a CONFIG
    takes these names as well as a path: `donkey train small --data DIR -o RUN`."""
    if name is not None:
        path = bundled_config(name.removesuffix(".yaml"))
        print(path.read_text(encoding="utf-8"), end="")
        return
    names = config_names()
    width = max(len(n) for n in names)
    for n in names:
        out.print(f"{n:<{width}}  {description(bundled_config(n))}", highlight=False)
    out.print(
        "\nprint one: donkey configs NAME; use one: donkey train NAME --data DIR -o RUN "
        "(or donkey info NAME, donkey init NAME -o M.ckpt)",
        highlight=False,
    )
