"""Generating learning-curve meta-datasets for finetuning pretrained image models (Quick-Tune)."""

__version__ = "0.1.0"
