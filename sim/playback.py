"""The playback pipeline: controls of a frame in, positions of every ICT vertex out.

One pure pipeline (no bpy) for the live handler, the bake, the batch render, the
benchmarks and the tests (DESIGN.md, "Layout"): validate the controls once, step the
LR simulator warm-started by the frame rule, run the skin stage, then the eyelid layer
(``sim.eyelids``: the lids on top of whichever skin stage ran). The Blender side only
converts properties to ``Controls`` and writes the positions it gets back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .controls import Controls, validate_controls
from .eyelids import EyelidLayer
from .rig import Rig
from .skin_stage import EmbeddedSkinStage, SkinStage
from .tolerances import PLAYBACK_TOLERANCE


@dataclass
class PlayedFrame:
    """One frame of a head: ``positions`` (V, 3) float32 cm of every ICT vertex (the skin
    stage's buffer: copy to keep), the simulator's ``result`` (StepResult), the controls'
    ``warnings`` (clamped values, ignored springs), ``timings`` in ms per stage and the
    validated ``activations`` (M,) float32 in the rig's muscle order."""

    frame: int
    positions: np.ndarray
    result: object
    warnings: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    activations: np.ndarray | None = None


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

    def reset(self) -> None:
        """Forget the shown frame: the next one starts from rest."""
        self.simulator.reset()
        if self.eyelids is not None:
            self.eyelids.reset()
        self.last_frame = None

    def play(self, frame: int, controls: Controls) -> PlayedFrame:
        """Simulate and skin ``frame`` under ``controls`` (validated here, once)."""
        controls, warnings = validate_controls(controls, self.rig.muscle_names)
        if self.last_frame is None or frame not in (self.last_frame, self.last_frame + 1):
            self.reset()
        clock = time.perf_counter()
        result = self.simulator.advance(controls, warnings)
        simulated = time.perf_counter()
        positions = self.skin_stage(
            result.volume_positions, result.head_transform, result.jaw_transform
        )
        skinned = time.perf_counter()
        activations = result.activations
        if self.eyelids is not None:
            positions = self.eyelids(positions, result.head_transform, activations)
        lidded = time.perf_counter()
        self.last_frame = frame
        timings = {
            "simulation_ms": 1000.0 * (simulated - clock),
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


__all__ = ["HeadPlayer", "PlayedFrame"]
