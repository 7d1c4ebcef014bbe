"""Models are data: `make({'name': ..., 'args': {...}})` builds any registered model.
Importing a model file registers it; add new encoders or decoders by importing them here."""
from .registry import MODELS, make, register
from . import (mlp, edsr, rdn, rcan, swinir, liif, metasr, aliif, lte, srno, hiif,  # noqa: F401  (registration)
               lmmlp, lmliif, lmlte)
