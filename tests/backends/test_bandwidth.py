"""``max_bandwidth`` really caps a worker's egress: an all-reduce between two workers capped at
100 Mbit/s measures a bus bandwidth between 80 and 100 Mbit/s (HTB in network namespaces)."""

from __future__ import annotations

import json

from tests.backends.local_helpers import LocalServers, post_run, requires_root, wait_for

MiB = 1024 * 1024


@requires_root
def test_allreduce_under_a_100_mbit_cap_measures_80_to_100(local_servers: LocalServers) -> None:
    server = local_servers.start()
    with server.client() as http:
        run = post_run(
            http,
            name="capped all-reduce",
            num_cpus=1,
            max_bandwidth=100,
            benchmark="allreduce",
            options={"sizes_bytes": [2 * MiB, 8 * MiB], "repetitions": 5, "warmup": 1},
        )
        ended = wait_for(
            lambda: (
                (r := http.get(f"/api/runs/{run['id']}/").json())["state"]
                in ("FINISHED", "FAILED", "ABORTED")
                and r
            ),
            what="the all-reduce run to end",
            timeout_s=120,
        )
        assert ended["state"] == "FINISHED", ended["job_metadata"]
        assert (
            ended["job_metadata"]["limits"]["bandwidth_limit"] == "HTB 100 Mbit/s egress per worker"
        )
        series = http.get(
            f"/api/metrics/{run['id']}/",
            params={"metric_type": "run", "metric_filter": "bus_bandwidth_mbit"},
        ).json()["bus_bandwidth_mbit"]
    by_size = {json.loads(p["metadata"])["bytes"]: float(p["value"]) for p in series}
    assert set(by_size) == {2 * MiB, 8 * MiB}
    # The largest message is the bandwidth-bound one (the smaller pays more for latency).
    assert 80 <= by_size[8 * MiB] <= 100, by_size
