"""Runs inside bench/.nni-venv: NNI 3.0's TpeTuner answering bench/tpe_latency.py.

One JSON request per stdin line; replies are printed as ``RESULT <json>`` (NNI logs to
stdout too). Not importable from the project: nni lives only in that venv.
"""

import json
import math
import sys
import time

from nni.algorithms.hpo.tpe_tuner import TpeTuner


def loss_of(p):
    """Must match bench/tpe_latency.py's loss_of."""
    act = {"relu": 0.0, "tanh": 0.3, "gelu": 0.1}[p["activation"]]
    return (
        (math.log10(p["lr"]) + 3) ** 2
        + (p["momentum"] - 0.9) ** 2 * 10
        + abs(p["dropout"] - 0.2)
        + abs(math.log2(p["batch_size"]) - 6) * 0.2
        + abs(p["layers"] - 4) * 0.1
        + act
        + p["init_scale"] ** 2 * 0.05
    )


def replay(space, seed, trials):
    """The same event sequence as tpe_latency.agreement, on NNI."""
    tuner = TpeTuner(optimize_mode="minimize", seed=seed)
    tuner.update_search_space(space)
    running, out = [], []
    for pid in range(trials):
        params = tuner.generate_parameters(pid)
        out.append(params)
        running.append((pid, params))
        if len(running) >= 4:
            done, p = running.pop(0)
            if done % 7 != 3:
                tuner.receive_trial_result(done, p, loss_of(p))
            tuner.trial_end(done, done % 7 != 3)
    return out


def main():
    tuner = None
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "load":
            tuner = TpeTuner(optimize_mode="minimize", seed=1)
            tuner.update_search_space(request["space"])
            tuner.import_data([{"parameter": p, "value": v} for p, v in request["data"]])
            result = None
        elif request["op"] == "time":
            start = time.perf_counter()
            tuner.generate_parameters(request["pid"])
            result = (time.perf_counter() - start) * 1e3
            tuner.trial_end(request["pid"], False)
        else:
            result = replay(request["space"], request["seed"], request["trials"])
        print("RESULT " + json.dumps(result, default=float), flush=True)


if __name__ == "__main__":
    main()
