"""The run report: a static HTML page per pipeline run, `<output dir>/reports/<run id>/
index.html`, with the run's facts, its data, training, evaluation, gate decision and a
short model card. `python -m pipeline run` writes it at the end of every run and
`python -m pipeline report` writes it again from ML Metadata and the artifacts.

- facts.py: reads the run from ML Metadata and its artifacts into a plain dict;
- examples.py, evaluation.py: the readers of ExampleGen's, the Evaluator's and the
  RegressionGate's outputs;
- charts.py: the pictures (matplotlib); model_card.py: the model card's text;
- render.py + templates/: the page (jinja2); writer.py: the folder, written whole.
"""
