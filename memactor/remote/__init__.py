"""Serve the metrics actor over a socket, and watch it from another process."""

from ._address import TcpAddress as TcpAddress
from ._address import UnixAddress as UnixAddress
from ._address import find_server as find_server
from ._address import find_servers as find_servers
from ._address import parse_address as parse_address
from ._address import runtime_dir as runtime_dir
from ._client import Connection as Connection
from ._client import connect as connect
from ._client import fetch_snapshot as fetch_snapshot
from ._client import follow as follow
from ._client import watch as watch
from ._errors import ProtocolError as ProtocolError
from ._errors import RefusedError as RefusedError
from ._errors import RemoteError as RemoteError
from ._feed import ConnectionLost as ConnectionLost
from ._feed import Feed as Feed
from ._feed import Source as Source
from ._feed import ViewUpdate as ViewUpdate
from ._server import Server as Server
from ._server import ServerStatistics as ServerStatistics
from ._server import open_server as open_server
from ._wire import MAX_RATE_HZ as MAX_RATE_HZ
