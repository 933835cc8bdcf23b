"""Durable queues on local disk: one FIFO format, one retry schedule, one consumer loop, the disk budget.

    fifo = DurableFifo(path, name="export-spool")      # group commit + fsync before append returns
    await fifo.open(); entry = await fifo.append(tag, payload, count)
    worker = RetryWorker(fifo, deliver, retry_settings, name="exporter-sender", concurrency=8)
    worker.start(); ...; await worker.stop(); await fifo.close()
    budget = DataDirBudget(data_dir, budget_bytes, metrics); budget.check()   # refuse ingest when full

Used by the exporter (export queue) and the anomaly writer (anomaly spool).
"""

from otlp_gateway.durable.backoff import Backoff, RetrySettings
from otlp_gateway.durable.budget import DataDirBudget, DataDirFullError
from otlp_gateway.durable.errors import FifoError
from otlp_gateway.durable.fifo import DurableFifo, Entry
from otlp_gateway.durable.worker import RetryWorker

__all__ = [
    "Backoff",
    "DataDirBudget",
    "DataDirFullError",
    "DurableFifo",
    "Entry",
    "FifoError",
    "RetrySettings",
    "RetryWorker",
]
