"""The playback pipeline: controls of a frame in, positions of every ICT vertex out.

One pure pipeline (no bpy) for the live handler, the bake, the batch render, the
benchmarks and the tests (DESIGN.md, "Layout"): validate the controls once, step the
LR simulator warm-started by the frame rule, run the skin stage, then the eyelid layer
(``sim.eyelids``: the lids on top of whichever skin stage ran). The Blender side only
converts properties to ``Controls`` and writes the positions it gets back.

Playing an animation forward, the caller may pass the next frame's controls: with a skin
stage that ``overlaps`` (the network: ONNX Runtime leaves the interpreter free), that
frame's simulation then runs on a second thread beside this frame's skin and lid stages
(the network, the lids and the write of frame f beside the simulation of f + 1), and the next
call takes it when its frame and controls are the ones announced. Otherwise it is
discarded and the simulator goes back to the shown frame's state, so a frame's result is
the same bit for bit with or without the lookahead.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .controls import Controls, same_controls, validate_controls
from .eyelids import EyelidLayer
from .rig import Rig
from .skin_stage import EmbeddedSkinStage, SkinStage
from .tolerances import PLAYBACK_TOLERANCE


@dataclass
class PlayedFrame:
    """One frame of a head: ``positions`` (V, 3) float32 cm of every ICT vertex (the skin
    stage's buffer: copy to keep), the simulator's ``result`` (StepResult), the controls'
    ``warnings`` (clamped values, ignored springs), ``timings`` in ms per stage (the
    simulation's own time, and ``simulation_wait_ms`` this call spent on it: all of it, or
    only the wait for the lookahead that ran beside the last frame's skin) and the
    validated ``activations`` (M,) float32 in the rig's muscle order."""

    frame: int
    positions: np.ndarray
    result: object
    warnings: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    activations: np.ndarray | None = None


@dataclass
class _Lookahead:
    """The next frame's simulation, running: its ``frame``, validated ``controls`` and
    the simulator ``state`` of the shown frame to go back to when it is not taken."""

    frame: int
    controls: Controls
    state: object
    future: Future


class HeadPlayer:
    """Plays one head's LR simulation frame by frame.

    Frame rule: the next frame (``last + 1``) and the same frame again (a control changed)
    continue from the shown state; any other frame (a jump, the first) starts from rest,
    so a frame's result never depends on where the timeline was before a jump.
    ``skin_stage`` defaults to the embedded skin and may be swapped between frames (the
    simulation is kept: the sidebar's fine/coarse switch); ``fps`` sets the time step of
    dynamics; ``material`` the tissue parameters (``sim.simulator.Material``).
    """

    def __init__(
        self,
        rig: Rig,
        skin_stage: SkinStage | None = None,
        *,
        fps: float = 24.0,
        dynamics: bool = False,
        tolerance: float = PLAYBACK_TOLERANCE,
        max_iterations: int = 100,
        device: str = "cpu",
        material=None,
    ):
        from .simulator import Material, Simulator

        self.rig = rig
        self.simulator = Simulator(
            rig,
            "lr",
            device=device,
            dynamics=dynamics,
            time_step=1.0 / fps,
            tolerance=tolerance,
            max_iterations=max_iterations,
            material=material if material is not None else Material(),
        )
        self.embedded_stage = EmbeddedSkinStage(rig)
        self.skin_stage = skin_stage if skin_stage is not None else self.embedded_stage
        self.eyelids = EyelidLayer(rig) if rig.lids is not None else None
        self.last_frame: int | None = None
        self._ahead: _Lookahead | None = None
        self._thread: ThreadPoolExecutor | None = None

    def reset(self) -> None:
        """Forget the shown frame: the next one starts from rest."""
        self._finish_lookahead()
        self.simulator.reset()
        if self.eyelids is not None:
            self.eyelids.reset()
        self.last_frame = None

    def play(
        self, frame: int, controls: Controls, next_controls: Controls | None = None
    ) -> PlayedFrame:
        """Simulate and skin ``frame`` under ``controls`` (validated here, once);
        ``next_controls``: frame + 1's, whose simulation starts before this frame's skin."""
        controls, warnings = validate_controls(controls, self.rig.muscle_names)
        clock = time.perf_counter()
        taken = self._take_lookahead(frame, controls)
        if taken is None:
            if self.last_frame is None or frame not in (self.last_frame, self.last_frame + 1):
                self.reset()
            result, simulation_ms = self._simulate(controls, warnings)
        else:
            result, simulation_ms = taken
        self.last_frame = frame
        if next_controls is not None and getattr(self.skin_stage, "overlaps", False):
            self._look_ahead(frame + 1, next_controls)
        simulated = time.perf_counter()
        positions = self.skin_stage(
            result.volume_positions, result.head_transform, result.jaw_transform
        )
        skinned = time.perf_counter()
        activations = result.activations
        if self.eyelids is not None:
            positions = self.eyelids(positions, result.head_transform, activations)
        lidded = time.perf_counter()
        timings = {
            "simulation_ms": simulation_ms,
            "simulation_wait_ms": 1000.0 * (simulated - clock),
            "skin_ms": 1000.0 * (skinned - simulated),
            "eyelids_ms": 1000.0 * (lidded - skinned),
            "iterations": result.iterations,
            "residual": result.residual,
        }
        return PlayedFrame(frame, positions, result, result.warnings, timings, activations)

    def play_range(self, frames, controls_at, cancelled=None):
        """Yield a PlayedFrame for each frame of ``frames`` (ascending) with the controls
        ``controls_at(frame)`` gives; stop early when ``cancelled()`` turns true."""
        for frame in frames:
            if cancelled is not None and cancelled():
                return
            yield self.play(frame, controls_at(frame))

    # --- the next frame's simulation beside this frame's skin -----------------------------

    def _look_ahead(self, frame: int, controls: Controls) -> None:
        """Start simulating ``frame`` (the shown frame + 1) under ``controls`` on the
        player's second thread; an invalid control is left for that frame's own call."""
        try:
            controls, warnings = validate_controls(controls, self.rig.muscle_names)
        except Exception:
            return
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="physface-lookahead")
        state = self.simulator.state()
        future = self._thread.submit(self._simulate, controls, warnings)
        self._ahead = _Lookahead(frame, controls, state, future)

    def _simulate(self, controls: Controls, warnings: list[str]) -> tuple:
        """One LR step → (StepResult, its wall time in ms)."""
        clock = time.perf_counter()
        result = self.simulator.advance(controls, warnings)
        return result, 1000.0 * (time.perf_counter() - clock)

    def _take_lookahead(self, frame: int, controls: Controls):
        """The lookahead's (StepResult, ms) when it simulated this frame under these
        controls (validated), else None with the simulator back at the shown frame's state."""
        ahead = self._finish_lookahead()
        if ahead is None:
            return None
        announced = frame == ahead.frame and same_controls(controls, ahead.controls)
        try:
            result = ahead.future.result()
        except Exception:
            if announced:
                raise  # the frame's own simulation failed: the caller reports it
            result = None
        if result is not None and announced:
            return result
        self.simulator.set_state(ahead.state)
        return None

    def _finish_lookahead(self) -> _Lookahead | None:
        """Wait for a running lookahead and hand it over (None when there is none)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.future.exception()  # wait; its error, if any, is the taker's to raise
        return ahead


__all__ = ["HeadPlayer", "PlayedFrame"]
