"""memactor's actor framework: supervised trio tasks with bounded mailboxes.

::

    async with open_system() as system:
        ref = await system.spawn(Decoder, name="decode.chunks", mailbox_size=16)
        await ref.send(chunk)             # waits while the mailbox is full
        summary = await ref.ask("summary", timeout=1.0)
"""

from ._actor import Actor as Actor
from ._exceptions import ActorFailedError as ActorFailedError
from ._exceptions import ActorNotFoundError as ActorNotFoundError
from ._exceptions import AskTimeoutError as AskTimeoutError
from ._exceptions import DuplicateNameError as DuplicateNameError
from ._exceptions import MessageDroppedError as MessageDroppedError
from ._exceptions import RestartIntensityError as RestartIntensityError
from ._hub import DEFAULT_CHANNEL_SIZE as DEFAULT_CHANNEL_SIZE
from ._hub import DEFAULT_FLUSH_INTERVAL_S as DEFAULT_FLUSH_INTERVAL_S
from ._hub import Collected as Collected
from ._hub import MemoryHub as MemoryHub
from ._inbox import EventBatch as EventBatch
from ._mailbox import Overflow as Overflow
from ._policy import DEFAULT_BACKOFF as DEFAULT_BACKOFF
from ._policy import NO_BACKOFF as NO_BACKOFF
from ._policy import Backoff as Backoff
from ._policy import Restart as Restart
from ._policy import Strategy as Strategy
from ._ref import ActorRef as ActorRef
from ._ref import current_actor as current_actor
from ._reporter import DEFAULT_BATCH_SIZE as DEFAULT_BATCH_SIZE
from ._reporter import MemoryReporter as MemoryReporter
from ._reporter import NullReporter as NullReporter
from ._reporter import NullThreadReporter as NullThreadReporter
from ._reporter import Reporter as Reporter
from ._reporter import ThreadReporter as ThreadReporter
from ._sited import SampledReporter as SampledReporter
from ._sited import SitedReporter as SitedReporter
from ._stall import DEFAULT_STALL_THRESHOLD_S as DEFAULT_STALL_THRESHOLD_S
from ._stall import Stall as Stall
from ._stall import StallStatistics as StallStatistics
from ._stall import StallWatch as StallWatch
from ._stats import ActorState as ActorState
from ._stats import ActorStatistics as ActorStatistics
from ._supervisor import DEFAULT_MAILBOX_SIZE as DEFAULT_MAILBOX_SIZE
from ._supervisor import DEFAULT_MAX_RESTARTS as DEFAULT_MAX_RESTARTS
from ._supervisor import DEFAULT_WITHIN_S as DEFAULT_WITHIN_S
from ._supervisor import Supervisor as Supervisor
from ._system import ActorSpec as ActorSpec
from ._system import ActorSystem as ActorSystem
from ._system import open_system as open_system
from ._system import run_system as run_system
