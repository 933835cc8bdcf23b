"""Quality evaluation of the detectors on labelled data: ``python -m detectors.evaluate --help``.

Datasets are read from ``$DRIFTLOCK_SHARED/datasets`` (default: ``../shared`` beside the repo) and
never copied. Every corpus is scored causally with one configuration and one threshold.
"""
