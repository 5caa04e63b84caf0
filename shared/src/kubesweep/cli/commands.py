"""nnictl-style commands that drive a running dispatcher API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from kubesweep.cli import render
from kubesweep.cli.client import ApiClient
from kubesweep.errors import ConfigError, NotFoundError
from kubesweep.importdata import load_results_file

EXIT_OK, EXIT_FAILED = 0, 1
console = Console()
# The folders keepers write to, most likely primary replica first.
_PRIMARY_FIRST = ("local-0", "master-0", "chief-0", "worker-0")


def client_for(args: argparse.Namespace) -> ApiClient:
    return ApiClient.discover(args.url, args.token)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


def experiment_ids(client: ApiClient, args: argparse.Namespace) -> list[str]:
    """The id given, or with --all every experiment that has not ended."""
    if getattr(args, "all", False):
        return [e["id"] for e in client.experiments() if e["status"] not in ("DONE", "STOPPED")]
    if args.id:
        return [args.id]
    live = [e for e in client.experiments() if e["status"] not in ("DONE", "STOPPED", "ERROR")]
    if len(live) == 1:
        return [live[0]["id"]]
    raise ConfigError("name the experiment (several or none are running)", field="id")


def cmd_stop(args: argparse.Namespace) -> int:
    client = client_for(args)
    for exp_id in experiment_ids(client, args):
        reply = client.stop(exp_id)
        console.print(f"experiment {reply['experiment_id']}: {reply['status']}")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    reply = client_for(args).resume(args.id)
    console.print(f"experiment {reply['experiment_id']}: {reply['status']}")
    return EXIT_OK


def cmd_view(args: argparse.Namespace) -> int:
    client = client_for(args)
    exp = client.experiment(args.id)
    console.print(render.experiments_table([exp]))
    console.print(render.trials_table(client.trials(args.id)))
    return EXIT_OK


def _update_value(args: argparse.Namespace) -> dict[str, Any]:
    if args.what == "searchspace":
        if not args.filename:
            raise ConfigError("give the new search space with --filename", field="filename")
        try:
            return {"search_space": json.loads(Path(args.filename).read_text())}
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read {args.filename}: {exc}", field="filename") from exc
    if args.value is None:
        raise ConfigError(f"give the new {args.what} with --value", field="value")
    key = {
        "concurrency": "trial_concurrency",
        "trialnum": "max_trial_number",
        "duration": "max_experiment_duration",
    }[args.what]
    value: Any = args.value if args.what == "duration" else int(args.value)
    return {key: value}


def cmd_update(args: argparse.Namespace) -> int:
    reply = client_for(args).update(args.id, _update_value(args))
    console.print(f"experiment {reply['experiment_id']} updated: {reply['changes']}")
    return EXIT_OK


def cmd_experiment_list(args: argparse.Namespace) -> int:
    experiments = client_for(args).experiments()
    if not args.all:
        experiments = [e for e in experiments if e["status"] not in ("DONE", "STOPPED", "ERROR")]
    if args.json:
        print_json(experiments)
    else:
        console.print(render.experiments_table(experiments))
    return EXIT_OK


def cmd_experiment_show(args: argparse.Namespace) -> int:
    print_json(client_for(args).experiment(args.id))
    return EXIT_OK


def cmd_experiment_status(args: argparse.Namespace) -> int:
    exp = client_for(args).experiment(args.id)
    if args.json:
        print_json({k: exp[k] for k in ("id", "status", "message", "trial_counts", "best")})
    else:
        console.print(f"{exp['id']}: {exp['status']} {exp.get('message') or ''}".rstrip())
    return EXIT_OK


def cmd_experiment_export(args: argparse.Namespace) -> int:
    data = client_for(args).export(args.id, args.type)
    text = data if isinstance(data, str) else json.dumps(data, indent=2)
    if args.filename:
        Path(args.filename).write_text(text)
        console.print(f"exported to {args.filename}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def cmd_experiment_import(args: argparse.Namespace) -> int:
    client = client_for(args)
    # JSON or CSV (NNI's or kubesweep's export); CSV columns are told apart by the space.
    space = client.experiment(args.id).get("spec", {}).get("search_space", {})
    rows = load_results_file(Path(args.filename), list(space))
    reply = client.import_results(args.id, rows)
    console.print(f"imported {reply['imported']} results into {reply['experiment_id']}")
    return EXIT_OK


def cmd_experiment_delete(args: argparse.Namespace) -> int:
    client = client_for(args)
    ids = [e["id"] for e in client.experiments()] if args.all else [args.id]
    for exp_id in ids:
        reply = client.delete(exp_id, purge=args.purge)
        console.print(f"experiment {reply['experiment_id']} deleted")
    return EXIT_OK


def cmd_trial_ls(args: argparse.Namespace) -> int:
    client = client_for(args)
    sort = "metric" if (args.head or args.tail) else "seq"
    trials = client.trials(args.id, status=args.status, sort=sort)
    if args.head:
        trials = trials[: args.head]
    elif args.tail:
        scored = [t for t in trials if t.get("default_metric") is not None]
        trials = scored[-args.tail :]
    if args.json:
        print_json(trials)
    else:
        console.print(render.trials_table(trials))
    return EXIT_OK


def cmd_trial_kill(args: argparse.Namespace) -> int:
    reply = client_for(args).cancel_trial(args.id, args.trial_id)
    console.print(f"trial {reply['trial_id']}: {reply['status']}")
    return EXIT_OK


def cmd_trial_log(args: argparse.Namespace) -> int:
    client = client_for(args)
    stream = "stderr" if args.stderr else "trial.log" if args.trial_log else "stdout"
    folders = [
        e["name"] for e in client.files(args.id, args.trial_id, "output")["entries"] if e["is_dir"]
    ]
    if not folders:
        raise NotFoundError(f"trial {args.trial_id} has written no output yet")
    folders.sort(key=lambda n: (n not in _PRIMARY_FIRST, n))
    chosen = args.replica or folders[0]
    sys.stdout.write(client.read_file(args.id, args.trial_id, f"output/{chosen}/{stream}"))
    return EXIT_OK


def cmd_trial_metrics(args: argparse.Namespace) -> int:
    print_json(client_for(args).metrics(args.id, args.trial_id))
    return EXIT_OK


def cmd_webui_url(args: argparse.Namespace) -> int:
    print(client_for(args).url.rstrip("/") + "/")
    return EXIT_OK
