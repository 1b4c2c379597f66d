"""Media I/O, datasets, augmentation, synthetic creatures and GIF pairing."""
