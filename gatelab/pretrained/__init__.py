"""Pretrained models: loading, conversion to gatelab models, and their retrofits."""
