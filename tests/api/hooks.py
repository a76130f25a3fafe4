"""schemathesis hooks for Herald's HTTP API: every request is signed as the Pusher server SDKs
sign them (auth_key, auth_timestamp, auth_version, body_md5 and auth_signature, an HMAC-SHA256 of
METHOD\\nPATH\\nsorted query with the app's secret), with the body serialised once so its MD5 is
of the bytes sent. The app id in the path is mostly the configured app's, so most requests get
past routing and into the endpoints. Loaded by tests/api/run.sh (SCHEMATHESIS_HOOKS=hooks)."""

import hashlib
import hmac
import json
import os
import time
import urllib.parse

import schemathesis

APP_ID = os.environ["API_FUZZ_APP_ID"]
KEY = os.environ["API_FUZZ_APP_KEY"]
SECRET = os.environ["API_FUZZ_APP_SECRET"]


@schemathesis.hook
def map_path_parameters(ctx, path_parameters):
    if path_parameters and "app_id" in path_parameters:
        path_parameters["app_id"] = APP_ID
    return path_parameters


@schemathesis.hook
def before_call(ctx, case, kwargs):
    """Signs the case in place: schemathesis sends `case.query` and, as bytes, `case.body`."""
    path = case.formatted_path
    if not path.startswith("/apps/"):
        return
    body = b""
    if case.body is None or type(case.body).__name__ == "NotSet":
        pass
    elif not isinstance(case.body, (bytes, str)):
        body = json.dumps(case.body, separators=(",", ":")).encode()
        case.body = body
    elif isinstance(case.body, (bytes, str)):
        body = case.body if isinstance(case.body, bytes) else case.body.encode()
        case.body = body
    params = {str(k): str(v) for k, v in dict(case.query or {}).items()}
    for k in ("auth_signature", "body_md5"):
        params.pop(k, None)
    params.update(auth_key=KEY, auth_timestamp=str(int(time.time())), auth_version="1.0")
    if body:
        params["body_md5"] = hashlib.md5(body).hexdigest()
    query = "&".join(f"{k}={v}" for k, v in sorted((k.lower(), v) for k, v in params.items()))
    payload = f"{case.method.upper()}\n{urllib.parse.unquote(path)}\n{query}".encode()
    params["auth_signature"] = hmac.new(SECRET.encode(), payload, hashlib.sha256).hexdigest()
    case.query = params
