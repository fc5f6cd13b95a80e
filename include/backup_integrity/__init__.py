"""The backup-integrity verifier's logic, in layers with one direction of imports.

``domain`` (pure values and decisions) at the bottom; ``config`` (the Variable, params,
connection ids, secrets) above it; the edges ``stores`` (folders and buckets) and ``catalog``
(the database), with ``notify`` (delivery) on the catalog; ``tasks`` (each DAG task's body)
and ``dashboard`` (the plugin's pages) on top. ``docs/architecture.md`` draws the picture and
``tests/unit/test_layers.py`` keeps it so.
"""
