"""Exporting: a plan into the files of a new, sealed version folder.

:mod:`.codegen` turns a :class:`nb2prod.plan.planner.Plan` into file bytes (step modules,
``pipeline.yaml``, ``config.yaml``, README), :mod:`.imports` formats each step's import block,
:mod:`.writer` writes a version atomically, and :mod:`.versions` lists and compares versions.
Nothing outside this package and the front ends imports it: reading a version does not.
"""
