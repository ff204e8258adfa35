"""sim/images.py: PNG round trips (every filter type, grey/RGB/RGBA/palette/16-bit, a PNG
written by Blender), text drawing and line plots."""

import struct
import zlib

import numpy as np
import pytest

from physface.sim import images


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _filtered_png(rows: np.ndarray, bpp: int, colour_type: int, depth=8, extra=b"") -> bytes:
    """A PNG whose row y uses filter y % 5, encoded straight from the specification."""
    height, stride = rows.shape
    raw = bytearray()
    previous = np.zeros(stride, int)
    for y in range(height):
        kind = y % 5
        row = rows[y].astype(int)
        out = []
        for x in range(stride):
            a = row[x - bpp] if x >= bpp else 0
            b = previous[x]
            c = previous[x - bpp] if x >= bpp else 0
            predictor = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
            out.append((row[x] - predictor) % 256)
        raw += bytes([kind] + out)
        previous = row
    width = stride // bpp
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        images.PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + extra
        + _chunk(b"IDAT", zlib.compress(bytes(raw)))
        + _chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("channels", [3, 4])
def test_every_filter_type_decodes(tmp_path, channels):
    rng = np.random.default_rng(channels)
    image = rng.integers(0, 256, (11, 7, channels), dtype=np.uint8)
    path = tmp_path / "f.png"
    path.write_bytes(_filtered_png(image.reshape(11, -1), channels, {3: 2, 4: 6}[channels]))
    np.testing.assert_array_equal(images.read_png(path), image)


def test_grey_palette_and_16_bit(tmp_path):
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    (tmp_path / "g.png").write_bytes(_filtered_png(grey, 1, 0))
    np.testing.assert_array_equal(images.read_png(tmp_path / "g.png"), np.stack([grey] * 3, 2))

    palette = rng.integers(0, 256, (4, 3), dtype=np.uint8)
    index = rng.integers(0, 4, (6, 5), dtype=np.uint8)
    extra = _chunk(b"PLTE", palette.tobytes()) + _chunk(b"tRNS", bytes([0, 128]))
    (tmp_path / "p.png").write_bytes(_filtered_png(index, 1, 3, extra=extra))
    decoded = images.read_png(tmp_path / "p.png")
    np.testing.assert_array_equal(decoded[..., :3], palette[index])
    np.testing.assert_array_equal(decoded[..., 3], np.array([0, 128, 255, 255])[index])

    wide = rng.integers(0, 65536, (4, 3, 3)).astype(">u2")
    rows = wide.view(np.uint8).reshape(4, -1)
    (tmp_path / "w.png").write_bytes(_filtered_png(rows, 6, 2, depth=16))
    np.testing.assert_array_equal(images.read_png(tmp_path / "w.png"), wide >> 8)


@pytest.mark.parametrize("shape", [(9, 13, 3), (9, 13, 4), (9, 13)])
def test_write_read_round_trip_is_exact_and_deterministic(tmp_path, shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = images.write_png(image, tmp_path / "sub" / "x.png")
    back = images.read_png(path)
    expected = np.stack([image] * 3, 2) if image.ndim == 2 else image
    np.testing.assert_array_equal(back, expected)
    assert images.encode_png(image) == path.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]  # no temporary left


def test_write_refuses_float_and_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        images.write_png(np.zeros((4, 4, 3)), tmp_path / "a.png")
    with pytest.raises(ValueError, match="not"):
        images.write_png(np.zeros((4, 4, 2), np.uint8), tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()
    np.testing.assert_array_equal(
        images.as_uint8(np.array([-1.0, 0.0, 0.5, 1.0, 2.0])), [0, 0, 128, 255, 255]
    )


def test_read_refuses_what_is_not_a_png(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="not a PNG"):
        images.read_png(tmp_path / "a.png")
    good = images.encode_png(np.zeros((20, 20, 3), np.uint8))
    (tmp_path / "b.png").write_bytes(good[:40])
    with pytest.raises(ValueError, match="truncated"):
        images.read_png(tmp_path / "b.png")


def test_reads_a_png_written_by_blender(tmp_path):
    """Blender's writer filters rows adaptively; its pixels must come back exactly."""
    bpy = pytest.importorskip("bpy")
    rng = np.random.default_rng(3)
    smooth = np.linspace(0, 1, 40)[None, :, None] * np.linspace(0.2, 1, 30)[:, None, None]
    pixels = np.clip(smooth + 0.1 * rng.random((30, 40, 4)), 0, 1).astype(np.float32)
    pixels[..., 3] = 1.0
    image = bpy.data.images.new("png_test", 40, 30, alpha=True)
    try:
        image.pixels.foreach_set(pixels[::-1].ravel())
        image.filepath_raw = str(tmp_path / "blender.png")
        image.file_format = "PNG"
        image.save()
    finally:
        bpy.data.images.remove(image)
    read = images.read_png(tmp_path / "blender.png")
    assert read.shape == (30, 40, 4)
    np.testing.assert_array_equal(read, images.as_uint8(pixels))


def test_text_is_drawn_where_asked_and_clipped():
    image = np.zeros((30, 80, 4), np.uint8)
    images.draw_text(image, 2, 3, "A1", (255, 0, 0, 255), scale=2)
    ys, xs = np.nonzero(image[..., 0])
    assert ys.min() == 3 and ys.max() < 3 + images.text_height(2)
    assert xs.min() >= 2 and xs.max() < 2 + images.text_width("A1", 2)
    assert (image[ys, xs] == (255, 0, 0, 255)).all()
    # "A" has 18 lit pixels in its 5×7 glyph: scale 2 gives 72 pixels for it.
    assert np.count_nonzero(image[:, : 2 + 12, 0]) == 18 * 4
    clipped = np.zeros((5, 5, 3), np.uint8)
    images.draw_text(clipped, -3, -3, "WW", (9, 9, 9))  # off the edges: no error
    assert clipped.any()


def test_line_plot_draws_each_series_in_its_colour():
    frames = np.arange(20)
    image = images.line_plot(
        [("mean", frames, frames * 0.1), ("max", frames, frames * 0.3)], "t", "frame", "mm"
    )
    assert image.shape == (480, 960, 3) and image.dtype == np.uint8
    for colour in images.COLOURS[:2]:
        assert (image == colour).all(axis=2).sum() > 500
    with pytest.raises(ValueError):
        images.line_plot([], "t", "x", "y")
