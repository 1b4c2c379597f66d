"""Artifacts shared by export and runtime: the manifest, engine settings, folder checks."""
