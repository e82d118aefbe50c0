"""Data: the lexicon, word lists and dictionaries, fonts and synthetic rendering, preprocessing, input files."""
