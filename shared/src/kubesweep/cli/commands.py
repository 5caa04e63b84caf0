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
from kubesweep.importdata import is_json, parse_results, read_text

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


def one_id(client: ApiClient, args: argparse.Namespace) -> str:
    """The id given, or the only running experiment (nnictl's default)."""
    return args.id or experiment_ids(client, args)[0]


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
    trials = client.trials(args.id)
    if args.json:
        print_json({"experiment": exp, "trials": trials})
        return EXIT_OK
    console.print(render.experiments_table([exp]))
    console.print(render.trials_table(trials))
    # nnictl view opens the web UI; here every experiment is always viewable there.
    console.print(f"web UI: {client.url.rstrip('/')}/oview?id={exp['id']}")
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
    if args.what == "duration":
        return {key: args.value}
    try:
        return {key: int(args.value)}
    except ValueError:
        raise ConfigError(f"must be a whole number, got {args.value!r}", field="value") from None


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
    client = client_for(args)
    print_json(client.experiment(one_id(client, args)))
    return EXIT_OK


def cmd_experiment_status(args: argparse.Namespace) -> int:
    client = client_for(args)
    exp = client.experiment(one_id(client, args))
    if args.json:
        print_json({k: exp[k] for k in ("id", "status", "message", "trial_counts", "best")})
    else:
        console.print(f"{exp['id']}: {exp['status']} {exp.get('message') or ''}".rstrip())
    return EXIT_OK


def cmd_experiment_export(args: argparse.Namespace) -> int:
    client = client_for(args)
    data = client.export(one_id(client, args), args.type)
    text = data if isinstance(data, str) else json.dumps(data, indent=2)
    if args.filename:
        Path(args.filename).write_text(text)
        console.print(f"exported to {args.filename}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return EXIT_OK


def cmd_experiment_import(args: argparse.Namespace) -> int:
    client = client_for(args)
    text = read_text(Path(args.filename))
    # JSON or CSV (NNI's or kubesweep's export); CSV columns are told apart by the space.
    space = {} if is_json(text) else client.experiment(args.id)["spec"]["search_space"]
    rows = parse_results(text, list(space), source=args.filename)
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
    trials = client.trials(one_id(client, args), status=args.status, sort=sort)
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
    path = f"output/{chosen}/{stream}"
    text = client.read_file(args.id, args.trial_id, path)
    if args.json:
        print_json({"trial_id": args.trial_id, "path": path, "text": text})
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_trial_metrics(args: argparse.Namespace) -> int:
    print_json(client_for(args).metrics(args.id, args.trial_id))
    return EXIT_OK


def cmd_webui_url(args: argparse.Namespace) -> int:
    client = client_for(args)
    url = client.url.rstrip("/") + (f"/oview?id={args.id}" if args.id else "/")
    if args.with_token and client.token:
        # A fragment stays in the browser: it is in no request line and no server log.
        url += f"#token={client.token}"
    print(json.dumps({"url": url}) if args.json else url)
    return EXIT_OK
