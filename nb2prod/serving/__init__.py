"""The run's serving model: the notebook's own serving function, as an MLflow pyfunc model.

A version whose notebook tags a cell ``serving`` carries ``steps/serving.py`` and a ``serving``
section in ``pipeline.yaml`` (:class:`nb2prod.version_folder.ServingSpec`). After every
successful run nb2prod saves an MLflow model under ``<run_dir>/serving/model`` (the module as an
artifact, each need from the run folder, the parameters' values, the pinned requirements, a
signature and an input example), loads it back as MLflow will serve it, and checks it returns
what the function returned inside the run (the skew check).

The modules, one job each:

- :mod:`.outcome`: what run.json keeps under ``serving`` and the summary's line (no MLflow);
- :mod:`.function`: importing the serving module and giving it its needs (no MLflow);
- :mod:`.example`: the input example and the output it must give (no MLflow);
- :mod:`.skew`: comparing the served output with the recorded one (no MLflow);
- :mod:`.model`: the ``mlflow.pyfunc.PythonModel`` that MLflow loads and serves;
- :mod:`.build`: saving the model for a finished run and checking it (imports MLflow);
- :mod:`.process`: the process that builds it, so the runner never imports MLflow;
- :mod:`.serve`: ``nb2prod serve``: which model, then MLflow's scoring server.
"""
