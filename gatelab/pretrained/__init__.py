"""Pretrained models: loading, conversion to gatelab models, and linearization (``linearize``)."""
