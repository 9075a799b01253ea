"""Agent phases, one per module, run in the order of ksi_multi.agent.PHASES."""
