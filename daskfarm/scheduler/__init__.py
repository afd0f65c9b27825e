"""Code that runs on the Dask scheduler: the plugin that keeps every run's live state
(``plugin``, ``state``). No Bokeh here: the plugin imports the dashboard page once, guarded."""
