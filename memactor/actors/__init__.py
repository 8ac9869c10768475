"""Layer 5: the metrics actor, the memory system, and memory-holding actors."""

from ._metrics import DiffSnapshots as DiffSnapshots
from ._metrics import Flush as Flush
from ._metrics import GetStatistics as GetStatistics
from ._metrics import MetricsActor as MetricsActor
from ._metrics import RequestFailed as RequestFailed
from ._metrics import Subscribe as Subscribe
from ._metrics import TakeSnapshot as TakeSnapshot
from ._metrics import UnknownSnapshotError as UnknownSnapshotError
from ._pipeline import FunctionStage as FunctionStage
from ._pipeline import Pipeline as Pipeline
from ._pipeline import PipelineStatistics as PipelineStatistics
from ._pipeline import Stage as Stage
from ._pipeline import open_pipeline as open_pipeline
from ._pipeline import run_pipeline as run_pipeline
from ._system import METRICS_NAME as METRICS_NAME
from ._system import MemorySystem as MemorySystem
from ._system import Metrics as Metrics
from ._system import open_system as open_system
