"""Speaking up: breach warnings, error-budget alerts and the leads' morning digest, each sent once."""
