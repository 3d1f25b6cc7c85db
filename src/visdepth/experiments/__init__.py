"""The experiments, one module per research question, each filling the contract of ``api.py`` and run by
``runner.py``; importing this package registers every one of them in :data:`EXPERIMENTS`."""

# importing a module registers its experiment (in the order `visdepth run` runs them)
from visdepth.experiments import dynamics, swap, truncate, recover, reason  # noqa: E402, F401, I001
from visdepth.registry import EXPERIMENTS

__all__ = ["EXPERIMENTS"]
