"""The application layer: one call per command (animate files, evaluate, export, train, bench,
pairs, synth), used alike by the command line, the Python API, the web page and torchrun ranks.

Commands in donkey/cli/ parse options, make one call here and print what it returns."""
