"""Measuring generators: features of the evaluator and the scores built on them."""
