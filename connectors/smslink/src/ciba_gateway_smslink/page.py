"""The approval page and its result pages: small, mobile-first HTML without JavaScript.

Every dynamic value is HTML-escaped (the binding message comes from the
relying party). The only inline resource is the stylesheet, allowed by its
hash in the Content-Security-Policy; forms may post only to this origin and
the page cannot be framed.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape

from ciba_gateway.connector import CallbackResponse, details

__all__ = [
    "SECURITY_HEADERS",
    "already_used",
    "approval_page",
    "bad_request",
    "decided",
    "not_found",
    "stale_form",
]

_STYLE = (
    "*{box-sizing:border-box}"
    "body{margin:0;font-family:system-ui,-apple-system,'Segoe UI',sans-serif;"
    "background:#f2f4f7;color:#111c24;line-height:1.45}"
    "main{max-width:28rem;margin:0 auto;padding:1.25rem 1rem}"
    "h1{font-size:1.35rem;margin:.25rem 0 1rem}"
    ".card{background:#fff;border-radius:.75rem;padding:1rem;margin:0 0 1rem;"
    "box-shadow:0 1px 3px rgba(0,0,0,.12)}"
    ".label{color:#5a6772;font-size:.85rem;margin:0}"
    ".value{font-size:1.15rem;margin:.15rem 0 .75rem;overflow-wrap:anywhere;white-space:pre-wrap}"
    ".actions{display:flex;gap:.75rem}"
    "button{flex:1;font-size:1.05rem;padding:.9rem;border:0;border-radius:.6rem;cursor:pointer}"
    ".approve{background:#0b5c3b;color:#fff}.decline{background:#dde2e6;color:#111c24}"
    ".muted{color:#5a6772;font-size:.85rem}"
    "table{width:100%;border-collapse:collapse;margin:0 0 .5rem}"
    ".caption{font-size:1.1rem;margin:.25rem 0 .4rem}"
    "th,td{text-align:left;vertical-align:top;padding:.35rem 0;border-top:1px solid #e3e7ea;"
    "overflow-wrap:anywhere}"
    "th{color:#5a6772;font-weight:400;width:38%;padding-right:.75rem}"
    ".about{margin:0 0 .5rem;overflow-wrap:anywhere}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "X-Robots-Tag": "noindex, nofollow",
}
"""Sent with every page of this connector."""


def _page(status: int, title: str, body: str) -> CallbackResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return CallbackResponse(status=status, body=html, headers=dict(SECURITY_HEADERS))


def _details_card(sections: tuple[details.Section, ...]) -> str:
    """The authorization_details as one titled table per entry (the renderer's sections)."""
    parts = []
    for section in sections:
        title = f'<h2 class="caption">{escape(section.title)}</h2>' if section.title else ""
        about = f'<p class="about">{escape(section.text)}</p>' if section.text else ""
        rows = "".join(
            f'<tr><th scope="row">{escape(label)}</th><td>{escape(value)}</td></tr>'
            for label, value in section.rows
        )
        table = f"<table>{rows}</table>" if rows else ""
        parts.append(f'<section class="detail">{title}{about}{table}</section>')
    return f'<div class="card" id="details">{"".join(parts)}</div>'


def approval_page(
    *,
    client_name: str,
    binding_message: str | None,
    masked_number: str,
    csrf: str,
    sections: tuple[details.Section, ...] = (),
) -> CallbackResponse:
    """The confirmation page: who asks, what for (details as tables), and Approve / Decline."""
    message = (
        f'<p class="label">Message</p><p class="value" id="binding-message">'
        f"{escape(binding_message)}</p>"
        if binding_message
        else ""
    )
    body = (
        '<div class="card">'
        f'<p class="label">Who asks</p><p class="value" id="client-name">{escape(client_name)}</p>'
        f"{message}"
        f'<p class="label">Sent to</p><p class="value">{escape(masked_number)}</p>'
        "</div>"
        f"{_details_card(sections) if sections else ''}"
        "<p>Approve only if you started this yourself and the message matches what you see "
        "on the other screen.</p>"
        '<form method="post" class="actions">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        '<button class="approve" type="submit" name="decision" value="approve">Approve</button>'
        '<button class="decline" type="submit" name="decision" value="decline">Decline</button>'
        "</form>"
    )
    return _page(200, "Approve this request" if sections else "Confirm your sign-in", body)


def decided(approved: bool) -> CallbackResponse:
    """The answer after Approve or Decline."""
    if approved:
        return _page(200, "Approved", "<p>You approved. You can close this page.</p>")
    return _page(200, "Declined", "<p>You declined. Nobody was signed in.</p>")


def not_found() -> CallbackResponse:
    """Unknown, mistyped, cancelled or expired links: one page, so none can be told apart."""
    return _page(
        404,
        "Link not valid",
        "<p>This link is not valid or has expired. "
        "If you still want to continue, ask the service to send you a new one.</p>",
    )


def already_used() -> CallbackResponse:
    """A link opened again after the person decided."""
    return _page(
        410,
        "Link already used",
        "<p>This link was already used. Each link works only once.</p>",
    )


def stale_form() -> CallbackResponse:
    """A POST without a valid form token (or from another site): nothing happened."""
    return _page(
        403,
        "Please try again",
        "<p>Your answer could not be accepted. Open the link from your text message "
        "again and choose once more.</p>",
    )


def bad_request() -> CallbackResponse:
    """A POST with neither approve nor decline."""
    return _page(400, "Please try again", "<p>Choose Approve or Decline.</p>")
