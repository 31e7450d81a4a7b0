"""Two-way round trip between Convene and a local vdir through vdirsyncer (a real CalDAV client).

Steps: create, modify and delete in both directions; UTF-8, RRULE and EXDATE survive; a
conflict resolved as configured; a final sync that changes nothing. Exits non-zero on the first
failed step, and prints one summary line.

Usage: vdirsyncer_roundtrip.py VDIRSYNCER_BIN BASE_URL USER PASSWORD WORKDIR
"""
import os
import pathlib
import subprocess
import sys

import davhttp

VDIR, BASE, USER, PASSWORD, WORK = sys.argv[1:6]
WORK = pathlib.Path(WORK)
LOCAL = WORK / "local"
CAL = f"/dav/calendars/{USER}/calendar/"


def ics(uid, summary, extra=""):
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Convene conformance//EN\r\n"
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n"
        "BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n"
        "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n"
        "DTSTART;TZID=Europe/Berlin:20240108T090000\r\nDTEND;TZID=Europe/Berlin:20240108T093000\r\n"
        f"SUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


http = davhttp.client(BASE, USER, PASSWORD)


def sync():
    r = subprocess.run([VDIR, "-c", str(WORK / "config"), "sync"], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"vdirsyncer sync failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


def local_items():
    out = {}
    for p in LOCAL.glob("*.ics"):
        text = p.read_text(encoding="utf-8")
        for line in text.splitlines():
            if line.startswith("UID:"):
                out[line[4:].strip()] = (p, text)
    return out


def server_items():
    body = (
        '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'
    ).encode()
    status, _, resp = http("PROPFIND", CAL, body, {"Depth": "1", "Content-Type": "application/xml"})
    assert status == 207, status
    hrefs = [h.split("</D:href>")[0] for h in resp.decode().split("<D:href>")[1:]]
    out = {}
    for h in hrefs:
        if h.endswith(".ics"):
            s, hdr, data = http("GET", h)
            text = data.decode("utf-8")
            for line in text.splitlines():
                if line.startswith("UID:"):
                    out[line[4:].strip()] = (h, text, hdr.get("ETag") or hdr.get("etag"))
    return out


def step(name, fn, results):
    try:
        fn()
        results.append((name, True, ""))
    except AssertionError as e:
        results.append((name, False, str(e)))
        raise


def main():
    LOCAL.mkdir(parents=True, exist_ok=True)
    (WORK / "status").mkdir(exist_ok=True)
    (WORK / "config").write_text(
        f"""[general]
status_path = "{WORK}/status/"

[pair cal]
a = "local"
b = "remote"
collections = null
conflict_resolution = "a wins"

[storage local]
type = "filesystem"
path = "{LOCAL}/"
fileext = ".ics"

[storage remote]
type = "caldav"
url = "{BASE}{CAL}"
username = "{USER}"
password = "{PASSWORD}"
"""
    )
    d = subprocess.run([VDIR, "-c", str(WORK / "config"), "discover", "cal"], capture_output=True, text=True, input="y\n")
    if d.returncode != 0:
        print(f"vdirsyncer: FAILED discover: {d.stdout} {d.stderr}")
        return 1
    results = []
    summary_a = "Café ☕ 会議 – über"
    rrule = "RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO\r\nEXDATE;TZID=Europe/Berlin:20240115T090000\r\n"

    def local_to_server_create():
        (LOCAL / "a.ics").write_bytes(ics("vd-a", summary_a, rrule).encode("utf-8"))
        sync()
        items = server_items()
        assert "vd-a" in items, f"server lacks vd-a: {list(items)}"
        text = items["vd-a"][1]
        assert f"SUMMARY:{summary_a}" in text, text
        assert "RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO" in text and "EXDATE;TZID=Europe/Berlin:20240115T090000" in text, text

    def server_to_local_create():
        status, _, _ = http("PUT", CAL + "b.ics", ics("vd-b", "Server side ✓").encode(), {"Content-Type": "text/calendar", "If-None-Match": "*"})
        assert status == 201, status
        sync()
        items = local_items()
        assert "vd-b" in items and "SUMMARY:Server side ✓" in items["vd-b"][1], list(items)

    def server_to_local_modify():
        h, _, etag = server_items()["vd-a"]
        status, _, _ = http("PUT", h, ics("vd-a", summary_a + " (moved)", rrule).encode(), {"Content-Type": "text/calendar", "If-Match": etag})
        assert status == 204, status
        sync()
        text = local_items()["vd-a"][1]
        assert f"SUMMARY:{summary_a} (moved)" in text, text
        assert "EXDATE;TZID=Europe/Berlin:20240115T090000" in text, text

    def local_to_server_modify():
        p, text = local_items()["vd-b"]
        p.write_text(text.replace("Server side ✓", "Edited locally ✓"), encoding="utf-8")
        sync()
        assert "SUMMARY:Edited locally ✓" in server_items()["vd-b"][1]

    def conflict():
        (LOCAL / "c.ics").write_bytes(ics("vd-c", "Base").encode())
        sync()
        h, _, etag = server_items()["vd-c"]
        http("PUT", h, ics("vd-c", "Server wins?").encode(), {"Content-Type": "text/calendar", "If-Match": etag})
        p, text = local_items()["vd-c"]
        p.write_text(text.replace("SUMMARY:Base", "SUMMARY:Local wins"), encoding="utf-8")
        sync()
        assert "SUMMARY:Local wins" in server_items()["vd-c"][1], "conflict not resolved as 'a wins' on the server"
        assert "SUMMARY:Local wins" in local_items()["vd-c"][1]

    def deletes():
        local_items()["vd-a"][0].unlink()
        h, _, etag = server_items()["vd-b"]
        status, _, _ = http("DELETE", h, None, {"If-Match": etag})
        assert status == 204, status
        sync()
        assert "vd-a" not in server_items(), "local delete did not reach the server"
        assert "vd-b" not in local_items(), "server delete did not reach the vdir"

    def noop():
        before_local = {p.name: p.stat().st_mtime_ns for p in LOCAL.glob("*.ics")}
        status, _, before = http("PROPFIND", CAL, b'<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>', {"Depth": "0"})
        out = sync()
        status, _, after = http("PROPFIND", CAL, b'<D:propfind xmlns:D="DAV:"><D:prop><D:sync-token/></D:prop></D:propfind>', {"Depth": "0"})
        after_local = {p.name: p.stat().st_mtime_ns for p in LOCAL.glob("*.ics")}
        assert before == after, "a no-op sync changed the server"
        assert before_local == after_local, "a no-op sync changed the vdir"
        assert "Copying" not in out and "Updating" not in out and "Deleting" not in out, out

    def discover_from_the_host():
        # Given only the host, vdirsyncer finds the user's calendars (well-known or PROPFIND on
        # the root, then the principal and its calendar home) and mirrors each as a folder.
        home = WORK / "from-host"
        home.mkdir(exist_ok=True)
        (WORK / "status-host").mkdir(exist_ok=True)
        host = BASE.rstrip("/") + "/"
        (WORK / "config-host").write_text(
            f"""[general]
status_path = "{WORK}/status-host/"

[pair host]
a = "found"
b = "server"
collections = ["from b"]

[storage found]
type = "filesystem"
path = "{home}/"
fileext = ".ics"

[storage server]
type = "caldav"
url = "{host}"
username = "{USER}"
password = "{PASSWORD}"
"""
        )
        d = subprocess.run([VDIR, "-c", str(WORK / "config-host"), "discover", "host"], capture_output=True, text=True, input="y\n" * 10)
        assert d.returncode == 0, f"discover from {host}: {d.stdout} {d.stderr}"
        found = sorted(p.name for p in home.iterdir() if p.is_dir())
        assert "calendar" in found, f"from {host} vdirsyncer found {found}: {d.stdout} {d.stderr}"

    steps = [
        ("discover from the host alone", discover_from_the_host),
        ("create local->server (UTF-8, RRULE, EXDATE)", local_to_server_create),
        ("create server->local", server_to_local_create),
        ("modify server->local", server_to_local_modify),
        ("modify local->server", local_to_server_modify),
        ("conflict (a wins)", conflict),
        ("delete both ways", deletes),
        ("no-op sync", noop),
    ]
    try:
        for name, fn in steps:
            step(name, fn, results)
    except AssertionError:
        pass
    ok = sum(1 for _, good, _ in results if good)
    for name, good, why in results:
        if not good:
            print(f"  step failed: {name}: {why}", file=sys.stderr)
    state = "ok" if ok == len(steps) else "FAILED"
    print(f"vdirsyncer: {state} {ok}/{len(steps)} steps")
    return 0 if ok == len(steps) else 1


if __name__ == "__main__":
    sys.exit(main())
