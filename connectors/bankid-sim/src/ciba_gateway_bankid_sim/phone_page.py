"""HTML of the simulator's "phone": where a person approves or denies pending orders.

Plain HTML forms and a little CSS, usable without JavaScript on a small screen.
Every value is HTML-escaped (userVisibleData comes from the relying party).
Links are relative so the pages work wherever the simulator is mounted.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import NamedTuple

__all__ = ["OrderView", "PersonRow", "render_index", "render_message", "render_person"]


class PersonRow(NamedTuple):
    """One line of the index: a persona or a number with pending orders."""

    personal_number: str
    name: str
    behaviour: str
    pending: int


class OrderView(NamedTuple):
    """A pending order as the phone shows it."""

    order_ref: str
    kind: str
    call_initiator: str | None
    text: str | None
    age_seconds: float
    hint_code: str
    text_format: str | None = None


_STYLE = """
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",sans-serif;background:#eef1f4;
color:#14232b;line-height:1.4}
main{max-width:30rem;margin:0 auto;padding:1rem}
header{font-weight:700;color:#193e4f;letter-spacing:.02em;margin-bottom:.5rem}
h1{font-size:1.3rem;margin:.25rem 0}
a{color:#193e4f}
.card{background:#fff;border-radius:.75rem;padding:1rem;margin:.75rem 0;
box-shadow:0 1px 3px rgba(0,0,0,.12)}
.text{white-space:pre-wrap;overflow-wrap:anywhere;font-size:1.1rem;margin:.5rem 0 1rem}
.line{min-height:1.4em}.line.h1{font-size:1.3rem;font-weight:700}.line.h2{font-weight:700}
.line.h3{font-style:italic}
.muted{color:#5b6770;font-size:.85rem}
.actions{display:flex;gap:.5rem}
.actions form{flex:1}
button{width:100%;font-size:1rem;padding:.8rem;border:0;border-radius:.5rem;cursor:pointer}
.approve{background:#193e4f;color:#fff}
.deny{background:#dfe3e6;color:#14232b}
ul{list-style:none;padding:0;margin:0}
li a{display:block;padding:.75rem 0;border-bottom:1px solid #e4e7ea;text-decoration:none}
.badge{float:right;background:#193e4f;color:#fff;border-radius:1rem;padding:0 .6rem}
"""


def _page(title: str, body: str, *, refresh: int | None = None) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><header>BankID simulator</header>{body}</main></body></html>"
    )


def render_index(people: Sequence[PersonRow]) -> str:
    """The list of personas and of numbers with pending orders."""
    if people:
        items = "".join(
            f'<li><a href="phone/{escape(p.personal_number)}">'
            + (f'<span class="badge">{p.pending}</span>' if p.pending else "")
            + f"<strong>{escape(p.name)}</strong><br>"
            f'<span class="muted">{escape(p.personal_number)} · {escape(p.behaviour)}</span>'
            "</a></li>"
            for p in people
        )
        listing = f'<div class="card"><ul>{items}</ul></div>'
    else:
        listing = '<div class="card">No personas and no pending orders.</div>'
    return _page(
        "BankID simulator",
        "<h1>Whose phone is this?</h1>"
        '<p class="muted">Pick a person to see their pending BankID orders.</p>'
        f'{listing}<p><a href="phone">Refresh</a></p>',
    )


def _describe(order: OrderView) -> str:
    if order.kind.startswith("phone/"):
        who = {
            "RP": "the company called you",
            "user": "you called the company",
        }.get(order.call_initiator or "", "phone call")
        what = "Identification" if order.kind == "phone/auth" else "Signing"
        return f"{what} on a phone call ({who})"
    return "Identification" if order.kind == "auth" else "Signing"


def _markdown_line(line: str) -> tuple[str, str]:
    """(css class, text) of one simpleMarkdownV1 line: heading marks and escapes resolved."""
    level = ""
    for mark, name in (("### ", "h3"), ("## ", "h2"), ("# ", "h1")):
        if line.startswith(mark):
            level, line = name, line[len(mark) :]
            break
    out: list[str] = []
    escaped = False
    for ch in line:
        if ch == "\\" and not escaped:
            escaped = True
            continue
        out.append(ch)
        escaped = False
    return level, "".join(out)


def _visible(text: str, text_format: str | None) -> str:
    """userVisibleData as the app shows it, one element per line (simpleMarkdownV1 or plain)."""
    lines = []
    for line in text.split("\n"):
        level, shown = _markdown_line(line) if text_format == "simpleMarkdownV1" else ("", line)
        lines.append(f'<div class="line {level}">{escape(shown)}</div>')
    return f'<div class="text">{"".join(lines)}</div>'


def render_person(personal_number: str, name: str, orders: Sequence[OrderView]) -> str:
    """One person's pending orders, each with Approve and Deny forms."""
    pnr = escape(personal_number)
    cards = []
    for order in orders:
        ref = escape(order.order_ref)
        text = (
            _visible(order.text, order.text_format)
            if order.text
            else '<p class="muted">(no message from the company)</p>'
        )
        cards.append(
            '<section class="card">'
            f"<strong>{escape(_describe(order))}</strong>{text}"
            '<div class="actions">'
            f'<form method="post" action="{pnr}/{ref}/approve">'
            '<button class="approve" type="submit">Identify</button></form>'
            f'<form method="post" action="{pnr}/{ref}/deny">'
            '<button class="deny" type="submit">Cancel</button></form></div>'
            f'<p class="muted">Order {ref[:8]}… · {int(order.age_seconds)} s old · '
            f"{escape(order.hint_code)}</p></section>"
        )
    body = "".join(cards) or (
        '<div class="card">No pending orders. This page refreshes every 5 seconds.</div>'
    )
    return _page(
        f"BankID - {name}",
        f'<h1>{escape(name)}</h1><p class="muted">{pnr}</p>{body}'
        f'<p><a href="{pnr}">Refresh</a> · <a href="../phone">All people</a></p>',
        refresh=None if orders else 5,
    )


def render_message(title: str, message: str, back: str) -> str:
    """A short page for errors (unknown number, order no longer pending); ``back`` is a link."""
    return _page(
        title,
        f'<h1>{escape(title)}</h1><div class="card">{escape(message)}</div>'
        f'<p><a href="{escape(back)}">Back</a></p>',
    )
