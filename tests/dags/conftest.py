"""One parse of ``dags/`` for the whole DAG suite, as the DAG processor would parse it."""

from __future__ import annotations

from typing import Any

import pytest

from devtools.runs import REPO


@pytest.fixture(scope="session")
def dag_bag(airflow_db: str) -> Any:
    """The DagBag of this repository's ``dags/`` folder, parsed once per session.

    Airflow 3's DagBag takes no ``include_examples``: the example DAGs are a bundle of
    their own, which ``load_examples = False`` (set for the test Airflow) keeps out; the
    fixture checks that every DAG it holds comes from ``dags/``.
    """
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    outside = [dag.fileloc for dag in bag.dags.values() if not dag.fileloc.startswith(str(REPO / "dags"))]
    assert outside == [], "only this repository's DAGs are parsed"
    return bag
