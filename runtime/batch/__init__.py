"""Batch runs: a jobs file through a pool of pipelines, on one machine or a Ray cluster, resumable.

``jobs`` reads and checks the jobs file and groups jobs into tasks by image;
``store`` is the results file every run appends to exactly once per job;
``worker`` holds one opened pipeline and runs tasks, writing each job's
outputs atomically; ``engines`` runs workers in this process (``local``) or
as Ray actors (``ray``, the ``[ray]`` extra, imported only when used);
``batch`` ties them together with a progress bar and a summary.
"""
