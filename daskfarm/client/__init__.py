"""Code that runs in the user's process: options, run state, the feeder loop and its parts,
batching, connecting, preflight checks, the terminal bar and SIGTERM handling."""
