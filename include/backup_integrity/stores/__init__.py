"""Where the copies live: the store interface, the local folder, S3-compatible buckets, the
circuit breaker that stops asking a store that keeps failing, and the preflight checks of the
configured roots and buckets. Imports ``domain`` and ``config`` only.
"""
