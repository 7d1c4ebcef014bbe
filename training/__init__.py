"""Training, above models, datasets and inference: the config schema, resumable state, data
loaders, distributed helpers, the epoch loop, the run folder, and `trainer.train`."""
