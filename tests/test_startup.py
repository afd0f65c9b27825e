"""A LocalCluster's workers start without running the client's script, and get what it
imports only when they use it (start-up that does not grow with the script's imports)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

HEAVY = textwrap.dedent('''
    import os
    import sys

    # every process that imports this module leaves its pid in the marker directory
    open(os.path.join(os.environ["MARKERS"], str(os.getpid())), "w").close()
    VALUE = 42
''')

SCRIPT = textwrap.dedent('''
    import os
    import sys

    import heavy

    from daskfarm import Farm


    class Point:
        def __init__(self, x):
            self.x = x


    def plain(x):
        return os.getpid()


    def uses_heavy(x):
        return heavy.VALUE


    def doubled(point):
        return point.x * 2


    def importers():
        return sorted(int(name) for name in os.listdir(os.environ["MARKERS"]))


    if __name__ == "__main__":
        with Farm(n_workers=2, dashboard=False) as farm:
            workers = set(farm.map(plain, range(20), batch_size=1, progress=False))
            print("workers", sorted(workers))
            print("importers before use", importers())
            print("heavy", sorted(set(farm.map(uses_heavy, range(4), progress=False))))
            print("importers after use", importers())
            print("points", sorted(farm.map(doubled, [Point(1), Point(2)], progress=False)))
        print("client", os.getpid())
''')


def test_workers_import_the_scripts_modules_only_when_used(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    (tmp_path / "heavy.py").write_text(HEAVY)
    script = tmp_path / "sweep.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, MARKERS=str(markers),
               PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(" ", 1) if " " in line else (line, "")
                 for line in proc.stdout.replace("importers before use", "before")
                 .replace("importers after use", "after").splitlines())
    client = int(lines["client"])
    workers = set(eval(lines["workers"]))
    assert client not in workers and workers
    # the workers did not run the script (nor its `import heavy`) to start
    assert eval(lines["before"]) == [client]
    # a task that uses the module gets it, imported on the worker at first use
    assert eval(lines["heavy"]) == [42]
    assert set(eval(lines["after"])) - {client} <= workers
    assert len(eval(lines["after"])) > 1
    # items of a class defined in the script: the worker imports the script for them
    assert eval(lines["points"]) == [2, 4]
