"""A task for the container tests, copied next to the recipe's tasks/mymodel.py (so the
containers import it as ``farm_gate``, like the host does)."""

from distributed import Event


def gated(item):
    """x * x once the test sets the run's Event: items stay in flight until then."""
    if not Event(item["event"]).wait(timeout=300):
        raise TimeoutError(f"the test never set the Event {item['event']!r}")
    return item["x"] * item["x"]
