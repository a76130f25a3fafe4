"""Writes http-api.json and admin-api.json beside this file (OpenAPI 3.0): the Pusher HTTP API as
Herald serves it on `bind` (or `api_bind`), and the admin API on `metrics_bind`. Run
`python3 crates/herald-server/openapi/generate.py` after changing either; the node serves both on
its admin listener (/openapi/http-api.json, /openapi/admin-api.json) and tests/api/ fuzzes a live
node with schemathesis against them."""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong, for a person to read."},
        "code": {"type": "integer", "description": "The HTTP status again."},
    },
}


def error(description):
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def ok(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# ------------------------------------------------------------------------------------------
# The HTTP API

APP_ID = {"name": "app_id", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "The app's id."}
CHANNEL = {"name": "channel_name", "in": "path", "required": True,
           "schema": {"type": "string", "maxLength": 164}}
INFO = {"name": "info", "in": "query", "required": False, "schema": {"type": "string"},
        "description": "Comma-separated attributes: user_count (presence), subscription_count, cache."}

API_ERRORS = {
    "400": error("Malformed request, or an attribute that does not apply."),
    "401": error("Bad signature, key, timestamp or body hash."),
    "403": error("The app is disabled."),
    "404": error("No such app, channel kind or endpoint."),
    "405": error("The endpoint takes another method."),
    "408": error("The body did not arrive in time."),
    "413": error("Body or event data over its limit."),
    "429": error("Over the app's api_requests_per_second, or too many bad signatures."),
    "503": error("The backplane (Redis) is unavailable; nothing was published."),
}


def api_errors(*codes):
    return {c: API_ERRORS[c] for c in codes}


EVENT = {
    "type": "object",
    "required": ["name", "data"],
    "properties": {
        "name": {"type": "string", "maxLength": 200},
        "data": {"type": "string", "description": "The event's data, a string (often JSON)."},
        "channels": {"type": "array", "items": {"type": "string"}, "maxItems": 100},
        "channel": {"type": "string"},
        "socket_id": {"type": "string", "description": "This connection does not receive it."},
        "info": {"type": "string"},
    },
}

CHANNEL_INFO = {
    "type": "object",
    "properties": {
        "occupied": {"type": "boolean"},
        "user_count": {"type": "integer"},
        "subscription_count": {"type": "integer"},
        "cache": {"type": "object", "properties": {"data": {"type": "string"}, "ttl": {"type": "integer"}}},
    },
}

http_api = {
    "openapi": "3.0.3",
    "info": {
        "title": "Herald HTTP API (Pusher Channels)",
        "version": "1",
        "description": "The Pusher Channels HTTP API as Herald serves it on `bind` (or `api_bind`). "
                       "Every request is signed (the auth_* query parameters; body_md5 with a body), "
                       "as the Pusher server SDKs do.",
    },
    "servers": [{"url": "http://127.0.0.1:6001"}],
    "security": [{"pusherSignature": []}],
    "components": {
        "securitySchemes": {"pusherSignature": {
            "type": "apiKey", "in": "query", "name": "auth_signature",
            "description": "Pusher's request signature. Query parameters auth_key (the app's key), "
                           "auth_timestamp (Unix seconds, within 600 s of the server's clock), "
                           "auth_version=1.0, body_md5 (lowercase hex MD5 of the body, when there is "
                           "one) and auth_signature: lowercase hex HMAC-SHA256, with the app's secret, "
                           "of METHOD\\nPATH\\nQUERY, QUERY being every other parameter as key=value "
                           "(keys lowercased, sorted by key, joined with &). The server SDKs do this."}},
        "schemas": {"Error": ERROR, "Event": EVENT, "ChannelInfo": CHANNEL_INFO}},
    "paths": {
        "/apps/{app_id}/events": {"post": {
            "operationId": "trigger",
            "summary": "Publish an event on one or more channels.",
            "parameters": [APP_ID],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Event"}}}},
            "responses": {"200": ok({"type": "object", "properties": {
                "channels": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/ChannelInfo"}}}}),
                **api_errors("400", "401", "403", "404", "408", "413", "429", "503")},
        }},
        "/apps/{app_id}/batch_events": {"post": {
            "operationId": "triggerBatch",
            "summary": "Publish up to max_batch_events events.",
            "parameters": [APP_ID],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["batch"],
                "properties": {"batch": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}}}}},
            "responses": {"200": ok({"type": "object", "properties": {
                "batch": {"type": "array", "items": {"$ref": "#/components/schemas/ChannelInfo"}}}}),
                **api_errors("400", "401", "403", "404", "408", "413", "429", "503")},
        }},
        "/apps/{app_id}/channels": {"get": {
            "operationId": "channels",
            "summary": "Occupied channels, optionally by prefix.",
            "parameters": [APP_ID,
                           {"name": "filter_by_prefix", "in": "query", "required": False, "schema": {"type": "string"}},
                           INFO],
            "responses": {"200": ok({"type": "object", "required": ["channels"], "properties": {
                "channels": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/ChannelInfo"}}}}),
                **api_errors("400", "401", "403", "404", "429", "503")},
        }},
        "/apps/{app_id}/channels/{channel_name}": {"get": {
            "operationId": "channel",
            "summary": "One channel's state.",
            "parameters": [APP_ID, CHANNEL, INFO],
            "responses": {"200": ok({"$ref": "#/components/schemas/ChannelInfo"}),
                          **api_errors("400", "401", "403", "404", "429", "503")},
        }},
        "/apps/{app_id}/channels/{channel_name}/users": {"get": {
            "operationId": "channelUsers",
            "summary": "The members of a presence channel.",
            "parameters": [APP_ID, CHANNEL],
            "responses": {"200": ok({"type": "object", "required": ["users"], "properties": {
                "users": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}}}}}}),
                **api_errors("400", "401", "403", "404", "429", "503")},
        }},
        "/apps/{app_id}/users/{user_id}/terminate_connections": {"post": {
            "operationId": "terminateUserConnections",
            "summary": "Close every connection signed in as the user (4009).",
            "parameters": [APP_ID, {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": ok({"type": "object"}),
                          **api_errors("400", "401", "403", "404", "429", "503")},
        }},
    },
}

# ------------------------------------------------------------------------------------------
# The admin API

U32 = {"type": "integer", "minimum": 1, "maximum": 4294967295}
# Sizes and durations: bounded well below what would overflow a clock or a buffer.
SMALL = {"type": "integer", "minimum": 1, "maximum": 1000000}
SECS = {"type": "integer", "minimum": 1, "maximum": 31536000}
NAME = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^/?# :]+$"}
WEBHOOK = {
    "type": "object",
    "description": "An [[apps.webhooks]] endpoint (README, Webhooks). Also accepted, not described "
                   "here: `headers` (an object of extra request headers: valid HTTP names, visible-ASCII "
                   "values) and a `stream` target instead of `url` (needs redis_url).",
    "required": ["url"],
    "additionalProperties": False,
    "properties": {
        "url": {"type": "string", "pattern": "^https?://[a-z0-9.-]{2,}(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$"},
        "event_types": {"type": "array", "items": {"type": "string", "enum": [
            "channel_occupied", "channel_vacated", "member_added", "member_removed",
            "client_event", "cache_miss", "subscription_count"]}},
        "filter": {"type": "object", "additionalProperties": False, "properties": {
            "prefix": {"type": "string"}, "suffix": {"type": "string"}}},
    },
}
SETTINGS = {
    "enabled": {"type": "boolean"}, "client_events": {"type": "boolean"},
    "user_authentication": {"type": "boolean"}, "watchlist_events": {"type": "boolean"},
    "subscription_count": {"type": "boolean"}, "require_authorized_connection": {"type": "boolean"},
    "authorized_connection_timeout_secs": SECS,
    "tls_only": {"type": "boolean"},
    "max_connections": {"type": "integer", "minimum": 1, "maximum": 1000000000},
    "max_event_payload_kb": {"type": "integer", "minimum": 1, "maximum": 10240},
    "max_event_name_len": SMALL,
    "max_channel_name_len": SMALL,
    "max_channels_per_trigger": SMALL,
    "max_batch_events": SMALL,
    "max_presence_members": SMALL,
    "max_presence_user_info_kb": {"type": "integer", "minimum": 1, "maximum": 10240},
    "client_events_per_second": U32,
    "max_channels_per_connection": SMALL,
    "cache_ttl_secs": SECS,
    "api_requests_per_second": U32,
    "verbose": {"type": "boolean"},
    "webhooks": {"type": "array", "items": WEBHOOK, "maxItems": 10},
}
# In answers a webhook is shown as configured, header values masked and url credentials hidden.
SETTINGS_VIEW = {**SETTINGS, "webhooks": {"type": "array", "items": {"type": "object", "properties": {
    "url": {"type": "string"}, "stream": {"type": "string"},
    "event_types": {"type": "array", "items": {"type": "string"}},
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "filter": {"type": "object"}}}}}
APP = {
    "type": "object",
    "description": "An app: the [[apps]] keys (README, Configuration reference), without its secret.",
    "required": ["id", "key", "source"],
    "properties": {
        "id": NAME, "key": NAME, **SETTINGS_VIEW,
        "source": {"type": "string", "enum": ["file", "store"], "description": "Where the app comes from."},
        "previous_secret_until_ms": {"type": "integer",
                                     "description": "Until when the secret before the last rotation verifies."},
    },
}
APP_CREATED = {
    "allOf": [{"$ref": "#/components/schemas/App"},
              {"type": "object", "required": ["secret"], "properties": {"secret": {"type": "string"}}}],
}
NULLABLE_SETTINGS = {k: {**v, "nullable": True} for k, v in SETTINGS.items()}
APP_CREATE = {
    "type": "object",
    "description": "A new app: the [[apps]] keys (null or absent: the default). id, key and secret "
                   "are made up when absent.",
    "additionalProperties": False,
    "properties": {"id": {**NAME, "nullable": True}, "key": {**NAME, "nullable": True},
                   "secret": {"type": "string", "minLength": 1, "maxLength": 200, "nullable": True},
                   **NULLABLE_SETTINGS},
}
APP_PATCH = {
    "type": "object",
    "description": "The keys to change; null resets a key to its default. The id cannot change; "
                   "the secret changes through rotate-secret.",
    "additionalProperties": False,
    "properties": {"key": NAME, **NULLABLE_SETTINGS},
}
ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
ADMIN_ERRORS = {
    "401": error("Missing or wrong Authorization: Bearer <admin_token>."),
    "404": error("The admin API is off (no admin_token), or no such app."),
    "409": error("A file app (read-only), a taken id or key, apps from the file only, or a read-only SQL store."),
    "413": error("Body too large."),
    "415": error("A body that is not Content-Type: application/json."),
    "422": error("A bad record; `key` names the bad key."),
    "503": error("The app store is unavailable."),
}


def admin_errors(*codes):
    return {c: ADMIN_ERRORS[c] for c in codes}


admin_api = {
    "openapi": "3.0.3",
    "info": {
        "title": "Herald admin API",
        "version": "1",
        "description": "On `metrics_bind`. The apps API and the dead letters need "
                       "Authorization: Bearer <admin_token>; /metrics, /health, /ready and /usage are open.",
    },
    "servers": [{"url": "http://127.0.0.1:9601"}],
    "security": [{"adminToken": []}],
    "components": {
        "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": ERROR, "App": APP, "AppCreated": APP_CREATED, "AppCreate": APP_CREATE, "AppPatch": APP_PATCH},
    },
    "paths": {
        "/health": {"get": {"operationId": "health", "security": [], "responses": {"200": {"description": "Alive",
                    "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/ready": {"get": {"operationId": "ready", "security": [], "responses": {
            "200": {"description": "Takes new connections", "content": {"text/plain": {"schema": {"type": "string"}}}},
            "503": {"description": "DRAINING, FULL, BACKPLANE UNAVAILABLE or APPS NOT LOADED",
                    "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/usage": {"get": {"operationId": "usage", "security": [], "responses": {"200": ok({"type": "object", "properties": {
            "node": {"type": "string"}, "connections": {"type": "integer"},
            "memory": {"type": "object"}, "cluster_version": {"type": "integer", "nullable": True}}})}}},
        "/admin/apps": {
            "get": {"operationId": "listApps", "responses": {
                "200": ok({"type": "object", "required": ["apps"], "properties": {
                    "apps": {"type": "array", "items": {"$ref": "#/components/schemas/App"}}}}),
                **admin_errors("401", "404")}},
            "post": {"operationId": "createApp",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AppCreate"}}}},
                     "responses": {"201": ok({"$ref": "#/components/schemas/AppCreated"}, "Created, with its secret"),
                                   **admin_errors("401", "404", "409", "413", "415", "422", "503")}},
        },
        "/admin/apps/{id}": {
            "get": {"operationId": "getApp", "parameters": [ID], "responses": {
                "200": ok({"$ref": "#/components/schemas/App"}), **admin_errors("401", "404")}},
            "patch": {"operationId": "updateApp", "parameters": [ID],
                      "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AppPatch"}}}},
                      "responses": {"200": ok({"$ref": "#/components/schemas/App"}),
                                    **admin_errors("401", "404", "409", "413", "415", "422", "503")}},
            "delete": {"operationId": "deleteApp", "parameters": [ID], "responses": {
                "204": {"description": "Deleted"}, **admin_errors("401", "404", "409", "503")}},
        },
        "/admin/apps/{id}/rotate-secret": {"post": {"operationId": "rotateSecret", "parameters": [ID], "responses": {
            "200": ok({"type": "object", "required": ["id", "secret"], "properties": {
                "id": {"type": "string"}, "secret": {"type": "string"}, "previous_secret_until_ms": {"type": "integer"}}}),
            **admin_errors("401", "404", "409", "422", "503")}}},
        "/admin/rebalance": {
            "get": {"operationId": "rebalanceState", "responses": {"200": ok({"type": "object", "properties": {
                "node": {"type": "string"}, "connections": {"type": "integer"},
                "cluster_mean": {"type": "number", "nullable": True}, "shed_total": {"type": "integer"},
                "handoff_pending": {"type": "integer"}, "tolerance_percent": {"type": "integer"}}}),
                **admin_errors("401", "404")}},
            "post": {"operationId": "handOff",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
                         {"type": "object", "required": ["connections"], "additionalProperties": False,
                          "properties": {"connections": {"type": "integer", "minimum": 0, "maximum": 9007199254740991}}},
                         {"type": "object", "required": ["percent"], "additionalProperties": False,
                          "properties": {"percent": {"type": "number", "minimum": 0, "maximum": 100}}},
                     ]}}}},
                     "responses": {"202": ok({"type": "object", "properties": {
                         "handoff": {"type": "integer"}, "connections": {"type": "integer"}}}),
                         **admin_errors("401", "404", "413", "415"),
                         "422": error("Not exactly one of connections (a count) or percent (0 to 100).")}},
        },
        "/webhooks/dead-letters": {"get": {"operationId": "deadLetters", "responses": {
            "200": ok({"type": "object", "required": ["dead_letters"], "properties": {
                "dead_letters": {"type": "array", "items": {"type": "object"}}}}),
            **admin_errors("401", "404", "503")}}},
        "/webhooks/dead-letters/replay": {"post": {"operationId": "replayDeadLetters", "responses": {
            "200": ok({"type": "object", "properties": {"replayed": {"type": "integer"}}}),
            **admin_errors("401", "404", "415", "503")}}},
    },
}

for name, doc in (("http-api.json", http_api), ("admin-api.json", admin_api)):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
