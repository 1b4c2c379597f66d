"""`donkey configs`: the configs shipped with the package, listed or printed."""

from __future__ import annotations

import typer

from donkey.cli.common import handles_errors, out


@handles_errors
def configs(
    name: str | None = typer.Argument(
        None, help="Print this config (a name from the list). Without it: list them all."
    ),
) -> None:
    """List the configs the package ships, or print one. Every command that takes a CONFIG
    takes these names as well as a path: `donkey train small --data DIR -o RUN`."""
    from donkey.app.info import bundled_config_text, bundled_configs

    if name is not None:
        print(bundled_config_text(name), end="")
        return
    listed = bundled_configs()
    width = max(len(n) for n in listed)
    for n, about in listed.items():
        out.print(f"{n:<{width}}  {about}", highlight=False)
    out.print(
        "\nprint one: donkey configs NAME; use one: donkey train NAME --data DIR -o RUN "
        "(or donkey info NAME, donkey init NAME -o M.ckpt)",
        highlight=False,
    )
