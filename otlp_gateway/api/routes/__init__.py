"""HTTP routes of the :8080 surface, one module per resource."""
