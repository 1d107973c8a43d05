"""`python -m pipeline infer-schema`: the schema TFDV infers from the latest run's
statistics, written beside the reviewed one for a person to compare.

The pipeline validates every span against `components/validation/schema.pbtxt`, which
changes only by review. When the data legitimately changes (a new class, bigger
images), this writes what TFDV would infer from the newest statistics so that the
difference can be read, and the reviewed file edited, deliberately.
"""

from __future__ import annotations

import os
from typing import Optional

from components.contract import TRAIN_SPLIT
from components.data.split_files import split_statistics, split_uri


def latest_statistics_uri(metadata_path: str, pipeline_name: str) -> Optional[str]:
    """The newest ExampleStatistics artifact StatisticsGen published for the pipeline."""
    from ml_metadata.metadata_store import metadata_store
    from tfx.orchestration import metadata

    store = metadata_store.MetadataStore(
        metadata.sqlite_metadata_connection_config(metadata_path))
    node = store.get_context_by_type_and_name("node", f"{pipeline_name}.StatisticsGen")
    if node is None:
        return None
    statistics = [artifact for artifact in store.get_artifacts_by_context(node.id)
                  if artifact.state == artifact.LIVE and "Statistics" in
                  store.get_artifact_types_by_id([artifact.type_id])[0].name]
    return max(statistics, key=lambda artifact: artifact.id).uri if statistics else None


def write_inferred_schema(statistics_uri: str, destination: str) -> str:
    """Infers a schema from the train split's statistics (as SchemaGen would, feature
    shapes included) and writes it as text to `destination`."""
    import tensorflow_data_validation as tfdv
    from tfx.utils import io_utils

    statistics = split_statistics(statistics_uri, TRAIN_SPLIT)
    if statistics is None:
        raise FileNotFoundError(f"{split_uri(statistics_uri, TRAIN_SPLIT)}: no statistics of "
                                f"the train split")
    schema = tfdv.infer_schema(statistics, infer_feature_shape=True)
    os.makedirs(os.path.dirname(os.path.abspath(destination)), exist_ok=True)
    io_utils.write_pbtxt_file(destination, schema)
    return os.path.abspath(destination)
