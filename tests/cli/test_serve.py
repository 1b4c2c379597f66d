"""`donkey serve`'s request handling: the service directly, then the page through gradio_client.

Real inputs (GIF, MP4, PNG files) and a real (tiny, 32x32) model; only the browser is left out
(tests/cli/test_serve_browser.py drives that).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
import torch

from donkey.cli.app import app
from donkey.data.frames import frames_to_tensor, tensor_to_frames
from donkey.data.media import read_frames, read_image, read_video
from donkey.data.writers import write_image, write_video
from donkey.model.errors import DonkeyError
from donkey.runtime.animator import Animator
from donkey.runtime.loader import load_model
from donkey.serve.examples import example_drivings, example_sources
from donkey.serve.run import is_loopback
from donkey.serve.service import AnimationService
from tests.conftest import make_creature_frames, run_cli

SIZE = 32  # configs/tiny.yaml
# Gradio 6 calls pandas APIs that pandas 3 deprecates; nothing here to act on.
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


@pytest.fixture(scope="module")
def service(tiny_ckpt, tmp_path_factory):
    loaded = load_model(tiny_ckpt, None, "cpu")
    svc = AnimationService(
        loaded, tmp_path_factory.mktemp("serve work"), batch_size=4, max_frames=40
    )
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve media")
    frames = make_creature_frames(t=7, size=48, seed=3)
    return {
        "source": write_image(folder / "my cat.png", make_creature_frames(t=1, size=40, seed=1)[0]),
        "gif": write_video(folder / "walk.gif", frames, fps=10.0),
        "mp4": write_video(folder / "walk.mp4", frames, fps=10.0),
        "broken": _write(folder / "broken.gif", b"GIF89a\x10\x00\x10\x00 not really a gif"),
        "empty": _write(folder / "empty.mp4", b""),
        "long": write_video(folder / "long.gif", make_creature_frames(t=41, size=16), fps=10.0),
    }


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_animate_gif_and_mp4(service, media):
    seen = []
    result = service.animate(
        media["source"],
        media["gif"],
        "relative",
        False,
        "gif",
        progress=lambda phase, d, t: seen.append((phase, d, t)),
    )
    out = read_frames(result.output)
    assert out.frames.shape == (7, SIZE, SIZE, 3)
    assert abs(out.fps - 10.0) < 0.1
    assert result.output.name == "my_cat__walk.gif"
    preview = read_frames(result.preview)
    assert preview.frames.shape == (7, SIZE, 3 * SIZE, 3)
    # The result third of the preview is the result itself (GIF palettes differ slightly).
    diff = np.abs(preview.frames[:, :, 2 * SIZE :].astype(int) - out.frames.astype(int))
    assert diff.mean() < 4
    # Batches of 4: keypoints of frames 0-3 and 4-6, then the frames themselves.
    assert seen == [
        ("keypoints", 0, 7),
        ("keypoints", 4, 7),
        ("keypoints", 7, 7),
        ("animating", 4, 7),
        ("animating", 7, 7),
    ]

    result = service.animate(media["source"], media["mp4"], "absolute", True, "mp4", side=True)
    out = read_frames(result.output)
    assert result.output.suffix == ".mp4"
    assert out.frames.shape == (7, SIZE, 3 * SIZE, 3)


@pytest.mark.parametrize(
    ("mode", "adapt"), [("relative", False), ("relative", True), ("absolute", False)]
)
def test_same_frames_as_the_runtime(service, media, tmp_path, mode, adapt):
    """The page's result is the CLI runtime's result for the same options, byte for byte."""
    got = read_frames(service.animate(media["source"], media["gif"], mode, adapt).output).frames
    animator = Animator(service.model, batch_size=3, mode=mode, adapt_scale=adapt)
    source = read_image(media["source"], SIZE)
    driving = read_video(media["gif"], SIZE)
    with torch.inference_mode():
        frames = animator.animate(frames_to_tensor(source[None]), frames_to_tensor(driving.frames))
    expected = read_frames(write_video(tmp_path / "x.gif", tensor_to_frames(frames))).frames
    np.testing.assert_array_equal(got, expected)


def test_motion_modes_differ(service, media):
    rel = read_frames(service.animate(media["source"], media["gif"], "relative").output).frames
    ab = read_frames(service.animate(media["source"], media["gif"], "absolute").output).frames
    assert rel.shape == ab.shape
    assert np.abs(rel.astype(int) - ab.astype(int)).max() > 0


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        ("broken", "broken.gif: "),
        ("empty", "empty.mp4: empty file"),
        ("long", "long.gif: 41 frames; this page takes at most 40"),
    ],
)
def test_bad_driving_is_one_line_with_the_file_name(service, media, which, expected):
    with pytest.raises(DonkeyError) as info:
        service.animate(media["source"], media[which], "relative")
    message = str(info.value)
    assert message.startswith(expected)
    assert "\n" not in message
    assert str(media[which].parent) not in message  # the name, not the server's path


def test_bad_options_are_refused(service, media):
    with pytest.raises(DonkeyError, match="motion must be one of"):
        service.animate(media["source"], media["gif"], "sideways")
    with pytest.raises(DonkeyError, match="output format must be gif or mp4"):
        service.animate(media["source"], media["gif"], "relative", out_format="png")


def test_previews_are_what_the_model_sees(service, media):
    assert read_frames(service.preview_source(media["source"])).frames.shape == (1, SIZE, SIZE, 3)
    assert read_frames(service.preview_driving(media["mp4"])).frames.shape == (7, SIZE, SIZE, 3)


def test_bundled_examples_are_small_and_readable():
    files = example_sources() + example_drivings()
    assert len(example_sources()) >= 3 and len(example_drivings()) >= 3
    assert sum(p.stat().st_size for p in files) < 1_000_000
    for path in example_drivings():
        assert len(read_frames(path).frames) >= 16
    for path in files:
        assert "muybridge" not in path.name.lower() and "mgif" not in path.name.lower()


def test_loopback_hosts():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_cli_refuses_a_bad_port_in_one_line():
    proc = run_cli("serve", "--port", "70000")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "error: --port must be 1-65535, got 70000"


# Through the page itself: Gradio's queue, preprocessing and client.


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(service):
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install 'donkey[web]')")
    from donkey.serve.page import start

    page, url = start(service, "127.0.0.1", _free_port())
    yield url
    page.close()


@pytest.fixture(scope="module")
def client(served, tmp_path_factory):
    gradio_client = pytest.importorskip("gradio_client")
    return gradio_client.Client(
        served,
        verbose=False,
        analytics_enabled=False,
        download_files=str(tmp_path_factory.mktemp("downloads")),
    )


def test_page_animates_through_gradio_client(client, media):
    from gradio_client import handle_file

    preview, output, status = client.predict(
        handle_file(str(media["source"])),
        handle_file(str(media["mp4"])),
        "relative",
        False,
        "gif",
        False,
        api_name="/animate",
    )
    # The page's default result size is the source's own (40 x 40); its preview the model's.
    assert read_frames(output).frames.shape == (7, 40, 40, 3)
    assert read_frames(preview).frames.shape == (7, SIZE, 3 * SIZE, 3)
    assert status.startswith("7 frames at 40x40 px, reference frame ")


def test_page_shows_a_bad_upload_as_one_line(client, media):
    from gradio_client import handle_file

    with pytest.raises(Exception) as info:  # gradio_client's AppError
        client.predict(
            handle_file(str(media["source"])),
            handle_file(str(media["broken"])),
            "relative",
            False,
            "gif",
            False,
            api_name="/animate",
        )
    message = str(info.value)
    assert message.startswith("broken.gif: ")
    assert "\n" not in message and "Traceback" not in message


def _call(url: str, data: list) -> str:
    """Gradio's HTTP API by hand: POST the inputs, read the event stream of the answer."""
    request = urllib.request.Request(
        f"{url}gradio_api/call/animate",
        data=json.dumps({"data": data}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        event = json.loads(response.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/animate/{event}", timeout=120) as response:
        return response.read().decode()


def test_page_never_reads_a_server_path_the_browser_names(served, media, service):
    """A file path the browser makes up (not an upload) is refused before the handler runs."""
    calls = service._count
    named = [
        {"path": str(media["source"]), "meta": {"_type": "gradio.FileData"}},
        {"path": str(media["gif"]), "meta": {"_type": "gradio.FileData"}},
        "relative",
        False,
        "gif",
        False,
    ]
    answer = _call(served, named)
    assert "event: error" in answer
    assert service._count == calls  # the handler wrote nothing
    for path in (media["source"], service.model.path):
        url = f"{served}gradio_api/file={urllib.parse.quote(str(path))}"
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(url, timeout=30)
        assert info.value.code in (403, 404)


def test_oversized_uploads_are_refused_before_decoding(tiny_ckpt, tmp_path):
    """A small file that would decode to more than the budget is refused from its header."""
    loaded = load_model(tiny_ckpt, None, "cpu")
    # 3 frames of 600x600 RGB = 3.1 MiB decoded; the budget here is 2 MiB.
    svc = AnimationService(loaded, tmp_path / "work", decode_budget=2 << 20, max_frames=2)
    frames = np.full((3, 600, 600, 3), 200, np.uint8)
    gif = write_video(tmp_path / "big.gif", frames)
    mp4 = write_video(tmp_path / "big.mp4", frames)
    still = write_image(tmp_path / "big.png", np.zeros((1200, 1200, 3), np.uint8))
    with pytest.raises(DonkeyError, match=r"^big.gif: 3 frames; this page takes at most 2"):
        svc.read_driving(gif)
    svc.max_frames = 10
    for path in (gif, mp4):
        with pytest.raises(
            DonkeyError, match=rf"^{path.name}: too large to decode here \(3 frames of 600x600"
        ):
            svc.read_driving(path)
    with pytest.raises(
        DonkeyError, match=r"^big.png: too large to decode here \(1 frame of 1200x1200"
    ):
        svc.read_source(still)
    svc.close()


def test_cli_refuses_a_taken_port_before_loading(runner):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_cli_warns_when_not_loopback(runner):
    port = _free_port()
    args = ["serve", "--host", "0.0.0.0", "--port", str(port), "--model", "no such model.ckpt"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(
        f"warning: listening on 0.0.0.0: any machine that can reach port {port}"
    )
    assert (
        lines[1]
        == "error: no such model.ckpt: no such model (checkpoint, ONNX folder or engine folder)"
    )


def test_page_runs_one_request_at_a_time(client, service, media, monkeypatch):
    """Two browsers asking at once: both answered, never two on the model together."""
    from gradio_client import handle_file

    generator = service.model.graphs["generator"]
    original = generator.infer
    active, most = [0], [0]
    lock = threading.Lock()

    def counted(feeds):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        try:
            time.sleep(0.05)  # widen the window in which an overlap would show
            return original(feeds)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(generator, "infer", counted)
    jobs = [
        client.submit(
            handle_file(str(media["source"])),
            handle_file(str(media[kind])),
            "relative",
            False,
            "gif",
            False,
            api_name="/animate",
        )
        for kind in ("gif", "mp4")
    ]
    for job in jobs:
        _, output, _ = job.result(timeout=300)
        assert read_frames(output).frames.shape == (7, 40, 40, 3)  # the source's own size
    assert most[0] == 1
