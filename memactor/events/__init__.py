"""Layer 1: the memory event model and byte sizes. Standard library only."""

from ._event import MAX_BLOCK as MAX_BLOCK
from ._event import MAX_SEQ as MAX_SEQ
from ._event import MAX_SIZE as MAX_SIZE
from ._event import MAX_TIMESTAMP as MAX_TIMESTAMP
from ._event import MIN_TIMESTAMP as MIN_TIMESTAMP
from ._event import REQUESTED_TAG as REQUESTED_TAG
from ._event import EventKind as EventKind
from ._event import MemoryEvent as MemoryEvent
from ._event import Tags as Tags
from ._event import check_device as check_device
from ._event import check_kind as check_kind
from ._event import check_timestamp as check_timestamp
from ._event import is_device as is_device
from ._event import requested_of as requested_of
from ._sites import CALLSITES_ENV as CALLSITES_ENV
from ._sites import INTERNAL_MODULES as INTERNAL_MODULES
from ._sites import NO_SITE as NO_SITE
from ._sites import SITE_TAG as SITE_TAG
from ._sites import Site as Site
from ._sites import SiteTable as SiteTable
from ._sites import callsites_from_env as callsites_from_env
from ._sites import check_callsites as check_callsites
from ._sites import site_of as site_of
from ._sizes import format_size as format_size
from ._sizes import parse_size as parse_size
