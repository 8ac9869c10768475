"""Layer 2: msgpack payloads with a schema version, and their decoder limits."""

from ._codec import DEFAULT_LIMITS as DEFAULT_LIMITS
from ._codec import SCHEMA_VERSION as SCHEMA_VERSION
from ._codec import CodecError as CodecError
from ._codec import DecodeLimits as DecodeLimits
from ._codec import decode as decode
from ._codec import decode_json as decode_json
from ._codec import encode as encode
from ._codec import frame as frame
from ._codec import unframe as unframe
from ._codec import unpack as unpack
from ._codec import write as write
from ._events import decode_events as decode_events
from ._events import encode_events as encode_events
from ._files import PARTIAL_SUFFIX as PARTIAL_SUFFIX
from ._files import decode_buffer as decode_buffer
from ._files import is_partial as is_partial
from ._files import read as read
from ._files import read_file as read_file
from ._files import save_atomically as save_atomically
