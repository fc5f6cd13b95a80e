"""Delivering queued notices through Apprise, target by target, from the catalog's outbox.
Imports ``catalog``, ``domain`` and ``config``.
"""
