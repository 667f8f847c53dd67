"""Running: an exported version, step by step, in fresh kernels.

:mod:`.runner` drives a run through named phases and keeps its :mod:`.record`; :mod:`.kernels`
and :mod:`.zygote` start the step kernels; :mod:`.cache` reuses unchanged steps;
:mod:`.overrides` layers run-time parameters on the version's defaults; :mod:`.progress`,
:mod:`.summary` and :mod:`.ci_reports` report a run. It may use the planner's types, never
the reverse.
"""
