"""Soak: the session machine of tests/test_sessions.py, run for many more sessions than CI can afford.

    PYTHONPATH=. .venv/bin/python bench/soak.py --examples 40 --steps 12 --minutes 40 [--fresh-every 4]

Runs sessions until --examples have run or --minutes have passed, whichever comes first. A failing session is
shrunk by hypothesis to its minimal sequence, printed, and the soak goes on with new sessions; at the end it prints
how many sessions, steps and processes ran, each rule's count, and every distinct failure with its minimal
sequence. Exit 1 when anything failed. Environment: SOAK_EXAMPLES, SOAK_STEPS, SOAK_MINUTES stand in for the
options; the model cache is RETRIEVER_CACHE_DIR (default ~/.cache/retriever-soak, built once from the installed
packages, never downloaded).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
BATCH = 3  # sessions per hypothesis run: the time limit is looked at between runs


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=int(os.environ.get("SOAK_EXAMPLES", "40")))
    parser.add_argument("--steps", type=int, default=int(os.environ.get("SOAK_STEPS", "12")))
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "40")))
    parser.add_argument("--fresh-every", type=int, default=4, help="Compare with a fresh build every N steps.")
    parser.add_argument(
        "--ignore",
        default=os.environ.get("SESSIONS_IGNORE", ""),
        help="Promises already found broken (comma-separated names, as failures print them in brackets): counted, "
        "not failed, so the soak looks for others.",
    )
    parser.add_argument(
        "--kinds",
        default=os.environ.get("SESSIONS_KINDS", "md,md,html,pdf,big"),
        help="Kinds of notes drawn (md, html, pdf, big: ~23 KB, indexed with a codebook), repeated to weigh them.",
    )
    parser.add_argument("--no-shrink", action="store_true", help="Report failures as found, unshrunk (faster).")
    return parser.parse_args()


def prepare(fresh_every: int, ignore: str, kinds: str) -> None:
    """The environment tests/conftest.py gives a test: offline, no stray settings, no background server unless a
    step asks for one."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    # A cache of its own: another version of retriever sharing ~/.cache/retriever may rewrite it mid-soak.
    os.environ.setdefault("RETRIEVER_CACHE_DIR", str(Path.home() / ".cache" / "retriever-soak"))
    os.environ["SESSIONS_FRESH_EVERY"] = str(fresh_every)
    os.environ["SESSIONS_FRESH_ALL"] = "1"
    os.environ["SESSIONS_IGNORE"] = ignore
    os.environ["SESSIONS_KINDS"] = kinds
    os.environ["RETRIEVER_NO_DAEMON"] = "1"
    for name in ("NOTES", "INDEX", "ENCODERS", "MODE", "DEBUG", "NO_SERVER", "PORT", "STORE", "CONFIG", "COLLECTION"):
        os.environ.pop(f"RETRIEVER_{name}", None)
    sys.path.insert(0, str(HERE / "tests"))
    os.chdir(Path(os.environ.get("TMPDIR", "/tmp")))


def signature(exc: BaseException) -> str:
    """A failure's identity across sessions: its type and its message's first line, without the session's paths."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]


def main() -> int:
    options = parse()
    prepare(options.fresh_every, options.ignore, options.kinds)
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.stateful import run_state_machine_as_test
    from test_sessions import BROKEN, COUNTS, SessionMachine

    phases = [Phase.generate] if options.no_shrink else [Phase.generate, Phase.shrink]
    failures: dict[str, tuple[int, str]] = {}
    deadline = time.monotonic() + options.minutes * 60
    started = time.monotonic()
    while COUNTS.examples < options.examples and time.monotonic() < deadline:
        left = options.examples - COUNTS.examples
        config = settings(
            max_examples=min(left, BATCH),
            stateful_step_count=options.steps,
            deadline=None,
            database=None,
            phases=phases,
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        before = COUNTS.examples
        try:
            run_state_machine_as_test(SessionMachine, settings=config)
        except BaseException as exc:  # noqa: BLE001 - every failure is a finding to report
            if isinstance(exc, KeyboardInterrupt):
                break
            found = [exc, *getattr(exc, "exceptions", [])] if isinstance(exc, BaseExceptionGroup) else [exc]
            for each in found[1:] if len(found) > 1 else found:
                name = signature(each)
                notes = "\n".join([str(each)[:2000], *getattr(each, "__notes__", [])])
                seen, _ = failures.get(name, (0, ""))
                failures[name] = (seen + 1, notes or "".join(traceback.format_exception(each)))
                print(f"\n=== failure: {name}\n{notes}\n", flush=True)
        else:
            if COUNTS.examples == before:
                break
        print(
            f"[{(time.monotonic() - started) / 60:.1f} min] {COUNTS.examples} sessions, {COUNTS.steps} steps, "
            f"{COUNTS.processes} processes, {len(failures)} distinct failures",
            flush=True,
        )
    print(f"\nsessions (examples, shrinking included): {COUNTS.examples}")
    print(
        f"steps: {COUNTS.steps}; retriever processes: {COUNTS.processes}; {(time.monotonic() - started) / 60:.1f} min"
    )
    for rule, count in sorted(COUNTS.rules.items()):
        print(f"  {rule:>20}: {count}")
    for how in sorted({how for how, _, _ in COUNTS.rebuilds}):
        seen = [(done, new) for each, done, new in COUNTS.rebuilds if each == how]
        kept = sum(1 for done, new in seen if done < new)
        print(f"rebuilds after {how}: {len(seen)}, of which {kept} embedded fewer texts than were new (work kept)")
    for name, count in sorted(BROKEN.items()):
        print(f"ignored promise {name}: broken {count}×")
    print(f"distinct failures: {len(failures)}")
    for name, (seen, notes) in failures.items():
        print(f"\n--- {name} (found {seen}×)\n{notes}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
