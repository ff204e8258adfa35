"""The command line answers bad input with one line and a non-zero exit (issue 16): unknown
verbs, ``--out`` naming a file, impossible dataset settings, Ctrl-C during ``dataset``;
``--debug`` shows the traceback instead."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from children import default_sigint

from physface.__main__ import main
from physface.cli import DEBUG_VARIABLE, error_line
from physface.sim.errors import DataError


@pytest.fixture(autouse=True)
def no_debug(monkeypatch):
    """Each test starts without --debug (main sets the variable; this restores it)."""
    monkeypatch.setenv(DEBUG_VARIABLE, "0")


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def test_unknown_verb_suggests_the_nearest_and_lists_them(capsys):
    assert main(["datset", "--out", "x"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "unknown verb 'datset'" in line and "did you mean 'dataset'?" in line
    assert all(verb in line for verb in ("build-rig", "dataset-report", "muscle-pictures"))
    assert main(["zzz"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "did you mean" not in line and "check-data" in line


@pytest.mark.parametrize(
    "verb", [["dataset"], ["dataset-report", "--data", "."], ["rig-pictures"], ["muscle-pictures"]]
)
def test_out_naming_a_file_is_one_clear_line(tmp_path, capsys, verb):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert main([*verb, "--out", str(target)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("physface: error: --out") and "is a file" in line
    assert "give a folder" in line
    assert target.read_text() == "keep me"


def test_debug_shows_the_traceback(tmp_path):
    from physface.cli import UsageError

    target = tmp_path / "notes.txt"
    target.write_text("")
    with pytest.raises(UsageError, match="is a file"):
        main(["--debug", "dataset", "--out", str(target)])


def test_chunk_frames_zero_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "dataset"
    assert main(["dataset", "--preset", "tiny", "--out", str(out), "--chunk-frames", "0"]) == 1
    line = _one_line(capsys.readouterr().err)
    assert "chunk_frames (--chunk-frames)" in line and "at least 1" in line
    assert not out.exists()


def test_argument_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["dataset", "--out", str(tmp_path), "--max-minutes", "-3"])
    assert exit_.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert "--max-minutes" in line and "greater than 0" in line and "--help" in line


def test_error_line_is_one_line_for_every_kind():
    detailed = DataError("2 task(s) failed, the others are kept: anger hr: boom\nTraceback ...")
    assert error_line(detailed) == (
        "2 task(s) failed, the others are kept: anger hr: boom (--debug shows the details)"
    )
    missing = FileNotFoundError(2, "No such file or directory", "/nowhere/x.npz")
    assert error_line(missing).startswith("No such file or directory: /nowhere/x.npz; check")
    assert "--debug" in error_line(TypeError("bad"))


def test_ctrl_c_during_dataset_keeps_the_frames_and_says_so(tmp_path):
    """Ctrl-C reaches the whole foreground process group (the run and its workers): one
    line, exit 130, the committed frames readable."""
    from physface.sim.dataset_format import dataset_status, read_sequence
    from physface.sim.rig import load_rig

    load_rig("tiny")  # built here on a fresh clone, so the run below starts simulating at once

    out = tmp_path / "dataset"
    command = [
        sys.executable, "-m", "physface", "dataset", "--preset", "tiny", "--out", str(out),
        "--resolutions", "lr", "--sequences", "anger,fear", "--frames", "3000",
        "--chunk-frames", "4", "--workers", "2", "--max-minutes", "1",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=default_sigint,
    )  # fmt: skip
    manifests = [out / name / "lr.json" for name in ("anger", "fear")]
    try:
        for _ in range(600):  # the run has started once a worker has committed a chunk
            if any(path.exists() for path in manifests) or process.poll() is not None:
                break
            time.sleep(0.1)
        assert process.poll() is None, process.communicate()
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == (
        "physface: interrupted; the frames done are kept; run the same command to resume"
    )
    rows = {row["sequence"]: row for row in dataset_status(out) if row["resolution"] == "lr"}
    assert max(rows[name]["done"] for name in ("anger", "fear")) >= 4
    for name in ("anger", "fear"):
        if rows[name]["done"]:
            skin = read_sequence(out, name, "lr")["skin"]
            assert len(skin) == rows[name]["done"] and not rows[name]["complete"]


def test_dataset_status_counts_the_frames_that_reached_the_tolerance():
    from physface.cli.dataset import status_table

    def row(sequence, done, seconds, converged):
        return {"sequence": sequence, "resolution": "hr", "done": done, "frames": 10,
                "complete": done == 10, "seconds_per_frame": seconds, "warnings": 0,
                "converged": converged}  # fmt: skip

    text = status_table([row("anger", 8, 2.0, 6), row("fear", 10, 4.0, 2), row("pain", 0, None, 0)])
    lines = text.splitlines()
    assert lines[1].split()[:5] == ["anger", "hr", "8/10", "2.000", "6"]
    assert lines[-1].startswith("HR: 18/30 frames")
    assert lines[-1].endswith("8/18 (44 %) reached the tolerance")
