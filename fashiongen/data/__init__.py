"""Datasets: obtaining, verifying and preparing images."""
