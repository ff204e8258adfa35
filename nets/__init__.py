"""Super-resolution networks (no bpy): models, baselines, training, numpy inference.

``model`` (torch): the network of Park et al. 2024 and its losses; ``runtime`` (numpy and
ONNX Runtime, torch only to export): model files and inference without torch.
"""
