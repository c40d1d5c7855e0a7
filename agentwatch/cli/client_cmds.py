"""Client commands (subscribe, ps, logs, runs, stop, restart, signal, emit)."""
