"""Code that runs inside Dask worker processes: the batch runner (``execute``), the progress
reporter that tasks call (``reporter``) and the per-item timeout watchdog (``watchdog``).

Kept light: importing it loads distributed's worker module and nothing of the client, the
store or the dashboard.
"""
