"""The imperative shell: Faust agents, state, web views and metrics around the core."""
