"""Incidents on the gateway's side: what the detection stage's incident updates become.

``sink.py`` turns each decided batch's ``IncidentChange``s into stored incidents (through the anomaly
writer), the ``driftlock_incidents_*`` series, one log line per opening and closing, notifications
(``notify/``: Alertmanager and a signed webhook through persistent outboxes) and, for the score series of
every stream, coalesced bucket writes. ``records.py`` builds the stored form (pure), ``metrics.py`` keeps
the series, ``settings.py`` holds the ``incidents:`` and ``notify:`` configuration.

Nothing is imported here: the configuration imports ``settings`` without the rest.
"""
