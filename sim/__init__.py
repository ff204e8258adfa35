"""Simulation library (no bpy): face-model import, material space, simulator, datasets."""
