"""Evaluation: metrics, the held-out evaluation, embedding maps, model cards."""
