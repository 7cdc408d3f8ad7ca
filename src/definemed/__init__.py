"""DeFineMed: adapt an instruct LLM to German medicine (corpus, CPT, merge) and measure whether it worked."""

__version__ = "0.2.0"
