"""HTML of the simulator's "phone": pending authentications with Approve / Reject buttons.

Plain forms, no JavaScript, a viewport for small screens. Every value from settings
or from requests is HTML-escaped. Links are relative so a mounted simulator works.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ciba_gateway_freja_sim.model import PendingView

__all__ = ["render_message", "render_phone"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f2f4f3;color:#1d2b24}
header{background:#1d3b2f;color:#fff;padding:1rem}
h1{font-size:1.2rem;margin:0}
main{padding:1rem;max-width:32rem;margin:auto}
.card{background:#fff;border-radius:12px;padding:1rem;margin:0 0 1rem;
box-shadow:0 1px 3px rgba(0,0,0,.15)}
.card p{margin:.3rem 0}
.muted{color:#5b6b63;font-size:.9rem}
.warn{color:#9a3b00}
form{display:inline}
button{font-size:1.1rem;padding:.8rem 1.2rem;border:0;border-radius:8px;margin:.5rem .5rem 0 0;
min-width:7rem}
.approve{background:#1f7a4d;color:#fff}
.reject{background:#c8d1cc;color:#1d2b24}
button[disabled]{opacity:.4}
.text{background:#f7f9f8;border-radius:8px;padding:.6rem;overflow-wrap:anywhere}
.line{min-height:1.3em;white-space:pre-wrap}
"""


def _page(title: str, body: str, refresh: bool = False) -> str:
    meta = '<meta http-equiv="refresh" content="5">' if refresh else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"{meta}<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><header><h1>{escape(title)}</h1></header><main>{body}</main></body></html>"
    )


def _request_text(view: PendingView) -> str:
    """What the person is asked: a log-in, or the exact text of a signature (one .line each)."""
    level = escape(view.required_level)
    if view.sign_text is None:
        return f"<p>Log-in request, level {level} or higher.</p>"
    title = f"<p><strong>{escape(view.sign_title)}</strong></p>" if view.sign_title else ""
    lines = "".join(
        f'<div class="line">{escape(line)}</div>' for line in view.sign_text.split("\n")
    )
    return (
        f"<p>Signing request, level {level} or higher. You sign this text:</p>"
        f'{title}<div class="text">{lines}</div>'
    )


def _card(view: PendingView) -> str:
    ref = escape(view.auth_ref, quote=True)
    note = ""
    if not view.can_approve:
        note = (
            f'<p class="warn">Registration level {escape(view.persona_level)} is below the '
            f"required {escape(view.required_level)}: upgrade needed to approve.</p>"
        )
    requester = (
        f'<p class="muted">For relying party {escape(view.relying_party_id)}</p>'
        if view.relying_party_id
        else ""
    )
    disabled = "" if view.can_approve else " disabled"
    return (
        '<section class="card">'
        f"<p><strong>{escape(view.label)}</strong></p>"
        f'<p class="muted">{escape(view.user_info_type)}: {escape(view.user_info)}</p>'
        f"{_request_text(view)}"
        f"{requester}{note}"
        f'<p class="muted">{view.seconds_left} s left</p>'
        f'<form method="post" action="phone/{ref}/approve">'
        f'<button class="approve" type="submit"{disabled}>Approve</button></form>'
        f'<form method="post" action="phone/{ref}/reject">'
        '<button class="reject" type="submit">Reject</button></form>'
        "</section>"
    )


def render_phone(views: Sequence[PendingView]) -> str:
    """The phone page: one card per pending authentication (refreshes itself when idle)."""
    if not views:
        body = '<p class="muted">No pending requests. This page refreshes every 5 s.</p>'
        return _page("Freja eID simulator", body, refresh=True)
    return _page("Freja eID simulator", "".join(_card(v) for v in views))


def render_message(title: str, text: str, back: str) -> str:
    """A short page with a link back."""
    body = f'<p>{escape(text)}</p><p><a href="{escape(back, quote=True)}">Back</a></p>'
    return _page(title, body)
