"""The shipped ``default`` model (models/default, issue 17): its files are there and within
the size budget, it maps the rest frame to the rest skin within 0.1 mm, ONNX Runtime equals
the torch weights it carries within 1e-4 cm, and the card names the model's key."""

from pathlib import Path

import numpy as np
import pytest

from physface.nets.runtime import load_model

MODEL = Path(__file__).resolve().parent.parent / "models" / "default"
MAX_BYTES = 20 * 1024 * 1024


def _frames(rest: np.ndarray, count: int = 3) -> list[np.ndarray]:
    """Rest plus smooth fields of a few millimetres (cm), like a face moving."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(count):
        phase = rng.uniform(0, 2 * np.pi, 3)
        frames.append((rest + 0.2 * np.sin(0.4 * rest + phase)).astype(np.float32))
    return frames


def test_the_shipped_model_is_complete_and_small():
    names = {p.name for p in MODEL.iterdir()}
    assert {"model.onnx", "model.npz", "README.md"} <= names
    assert sum(p.stat().st_size for p in MODEL.iterdir()) <= MAX_BYTES
    upsampler = load_model(MODEL, threads=1)
    assert upsampler.key in (MODEL / "README.md").read_text(encoding="utf-8")
    assert upsampler.skin_vertices is not None and len(upsampler.skin_vertices) == (
        upsampler.skin_count
    )


def test_the_shipped_model_maps_rest_to_rest_within_a_tenth_of_a_millimetre():
    upsampler = load_model(MODEL, threads=1)
    skin = upsampler(upsampler.lr_rest)
    error_mm = 10.0 * np.linalg.norm(skin - upsampler.skin_rest, axis=1)
    assert error_mm.max() <= 0.1, error_mm.max()


def test_the_shipped_model_runs_the_same_in_torch_and_onnx_runtime():
    pytest.importorskip("torch")
    from physface.nets.runtime import load_torch_model

    onnx_run = load_model(MODEL, threads=1)
    torch_run = load_torch_model(MODEL, expect_key=onnx_run.key)
    for frame in _frames(onnx_run.lr_rest):
        a, b = onnx_run(frame), torch_run(frame)
        assert np.abs(a - b).max() <= 1e-4
        assert np.abs(a - onnx_run.skin_rest).max() > 0.01  # the face moved


def test_the_shipped_model_fits_this_machines_default_rig():
    """The LR-only ``default`` rig built here (no fine mesh, which differs between builds)
    has the model's lattice key and skin rows: the model needs nothing else from the rig."""
    from physface.nets.pairs import lattice_key
    from physface.sim.rig import load_rig

    rig = load_rig("default", with_hr=False)
    key = lattice_key(rig.lr.rest_positions, rig.lr.tets)
    upsampler = load_model(MODEL, expect_key=key, threads=1)
    np.testing.assert_array_equal(upsampler.skin_vertices, rig.lr_skin.vertices)
