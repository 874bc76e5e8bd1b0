"""Benchmarks run by ``drive-il bench TARGET``.

Each module here defines ``NAME`` (the target), ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``; ``drive_il.commands.bench``
discovers them. A benchmark prints one line per configuration with its figures and
the ratio to a baseline measured in the same run (machines are shared and noisy; no
absolute timing is asserted in tests).
"""
