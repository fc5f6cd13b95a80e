"""The database edge: connections and identifiers, the package's migrations, reading backups,
writing results and per-object state, the alert store (one public API that the verifier and the
watchdog both use), the notification outbox and repairs. Imports ``domain`` and ``config`` only.
"""
