"""nets/runtime.py: ONNX export of a frozen model and its ONNX Runtime upsampler — equal to
torch within 1e-4 cm; missing, truncated, corrupt, old-format and foreign model files are
refused with one clear line (ModelError)."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from physface.nets import model as nm  # noqa: E402
from physface.nets import runtime  # noqa: E402
from physface.nets.runtime import (  # noqa: E402
    ModelError,
    TorchUpsampler,
    export_model,
    load_model,
    load_torch_model,
)
from physface.sim.errors import PhysFaceError  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_nets_model import SMALL, synthetic_rest  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small trained-looking model (moved normalisation and batch-norm statistics) and its
    exported folder with skin_vertices."""
    torch.manual_seed(0)
    rest = synthetic_rest()
    model = nm.SuperResolution(rest, **SMALL)
    model.fit_normalisation(np.full((2, 60, 3), 0.3), np.full((2, 200, 3), 0.2))
    model(torch.randn(4, 60, 3) * 0.3)  # batch-norm running statistics move
    folder = tmp_path_factory.mktemp("model")
    skin_vertices = np.arange(200, dtype=np.int64) * 3
    export_model(model, folder, skin_vertices=skin_vertices)
    return model, folder, rest


def _frame(rest, seed=1, scale=0.3):
    noise = np.random.default_rng(seed).normal(scale=scale, size=rest["lr_rest"].shape)
    return (rest["lr_rest"] + noise).astype(np.float32)


def test_onnx_runtime_equals_torch(exported):
    model, folder, rest = exported
    assert sorted(p.name for p in folder.iterdir()) == ["model.npz", "model.onnx"]
    onnx_run = load_model(folder, expect_key="synthetic-lattice", threads=1)
    torch_run = TorchUpsampler(model)
    assert onnx_run.key == torch_run.key == "synthetic-lattice"
    np.testing.assert_array_equal(onnx_run.skin_vertices, np.arange(200) * 3)
    for seed in (1, 2, 3):
        frame = _frame(rest, seed)
        a, b = onnx_run(frame), torch_run(frame)
        assert a.shape == (200, 3) and a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
    out = np.empty((200, 3), np.float32)
    assert onnx_run(frame, out=out) is out
    np.testing.assert_array_equal(out, a)
    # the rest frame gives the rest skin (anchor_rest)
    np.testing.assert_allclose(onnx_run(rest["lr_rest"]), rest["skin_rest"], atol=1e-5)


def test_the_folder_alone_rebuilds_the_torch_model(exported):
    """model.npz carries the torch weights: the folder's torch upsampler equals the model
    that was exported (bit for bit) and ONNX Runtime (1e-4 cm); a foreign key is refused."""
    model, folder, rest = exported
    from_folder = load_torch_model(folder, expect_key="synthetic-lattice")
    original, onnx_run = TorchUpsampler(model), load_model(folder, threads=1)
    np.testing.assert_array_equal(from_folder.skin_vertices, np.arange(200) * 3)
    for seed in (4, 5):
        frame = _frame(rest, seed)
        np.testing.assert_array_equal(from_folder(frame), original(frame))
        np.testing.assert_allclose(from_folder(frame), onnx_run(frame), atol=1e-4, rtol=0)
    with pytest.raises(ModelError, match="another LR lattice"):
        load_torch_model(folder, expect_key="other-lattice")


def test_the_graph_holds_the_rest_only_tables_as_constants(exported):
    import onnx

    _, folder, _ = exported
    graph = onnx.load(str(folder / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["lr_positions"]
    assert [o.name for o in graph.output] == ["skin_positions"]
    ops = {node.op_type for node in graph.node}
    assert "Softmax" not in ops and "Sin" in ops and "TopK" in ops  # f_θ is frozen away


def _copy(folder, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def _refused(path, match, **kwargs):
    with pytest.raises(ModelError, match=match) as caught:
        load_model(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and (str(path) in message or path.name in message)
    assert isinstance(caught.value, PhysFaceError)
    return message


def test_missing_files_are_refused(exported, tmp_path):
    _, folder, _ = exported
    message = _refused(tmp_path / "nowhere", "missing")
    assert "model.npz" in message
    copy = _copy(folder, tmp_path)
    (copy / "model.onnx").unlink()
    assert "model.onnx" in _refused(copy, "missing")


def test_truncated_onnx_and_corrupt_npz_are_refused(exported, tmp_path):
    _, folder, _ = exported
    copy = _copy(folder, tmp_path)
    data = (copy / "model.onnx").read_bytes()
    (copy / "model.onnx").write_bytes(data[: len(data) // 2])
    assert "model.onnx" in _refused(copy, "truncated")
    copy = _copy(folder, tmp_path / "b")
    data = bytearray((copy / "model.npz").read_bytes())
    (copy / "model.npz").write_bytes(bytes(data[: len(data) - 100]))
    _refused(copy / "model.npz", "truncated or corrupt")
    (copy / "model.npz").write_bytes(b"not a zip at all")
    _refused(copy, "truncated or corrupt")


def test_foreign_key_and_other_format_are_refused(exported, tmp_path):
    _, folder, _ = exported
    message = _refused(folder, "another LR lattice", expect_key="some-other-rig")
    assert "model.npz" in message
    copy = _copy(folder, tmp_path)
    with np.load(copy / "model.npz") as stored:
        arrays = dict(stored)
    arrays["format_version"] = np.int64(runtime.FORMAT_VERSION + 1)
    np.savez(copy / "model.npz", **arrays)
    _refused(copy, "format version")


def test_wrong_input_shape_is_a_value_error(exported):
    _, folder, _ = exported
    with pytest.raises(ValueError, match=r"\(60, 3\)"):
        load_model(folder)(np.zeros((59, 3), np.float32))
