"""The Parquet learning-curve store: schema, writer, reader. Imports neither torch nor timm."""

from metagen.store.errors import (
    CorruptFileError,
    RunConflictError,
    SchemaVersionError,
    StoreError,
    StoreNotFoundError,
    ValidationError,
)
from metagen.store.layout import StoreMetadata, create_store, read_metadata
from metagen.store.reader import CurveArrays, StoreReader
from metagen.store.schema import SCHEMA_VERSION, Problem, pipeline_id, validate
from metagen.store.writer import compact, write_partition, write_run

__all__ = [
    "SCHEMA_VERSION",
    "CorruptFileError",
    "CurveArrays",
    "Problem",
    "RunConflictError",
    "SchemaVersionError",
    "StoreError",
    "StoreMetadata",
    "StoreNotFoundError",
    "StoreReader",
    "ValidationError",
    "compact",
    "create_store",
    "pipeline_id",
    "read_metadata",
    "validate",
    "write_partition",
    "write_run",
]
