"""The API contract: every JSON shape the server sends and the terminal UI reads,
defined once, as ``TypedDict``s, one module per resource and re-exported here
(``contract.ReviewItem``).

It imports nothing of the project and nothing but the standard library's ``typing``, so
both sides import it (``server.http`` to build its answers, ``identify_tui`` to read
them) and neither imports the other. ``tests/server/test_contract.py`` holds real answers
of a running server against it: a key added on one side only fails there.
"""

from .catalog import (
    ClassesMerged,
    ClassInfo,
    ClassList,
    ClassReferences,
    ClassRenamed,
    ReferenceAdded,
    ReferenceInfo,
)
from .events import (
    ClassesEvent,
    Event,
    IdentificationEvent,
    JobEvent,
    QueueEvent,
    ReferencesEvent,
    ThresholdsEvent,
)
from .health import (
    CameraStatus,
    Health,
    Hub,
    MediaUsage,
    ProjectHealth,
    ServerCounters,
    ServerHealth,
    StageTiming,
    Storage,
)
from .identification import (
    Candidate,
    Decided,
    DetectedObject,
    IdentifyResponse,
)
from .jobs import (
    ErrorBody,
    ErrorDetail,
    Job,
    JobState,
)
from .kinds import (
    FinalStatus,
    JobStatus,
    QueueAction,
    Reason,
    Region,
    ResolveAction,
    ReviewStatus,
    ThresholdScope,
)
from .review import (
    DayCounts,
    DecisionRates,
    QueueCounts,
    ReviewItem,
    ReviewPage,
    Stats,
)
from .thresholds import (
    ClassSetting,
    ClassThresholds,
    CurvePoint,
    DefaultThresholds,
    TaxonomyThresholds,
    ThresholdCurve,
    ThresholdOverride,
    ThresholdPair,
    Thresholds,
)

__all__ = [
    "CameraStatus",
    "Candidate",
    "ClassInfo",
    "ClassList",
    "ClassReferences",
    "ClassRenamed",
    "ClassSetting",
    "ClassThresholds",
    "ClassesEvent",
    "ClassesMerged",
    "CurvePoint",
    "DayCounts",
    "Decided",
    "DecisionRates",
    "DefaultThresholds",
    "DetectedObject",
    "ErrorBody",
    "ErrorDetail",
    "Event",
    "FinalStatus",
    "Health",
    "Hub",
    "IdentificationEvent",
    "IdentifyResponse",
    "Job",
    "JobEvent",
    "JobState",
    "JobStatus",
    "MediaUsage",
    "ProjectHealth",
    "QueueAction",
    "QueueCounts",
    "QueueEvent",
    "Reason",
    "ReferenceAdded",
    "ReferenceInfo",
    "ReferencesEvent",
    "Region",
    "ResolveAction",
    "ReviewItem",
    "ReviewPage",
    "ReviewStatus",
    "ServerCounters",
    "ServerHealth",
    "StageTiming",
    "Stats",
    "Storage",
    "TaxonomyThresholds",
    "ThresholdCurve",
    "ThresholdOverride",
    "ThresholdPair",
    "ThresholdScope",
    "Thresholds",
    "ThresholdsEvent",
]
