"""RQ4 recovery, by job: ``lora`` attaches adapters to the decoder in place and saves / loads them, ``train``
distils the full model into the truncated one, ``adapters`` trains, resumes, reuses or loads every cut's adapter,
``decoding`` generates with several strategies, ``measure`` answers and scores a batch with every model,
``summary`` turns rows into recovered fractions and spreads. :mod:`visdepth.experiments.recover` is the
experiment."""
