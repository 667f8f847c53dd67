"""Quality gates: comparisons of a run's metrics with fixed numbers and with a baseline run.

``expr`` parses the notebook's ``gates`` cell and ``--gate`` options (never executing them),
``baseline`` finds the run to compare with, ``check`` evaluates the gates after a run, and
``champion`` keeps the pipeline's promoted run.
"""
