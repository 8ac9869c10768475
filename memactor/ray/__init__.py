"""memactor on Ray (``pip install memactor[ray]``): a named, detached aggregator actor,
and memory systems inside Ray actors and tasks as its sources."""

from ._aggregator import DEFAULT_NAME as DEFAULT_NAME
from ._aggregator import DEFAULT_NAMESPACE as DEFAULT_NAMESPACE
from ._aggregator import AggregatorActor as AggregatorActor
from ._aggregator import get_aggregator as get_aggregator
from ._source import RaySource as RaySource
