"""What the report reads from the RegressionGate's outputs beyond pipeline.decision's
figures (which include TFMA's confusion matrix): the test images the candidate got
most confidently wrong.

Each reader returns None when its output is not there (an Evaluator configured
without the plot, a gate that kept no predictions), so the page can say so.
"""

from __future__ import annotations

from typing import List, Optional


def confidently_wrong(blessing_uri: str, count: int) -> Optional[List[dict]]:
    """The `count` test images the candidate got wrong with the highest probability
    on its (wrong) answer, from the gate's predictions; None without them."""
    import numpy as np

    from components.evaluation.regression_gate import read_predictions

    predictions = read_predictions(blessing_uri)
    if predictions is None:
        return None
    image_ids = predictions["image_id"]
    labels = predictions["label"]
    probabilities = predictions["candidate_probabilities"]
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:count]
    return [{"image_id": str(image_ids[i]), "label": int(labels[i]),
             "predicted": int(predicted[i]), "confidence": float(confidence[i]),
             "label_probability": float(probabilities[i, labels[i]])} for i in wrong]
