"""The dashboard plugin: ``queries`` (read-only SQL), ``view`` (typed records built from its
rows, which the JSON API returns), ``page`` (the Jinja2 templates, autoescaped, with inline CSS
and SVG) and ``app`` (the FastAPI routes). Imports ``domain``, ``config`` and ``catalog``; only
``plugins/`` imports it. It never runs DDL (the verifier migrates the schema); its pages only
read, and its only writes are the operator's actions on alerts (``catalog.alert_actions``).
"""
