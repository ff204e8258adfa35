"""The project's one PNG and plot helper (numpy and zlib only, no bpy).

Reads and writes 8-bit PNGs (grey, RGB, RGBA), draws text with a 5×7 bitmap font and
draws line plots, so reports, contact sheets and tests need neither Blender nor an
imaging library. Images are (H, W, C) uint8 arrays, top row first; C is 3 (RGB) or 4
(RGBA). Writes are atomic (``cache.atomic_path``), so a killed run never leaves half a PNG.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from .cache import atomic_path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel

# --- PNG files ---------------------------------------------------------------------------------


def as_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float display values in [0, 1] (any shape) as uint8, rounded and clipped."""
    return np.rint(np.clip(np.asarray(pixels, np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    """The PNG bytes of an (H, W), (H, W, 3) or (H, W, 4) uint8 image (no filter, zlib 6).

    The same array always gives the same bytes (no timestamps)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"a PNG image must be uint8, not {image.dtype} (see as_uint8)")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or 0 in image.shape[:2]:
        raise ValueError(f"a PNG image is (H, W), (H, W, 3) or (H, W, 4), not {image.shape}")
    height, width, channels = image.shape
    colour_type = {1: 0, 3: 2, 4: 6}[channels]
    rows = np.ascontiguousarray(image).reshape(height, width * channels)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 grey, RGB or RGBA image as a PNG, atomically; returns the path."""
    data = encode_png(image)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def _unfilter(data: bytes, height: int, stride: int, bpp: int) -> np.ndarray:
    """Undo the per-row PNG filters (none, sub, up, average, Paeth) -> (H, stride) uint8."""
    out = np.zeros((height, stride), np.uint8)
    previous = bytearray(stride)
    position = 0
    for y in range(height):
        kind = data[position]
        row = bytearray(data[position + 1 : position + 1 + stride])
        position += stride + 1
        if kind == 1:  # sub: a running sum per channel along the row
            pixels = np.frombuffer(bytes(row), np.uint8).reshape(-1, bpp).astype(np.int64)
            row = bytearray((np.cumsum(pixels, axis=0) & 255).astype(np.uint8).tobytes())
        elif kind == 2:
            row = bytearray(
                (
                    (np.frombuffer(bytes(row), np.uint8) + np.frombuffer(bytes(previous), np.uint8))
                    & 255
                )
                .astype(np.uint8)
                .tobytes()
            )
        elif kind in (3, 4):  # each byte depends on the decoded byte bpp to its left
            for x in range(stride):
                left = row[x - bpp] if x >= bpp else 0
                up = previous[x]
                if kind == 3:
                    predictor = (left + up) >> 1
                else:
                    up_left = previous[x - bpp] if x >= bpp else 0
                    p = left + up - up_left
                    pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                    predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                row[x] = (row[x] + predictor) & 255
        elif kind != 0:
            raise ValueError(f"PNG row {y} has an unknown filter {kind}")
        out[y] = np.frombuffer(bytes(row), np.uint8)
        previous = row
    return out


def read_png(path: str | Path) -> np.ndarray:
    """A non-interlaced PNG as (H, W, 3) or (H, W, 4) uint8, top row first.

    Grey becomes RGB (grey with alpha RGBA), palettes are expanded, 16-bit samples keep
    their high byte. Raises ValueError for a file that is not a PNG this reader handles."""
    data = Path(path).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError(f"{path} is not a PNG file")
    position, header, palette, alpha, idat = len(PNG_SIGNATURE), None, None, None, []
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, np.uint8).reshape(-1, 3)
        elif kind == b"tRNS":
            alpha = np.frombuffer(body, np.uint8)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None or not idat:
        raise ValueError(f"{path} is a truncated PNG (no header or no image data)")
    width, height, depth, colour_type, _, _, interlace = header
    if depth not in (8, 16) or colour_type not in _CHANNELS or interlace:
        raise ValueError(
            f"{path}: PNG with bit depth {depth}, colour type {colour_type}, interlace "
            f"{interlace} is not supported (8 or 16 bits, not interlaced)"
        )
    channels = _CHANNELS[colour_type]
    bpp = channels * depth // 8
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as error:
        raise ValueError(f"{path}: corrupt PNG image data ({error})") from None
    if len(raw) < height * (width * bpp + 1):
        raise ValueError(f"{path} is a truncated PNG")
    pixels = _unfilter(raw, height, width * bpp, bpp).reshape(height, width, -1)
    if depth == 16:
        pixels = pixels[:, :, 0::2]
    pixels = pixels.reshape(height, width, channels)
    if colour_type == 3:
        if palette is None:
            raise ValueError(f"{path}: palette PNG without a palette")
        index = pixels[:, :, 0]
        rgb = palette[index]
        if alpha is None:
            return np.ascontiguousarray(rgb)
        table = np.full(len(palette), 255, np.uint8)
        table[: len(alpha)] = alpha[: len(palette)]
        return np.concatenate([rgb, table[index][:, :, None]], axis=2)
    if colour_type in (0, 4):
        grey = np.repeat(pixels[:, :, :1], 3, axis=2)
        return grey if colour_type == 0 else np.concatenate([grey, pixels[:, :, 1:]], axis=2)
    return np.ascontiguousarray(pixels)


# --- text ----------------------------------------------------------------------------------

# 5×7 bitmap glyphs, one byte per row (bit 4 = leftmost column); text is drawn upper case.
_FONT = {
    "0": "0e11131519110e",
    "1": "040c040404040e",
    "2": "0e11010204081f",
    "3": "1f02040201110e",
    "4": "02060a121f0202",
    "5": "1f101e0101110e",
    "6": "0608101e11110e",
    "7": "1f010204080808",
    "8": "0e11110e11110e",
    "9": "0e11110f01020c",
    "A": "0e11111f111111",
    "B": "1e11111e11111e",
    "C": "0e11101010110e",
    "D": "1c12111111121c",
    "E": "1f10101e10101f",
    "F": "1f10101e101010",
    "G": "0e11101711110f",
    "H": "1111111f111111",
    "I": "0e04040404040e",
    "J": "0702020202120c",
    "K": "11121418141211",
    "L": "1010101010101f",
    "M": "111b1515111111",
    "N": "11111915131111",
    "O": "0e11111111110e",
    "P": "1e11111e101010",
    "Q": "0e11111115120d",
    "R": "1e11111e141211",
    "S": "0f10100e01011e",
    "T": "1f040404040404",
    "U": "1111111111110e",
    "V": "11111111110a04",
    "W": "1111111515150a",
    "X": "11110a040a1111",
    "Y": "11110a04040404",
    "Z": "1f01020408101f",
    ".": "00000000000c0c",
    "-": "0000001f000000",
    ":": "000c0c000c0c00",
    "(": "02040808080402",
    ")": "08040202020408",
    "/": "00010204081000",
    "_": "0000000000001f",
    "%": "18190204081303",
    "=": "00001f001f0000",
    "+": "0004041f040400",
    ",": "000000000c0408",
    " ": "00000000000000",
}
GLYPH_ROWS = 7  # a glyph is 5 pixels wide and 7 high, advancing 6 columns (times scale)


def text_width(text: str, scale: int = 2) -> int:
    """Width in pixels of ``text`` drawn by ``draw_text`` at ``scale``."""
    return len(text) * 6 * scale


def text_height(scale: int = 2) -> int:
    """Height in pixels of one line drawn by ``draw_text`` at ``scale``."""
    return GLYPH_ROWS * scale


def draw_text(
    image: np.ndarray, x: int, y: int, text: str, colour=(0, 0, 0), scale: int = 2
) -> np.ndarray:
    """Draw ``text`` (upper case; unknown characters as spaces) into ``image`` in place,
    top-left corner at pixel (x, y), clipped at the edges. ``colour`` has the image's
    channel count (RGB or RGBA). Returns ``image``."""
    height, width = image.shape[:2]
    for k, char in enumerate(str(text).upper()):
        rows = bytes.fromhex(_FONT.get(char, _FONT[" "]))
        for r, bits in enumerate(rows):
            for c in range(5):
                if bits & (16 >> c):
                    top, left = y + r * scale, x + (k * 6 + c) * scale
                    if top + scale > 0 and left + scale > 0 and top < height and left < width:
                        image[max(top, 0) : top + scale, max(left, 0) : left + scale] = colour
    return image


def draw_line(image: np.ndarray, x0, y0, x1, y1, colour, width: int = 2) -> np.ndarray:
    """A straight segment by dense sampling (``width`` pixels square pen), in place."""
    steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.rint(np.linspace(x0, x1, steps)).astype(int)
    ys = np.rint(np.linspace(y0, y1, steps)).astype(int)
    h, w = image.shape[:2]
    for dx in range(width):
        for dy in range(width):
            keep = (xs + dx >= 0) & (xs + dx < w) & (ys + dy >= 0) & (ys + dy < h)
            image[ys[keep] + dy, xs[keep] + dx] = colour
    return image


# --- line plots --------------------------------------------------------------------------------

COLOURS = (
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
)


def _nice_step(span: float, count: int = 5) -> float:
    raw = span / max(count, 1)
    power = 10.0 ** np.floor(np.log10(raw)) if raw > 0 else 1.0
    return float(next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw))


def _format_tick(value: float, step: float) -> str:
    decimals = max(0, -int(np.floor(np.log10(step)))) if step < 1 else 0
    return f"{value:.{decimals}f}"


def line_plot(
    series: list[tuple[str, np.ndarray, np.ndarray]],
    title: str,
    xlabel: str,
    ylabel: str,
    size=(960, 480),
) -> np.ndarray:
    """(H, W, 3) uint8 image of (label, x, y) lines with axes, ticks and a legend.

    The y axis starts at 0 (errors, distances); ``size`` is (width, height)."""
    if not series:
        raise ValueError("line_plot needs at least one series")
    width, height = size
    left, right, top, bottom = 90, 24, 56, 64
    image = np.full((height, width, 3), 255, np.uint8)
    xs = np.concatenate([np.asarray(s[1], float) for s in series])
    ys = np.concatenate([np.asarray(s[2], float) for s in series])
    x_min, x_max = float(xs.min()), float(max(xs.max(), xs.min() + 1))
    y_step = _nice_step(float(ys.max()) or 1.0)
    y_max = y_step * np.ceil(float(ys.max()) / y_step + 1e-9) or y_step
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x):
        return left + (np.asarray(x, float) - x_min) / (x_max - x_min) * plot_w

    def py(y):
        return top + plot_h - np.asarray(y, float) / y_max * plot_h

    grey, dark = (225, 225, 225), (60, 60, 60)
    for value in np.arange(0.0, y_max + y_step / 2, y_step):
        y = float(py(value))
        draw_line(image, left, y, left + plot_w, y, grey, 1)
        label = _format_tick(value, y_step)
        draw_text(image, left - 8 - text_width(label), int(y) - 7, label, dark)
    x_step = _nice_step(x_max - x_min, 8)
    if np.all(xs == np.round(xs)):  # frame numbers: no fractional ticks
        x_step = max(x_step, 1.0)
    for value in np.arange(np.ceil(x_min / x_step) * x_step, x_max + 1e-9, x_step):
        x = float(px(value))
        draw_line(image, x, top + plot_h, x, top + plot_h + 6, dark, 2)
        label = _format_tick(value, x_step)
        draw_text(image, int(x) - text_width(label) // 2, top + plot_h + 12, label, dark)
    draw_line(image, left, top, left, top + plot_h, dark, 2)
    draw_line(image, left, top + plot_h, left + plot_w, top + plot_h, dark, 2)
    for k, (_, x, y) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        points_x, points_y = px(x), py(y)
        for i in range(len(points_x) - 1):
            draw_line(image, points_x[i], points_y[i], points_x[i + 1], points_y[i + 1], colour, 2)
        if len(points_x) == 1:
            draw_line(image, points_x[0] - 3, points_y[0], points_x[0] + 3, points_y[0], colour, 3)
    # Legend in a white box at the top right, over the lines.
    legend_w = max(text_width(s[0]) for s in series) + 52
    legend_x, legend_y = left + plot_w - legend_w - 6, top + 6
    image[legend_y : legend_y + 20 * len(series) + 8, legend_x : legend_x + legend_w] = 255
    for k, (label, _, _) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        row = legend_y + 6 + 20 * k
        draw_line(image, legend_x + 8, row + 6, legend_x + 34, row + 6, colour, 3)
        draw_text(image, legend_x + 42, row, label, colour)
    draw_text(image, left, 16, title, (0, 0, 0))
    draw_text(image, left + plot_w // 2 - text_width(xlabel) // 2, height - 26, xlabel, dark)
    draw_text(image, 8, 16 + 22, ylabel, dark)
    return image
