"""The Gradio page: uploads or bundled examples in, source | driving | result out.

Gradio is imported by the caller's choice (`donkey serve`), never by `donkey` itself. The page
only reads files Gradio accepted as uploads (its preprocessing refuses any other path a
browser names) or bundled examples Gradio copied into its cache when the page was built.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

# Before gradio is imported anywhere: no usage reports, no version check, no Hub calls.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import gradio as gr  # noqa: E402

from donkey.core.vocab import (  # noqa: E402
    DEFAULT_OUTPUT_SIZE,
    DEFAULT_REFERENCE,
    DEFAULT_SMOOTH,
    MOTION_SCALE_MAX,
    OUTPUT_SIZES,
    REFERENCES,
)
from donkey.data.media import MEDIA_SUFFIXES  # noqa: E402
from donkey.model.errors import DonkeyError  # noqa: E402
from donkey.serve.examples import example_drivings, example_label, example_sources  # noqa: E402
from donkey.serve.service import OUT_FORMATS, AnimationService  # noqa: E402

log = logging.getLogger("donkey.serve")
# One line per HTTP request Gradio makes to itself is noise in the server log.
logging.getLogger("httpx").setLevel(logging.WARNING)

_CSS = """
.donkey-view img { image-rendering: pixelated; object-fit: contain; }
"""

_INTRO = (
    "# Donkey\n"
    "Upload a **source** image (or pick one below) and a **driving** GIF or MP4; "
    "**Animate** moves the source the way the driving clip moves."
)


def _fail(message: str) -> gr.Error:
    # print_exception=False: the log gets our one line, not a traceback of an expected error.
    return gr.Error(message, print_exception=False)


def _guard(work, *args):
    """Runs `work`; DonkeyError becomes the page's one-line message, anything else too."""
    try:
        return work(*args)
    except DonkeyError as exc:
        log.info("refused: %s", exc)
        raise _fail(str(exc)) from None
    except MemoryError:
        raise _fail("out of memory: try a shorter or smaller driving clip") from None
    except Exception as exc:  # noqa: BLE001 - the page must show one line, the log the rest
        log.exception("request failed")
        raise _fail(f"internal error ({type(exc).__name__}); see the server log") from None


def build_page(service: AnimationService) -> gr.Blocks:
    size = service.size

    def show_source(path: str | None):
        if not path:
            return None
        return str(_guard(service.preview_source, Path(path)))

    def show_driving(path: str | None):
        if not path:
            return None
        return str(_guard(service.preview_driving, Path(path)))

    def animate(
        source,
        driving,
        mode,
        adapt_scale,
        out_format,
        side,
        reference,
        smooth,
        motion_scale,
        output_size,
        keep_alpha,
        progress=gr.Progress(),
    ):
        if not source:
            raise _fail("no source image: upload one or pick an example")
        if not driving:
            raise _fail("no driving clip: upload a GIF or MP4 or pick an example")

        def report(phase: str, done: int, total: int) -> None:
            label = "finding keypoints" if phase == "keypoints" else "animating"
            progress((done, total), desc=label, unit="frames")

        result = _guard(
            service.animate,
            Path(source),
            Path(driving),
            mode,
            bool(adapt_scale),
            out_format,
            bool(side),
            report,
            reference,
            float(smooth),
            float(motion_scale),
            output_size,
            bool(keep_alpha),
        )
        t = result.seconds
        log.info(
            "animated %s with %s: %d frames in %.2f s (read %.2f, wait %.2f, model %.2f, write %.2f)",
            Path(source).name,
            Path(driving).name,
            result.frames,
            sum(t.values()),
            t["read"],
            t["wait"],
            t["model"],
            t["write"],
        )
        height, width = result.shape
        picked = "" if result.reference is None else f", reference frame {result.reference}"
        status = (
            f"{result.frames} frames at {width}x{height} px{picked} in "
            f"{sum(t.values()):.1f} s (model {t['model']:.1f} s): `{result.output.name}`"
        )
        return str(result.preview), str(result.output), status

    media_types = sorted(MEDIA_SUFFIXES)
    with gr.Blocks(
        title="Donkey",
        analytics_enabled=False,
        # Uploads and shown results leave Gradio's cache after an hour (checked every 10 min).
        delete_cache=(600, 3600),
    ) as page:
        gr.Markdown(_INTRO)
        with gr.Row(equal_height=False):
            with gr.Column():
                source = gr.File(
                    label="Source image", file_types=media_types, elem_id="source-upload"
                )
                source_view = gr.Image(
                    label=f"source (as the model sees it, {size}x{size})",
                    interactive=False,
                    type="filepath",
                    height=256,
                    elem_id="source-view",
                    elem_classes="donkey-view",
                    buttons=["download", "fullscreen"],
                )
                gr.Examples(
                    [[str(p)] for p in example_sources()],
                    inputs=[source],
                    label="Bundled sources",
                    example_labels=[example_label(p) for p in example_sources()],
                )
            with gr.Column():
                driving = gr.File(
                    label="Driving clip (GIF, MP4, ...)",
                    file_types=media_types,
                    elem_id="driving-upload",
                )
                driving_view = gr.Image(
                    label="driving",
                    interactive=False,
                    type="filepath",
                    height=256,
                    elem_id="driving-view",
                    elem_classes="donkey-view",
                    buttons=["download", "fullscreen"],
                )
                gr.Examples(
                    [[str(p)] for p in example_drivings()],
                    inputs=[driving],
                    label="Bundled driving clips",
                    example_labels=[example_label(p) for p in example_drivings()],
                )
            with gr.Column():
                mode = gr.Radio(
                    ["relative", "absolute"],
                    value="relative",
                    label="Motion",
                    info="relative: the driving's movement since its first frame, applied to the "
                    "source's pose; absolute: copy the driving's pose",
                )
                adapt_scale = gr.Checkbox(
                    label="Adapt scale (relative: scale movement by the size ratio)"
                )
                reference = gr.Radio(
                    list(REFERENCES),
                    value=DEFAULT_REFERENCE,
                    label="Reference frame (relative)",
                    info="auto: measure the movement from the driving frame posed most like "
                    "the source; first: from frame 0",
                )
                motion_scale = gr.Slider(
                    0.0,
                    MOTION_SCALE_MAX,
                    value=1.0,
                    step=0.05,
                    label="Motion strength (relative)",
                    info="less movement keeps a drawing in one piece",
                )
                smooth = gr.Slider(
                    0.0, 3.0, value=DEFAULT_SMOOTH, step=0.5, label="Smoothing (frames)"
                )
                output_size = gr.Radio(
                    list(OUTPUT_SIZES),
                    value=DEFAULT_OUTPUT_SIZE,
                    label="Result size",
                    info="source: the picture's own size and shape; model: the model's square",
                )
                keep_alpha = gr.Checkbox(
                    value=True, label="Keep a transparent source transparent (GIF)"
                )
                out_format = gr.Radio(list(OUT_FORMATS), value="gif", label="Download format")
                side = gr.Checkbox(label="Download source | driving | result side by side")
                button = gr.Button("Animate", variant="primary", elem_id="animate")
        with gr.Row():
            with gr.Column(scale=3):
                result_view = gr.Image(
                    label="source | driving | result",
                    interactive=False,
                    type="filepath",
                    height=256,
                    elem_id="result-view",
                    elem_classes="donkey-view",
                    buttons=["download", "fullscreen"],
                )
            with gr.Column(scale=1):
                result_file = gr.File(label="Download", interactive=False, elem_id="result-file")
                status = gr.Markdown(elem_id="status")

        # Previews decode only (no model), so they need not wait behind an animation.
        source.change(
            show_source, source, source_view, concurrency_limit=4, show_progress="minimal"
        )
        driving.change(
            show_driving, driving, driving_view, concurrency_limit=4, show_progress="minimal"
        )
        button.click(
            animate,
            [source, driving, mode, adapt_scale, out_format, side]
            + [reference, smooth, motion_scale, output_size, keep_alpha],
            [result_view, result_file, status],
            concurrency_limit=1,
            concurrency_id="model",
            api_name="animate",
        )
    return page


def start(
    service: AnimationService, host: str, port: int, max_upload_mb: int = 50
) -> tuple[gr.Blocks, str]:
    """Starts serving in background threads; returns the page and its URL.

    Requests wait in one queue for the model. `page.close()` stops the server.
    """
    page = build_page(service)
    page.queue(default_concurrency_limit=1, max_size=32)
    _, url, _ = page.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        show_error=False,
        max_file_size=f"{max_upload_mb}mb",
        ssr_mode=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        run_history=False,
        css=_CSS,
        footer_links=[],
        prevent_thread_lock=True,
        # Gradio's own banner suggests share=True, which this server never offers.
        quiet=True,
    )
    return page, url
