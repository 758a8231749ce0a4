"""The pipeline's stages: one module per DVC stage, named after it, that its script in ``stages/`` calls.

``download``, ``preprocess``, ``train_evaluator``, ``train_encoder``, ``encode``,
``train`` and ``evaluate``: each reads its inputs, calls the library below it
(:mod:`fashiongen.data`, :mod:`fashiongen.gan`, :mod:`fashiongen.evaluation`, ...)
and writes its outputs. Nothing in the library imports these modules.
"""
