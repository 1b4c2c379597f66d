"""docs/python-api.md's examples run: every ```python block, in order, in one namespace, in a
folder holding the picture and the GIF they name; and `import donkey` stays light."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, make_creature_frames

DOC = ROOT / "docs" / "python-api.md"


def blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def test_the_page_has_its_examples():
    found = blocks()
    assert len(found) == 6
    joined = "\n".join(found)
    for call in ("donkey.load_model(", "donkey.animate(", "donkey.Animator(", 'engine="ort"'):
        assert call in joined


@pytest.mark.slow
def test_python_api_examples_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # A non-square picture (fitted by the API) and a 6-frame driving GIF.
    Image.fromarray(make_creature_frames(1, 90, seed=1)[0][:, 10:80]).save("my_cat.png")
    frames = [Image.fromarray(f) for f in make_creature_frames(6, 48, seed=2)]
    frames[0].save("my_horse.gif", save_all=True, append_images=frames[1:], duration=80, loop=0)
    namespace: dict = {}
    for number, code in enumerate(blocks(), 1):
        exec(compile(code, f"{DOC.name} block {number}", "exec"), namespace)  # noqa: S102
    printed = capsys.readouterr().out.splitlines()
    size = namespace["size"]  # the bundled model's, from the doc's first block
    assert len(printed) == 4, printed
    assert printed[0] == f"torch cpu {size}" and size >= 64
    assert printed[1].startswith(
        "source: expected uint8 RGB (H, W, 3) or RGBA (H, W, 4), got float32 ("
    )
    assert printed[2] == f"2 (6, {size}, {size}, 3)"
    assert int(printed[-1]) <= 8  # ONNX Runtime against PyTorch, levels of 255
    out = namespace["frames"]
    assert out.shape == (6, size, size, 3) and out.dtype == np.uint8
    assert (tmp_path / "out.gif").is_file()
    assert namespace["ort_model"].engine == "ort"


def test_import_donkey_imports_no_torch():
    code = (
        "import sys, donkey; assert 'load_model' in dir(donkey); "
        "print(sorted(m for m in ('torch', 'numpy', 'onnxruntime') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
