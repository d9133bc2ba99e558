"""One module per runtime sub-command of ``pslg`` (see :mod:`pslg.runtime.cli`)."""
