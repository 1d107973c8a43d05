"""The pipeline: its one factory (`pipeline.py`), the builders from the config to it, the
runners per orchestrator (local and Beam, Airflow, Kubeflow), the command line
(`python -m pipeline`), the console and log of a run, its summary and report, and the
staging of the project for remote Beam workers."""
