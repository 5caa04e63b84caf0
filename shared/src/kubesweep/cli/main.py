"""``kubesweep``: run experiments on the embedded default or drive a running API."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from kubesweep.cli import render
from kubesweep.cli.client import ApiClient, ApiError, connection_file, state_dir, write_connection
from kubesweep.cli.embedded import EmbeddedStack
from kubesweep.config import load_config_file
from kubesweep.errors import ConfigError, KubesweepError, NotFoundError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
FINAL_STATUSES = {"DONE", "STOPPED", "ERROR"}
console = Console()
err_console = Console(stderr=True)


def _client(args: argparse.Namespace) -> ApiClient:
    return ApiClient.discover(args.url, args.token)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


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
    counts = ", ".join(f"{k} {v}" for k, v in sorted(exp.get("trial_counts", {}).items()))
    console.print(f"{len(trials)} trials: {counts}")
    if exp.get("message"):
        console.print(f"message: {exp['message']}")
    return EXIT_OK if exp["status"] == "DONE" else EXIT_FAILED


def cmd_run(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).expanduser() if args.workdir else state_dir() / "embedded"
    config = Path(args.config)
    # Refuse a bad config before paying for the stack's start-up.
    load_config_file(config)
    with EmbeddedStack(workdir) as stack:
        client = ApiClient(stack.api_url, stack.api_token)
        write_connection(stack.api_url, stack.api_token)
        exp_id: str | None = None
        try:
            exp_id = client.submit(config)
            console.print(f"experiment [bold]{exp_id}[/] submitted; logs in {stack.log_dir}")
            exp = follow(client, exp_id)
            return summarise(client, exp)
        except KeyboardInterrupt:
            if exp_id:
                with contextlib.suppress(KubesweepError):
                    client.stop(exp_id)
            console.print("interrupted; experiment stopped")
            return 130
        finally:
            connection_file().unlink(missing_ok=True)


def cmd_create(args: argparse.Namespace) -> int:
    client = _client(args)
    exp_id = client.submit(Path(args.config))
    console.print(f"experiment [bold]{exp_id}[/] created at {client.url}")
    if args.foreground:
        return summarise(client, follow(client, exp_id))
    return EXIT_OK


def cmd_experiment_list(args: argparse.Namespace) -> int:
    experiments = _client(args).experiments()
    if args.json:
        _print_json(experiments)
    else:
        console.print(render.experiments_table(experiments))
    return EXIT_OK


def cmd_experiment_show(args: argparse.Namespace) -> int:
    _print_json(_client(args).experiment(args.id))
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    reply = _client(args).stop(args.id)
    console.print(f"experiment {reply['experiment_id']}: {reply['status']}")
    return EXIT_OK


def cmd_trial_ls(args: argparse.Namespace) -> int:
    trials = _client(args).trials(args.id)
    if args.json:
        _print_json(trials)
    else:
        console.print(render.trials_table(trials))
    return EXIT_OK


def cmd_trial_kill(args: argparse.Namespace) -> int:
    reply = _client(args).cancel_trial(args.id, args.trial_id)
    console.print(f"trial {reply['trial_id']}: {reply['status']}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubesweep", description=__doc__)
    parser.add_argument(
        "--url",
        help="dispatcher API URL (default: KUBESWEEP_API_URL, the "
        "running embedded stack, or http://127.0.0.1:8080)",
    )
    parser.add_argument("--token", help="API bearer token (default: KUBESWEEP_API_TOKEN)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], helptext: str, parent: Any = sub
    ) -> argparse.ArgumentParser:
        command: argparse.ArgumentParser = parent.add_parser(name, help=helptext)
        command.set_defaults(handler=handler)
        return command

    run = add("run", cmd_run, "run an experiment on the embedded default (this machine)")
    run.add_argument("config", help="NNI v1 or v2 experiment config (YAML)")
    run.add_argument("--workdir", help="where storage and logs go (default ~/.kubesweep/embedded)")
    create = add("create", cmd_create, "post an experiment to a running dispatcher API")
    create.add_argument("--config", "-c", required=True)
    create.add_argument("--foreground", "-f", action="store_true", help="follow until it ends")
    experiment = sub.add_parser("experiment", help="list or show experiments")
    exp_sub = experiment.add_subparsers(dest="action", required=True)
    add("list", cmd_experiment_list, "list experiments", exp_sub).add_argument(
        "--json", action="store_true"
    )
    add("show", cmd_experiment_show, "show one experiment", exp_sub).add_argument("id")
    add("stop", cmd_stop, "stop an experiment").add_argument("id")
    trial = sub.add_parser("trial", help="list or kill trials")
    trial_sub = trial.add_subparsers(dest="action", required=True)
    ls = add("ls", cmd_trial_ls, "list an experiment's trials", trial_sub)
    ls.add_argument("id")
    ls.add_argument("--json", action="store_true")
    kill = add("kill", cmd_trial_kill, "cancel a trial", trial_sub)
    kill.add_argument("id")
    kill.add_argument("trial_id")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        err_console.print(f"[red]config error:[/] {exc}")
        return EXIT_USAGE
    except ApiError as exc:
        where = f" ({exc.field})" if exc.field else ""
        err_console.print(f"[red]error {exc.status}{where}:[/] {exc}")
        return EXIT_USAGE if 400 <= exc.status < 500 else EXIT_FAILED
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
