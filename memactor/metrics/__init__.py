"""Layer 3: the metrics core. Pure and synchronous: no trio, no I/O but snapshot files.

The :class:`Ledger` turns memory events into exact statistics, and :class:`EventOrder`
feeds it events from many producers in the order they happened; :class:`Snapshot` freezes
them; :func:`diff` compares two snapshots and names leak suspects; :func:`judge_budget`
sets peaks against a budget (the one rule of ``memactor check`` and ``memactor_limit``);
:func:`analyze_trend` finds steady growth in a time series; :func:`judge_leaks` gives each
component's leak verdict (rising floors, stale blocks, owners, steps) and
:func:`leak_report` adds projections to known limits, fragmentation and recommendations;
``render_*`` functions write reports.
"""

from ._actors import ActorSample as ActorSample
from ._advice import AdviceConfig as AdviceConfig
from ._advice import Recommendation as Recommendation
from ._advice import recommend as recommend
from ._blocks import CACHED as CACHED
from ._blocks import UNKNOWN_SITE as UNKNOWN_SITE
from ._blocks import LiveBlock as LiveBlock
from ._blocks import LiveBlocks as LiveBlocks
from ._budget import BudgetVerdict as BudgetVerdict
from ._budget import UnknownBudgetTargetError as UnknownBudgetTargetError
from ._budget import judge_budget as judge_budget
from ._diff import Change as Change
from ._diff import ComponentDelta as ComponentDelta
from ._diff import LeakSuspect as LeakSuspect
from ._diff import SnapshotDiff as SnapshotDiff
from ._diff import UnattributedDelta as UnattributedDelta
from ._diff import diff as diff
from ._fragmentation import Fragmentation as Fragmentation
from ._fragmentation import fragmentation as fragmentation
from ._leaks import LeakReport as LeakReport
from ._leaks import leak_report as leak_report
from ._leaks import parse_limit as parse_limit
from ._leaks import render_leak_report as render_leak_report
from ._leaks import render_verdicts as render_verdicts
from ._ledger import Ledger as Ledger
from ._order import EventOrder as EventOrder
from ._order import OrderStatistics as OrderStatistics
from ._projection import Limit as Limit
from ._projection import Projection as Projection
from ._projection import project as project
from ._report import diff_report_json as diff_report_json
from ._report import plural as plural
from ._report import render_diff as render_diff
from ._report import render_process as render_process
from ._report import render_snapshot as render_snapshot
from ._report import render_table as render_table
from ._report import render_transfers as render_transfers
from ._report import render_trend_verdict as render_trend_verdict
from ._report import render_unattributed_verdict as render_unattributed_verdict
from ._report import snapshot_report_json as snapshot_report_json
from ._report import table_width as table_width
from ._series import SeriesView as SeriesView
from ._series import TimeSeries as TimeSeries
from ._sites import SITES_SHOWN as SITES_SHOWN
from ._sites import TOP_SITES as TOP_SITES
from ._sites import SiteUsage as SiteUsage
from ._sites import format_site as format_site
from ._sites import render_sites as render_sites
from ._sites import site_lines as site_lines
from ._sites import sites_of_blocks as sites_of_blocks
from ._sites import usage_of as usage_of
from ._snapshot import PROCESS as PROCESS
from ._snapshot import TOTAL as TOTAL
from ._snapshot import ComponentSeries as ComponentSeries
from ._snapshot import Snapshot as Snapshot
from ._sources import GONE as GONE
from ._sources import LIVE as LIVE
from ._sources import SourceStats as SourceStats
from ._stats import HISTOGRAM_BUCKETS as HISTOGRAM_BUCKETS
from ._stats import ComponentStats as ComponentStats
from ._stats import DeviceStats as DeviceStats
from ._stats import LedgerStats as LedgerStats
from ._stats import OwnerStats as OwnerStats
from ._stats import ProcessStats as ProcessStats
from ._stats import TransferTiming as TransferTiming
from ._stats import histogram_bucket_bounds as histogram_bucket_bounds
from ._trend import Trend as Trend
from ._trend import TrendConfig as TrendConfig
from ._trend import analyze_trend as analyze_trend
from ._trend import find_growth as find_growth
from ._trend import find_unattributed_growth as find_unattributed_growth
from ._verdict import LeakVerdict as LeakVerdict
from ._verdict import Verdict as Verdict
from ._verdict import VerdictConfig as VerdictConfig
from ._verdict import judge_leaks as judge_leaks
