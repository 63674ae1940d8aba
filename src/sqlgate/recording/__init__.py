"""Session recording: the event stream the proxy feeds, its storage, and replay."""

from sqlgate.recording.events import (
    EventKind,
    RecordingEvent,
    SessionInfo,
    StatementOutcome,
    StatementRecord,
)
from sqlgate.recording.recorder import Recorder
from sqlgate.recording.replay import replay
from sqlgate.recording.retention import purge, purge_recordings
from sqlgate.recording.sessions import (
    SessionSummary,
    StoredEvent,
    get_session,
    iter_events,
    list_sessions,
)
from sqlgate.recording.settings import RecordingSettings

__all__ = [
    "EventKind",
    "Recorder",
    "RecordingEvent",
    "RecordingSettings",
    "SessionInfo",
    "SessionSummary",
    "StatementOutcome",
    "StatementRecord",
    "StoredEvent",
    "get_session",
    "iter_events",
    "list_sessions",
    "purge",
    "purge_recordings",
    "replay",
]
