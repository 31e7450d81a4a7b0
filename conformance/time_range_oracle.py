"""Time-range answers of Convene checked against an independent oracle.

A seeded generator writes realistic calendars (about 15% recurring, 40% with a TZID, all-day
events, exceptions and moved instances); they are PUT into a fresh Convene; a set of windows
(days, weeks, months, across DST changes, years ahead beyond the indexing horizon, far past) is
asked with calendar-query; the oracle is the `recurring-ical-events` library (Python, its own
RRULE and time-zone code, sharing nothing with Convene). Every disagreement is a wrong answer;
the run fails on any. Prints one summary line.

Usage: time_range_oracle.py BASE_URL USER PASSWORD COUNT [COUNT...]
"""
import concurrent.futures
import datetime as dt
import random
import sys
import urllib.request
import xml.etree.ElementTree as ET

import icalendar
import recurring_ical_events

import davhttp

BASE, USER, PASSWORD = sys.argv[1:4]
VERBOSE = bool(__import__("os").environ.get("ORACLE_VERBOSE"))
COUNTS = [int(c) for c in sys.argv[4:]] or [1000]
UTC = dt.timezone.utc
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "America/Los_Angeles"]

VTIMEZONES = {
    "Europe/Berlin": ("+0100", "+0200", "19700329T020000", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "19701025T030000", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU"),
    "America/New_York": ("-0500", "-0400", "20070311T020000", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU", "20071104T020000", "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU"),
    "America/Los_Angeles": ("-0800", "-0700", "20070311T020000", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU", "20071104T020000", "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU"),
    "Australia/Sydney": ("+1000", "+1100", "20081005T020000", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU", "20080406T030000", "RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU"),
    "Asia/Tokyo": ("+0900", None, "19700101T000000", None, None, None),
}


def vtimezone(tzid):
    std, dst, dst_start, dst_rule, std_start, std_rule = VTIMEZONES[tzid]
    if dst is None:
        return (f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\nBEGIN:STANDARD\r\nDTSTART:{dst_start}\r\n"
                f"TZOFFSETFROM:{std}\r\nTZOFFSETTO:{std}\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n")
    return (f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\n"
            f"BEGIN:DAYLIGHT\r\nDTSTART:{dst_start}\r\n{dst_rule}\r\nTZOFFSETFROM:{std}\r\nTZOFFSETTO:{dst}\r\nEND:DAYLIGHT\r\n"
            f"BEGIN:STANDARD\r\nDTSTART:{std_start}\r\n{std_rule}\r\nTZOFFSETFROM:{dst}\r\nTZOFFSETTO:{std}\r\nEND:STANDARD\r\n"
            f"END:VTIMEZONE\r\n")


def fmt_local(t):
    return t.strftime("%Y%m%dT%H%M%S")


def fmt_utc(t):
    return t.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def generate(rng, n, base_year=2025):
    """Yield (name, ics) for n events."""
    for k in range(n):
        uid = f"oracle-{n}-{k}@convene.test"
        day = dt.datetime(base_year, 1, 1) + dt.timedelta(days=rng.randrange(0, 730), hours=rng.choice([7, 8, 9, 10, 13, 14, 16, 18, 23]), minutes=rng.choice([0, 15, 30, 45]))
        length = dt.timedelta(minutes=rng.choice([15, 30, 45, 60, 90, 120, 240, 600, 1500]))
        recurring = rng.random() < 0.15
        zoned = rng.random() < 0.40
        all_day = not recurring and rng.random() < 0.08
        tzid = rng.choice(ZONES) if zoned else None
        lines = []
        if all_day:
            d = day.date()
            lines += [f"DTSTART;VALUE=DATE:{d:%Y%m%d}", f"DTEND;VALUE=DATE:{d + dt.timedelta(days=rng.choice([1, 1, 2, 3])):%Y%m%d}"]
        elif tzid:
            lines += [f"DTSTART;TZID={tzid}:{fmt_local(day)}", f"DTEND;TZID={tzid}:{fmt_local(day + length)}"]
        else:
            start = day.replace(tzinfo=UTC)
            lines += [f"DTSTART:{fmt_utc(start)}", f"DTEND:{fmt_utc(start + length)}"]
        override = ""
        if recurring:
            freq = rng.choice(["DAILY", "WEEKLY", "WEEKLY", "MONTHLY"])
            rule = f"RRULE:FREQ={freq}"
            if rng.random() < 0.3:
                rule += f";INTERVAL={rng.choice([2, 3])}"
            if freq == "WEEKLY" and rng.random() < 0.4:
                rule += ";BYDAY=" + ",".join(sorted(rng.sample(["MO", "TU", "WE", "TH", "FR"], 2)))
            end_kind = rng.random()
            if end_kind < 0.4:
                rule += f";COUNT={rng.randrange(2, 60)}"
            elif end_kind < 0.7:
                until = day + dt.timedelta(days=rng.randrange(10, 400))
                rule += f";UNTIL={fmt_utc(until.replace(tzinfo=UTC))}"
            lines.append(rule)
            if freq in ("DAILY", "WEEKLY") and "BYDAY" not in rule and "INTERVAL" not in rule:
                step = dt.timedelta(days=1 if freq == "DAILY" else 7)
                if rng.random() < 0.5:
                    ex = day + step * 2
                    lines.append(f"EXDATE;TZID={tzid}:{fmt_local(ex)}" if tzid else f"EXDATE:{fmt_utc(ex.replace(tzinfo=UTC))}")
                if rng.random() < 0.4 and ("COUNT" not in rule or int(rule.split("COUNT=")[1].split(";")[0]) > 4):
                    rid = day + step * 3
                    moved = rid + dt.timedelta(hours=rng.choice([-30, 2, 5, 26]))
                    if tzid:
                        override = (f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20250101T000000Z\r\n"
                                    f"RECURRENCE-ID;TZID={tzid}:{fmt_local(rid)}\r\nDTSTART;TZID={tzid}:{fmt_local(moved)}\r\n"
                                    f"DTEND;TZID={tzid}:{fmt_local(moved + length)}\r\nSUMMARY:moved\r\nEND:VEVENT\r\n")
                    else:
                        override = (f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20250101T000000Z\r\n"
                                    f"RECURRENCE-ID:{fmt_utc(rid.replace(tzinfo=UTC))}\r\nDTSTART:{fmt_utc(moved.replace(tzinfo=UTC))}\r\n"
                                    f"DTEND:{fmt_utc((moved + length).replace(tzinfo=UTC))}\r\nSUMMARY:moved\r\nEND:VEVENT\r\n")
        body = "\r\n".join(lines) + "\r\n"
        ics = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Convene oracle//EN\r\n"
               + (vtimezone(tzid) if tzid else "")
               + f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20250101T000000Z\r\n{body}SUMMARY:Event {k}\r\nEND:VEVENT\r\n"
               + override + "END:VCALENDAR\r\n")
        yield f"{uid}.ics", ics


_http = davhttp.client(BASE, USER, PASSWORD)


def http(method, path, body=None, headers=None):
    status, _, data = _http(method, path, body, headers)
    return status, data


def windows():
    w = []
    t0 = dt.datetime(2025, 1, 6, tzinfo=UTC)
    for i in range(0, 104, 7):
        w.append((t0 + dt.timedelta(weeks=i), t0 + dt.timedelta(weeks=i + 1)))
    for m in [(2025, 3, 30), (2025, 10, 26), (2025, 3, 9), (2025, 11, 2), (2026, 4, 5)]:
        d = dt.datetime(*m, tzinfo=UTC)
        w.append((d - dt.timedelta(hours=12), d + dt.timedelta(hours=12)))
    w.append((dt.datetime(2025, 6, 1, tzinfo=UTC), dt.datetime(2025, 7, 1, tzinfo=UTC)))
    w.append((dt.datetime(2026, 12, 1, tzinfo=UTC), dt.datetime(2027, 1, 1, tzinfo=UTC)))
    w.append((dt.datetime(2025, 5, 14, 9, tzinfo=UTC), dt.datetime(2025, 5, 14, 10, tzinfo=UTC)))
    # Beyond the indexing horizon, and long before anything.
    w.append((dt.datetime(2031, 2, 1, tzinfo=UTC), dt.datetime(2031, 2, 8, tzinfo=UTC)))
    w.append((dt.datetime(2040, 1, 1, tzinfo=UTC), dt.datetime(2040, 1, 8, tzinfo=UTC)))
    w.append((dt.datetime(2001, 1, 1, tzinfo=UTC), dt.datetime(2001, 2, 1, tzinfo=UTC)))
    return w


def oracle(ics, start, end):
    cal = icalendar.Calendar.from_ical(ics)
    # Floating and all-day values are read in UTC, as Convene does for a calendar without
    # calendar-timezone (RFC 4791 9.9).
    return len(recurring_ical_events.of(cal).between(start.replace(tzinfo=None) if False else start, end)) > 0


def query(cal, start, end):
    body = (f'<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>'
            f'<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
            f'<C:time-range start="{fmt_utc(start)}" end="{fmt_utc(end)}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>')
    status, resp = http("REPORT", cal, body.encode(), {"Depth": "1", "Content-Type": "application/xml"})
    assert status == 207, (status, resp[:300])
    root = ET.fromstring(resp)
    names = set()
    for r in root.findall("{DAV:}response"):
        href = r.find("{DAV:}href").text
        names.add(urllib.request.unquote(href.rsplit("/", 1)[1]))
    return names


def run(n, seed):
    rng = random.Random(seed)
    cal = f"/dav/calendars/{USER}/oracle-{n}/"
    status, _ = http("MKCALENDAR", cal)
    assert status == 201, status
    events = dict(generate(rng, n))

    def put(item):
        name, ics = item
        s, b = http("PUT", cal + urllib.request.quote(name), ics.encode(), {"Content-Type": "text/calendar", "If-None-Match": "*"})
        assert s == 201, (name, s, b[:300])

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        list(ex.map(put, events.items()))
    parsed = {name: icalendar.Calendar.from_ical(ics) for name, ics in events.items()}
    wrong = []
    ws = windows()
    for start, end in ws:
        got = query(cal, start, end)
        want = {name for name, c in parsed.items() if len(recurring_ical_events.of(c).between(start, end)) > 0}
        print(f"  window {start:%Y-%m-%d %H:%M}: {len(want)} expected, {len(got)} returned", file=sys.stderr) if VERBOSE else None
        for name in sorted(want - got):
            wrong.append(f"missing {name} in {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}")
        for name in sorted(got - want):
            wrong.append(f"extra {name} in {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}")
    return len(ws), wrong


def main():
    total_windows = 0
    all_wrong = []
    for i, n in enumerate(COUNTS):
        w, wrong = run(n, seed=20261127 + i)
        total_windows += w
        all_wrong += wrong
    for line in all_wrong[:40]:
        print("  " + line, file=sys.stderr)
    state = "ok" if not all_wrong else "FAILED"
    print(f"time-range oracle: {state} {len(all_wrong)} wrong answers over {total_windows} windows x {'+'.join(map(str, COUNTS))} events")
    return 1 if all_wrong else 0


if __name__ == "__main__":
    sys.exit(main())
