"""Inference of a trained ``SuperResolution`` without torch: ONNX export and ONNX Runtime.

A model folder holds two files, both written atomically:

- ``model.onnx``: the frozen inference graph. Input ``lr_positions`` (1, N, 3) float32 cm,
  output ``skin_positions`` (1, M, 3) float32 cm; the rest shapes are subtracted and added
  inside the graph and every rest-only part (positional encoding, the (M, K) neighbour
  weight table of the SIREN f_θ, the rest offset g(0), the neighbour tables) is a constant.
- ``model.npz`` (no pickles): ``format_version``, ``key`` (content hash of the LR lattice
  the model was trained on), ``config`` (JSON of ``SuperResolution.model_config()``),
  ``onnx_sha256``, ``lr_count``, ``skin_count``, ``lr_rest``, ``skin_rest``, ``lr_scale``,
  ``skin_scale``, ``skin_lr_neighbours`` and, when given at export, ``skin_vertices``
  (the ICT vertex index of each skin row), and ``state.<name>`` for every entry of the torch
  model's ``state_dict`` (weights and rest tables: ``load_torch_model`` rebuilds the model
  from the folder alone).

``load_model(path, expect_key=...)`` checks both files (present, readable, the format
version, the ONNX file's hash, the key) and raises ``ModelError`` with one line naming the
file and the fix; callers fall back to the embedded skin on it. ``TorchUpsampler`` runs the
torch model with the same call when torch is importable; ``load_torch_model`` makes one
from a model folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..sim.cache import atomic_path
from ..sim.errors import PhysFaceError

FORMAT_VERSION = 1
ONNX_NAME = "model.onnx"
NPZ_NAME = "model.npz"
INPUT_NAME = "lr_positions"
OUTPUT_NAME = "skin_positions"
OPSET = 18
STATE_PREFIX = "state."
_NPZ_FIELDS = (
    "format_version",
    "key",
    "config",
    "onnx_sha256",
    "lr_count",
    "skin_count",
    "lr_rest",
    "skin_rest",
    "lr_scale",
    "skin_scale",
    "skin_lr_neighbours",
)


class ModelError(PhysFaceError):
    """A network model file is missing, truncated, corrupt, of another format or rig."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- export


def export_model(
    model, folder, *, key: str | None = None, skin_vertices=None, opset: int = OPSET
) -> Path:
    """Write ``folder/model.onnx`` and ``folder/model.npz`` for ``model`` (a trained
    ``SuperResolution``; it is frozen and put in eval mode). Returns the npz path."""
    import torch

    from .model import SuperResolution

    if not isinstance(model, SuperResolution):
        raise TypeError("export_model takes a nets.model.SuperResolution")
    key = key if key is not None else model.key
    if not key:
        raise ValueError("export_model needs the LR key (model built without one: pass key=)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = model.freeze()
    graph = _inference_graph(model)
    example = model.lr_rest[None].clone()
    onnx_path, npz_path = folder / ONNX_NAME, folder / NPZ_NAME
    with atomic_path(onnx_path) as tmp:
        with torch.no_grad(), _quiet_exporter():
            program = torch.onnx.export(
                graph,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                verbose=False,
            )
        program.save(str(tmp))
    arrays = dict(
        format_version=np.int64(FORMAT_VERSION),
        key=np.str_(key),
        config=np.str_(json.dumps(model.model_config(), sort_keys=True)),
        onnx_sha256=np.str_(_sha256(onnx_path)),
        lr_count=np.int64(model.lr_count),
        skin_count=np.int64(model.skin_count),
        lr_rest=model.lr_rest.detach().cpu().numpy().astype(np.float32),
        skin_rest=model.skin_rest.detach().cpu().numpy().astype(np.float32),
        lr_scale=model.lr_scale.detach().cpu().numpy().astype(np.float32),
        skin_scale=model.skin_scale.detach().cpu().numpy().astype(np.float32),
        skin_lr_neighbours=model.skin_lr_neighbours.detach().cpu().numpy().astype(np.int64),
    )
    for name, value in model.state_dict().items():
        arrays[f"{STATE_PREFIX}{name}"] = value.detach().cpu().numpy()
    if skin_vertices is not None:
        skin_vertices = np.asarray(skin_vertices, dtype=np.int64)
        if skin_vertices.shape != (model.skin_count,):
            raise ValueError(
                f"skin_vertices must be ({model.skin_count},), not {skin_vertices.shape}"
            )
        arrays["skin_vertices"] = skin_vertices
    with atomic_path(npz_path) as tmp:
        with open(tmp, "wb") as stream:
            np.savez(stream, **arrays)
    return npz_path


@contextlib.contextmanager
def _quiet_exporter():
    """Hide the exporter's notes that are not ours (torchvision absent, deprecations)."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def _inference_graph(model):
    """Positions in, positions out, around a frozen model (batch of one)."""
    import torch

    class InferenceGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, lr_positions):
            skin, _ = self.model(lr_positions - self.model.lr_rest)
            return skin + self.model.skin_rest

    return InferenceGraph().eval()


# ----------------------------------------------------------------------------- loading


def _model_files(path) -> tuple[Path, Path]:
    path = Path(path)
    if path.suffix in (".npz", ".onnx"):
        path = path.parent
    return path / ONNX_NAME, path / NPZ_NAME


def _read_npz(npz_path: Path) -> dict:
    if not npz_path.is_file():
        raise ModelError(
            f"network model file {npz_path} is missing: train and export a model there "
            "(python -m physface train) or choose another model folder"
        )
    try:
        with np.load(npz_path, allow_pickle=False) as stored:
            missing = [name for name in _NPZ_FIELDS if name not in stored.files]
            if missing:
                raise ModelError(
                    f"network model file {npz_path} lacks {', '.join(missing)}: it is not a "
                    "PhysFace model; export the model again"
                )
            return {name: stored[name] for name in stored.files}
    except ModelError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise ModelError(
            f"network model file {npz_path} is truncated or corrupt ({type(error).__name__}): "
            "export or copy the model again"
        ) from None


def _check_meta(meta: dict, npz_path: Path, expect_key: str | None) -> None:
    """Refuse another format version or another LR lattice (one line with the fix)."""
    version = int(meta["format_version"])
    if version != FORMAT_VERSION:
        raise ModelError(
            f"network model file {npz_path} has format version {version}, this PhysFace reads "
            f"version {FORMAT_VERSION}: export the model again with this version"
        )
    key = str(meta["key"])
    if expect_key is not None and key != expect_key:
        raise ModelError(
            f"network model {npz_path} was trained for another LR lattice (key {key[:12]}, "
            f"this rig {expect_key[:12]}): use a model trained on this rig or train one"
        )


def model_lattice(path) -> tuple[str, np.ndarray]:
    """The LR lattice a model folder (or its model.npz / model.onnx) was trained on: its key
    and rest nodes (N, 3) f32 cm, read without loading the rest of the model;
    ``ModelError`` when they cannot be read."""
    _, npz_path = _model_files(path)
    if not npz_path.is_file():
        raise ModelError(f"network model file {npz_path} is missing")
    try:
        with np.load(npz_path, allow_pickle=False) as stored:
            return str(stored["key"]), np.asarray(stored["lr_rest"], np.float32)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise ModelError(
            f"network model file {npz_path} is truncated or corrupt ({type(error).__name__})"
        ) from None


def load_model(path, *, expect_key: str | None = None, threads: int = 2) -> SkinUpsampler:
    """The ONNX Runtime upsampler of the model folder (or its model.npz / model.onnx)."""
    onnx_path, npz_path = _model_files(path)
    meta = _read_npz(npz_path)
    _check_meta(meta, npz_path, expect_key)
    if not onnx_path.is_file():
        raise ModelError(
            f"network model file {onnx_path} is missing: export the model again "
            "(model.onnx and model.npz belong together)"
        )
    if _sha256(onnx_path) != str(meta["onnx_sha256"]):
        raise ModelError(
            f"network model file {onnx_path} is truncated or not the one {npz_path.name} was "
            "written with: export or copy the model folder again"
        )
    return SkinUpsampler(onnx_path, meta, threads=threads)


def load_torch_model(
    path, *, expect_key: str | None = None, device: str | None = None
) -> TorchUpsampler:
    """The torch upsampler of a model folder (same checks as ``load_model``; needs torch)."""
    import torch

    from .model import SuperResolution

    _, npz_path = _model_files(path)
    meta = _read_npz(npz_path)
    _check_meta(meta, npz_path, expect_key)
    state = {
        name[len(STATE_PREFIX) :]: torch.from_numpy(np.array(value))
        for name, value in meta.items()
        if name.startswith(STATE_PREFIX)
    }
    if not state:
        raise ModelError(
            f"network model file {npz_path} holds no torch weights (exported before they were "
            "kept): export the model again, or run it with ONNX Runtime (load_model)"
        )
    config = json.loads(str(meta["config"]))
    try:
        model = SuperResolution.from_state(config, state)
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        raise ModelError(
            f"network model file {npz_path}: its torch weights do not fit its config "
            f"({type(error).__name__}): export the model again"
        ) from None
    return TorchUpsampler(model, skin_vertices=meta.get("skin_vertices"), device=device)


class SkinUpsampler:
    """LR node positions (N, 3) f32 cm → skin positions (M, 3) f32 cm with ONNX Runtime."""

    def __init__(self, onnx_path: Path, meta: dict, *, threads: int = 2):
        import onnxruntime as ort

        self.path = Path(onnx_path)
        self.key = str(meta["key"])
        self.config = json.loads(str(meta["config"]))
        self.skin_vertices = meta.get("skin_vertices")
        self.lr_rest = meta["lr_rest"]
        self.skin_rest = meta["skin_rest"]
        self.skin_lr_neighbours = meta["skin_lr_neighbours"]
        self.lr_count, self.skin_count = int(meta["lr_count"]), int(meta["skin_count"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle intra-op threads would spin for a core after each run, slowing the next
        # frame's simulation on the same cores (measured at default: 32.0 ms alone, 35.3
        # beside a spinning session).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # ORT raises its own Fail/InvalidGraph/... types
            raise ModelError(
                f"network model file {self.path} cannot be loaded by ONNX Runtime "
                f"({type(error).__name__}): export the model again"
            ) from None
        self._input = np.zeros((1, self.lr_count, 3), dtype=np.float32)
        self._output = np.zeros((1, self.skin_count, 3), dtype=np.float32)
        self._binding = self.session.io_binding()
        self._binding.bind_cpu_input(INPUT_NAME, self._input)
        self._binding.bind_output(
            OUTPUT_NAME, "cpu", 0, np.float32, self._output.shape, self._output.ctypes.data
        )

    def __call__(self, lr_positions, out: np.ndarray | None = None) -> np.ndarray:
        """Skin positions (M, 3) f32 cm; written into ``out`` when given, else a new array."""
        lr_positions = np.asarray(lr_positions)
        if lr_positions.shape != (self.lr_count, 3):
            raise ValueError(f"lr_positions must be ({self.lr_count}, 3), not {lr_positions.shape}")
        self._input[0] = lr_positions
        self.session.run_with_iobinding(self._binding)
        if out is None:
            return self._output[0].copy()
        out[...] = self._output[0]
        return out


class TorchUpsampler:
    """The same call as ``SkinUpsampler``, running the (frozen) torch model."""

    def __init__(self, model, *, skin_vertices=None, device: str | None = None):
        import torch

        self.torch = torch
        self.device = torch.device(device) if device else model.lr_rest.device
        self.model = model.to(self.device).freeze()
        self.key = model.key
        self.skin_vertices = None if skin_vertices is None else np.asarray(skin_vertices)
        self.lr_count, self.skin_count = model.lr_count, model.skin_count
        self.lr_rest = model.lr_rest.detach().cpu().numpy().astype(np.float32)
        self._rest_lr = model.lr_rest[None]
        self._rest_skin = model.skin_rest[None]

    def __call__(self, lr_positions, out: np.ndarray | None = None) -> np.ndarray:
        torch = self.torch
        lr_positions = np.asarray(lr_positions, dtype=np.float32)
        if lr_positions.shape != (self.lr_count, 3):
            raise ValueError(f"lr_positions must be ({self.lr_count}, 3), not {lr_positions.shape}")
        with torch.no_grad():
            x = torch.from_numpy(lr_positions).to(self.device)[None] - self._rest_lr
            skin = (self.model(x)[0] + self._rest_skin)[0].cpu().numpy()
        if out is None:
            return skin
        out[...] = skin
        return out
