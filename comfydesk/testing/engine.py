"""Node implementations of the fake ComfyUI, on Pillow: an IMAGE is a list of RGB images (the batch), a MASK
a list of "L" images. Only what the fake can honestly compute is here; any other node fails at run time with
NotImplementedError, never a made-up picture."""

from __future__ import annotations

import hashlib
import json
import os
import random
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageFilter, ImageOps, PngImagePlugin

__all__ = [
    "NODES",
    "Dirs",
    "Interrupted",
    "NodeContext",
    "NodeResult",
    "annotated_path",
    "file_hash",
    "save_images",
]

JSON = dict[str, Any]
Batch = list[Image.Image]


class Interrupted(Exception):
    """Raised at a step check after `/interrupt` (ComfyUI's InterruptProcessingException)."""


@dataclass(frozen=True)
class Dirs:
    input: Path
    output: Path
    temp: Path
    user: Path

    @classmethod
    def under(cls, root: Path) -> Dirs:
        dirs = cls(root / "input", root / "output", root / "temp", root / "user")
        for path in (dirs.input, dirs.output, dirs.temp, dirs.user / "default"):
            path.mkdir(parents=True, exist_ok=True)
        return dirs

    def for_type(self, kind: str) -> Path | None:
        return {"input": self.input, "output": self.output, "temp": self.temp}.get(kind)


@dataclass
class NodeResult:
    outputs: tuple[Any, ...]
    ui: JSON | None = None


@dataclass
class NodeContext:
    node_id: str
    prompt_id: str
    prompt: JSON
    extra_pnginfo: JSON | None
    dirs: Dirs
    step_delay: float
    interrupt: threading.Event
    #: progress(value, max, preview image or None); raises Interrupted when an interrupt is pending.
    progress: Callable[[int, int, Image.Image | None], None]
    temp_prefix: str = field(default_factory=lambda: "".join(random.choices(string.ascii_lowercase, k=5)))

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once for an interrupt (the step check that follows raises)."""
        if seconds > 0:
            self.interrupt.wait(seconds)

    def check_interrupt(self) -> None:
        if self.interrupt.is_set():
            raise Interrupted()


NodeFn = Callable[..., NodeResult]
NODES: dict[str, NodeFn] = {}


def node(name: str) -> Callable[[NodeFn], NodeFn]:
    def register(fn: NodeFn) -> NodeFn:
        NODES[name] = fn
        return fn

    return register


def annotated_path(name: str, default_dir: Path, dirs: Dirs) -> Path:
    """`name [output]`-style annotations as ComfyUI accepts them for input files."""
    base = default_dir
    for suffix, folder in ((" [output]", dirs.output), (" [input]", dirs.input), (" [temp]", dirs.temp)):
        if name.endswith(suffix):
            name, base = name[: -len(suffix)], folder
            break
    return base / name


def file_hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


@node("EmptyImage")
def empty_image(ctx: NodeContext, width: int, height: int, batch_size: int = 1, color: int = 0) -> NodeResult:
    rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
    return NodeResult(([Image.new("RGB", (width, height), rgb) for _ in range(batch_size)],))


@node("LoadImage")
def load_image(ctx: NodeContext, image: str) -> NodeResult:
    path = annotated_path(image, ctx.dirs.input, ctx.dirs)
    with Image.open(path) as img:
        frames = [ImageOps.exif_transpose(img)]
        rgb = frames[0].convert("RGB")
        if "A" in frames[0].getbands():
            mask = ImageOps.invert(frames[0].getchannel("A"))
        else:
            mask = Image.new("L", (64, 64), 0)
    return NodeResult(([rgb], [mask]))


@node("ImageInvert")
def image_invert(ctx: NodeContext, image: Batch) -> NodeResult:
    return NodeResult(([ImageOps.invert(i.convert("RGB")) for i in image],))


@node("ImageBlur")
def image_blur(ctx: NodeContext, image: Batch, blur_radius: int, sigma: float) -> NodeResult:
    if blur_radius == 0:
        return NodeResult((image,))
    radius = min(float(sigma) * 2.0, float(blur_radius))
    return NodeResult(([i.filter(ImageFilter.GaussianBlur(radius)) for i in image],))


_RESAMPLE = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def _scale(img: Image.Image, width: int, height: int, method: str, crop: str) -> Image.Image:
    w, h = img.size
    if width == 0 and height == 0:
        return img
    if width == 0:
        width = max(1, round(w * height / h))
    if height == 0:
        height = max(1, round(h * width / w))
    if crop == "center":
        return ImageOps.fit(img, (width, height), _RESAMPLE.get(method, Image.Resampling.BILINEAR))
    return img.resize((width, height), _RESAMPLE.get(method, Image.Resampling.BILINEAR))


@node("ImageScale")
def image_scale(
    ctx: NodeContext, image: Batch, upscale_method: str, width: int, height: int, crop: str
) -> NodeResult:
    return NodeResult(([_scale(i, width, height, upscale_method, crop) for i in image],))


@node("ImageScaleBy")
def image_scale_by(ctx: NodeContext, image: Batch, upscale_method: str, scale_by: float) -> NodeResult:
    out = []
    for img in image:
        w, h = img.size
        out.append(_scale(img, max(1, round(w * scale_by)), max(1, round(h * scale_by)), upscale_method, ""))
    return NodeResult((out,))


def _next_counter(folder: Path, filename: str) -> int:
    best = 0
    prefix_len = len(filename)
    if folder.is_dir():
        for entry in os.listdir(folder):
            prefix = entry[: prefix_len + 1]
            try:
                digits = int(entry[prefix_len + 1 :].split("_")[0])
            except ValueError:
                digits = 0
            if prefix[:-1].lower() == filename.lower() and prefix[-1:] == "_":
                best = max(best, digits)
    return best + 1


def save_images(
    images: Batch, prefix: str, base: Path, kind: str, ctx: NodeContext, compress_level: int
) -> list[JSON]:
    """Write PNGs like ComfyUI's SaveImage: `<prefix>_00001_.png`, `a/b` prefix -> subfolder `a`."""
    if images:
        prefix = prefix.replace("%width%", str(images[0].width)).replace("%height%", str(images[0].height))
    norm = os.path.normpath(prefix)
    subfolder, filename = os.path.dirname(norm), os.path.basename(norm)
    folder = (base / subfolder).resolve()
    if os.path.commonpath((str(base.resolve()), str(folder))) != str(base.resolve()):
        raise ValueError("**** ERROR: Saving image outside the output folder is not allowed.")
    folder.mkdir(parents=True, exist_ok=True)
    counter = _next_counter(folder, filename)
    results = []
    for batch_number, img in enumerate(images):
        info = PngImagePlugin.PngInfo()
        info.add_text("prompt", json.dumps(ctx.prompt))
        for key, value in (ctx.extra_pnginfo or {}).items():
            info.add_text(key, json.dumps(value))
        name = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
        img.save(folder / name, pnginfo=info, compress_level=compress_level)
        results.append({"filename": name, "subfolder": subfolder.replace(os.sep, "/"), "type": kind})
        counter += 1
    return results


@node("SaveImage")
def save_image(ctx: NodeContext, images: Batch, filename_prefix: str = "ComfyUI") -> NodeResult:
    return NodeResult((), {"images": save_images(images, filename_prefix, ctx.dirs.output, "output", ctx, 4)})


@node("PreviewImage")
def preview_image(ctx: NodeContext, images: Batch) -> NodeResult:
    prefix = f"ComfyUI_temp_{ctx.temp_prefix}"
    return NodeResult((), {"images": save_images(images, prefix, ctx.dirs.temp, "temp", ctx, 1)})


@node("TestSlowSteps")
def test_slow_steps(
    ctx: NodeContext, image: Batch, steps: int, delay: float, preview: bool = True
) -> NodeResult:
    base = image[0].convert("RGB")
    for i in range(1, steps + 1):
        ctx.sleep(min(delay, ctx.step_delay))
        frame = None
        if preview:
            k = i / float(steps)
            frame = base.point([int(v * k) for v in range(256)] * 3)
        ctx.progress(i, steps, frame)
    return NodeResult((image,))


@node("TestFail")
def test_fail(ctx: NodeContext, message: str, image: Batch | None = None) -> NodeResult:
    raise RuntimeError(message)


@node("TestTextOutput")
def test_text_output(ctx: NodeContext, text: str, repeat: int, image: Batch | None = None) -> NodeResult:
    lines = [text] * repeat
    if image is not None:
        w, h = image[0].size
        lines.append(f"image batch shape: {[len(image), h, w, 3]}")
    return NodeResult(("\n".join(lines),), {"text": lines})
