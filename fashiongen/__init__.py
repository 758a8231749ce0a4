"""FashionGen: a reproducible GAN pipeline for fashion images.

The package imports nothing heavy at the top level, so ``fashiongen --help``
and the stage scripts start fast; torch and friends load inside the functions
that use them.
"""

__version__ = "0.1.0"
