"""Evaluation and rendering, above models and datasets: the one normalisation (norm.py), the
metrics, the one evaluation function, bounded-memory rendering and tiled encoding."""
