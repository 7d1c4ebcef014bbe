"""Shared helpers: coordinates, checkpoints, devices, errors, registries, rendering."""
