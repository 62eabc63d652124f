"""Offline replay benchmark of HPO methods on a learning-curve store; built in a later milestone."""
