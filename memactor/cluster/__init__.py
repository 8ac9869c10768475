"""Beyond one process: sources push updates of their ledgers to an aggregator that keeps
an exact copy of each and serves them merged, with host and process as dimensions."""

from ._aggregator import MAX_SOURCES as MAX_SOURCES
from ._aggregator import Aggregator as Aggregator
from ._aggregator import AggregatorStatistics as AggregatorStatistics
from ._aggregator import open_aggregator as open_aggregator
from ._delta import LedgerCopy as LedgerCopy
from ._delta import UpdateMaker as UpdateMaker
from ._merge import HostStats as HostStats
from ._merge import by_host as by_host
from ._source import ClusterSource as ClusterSource
from ._source import SourceStatistics as SourceStatistics
from ._source import open_source as open_source
from ._wire import DEFAULT_UPDATE_HZ as DEFAULT_UPDATE_HZ
from ._wire import HEARTBEAT_TIMEOUT_S as HEARTBEAT_TIMEOUT_S
