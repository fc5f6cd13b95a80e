"""The dashboard plugin's queries, view model, FastAPI app and Jinja2 templates. Imports
``domain``, ``config`` and ``catalog``; only ``plugins/`` imports it; it never writes.
"""
