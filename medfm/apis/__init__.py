"""The layer tools call: runs, inference, protocol, ensemble, submission, report."""
