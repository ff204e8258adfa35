"""The simulation super-resolution network (Park et al. 2024, §3 and Table 4) in torch.

``SuperResolution`` maps LR node displacements from rest ``(B, N, 3)`` cm to skin vertex
displacements from rest ``(B, M, 3)`` cm::

    d (B,N,3) ──/lr_scale──┐
    PE(lr_rest) (N,32) ────┴─ z0 (B,N,35) ─ EdgeConv₁ (geodesic kNN) ─ z1 (B,N,64)
                              ─ EdgeConv₂ (dynamic kNN in feature space) ─ z2 (B,N,128)
    z = [z0, z1, z2] (B,N,227) ─ coordinate-based upsampling over the K=20 geodesic LR
    neighbours of each skin vertex, weights softmax_i f_θ(x_j, x_i, ‖x_i−x_j‖, g_ij)
    ─ SIREN decoder (with x_j) ─ ×skin_scale ─ Δx (B,M,3)

Design decisions (the paper leaves them open):

- Positional encoding: the REST POSITION of each LR node, Transformer-style sines and
  cosines at geometric frequencies. Positions are centred on the LR bounding box and
  divided by its largest half extent (so in [-1, 1]); each axis gets ``encoding // 6``
  octaves ``π·2^f`` (sin and cos), and the 2 dims left at 32 encode the normalised
  distance from the centre at ``π``. It depends on the rest lattice only (a constant
  buffer). The authors' code encodes the vertex index instead; a position is the same
  information for a fixed lattice, but smooth in space.
- EdgeConv (DGCNN): edge function ``h(x_j − x_i, x_i)`` as ``θ·x_j + φ·x_i`` (the same
  linear family, evaluated per node and gathered, 5× cheaper than per edge) → norm →
  LeakyReLU(0.2) → linear, max over the k neighbours. Global max and mean pooling of
  that output over the N nodes are concatenated (by broadcasting) with it and the block
  input and passed through a shared MLP (linear → norm → LeakyReLU → linear).
- Dynamic kNN (second block): squared feature distances ``|a|²+|b|²−2a·b`` in row chunks
  of at most ``knn_chunk`` entries, ``topk(k+1)`` smallest, the first (the node itself,
  distance 0) dropped, as in DGCNN. No gradient flows through the choice of neighbours.
  ``dynamic_graph=False`` reuses the geodesic graph instead (cheaper; an ablation).
- Upsampling: f_θ is a SIREN on 8 inputs — x_j, x_i (normalised like the encoding),
  their Euclidean distance and the geodesic (HR-surface path) distance given with the
  neighbours, both over the same scale — then softmax over the K neighbours. Since the
  upsampled feature only enters the decoder's first linear layer, the features are
  projected by that layer at the N LR nodes and the projections interpolated (exactly
  ``A·Σ w z = Σ w A·z``): 128 instead of 227 values per skin neighbour.
- Decoder: SIREN (sin(w0·(A z_j + C x_j + b)), hidden layers, linear out).
- ``anchor_rest``: the output is ``g(d) − g(0)``, so zero LR displacement gives exactly
  zero skin displacement (the rest frame maps to the rest skin); ``g(0)`` is one more
  batch element in training and a frozen (M,3) table at inference.
- Normalisation: per-axis RMS of LR and skin displacements (buffers ``lr_scale``,
  ``skin_scale``, set by ``fit_normalisation``); inputs are divided, outputs multiplied.
- Rest-only parts: the (M,K) weight table (and the rest offset) are computed ONCE per
  forward call for the whole batch, or taken from buffers after ``freeze()``.

Losses (Eq. 4–7), averaged rather than summed so their weights do not depend on sizes
(the authors' code averages too): ``l1_loss`` + α ``face_normal_loss`` + β
``feature_norm_loss`` with, in Table 4, α = 1e-3 and β raised gradually from 1e-3 to 20;
the schedule is the trainer's.

Rebuild: ``SuperResolution.from_state(model.model_config(), model.state_dict())`` — the
rest arrays are persistent buffers, so a checkpoint is self-contained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REST_ARRAYS = ("lr_rest", "lr_knn", "skin_rest", "skin_lr_neighbours", "skin_lr_distances")
ALPHA_FACE_NORMAL = 1e-3  # Table 4
BETA_FEATURE_NORM = (1e-3, 20.0)  # Table 4: "gradually increased from 0.001 to 20"


# ----------------------------------------------------------------------------- helpers


def positional_encoding(points: torch.Tensor, dims: int) -> torch.Tensor:
    """(N, dims) sin/cos encoding of normalised positions (N, 3) in [-1, 1] (see above)."""
    octaves = dims // 6
    parts = []
    if octaves:
        freqs = math.pi * 2.0 ** torch.arange(octaves, dtype=points.dtype)
        angles = (points[:, :, None] * freqs).reshape(points.shape[0], -1)  # (N, 3·octaves)
        parts += [torch.sin(angles), torch.cos(angles)]
    left = dims - 6 * octaves
    if left:
        radius = points.norm(dim=1, keepdim=True)
        freqs = math.pi * 2.0 ** torch.arange((left + 1) // 2, dtype=points.dtype)
        angles = radius * freqs
        parts += [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts, dim=1)[:, :dims].contiguous()


class Sine(nn.Module):
    def __init__(self, w0: float):
        super().__init__()
        self.w0 = float(w0)

    def forward(self, x):
        return torch.sin(self.w0 * x)


def siren_init_(linear: nn.Linear, *, first: bool, w0: float) -> None:
    """Sitzmann et al. 2020: U(-1/n, 1/n) for the first layer, U(±√(6/n)/w0) after it."""
    fan_in = linear.weight.shape[1]
    bound = 1.0 / fan_in if first else math.sqrt(6.0 / fan_in) / w0
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound)


class Siren(nn.Module):
    """sin(w0·linear) layers then a linear output, with SIREN initialisation."""

    def __init__(self, dims: Sequence[int], w0: float = 30.0):
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(dims))
        for i, linear in enumerate(self.linears):
            siren_init_(linear, first=i == 0, w0=w0)
        self.w0 = float(w0)

    def forward(self, x):
        for linear in self.linears[:-1]:
            x = torch.sin(self.w0 * linear(x))
        return self.linears[-1](x)


class _Norm(nn.Module):
    """BatchNorm over the last (channel) axis of any shape, or nothing."""

    def __init__(self, channels: int, kind: str):
        super().__init__()
        self.norm = nn.BatchNorm1d(channels) if kind == "batch" else None

    def forward(self, x):
        if self.norm is None:
            return x
        return self.norm(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def _gather_nodes(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, N, C), index (N, k) shared or (B, N, k) per sample → (B, N, k, C)."""
    if index.dim() == 2:
        return x[:, index]
    b, n, c = x.shape
    base = (torch.arange(b, device=x.device) * n).view(b, 1, 1)
    return x.reshape(b * n, c)[(index + base).reshape(-1)].reshape(b, n, index.shape[-1], c)


def feature_knn(features: torch.Tensor, k: int, chunk: int = 1 << 24) -> torch.Tensor:
    """(B, N, k) indices of each node's k nearest other nodes in feature space.

    Row i ranks ``|b_j|² − 2 a_i·b_j`` (the squared distance less the row constant
    ``|a_i|²``), one matmul of ``[−2a, 1]`` by ``[b, |b|²]`` per chunk of at most ``chunk``
    entries (B·rows·N), then ``topk(k+1)`` smallest with the first column (the node
    itself) dropped, as in DGCNN. No gradient flows through the choice."""
    with torch.no_grad():
        f = features.detach()
        b, n, _ = f.shape
        ones = f.new_ones(b, n, 1)
        rows_side = torch.cat([-2.0 * f, ones], dim=-1)  # (B, N, C+1)
        cols_side = torch.cat([f, (f * f).sum(-1, keepdim=True)], dim=-1).transpose(1, 2)
        rows = max(1, min(n, chunk // max(1, b * n)))
        found = []
        for start in range(0, n, rows):
            score = rows_side[:, start : start + rows] @ cols_side  # (B, rows, N)
            found.append(torch.topk(score, k + 1, dim=-1, largest=False, sorted=True)[1][..., 1:])
        return found[0] if len(found) == 1 else torch.cat(found, dim=1)


class EdgeConvBlock(nn.Module):
    """One feature-encoding submodule: EdgeConv, global max+mean pooling, shared MLP."""

    def __init__(self, d_in: int, d_out: int, norm: str):
        super().__init__()
        self.theta = nn.Linear(d_in, d_out, bias=False)  # on the neighbour x_j
        self.phi = nn.Linear(d_in, d_out)  # on the centre x_i
        self.edge_norm = _Norm(d_out, norm)
        self.edge_out = nn.Linear(d_out, d_out)
        self.mlp_in = nn.Linear(d_in + 3 * d_out, d_out)
        self.mlp_norm = _Norm(d_out, norm)
        self.mlp_out = nn.Linear(d_out, d_out)
        self.d_in, self.d_out = d_in, d_out

    def forward(self, x: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        edges = _gather_nodes(self.theta(x), neighbours) + self.phi(x)[:, :, None]
        edges = self.edge_out(F.leaky_relu(self.edge_norm(edges), 0.2))
        e = edges.amax(dim=2)  # (B, N, d_out)
        pooled = torch.cat([e.amax(dim=1), e.mean(dim=1)], dim=-1)  # (B, 2·d_out)
        w = self.mlp_in.weight
        d_in, d_out = self.d_in, self.d_out
        h = (
            x @ w[:, :d_in].T
            + e @ w[:, d_in : d_in + d_out].T
            + (pooled @ w[:, d_in + d_out :].T + self.mlp_in.bias)[:, None]
        )
        return self.mlp_out(F.leaky_relu(self.mlp_norm(h), 0.2))


class _Interpolate(torch.autograd.Function):
    """out[b,m] = Σ_k w[m,k] y[b, nbr[m,k]] without keeping the (B,M,K,C) gather."""

    @staticmethod
    def forward(ctx, y, weights, neighbours):
        ctx.save_for_backward(y, weights, neighbours)
        return _interpolate_plain(y, weights, neighbours)

    @staticmethod
    def backward(ctx, grad):
        y, weights, neighbours = ctx.saved_tensors
        grad_y = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_y = torch.zeros_like(y)
            for k in range(neighbours.shape[1]):
                grad_y.index_add_(1, neighbours[:, k], grad * weights[None, :, k, None])
        if ctx.needs_input_grad[1]:
            grad_w = torch.stack(
                [
                    (grad * y[:, neighbours[:, k]]).sum(dim=(0, 2))
                    for k in range(neighbours.shape[1])
                ],
                dim=1,
            )
        return grad_y, grad_w, None


def _interpolate_plain(y, weights, neighbours, chunk: int = 512):
    """No-grad path: per chunk of skin rows one gather (B, c, K, C) and a batched
    (c, 1, K) @ (c, K, C) product (3× faster in ONNX Runtime than K gathers)."""
    parts = []
    for start in range(0, neighbours.shape[0], chunk):
        gathered = y[:, neighbours[start : start + chunk]]  # (B, c, K, C)
        w = weights[start : start + chunk, None, None, :]  # (c, 1, 1, K)
        parts.append((w @ gathered.transpose(0, 1)).squeeze(2).transpose(0, 1))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _interpolate_loop(y, weights, neighbours):
    out = y[:, neighbours[:, 0]] * weights[None, :, 0, None]
    for k in range(1, neighbours.shape[1]):
        out = out + y[:, neighbours[:, k]] * weights[None, :, k, None]
    return out


def interpolate(y: torch.Tensor, weights: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """(B, M, C) = Σ_k weights[:, k] · y[:, neighbours[:, k]] for y (B, N, C)."""
    if torch.is_grad_enabled() and (y.requires_grad or weights.requires_grad):
        return _Interpolate.apply(y, weights, neighbours)
    return _interpolate_plain(y, weights, neighbours)


# ----------------------------------------------------------------------------- the model


def _as_tensor(value, dtype) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to(dtype=dtype).clone()
    return torch.as_tensor(np.asarray(value), dtype=dtype).clone()


class SuperResolution(nn.Module):
    """LR node displacements (B, N, 3) cm → skin displacements (B, M, 3) cm (module doc)."""

    def __init__(
        self,
        rest: dict,
        *,
        encoding: int = 32,
        widths: Sequence[int] = (64, 128),
        k: int = 5,
        upsample_hidden: Sequence[int] | int = (64, 64),
        decoder_hidden: Sequence[int] = (128, 128),
        w0: float = 30.0,
        norm: str = "batch",
        dynamic_graph: bool = True,
        anchor_rest: bool = True,
        knn_chunk: int = 1 << 24,
        key: str | None = None,
    ):
        super().__init__()
        if norm not in ("batch", "none"):
            raise ValueError(f"norm must be 'batch' or 'none', not {norm!r}")
        if isinstance(upsample_hidden, int):
            upsample_hidden = (upsample_hidden, upsample_hidden)
        lr_rest = _as_tensor(rest["lr_rest"], torch.float32)
        lr_knn = _as_tensor(rest["lr_knn"], torch.int64)[:, :k]
        skin_rest = _as_tensor(rest["skin_rest"], torch.float32)
        neighbours = _as_tensor(rest["skin_lr_neighbours"], torch.int64)
        distances = _as_tensor(rest["skin_lr_distances"], torch.float32)
        if lr_knn.shape[1] < k:
            raise ValueError(f"lr_knn has {lr_knn.shape[1]} neighbours per node, k={k} asked")
        if neighbours.shape != distances.shape or neighbours.shape[0] != skin_rest.shape[0]:
            raise ValueError("skin_lr_neighbours, skin_lr_distances and skin_rest disagree")
        self._config = dict(
            encoding=int(encoding),
            widths=[int(w) for w in widths],
            k=int(k),
            upsample_hidden=[int(w) for w in upsample_hidden],
            decoder_hidden=[int(w) for w in decoder_hidden],
            w0=float(w0),
            norm=norm,
            dynamic_graph=bool(dynamic_graph),
            anchor_rest=bool(anchor_rest),
            knn_chunk=int(knn_chunk),
            key=key if key is not None else rest.get("key"),
        )
        self.key = self._config["key"]
        self.k, self.dynamic_graph, self.anchor_rest = int(k), dynamic_graph, anchor_rest
        self.knn_chunk = int(knn_chunk)

        # rest arrays (persistent: a state_dict rebuilds the model on its own)
        self.register_buffer("lr_rest", lr_rest)
        self.register_buffer("lr_knn", lr_knn)
        self.register_buffer("skin_rest", skin_rest)
        self.register_buffer("skin_lr_neighbours", neighbours)
        self.register_buffer("skin_lr_distances", distances)
        low, high = lr_rest.min(0).values, lr_rest.max(0).values
        self.register_buffer("centre", (low + high) / 2)
        self.register_buffer("half_extent", ((high - low).max() / 2).clamp_min(1e-6))
        self.register_buffer("lr_scale", torch.ones(3))
        self.register_buffer("skin_scale", torch.ones(3))
        pe = positional_encoding(self._unit(lr_rest), encoding) if encoding else None
        self.register_buffer(
            "encoding", pe if pe is not None else torch.zeros(len(lr_rest), 0), persistent=False
        )

        dims = [3 + encoding, *widths]
        self.blocks = nn.ModuleList(EdgeConvBlock(a, b, norm) for a, b in pairwise(dims))
        self.feature_dims = sum(dims)
        self.weighting = Siren([8, *upsample_hidden, 1], w0=w0)
        self.decoder = Siren([self.feature_dims + 3, *decoder_hidden, 3], w0=w0)
        self.register_buffer("frozen_weights", None, persistent=False)
        self.register_buffer("frozen_offset", None, persistent=False)

    # -- configuration ------------------------------------------------------------------
    def model_config(self) -> dict:
        """The keyword arguments that rebuild this model (JSON-serialisable)."""
        return dict(self._config)

    @classmethod
    def from_state(cls, config: dict, state_dict: dict) -> SuperResolution:
        """A model rebuilt from ``model_config()`` and ``state_dict()`` alone."""
        rest = {name: state_dict[name] for name in REST_ARRAYS}
        model = cls(rest, **config)
        model.load_state_dict(state_dict)
        return model

    @property
    def lr_count(self) -> int:
        return int(self.lr_rest.shape[0])

    @property
    def skin_count(self) -> int:
        return int(self.skin_rest.shape[0])

    def fit_normalisation(self, lr_disp, skin_disp) -> None:
        """Per-axis RMS of displacements (F, N, 3) and (F, M, 3) cm from training data,
        summed in float64 a frame at a time (no float64 copy of the whole set)."""
        for name, values in (("lr_scale", lr_disp), ("skin_scale", skin_disp)):
            squares, count = torch.zeros(3, dtype=torch.float64), 0
            for frame in values:
                v = _as_tensor(frame, torch.float64).reshape(-1, 3)
                squares += v.pow(2).sum(0)
                count += len(v)
            rms = (squares / max(1, count)).sqrt()
            rms = torch.where(rms > 1e-8, rms, torch.ones_like(rms))
            getattr(self, name).copy_(rms.to(torch.float32))
        self.unfreeze()

    # -- rest-only parts ----------------------------------------------------------------
    def _unit(self, points: torch.Tensor) -> torch.Tensor:
        return (points - self.centre) / self.half_extent

    def neighbour_weights(self) -> torch.Tensor:
        """(M, K) softmax weights over each skin vertex's K LR neighbours: rest-only."""
        xj = self._unit(self.skin_rest)[:, None].expand(-1, self.skin_lr_neighbours.shape[1], -1)
        xi = self._unit(self.lr_rest)[self.skin_lr_neighbours]
        euclid = (xi - xj).norm(dim=-1, keepdim=True)
        geodesic = (self.skin_lr_distances / self.half_extent)[..., None]
        logits = self.weighting(torch.cat([xj, xi, euclid, geodesic], dim=-1))[..., 0]
        return torch.softmax(logits, dim=1)

    def freeze(self) -> SuperResolution:
        """Eval mode with the rest-only tables computed once and kept (inference)."""
        self.eval()
        self.frozen_weights = self.frozen_offset = None
        with torch.no_grad():
            weights = self.neighbour_weights()
            offset = None
            if self.anchor_rest:
                zero = torch.zeros(1, self.lr_count, 3, device=self.lr_rest.device)
                offset = self._decode(self._encode(zero)[0], weights)[0]
        self.frozen_weights, self.frozen_offset = weights, offset
        return self

    def unfreeze(self) -> None:
        self.frozen_weights = self.frozen_offset = None

    @property
    def frozen(self) -> bool:
        return self.frozen_weights is not None

    def train(self, mode: bool = True):
        if mode:
            self.unfreeze()
        return super().train(mode)

    # -- the network --------------------------------------------------------------------
    def _encode(self, lr_disp: torch.Tensor):
        b = lr_disp.shape[0]
        x = torch.cat([lr_disp / self.lr_scale, self.encoding.expand(b, -1, -1)], dim=-1)
        outputs = [x]
        for i, block in enumerate(self.blocks):
            if i == 0 or not self.dynamic_graph:
                graph = self.lr_knn
            else:
                graph = feature_knn(outputs[-1], self.k, self.knn_chunk)
            outputs.append(block(outputs[-1], graph))
        return torch.cat(outputs, dim=-1), outputs[1:]

    def _decode(self, z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        first = self.decoder.linears[0]
        d = self.feature_dims
        projected = z @ first.weight[:, :d].T  # (B, N, H): A·z at the LR nodes
        skin_term = self._unit(self.skin_rest) @ first.weight[:, d:].T + first.bias  # (M, H)
        h = interpolate(projected, weights, self.skin_lr_neighbours) + skin_term
        h = torch.sin(self.decoder.w0 * h)
        for linear in self.decoder.linears[1:-1]:
            h = torch.sin(self.decoder.w0 * linear(h))
        return self.decoder.linears[-1](h) * self.skin_scale

    def forward(self, lr_displacement: torch.Tensor):
        """(B, N, 3) cm → ((B, M, 3) cm, [per-submodule features (B, N, D_s)])."""
        b = lr_displacement.shape[0]
        weights = self.frozen_weights if self.frozen else self.neighbour_weights()
        anchor_now = self.anchor_rest and not self.frozen
        if anchor_now:  # g(0) as one more batch element, with the same weights
            zero = lr_displacement.new_zeros(1, *lr_displacement.shape[1:])
            lr_displacement = torch.cat([lr_displacement, zero])
        z, features = self._encode(lr_displacement)
        out = self._decode(z, weights)
        if anchor_now:
            out = out[:b] - out[b:]
            features = [f[:b] for f in features]
        elif self.anchor_rest:
            out = out - self.frozen_offset
        return out, features


# ----------------------------------------------------------------------------- losses


def l1_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Eq. 4 averaged: mean over samples and vertices of ‖Δx̂ − Δx‖₁ (sum over xyz)."""
    return (pred - true).abs().sum(-1).mean()


def face_normals(positions: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """(B, T, 3) unnormalised normals of triangles (T, 3) over positions (B, M, 3)."""
    a, b, c = (positions[:, triangles[:, i]] for i in range(3))
    return torch.cross(b - a, c - a, dim=-1)


def face_normal_loss(pred_positions, true_positions, triangles, eps: float = 1e-12):
    """Eq. 5 averaged: mean over samples and triangles of 1 − cos(n̂, n)."""
    triangles = torch.as_tensor(triangles, dtype=torch.int64, device=pred_positions.device)
    cos = F.cosine_similarity(
        face_normals(pred_positions, triangles),
        face_normals(true_positions, triangles),
        dim=-1,
        eps=eps,
    )
    return (1.0 - cos).mean()


def feature_norm_loss(features) -> torch.Tensor:
    """Eq. 6 averaged: Σ over submodules of the mean over samples and nodes of ‖z_s,i‖₂."""
    if isinstance(features, torch.Tensor):
        features = [features]
    return sum(f.norm(dim=-1).mean() for f in features)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
