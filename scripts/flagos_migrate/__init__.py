"""Logic of the model-migrate-flagos skill bundle.

The scripts in ``scripts/`` are thin command-line entry points; everything they do lives
in the modules of this package so that the validator, the migration planner and the
rewriter share one rule catalog and one analysis.
"""

__version__ = "0.1.0"
