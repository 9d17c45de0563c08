"""Detectors, scoring and explanations: pure functions over tables and graphs.

Nothing here imports a store, a web framework or a renderer.
"""
