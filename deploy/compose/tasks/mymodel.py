"""An example task for the compose recipe: mounted at /app in every container."""

import math
import time

from daskfarm import report


def simulate(params, report=report):
    """A toy 'simulation' of one parameter set that reports its progress."""
    x = params["x"]
    total = 0.0
    for step in report.iter(range(20)):
        total += math.sin(x * step)
        time.sleep(0.05)
    return {"x": x, "y": total}
