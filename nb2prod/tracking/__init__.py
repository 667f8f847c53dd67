"""Tracking: a run folder logged to MLflow.

:mod:`.mlflow_log` turns a run record and its folder into MLflow runs (a parent run, one nested
run per step); :mod:`.worker` does that in a process of its own while the steps run, so a
pipeline run never waits on MLflow's imports. It reads run folders and imports nothing else of
nb2prod's but :mod:`nb2prod.run_folder` and :mod:`nb2prod.gc_tuning`.
"""
