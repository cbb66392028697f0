"""Acting from Slack: buttons on firing messages and the ``/dialnexa`` slash command.

Two transports bring Slack's requests in: Socket Mode (``socket.py``, an outbound WebSocket
with an app-level token; no public endpoint) and HTTP (``http.py``, a Request URL on a listener
of its own, every request's signature checked). Both acknowledge at once and hand the payload
to ``service.ActionService``, which does the work after: who may act (``access.py``), what
the payload says (``payloads.py``), what an action comes to (``handlers.py``, pure), the
slash command's answers (``commands.py``, pure), and the answers sent back (``slackio.py``).
State changes go through ``AlertPipeline.act``: one store transaction keyed by the action's
id, so a replayed envelope applies at most once.
"""
