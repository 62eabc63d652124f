"""Offline replay benchmark of HPO methods on a learning-curve store.

The core (task, replay, methods without torch, metrics) imports neither torch nor timm.
"""
