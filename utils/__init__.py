"""The bottom layer: generic helpers that import nothing of the project (errors and the CLI
wrapper, the registry, YAML and config checks, devices, precision, coordinates, atomic files,
checkpoint files, image files)."""
