"""The planner's passes, each with one job, run in this order by :func:`nb2prod.plan.build_plan`:

1. :mod:`.roles`: each cell's role and step from its tags; the steps' engine settings.
2. :mod:`.checks`: each cell's analysis and what is wrong inside it; the parameters.
3. :mod:`.dataflow`: every step's inputs, outputs, parameters and hoisted code.
4. :mod:`.ordering`: dependencies between steps and their run order.
5. :mod:`.checks` again: unseeded randomness, MLflow overrides, whole-plan checks.

They share plain data (:mod:`.model`) and report to one :class:`.problems.ProblemLog`.
"""
