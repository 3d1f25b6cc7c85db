"""RQ4 recovery, by job: ``lora`` attaches adapters to the decoder in place and saves / loads them, ``train``
distils the full model into the truncated one, ``decoding`` generates with several strategies, ``summary``
turns rows into recovered fractions and spreads. :mod:`visdepth.experiments.recover` is the experiment."""
