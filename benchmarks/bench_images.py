"""How long image decoding for the UI takes, against raw Pillow on the same bytes as the baseline.

For PNG and JPEG at 512, 1024 and 2048 px square (drawn procedurally in memory: gradient, noise and a fractal,
so neither format gets an unrealistically easy image) this measures, on the same encoded bytes:
- `decode_image` (Pillow open with our pixel budget, load, EXIF transpose, RGBA, QImage copy)
  vs `Image.open(...).load()` (the baseline); `Image.open(...).convert("RGBA").tobytes()` is printed too, as
  the least work any RGBA consumer has to do, so the QImage overhead can be told apart from the conversion;
- `make_thumbnail(data, 256)` vs `Image.open(...)` + `.thumbnail((256, 256))` (Pillow's default filter).

Usage: .venv/bin/python benchmarks/bench_images.py [--repeat N] [--sizes 512,1024,2048]
Prints medians and writes benchmarks/results/images.json.
"""

from __future__ import annotations

import argparse
import io

from _common import median_ms, write_results
from PIL import Image

from comfydesk.app.images import decode_image, make_thumbnail

THUMB = 256


def make_image(size: int) -> Image.Image:
    """A deterministic RGB test picture with smooth areas, fine noise and hard edges."""
    red = Image.linear_gradient("L").resize((size, size))
    green = Image.effect_noise((size, size), 48).point(lambda v: (v + 64) % 256)
    blue = Image.effect_mandelbrot((size, size), (-2.0, -1.25, 0.75, 1.25), 64)
    return Image.merge("RGB", (red, green, blue))


def encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        image.save(buf, "JPEG", quality=90)
    else:
        image.save(buf, "PNG")  # Pillow's default compression, as ComfyUI's SaveImage is close to
    return buf.getvalue()


def pil_load(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as im:
        im.load()


def pil_rgba(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as im:
        im.convert("RGBA").tobytes()


def pil_thumbnail(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as im:
        im.thumbnail((THUMB, THUMB))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--sizes", default="512,1024,2048", help="comma-separated square sizes in px")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results: dict[str, dict[str, float | int]] = {}
    for size in sizes:
        picture = make_image(size)
        for fmt in ("PNG", "JPEG"):
            data = encode(picture, fmt)
            name = f"{fmt.lower()}_{size}"
            load_ms = median_ms(lambda d=data: pil_load(d), args.repeat)
            rgba_ms = median_ms(lambda d=data: pil_rgba(d), args.repeat)
            decode_ms = median_ms(lambda d=data: decode_image(d), args.repeat)
            pthumb_ms = median_ms(lambda d=data: pil_thumbnail(d), args.repeat)
            thumb_ms = median_ms(lambda d=data: make_thumbnail(d, THUMB), args.repeat)
            results[name] = {
                "bytes": len(data),
                "pil_open_load_ms": round(load_ms, 2),
                "pil_rgba_tobytes_ms": round(rgba_ms, 2),
                "decode_image_ms": round(decode_ms, 2),
                "decode_vs_pil_load": round(decode_ms / load_ms, 2),
                "pil_thumbnail_ms": round(pthumb_ms, 2),
                "make_thumbnail_ms": round(thumb_ms, 2),
                "thumbnail_vs_pil": round(thumb_ms / pthumb_ms, 2),
            }
            print(
                f"{fmt} {size}x{size} ({len(data):,} bytes) | Pillow open+load {load_ms:.2f} ms | "
                f"+RGBA {rgba_ms:.2f} ms | decode_image {decode_ms:.2f} ms ({decode_ms / load_ms:.2f}x) | "
                f"Pillow thumbnail {pthumb_ms:.2f} ms | make_thumbnail {thumb_ms:.2f} ms "
                f"({thumb_ms / pthumb_ms:.2f}x)  (medians of {args.repeat})"
            )
    write_results("images", {"repeat": args.repeat, "cases": results})


if __name__ == "__main__":
    main()
