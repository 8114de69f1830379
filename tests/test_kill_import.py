"""SIGKILL of a running import at several points, then a rerun, equals an uninterrupted import (issue 8)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from gen_corpus import generate  # noqa: E402

pytestmark = pytest.mark.slow


def _env(home: Path, hyp_home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HOME=str(home), HYP_HOME=str(hyp_home), CLAUDE_CONFIG_DIR=str(home / ".claude"),
               CODEX_HOME=str(home / ".codex"), NO_COLOR="1")
    env.pop("HYP_DEBUG", None)
    return env


def _write_config(hyp_home: Path) -> None:
    hyp_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (hyp_home / "hypaware-config.json").write_text(json.dumps(
        {"version": 1, "clients": {"claude": {"enabled": True}, "codex": {"enabled": True}},
         "retention_days": 0, "capture": {"enabled": False}}))


def _raw_rows(hyp_home: Path) -> pl.DataFrame:
    files = sorted((hyp_home / "cache" / "ai_gateway_messages").glob("**/*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()


def _cmd() -> list[str]:
    return [sys.executable, "-m", "hypaware_tui", "backfill", "--json"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("corpus")
    generate(str(base), 6, seed=3)
    home = base / "home"
    ref = base / "ref-hyp"
    _write_config(ref)
    out = subprocess.run(_cmd(), env=_env(home, ref), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    reference = _raw_rows(ref)
    assert reference.height > 1000
    return home, reference


@pytest.mark.parametrize("delay", [0.4, 1.0, 1.8, 2.6])
def test_sigkill_then_rerun_equals_uninterrupted(corpus, tmp_path, delay):
    home, reference = corpus
    hyp_home = tmp_path / "hyp"
    _write_config(hyp_home)
    proc = subprocess.Popen(_cmd(), env=_env(home, hyp_home), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(delay)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    # no partial file is ever visible to readers
    dataset = hyp_home / "cache" / "ai_gateway_messages"
    for f in dataset.glob("**/*.parquet"):
        pl.read_parquet_schema(f)
    rerun = subprocess.run(_cmd(), env=_env(home, hyp_home), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    got = _raw_rows(hyp_home)
    # nothing duplicated ...
    assert got["part_id"].n_unique() == got.height
    # ... and nothing lost or changed: every column of every row equals the uninterrupted import
    cols = reference.columns
    key = ["part_id"]
    assert got.select(cols).sort(key).equals(reference.select(cols).sort(key))


# --------------------------------------------------------------------------------------------- parallel path
# Providers with more than 32 MiB of small files are parsed and encoded by spawned workers and committed
# by the main process: a kill then lands while workers hold results that were never committed.


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("bigcorpus")
    generate(str(base), 90, seed=5)  # ~56 MB of Claude, ~38 MB of Codex: both above the parallel threshold
    home = base / "home"
    ref = base / "ref-hyp"
    _write_config(ref)
    out = subprocess.run(_cmd(), env=_env(home, ref), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return home, _raw_rows(ref), _part_files(ref)


def _part_files(hyp_home: Path) -> int:
    """Part files committed so far (a file being written is a hidden `.part-….tmp` until its rename)."""
    return sum(1 for _ in (hyp_home / "cache" / "ai_gateway_messages").glob("**/part-*.parquet"))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the parse workers through /proc")
@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.7])
def test_sigkill_during_a_parallel_import_then_rerun_equals_uninterrupted(big_corpus, tmp_path, fraction):
    """The kill points are points of progress: once `fraction` of the uninterrupted import's part files are
    committed. (Fractions of its duration were not: this machine's speed drifts by half within minutes, and
    the import once finished before 70 % of the reference's time.)"""
    home, reference, parts = big_corpus
    hyp_home = tmp_path / "hyp"
    _write_config(hyp_home)
    env = _env(home, hyp_home)
    env.pop("HYP_WORKERS", None)
    proc = subprocess.Popen(_cmd(), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = max(1, round(parts * fraction))
    deadline = time.monotonic() + 300
    workers: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None and _part_files(hyp_home) < target:
        workers.update(_children(proc.pid))
        time.sleep(0.02)
    alive = proc.poll() is None
    if alive:
        workers.update(_children(proc.pid))
        proc.send_signal(signal.SIGKILL)
    print(f"killed with {_part_files(hyp_home)} of {parts} part files committed")
    proc.wait(timeout=60)
    assert alive, "the import finished before the kill: the corpus is too small for this machine"
    assert workers, "no parse worker was started: the parallel path was not exercised"
    # the workers notice the committer is gone and exit (they would otherwise hold memory for nothing)
    end = time.monotonic() + 10
    while time.monotonic() < end and any(map(_running, workers)):
        time.sleep(0.1)
    assert not [w for w in workers if _running(w)]
    rerun = subprocess.run(_cmd(), env=_env(home, hyp_home), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    got = _raw_rows(hyp_home)
    assert got["part_id"].n_unique() == got.height
    cols = reference.columns
    assert got.select(cols).sort("part_id").equals(reference.select(cols).sort("part_id"))


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (in a container, nobody may reap an orphan)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
