"""``python -m kb bench``: how the engine, every page and the service cope with 10 000 to 1 000 000 cases.

The bench writes its own configuration file: the one given, with ``--calendars`` named calendars added
(``kb.tools.generate_calendars``: twenty by default, each with a change dated inside the data's period, and a
policy on each that contracts name) and the team's mail addresses when it names none. For each size it
generates a synthetic store (``kb.tools.generate``) in a temporary folder, then measures it in a *fresh worker
process* (``python -m kb.tools.bench --worker``), so that the peak memory it reports is that of a process doing
what the dashboard does, not of the generator:

* the as-of views computed whole into Arrow, as the dashboard's snapshot does
  (``case_sla``: every case's deadline and state; ``env_uptime``; ``contract_refunds``), the whole
  ``case-sla`` CSV export beside its bare query (the same SELECT into Arrow, no CSV), and closing a month;
  then every case's rows kept beside the database and opened again as the next process does (``kb.kept``);
* beside them, a per-row Python baseline for the deadlines and states (``kb.tools.bench_baseline``: the
  ``businesstimedelta`` package, on a sample of cases, projected to all of them);
* every dashboard page rendered server-side through Streamlit's AppTest, cold
  (the Streamlit caches cleared and the store reopened, so the snapshot is
  rebuilt) and warm (the same page again), and the most rows one chart or table
  of the page sends to the browser;
* logging a case through the store, as the Log case form does (95th percentile),
  the confirmation's deadline lookup, and the overview right after a write;
* the service's share (``kb.tools.bench_service``): logging a case while a thread does the service's jobs,
  and ``GET /api/v1/export/case-sla`` through its routes (first byte, first row, whole);
* the worker's peak resident memory, and how many cases run on the named calendars.

Then ``--mail-messages`` messages of a synthetic mailbox (written once per run) are imported into a copy of
the size's store as generated, in a process of its own (``kb.tools.bench_mail``): seconds, peak memory, and
the rows ``messages`` gained.

Medians over ``--runs`` runs. These are benchmark figures, not tests: machines
are noisy. See ``docs/performance.md``.

Over 400 lines: the driver, the worker process and each measurement share the timing harness and the
table they print."""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from kb.config import PROJECT_ROOT, Config, config_path, load_config
from kb.navigation import navigation_only, page_names
from kb.tools.bench_mail import RESULT_MARK
from kb.tools.memory import peak_mb
from kb.tools.page_rows import ROWS_SENT_LIMIT, rows_sent

TARGETS = {  # measure key -> (limit, as the table says it) at 1 000 000 cases: the performance issue's numbers
    "engine.case_sla": (1.5, "≤ 1.5 s"),
    "engine.export_responses": (3.0, "≤ 3 s"),
    "engine.close_month": (2.0, "≤ 2 s"),
    "page.cold": (1.0, "≤ 1.0 s"),
    "page.warm": (0.2, "≤ 0.2 s"),
    "write.p95": (50.0, "≤ 50 ms"),
    "write.confirm_p95": (100.0, "≤ 100 ms"),
    "write.after": (0.3, "≤ 0.3 s"),
    "peak_rss": (1229.0, "≤ 1.2 GB"),
    "rows_sent": (ROWS_SENT_LIMIT, "≤ 5 000"),
    "export.case_sla_ratio": (10.0, "≤ 10 ×"),
    "api.first_byte": (0.5, "≤ 0.5 s"),
    "write.p95_with_jobs": (50.0, "≤ 50 ms"),
    "mail.seconds": (15.0, "≤ 15 s"),
    "mail.peak_rss": (400.0, "≤ 400 MB"),
}


# --- the orchestrating process ----------------------------------------------------------------------------------


def run(args: argparse.Namespace, config: Config) -> int:
    """Generate each size, measure it in a worker, print the table (and write it to ``--out``)."""
    from kb.access import command_line_actor
    from kb.db import connection
    from kb.kept import kept_folder
    from kb.tools.generate import ProgressBar, generate
    from kb.tools.mbox import write_mbox

    results: dict[int, dict] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kb-bench-", dir=args.workdir) as folder:
        config_file, config = bench_config(Path(folder), config_path(args.config), args.calendars, args.years)
        mbox = Path(folder) / "bench.mbox" if args.mail_messages else None
        if mbox is not None:
            print(f"== a mailbox of {args.mail_messages:,} messages", file=sys.stderr)
            write_mbox(mbox, config, messages=args.mail_messages, seed=args.seed, until=datetime.now(UTC))
        for cases in args.cases:
            db = Path(folder) / f"bench-{cases}.duckdb"
            print(f"== {cases:,} cases, {args.environments} environments, {args.years} years", file=sys.stderr)
            bar = ProgressBar()
            begin = time.perf_counter()
            con = connection.connect(db)
            try:
                generate(con, config, command_line_actor(), cases=cases, environments=args.environments,
                         years=args.years, seed=args.seed, until=datetime.now(UTC), progress=bar)
            finally:
                con.close()
            bar.finish()
            generated = time.perf_counter() - begin
            mail_db = Path(folder) / f"bench-{cases}-mail.duckdb"
            if mbox is not None:  # the store as generated, for the mail import after the worker
                shutil.copyfile(db, mail_db)
            print(f"   generated and loaded in {generated:.1f} s; measuring…", file=sys.stderr)
            command = [sys.executable, "-m", "kb.tools.bench", "--worker", str(db), "--config", config_file,
                       "--runs", str(args.runs), "--writes", str(args.writes), "--sample", str(args.sample)]
            if args.pages:
                command += ["--pages", *args.pages]
            results[cases] = _run_worker(command, db, config_file, f"the bench worker failed on {cases:,} cases")
            if results[cases] is None:
                return 1
            results[cases]["generate"] = generated
            db.unlink(missing_ok=True)
            shutil.rmtree(kept_folder(db), ignore_errors=True)
            if mbox is not None:
                print(f"   importing {args.mail_messages:,} messages…", file=sys.stderr)
                mail = _run_worker([sys.executable, "-m", "kb.tools.bench_mail", "--db", str(mail_db), "--config",
                                    config_file, str(mbox)], mail_db, config_file,
                                   f"the mail import failed on {cases:,} cases")
                if mail is None:
                    return 1
                results[cases]["mail"] = mail
                mail_db.unlink(missing_ok=True)
    table = render(results, args, time.perf_counter() - started)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
        print(f"table written to {args.out}", file=sys.stderr)
    return 0


def bench_config(folder: Path, source: Path, calendars: int, years: int) -> tuple[str, Config]:
    """The configuration file of the bench's data sets, written in ``folder``: ``source``'s, with ``calendars``
    named calendars (``kb.tools.generate_calendars``), each with a change dated inside the last ``years``
    years, and the team's mail addresses when it names none; its path and what it says."""
    from kb.tools.generate_calendars import bench_calendars, config_with, toml_text

    raw = tomllib.loads(source.read_text(encoding="utf-8"))
    today = datetime.now(UTC).date()
    first_day = today.replace(year=today.year - years, day=1)
    path = folder / "bench.toml"
    path.write_text(toml_text(config_with(raw, bench_calendars(calendars, first_day, today))), encoding="utf-8")
    return str(path), load_config(path)


def _run_worker(command: list[str], db: Path, config_file: str, failure: str) -> dict | None:
    """Run a worker process on ``db``; its results (the last ``RESULT_MARK`` line), or None when it failed
    (said on stderr with the end of its output)."""
    env = {**os.environ, "SUPPORT_DB": str(db), "SUPPORT_CONFIG": config_file}
    env.pop("SUPPORT_AS_OF", None)
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=PROJECT_ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if done.returncode or not lines:
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        print(f"error: {failure} (exit {done.returncode})", file=sys.stderr)
        return None
    return json.loads(lines[-1][len(RESULT_MARK):])


def render(results: dict[int, dict], args: argparse.Namespace, elapsed: float) -> str:
    """The results as a Markdown table: one row per measure, one column per size."""
    sizes = sorted(results)
    largest = sizes[-1]
    first = results[largest]
    rows: list[tuple[str, list[str], str]] = []

    def add(label: str, key, fmt, target_key: str | None = None):
        values = [key(results[n]) for n in sizes]
        cells = [fmt(v) for v in values]
        verdict = ""
        if target_key:
            limit, verdict = TARGETS[target_key]
            if largest >= 1_000_000:
                verdict += " ✓" if values[-1] is not None and values[-1] <= limit else " ✗"
        rows.append((label, cells, verdict))

    def secs(v):
        return "–" if v is None else f"{v:.2f} s" if v < 10 else f"{v:.1f} s"

    def ms(v):
        return "–" if v is None else f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"

    add("generate and load the data set", lambda r: r["generate"], secs)
    add(f"the lookup tables of the {first['calendars']['named'] + 2} calendars, once a process (`attach_calendar`)",
        lambda r: r["engine"]["calendar_tables"], secs)
    add("every target of every case: first response, follow-ups, resolution (`case_sla` into Arrow), as the "
        "dashboard opens it: the rows kept at its last computation, moved on to now",
        lambda r: r["engine"]["case_sla"], secs, "engine.case_sla")
    add("… computed anew from the stored rows (a first start, a rule changed, an import)",
        lambda r: r["engine"]["case_sla_anew"], secs)
    add("… keeping every case's rows beside the database, after computing them anew",
        lambda r: r["engine"]["keep"], secs)
    add("follow-up questions alone (`case_questions` into Arrow)", lambda r: r["engine"]["case_questions"], secs)
    add(f"deadlines and states, per-row Python (`businesstimedelta` on {args.sample:,} cases, projected)",
        lambda r: r["baseline"]["projected"], secs)
    add("… Python ÷ SQL computing anew", lambda r: r["baseline"]["projected"] / r["engine"]["case_sla_anew"],
        lambda v: f"{v:,.0f} ×")
    add("… sample cases where Python and SQL agree", lambda r: (r["baseline"]["agree"], r["baseline"]["sample"]),
        lambda v: f"{v[0]:,} of {v[1]:,}")
    add("uptime, every environment-month (`env_uptime`)", lambda r: r["engine"]["env_uptime"], secs)
    add("refunds, every contract-month (`contract_refunds`)", lambda r: r["engine"]["contract_refunds"], secs)
    add("`export case-sla` CSV, whole report", lambda r: r["engine"]["export_case_sla"], secs)
    add("… its query alone, the same rows into Arrow (no CSV)", lambda r: r["engine"]["query_case_sla"], secs)
    add("… ÷ the bare query of the same rows",
        lambda r: r["engine"]["export_case_sla"] / r["engine"]["query_case_sla"], lambda v: f"{v:,.1f} ×",
        "export.case_sla_ratio")
    add("`export responses` CSV, every client question", lambda r: r["engine"]["export_responses"], secs,
        "engine.export_responses")
    add("close the last whole month (`close-month`)", lambda r: r["engine"]["close_month"], secs,
        "engine.close_month")
    add("… cases and targets due in it that it kept", lambda r: f"{r['rows']['closed_cases']:,} / "
        f"{r['rows']['closed_targets']:,}", str)
    for page in first["pages"]:
        add(f"page {page}, cold", lambda r, p=page: r["pages"][p]["cold"], secs, "page.cold")
        add(f"page {page}, warm", lambda r, p=page: r["pages"][p]["warm"], secs, "page.warm")
    add("most rows one chart or table sends", lambda r: max(p["rows"] for p in r["pages"].values()),
        lambda v: f"{v:,}", "rows_sent")
    add("… on page", lambda r: max(r["pages"], key=lambda p: r["pages"][p]["rows"]), str)
    add("log a case (form write), p95", lambda r: r["writes"]["p95_ms"], ms, "write.p95")
    add("log a case, median", lambda r: r["writes"]["median_ms"], ms)
    add("… its deadline confirmation, p95", lambda r: r["writes"]["confirm_p95_ms"], ms, "write.confirm_p95")
    add("overview right after a write", lambda r: r["after_write"], secs, "write.after")
    add("log a case while the service runs its jobs, p95", lambda r: r["with_jobs"]["p95_ms"], ms,
        "write.p95_with_jobs")
    add("… median", lambda r: r["with_jobs"]["median_ms"], ms)
    add("… cases logged / job runs meanwhile (alerts, metrics, mail, backup)",
        lambda r: f"{r['with_jobs']['count']:,} / " + ", ".join(str(n) for n in r["with_jobs"]["job_runs"].values()),
        str)
    add("API export case-sla, first byte", lambda r: r["api_export"]["first_byte"], secs, "api.first_byte")
    add("… its first row", lambda r: r["api_export"]["first_row"], secs)
    add("… the whole report", lambda r: r["api_export"]["whole"], secs)
    add("… rows it announced (`X-Rows`) / sent",
        lambda r: f"{r['api_export']['rows_said']:,} / {r['api_export']['rows_sent']:,}", str)
    if all("mail" in r for r in results.values()):
        add(f"mail import of {args.mail_messages:,} messages (`mail import --trust-team`, a process of its own)",
            lambda r: r["mail"]["seconds"], secs, "mail.seconds")
        add("… its peak memory (RSS), with its parser processes'", lambda r: r["mail"]["peak_rss_mb"],
            lambda v: f"{v:,.0f} MB", "mail.peak_rss")
        add("… rows `messages` gained / of them in a case's thread",
            lambda r: f"{r['mail']['messages_added']:,} / {r['mail']['threaded_added']:,}", str)
        add("… cases opened / first responses recorded / new free clients",
            lambda r: f"{r['mail']['cases_opened']:,} / {r['mail']['responses']:,} / {r['mail']['clients_made']:,}",
            str)
        add("… messages skipped / already taken / held in quarantine",
            lambda r: f"{r['mail']['skipped']:,} / {r['mail']['already']:,} / {r['mail']['held']:,}", str)
    add("peak memory of the worker (RSS)", lambda r: r["peak_rss_mb"], lambda v: f"{v:,.0f} MB", "peak_rss")
    add("rows: cases / environment-months / contract-months",
        lambda r: f"{r['rows']['case_sla']:,} / {r['rows']['env_uptime']:,} / {r['rows']['contract_refunds']:,}",
        str)
    add("calendars: named, each with a dated change / cases whose first response runs on one",
        lambda r: f"{r['calendars']['named']:,}, {r['calendars']['changed']:,} / {r['calendars']['cases']:,}", str)
    add("rows: messages / pauses / client questions",
        lambda r: f"{r['rows']['messages']:,} / {r['rows']['pauses']:,} / {r['rows']['case_questions']:,}", str)

    header = [f"measure (median of {args.runs} run{'' if args.runs == 1 else 's'})",
              *[f"{n:,} cases" for n in sizes], "target at 1 000 000"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["--:"] * len(sizes) + ["---"]) + "|"]
    lines += ["| " + " | ".join([label, *cells, verdict]) + " |" for label, cells, verdict in rows]
    machine = (f"{os.cpu_count()} cores, Python {platform.python_version()}, DuckDB {first['versions']['duckdb']}, "
               f"Streamlit {first['versions']['streamlit']}; {args.environments} environments over {args.years} "
               f"year(s), seed {args.seed}; whole run {elapsed / 60:.1f} min")
    return "\n".join(lines) + f"\n\n{machine}"


# --- the measuring worker ----------------------------------------------------------------------------------------


def _median_time(action, runs: int) -> float:
    times = []
    for _ in range(runs):
        gc.collect()
        begin = time.perf_counter()
        action()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def measure_engine(db: Path, config: Config, runs: int) -> tuple[dict, dict]:
    """Seconds to lay out the calendars' lookup tables (once a process: they are kept), to compute each as-of
    view whole into Arrow (what a snapshot does), and the CSV export."""
    from kb.db import connection
    from kb.engine.asof import open_views
    from kb.engine.calendar import attach_calendar
    from kb.reads.exports import export_sql, write_report
    from kb.snapshot import SNAPSHOT_TABLES
    from kb.timestamps import now_utc

    con = connection.connect(db)
    timings, rows = {}, {}
    try:
        cur = connection.cursor(con)
        begin = time.perf_counter()
        attach_calendar(cur, config, now_utc())
        timings["calendar_tables"] = time.perf_counter() - begin
        cur.close()
        for name in SNAPSHOT_TABLES:
            def compute(name=name):
                cur = connection.cursor(con)
                try:
                    open_views(cur, config, now_utc())
                    rows[name] = cur.sql(f"SELECT * FROM {name}").to_arrow_table().num_rows
                finally:
                    cur.close()
            timings[name] = _median_time(compute, runs)
        timings["case_sla_anew"] = timings.pop("case_sla")
        for table in ("messages", "pauses"):
            rows[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        with tempfile.TemporaryDirectory() as folder:
            for report in ("case-sla", "responses"):
                def export(report=report):
                    cur = connection.cursor(con)
                    try:
                        write_report(cur, config, report, now_utc(), Path(folder) / f"{report}.csv")
                    finally:
                        cur.close()
                timings[f"export_{report.replace('-', '_')}"] = _median_time(export, runs)

        def bare_query():  # the SELECT the export writes, into Arrow and dropped: no CSV
            cur = connection.cursor(con)
            try:
                open_views(cur, config, now_utc())
                cur.sql(export_sql(cur, "case-sla", config)).to_arrow_table()
            finally:
                cur.close()
        timings["query_case_sla"] = _median_time(bare_query, runs)
        timings["keep"], timings["case_sla"] = _kept(con, db, config, runs)
        # (after the rows are kept, as the dashboard keeps them at its start: the closing reads every case there)
        timings["close_month"], rows["closed_cases"], rows["closed_targets"] = _close_last_month(con, config)
    finally:
        con.close()
    return timings, rows


def _kept(con, db: Path, config: Config, runs: int) -> tuple[float, float]:
    """Seconds to keep every case's rows beside the database (``kb.kept``, after the dashboard computed them
    whole), and to open them as the next process does: moved on to now, the moving cases computed again."""
    from kb.db import connection
    from kb.kept import KEPT_TABLES, audit_mark, keep, kept_folder, opened
    from kb.snapshot import computed
    from kb.timestamps import now_utc

    cur = connection.cursor(con)
    try:
        as_of, mark = now_utc(), audit_mark(cur)
        tables = computed(cur, config, as_of, ["case_sla"])
        begin = time.perf_counter()
        keep(kept_folder(db), config, {name: tables[name] for name in KEPT_TABLES}, as_of, mark)
        kept = time.perf_counter() - begin
    finally:
        cur.close()
    del tables

    def open_kept():
        cur = connection.cursor(con)
        try:
            if opened(cur, config, kept_folder(db), now_utc()) is None:
                raise RuntimeError("the rows kept a moment ago were not opened")
        finally:
            cur.close()
    return kept, _median_time(open_kept, runs)


def _close_last_month(con, config: Config) -> tuple[float, int, int]:
    """Seconds to close the last whole month (``python -m kb close-month``), and the cases and targets it kept."""
    from kb.access import Actor
    from kb.intake.closing import close_month
    from kb.kept import every_case
    from kb.timestamps import now_utc

    now = now_utc().astimezone(config.calendar.zone)
    month = f"{now.year - (now.month == 1):04d}-{(now.month - 2) % 12 + 1:02d}"
    begin = time.perf_counter()
    closed = close_month(con, config, Actor("bench@example.com", "lead"), month, case_tables=every_case)
    return time.perf_counter() - begin, closed.cases, closed.targets




def _clear_app() -> None:
    """Close the dashboard's store and clear Streamlit's caches: the next render starts cold."""
    import streamlit as st

    from kb import ui

    try:
        ui.app_for(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store.close()
    except Exception:  # nothing open yet, or already closed
        pass
    st.cache_resource.clear()
    st.cache_data.clear()
    gc.collect()


def measure_pages(names: list[str], runs: int) -> dict:
    """Cold and warm server-side render of each page, and the most rows one of its elements sends
    (inside ``kb.navigation.navigation_only``, as the later renders on the returned AppTest)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PROJECT_ROOT / "dashboard.py"), default_timeout=600).run()  # imports, untimed
    results = {}
    for name in names:
        cold, warm = [], []
        for _ in range(runs):
            _clear_app()
            begin = time.perf_counter()
            at.switch_page(f"pages/{name}.py").run()
            cold.append(time.perf_counter() - begin)
            _fail_on_exception(at, name)
            begin = time.perf_counter()
            at.run()
            warm.append(time.perf_counter() - begin)
            _fail_on_exception(at, name)
        results[name] = {"cold": statistics.median(cold), "warm": statistics.median(warm), "rows": rows_sent(at)}
    return results, at


def _fail_on_exception(at, name: str) -> None:
    if at.exception:
        raise RuntimeError(f"page {name} raised: {[e.message for e in at.exception]}")


def measure_writes(at, config: Config, count: int, runs: int) -> tuple[dict, float]:
    """Log ``count`` cases through the dashboard's store, as the Log case form does (its write, then its
    deadline confirmation); then how long the overview takes right after a write."""
    from kb import ui
    from kb.access import Actor
    from kb.intake import writes
    from kb.reads import log_case

    store = ui.app_for(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store
    actor = Actor("bench@example.com", "staff")
    client = store.query("SELECT client_id FROM clients WHERE tier = 'enterprise' ORDER BY client_id LIMIT 1")
    zone = config.calendar.zone
    write_ms, confirm_ms = [], []
    for n in range(count):
        fields = {"client_id": client.client_id[0], "category": "platform_issue", "subject": f"Bench case {n}",
                  "requester": "bench@example.com", "assignee": "",
                  "received_at": datetime.now(zone).replace(microsecond=0).isoformat(), "first_response_at": ""}
        begin = time.perf_counter()
        case_id = store.write(writes.log_case, config, actor, fields).row_id
        write_ms.append((time.perf_counter() - begin) * 1000)
        begin = time.perf_counter()
        log_case.case_deadline(store, case_id)
        confirm_ms.append((time.perf_counter() - begin) * 1000)

    at.switch_page("pages/overview.py").run()  # the overview read once, as a team that has it open (untimed)
    after = []
    for n in range(runs):
        fields = {**fields, "subject": f"Bench case after {n}",
                  "received_at": datetime.now(zone).replace(microsecond=0).isoformat()}
        store.write(writes.log_case, config, actor, fields)
        begin = time.perf_counter()
        at.switch_page("pages/overview.py").run()
        after.append(time.perf_counter() - begin)
    return {"p95_ms": _p95(write_ms), "median_ms": statistics.median(write_ms),
            "confirm_p95_ms": _p95(confirm_ms), "count": count}, statistics.median(after)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-95 * len(ordered) // 100) - 1))]


def worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m kb.tools.bench")
    parser.add_argument("--worker", type=Path, required=True, metavar="DB")
    parser.add_argument("--config", required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--pages", nargs="+")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    import duckdb
    import streamlit

    from kb import ui
    from kb.tools.bench_baseline import measure_baseline
    from kb.tools.bench_service import measure_api_export, measure_writes_with_jobs

    engine, rows = measure_engine(args.worker, config, args.runs)
    baseline = measure_baseline(args.worker, config, args.sample, rows["case_sla"])
    with navigation_only():
        page_results, at = measure_pages(args.pages or page_names(), args.runs)
        write_results, after_write = measure_writes(at, config, args.writes, args.runs)
        store = ui.app_for(os.environ["SUPPORT_DB"], os.environ["SUPPORT_CONFIG"]).store
        api_export = measure_api_export(store, args.runs)
        on_named = store.query("SELECT count(*) AS n FROM case_sla WHERE first_response_calendar NOT IN "
                               "('support', '24x7')", snapshot=store.snapshot()).n[0]
        with_jobs = measure_writes_with_jobs(store, config, args.writes)
    _clear_app()
    result = {
        "engine": engine, "rows": rows, "baseline": baseline, "pages": page_results, "writes": write_results,
        "after_write": after_write, "api_export": api_export,
        "calendars": {"named": len(config.calendars) - 1, "cases": int(on_named),
                      "changed": sum(len(c.versions.versions) > 1 for c in config.calendars[1:])},
        "with_jobs": {"p95_ms": _p95(with_jobs["write_ms"]), "median_ms": statistics.median(with_jobs["write_ms"]),
                      "count": len(with_jobs["write_ms"]), "job_runs": with_jobs["job_runs"]},
        "peak_rss_mb": peak_mb(),
        "versions": {"duckdb": duckdb.__version__, "streamlit": streamlit.__version__},
    }
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1:]))
