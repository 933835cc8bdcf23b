"""The spool writers of the version before the durable FIFO (commit 380c25a), kept verbatim apart from
this note so the upgrade tests produce spools exactly as a running previous gateway left them:

* ``export_spool.Spool``: SQLite table ``export_spool`` (``<data_dir>/export-spool/export-spool.sqlite3``);
* ``anomaly_spool.AnomalySpool``: JSON-lines segments in ``<data_dir>/anomaly-spool``.

Test fixtures only: nothing in ``otlp_gateway`` imports them.
"""
