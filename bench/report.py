"""Results to Markdown tables, target checks and matplotlib PNGs.

    .venv/bin/python -m bench.report bench/results/full [--docs docs/benchmarks.md]

re-renders the tables and plots from a results file without running anything.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"

LABELS = {
    "ceiling": "Ceiling (bare FastAPI, 20 posts from memory)",
    "ceiling_db1": "Ceiling + Kith's feed query (asyncpg)",
    "ceiling_db": "Ceiling + Kith's 2 feed statements (asyncpg)",
    "floor_data_layer": "Kith's feed query through its data layer only (SQLAlchemy, read model)",
    "feed_p1": "Feed, page 1",
    "feed_deep": "Feed, deep page (cursor)",
    "post_view": "Post with comments (post, then comments)",
    "create_post": "Create post",
    "like_unlike": "Like and unlike",
    "comment": "Comment",
    "friend": "Friend request and accept",
    "mixed": "Mix: 80 % reads, 20 % writes",
    "login": "Login",
}
MAIN = "postgres"
SMALL = "postgres_small"
TIMELINES = "postgres_timelines_1"  # the feed's Redis timelines on


def _find(results: dict[str, Any], config: str, scenario: str) -> dict[str, Any] | None:
    for item in results["measurements"]:
        if item["config"] == config and item["scenario"] == scenario:
            found: dict[str, Any] = item
            return found
    return None


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.0f} %"


def _check(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "**missed**")


# Write throughput on PostgreSQL (1 worker) in the recorded run before the request-path work
# (commit c86bfbd, docs/benchmarks.md history): the "2x today's throughput" target's base.
WRITES_BEFORE = {"create_post": 206.0, "like_unlike": 132.0, "comment": 99.0}


def _feed_targets(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    feed, one_query = _find(results, MAIN, "feed_p1"), _find(results, MAIN, "ceiling_db1")
    if feed and one_query:
        ratio = feed["rps"] / one_query["rps"]
        rows.append(
            (
                "Feed page 1 on PostgreSQL (1 worker) ≥ 50 % of the one-query round-trip ceiling",
                f"{_ratio(ratio)} ({feed['rps']:,.0f} vs {one_query['rps']:,.0f} req/s)",
                _check(ratio >= 0.5),
            )
        )
    floor = _find(results, MAIN, "floor_data_layer")
    if floor and one_query:
        # The proof of reach: the same query through Kith's data layer, nothing else around it.
        ratio = floor["rps"] / one_query["rps"]
        rows.append(
            (
                "(Reach) the same query through Kith's data layer alone, of the one-query ceiling",
                f"{_ratio(ratio)} ({floor['rps']:,.0f} req/s, {floor['cpu_ms_per_request']:.2f} ms)",
                "measured",
            )
        )
    if feed:
        rows.append(
            (
                "Feed page 1 on PostgreSQL: ≤ 2 ms of server CPU per page",
                f"{feed['cpu_ms_per_request']:.2f} ms",
                _check(feed["cpu_ms_per_request"] <= 2),
            )
        )
    lite = _find(results, "sqlite", "feed_p1")
    if feed and lite:
        ratio = lite["cpu_ms_per_request"] / feed["cpu_ms_per_request"]
        rows.append(
            (
                f"SQLite feed page 1 at {_posts(results, 'sqlite'):,} posts within 2× of PostgreSQL's CPU per page",
                f"{ratio:.2f}× ({lite['cpu_ms_per_request']:.2f} vs {feed['cpu_ms_per_request']:.2f} ms)",
                _check(ratio <= 2),
            )
        )
        statement = results["machine"].get("sqlite_page_statement_ms")
        if statement is not None and ratio > 2:
            # The proof of reach: SQLite's own work for the page, before Kith does anything.
            rows.append(
                (
                    "(Reach) SQLite's page statement alone (sqlite3, same data), of PostgreSQL's whole page",
                    f"{statement / feed['cpu_ms_per_request']:.2f}× ({statement:.2f} ms)",
                    "measured",
                )
            )
    base = _find(results, SMALL, "feed_p1")
    if base and SMALL in results["configs"] and MAIN in results["configs"]:
        small, main = _posts(results, SMALL), _posts(results, MAIN)
        for config, scenario, label in (
            (SMALL, "feed_deep", f"Feed deep page at {small:,} posts"),
            (MAIN, "feed_p1", f"Feed page 1 at {main:,} posts"),
            (MAIN, "feed_deep", f"Feed deep page at {main:,} posts"),
        ):
            other = _find(results, config, scenario)
            if other:
                ratio = other["p50_ms"] / base["p50_ms"]
                rows.append(
                    (
                        f"{label}: p50 within 1.5× of page 1 at {small:,} posts",
                        f"{ratio:.2f}× ({other['p50_ms']:.2f} vs {base['p50_ms']:.2f} ms)",
                        _check(ratio <= 1.5),
                    )
                )
    return rows


def _write_targets(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for scenario, before in WRITES_BEFORE.items():
        item = _find(results, MAIN, scenario)
        if item:
            rows.append(
                (
                    f"{LABELS[scenario]} on PostgreSQL ≥ 2× the {before:,.0f} req/s before",
                    f"{item['rps'] / before:.2f}× ({item['rps']:,.0f} req/s)",
                    _check(item["rps"] >= 2 * before),
                )
            )
    for scenario in WRITES_BEFORE:
        item = _find(results, "sqlite", scenario)
        if item:
            rows.append(
                (
                    f"{LABELS[scenario]} on SQLite, 16 connections: p99 < 250 ms",
                    f"{item['p99_ms']:.1f} ms",
                    _check(item["p99_ms"] < 250),
                )
            )
    growth = {(item["config"], item["friends"]): item for item in results.get("write_growth", [])}
    fan_out = growth.get((TIMELINES, 2000))
    if fan_out and fan_out.get("helper_cpu_ms_per_request") is not None:
        rows.append(
            (
                "Fan-out job at 2,000 friends: ≤ 5 ms of CPU per post",
                f"{fan_out['helper_cpu_ms_per_request']:.2f} ms",
                _check(fan_out["helper_cpu_ms_per_request"] <= 5),
            )
        )
    push = results["machine"].get("fanout_push")
    if push:
        rows.append(
            (
                f"(Reach) the push alone to {push['readers']:,} timelines ({push['warm']:,} warm), no job around it",
                f"{push['cpu_ms']:.2f} ms",
                "measured",
            )
        )
    without = _find(results, MAIN, "create_post")
    for config, label in (
        ("postgres_redis_1", "Create post with Redis at least as fast as without (one pinned worker each)"),
        ("postgres_redis", "Create post with Redis, two workers, against one worker without"),
    ):
        with_redis = _find(results, config, "create_post")
        if with_redis and without:
            rows.append(
                (
                    label,
                    f"{with_redis['rps']:,.0f} vs {without['rps']:,.0f} req/s",
                    _check(with_redis["rps"] >= without["rps"]),
                )
            )
    # Why the timelines are off by default: what they cost a post and a page, in this run.
    for scenario in ("create_post", "feed_p1"):
        on, off = _find(results, TIMELINES, scenario), _find(results, "postgres_redis_1", scenario)
        if on and off:
            rows.append(
                (
                    f"(Choice) {LABELS[scenario]} with Redis timelines on, against off (one pinned worker each)",
                    f"{on['rps']:,.0f} vs {off['rps']:,.0f} req/s, "
                    f"{on['cpu_ms_per_request']:.2f} vs {off['cpu_ms_per_request']:.2f} ms of CPU",
                    "measured",
                )
            )
    two, one = _find(results, "postgres_redis", "feed_p1"), _find(results, MAIN, "feed_p1")
    if two and one:
        ratio = two["rps"] / one["rps"]
        rows.append(
            (
                "Feed page 1: two workers (PostgreSQL + Redis) ≥ 1.6× one worker",
                f"{ratio:.2f}× ({two['rps']:,.0f} vs {one['rps']:,.0f} req/s)",
                _check(ratio >= 1.6),
            )
        )
    two_floor, one_floor = (
        _find(results, "postgres_redis", "ceiling_db1"),
        _find(results, MAIN, "ceiling_db1"),
    )
    if two_floor and one_floor:
        # The proof of reach: the same two workers, making only the feed's one query.
        rows.append(
            (
                "(Reach) the one-query ceiling: two workers of one",
                f"{two_floor['rps'] / one_floor['rps']:.2f}× "
                f"({two_floor['rps']:,.0f} vs {one_floor['rps']:,.0f} req/s)",
                "measured",
            )
        )
    return rows


def targets(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for every target of the issue that the run covers."""
    rows = _feed_targets(results) + _write_targets(results)
    for config, flood in results.get("login_flood", {}).items():
        rows.append(
            (
                f"Feed p99 during a login flood ≤ 2× without ({config})",
                f"{flood['p99_ratio']:.2f}× ({flood['during_login_flood']['p99_ms']:.1f} vs "
                f"{flood['alone']['p99_ms']:.1f} ms)",
                _check(flood["p99_ratio"] <= 2),
            )
        )
    for config in results["configs"]:
        item = _find(results, config, "mixed")
        if item:
            rows.append(
                (
                    f"Peak RSS per worker under the mixed load < 250 MB ({config})",
                    f"{item['peak_rss_mb']:.0f} MB",
                    _check(item["peak_rss_mb"] < 250),
                )
            )
    errors = sum(item["unexpected"] for item in results["measurements"])
    errors += sum(item["unexpected"] for item in results.get("write_growth", []))
    for flood in results.get("login_flood", {}).values():
        errors += flood["alone"]["unexpected"] + flood["during_login_flood"]["unexpected"]
        errors += flood.get("logins", {}).get("unexpected", 0)
    rows.append(("No unexpected statuses or socket errors in any scenario", str(errors), _check(errors == 0)))
    return rows


def markdown(results: dict[str, Any], images: str) -> str:
    machine = results["machine"]
    lines = [
        f"Run `{results['profile']}` with {results['server']}, {results['started_at']} to "
        f"{results['finished_at']}, commit `{machine['commit']}`"
        + (f" (Kith measured from {machine['kith_source']})" if "kith_source" in machine else "")
        + ".",
        "",
        f"Machine: {machine['cpus']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}, {machine['wrk']}. Pinning: {machine['pinning']}. "
        f"1-minute load average before the run: {results['load_average_before'][0]:.2f}.",
        "",
    ]
    trip = machine.get("postgres_round_trip")
    if trip:
        lines += [
            f"One trivial PostgreSQL round trip (asyncpg `SELECT 1`, measured at the start): "
            f"{trip['client_cpu_us']:.0f} µs of client CPU, {trip['wall_us']:.0f} µs wall.",
            "",
        ]
    lines += [
        "### Configurations",
        "",
        "| configuration | data set | workers | server CPUs | wrk | connections | seconds (+ warm-up) | load avg at start |",
        "|---|---|---:|---|---|---:|---|---:|",
    ]
    for key, config in results["configs"].items():
        spec = json.loads(config["data_set"].split(" ", 1)[1])
        lines.append(
            f"| {key}: {config['label']} | {spec['users']:,} users, {spec['friends']} friends, "
            f"{spec['posts']:,} posts | {config['workers']} | {config['server_cpus']} | CPU {config['load_cpus']} "
            f"| {config['connections']} | {config['duration_s']:g} (+{config['warmup_s']:g}) "
            f"| {config['load_average_at_start'][0]:.2f} |"
        )
    lines += ["", "### Scenarios", ""]
    lines += [
        "| configuration | scenario | req/s | of ceiling | p50 ms | p99 ms | server CPU ms/req | peak RSS/worker MB "
        "| unexpected |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for item in results["measurements"]:
        lines.append(
            f"| {item['config']} | {LABELS.get(item['scenario'], item['scenario'])} | {item['rps']:,.0f} "
            f"| {'100 %' if item['scenario'] == 'ceiling' else _ratio(item['ratio_to_ceiling'])} "
            f"| {item['p50_ms']:.2f} | {item['p99_ms']:.2f} | {item['cpu_ms_per_request']:.2f} "
            f"| {item['peak_rss_mb']:.0f} | {item['unexpected']} |"
        )
    if results.get("login_flood"):
        lines += [
            "",
            "### Login flood",
            "",
            "Feed page 1 at a steady rate (4 connections, paced), alone and while logins hammer the same server.",
            "",
            "| configuration | feed p50 alone | feed p99 alone | feed p50 during flood | feed p99 during flood "
            "| p99 ratio | logins/s during flood |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for key, flood in results["login_flood"].items():
            lines.append(
                f"| {key} | {flood['alone']['p50_ms']:.2f} | {flood['alone']['p99_ms']:.2f} "
                f"| {flood['during_login_flood']['p50_ms']:.2f} | {flood['during_login_flood']['p99_ms']:.2f} "
                f"| {flood['p99_ratio']:.2f}× | {flood.get('logins', {}).get('rps', 0):.1f} |"
            )
    growth = [
        _find(results, config, scenario) for config in (SMALL, MAIN) for scenario in ("feed_p1", "feed_deep")
    ]
    if all(growth):
        lines += [
            "",
            "### Growth: feed by data-set size and depth (PostgreSQL, 1 worker)",
            "",
            "| posts | page | req/s | p50 ms | p99 ms | p50 vs page 1 of the small set |",
            "|---:|---|---:|---:|---:|---:|",
        ]
        base = growth[0]
        assert base is not None
        for item in growth:
            assert item is not None
            spec = json.loads(results["configs"][item["config"]]["data_set"].split(" ", 1)[1])
            lines.append(
                f"| {spec['posts']:,} | {LABELS[item['scenario']]} | {item['rps']:,.0f} | {item['p50_ms']:.2f} "
                f"| {item['p99_ms']:.2f} | {item['p50_ms'] / base['p50_ms']:.2f}× |"
            )
    if results.get("write_growth"):
        lines += [
            "",
            "### Growth: create post by the author's friend count",
            "",
            "| configuration | friends | req/s | p50 ms | p99 ms | server CPU ms/post | job worker CPU ms/post |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for item in results["write_growth"]:
            helper = item.get("helper_cpu_ms_per_request")
            lines.append(
                f"| {item['config']} | {item['friends']:,} | {item['rps']:,.0f} | {item['p50_ms']:.2f} "
                f"| {item['p99_ms']:.2f} | {item['cpu_ms_per_request']:.2f} "
                f"| {'' if helper is None else f'{helper:.2f}'} |"
            )
    lines += ceilings(results)
    lines += ["", "### Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {target} | {measured} | {verdict} |" for target, measured, verdict in targets(results)]
    lines += [
        "",
        f"![Requests per second as a share of the ceiling]({images}/throughput.png)",
        "",
        f"![Latency p50 and p99]({images}/latency.png)",
        "",
    ]
    if results.get("write_growth") or all(growth):
        lines += [f"![Growth]({images}/growth.png)", ""]
    return "\n".join(lines)


def ceilings(results: dict[str, Any]) -> list[str]:
    """Feed page 1 beside the ceiling with and without Kith's feed round trips."""
    rows = []
    for config in results["configs"]:
        found = {
            key: _find(results, config, key) for key in ("ceiling", "ceiling_db1", "ceiling_db", "feed_p1")
        }
        plain, one, both, feed = found.values()
        if not (plain and one and both and feed):
            continue
        rows.append(
            f"| {config} | {plain['rps']:,.0f} ({plain['cpu_ms_per_request']:.2f}) "
            f"| {one['rps']:,.0f} ({one['cpu_ms_per_request']:.2f}): {_ratio(one['rps'] / plain['rps'])} "
            f"| {both['rps']:,.0f} ({both['cpu_ms_per_request']:.2f}): {_ratio(both['rps'] / plain['rps'])} "
            f"| {feed['rps']:,.0f} ({feed['cpu_ms_per_request']:.2f}): {_ratio(feed['rps'] / plain['rps'])} "
            f"| {_ratio(feed['rps'] / both['rps'])} |"
        )
    if not rows:
        return []
    return [
        "",
        "### The feed against the ceiling with Kith's round trips",
        "",
        "Requests per second (server CPU ms per request) and share of the plain ceiling. The round-trip "
        "ceilings are the plain ceiling that first runs Kith's own feed statements through asyncpg "
        "(`bench/ceiling.py`): only the feed query, or both (session check; feed page with authors, likes and media).",
        "",
        "| configuration | ceiling | + feed query | + 2 feed statements | Kith feed page 1 "
        "| Kith of the 2-statement ceiling |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ]


def plots(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = [key for key in results["configs"] if key != SMALL]
    scenarios = [
        key
        for key in LABELS
        if not key.startswith(("ceiling", "floor")) and any(_find(results, c, key) for c in configs)
    ]
    width = 0.8 / max(len(configs), 1)

    figure, axis = plt.subplots(figsize=(11, 5))
    for offset, config in enumerate(configs):
        values = [(_find(results, config, key) or {}).get("ratio_to_ceiling") or 0 for key in scenarios]
        axis.bar(
            [i + offset * width for i in range(len(scenarios))],
            [v * 100 for v in values],
            width,
            label=config,
        )
    axis.axhline(50, color="grey", linestyle="--", linewidth=0.8)
    axis.axhline(35, color="grey", linestyle=":", linewidth=0.8)
    axis.set_xticks([i + width * (len(configs) - 1) / 2 for i in range(len(scenarios))])
    axis.set_xticklabels([LABELS[key] for key in scenarios], rotation=25, ha="right", fontsize=8)
    axis.set_ylabel("% of the ceiling's requests/s (same configuration)")
    axis.set_title("Throughput relative to the ceiling (dashed: 50 %, dotted: 35 %)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "throughput.png", dpi=90)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(11, 5))
    for offset, config in enumerate(configs):
        found = [_find(results, config, key) or {} for key in scenarios]
        positions = [i + offset * width for i in range(len(scenarios))]
        axis.bar(positions, [item.get("p99_ms", 0) for item in found], width, alpha=0.35, color=f"C{offset}")
        axis.bar(
            positions, [item.get("p50_ms", 0) for item in found], width, color=f"C{offset}", label=config
        )
    axis.set_yscale("log")
    axis.set_xticks([i + width * (len(configs) - 1) / 2 for i in range(len(scenarios))])
    axis.set_xticklabels([LABELS[key] for key in scenarios], rotation=25, ha="right", fontsize=8)
    axis.set_ylabel("ms (solid: p50, light: p99), log scale")
    axis.set_title("Latency under closed-loop load")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out / "latency.png", dpi=90)
    plt.close(figure)

    growth = [
        _find(results, config, scenario) for config in (SMALL, MAIN) for scenario in ("feed_p1", "feed_deep")
    ]
    if all(growth) or results.get("write_growth"):
        figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
        if all(growth):
            for scenario, color in (("feed_p1", "C0"), ("feed_deep", "C1")):
                points = [
                    (_posts(results, c), (_find(results, c, scenario) or {})["p50_ms"]) for c in (SMALL, MAIN)
                ]
                left.plot(
                    [p for p, _ in points],
                    [v for _, v in points],
                    marker="o",
                    color=color,
                    label=LABELS[scenario],
                )
            left.set_xscale("log")
            left.set_ylim(bottom=0)
            left.set_xlabel("posts in the data set")
            left.set_ylabel("feed p50 ms (PostgreSQL, 1 worker)")
            left.set_title("Feed latency by size and depth")
            left.legend()
        for index, config in enumerate(sorted({item["config"] for item in results.get("write_growth", [])})):
            items = [item for item in results["write_growth"] if item["config"] == config]
            right.plot(
                [i["friends"] for i in items],
                [i["cpu_ms_per_request"] for i in items],
                marker="o",
                color=f"C{index}",
                label=f"{config}: server",
            )
            if any(i.get("helper_cpu_ms_per_request") is not None for i in items):
                right.plot(
                    [i["friends"] for i in items],
                    [i.get("helper_cpu_ms_per_request") or 0 for i in items],
                    marker="s",
                    linestyle="--",
                    color=f"C{index}",
                    label=f"{config}: job worker",
                )
        right.set_xscale("log")
        right.set_ylim(bottom=0)
        right.set_xlabel("author's friends")
        right.set_ylabel("CPU ms per post created")
        right.set_title("Write path cost by audience")
        right.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(out / "growth.png", dpi=90)
        plt.close(figure)


def _posts(results: dict[str, Any], config: str) -> int:
    spec = json.loads(results["configs"][config]["data_set"].split(" ", 1)[1])
    posts: int = spec["posts"]
    return posts


def write(results: dict[str, Any], out: Path, docs: Path | None = None) -> None:
    """results.md and the PNGs into `out`; the same section into `docs` between the markers."""
    out.mkdir(parents=True, exist_ok=True)
    plots(results, out)
    (out / "results.md").write_text(markdown(results, ".") + "\n")
    if docs is not None:
        relative = Path("..") / out.resolve().relative_to(docs.resolve().parents[1])
        section = markdown(results, relative.as_posix())
        text = docs.read_text()
        if BEGIN in text and END in text:
            head, _, rest = text.partition(BEGIN)
            _, _, tail = rest.partition(END)
            text = f"{head}{BEGIN}\n{section}\n{END}{tail}"
        else:
            text = f"{text.rstrip()}\n\n{BEGIN}\n{section}\n{END}\n"
        docs.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", help="A results directory (holding results.json).")
    parser.add_argument("--docs", help="Also rewrite this Markdown file's results section.")
    args = parser.parse_args()
    out = Path(args.results)
    write(json.loads((out / "results.json").read_text()), out, Path(args.docs) if args.docs else None)


if __name__ == "__main__":
    main()
