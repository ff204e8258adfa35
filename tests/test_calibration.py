"""The rig's range against real faces (sim/calibration.py, data/action_units.toml): the
targets file is read and checked, each calibrated action moves its key point the published
way on the tiny rig, verdicts compare with the published range, and the CLI writes its report."""

import json
import subprocess
import sys

import numpy as np
import pytest

from physface.sim.calibration import (
    ActionTarget,
    _verdict,
    full_strength_inversions,
    load_action_targets,
    measure_actions,
)
from physface.sim.errors import DataError
from physface.sim.face_model import load_face_model
from physface.sim.rig import load_rig


def test_the_targets_name_known_units_and_skin_points():
    from physface.sim.performances import load_performance_book, unit_activations

    book = load_performance_book()
    face = set(load_face_model().region("face").tolist())
    targets = load_action_targets()
    assert len(targets) >= 10
    for target in targets:
        assert target.key_point in face, target.name
        assert unit_activations(book, target.units), target.name  # reaches a muscle
        assert np.isclose(np.linalg.norm(target.direction), 1.0)
    ranged = [t for t in targets if t.range_mm is not None]
    assert all(t.source for t in ranged) and len(ranged) >= 3


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[a]\nunits = {AU1 = 1.0}\nkey_point = 1\nmeasure = "far"\ndirection = [0, 1, 0]\n',
         "measure must be"),
        ('[a]\nunits = {AU1 = 1.0}\nkey_point = 1\nmeasure = "along"\ndirection = [0, 0, 0]\n',
         "direction"),
        ('[a]\nunits = {AU1 = 1.0}\nkey_point = 1\nmeasure = "along"\ndirection = [0, 1, 0]\n'
         "range_mm = [5, 2]\n", "range_mm"),
        ('[a]\nunits = {AU1 = 1.0}\nkey_point = 1\nmeasure = "gap"\ndirection = [0, 1, 0]\n',
         "other"),
        ("[a\n", "cannot be read"),
    ],
)  # fmt: skip
def test_a_bad_targets_file_names_the_problem(tmp_path, text, problem):
    path = tmp_path / "action_units.toml"
    path.write_text(text)
    with pytest.raises(DataError, match=problem):
        load_action_targets(path)


def test_verdicts_compare_with_the_published_range():
    target = ActionTarget(
        "t", {"AU1": 1.0}, 0, "along", np.array([0.0, 1.0, 0.0]), (6.0, 13.0), "s"
    )
    assert _verdict(target, 2.0, 2.0) == "below"
    assert _verdict(target, 8.0, 8.0) == "within"
    assert _verdict(target, 14.0, 14.0) == "above"
    assert _verdict(target, 8.0, -1.0) == "opposite"
    unranged = ActionTarget("u", {"AU1": 1.0}, 0, "along", target.direction, None, "")
    assert _verdict(unranged, 3.0, 3.0) == "no range"


def test_each_calibrated_action_moves_its_key_point_the_published_way_on_tiny():
    rig = load_rig("tiny", with_hr=False)
    results = {r.target.name: r for r in measure_actions(rig)}
    for name, result in results.items():
        target = result.target
        if target.range_mm is not None and target.in_rig:
            # tiny's 2.4 cm lattice moves a key point a fraction of default's: 0.5 mm
            assert result.along_mm > 0.5, (name, result.displacement_mm)
    smile = results["smile_corner"]
    assert smile.displacement_mm[0] > 0 and smile.displacement_mm[1] > 0  # lateral and up
    # The lids do not depend on the lattice (sim/eyelids.py): the full published low end.
    assert results["blink"].verdict == "within", results["blink"].value_mm
    assert results["widen"].along_mm > 1.5
    # The peripheral orbicularis oris funnels the upper lip forward (tiny 0.20 mm, default
    # 1.82); with one ring for the whole sphincter it went back like a pucker.
    assert results["funnel_lips"].along_mm > 0.1, results["funnel_lips"].displacement_mm
    inverted, elements = full_strength_inversions(rig)
    assert elements == len(rig.lr.tets) and 0 <= inverted < elements // 100


def test_the_command_prints_the_table_and_writes_its_report(tmp_path):
    command = [sys.executable, "-m", "physface", "action-units", "--preset", "tiny"]
    result = subprocess.run(
        [*command, "--out", str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "brow_raise" in result.stdout and "elements inverted" in result.stdout
    report = json.loads((tmp_path / "action_units_tiny.json").read_text())
    names = {row["name"] for row in report["actions"]}
    assert {"brow_raise", "smile_corner", "blink", "widen"} <= names
    assert report["elements"] > 0
