"""Pure values and decisions: records and kinds, classification, statistics, alert and repair
planning, rotation order, time helpers. Nothing here opens a connection, reads a Variable or
imports anything of ours outside ``domain``, so every decision is tested with plain values.
"""
