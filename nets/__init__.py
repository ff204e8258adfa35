"""Super-resolution networks (no bpy): models, baselines, training, numpy inference."""
