"""``nb2prod compare``: runs side by side.

``resolve`` turns the command's arguments (run ids, ``pipelines/x[/vN]``, ``champion``) into run
records, ``tables`` builds the comparison as plain dataclasses (``code``: which steps' code
changed; ``trend``: each metric over the pipeline's runs, for the charts), ``text`` and ``html``
render it.
Only the standard library, PyYAML and nb2prod's shared modules are used: no MLflow, no kernel.
"""
