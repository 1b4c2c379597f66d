"""The configs shipped inside the package (donkey/configs/*.yaml), usable by name.

`donkey train small ...` reads donkey/configs/small.yaml wherever the package is installed.
The repository's top-level configs/ is a link to this folder, for docs and scripts that name
`configs/small.yaml`.

Standard library only: `donkey configs` lists them without importing anything heavy.
"""

from __future__ import annotations

from pathlib import Path

from donkey.model.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def config_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def bundled_config(name: str) -> Path:
    path = CONFIG_DIR / f"{name}.yaml"
    if name not in config_names():
        raise ConfigError(f"{name}: no bundled config of that name ({', '.join(config_names())})")
    return path


def resolve_config(config: str | Path) -> Path:
    """An existing file as it is; else a bundled config's name (`small`, or `small.yaml`)."""
    path = Path(config)
    if path.exists():
        return path
    text = str(config)
    stem = text.removesuffix(".yaml")
    if "/" not in text and "\\" not in text and stem in config_names():
        return CONFIG_DIR / f"{stem}.yaml"
    names = ", ".join(config_names())
    if path.name.removesuffix(".yaml") in config_names():
        raise ConfigError(
            f"{config}: no such config file; the package ships one of that name: give "
            f"{path.name.removesuffix('.yaml')} instead of the path"
        )
    raise ConfigError(
        f"{config}: no such config file, and not a bundled config name ({names}; "
        "`donkey configs` lists them)"
    )


def description(path: Path) -> str:
    """The first sentence of the config's header comment (its leading `#` lines)."""
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        words.append(line.lstrip("#").strip())
    text = " ".join(w for w in words if w)
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]
