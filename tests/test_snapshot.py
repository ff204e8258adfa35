"""Snapshots: numpy meshes rendered headlessly to PNG, and contact sheets of PNGs."""

import numpy as np
import pytest

SIZE = 96


def uv_sphere(rings: int = 10, segments: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A unit sphere: positions (V, 3) float32 and outward triangles (F, 3) int32."""
    theta = np.linspace(0.0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0.0, 2.0 * np.pi, segments, endpoint=False)
    ring = np.stack(
        [
            np.sin(theta)[:, None] * np.cos(phi),
            np.cos(theta)[:, None] * np.ones_like(phi),
            np.sin(theta)[:, None] * np.sin(phi),
        ],
        axis=-1,
    ).reshape(-1, 3)
    positions = np.concatenate([[[0.0, 1.0, 0.0]], ring, [[0.0, -1.0, 0.0]]]).astype(np.float32)
    south = len(positions) - 1
    around = np.arange(segments)
    after = (around + 1) % segments
    triangles = [np.stack([np.zeros(segments, int), 1 + after, 1 + around], axis=1)]
    for r in range(rings - 2):
        top, bottom = 1 + r * segments, 1 + (r + 1) * segments
        triangles.append(np.stack([top + around, top + after, bottom + after], axis=1))
        triangles.append(np.stack([top + around, bottom + after, bottom + around], axis=1))
    last = 1 + (rings - 2) * segments
    triangles.append(np.stack([last + around, last + after, np.full(segments, south)], axis=1))
    return positions, np.concatenate(triangles).astype(np.int32)


def read_png(bpy, path) -> np.ndarray:
    """(H, W, 4) float pixels of a PNG, top row first."""
    image = bpy.data.images.load(str(path), check_existing=False)
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    return pixels.reshape(height, width, 4)[::-1]


def covered_fraction(pixels: np.ndarray) -> float:
    """Share of pixels that differ from the top-left (background) pixel."""
    difference = np.abs(pixels[..., :3] - pixels[0, 0, :3]).max(axis=-1)
    return float((difference > 0.05).mean())


def test_sphere_renders_front_and_side(blender, tmp_path):
    from physface.blender.snapshot import SnapshotMesh, render_views

    positions, triangles = uv_sphere()
    blocks_before = (len(blender.data.objects), len(blender.data.meshes), len(blender.data.scenes))
    paths = render_views(
        [SnapshotMesh(positions, triangles, color=(0.9, 0.4, 0.3, 1.0))],
        tmp_path,
        "sphere",
        resolution=(SIZE, SIZE),
        samples=4,
    )

    assert [path.name for path in paths] == ["sphere_front.png", "sphere_side.png"]
    assert sorted(tmp_path.iterdir()) == sorted(paths)
    for path in paths:
        pixels = read_png(blender, path)
        assert pixels.shape == (SIZE, SIZE, 4)
        # A disc filling the frame less the margin: pi / 4 / 1.08**2 = 0.67.
        assert 0.5 < covered_fraction(pixels) < 0.8
        center = pixels[SIZE // 2 - 4 : SIZE // 2 + 4, SIZE // 2 - 4 : SIZE // 2 + 4, :3]
        assert center[..., 0].mean() > center[..., 2].mean() + 0.1
    blocks_after = (len(blender.data.objects), len(blender.data.meshes), len(blender.data.scenes))
    assert blocks_after == blocks_before


def test_edge_only_mesh_renders_visible_wires(blender, tmp_path):
    from physface.blender.snapshot import SnapshotMesh, render_views

    positions, triangles = uv_sphere(rings=4, segments=6)
    edges = np.unique(np.sort(triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1), axis=0)
    (path,) = render_views(
        [SnapshotMesh(positions, None, edges=edges, color=(0.2, 0.8, 1.0, 1.0))],
        tmp_path,
        "lattice",
        views=("three_quarter",),
        resolution=(SIZE, SIZE),
        samples=4,
    )
    assert 0.03 < covered_fraction(read_png(blender, path)) < 0.5


def test_unused_vertices_do_not_count_in_the_framing(blender, tmp_path):
    from physface.blender.snapshot import SnapshotMesh, render_views

    positions, triangles = uv_sphere()
    far_away = np.concatenate([positions, [[50.0, -80.0, 20.0]]]).astype(np.float32)
    (path,) = render_views(
        [SnapshotMesh(far_away, triangles)],
        tmp_path,
        "subset",
        views=("front",),
        resolution=(SIZE, SIZE),
        samples=2,
    )
    assert 0.5 < covered_fraction(read_png(blender, path)) < 0.8


def test_unknown_view_is_refused(blender, tmp_path):
    from physface.blender.snapshot import SnapshotMesh, render_views

    positions, triangles = uv_sphere(rings=4, segments=6)
    with pytest.raises(ValueError, match="unknown views"):
        render_views([SnapshotMesh(positions, triangles)], tmp_path, "x", views=("top",))
    with pytest.raises(ValueError, match="neither triangles nor edges"):
        render_views([SnapshotMesh(positions, None)], tmp_path, "x")
    assert not list(tmp_path.iterdir())


def test_contact_sheet_tiles_images_row_by_row(blender, tmp_path):
    from physface.blender.snapshot import contact_sheet

    colors = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
    paths = []
    for index, color in enumerate(colors):
        image = blender.data.images.new(f"tile{index}", 40, 30, alpha=True)
        image.pixels.foreach_set(np.tile([*color, 1.0], 40 * 30).astype(np.float32))
        image.filepath_raw = str(tmp_path / f"tile{index}.png")
        image.file_format = "PNG"
        image.save()
        paths.append(tmp_path / f"tile{index}.png")

    sheet = read_png(blender, contact_sheet(paths, tmp_path / "sheet.png", columns=2))
    assert sheet.shape == (60, 80, 4)
    np.testing.assert_allclose(sheet[15, 20, :3], colors[0], atol=0.01)
    np.testing.assert_allclose(sheet[15, 60, :3], colors[1], atol=0.01)
    np.testing.assert_allclose(sheet[45, 20, :3], colors[2], atol=0.01)

    labelled = read_png(
        blender, contact_sheet(paths, tmp_path / "labelled.png", columns=3, labels=["a", "b", "c"])
    )
    assert labelled.shape[1] == 120 and labelled.shape[0] > 30
    strip = labelled[: labelled.shape[0] - 30, :40, :3]
    assert strip.min() < 0.1 and strip.max() > 0.5


def test_muscle_pictures_close_up_on_the_lids(blender, tmp_path):
    """A lid muscle gets an eye close-up: the closing lid is red (moved ≥ 5 mm), the open
    eye beside it is not."""
    from physface.cli.muscle_pictures import render_muscle_pictures

    paths = render_muscle_pictures("tiny", tmp_path, muscles=["orbicularis_oculi_palpebral_L"])
    sheet = tmp_path / "tiny_lid_muscles.png"
    assert sheet in paths and (tmp_path / "tiny_muscles_alone.png") in paths
    pixels = read_png(blender, tmp_path / "orbicularis_oculi_palpebral_L_eyes_front.png")
    red = (pixels[..., 0] > 0.5) & (pixels[..., 1] < 0.2) & (pixels[..., 2] < 0.2)
    half = pixels.shape[1] // 2  # the subject's left eye is on the image's right
    assert red[:, half:].mean() > 0.004  # the closed lid: ~0.8 % of the half on tiny
    assert red[:, :half].mean() < 0.001
