"""A small HR system with an HTML form login, for the login proxy's form-replay tests
(tests/bridge.rs). It behaves as form-login business systems do:

    python hr_app.py PORT ACCOUNTS_JSON         (binds 127.0.0.1 only)

ACCOUNTS_JSON maps user names to {"password", "name", "employee", "leave"}; it is read again
whenever it changes, so a test can change a password "at the HR department".

  GET  /login         form with a hidden csrf_token bound to a pre-login session cookie
  POST /login         username, password, csrf_token, next (same-site paths only)
                      -> 302 next + a new session cookie (HttpOnly, SameSite=Lax)
                      -> 200 form + "Invalid credentials"; 403 on a missing or wrong token
                      -> 429 after 5 failures per user name within 5 minutes (lockout)
  GET  /              "Welcome NAME" (302 to /login?next=/ when signed out)
  GET  /payslip       the signed-in person's payslip (HTML)
  GET  /leave         a form to request leave (CSRF token)
  POST /leave         requests leave days (CSRF checked), 303 to /leave/requests
  GET  /leave/requests  JSON list of the person's requests
  GET  /api/me        JSON (401 when signed out)
  POST /logout        ends the session (CSRF checked)
  GET  /_stats        failures and logins per user name (for the tests)
  GET  /healthz       "ok"
"""
import hmac
import json
import os
import secrets
import sys
import time
from urllib.parse import urlsplit

from flask import Flask, abort, jsonify, redirect, render_template_string, request, session

ACCOUNTS_FILE = sys.argv[2] if len(sys.argv) > 2 else None
_accounts = {"mtime": None, "data": {}}
FAILS: dict[str, list[float]] = {}
STATS = {"failures": {}, "logins": {}, "locked": {}}
LEAVE: dict[str, list[dict]] = {}

app = Flask(__name__)
app.secret_key = secrets.token_bytes(32)
app.config.update(SESSION_COOKIE_NAME="hr_session", SESSION_COOKIE_HTTPONLY=True,
                  SESSION_COOKIE_SAMESITE="Lax")

LOGIN = """<!doctype html><html><head><meta charset="utf-8"><title>ExampleHR - Sign in</title></head><body>
<h1>ExampleHR</h1>
{% if error %}<p id="error">{{ error }}</p>{% endif %}
<form id="loginForm" method="post" action="/login">
  <input type="hidden" name="csrf_token" value="{{ csrf }}">
  <input type="hidden" name="next" value="{{ next }}">
  <label>User name <input type="text" name="username" autocomplete="username"></label>
  <label>Password <input type="password" name="password" autocomplete="current-password"></label>
  <button type="submit">Log in</button>
</form></body></html>"""

LEAVE_FORM = """<!doctype html><html><head><meta charset="utf-8"><title>Leave</title></head><body>
<form method="post" action="/leave"><input type="hidden" name="csrf_token" value="{{ csrf }}">
<input name="days" type="number"><button type="submit">Request</button></form></body></html>"""


def accounts() -> dict:
    if ACCOUNTS_FILE:
        m = os.stat(ACCOUNTS_FILE).st_mtime_ns
        if m != _accounts["mtime"]:
            with open(ACCOUNTS_FILE, encoding="utf-8") as f:
                _accounts["data"] = json.load(f)
            _accounts["mtime"] = m
    return _accounts["data"]


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def check_csrf() -> None:
    sent = request.form.get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(403, "CSRF token missing or invalid")


def safe_next(nxt: str) -> str:
    if not nxt or not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
        return "/"
    parts = urlsplit(nxt)
    return "/" if parts.scheme or parts.netloc else nxt


def current():
    user = session.get("user")
    return (user, accounts().get(user)) if user and user in accounts() else (None, None)


@app.get("/healthz")
def healthz():
    return "ok"


@app.get("/_stats")
def stats():
    return jsonify(STATS)


@app.get("/login")
def login_form():
    return render_template_string(LOGIN, csrf=csrf_token(), next=safe_next(request.args.get("next", "/")),
                                  error=None)


@app.post("/login")
def login():
    check_csrf()
    user = request.form.get("username", "")
    pw = request.form.get("password", "")
    now = time.time()
    recent = [t for t in FAILS.get(user, []) if now - t < 300]
    if len(recent) >= 5:
        STATS["locked"][user] = STATS["locked"].get(user, 0) + 1
        return render_template_string(LOGIN, csrf=csrf_token(), next="/", error="Account locked, try later"), 429
    acct = accounts().get(user)
    if not acct or not hmac.compare_digest(pw.encode(), acct["password"].encode()):
        FAILS[user] = recent + [now]
        STATS["failures"][user] = STATS["failures"].get(user, 0) + 1
        return render_template_string(LOGIN, csrf=csrf_token(), next=safe_next(request.form.get("next", "/")),
                                      error="Invalid credentials")
    FAILS.pop(user, None)
    STATS["logins"][user] = STATS["logins"].get(user, 0) + 1
    session.clear()  # a new session on login: no fixation
    session["user"] = user
    session["csrf"] = secrets.token_urlsafe(24)
    return redirect(safe_next(request.form.get("next", "/")), code=302)


@app.post("/logout")
def logout():
    check_csrf()
    session.clear()
    return redirect("/login", code=302)


@app.get("/")
def home():
    user, acct = current()
    if not user:
        return redirect("/login?next=/", code=302)
    return f"<!doctype html><h1>Welcome {acct['name']}</h1><p id='employee'>{acct['employee']}</p>"


@app.get("/payslip")
def payslip():
    user, acct = current()
    if not user:
        return redirect("/login?next=/payslip", code=302)
    return (f"<!doctype html><h1>Payslip</h1><p id='who'>{acct['name']}</p>"
            f"<p id='employee'>{acct['employee']}</p><p id='net'>{acct.get('net', 3100)}</p>")


@app.get("/leave")
def leave_form():
    user, _ = current()
    if not user:
        return redirect("/login?next=/leave", code=302)
    return render_template_string(LEAVE_FORM, csrf=csrf_token())


@app.post("/leave")
def leave_request():
    user, _ = current()
    if not user:
        return jsonify(error="not authenticated"), 401
    check_csrf()
    # A browser's own Origin must be this app's, as frameworks check it.
    origin = request.headers.get("Origin")
    if origin and urlsplit(origin).netloc != request.host:
        abort(403, "cross-origin request")
    LEAVE.setdefault(user, []).append({"days": int(request.form.get("days", "0") or 0)})
    return redirect("/leave/requests", code=303)


@app.get("/leave/requests")
def leave_requests():
    user, _ = current()
    if not user:
        return jsonify(error="not authenticated"), 401
    return jsonify(LEAVE.get(user, []))


@app.get("/api/me")
def me():
    user, acct = current()
    if not user:
        return jsonify(error="not authenticated"), 401
    return jsonify(username=user, name=acct["name"], employee=acct["employee"])


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8081
    app.run(host="127.0.0.1", port=port, debug=False, use_reloader=False, threaded=True)
