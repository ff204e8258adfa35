"""Evaluation of the network against the baselines (nets/evaluate.py, cli/evaluate.py,
issue 17) on a tiny synthetic pair set (tests/test_nets_train.py's ``synthetic_pairs``):
the printed table's embedded row equals a direct computation, frames whose fine simulation
did not converge are left out, the render plan holds the four columns and the close-ups,
and the renders come out as contact sheets."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from physface.nets.evaluate import (  # noqa: E402
    close_up_regions,
    evaluate,
    heat_colours,
    mouth_open_frames,
)
from physface.nets.pairs import write_pairs  # noqa: E402


def _synthetic_module():
    path = Path(__file__).with_name("test_nets_train.py")
    spec = importlib.util.spec_from_file_location("physface_test_nets_synthetic", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


synthetic = _synthetic_module()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A pair folder (one test sequence with a non-converged frame, one generalisation
    sequence) and an untrained exported model of it."""
    import torch

    from physface.nets.runtime import export_model
    from physface.nets.train import TrainConfig, build_model

    root = tmp_path_factory.mktemp("evaluate")
    pairs = synthetic.synthetic_pairs(frames=6, unconverged=[("t", 2)])
    data = write_pairs(root / "pairs", pairs)
    torch.manual_seed(0)
    config = TrainConfig(encoding=8, widths=(8, 16), k=3, upsample_hidden=8, decoder_hidden=(16,))
    model = build_model(pairs.rest, config)
    export_model(model.eval(), root / "model")
    return pairs, data, root / "model"


def _direct_embedded(pairs, name):
    rest, sequence = pairs.rest, pairs.sequences[name]
    keep = sequence.converged
    corners = rest.lr_tets[rest.skin_elements]
    skins = np.einsum("mk,fmkd->fmd", rest.skin_weights, sequence.lr[keep][:, corners])
    per_frame = 10.0 * np.linalg.norm(skins - sequence.skin[keep], axis=2).mean(axis=1)
    return per_frame


def test_table_embedded_row_equals_a_direct_computation(tiny, tmp_path, capsys):
    from physface.__main__ import main

    pairs, data, model = tiny
    out = tmp_path / "eval"
    status = main(["evaluate", "--model", str(model), "--data", str(data), "--out", str(out),
                   "--no-renders"])  # fmt: skip
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "(1 frames left out: fine simulation not converged)" in printed
    direct = _direct_embedded(pairs, "t")
    assert len(direct) == 5
    line = next(line for line in printed.splitlines() if line.startswith("t "))
    assert line.split()[1] == "embedded"
    numbers = [float(v) for v in line.split()[2:]]
    expected = [5, direct.mean(), np.median(direct), direct.std(), direct.max(), direct.min()]
    assert numbers[0] == expected[0]
    np.testing.assert_allclose(numbers[1:6], expected[1:], atol=6e-4)
    for method in ("Gaussian RBF", "MLS", "network"):
        assert method in printed
    report = json.loads((out / "evaluation.json").read_text())
    row = next(r for r in report["table"] if r["sequence"] == "t" and r["method"] == "embedded")
    np.testing.assert_allclose(row["mean"], direct.mean(), rtol=1e-5)
    np.testing.assert_allclose(row["max_frame_mean"], direct.max(), rtol=1e-5)
    assert report["sequences"]["t"]["frames"] == [0, 1, 3, 4, 5]
    assert report["sequences"]["g"]["split"] == "generalisation"
    assert (out / "error_t.png").is_file() and (out / "error_g.png").is_file()
    assert "stretched" in printed


def test_render_plan_columns_heat_and_close_ups(tiny):
    from physface.nets.runtime import load_model

    pairs, _, model = tiny
    network = load_model(model)
    result = evaluate(pairs, network, render_count=2, log=lambda line: None)
    assert [r.sequence for r in result.renders] == ["t", "t"]
    frame = result.renders[0]
    assert list(frame.columns) == ["embedded", "network", "fine", "network error"]
    assert frame.colours["network error"].shape == (pairs.rest.skin_count, 3)
    assert frame.colours["fine"] is None
    assert set(frame.regions) == {"face", "worst"}  # no landmarks: the largest error
    assert frame.frame in (0, 1, 3, 4, 5)
    stretch = result.sequences["t"].stretch
    assert set(stretch) == {"embedded", "network", "fine"}


def test_close_ups_from_landmarks_and_helpers():
    pairs = synthetic.synthetic_pairs(frames=2)
    rest = pairs.rest
    rest.skin_vertices = np.arange(rest.skin_count) + 1000
    landmarks = np.zeros(68, np.int64)
    landmarks[36:48] = 1000 + np.arange(12)  # one corner of the sheet: the "eyes"
    landmarks[48:68] = 1000 + rest.skin_count - 1 - np.arange(20)  # the other: the "mouth"
    regions = close_up_regions(rest, landmarks)
    assert set(regions) == {"face", "mouth", "eyes"}
    assert 0 < len(regions["mouth"]) < len(regions["face"])
    colours = heat_colours(np.array([0.0, 1.0, 2.0, 9.0]), 2.0)
    np.testing.assert_allclose(colours[0], (0.23, 0.35, 0.75), atol=1e-6)
    np.testing.assert_allclose(colours[2], colours[3])
    frames = np.arange(10)
    jaw = np.array([0, 1, 2, 8, 10, 9, 3, 0, 0, 0], float)
    chosen, rule = mouth_open_frames(frames, np.zeros((10, 2, 3)), np.zeros((2, 3)), jaw)
    assert chosen == [3, 4, 5] and "jaw" in rule


def test_renders_make_one_sheet_per_frame(tiny, tmp_path, capsys):
    pytest.importorskip("bpy")
    from physface.__main__ import main

    pairs, data, model = tiny
    out = tmp_path / "eval"
    status = main(["evaluate", "--model", str(model), "--data", str(data), "--out", str(out),
                   "--frames", "1", "--resolution", "48"])  # fmt: skip
    printed = capsys.readouterr().out
    assert status == 0, printed
    sheets = sorted((out / "renders").glob("t_*.png"))
    assert len(sheets) == 1
    from physface.sim.images import read_png

    image = read_png(sheets[0])
    assert image.shape[1] == 4 * 48  # four columns
    assert image.shape[0] > 2 * 48  # rows: the face and the largest-error close-up
