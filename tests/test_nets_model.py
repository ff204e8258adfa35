"""nets/model.py: the super-resolution network on small synthetic rest data (a jittered
lattice of LR nodes, Euclidean kNN standing in for geodesic, a triangulated skin sheet
above it): shapes, the frozen rest-only table, rest anchoring, gradients and training,
save → load, the losses."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from scipy.spatial import Delaunay, cKDTree  # noqa: E402

from physface.nets import model as nm  # noqa: E402

torch.set_num_threads(1)


def synthetic_rest(side=(5, 4, 3), skin=200, k=5, K=20, seed=0):
    """LR lattice nodes (jittered), their kNN, a skin sheet over them and its triangles."""
    rng = np.random.default_rng(seed)
    axes = [np.arange(s, dtype=np.float32) for s in side]
    lr = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    lr = (lr + rng.normal(scale=0.05, size=lr.shape)).astype(np.float32)
    tree = cKDTree(lr)
    _, knn = tree.query(lr, k + 1)
    uv = rng.uniform(0, 1, size=(skin, 2)) * (np.array(side[:2]) - 1)
    skin_rest = np.c_[uv, np.full(skin, side[2] - 0.7)].astype(np.float32)
    distances, neighbours = tree.query(skin_rest, min(K, len(lr)))
    return dict(
        lr_rest=lr,
        lr_tets=Delaunay(lr).simplices.astype(np.int64),
        lr_knn=knn[:, 1:].astype(np.int64),
        skin_rest=skin_rest,
        skin_triangles=Delaunay(uv).simplices.astype(np.int64),
        skin_lr_neighbours=neighbours.astype(np.int64),
        skin_lr_distances=distances.astype(np.float32),
        key="synthetic-lattice",
    )


SMALL = dict(widths=(16, 24), upsample_hidden=16, decoder_hidden=(32, 32))


@pytest.mark.parametrize("side,skin,batch", [((4, 3, 2), 50, 1), ((5, 4, 3), 180, 3)])
def test_output_shapes_for_several_sizes(side, skin, batch):
    rest = synthetic_rest(side, skin)
    model = nm.SuperResolution(rest, **SMALL)
    n, m = len(rest["lr_rest"]), len(rest["skin_rest"])
    out, features = model(torch.randn(batch, n, 3) * 0.1)
    assert out.shape == (batch, m, 3) and out.dtype == torch.float32
    assert [f.shape for f in features] == [(batch, n, 16), (batch, n, 24)]
    assert model.neighbour_weights().shape == rest["skin_lr_neighbours"].shape
    torch.testing.assert_close(model.neighbour_weights().sum(1), torch.ones(m))


def test_default_sizes_follow_table_4():
    model = nm.SuperResolution(synthetic_rest())
    assert model.feature_dims == 35 + 64 + 128
    assert model.encoding.shape == (60, 32)
    assert nm.ALPHA_FACE_NORMAL == 1e-3 and nm.BETA_FEATURE_NORM == (1e-3, 20.0)


def test_frozen_table_equals_the_per_forward_one_and_rest_maps_to_rest():
    model = nm.SuperResolution(synthetic_rest(), **SMALL).eval()
    x = torch.randn(2, 60, 3) * 0.2
    with torch.no_grad():
        live, _ = model(x)
        weights = model.neighbour_weights()
        model.freeze()
        frozen, _ = model(x)
        rest, _ = model(torch.zeros(1, 60, 3))
    torch.testing.assert_close(model.frozen_weights, weights, rtol=0, atol=0)
    torch.testing.assert_close(frozen, live, rtol=1e-5, atol=1e-6)
    assert rest.abs().max() == 0  # anchor_rest: g(0) − g(0)
    model.train()
    assert not model.frozen


def test_rest_only_table_is_computed_once_per_forward(monkeypatch):
    model = nm.SuperResolution(synthetic_rest(), **SMALL)
    calls = []
    original = model.neighbour_weights
    monkeypatch.setattr(model, "neighbour_weights", lambda: calls.append(1) or original())
    model(torch.randn(4, 60, 3))
    assert len(calls) == 1
    model.freeze()
    model(torch.randn(4, 60, 3))
    assert len(calls) == 2  # freeze() only


def test_dynamic_knn_finds_the_nearest_other_nodes():
    features = torch.randn(2, 40, 6)
    chunked = nm.feature_knn(features, 5, chunk=2 * 40 * 7)  # several chunks
    dist = torch.cdist(features, features) + torch.eye(40) * 1e9
    expected = dist.topk(5, largest=False).indices
    assert torch.equal(chunked.sort(-1).values, expected.sort(-1).values)


def test_interpolation_gradient_matches_autograd():
    torch.manual_seed(0)
    y = torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True)
    w = torch.rand(5, 4, dtype=torch.float64, requires_grad=True)
    nbr = torch.randint(0, 7, (5, 4))
    assert torch.autograd.gradcheck(lambda a, b: nm._Interpolate.apply(a, b, nbr), (y, w))
    with torch.no_grad():
        torch.testing.assert_close(
            nm._interpolate_plain(y, w, nbr, chunk=2), nm._interpolate_loop(y, w, nbr)
        )


def test_training_reduces_the_loss_and_every_part_gets_gradients():
    torch.manual_seed(0)
    rest = synthetic_rest((4, 3, 2), 60)
    lr = torch.randn(24, len(rest["lr_rest"]), 3) * 0.3
    # a smooth nonlinear skin response to the LR motion: a target only the whole net can fit
    nbr = torch.as_tensor(rest["skin_lr_neighbours"][:, :4])
    skin = lr[:, nbr].mean(2) * 1.5 + 0.3 * torch.sin(lr[:, nbr[:, 0]])
    model = nm.SuperResolution(rest, **SMALL)
    model.fit_normalisation(lr, skin)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    triangles = torch.as_tensor(rest["skin_triangles"])
    skin_rest = model.skin_rest

    def loss_of(batch):
        pred, features = model(lr[batch])
        return (
            nm.l1_loss(pred, skin[batch])
            + 1e-3 * nm.face_normal_loss(pred + skin_rest, skin[batch] + skin_rest, triangles)
            + 1e-3 * nm.feature_norm_loss(features)
        )

    first = loss_of(slice(None)).item()
    for step in range(150):  # full batch: 24 random frames are memorised, not generalised
        optimiser.zero_grad()
        loss = loss_of(slice(None))
        loss.backward()
        if step == 0:
            silent = [
                name for name, p in model.named_parameters() if p.grad is None or not p.grad.any()
            ]
            assert not silent, silent
        optimiser.step()
    last = loss_of(slice(None)).item()
    assert last < 0.35 * first, (first, last)


def test_save_and_load_give_identical_outputs(tmp_path):
    model = nm.SuperResolution(synthetic_rest(), **SMALL, dynamic_graph=True)
    model.fit_normalisation(np.ones((2, 60, 3)) * 0.5, np.ones((2, 200, 3)) * 0.2)
    model(torch.randn(3, 60, 3))  # move the batch-norm statistics
    torch.save({"config": model.model_config(), "state": model.state_dict()}, tmp_path / "m.pt")
    saved = torch.load(tmp_path / "m.pt", weights_only=True)
    again = nm.SuperResolution.from_state(saved["config"], saved["state"])
    assert again.key == "synthetic-lattice" and again.model_config() == model.model_config()
    x = torch.randn(2, 60, 3)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x)[0], model.eval()(x)[0], rtol=0, atol=0)


def test_losses_on_known_values():
    positions = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    triangles = torch.tensor([[0, 1, 2]])
    flipped = positions[:, [0, 2, 1]]
    assert nm.face_normal_loss(positions, positions, triangles).item() == pytest.approx(0.0)
    assert nm.face_normal_loss(flipped, positions, triangles).item() == pytest.approx(2.0)
    assert nm.l1_loss(positions, torch.zeros_like(positions)).item() == pytest.approx(2 / 3)
    features = [torch.full((1, 2, 4), 0.5), torch.full((1, 2, 1), 2.0)]
    assert nm.feature_norm_loss(features).item() == pytest.approx(1.0 + 2.0)
