"""A DialNexa-compatible simulator for the demo, the tests and the benchmarks.

``Simulator`` holds the calls (explicit ones and lazily generated ``Scenario`` traffic) and
an agent directory, and is a WSGI application serving ``GET /v1/calls`` and
``GET /v1/agents2``; ``serve`` runs it over real HTTP. Time is read only from the injected
clock. ``Scenario.realistic`` is the realistic traffic (``realistic.RealisticParams``);
``Simulator.settled_by_agent``, ``truth_windows``, ``settled_calls``, ``truth_of`` and
``settled_call_bound`` are the ground truth benchmarks score against.
"""

from .agents import AGENTS_APIS, AGENTS_SHAPES, AgentsApi, AgentsShape
from .app import Simulator
from .calls import (
    ANSWERED,
    OUTCOMES,
    PHASES,
    SHAPES,
    VOCABS,
    WEBHOOK_REASONS,
    CallSpec,
    Shape,
    Vocab,
    observed_outcome,
    status_text,
)
from .profiles import STEADY_MIX, AgentInfo, AgentProfile, Bursts, diurnal_factor
from .realistic import HOSTILE_TITLES, PERSONAS, Persona, RealisticParams, lognormal_share_over
from .scenario import (
    DEGRADATION_SHARE,
    DEGRADATION_SIZES,
    Degradation,
    DegradationSize,
    InjectedDegradation,
    Scenario,
)
from .server import RunningServer, serve
from .truth import TruthWindows
from .wire import FAULT_KINDS, Disconnect, FaultKind, Latency, RequestRecord, Response
from .workspace import BurstRecord, SettledCall

__all__ = [
    "AGENTS_APIS",
    "AGENTS_SHAPES",
    "ANSWERED",
    "DEGRADATION_SHARE",
    "DEGRADATION_SIZES",
    "FAULT_KINDS",
    "HOSTILE_TITLES",
    "OUTCOMES",
    "PERSONAS",
    "PHASES",
    "SHAPES",
    "STEADY_MIX",
    "VOCABS",
    "WEBHOOK_REASONS",
    "AgentInfo",
    "AgentProfile",
    "AgentsApi",
    "AgentsShape",
    "BurstRecord",
    "Bursts",
    "CallSpec",
    "Degradation",
    "DegradationSize",
    "Disconnect",
    "FaultKind",
    "InjectedDegradation",
    "Latency",
    "Persona",
    "RealisticParams",
    "RequestRecord",
    "Response",
    "RunningServer",
    "Scenario",
    "SettledCall",
    "Shape",
    "Simulator",
    "TruthWindows",
    "Vocab",
    "diurnal_factor",
    "lognormal_share_over",
    "observed_outcome",
    "serve",
    "status_text",
]
