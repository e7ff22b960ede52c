"""The rule catalog and the findings it produces."""
