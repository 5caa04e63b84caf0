"""A synthetic objective with a known optimum of 1.0 at x=0.3, y=-0.5, optimizer=adam.

Written against NNI's API, unchanged: it runs under NNI and under kubesweep."""

import math
import time

import nni

params = nni.get_next_parameter()
x, y = params["x"], params["y"]
scale = 1.0 if params["optimizer"] == "adam" else 0.9
peak = scale * math.exp(-((x - 0.3) ** 2 + (y + 0.5) ** 2))

for step in range(1, 4):
    time.sleep(0.05)
    nni.report_intermediate_result(peak * step / 3)
nni.report_final_result(peak)
print(f"x={x:.3f} y={y:.3f} optimizer={params['optimizer']} -> {peak:.4f}")
