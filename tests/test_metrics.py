"""sim/metrics.py: skin errors in mm over the visible embedded skin, their table, and the
count of stretched skin edges, on small hand-made skins with known answers."""

import numpy as np
import pytest

from physface.sim import metrics

VISIBLE = metrics.VISIBLE_SKIN_END


def _skins(frames=3, count=VISIBLE + 10):
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(frames, count, 3)).astype(np.float32)
    return reference, reference.copy()


def test_vertex_errors_are_in_mm_and_use_the_common_frames():
    reference, predicted = _skins()
    predicted[:, 5] += np.float32([0.03, 0.04, 0.0])  # 0.05 cm = 0.5 mm
    errors = metrics.vertex_errors_mm(predicted[:2], reference, [5, 6])
    assert errors.shape == (2, 2) and errors.dtype == np.float32
    np.testing.assert_allclose(errors[:, 0], 0.5, atol=1e-5)
    np.testing.assert_allclose(errors[:, 1], 0.0, atol=1e-6)


def test_frame_errors_count_only_the_visible_skin_in_mean_and_max():
    reference, predicted = _skins()
    embedded = np.array([1, 2, 3, VISIBLE + 1, VISIBLE + 2])
    predicted[:, VISIBLE + 1, 0] += 0.2  # inside the mouth: 2 mm, not visible
    predicted[1, 2, 1] += 0.1  # visible: 1 mm on frame 1
    errors = metrics.frame_errors(predicted, reference, embedded)
    np.testing.assert_allclose(errors["mean"], [0.0, 1.0 / 3.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(errors["max"], [0.0, 1.0, 0.0], atol=1e-5)
    np.testing.assert_allclose(errors["mean_all"], [0.4, 0.6, 0.4], atol=1e-5)
    assert list(errors["frames"]) == [0, 1, 2]
    assert list(metrics.visible_vertices(embedded)) == [1, 2, 3]


def test_table_statistics_and_groups():
    errors = {
        "anger": {"mean": np.array([1.0, 3.0]), "max": np.array([2.0, 7.0]),
                  "mean_all": np.array([1.0, 1.0])},
        "fear": {"mean": np.array([2.0]), "max": np.array([4.0]), "mean_all": np.array([4.0])},
    }  # fmt: skip
    rows = {r["sequence"]: r for r in metrics.error_table(errors)}
    assert set(rows) == {"anger", "fear", "anger+fear"}
    assert rows["anger"]["mean"] == 2.0 and rows["anger"]["std"] == 1.0
    assert rows["anger"]["max_frame_mean"] == 3.0 and rows["anger"]["max_vertex"] == 7.0
    both = rows["anger+fear"]
    assert both["frames"] == 3 and both["mean"] == 2.0 and both["median"] == 2.0
    assert both["mean_all_embedded"] == 2.0 and both["min_frame_mean"] == 1.0
    # A group with none of its sequences present gives no row.
    assert [r["sequence"] for r in metrics.error_table(errors, [("x", ["pain"])])] == [
        "anger",
        "fear",
    ]
    text = metrics.format_table(metrics.error_table(errors)).splitlines()
    assert text[1].split()[:3] == ["anger", "2", "2.00"]
    assert text[-1].startswith("paper (test)") and "0.80" in text[-1]


def test_stretched_edges_counts_edges_beyond_the_factor():
    rest = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 1, 0]], np.float32)
    edges = np.array([[0, 1], [0, 2], [1, 3], [2, 3], [3, 4]])  # the last has rest length 0
    frames = np.stack([rest, rest, rest])
    frames[1, 3] = [1, 3.5, 0]  # edge 1-3 is 3.5 long, 2-3 is sqrt(1 + 6.25) ≈ 2.69
    frames[2, 3] = [1, 3.0, 0]  # 1-3 exactly 3.0: not beyond 3
    frames[:, 4] = [9, 9, 0]  # a zero-length rest edge is never counted
    np.testing.assert_array_equal(metrics.stretched_edges(frames, rest, edges, 3.0), [0, 1, 0])
    np.testing.assert_array_equal(metrics.stretched_edges(frames, rest, edges, 2.5), [0, 2, 1])
    assert metrics.stretched_edges(frames[1], rest, edges, 2.5) == 2
    with pytest.raises(ValueError):
        metrics.stretched_edges(frames, rest, edges, 0.0)


def test_metrics_import_no_heavy_modules():
    import subprocess
    import sys

    code = (
        "import sys, physface.sim.metrics\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('warp', 'scipy', 'torch', 'bpy')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
