"""Looking inside a trained generator: memorisation, per-class view, truncation, interpolation.

Every analysis measures in the evaluator's feature space (the pipeline's
ruler, :mod:`fashiongen.metrics.features`) or in the scoring space of the
evaluate stage, and :mod:`fashiongen.analysis.inspection` runs them all from
the evaluate stage.
"""
