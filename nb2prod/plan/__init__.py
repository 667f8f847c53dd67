"""Planning: a notebook read into cells, and its cells into the steps of a pipeline.

:mod:`.notebook` reads a notebook file into plain cells; :mod:`.params` its parameters;
:mod:`.analysis` and :mod:`.randomness` what each cell reads, writes and draws. The planner
(:func:`.planner.build_plan`) then runs its passes, each with one job, in this order:

1. :mod:`.roles`: each cell's role and step from its tags; the steps' engine settings.
2. :mod:`.checks`: each cell's analysis and what is wrong inside it; the parameters.
3. :mod:`.dataflow`: every step's inputs, outputs, parameters and hoisted code.
4. :mod:`.ordering`: dependencies between steps and their run order.
5. :mod:`.checks` again: unseeded randomness, MLflow overrides, whole-plan checks.

They share plain data (:mod:`.model`) and report to one :class:`.problems.ProblemLog`;
:mod:`.report` words a plan for ``nb2prod inspect``. This package imports nothing of the
exporter or the runner.
"""
