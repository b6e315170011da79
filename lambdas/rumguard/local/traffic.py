"""Simulated RUM traffic, shaped like what aws-rum-web sends and RUM writes to CloudWatch Logs.

Used by the demo, the benchmark and the tests. Every event it makes is valid against the client's JSON
Schemas (a test checks this), and the simulator keeps a tally of what it made so a consumer can prove its
counts equal what was generated.

The signed-in journey is the one from the Retail Demo Store walkthrough of isolating signed-in from guest
traffic: welcome and sign-in happen as a guest (the guest monitor), then home, product, add to cart, view
cart, checkout, place order and sign out happen signed in (the signed-in monitor).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from rumguard.events import EventKind
from rumguard.monitors import Audience, Monitor

R = "com.amazon.rum."
DOMAIN = "shop.example.com"
REGION = "us-east-1"


def identity_id(rng: random.Random, region: str = REGION) -> str:
    """A Cognito identity id: ``<region>:<uuid>``."""
    return f"{region}:{uuid.UUID(int=rng.getrandbits(128), version=4)}"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One event as RUM wrote it to a monitor's log group: the log event's timestamp and message."""

    monitor: Monitor
    timestamp_ms: int
    message: str
    kind: EventKind
    identity: str | None


@dataclass(slots=True)
class Tally:
    """What a simulation generated, per monitor: events by kind, timings, HTTP errors, identities."""

    by_kind: Counter[tuple[str, EventKind]] = field(default_factory=Counter)
    http_errors: Counter[str] = field(default_factory=Counter)
    identities: dict[str, set[str]] = field(default_factory=dict)

    def add(self, record: LogRecord, http_error: bool) -> None:
        """Count one generated record."""
        name = record.monitor.name
        self.by_kind[(name, record.kind)] += 1
        if http_error:
            self.http_errors[name] += 1
        if record.identity is not None:
            self.identities.setdefault(name, set()).add(record.identity)

    def events(self, monitor: str) -> int:
        """All events generated for one monitor."""
        return sum(n for (name, _), n in self.by_kind.items() if name == monitor)

    def count(self, monitor: str, kind: EventKind) -> int:
        """Events of one kind generated for one monitor."""
        return self.by_kind[(monitor, kind)]


@dataclass(slots=True)
class _Session:
    monitor: Monitor
    identity: str | None
    session_id: str
    user_id: str
    clock_ms: int
    page: str = "/"
    title: str = "Welcome"
    interaction: int = 0
    device: tuple[str, str, str, str, str] = ("Chrome", "131.0.0.0", "Mac OS", "10.15.7", "desktop")


class TrafficSimulator:
    """Generates sessions of realistic RUM events into a guest and a signed-in monitor."""

    def __init__(self, guest: Monitor, signed_in: Monitor, *, seed: int = 7, start_ms: int | None = None):
        if guest.audience is not Audience.GUEST or signed_in.audience is not Audience.SIGNED_IN:
            raise ValueError("the simulator needs one guest and one signed-in monitor")
        self.guest = guest
        self.signed_in = signed_in
        self.rng = random.Random(seed)
        # By default an hour ago, on the minute: CloudWatch Logs refuses events older than 14 days.
        self.start_ms = start_ms if start_ms is not None else (int(time.time()) // 60 - 60) * 60_000
        self.tally = Tally()
        self.app_ids = {guest.name: _uuid(self.rng), signed_in.name: _uuid(self.rng)}

    # --- journeys -------------------------------------------------------------------------------------
    def signed_in_journey(self, guest_identity: str, user_identity: str, at_ms: int | None = None) -> list[LogRecord]:
        """Welcome and sign in as a guest, then the shopping journey signed in, ending with sign out."""
        rng = self.rng
        clock = self.start_ms if at_ms is None else at_ms
        guest = self._session(self.guest, guest_identity, clock)
        out = self._landing(guest, "/", "Welcome")
        out += self._route(guest, "/auth", "Sign in", clicks=2, calls=[("POST", "/api/auth/signin", 200)])
        signed = self._session(self.signed_in, user_identity, guest.clock_ms + rng.randint(500, 2000))
        out += self._landing(signed, "/", "Home")
        out += self._route(signed, "/product/6", "Product", clicks=1, calls=[("GET", "/api/products/6", 200)])
        out += self._route(signed, "/product/6", "Product", clicks=1, calls=[("POST", "/api/carts", 201)], view=False)
        out += self._route(signed, "/cart", "Cart", clicks=1, calls=[("GET", "/api/carts/mine", 200)])
        out += self._route(signed, "/checkout", "Checkout", clicks=3, calls=[("GET", "/api/shipping", 200)])
        out += self._route(signed, "/checkout", "Checkout", clicks=1, calls=[("POST", "/api/orders", 201)], view=False)
        out += self._route(signed, "/", "Signed out", clicks=1, calls=[("POST", "/api/auth/signout", 204)])
        return out

    def guest_browse(self, identity: str, pages: int = 4, at_ms: int | None = None) -> list[LogRecord]:
        """An honest guest: lands, browses a few categories and products, sometimes hits an error."""
        rng = self.rng
        session = self._session(self.guest, identity, self.start_ms if at_ms is None else at_ms)
        out = self._landing(session, "/", "Welcome")
        for _ in range(pages - 1):
            product = rng.randint(1, 40)
            status = rng.choices((200, 404, 503), weights=(90, 7, 3))[0]
            path = rng.choice((f"/product/{product}", "/category/books", "/category/outdoors", "/search"))
            out += self._route(
                session,
                path,
                path.split("/")[1].title(),
                clicks=rng.randint(0, 3),
                calls=[("GET", f"/api{path}", status)],
            )
        out += [self._emit(session, EventKind.PAGE_CLOSE, self._page_close(session))]
        return out

    # --- building blocks ------------------------------------------------------------------------------
    def _session(self, monitor: Monitor, identity: str | None, at_ms: int) -> _Session:
        rng = self.rng
        device = rng.choice(
            (
                ("Chrome", "131.0.0.0", "Mac OS", "10.15.7", "desktop"),
                ("Firefox", "133.0", "Windows", "10", "desktop"),
                ("Mobile Safari", "18.1", "iOS", "18.1", "mobile"),
                ("Chrome", "131.0.0.0", "Android", "14", "mobile"),
            )
        )
        return _Session(monitor, identity, _uuid(rng), _uuid(rng), at_ms, device=device)

    def _landing(self, s: _Session, page: str, title: str) -> list[LogRecord]:
        """A full page load: session start (first page), navigation, resources, vitals, page view."""
        rng = self.rng
        s.page, s.title = page, title
        out = []
        if s.interaction == 0:
            out.append(self._emit(s, EventKind.SESSION_START, {"version": "1.0.0"}))
        out.append(self._emit(s, EventKind.PAGE_VIEW, self._page_view(s)))
        out.append(self._emit(s, EventKind.NAVIGATION, self._navigation(s, "navigation")))
        for file_type, name in (("script", "main.js"), ("stylesheet", "main.css"), ("image", "hero.webp")):
            out.append(self._emit(s, EventKind.RESOURCE, self._resource(file_type, name)))
        ttfb = rng.uniform(40, 400)
        out.append(self._emit(s, EventKind.TTFB, self._vital(ttfb, ttfb_attribution=True)))
        fcp = ttfb + rng.uniform(150, 900)
        out.append(
            self._emit(
                s,
                EventKind.FCP,
                {
                    "version": "1.0.0",
                    "value": fcp,
                    "attribution": {
                        "timeToFirstByte": ttfb,
                        "firstByteToFCP": fcp - ttfb,
                        "loadState": "dom-interactive",
                    },
                },
            )
        )
        lcp = fcp + rng.uniform(0, 1800)
        out.append(
            self._emit(
                s,
                EventKind.LCP,
                {
                    "version": "1.0.0",
                    "value": lcp,
                    "attribution": {
                        "element": "#hero>img",
                        "url": f"https://{DOMAIN}/img/hero.webp",
                        "timeToFirstByte": ttfb,
                        "resourceLoadDelay": rng.uniform(0, 200),
                        "resourceLoadTime": rng.uniform(50, 800),
                        "elementRenderDelay": rng.uniform(0, 100),
                    },
                },
            )
        )
        out.append(self._emit(s, EventKind.CLS, {"version": "1.0.0", "value": round(rng.uniform(0, 0.3), 4)}))
        if rng.random() < 0.5:
            out.append(
                self._emit(
                    s,
                    EventKind.FID,
                    {
                        "version": "1.0.0",
                        "value": rng.uniform(1, 120),
                        "attribution": {
                            "eventTarget": "button.nav",
                            "eventType": "pointerdown",
                            "eventTime": lcp + 300,
                            "loadState": "complete",
                        },
                    },
                )
            )
        if rng.random() < 0.2:
            out.append(self._emit(s, EventKind.TTI, {"version": "1.0.0", "value": lcp + rng.uniform(100, 900)}))
        return out

    def _route(
        self,
        s: _Session,
        page: str,
        title: str,
        *,
        clicks: int,
        calls: list[tuple[str, str, int]],
        view: bool = True,
    ) -> list[LogRecord]:
        """A single-page-app route change with clicks and API calls (and, rarely, a JS error)."""
        rng = self.rng
        out = []
        for _ in range(clicks):
            out.append(
                self._emit(
                    s,
                    EventKind.DOM,
                    {
                        "version": "1.1.0",
                        "event": "click",
                        "element": "BUTTON",
                        "elementId": rng.choice(("add", "next", "buy", "menu")),
                        "cssLocator": "main button",
                    },
                )
            )
        if clicks and rng.random() < 0.5:
            out.append(
                self._emit(
                    s,
                    EventKind.INP,
                    {
                        "version": "1.0.0",
                        "value": rng.uniform(16, 400),
                        "attribution": {
                            "interactionTarget": "main button",
                            "interactionType": "pointer",
                            "loadState": "complete",
                        },
                    },
                )
            )
        for method, path, status in calls:
            out.append(self._emit(s, EventKind.HTTP, self._http(method, path, status), http_error=status >= 400))
            if rng.random() < 0.3:
                # Both spellings of the X-Ray event type occur in RUM data (client constant vs schema $id).
                legacy = "com.amazon.xray_trace_event" if rng.random() < 0.2 else None
                out.append(self._emit(s, EventKind.XRAY_TRACE, self._xray(method, path, status), event_type=legacy))
        if rng.random() < 0.03:
            out.append(
                self._emit(
                    s,
                    EventKind.OTHER,
                    {"campaign": "winter-sale", "slot": rng.randint(1, 4)},
                    event_type="com.example.shop.promo_click",
                )
            )
        if rng.random() < 0.02:
            out.append(
                self._emit(
                    s,
                    EventKind.RRWEB,
                    {
                        "version": "1.0.0",
                        "eventCount": 2,
                        "events": [
                            {
                                "type": 4,
                                "timestamp": s.clock_ms,
                                "data": {"href": f"https://{DOMAIN}{page}", "width": 1280},
                            },
                            {"type": 3, "timestamp": s.clock_ms + 5, "data": {"source": 1, "positions": []}},
                        ],
                    },
                )
            )
        if view:
            s.page, s.title = page, title
            out.append(self._emit(s, EventKind.PAGE_VIEW, self._page_view(s)))
            out.append(self._emit(s, EventKind.NAVIGATION, self._navigation(s, "route_change")))
        if rng.random() < 0.05:
            out.append(
                self._emit(
                    s,
                    EventKind.JS_ERROR,
                    {
                        "version": "1.0.0",
                        "type": "TypeError",
                        "message": "Cannot read properties of undefined (reading 'price')",
                        "filename": f"https://{DOMAIN}/static/js/main.js",
                        "lineno": rng.randint(1, 900),
                        "colno": rng.randint(1, 80),
                        "stack": "TypeError: Cannot read properties of undefined\n    at e (main.js:1:2)",
                    },
                )
            )
        return out

    def _emit(
        self,
        s: _Session,
        kind: EventKind,
        details: dict[str, Any],
        *,
        http_error: bool = False,
        event_type: str | None = None,
    ) -> LogRecord:
        rng = self.rng
        s.clock_ms += rng.randint(20, 1500)
        event_type = event_type or _EVENT_TYPES[kind]
        browser, browser_version, os_name, os_version, device = s.device
        metadata: dict[str, Any] = {
            "version": "1.0.0",
            "browserLanguage": "en-US",
            "browserName": browser,
            "browserVersion": browser_version,
            "osName": os_name,
            "osVersion": os_version,
            "deviceType": device,
            "platformType": "web",
            "domain": DOMAIN,
            "pageId": s.page,
            "title": s.title,
            "countryCode": "US",
            "subdivisionCode": "WA",
            "aws:client": "arw-module",
            "aws:clientVersion": "1.22.0",
        }
        if s.identity is not None:
            metadata["cognitoIdentityId"] = s.identity
        body = {
            "event_timestamp": s.clock_ms,
            "event_type": event_type,
            "event_id": _uuid(rng),
            "event_version": "1.0.0",
            "log_stream": time.strftime("%Y-%m-%dT%H", time.gmtime(s.clock_ms / 1000)),
            "application_id": self.app_ids[s.monitor.name],
            "application_version": "1.0.0",
            "metadata": metadata,
            "user_details": {"sessionId": s.session_id, "userId": s.user_id},
            "event_details": details,
        }
        # RUM receives the batch a few seconds after the event (the client dispatches every 5 s).
        record = LogRecord(
            s.monitor, s.clock_ms + rng.randint(100, 5000), orjson.dumps(body).decode(), kind, s.identity
        )
        self.tally.add(record, http_error)
        return record

    def _page_view(self, s: _Session) -> dict[str, Any]:
        s.interaction += 1
        view: dict[str, Any] = {
            "version": "1.0.0",
            "pageId": s.page,
            "pageInteractionId": f"{s.page}-{s.interaction}",
            "interaction": s.interaction,
        }
        if s.interaction > 1:
            view["parentPageInteractionId"] = f"prev-{s.interaction - 1}"
            view["timeOnParentPage"] = self.rng.uniform(2000, 60000)
        return view

    def _page_close(self, s: _Session) -> dict[str, Any]:
        return {
            "version": "1.0.0",
            "pageId": s.page,
            "pageInteractionId": f"{s.page}-{s.interaction}",
            "interaction": s.interaction,
            "duration": self.rng.uniform(1000, 90000),
        }

    def _navigation(self, s: _Session, initiator: str) -> dict[str, Any]:
        rng = self.rng
        duration = rng.uniform(300, 4000) if initiator == "navigation" else rng.uniform(50, 900)
        nav: dict[str, Any] = {"version": "1.0.0", "initiatorType": initiator, "startTime": 0, "duration": duration}
        if initiator == "navigation":
            nav.update(
                navigationType="navigate",
                redirectCount=0,
                fetchStart=1.2,
                domainLookupStart=2.0,
                dns=rng.uniform(0, 40),
                nextHopProtocol="h2",
                connect=rng.uniform(0, 60),
                timeToFirstByte=rng.uniform(40, 400),
                domInteractive=duration * 0.6,
                domContentLoaded=duration * 0.7,
                domComplete=duration * 0.95,
                loadEventTime=duration * 0.05,
                headerSize=300,
                transferSize=rng.randint(3000, 90000),
                navigationTimingLevel=2,
            )
        return nav

    def _resource(self, file_type: str, name: str) -> dict[str, Any]:
        rng = self.rng
        return {
            "version": "1.0.0",
            "targetUrl": f"https://{DOMAIN}/static/{name}",
            "initiatorType": "link" if file_type == "stylesheet" else "script" if file_type == "script" else "img",
            "startTime": rng.uniform(5, 300),
            "duration": rng.uniform(5, 900),
            "transferSize": rng.randint(500, 400000),
            "fileType": file_type,
            "nextHopProtocol": "h2",
        }

    def _vital(self, value: float, *, ttfb_attribution: bool = False) -> dict[str, Any]:
        rng = self.rng
        vital: dict[str, Any] = {"version": "1.0.0", "value": value}
        if ttfb_attribution:
            vital["attribution"] = {
                "waitingDuration": rng.uniform(0, 10),
                "cacheDuration": 0.0,
                "dnsDuration": rng.uniform(0, 30),
                "connectionDuration": rng.uniform(0, 50),
                "requestDuration": value * 0.6,
            }
        return vital

    def _http(self, method: str, path: str, status: int) -> dict[str, Any]:
        rng = self.rng
        trace = f"1-{rng.getrandbits(32):08x}-{rng.getrandbits(96):024x}"
        event: dict[str, Any] = {
            "version": "1.0.0",
            "request": {"method": method, "url": f"https://api.{DOMAIN}{path}"},
            "response": {"status": status, "statusText": "OK" if status < 400 else "Error"},
        }
        if rng.random() < 0.3:
            event["trace_id"], event["segment_id"] = trace, f"{rng.getrandbits(64):016x}"
        return event

    def _xray(self, method: str, path: str, status: int) -> dict[str, Any]:
        rng = self.rng
        start = self.start_ms / 1000 + rng.uniform(0, 3600)
        return {
            "version": "1.0.0",
            "name": DOMAIN,
            "id": f"{rng.getrandbits(64):016x}",
            "trace_id": f"1-{rng.getrandbits(32):08x}-{rng.getrandbits(96):024x}",
            "start_time": start,
            "end_time": start + rng.uniform(0.01, 1.2),
            "origin": "AWS::RUM::AppMonitor",
            "http": {
                "request": {"method": method, "url": f"https://api.{DOMAIN}{path}", "traced": True},
                "response": {"status": status},
            },
            "subsegments": [
                {
                    "id": f"{rng.getrandbits(64):016x}",
                    "name": f"api.{DOMAIN}",
                    "start_time": start,
                    "end_time": start + 0.2,
                    "namespace": "remote",
                }
            ],
        }


_EVENT_TYPES: dict[EventKind, str] = {
    EventKind.SESSION_START: R + "session_start_event",
    EventKind.PAGE_VIEW: R + "page_view_event",
    EventKind.PAGE_CLOSE: R + "page_close_event",
    EventKind.NAVIGATION: R + "performance_navigation_event",
    EventKind.RESOURCE: R + "performance_resource_event",
    EventKind.DOM: R + "dom_event",
    EventKind.JS_ERROR: R + "js_error_event",
    EventKind.HTTP: R + "http_event",
    EventKind.XRAY_TRACE: R + "xray_trace_event",
    EventKind.LCP: R + "largest_contentful_paint_event",
    EventKind.FCP: R + "first_contentful_paint_event",
    EventKind.FID: R + "first_input_delay_event",
    EventKind.CLS: R + "cumulative_layout_shift_event",
    EventKind.INP: R + "interaction_to_next_paint_event",
    EventKind.TTFB: R + "time_to_first_byte_event",
    EventKind.TTI: R + "time_to_interactive_event",
    EventKind.RRWEB: R + "rrweb_event",
}


def mixed_traffic(
    sim: TrafficSimulator, *, sessions: int, identities: int, spacing_ms: int = 2_000
) -> Iterator[LogRecord]:
    """Many sessions over a pool of identities: three guest browses for every signed-in journey."""
    rng = sim.rng
    pool = [identity_id(rng) for _ in range(identities)]
    users = [identity_id(rng) for _ in range(max(1, identities // 4))]
    for n in range(sessions):
        at = sim.start_ms + n * spacing_ms
        if n % 4 == 3:
            yield from sim.signed_in_journey(rng.choice(pool), rng.choice(users), at_ms=at)
        else:
            yield from sim.guest_browse(rng.choice(pool), pages=rng.randint(2, 6), at_ms=at)
