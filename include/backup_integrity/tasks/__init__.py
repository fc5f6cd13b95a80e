"""One module per DAG task body (select, verify, repair, record, alert, outcome) and the
watchdog's. The DAG files call only these; they may import every layer except ``dashboard``.
"""
