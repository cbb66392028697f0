"""A DialNexa-compatible simulator for the demo, the tests and the benchmarks.

``Simulator`` holds the calls (explicit ones and lazily generated ``Scenario`` traffic) and
is a WSGI application serving ``GET /v1/calls``; ``serve`` runs it over real HTTP. Time is
read only from the injected clock.
"""

from .app import (
    FAULT_KINDS,
    Disconnect,
    FaultKind,
    RequestRecord,
    Response,
    Simulator,
)
from .calls import (
    ANSWERED,
    OUTCOMES,
    PHASES,
    SHAPES,
    VOCABS,
    CallSpec,
    Shape,
    Vocab,
    observed_outcome,
    status_text,
)
from .scenario import STEADY_MIX, AgentProfile, Scenario, diurnal_factor
from .server import RunningServer, serve

__all__ = [
    "ANSWERED",
    "FAULT_KINDS",
    "OUTCOMES",
    "PHASES",
    "SHAPES",
    "STEADY_MIX",
    "VOCABS",
    "AgentProfile",
    "CallSpec",
    "Disconnect",
    "FaultKind",
    "RequestRecord",
    "Response",
    "RunningServer",
    "Scenario",
    "Shape",
    "Simulator",
    "Vocab",
    "diurnal_factor",
    "observed_outcome",
    "serve",
    "status_text",
]
