"""minillm_lib: the small GPT library that the minillm course builds, chapter by chapter."""
