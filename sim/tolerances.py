"""Solver tolerances shared by the simulator, the playback pipeline and the dataset.

Plain constants (no Warp import) so the dataset's numpy-only side and the Blender layer
can read them. The residual is the simulator's (``simulator`` module docstring): the
largest node move of the last plain iteration over the mean rest edge length.
"""

PLAYBACK_TOLERANCE = 2e-3  # live playback, warm-started (benchmarks/bench_simulator.py)
TRAINING_TOLERANCE = 2e-4  # reference frames of the paired dataset
