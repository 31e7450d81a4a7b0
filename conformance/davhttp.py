"""A minimal authenticated HTTP helper shared by the conformance scripts (standard library
only, so it runs in any venv)."""
import base64
import urllib.error
import urllib.request


def client(base, user, password, timeout=120):
    """Return http(method, path, body=None, headers=None) -> (status, headers, body)."""
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def http(method, path, body=None, headers=None):
        req = urllib.request.Request(base + path, data=body, method=method)
        req.add_header("Authorization", auth)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    return http
