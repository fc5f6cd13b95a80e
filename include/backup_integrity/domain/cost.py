"""What a run's requests to each store cost, in US dollars, from the ``prices`` the Variable gives.

Every request the run counted is priced by its class: listings, HEADs (and the
bucket probe's configuration reads), GETs, and writes (PUT, copy; any kind not
known here is priced as a write, the dearer class). Bytes read are priced as
egress per GB (10^9 bytes). Free tiers are not modelled: the figure is what the
requests would cost beyond them. A store without prices counts 0 and is named
as unpriced. Pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The price that applies to each counted request kind (S3 and local ones alike).
PRICE_OF_KIND = {
    "list": "list_per_million",
    "scandir": "list_per_million",
    "head": "head_per_million",
    "stat": "head_per_million",
    "bucket_config": "head_per_million",
    "get": "get_per_million",
    "read": "get_per_million",
    "put": "put_per_million",
    "copy": "put_per_million",
}
WRITE_PRICE = "put_per_million"
BYTES_PER_GB = 10**9

#: Runs in 30 days of the hourly schedule: the projection while there is less history.
RUNS_PER_30_DAYS = 720


def request_cost(kind: str, count: int, prices: Mapping[str, float]) -> float:
    return count * prices.get(PRICE_OF_KIND.get(kind, WRITE_PRICE), 0.0) / 1_000_000


def estimate_cost(
    requests: Mapping[str, Mapping[str, int]],
    bytes_read: Mapping[str, int],
    prices: Mapping[str, Mapping[str, float] | None],
) -> tuple[dict[str, float], list[str]]:
    """({store: dollars, ..., "total": dollars}, the stores that had requests but no prices)."""
    costs: dict[str, float] = {}
    unpriced: list[str] = []
    for store in sorted(set(requests) | set(bytes_read)):
        store_prices = prices.get(store)
        if not store_prices:
            costs[store] = 0.0
            if any(requests.get(store, {}).values()) or bytes_read.get(store):
                unpriced.append(store)
            continue
        dollars = sum(request_cost(k, n, store_prices) for k, n in requests.get(store, {}).items())
        dollars += bytes_read.get(store, 0) / BYTES_PER_GB * store_prices.get("egress_per_gb", 0.0)
        costs[store] = round(dollars, 12)
    costs["total"] = round(sum(costs.values()), 12)
    return costs, unpriced


def projected_30_days(recent_costs: list[float], history_days: float) -> float:
    """A store's cost over 30 days: the last 30 days of runs, or the last run times 720 with less history."""
    if not recent_costs:
        return 0.0
    if history_days >= 30:
        return round(sum(recent_costs), 6)
    return round(recent_costs[-1] * RUNS_PER_30_DAYS, 6)
