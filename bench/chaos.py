"""Chaos: charging sessions while the controller is killed (SIGKILL) at random instants and the
central system drops or refuses connections at random; then an audit.

    python -m bench.chaos --seconds 600 --seed 7

The controller runs as a real process (`chargepoint run` on the simulated bench) against the
bundled central system on 127.0.0.1.  At the end the audit checks, from the central system's
view and the charger's journal: every started transaction stopped exactly once, nothing
duplicated, meter values never going backwards, every idTag right.  The counts are printed as
a table; the exit status is 1 when anything was lost or duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from centralsystem import CentralSystem
from firmware import app_devices

REPO = Path(__file__).resolve().parent.parent
CP_ID = "CHAOS-1"


@dataclass
class ChaosReport:
    seed: int
    seconds: float
    kills: int = 0
    disconnects: int = 0
    refusals: int = 0
    sessions: int = 0
    transactions: int = 0  # as the central system saw them
    journaled: int = 0  # as the charger's journal recorded them
    stopped_once: int = 0
    lost: int = 0
    duplicated: int = 0
    backwards: int = 0
    wrong_tags: int = 0
    retransmissions: int = 0  # resent after a kill, recognised by message id (not duplicates)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.backwards or self.wrong_tags)

    def table(self) -> str:
        rows = [
            ("seed", self.seed),
            ("seconds", f"{self.seconds:g}"),
            ("kills", self.kills),
            ("disconnects", self.disconnects),
            ("refusal windows", self.refusals),
            ("sessions", self.sessions),
            ("transactions (central system)", self.transactions),
            ("transactions (journal)", self.journaled),
            ("stopped exactly once", self.stopped_once),
            ("lost", self.lost),
            ("duplicated", self.duplicated),
            ("meter went backwards", self.backwards),
            ("wrong idTag", self.wrong_tags),
            ("retransmissions recognised", self.retransmissions),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _config(workdir: Path) -> Path:
    text = (REPO / "config" / "bench.toml").read_text()
    text = text.replace(
        "MeterValueSampleInterval = 10",
        "MeterValueSampleInterval = 1\n"
        "ClockAlignedDataInterval = 3\n"
        'StopTxnSampledData = "Energy.Active.Import.Register"',
    )
    text = text.replace('log_level = "INFO"', 'log_level = "WARNING"')
    path = workdir / "chaos.toml"
    path.write_text(text)
    return path


class _Controller:
    def __init__(self, config: Path, url: str, state: Path, log: Path) -> None:
        self.args = [
            sys.executable,
            "-m",
            "firmware",
            "run",
            "--config",
            str(config),
            "--csms-url",
            url,
            "--state-dir",
            str(state),
            "--id",
            CP_ID,
        ]
        self.state, self.log = state, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        (self.state / app_devices.BENCH_SOCKET).unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            self.args, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, cwd=REPO
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    async def terminate(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.proc.wait, 30)

    async def bench(self, cmd: str, **extra: object) -> dict[str, Any] | None:
        """A bench command, or None while the controller is (re)starting."""
        try:
            return await app_devices.bench_command(self.state, {"cmd": cmd, **extra})
        except (TimeoutError, ConnectionError, OSError, ValueError):
            return None


async def run_chaos(seed: int, seconds: float, workdir: Path | None = None) -> ChaosReport:
    rng = random.Random(seed)
    report = ChaosReport(seed, seconds)
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        work = workdir or Path(tmp)
        state = work / "state"
        async with CentralSystem(host="127.0.0.1", port=0) as cs:
            ctl = _Controller(_config(work), cs.url, state, work / "controller.log")
            ctl.start()
            tags: list[str] = []
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            refusing: asyncio.Task[None] | None = None

            async def refuse_for(duration: float) -> None:
                cs.refuse_connections(True)
                await asyncio.sleep(duration)
                cs.refuse_connections(False)

            while loop.time() < end:
                action = rng.choices(
                    ["session", "kill", "drop", "refuse", "wait"], weights=[6, 1.2, 1, 0.8, 2]
                )[0]
                if action == "session":
                    status = await ctl.bench("status")
                    if status is None:
                        await asyncio.sleep(0.2)
                        continue
                    ev = status["bench"]["1"]["ev"]
                    connector = status["connectors"]["1"]
                    if not ev["plugged"]:
                        tag = f"CHAOS-{len(tags) + 1:04d}"
                        tags.append(tag)
                        report.sessions += 1
                        await ctl.bench("plug")
                        await asyncio.sleep(rng.uniform(0.3, 1.0))
                        await ctl.bench("swipe", tag=tag)
                        await asyncio.sleep(rng.uniform(0.5, 1.5))
                        await ctl.bench("ev-charge")
                    elif rng.random() < 0.7:
                        await ctl.bench("unplug")
                    elif connector.get("id_tag"):
                        await ctl.bench("swipe", tag=connector["id_tag"])  # same card stops
                    else:
                        await ctl.bench("unplug")
                elif action == "kill":
                    ctl.kill()
                    report.kills += 1
                    await asyncio.sleep(rng.uniform(0.1, 1.5))
                    ctl.start()
                elif action == "drop":
                    if cs.connected(CP_ID):
                        await cs.disconnect(CP_ID, abrupt=rng.random() < 0.5)
                        report.disconnects += 1
                elif action == "refuse":
                    if refusing is None or refusing.done():
                        refusing = asyncio.create_task(refuse_for(rng.uniform(0.5, 3.0)))
                        report.refusals += 1
                await asyncio.sleep(rng.uniform(0.1, 1.2))

            # Settle: connections allowed, the car leaves, everything delivered.
            if refusing is not None:
                await refusing
            cs.refuse_connections(False)
            if ctl.proc is None or ctl.proc.poll() is not None:
                ctl.start()
            for _ in range(100):
                if await ctl.bench("unplug") is not None:
                    break
                await asyncio.sleep(0.2)
            await _wait_drained(state / "transactions.db", timeout=60)
            await ctl.terminate()
            _audit(report, cs, state / "transactions.db", tags)
    return report


def _journal(db: Path) -> tuple[int, int, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        open_tx = conn.execute("SELECT count(*) FROM tx WHERE stop_queued = 0").fetchone()[0]
        rows = conn.execute(
            "SELECT local_id, remote_id, id_tag, stop_acked FROM tx ORDER BY local_id"
        ).fetchall()
    finally:
        conn.close()
    return outbox, open_tx, rows


async def _wait_drained(db: Path, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        try:
            outbox, open_tx, _ = _journal(db)
            if outbox == 0 and open_tx == 0:
                return
        except sqlite3.Error:
            pass
        await asyncio.sleep(0.3)


def _energy(values: list[dict[str, Any]]) -> list[tuple[str, float]]:
    out = []
    for mv in values:
        for sv in mv.get("sampledValue", []):
            if sv.get(
                "measurand", "Energy.Active.Import.Register"
            ) == "Energy.Active.Import.Register" and not sv.get("phase"):
                out.append((mv["timestamp"], float(sv["value"])))
    return out


def _audit(report: ChaosReport, cs: CentralSystem, db: Path, tags: list[str]) -> None:
    state = cs.state(CP_ID)
    txs = sorted(state.transactions.values(), key=lambda t: t.transaction_id)
    report.transactions = len(txs)
    report.retransmissions = state.retransmissions
    _, open_tx, rows = _journal(db)
    report.journaled = len(rows)
    seen_ids = {t.transaction_id for t in txs}
    for local_id, remote_id, id_tag, stop_acked in rows:
        if remote_id is None or remote_id not in seen_ids or not stop_acked:
            report.lost += 1
            report.problems.append(
                f"journal tx {local_id} ({id_tag}): remote id {remote_id}, "
                f"stop acknowledged {bool(stop_acked)}"
            )
    if open_tx:
        report.lost += open_tx
        report.problems.append(f"{open_tx} transaction(s) still open in the journal")
    if len(txs) > len(rows):
        report.duplicated += len(txs) - len(rows)
        report.problems.append(f"central system has {len(txs)} transactions, journal {len(rows)}")
    previous_stop = 0.0
    for t in txs:
        if t.stops == 1:
            report.stopped_once += 1
        elif t.stops == 0:
            report.lost += 1
            report.problems.append(f"transaction {t.transaction_id} never stopped")
        else:
            report.duplicated += 1
            report.problems.append(f"transaction {t.transaction_id} stopped {t.stops} times")
        if t.id_tag not in tags or (t.stop_id_tag and t.stop_id_tag != t.id_tag):
            report.wrong_tags += 1
            report.problems.append(
                f"transaction {t.transaction_id}: idTag {t.id_tag} / stop idTag {t.stop_id_tag}"
            )
        values = [v for _, v in sorted(_energy(t.meter_values))]
        start, stop = float(t.meter_start or 0), float(t.meter_stop or 0)
        series = [start, *values, stop]
        if any(b < a for a, b in itertools.pairwise(series)) or start < previous_stop:
            report.backwards += 1
            report.problems.append(
                f"transaction {t.transaction_id}: energy {series} (previous stop {previous_stop})"
            )
        previous_stop = max(previous_stop, stop)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    report = asyncio.run(run_chaos(args.seed, args.seconds))
    print(report.table())
    for problem in report.problems:
        print("  problem:", problem)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
