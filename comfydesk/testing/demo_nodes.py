"""The demo engine's own nodes (category "demo"): procedural images drawn with Pillow, no AI model.

`DemoPattern` renders plasma, stripes, rings, checker or noise and "comes into focus" over `steps` steps,
reporting progress with a preview per step, so the whole run/progress/preview/gallery flow can be shown on a
machine without ComfyUI. `DemoText` sets a multi-line text prompt as a poster, alone or over an image.
`text_to_image` is the node of the `/api/v1` spec's examples ("Blog Post Image"): a 1024x768 poster of the
prompt over a pattern seeded by it, saved like SaveImage (it is an output node) and passed on as IMAGE.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from comfydesk.testing.engine import NodeContext, NodeFn, NodeResult, save_images

__all__ = ["DEMO_NODES", "PATTERNS", "render_pattern"]

PATTERNS = ("plasma", "stripes", "rings", "checker", "noise")


def _rgb(color: int) -> tuple[int, int, int]:
    return ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)


def _wave_lut(frequency: float, phase: float) -> list[int]:
    return [int(127.5 + 127.5 * math.sin(v / 255.0 * frequency * 2 * math.pi + phase)) for v in range(256)]


def _plasma(rng: random.Random, width: int, height: int) -> Image.Image:
    acc = Image.new("L", (width, height), 128)
    weight = 0.6
    for octave in range(1, 6):
        cells = 2**octave + 1
        grid = Image.frombytes("L", (cells, cells), rng.randbytes(cells * cells))
        layer = grid.resize((width, height), Image.Resampling.BICUBIC)
        acc = Image.blend(acc, layer, weight)
        weight *= 0.55
    return ImageOps.autocontrast(acc).point(_wave_lut(1.5, rng.uniform(0, math.pi)))


def _stripes(rng: random.Random, width: int, height: int) -> Image.Image:
    size = int(math.hypot(width, height)) + 2
    gradient = Image.linear_gradient("L").resize((size, size))
    waves = gradient.point(_wave_lut(rng.uniform(4, 12), rng.uniform(0, math.pi)))
    rotated = waves.rotate(rng.uniform(0, 180), resample=Image.Resampling.BICUBIC)
    left, top = (size - width) // 2, (size - height) // 2
    return rotated.crop((left, top, left + width, top + height))


def _rings(rng: random.Random, width: int, height: int) -> Image.Image:
    size = max(width, height) * 2
    radial = Image.radial_gradient("L").resize((size, size), Image.Resampling.BICUBIC)
    rings = radial.point(_wave_lut(rng.uniform(3, 8), rng.uniform(0, math.pi)))
    cx, cy = int(size / 2 - rng.uniform(0.2, 0.8) * width), int(size / 2 - rng.uniform(0.2, 0.8) * height)
    return rings.crop((cx, cy, cx + width, cy + height))


def _checker(rng: random.Random, width: int, height: int) -> Image.Image:
    cell = max(4, min(width, height) // rng.randint(4, 12))
    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    for y in range(0, height, cell):
        for x in range(0, width, cell):
            if (x // cell + y // cell) % 2 == 0:
                draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=255)
    return img.filter(ImageFilter.GaussianBlur(cell / 10))


def _noise(rng: random.Random, width: int, height: int) -> Image.Image:
    return Image.frombytes("L", (width, height), rng.randbytes(width * height))


_RENDERERS = {"plasma": _plasma, "stripes": _stripes, "rings": _rings, "checker": _checker, "noise": _noise}


def render_pattern(
    pattern: str, seed: int, width: int, height: int, color_a: int, color_b: int
) -> Image.Image:
    """The finished pattern, deterministic for a given seed."""
    rng = random.Random(seed)
    gray = _RENDERERS.get(pattern, _plasma)(rng, width, height)
    a, b = _rgb(color_a), _rgb(color_b)
    mid = tuple((x + y) // 2 for x, y in zip(a, b, strict=True))
    mid = tuple(min(255, int(c * 1.25) + 20) for c in mid)
    return ImageOps.colorize(gray, black=a, white=b, mid=mid)


def demo_pattern(
    ctx: NodeContext,
    pattern: str,
    seed: int,
    width: int,
    height: int,
    steps: int,
    color_a: int,
    color_b: int,
    batch_size: int = 1,
) -> NodeResult:
    images = [render_pattern(pattern, seed + i, width, height, color_a, color_b) for i in range(batch_size)]
    first = images[0]
    radius = max(width, height) / 12
    for step in range(1, steps + 1):
        ctx.sleep(ctx.step_delay)
        left = 1.0 - step / steps
        frame = first.filter(ImageFilter.GaussianBlur(radius * left)) if left > 0 else first
        ctx.progress(step, steps, frame)
    return NodeResult((images,))


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, max_width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and draw.textlength(candidate, font=font) > max_width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def demo_text(
    ctx: NodeContext,
    text: str,
    width: int,
    height: int,
    font_size: int,
    background: int,
    foreground: int,
    image: list[Image.Image] | None = None,
) -> NodeResult:
    bases = (
        [i.convert("RGB") for i in image] if image else [Image.new("RGB", (width, height), _rgb(background))]
    )
    out = []
    for base in bases:
        canvas = base.copy().convert("RGBA")
        w, h = canvas.size
        font = _font(font_size)
        overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        lines = _wrap(draw, text, font, int(w * 0.84))
        line_h = int(font_size * 1.3)
        block = line_h * len(lines)
        top = max(0, (h - block) // 2)
        if image:
            pad = font_size // 2
            draw.rectangle((0, top - pad, w, top + block + pad), fill=(*_rgb(background), 150))
        for n, line in enumerate(lines):
            x = (w - draw.textlength(line, font=font)) / 2
            draw.text((x, top + n * line_h), line, font=font, fill=(*_rgb(foreground), 255))
        out.append(Image.alpha_composite(canvas, overlay).convert("RGB"))
    return NodeResult((out,))


TEXT_TO_IMAGE_SIZE = (1024, 768)
_TEXT_TO_IMAGE_STEPS = 8


def text_to_image(ctx: NodeContext, prompt: str, negative_prompt: str = "") -> NodeResult:
    width, height = TEXT_TO_IMAGE_SIZE
    seed = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "big")
    background = render_pattern(PATTERNS[seed % len(PATTERNS)], seed, width, height, 0x1A2238, 0x9DAAF2)
    radius = width / 12
    for step in range(1, _TEXT_TO_IMAGE_STEPS + 1):
        ctx.sleep(ctx.step_delay)
        left = 1.0 - step / _TEXT_TO_IMAGE_STEPS
        ctx.progress(step, _TEXT_TO_IMAGE_STEPS, background.filter(ImageFilter.GaussianBlur(radius * left)))
    (poster,) = demo_text(ctx, prompt or " ", width, height, 56, 0x10182B, 0xF2A65A, [background]).outputs[0]
    if negative_prompt.strip():
        draw = ImageDraw.Draw(poster)
        font = _font(20)
        note = f"avoiding: {negative_prompt.strip()}"[:160]
        draw.text((24, height - 40), note, font=font, fill=(220, 220, 220))
    saved = save_images([poster], "text_to_image", ctx.dirs.output, "output", ctx, 4)
    return NodeResult(([poster],), {"images": saved})


DEMO_NODES: dict[str, NodeFn] = {
    "DemoPattern": demo_pattern,
    "DemoText": demo_text,
    "text_to_image": text_to_image,
}
