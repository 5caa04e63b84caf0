"""The collector load test in a bounded form (issue 8): a burst of metric posts from several
client processes against the real collector and Redis, with Redis writes paused mid-run.
Checks what must hold whatever the machine's speed: back-pressure was answered with 429s,
no metric was lost or stored twice, and the collector's memory did not keep growing."""

from __future__ import annotations

from bench.collector_load import MIB, run


def test_collector_sustains_a_burst_with_bounded_memory_and_no_loss() -> None:
    result = run(seconds=6, processes=2, threads=5, trials=20, pause=2.0)
    print(
        f"\n{result['metrics_per_s']:.0f} metrics/s, p99 {result['p99_ms']:.1f} ms, "
        f"peak RSS {result['rss_peak_mib']:.1f} MiB, growth {result['rss_growth_mib']:+.1f} MiB, "
        f"{result['answered_429_or_503']} answered 429/503"
    )
    assert result["metrics_accepted"] > 0
    # 10 connections, 6 write slots, writes paused for longer than the saturation patience.
    assert result["answered_429_or_503"] > 0
    assert result["lost"] == 0
    assert result["duplicates_answered"] == 0
    assert result["stored_in_redis"] == result["metrics_accepted"]
    assert result["rss_bounded"], result["rss_samples"]
    assert result["rss_peak_mib"] * MIB < 300 * MIB
