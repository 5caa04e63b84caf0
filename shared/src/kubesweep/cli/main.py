"""``kubesweep``: run experiments on the embedded default or drive a running API."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from kubesweep.cli import commands, render
from kubesweep.cli.client import ApiClient, ApiError, connection_file, state_dir, write_connection
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.config import load_config_file
from kubesweep.errors import ConfigError, KubesweepError, NotFoundError
from kubesweep.importdata import load_results_file

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_IMPORT_HELP = "warm start: earlier results (an NNI or kubesweep export, JSON or CSV)"
FINAL_STATUSES = {"DONE", "STOPPED", "ERROR"}
console = Console()
err_console = Console(stderr=True)


def follow(client: ApiClient, exp_id: str, poll: float = 0.5) -> dict[str, Any]:
    """Show a live progress bar with the best metric until the experiment ends."""
    with render.progress(console) as bar:
        task = bar.add_task(exp_id, total=None, detail="starting")
        while True:
            exp = client.experiment(exp_id)
            counts = exp.get("trial_counts", {})
            ended = sum(v for k, v in counts.items() if k in render.TERMINAL_TRIALS)
            best = exp.get("best")
            detail = f"{exp['status']}  best {best['value']:.6g}" if best else exp["status"]
            bar.update(task, total=exp.get("max_trial_number"), completed=ended, detail=detail)
            if exp["status"] in FINAL_STATUSES:
                return exp
            time.sleep(poll)


def summarise(client: ApiClient, exp: dict[str, Any]) -> int:
    trials = client.trials(exp["id"])
    top = render.top_trials(trials, exp.get("optimize_mode", "minimize"))
    console.print(render.trials_table(top, title=f"Top trials of {exp['id']} ({exp['status']})"))
    if exp.get("pareto_front"):  # multi-objective: the trade-offs, not one best
        console.print(render.pareto_table(exp))
    counts = ", ".join(f"{k} {v}" for k, v in sorted(exp.get("trial_counts", {}).items()))
    console.print(f"{len(trials)} trials: {counts}")
    if exp.get("message"):
        console.print(f"message: {exp['message']}")
    return EXIT_OK if exp["status"] == "DONE" else EXIT_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).expanduser() if args.workdir else state_dir() / "embedded"
    config = Path(args.config)
    # Refuse a bad config (or import file) before paying for the stack's start-up.
    spec = load_config_file(config)
    if args.import_file:
        load_results_file(Path(args.import_file), list(spec.search_space))
    with EmbeddedStack(workdir) as stack:
        client = ApiClient(stack.api_url, stack.api_token)
        write_connection(stack.api_url, stack.api_token)
        exp_id: str | None = None
        try:
            exp_id = client.submit(config, import_file=_import_path(args))
            console.print(f"experiment [bold]{exp_id}[/] submitted; logs in {stack.log_dir}")
            console.print(
                f"web UI: {stack.api_url}/oview?id={exp_id} "
                "(`kubesweep webui url --with-token` prints the address with its token)"
            )
            exp = follow(client, exp_id)
            code = summarise(client, exp)
            if args.keep:
                keep_serving(stack)
            return code
        except KeyboardInterrupt:
            if exp_id:
                with contextlib.suppress(KubesweepError):
                    client.stop(exp_id)
            console.print("interrupted; experiment stopped")
            return 130
        finally:
            connection_file().unlink(missing_ok=True)


def keep_serving(stack: EmbeddedStack) -> None:
    """``run --keep``: the ended experiment's trials, logs and files stay readable (API, web
    UI, ``kubesweep trial log``) until Ctrl-C or SIGTERM, as NNI keeps its manager running."""
    console.print(f"experiment ended; still serving {stack.api_url}/ (Ctrl-C to stop)")
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            stack.check_alive()
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _import_path(args: argparse.Namespace) -> Path | None:
    return Path(args.import_file) if args.import_file else None


def cmd_create(args: argparse.Namespace) -> int:
    client = commands.client_for(args)
    exp_id = client.submit(Path(args.config), import_file=_import_path(args))
    console.print(f"experiment [bold]{exp_id}[/] created at {client.url}")
    if args.foreground:
        return summarise(client, follow(client, exp_id))
    return EXIT_OK


def _add(
    parent: Any, name: str, handler: Callable[[argparse.Namespace], int], helptext: str
) -> argparse.ArgumentParser:
    command: argparse.ArgumentParser = parent.add_parser(name, help=helptext)
    command.set_defaults(handler=handler)
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubesweep", description=__doc__)
    parser.add_argument(
        "--url",
        help="dispatcher API URL (default: KUBESWEEP_API_URL, the "
        "running embedded stack, or http://127.0.0.1:8080)",
    )
    parser.add_argument("--token", help="API bearer token (default: KUBESWEEP_API_TOKEN)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = _add(sub, "run", cmd_run, "run an experiment on the embedded default (this machine)")
    run.add_argument("config", help="NNI v1 or v2 experiment config (YAML)")
    run.add_argument("--workdir", help="where storage and logs go (default ~/.kubesweep/embedded)")
    run.add_argument("--import", dest="import_file", help=_IMPORT_HELP)
    run.add_argument(
        "--keep",
        action="store_true",
        help="keep serving the API and web UI after the experiment ends (Ctrl-C to stop)",
    )
    create = _add(sub, "create", cmd_create, "post an experiment to a running dispatcher API")
    create.add_argument("--config", "-c", required=True)
    create.add_argument("--foreground", "-f", action="store_true", help="follow until it ends")
    create.add_argument("--import", dest="import_file", help=_IMPORT_HELP)
    _add(sub, "resume", commands.cmd_resume, "continue a stopped experiment").add_argument("id")
    view = _add(sub, "view", commands.cmd_view, "show an experiment and its trials")
    view.add_argument("id")
    view.add_argument("--json", action="store_true")
    stop = _add(sub, "stop", commands.cmd_stop, "stop an experiment (or --all)")
    stop.add_argument("id", nargs="?")
    stop.add_argument("--all", action="store_true")
    update = _add(sub, "update", commands.cmd_update, "change a running experiment")
    update.add_argument("what", choices=["concurrency", "trialnum", "duration", "searchspace"])
    update.add_argument("id")
    update.add_argument("--value", "-v", help="new concurrency, trial number or duration (10m)")
    update.add_argument("--filename", "-f", help="new search space (JSON file)")

    _add_experiment_commands(sub)
    _add_trial_commands(sub)
    return parser


def _add_experiment_commands(sub: Any) -> None:
    experiment = sub.add_parser("experiment", help="list, show, export, import, delete")
    exp_sub = experiment.add_subparsers(dest="action", required=True)
    listing = _add(exp_sub, "list", commands.cmd_experiment_list, "list experiments")
    listing.add_argument("--all", action="store_true", help="include ended experiments")
    listing.add_argument("--json", action="store_true")
    show = _add(exp_sub, "show", commands.cmd_experiment_show, "one experiment as JSON")
    show.add_argument("id", nargs="?", help="default: the only running experiment")
    show.add_argument("--json", action="store_true", help="the default; accepted everywhere")
    status = _add(exp_sub, "status", commands.cmd_experiment_status, "one experiment's status")
    status.add_argument("id", nargs="?", help="default: the only running experiment")
    status.add_argument("--json", action="store_true")
    export = _add(exp_sub, "export", commands.cmd_experiment_export, "results in NNI's format")
    export.add_argument("id", nargs="?", help="default: the only running experiment")
    export.add_argument("--type", "-t", choices=["json", "csv"], default="json")
    export.add_argument("--filename", "-f")
    imported = _add(exp_sub, "import", commands.cmd_experiment_import, "feed earlier results")
    imported.add_argument("id")
    imported.add_argument("--filename", "-f", required=True)
    delete = _add(exp_sub, "delete", commands.cmd_experiment_delete, "delete ended experiments")
    delete.add_argument("id", nargs="?")
    delete.add_argument("--all", action="store_true")
    delete.add_argument("--purge", action="store_true", help="also delete staged files")


def _add_trial_commands(sub: Any) -> None:
    trial = sub.add_parser("trial", help="list, kill, read logs and metrics of trials")
    trial_sub = trial.add_subparsers(dest="action", required=True)
    ls = _add(trial_sub, "ls", commands.cmd_trial_ls, "list an experiment's trials")
    ls.add_argument("id", nargs="?", help="default: the only running experiment")
    ls.add_argument("--status", help="e.g. RUNNING or SUCCEEDED,FAILED")
    ls.add_argument("--head", type=int, help="the N best trials")
    ls.add_argument("--tail", type=int, help="the N worst trials")
    ls.add_argument("--json", action="store_true")
    kill = _add(trial_sub, "kill", commands.cmd_trial_kill, "cancel a trial")
    _add_trial_id(kill)
    log = _add(trial_sub, "log", commands.cmd_trial_log, "print a trial's stdout (or stderr)")
    _add_trial_id(log)
    log.add_argument("--json", action="store_true", help="{trial_id, path, text}")
    log.add_argument("--stderr", action="store_true")
    log.add_argument("--trial-log", action="store_true", help="the keeper's trial.log")
    log.add_argument("--replica", help="e.g. worker-1 (default: the primary replica)")
    metrics = _add(trial_sub, "metrics", commands.cmd_trial_metrics, "a trial's results")
    _add_trial_id(metrics)
    metrics.add_argument("--json", action="store_true", help="the default; accepted everywhere")
    webui = sub.add_parser("webui", help="the web UI's address")
    webui_sub = webui.add_subparsers(dest="action", required=True)
    url = _add(webui_sub, "url", commands.cmd_webui_url, "print the web UI URL")
    url.add_argument("id", nargs="?", help="open this experiment's overview")
    url.add_argument("--json", action="store_true")
    url.add_argument(
        "--with-token",
        action="store_true",
        help="append the token as a URL fragment (#token=...; browsers never send it to "
        "the server); mind your terminal history",
    )


def _add_trial_id(command: argparse.ArgumentParser) -> None:
    """``ID TRIAL`` or nnictl's ``ID -T TRIAL``."""
    command.add_argument("id")
    command.add_argument("trial_id", nargs="?")
    command.add_argument("-T", "--trial-id", dest="trial_flag", help="the trial (nnictl style)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if "trial_flag" in args:
        args.trial_id = args.trial_id or args.trial_flag
        if not args.trial_id:
            parser.error("name the trial: ID TRIAL or ID -T TRIAL")
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        err_console.print(f"[red]config error:[/] {exc}")
        return EXIT_USAGE
    except ApiError as exc:
        where = f" ({exc.field})" if exc.field else ""
        err_console.print(f"[red]error {exc.status}{where}:[/] {exc}")
        # Bad input or a wrong token is the user's to fix (2); a conflict with the
        # experiment's state (409) or a server fault is a failure (1).
        return EXIT_USAGE if exc.status in (400, 401, 403, 413) else EXIT_FAILED
    except NotFoundError as exc:
        err_console.print(f"[red]not found:[/] {exc}")
        return EXIT_FAILED
    except KubesweepError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())


def entry_point() -> None:
    sys.exit(main())
