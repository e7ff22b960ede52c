"""The ground-truth server on a remote machine, over SSH."""
