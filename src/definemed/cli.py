"""`definemed` command line. Imports stay light here: torch & co. load only inside the stage that needs them."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import traceback

from definemed import __version__


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    log = logging.getLogger("definemed")
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


# OSErrors a user causes and can fix (a missing file, a read-only or full disk): one line, not a traceback.
USER_OS_ERRORS = {
    errno.ENOENT: "check the path in the config or on the command line",
    errno.EACCES: "check the file permissions or choose another run.run_dir",
    errno.EPERM: "check the file permissions or choose another run.run_dir",
    errno.EROFS: "the file system is read-only: choose a writable run.run_dir (or DEFINEMED_HOME)",
    errno.ENOSPC: "the disk is full: free space or choose a run.run_dir on another disk, then rerun to resume",
    errno.EDQUOT: "the disk quota is exhausted: free space, then rerun to resume",
    errno.ENOTDIR: "a path in the config names a file where a folder is expected",
    errno.EISDIR: "a path in the config names a folder where a file is expected",
}


def _os_error_line(exc: OSError) -> str:
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    what = exc.strerror or str(exc)
    return f"{what}{': ' + where if where else ''} ({USER_OS_ERRORS[exc.errno]})"


def _debug_wanted(argv_debug: bool) -> bool:
    return argv_debug or os.environ.get("DEFINEMED_DEBUG", "").strip().lower() in {"1", "true", "yes"}


def _load(path: str, overrides: list[str]):
    from definemed.config import load_config

    return load_config(path, overrides)


def _cmd_run(args: argparse.Namespace) -> int:
    from definemed.pipeline import run_pipeline

    cfg = _load(args.config, args.overrides)
    stages = args.stages.split(",") if args.stages else None
    summary = run_pipeline(cfg, stages=stages, force=args.force)
    print(f"\n{'stage':<10} {'status':<8} {'seconds':>9}  output")
    for row in summary:
        print(f"{row['stage']:<10} {row['status']:<8} {row['duration_s']:>9.1f}  {row['dir']}")
    report = cfg.run.run_dir / "report" / "report.html"
    if report.exists():
        print(f"\nreport: {report}")
    return 0


def _cmd_stage(args: argparse.Namespace) -> int:
    args.stages = args.command
    return _cmd_run(args)


def _cmd_validate(args: argparse.Namespace) -> int:
    from definemed.config import check_paths, load_config
    from definemed.errors import DefinemedError

    failed = 0
    for path in args.configs:
        try:
            cfg = load_config(path, args.set or [])
            if not args.schema_only:
                check_paths(cfg, source=path)
            print(f"ok      {path}")
        except DefinemedError as exc:
            failed += 1
            print(f"INVALID {exc}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from definemed.pipeline import plan

    cfg = _load(args.config, args.overrides)
    stages = args.stages.split(",") if args.stages else None
    print(f"run dir: {cfg.run.run_dir}")
    for step in plan(cfg, stages, args.force):
        print(f"  {step.stage:<10} {step.action:<7} {step.reason}")
    from definemed.train.estimate import describe_cpt_plan

    print(describe_cpt_plan(cfg))
    return 0


def _cmd_ls(args: argparse.Namespace) -> int:
    from definemed import registry
    from definemed.stages import STAGES

    print("stage:")
    for stage in STAGES:
        after = f" (after {', '.join(stage.upstream)})" if stage.upstream else ""
        print(f"  {stage.name:<14} {stage.help}{after}")
    for kind, entries in registry.describe().items():
        if kind == "stage":
            continue
        print(f"{kind}:")
        for name, desc in sorted(entries.items()):
            print(f"  {name:<14} {desc}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from definemed import models

    if args.action == "list":
        for row in models.list_bundled():
            print(f"{row['id']:<40} {row['status']:<14} {row['source']}")
        return 0
    path = models.materialize(args.model_id, force=args.force)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from definemed.stages import STAGES

    parser = argparse.ArgumentParser(
        prog="definemed", description="Adapt an instruct LLM to German medicine and measure whether it worked."
    )
    parser.add_argument("--version", action="version", version=f"definemed {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also DEFINEMED_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    # `--debug` is accepted after the command too (definemed run cfg.yaml --debug).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    def add_run_args(p: argparse.ArgumentParser, stages: bool = True) -> None:
        p.add_argument("config", help="YAML config file")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. cpt.max_steps=40")
        if stages:
            p.add_argument("--stages", help=f"comma-separated subset of {','.join(s.name for s in STAGES)}")
        p.add_argument("--force", action="store_true", help="rerun selected stages even if current")

    add_run_args(
        sub.add_parser("run", help="run the pipeline (resumable; current stages are skipped)", parents=[common])
    )
    add_run_args(sub.add_parser("plan", help="show what would run and what is cached", parents=[common]))
    p = sub.add_parser("validate", help="validate config files", parents=[common])
    p.add_argument("configs", nargs="+")
    p.add_argument("--set", action="append", metavar="key=value", help="override (repeatable)")
    p.add_argument(
        "--schema-only",
        action="store_true",
        help="check the config's fields only, not that its input files exist (data not on this machine)",
    )
    sub.add_parser("ls", help="list registered components", parents=[common])
    p = sub.add_parser(
        "models", help="bundled offline models: list, or materialize one as a local checkpoint", parents=[common]
    )
    p.add_argument("action", choices=["list", "materialize"])
    p.add_argument("model_id", nargs="?", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    p.add_argument("--force", action="store_true")
    for stage in STAGES:
        add_run_args(
            sub.add_parser(stage.name, help=f"run only the {stage.name} stage: {stage.help}", parents=[common]),
            stages=False,
        )
    # Saved corpus classifiers on new or gold text: classify, audit.
    from definemed.corpus.score_cli import add_commands

    add_commands(sub, parents=[common])
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    handlers = {"run": _cmd_run, "validate": _cmd_validate, "plan": _cmd_plan, "ls": _cmd_ls, "models": _cmd_models}
    handler = getattr(args, "handler", None) or handlers.get(args.command, _cmd_stage)
    from definemed.errors import DefinemedError
    from definemed.registry import load_plugins

    try:
        load_plugins()
        return handler(args)
    except DefinemedError as exc:
        if _debug_wanted(args.debug):
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in USER_OS_ERRORS:
            raise
        if _debug_wanted(args.debug):
            traceback.print_exc()
        print(f"error: {_os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
