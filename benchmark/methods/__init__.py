"""HPO methods of the benchmark, each a factory ``(view, seed, context, **options) -> Optimizer``.

Nothing is imported here: :mod:`benchmark.registry` imports a method's module when it is used, so
torch-based methods (DyHPO, Quick-Tune) stay out of the torch-free core.
"""
