"""RQ5's parts (reasoning under truncation): chain-of-thought prompts, the per-cut measurements and the summary;
the experiment itself is :mod:`visdepth.experiments.reason`."""
