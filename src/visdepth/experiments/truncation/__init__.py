"""The parts of the truncation experiment (RQ3), one job per module; ``experiments/truncate.py`` puts them
together as the experiment the runner runs."""
