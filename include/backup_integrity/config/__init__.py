"""What the operator configures: the ``backup_integrity`` Variable (validated), the trigger
params, the connection ids, and the credentials those connections carry (registered with
Airflow's secrets masker). Imports only ``domain``.
"""
