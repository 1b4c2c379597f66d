"""Networks, attention, geometry, configs, graph specs and checkpoints. Imports nothing else of donkey."""
