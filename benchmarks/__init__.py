"""The project's speed benchmark: ``python -m benchmarks [--sections ...]``.

One module per section and a small shared harness (:mod:`.harness`). Each
section prints its figures as tables, with ratios against a baseline measured
in the same run, and ``--out`` saves them as JSON as they come. Not a part of
the ``medfm`` package, which never imports it.
"""
