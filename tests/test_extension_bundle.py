"""What the extension zips bundle for the network: ONNX Runtime runs the shipped model without
the requirements the build leaves out, and the build tool leaves out exactly those."""

import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from blender_helpers import load_tool

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL = REPO_ROOT / "models" / "default"
# The left-out requirements' modules, sympy (an onnxruntime extra) and coloredlogs (required by
# older onnxruntime releases).
BLOCKED = ("flatbuffers", "packaging", "google.protobuf", "sympy", "coloredlogs")

RUN_BLOCKED = """
import importlib.abc, json, sys
blocked, model = json.loads(sys.argv[1]), sys.argv[2]


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in blocked):
            raise ImportError(f"{name} is blocked")


sys.meta_path.insert(0, Block())
import numpy as np
import onnxruntime as ort

rest = np.load(f"{model}/model.npz")["lr_rest"]
session = ort.InferenceSession(f"{model}/model.onnx", providers=["CPUExecutionProvider"])
(out,) = session.run(None, {"lr_positions": rest[None].astype(np.float32)})
loaded = [m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in blocked)]
print(json.dumps({"shape": out.shape, "finite": bool(np.isfinite(out).all()), "loaded": loaded}))
"""


def _fake_wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    wheel = folder / f"{name}-{version}-cp311-cp311-win_amd64.whl"
    meta = "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{name}-{version}.dist-info/METADATA", f"Name: {name}\n{meta}")
    return wheel


def test_onnxruntime_runs_the_shipped_model_without_the_left_out_requirements(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", RUN_BLOCKED, json.dumps(BLOCKED), str(MODEL)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    skin_count = int(np.load(MODEL / "model.npz")["skin_count"])  # the model's own rows
    assert result == {"shape": [1, skin_count, 3], "finite": True, "loaded": []}


def test_not_needed_is_exactly_what_the_pinned_onnxruntime_requires_besides_numpy():
    tool = load_tool("build_extension")
    pin = tool.read_pins(["onnxruntime"])["onnxruntime"]
    assert importlib.metadata.version("onnxruntime") == pin
    required = {
        tool.normalize(re.match(r"[A-Za-z0-9_.-]+", r)[0])
        for r in importlib.metadata.requires("onnxruntime")
        if "extra ==" not in r
    }
    assert "onnxruntime" in tool.BUNDLE
    assert set(tool.NOT_NEEDED) == {"onnxruntime"}
    assert set(tool.NOT_NEEDED["onnxruntime"]) == required - tool.BLENDER_SHIPS


def test_collect_wheels_accepts_the_not_needed_requirements_and_refuses_others(tmp_path):
    tool = load_tool("build_extension")
    pins = {"onnxruntime": "9.9.9"}
    needs = ["flatbuffers", "numpy>=1.21.6", "packaging", "protobuf>=4.25.8", 'sympy; extra == "x"']
    wheel = _fake_wheel(tmp_path, "onnxruntime", "9.9.9", needs)
    assert tool.collect_wheels(pins, tmp_path) == [wheel]
    _fake_wheel(tmp_path, "onnxruntime", "9.9.9", [*needs, "coloredlogs"])
    with pytest.raises(tool.BuildError, match="requires coloredlogs"):
        tool.collect_wheels(pins, tmp_path)
