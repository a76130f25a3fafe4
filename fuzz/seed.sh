#!/usr/bin/env bash
# Writes the seed inputs (examples from PROTOCOL.md) into fuzz/corpus/<target>/seed-*.
# The fuzzer grows the corpus from there; fuzz/run.sh minimises it afterwards.
set -euo pipefail
cd "$(dirname "$0")"

seed() { # target name content...
    local target=$1 name=$2
    shift 2
    mkdir -p "corpus/$target"
    printf '%s' "$*" >"corpus/$target/seed-$name"
}
nul() { printf '\0'; }
mkdir -p corpus/api_request corpus/redis_envelope

seed client_frame subscribe '{"event":"pusher:subscribe","data":{"channel":"my-channel"}}'
seed client_frame private '{"event":"pusher:subscribe","data":{"channel":"private-a","auth":"key:0f1e"}}'
seed client_frame presence '{"event":"pusher:subscribe","data":{"channel":"presence-r","auth":"key:ab","channel_data":"{\"user_id\":\"1\",\"user_info\":{\"n\":\"a\"}}"}}'
seed client_frame unsubscribe '{"event":"pusher:unsubscribe","data":{"channel":"my-channel"}}'
seed client_frame ping '{"event":"pusher:ping","data":{}}'
seed client_frame signin '{"event":"pusher:signin","data":{"auth":"key:ab","user_data":"{\"id\":\"u1\",\"watchlist\":[\"u2\"]}"}}'
seed client_frame client '{"event":"client-typing","channel":"private-a","data":{"x":[1,2.5,"\u00e9"]}}'
seed client_frame data_string '{"event":"pusher:subscribe","data":"{\"channel\":\"c\"}"}'

seed channel_name public 'my-channel'
seed channel_name private 'private-a_b-c=d@e,f.g;h'
seed channel_name presence 'presence-room'
seed channel_name encrypted 'private-encrypted-x'
seed channel_name cache 'presence-cache-x'
seed channel_name user '#server-to-user-u1'

seed user_data channel_data '{"user_id":"1","user_info":{"name":"Ann"}}'
seed user_data numeric '{"user_id":42}'
seed user_data signin '{"id":"u1","user_info":{"a":1},"watchlist":["u2","u3"]}'

{ printf 'POST'; nul; printf '/apps/1/events'; nul
  printf 'auth_key=fuzz-key&auth_timestamp=1700000000&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c'; nul
  printf '{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}'; } >corpus/api_request/seed-trigger
{ printf 'GET'; nul; printf '/apps/1/channels/presence-%%3Aa/users'; nul
  printf 'auth_key=fuzz-key&auth_timestamp=1700000000&auth_version=1.0&info=user_count,subscription_count&auth_signature=00'; } >corpus/api_request/seed-get

seed trigger_body single '{"name":"ev","channel":"a","data":"hi","socket_id":"1.2"}'
seed trigger_body many '{"name":"ev","channels":["a","private-b"],"data":"{}","info":"subscription_count"}'
seed trigger_body batch '{"batch":[{"name":"e","channel":"a","data":"1"},{"name":"e","channel":"presence-b","data":"2","info":"user_count"}]}'

seed config apps '[[apps]]
id = "1"
key = "k"
secret = "s"
client_events = true
max_connections = 10
webhooks = [{ url = "http://127.0.0.1:1/h", event_types = ["channel_occupied"] }]
'
seed config top 'port = 6001
redis_url = "redis://127.0.0.1:1"
activity_timeout_secs = 120
log_format = "json"
'

{ printf 'news'; nul; printf 'node-1\n1.2\n\n1700000000000000\n{"event":"e","channel":"news","data":"x"}'; } >corpus/redis_envelope/seed-envelope
{ printf 'control'; nul; printf 'node-1\nT\nuser-1'; } >corpus/redis_envelope/seed-terminate
{ printf 'control'; nul; printf 'node-1\nP1\nuser-1'; } >corpus/redis_envelope/seed-online

seed webhook_event occupied '{"name":"channel_occupied","channel":"a"}'
seed webhook_event member '{"name":"member_added","channel":"presence-a","user_id":"u"}'
seed webhook_event client '{"name":"client_event","channel":"private-a","event":"client-x","data":"{}","socket_id":"1.2","user_id":"u"}'
seed webhook_event cache '{"name":"cache_miss","channel":"cache-a"}'
echo "seeded: $(find corpus -type f | wc -l) files"
