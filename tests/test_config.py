"""daskfarm's Dask config: the YAML defaults, their schema, env overrides, and the wiring."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dask
import pytest
import yaml

from daskfarm import DataManager, Farm, FarmConnectionError, FarmValueError
from daskfarm import config as farm_config
from daskfarm.client import preflight as _preflight
from daskfarm.worker import execute as _execute
from tests import _tasks
from tests.conftest import DEADLINE


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def walk(defaults: dict, schema: dict, path: str = ""):
    """Yield (key path, default, schema node) for every leaf, asserting both sides agree."""
    props = schema.get("properties", {})
    assert set(defaults) == set(props), f"{path or 'top'}: yaml {sorted(defaults)} vs " \
                                        f"schema {sorted(props)}"
    for key, value in defaults.items():
        node = props[key]
        if isinstance(value, dict):
            assert node.get("type") == "object", f"{path}{key}"
            yield from walk(value, node, f"{path}{key}.")
        else:
            yield f"{path}{key}", value, node


def test_every_default_has_a_described_schema_entry_and_back():
    leaves = list(walk(load(farm_config.DEFAULTS_FILE), load(farm_config.SCHEMA_FILE)))
    assert len(leaves) >= 15
    for key, _, node in leaves:
        assert len(node.get("description", "")) > 20, f"{key} needs a description"


def test_the_defaults_validate_against_the_schema_and_bad_values_do_not():
    jsonschema = pytest.importorskip("jsonschema")
    schema, defaults = load(farm_config.SCHEMA_FILE), load(farm_config.DEFAULTS_FILE)
    jsonschema.validate(defaults, schema)
    for bad in ({"errors": "maybe"}, {"batch-size": 0}, {"store": {"commit-records": 0}},
                {"preflight": {"version-mismatch": "sometimes"}}, {"no-such-key": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"daskfarm": {**defaults["daskfarm"], **bad}}, schema)


def test_defaults_are_loaded_into_dask_config():
    assert dask.config.get("daskfarm.batch-size") == "auto"
    assert dask.config.get("daskfarm.store.commit-records") == 500
    assert farm_config.get_seconds("connect.timeout") == 10.0
    assert farm_config.get("retries", 3) == 3
    with dask.config.set({"daskfarm.retries": 2}):
        assert farm_config.get("retries") == 2


def test_environment_variables_override_the_defaults():
    code = ("import json; from daskfarm import config as c; print(json.dumps([c.get('batch-size'), "
            "c.get_seconds('store.commit-interval'), c.get_seconds('connect.timeout'), "
            "c.get('errors'), c.get('preflight.version-mismatch'), c.get('buffersize')]))")
    env = {**os.environ, "DASK_DASKFARM__BATCH_SIZE": "7",
           "DASK_DASKFARM__STORE__COMMIT_INTERVAL": "5s",
           "DASK_DASKFARM__CONNECT__TIMEOUT": "2 minutes", "DASK_DASKFARM__ERRORS": "continue",
           "DASK_DASKFARM__PREFLIGHT__VERSION_MISMATCH": "warn"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=2 * DEADLINE, check=True).stdout
    assert json.loads(out) == [7, 5.0, 120.0, "continue", "warn", None]


def test_connect_timeout_comes_from_the_config():
    with dask.config.set({"daskfarm.connect.timeout": "1s"}), \
            pytest.raises(FarmConnectionError, match="within 1 s"):
        Farm("tcp://127.0.0.1:9")  # the discard port: nobody answers


def test_an_unknown_version_policy_is_refused():
    with dask.config.set({"daskfarm.preflight.version-mismatch": "sometimes"}), \
            pytest.raises(FarmValueError, match="raise, warn, ignore"):
        _preflight.check_versions({})


def test_farm_and_map_take_their_defaults_from_the_config(tmp_path, monkeypatch):
    seen: dict = {}
    make_spec, session = _execute.make_spec, DataManager.session

    def spy_spec(*args, **kwargs):
        seen["report_interval"] = kwargs["report_interval"]
        return make_spec(*args, **kwargs)

    def spy_session(self, *args, **kwargs):
        seen["commit"] = (kwargs["commit_interval"], kwargs["commit_records"])
        return session(self, *args, **kwargs)

    monkeypatch.setattr(_execute, "make_spec", spy_spec)
    monkeypatch.setattr(DataManager, "session", spy_session)
    settings = {"daskfarm.local.n-workers": 1, "daskfarm.local.processes": False,
                "daskfarm.controls": False, "daskfarm.errors": "continue",
                "daskfarm.report-interval": "250ms", "daskfarm.store.commit-interval": "3s",
                "daskfarm.store.commit-records": 7, "daskfarm.progress": False}
    with dask.config.set(settings), Farm() as farm:
        assert len(farm.client.nthreads()) == 1  # local.n-workers
        assert "token=" not in farm.panel_link  # controls off: a read-only panel
        run = farm.map(_tasks.fails_on_multiples_of_3, range(7), store=tmp_path / "s")
        assert sorted(run) == [1, 2, 4, 5]  # errors=continue: no raise
        assert run.counts["failed"] == 3
    assert seen == {"report_interval": 0.25, "commit": (3.0, 7)}


def _worker_settings():
    keys = ("distributed.admin.tick.interval", "distributed.worker.profile.enabled",
            "distributed.worker.memory.monitor-interval")
    return {key: dask.config.get(key) for key in keys}


def test_the_farms_own_cluster_runs_quiet_unless_the_user_said_otherwise():
    # Dask's defaults cost the tasks CPU on a small machine; a user's own setting still wins
    with Farm(n_workers=1, threads_per_worker=1) as farm:
        seen = farm.client.run(_worker_settings)
    (settings,) = seen.values()
    assert settings == {"distributed.admin.tick.interval": "500ms",
                        "distributed.worker.profile.enabled": False,
                        "distributed.worker.memory.monitor-interval": "500ms"}
    with dask.config.set({"distributed.admin.tick.interval": "50ms"}):
        with Farm(n_workers=1, threads_per_worker=1) as farm:
            (settings,) = farm.client.run(_worker_settings).values()
    assert settings["distributed.admin.tick.interval"] == "50ms"
    assert settings["distributed.worker.profile.enabled"] is False
    with dask.config.set({"daskfarm.local.quiet": False}):
        with Farm(n_workers=1, threads_per_worker=1) as farm:
            (settings,) = farm.client.run(_worker_settings).values()
    assert settings == {"distributed.admin.tick.interval": "20ms",
                        "distributed.worker.profile.enabled": True,
                        "distributed.worker.memory.monitor-interval": "100ms"}
