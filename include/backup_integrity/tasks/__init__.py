"""One module per DAG task body (select, verify, repair, aggregate, alert, outcome, crash) and the
watchdog's; ``results`` holds what they hand each other, ``metrics`` what they emit, and
``dag_support`` the few config and domain names the DAG files need besides (their params, the
types their tasks return). The DAG files call only these; they may import every layer except
``dashboard``.
"""
