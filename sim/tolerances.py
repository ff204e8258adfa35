"""Solver tolerances shared by the simulator, the playback pipeline and the dataset.

Plain constants (no Warp import) so the dataset's numpy-only side and the Blender layer
can read them. The residual is the simulator's (``simulator`` module docstring): the
largest node move of the last plain iteration over the mean rest edge length.
"""

PLAYBACK_TOLERANCE = 2e-3  # live playback, warm-started (benchmarks/bench_simulator.py)
TRAINING_TOLERANCE = 2e-4  # reference frames of the paired dataset

# A reference frame whose iteration stalled above TRAINING_TOLERANCE (a few lip and chin
# nodes cycling between contact states: the residual stays flat for hundreds of iterations
# while the rest of the mesh has settled) is still the fine simulation's answer when its
# residual stays below this; the network's training and evaluation use such frames.
# Measured at ``default`` (closing note of issue 17), the dataset's 100 iterations against
# more from the same state: amazement frame 16 (stalls at 6.9e-3) is within 0.0004 mm mean,
# 0.018 mm max, of 1000 iterations; frame 104 (5.2e-2) within 0.0005 mm mean, 0.049 mm max,
# of 400. In the default dataset 413 of 792 HR frames converge and 791 settle (the one
# left, anger frame 59 at 0.14, is left out of evaluation).
SETTLED_RESIDUAL = 0.1
