"""Research at scale: a backtest sweep as work units, run in local processes or on a Dask
cluster, with inputs and outputs on any pyarrow filesystem.

==============  =========================================================================
``shards``      a work unit's slice of the input (a UTC day, an instrument) and the
                filters that select it while the task reads
``scan``        which days and instruments inputs hold (what the shards of a sweep are)
``locations``   plain paths, ``file://``, ``s3://``, ``gs://``: staging inputs, publishing
                a task's results under a temporary name, then renaming
``task``        what runs on a worker: one backtest of one (parameters, shard) pair
``runners``     where tasks run: a local process pool or a Dask ``Client``
``sweep``       planning, running with a progress bar over tasks, and gathering
                ``sweep.json``/``sweep.md``
==============  =========================================================================

Nothing here imports Dask unless a sweep is given ``--cluster``.
"""
