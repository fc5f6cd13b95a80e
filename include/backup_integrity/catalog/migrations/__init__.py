"""Alembic revisions of the verifier's own tables, run by :mod:`..schema` (no ``alembic.ini``).

Revisions are one chain of plain ids (``0001_baseline``, ``0002_…``) in ``versions/``.
A new one: ``alembic.command.revision(schema.alembic_config(), "what it does",
rev_id="000N_name")``, then write its ``upgrade()``; ``integrity_tables.sql`` must be
brought along (a test compares it with the migrations at head).
"""
