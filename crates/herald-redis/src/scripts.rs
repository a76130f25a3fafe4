//! The atomic transitions, as Lua scripts. Each one first records or removes the node's
//! contribution in its node set and only changes counts when that membership changed, so every
//! script is idempotent: replaying a node's contributions after Redis restarted, or reaping a
//! dead node twice, never counts anything twice.

use std::sync::LazyLock;

use redis::Script;

/// One HTTP API request of an app against its per-second budget, for the whole cluster.
/// KEYS: the app's rate key. ARGV: requests per second. Redis's own clock decides the second
/// (nodes' clocks may differ); the key holds `second:count` and expires after two seconds.
/// Returns 1 when the request fits, 0 when this second's budget is spent.
pub static API_REQUEST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = redis.call('TIME')[1]
local v = redis.call('GET', KEYS[1])
local n = 0
if v then
  local sec, count = string.match(v, '^(%d+):(%d+)$')
  if sec == now then n = tonumber(count) end
end
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], now .. ':' .. (n + 1), 'EX', 2)
return 1
",
    )
});

/// The heartbeat. KEYS: nodes, versions, epoch, this node's reaped mark. ARGV: now ms, node,
/// wire version, a fresh epoch id. Returns {status, epoch}: status 0 listed, 1 was missing (now
/// listed), 2 reaped (the mark is set: not listed again; the node must fence). The score only
/// grows, so a beat delivered late never makes a live node look older than it is.
pub static BEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[4]) == 1 then
  return {2, redis.call('GET', KEYS[3]) or ''}
end
local listed = redis.call('ZSCORE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[1], 'GT', ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[4], 'NX')
local status = 0
if not listed then status = 1 end
return {status, redis.call('GET', KEYS[3])}
",
    )
});

/// KEYS: channels, node set [, scheduled]. ARGV: channel, socket [, vacated check key].
/// Returns {count, 1 if the channel just became occupied}; with the optional key an occupancy
/// also cancels the channel's pending vacancy check in the same step and returns 2 instead (a
/// re-occupation within the debounce: neither webhook goes out).
pub static SUBSCRIBE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local entry = 's|' .. ARGV[1] .. '|' .. ARGV[2]
if redis.call('SADD', KEYS[2], entry) == 0 then
  return {tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0'), 0}
end
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if n == 1 then
  if KEYS[3] and redis.call('ZREM', KEYS[3], ARGV[3]) == 1 then return {n, 2} end
  return {n, 1}
end
return {n, 0}
",
    )
});

/// KEYS: channels, node set [, scheduled]. ARGV: channel, socket [, check key, due ms].
/// Returns {count, 1 if the channel just became vacant}; with the optional key and arguments
/// a vacancy also schedules the check key (the debounced `channel_vacated`) in the same step.
pub static UNSUBSCRIBE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local entry = 's|' .. ARGV[1] .. '|' .. ARGV[2]
if redis.call('SREM', KEYS[2], entry) == 0 then
  return {tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0'), 0}
end
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  if KEYS[3] then redis.call('ZADD', KEYS[3], ARGV[4], ARGV[3]) end
  return {0, 1}
end
return {n, 0}
",
    )
});

/// KEYS: presence, presence-users, presence-info, node set, version [, scheduled].
/// ARGV: socket, user id, user_info JSON (`null` when none), max members, channel
/// [, the user's member_removed check key].
/// Returns {0} when full, else {1, new_user, version, user1, info1, user2, info2, …}; with the
/// optional key a new user's pending removal check is cancelled in the same step, and
/// new_user is then 2 (a re-join within the debounce: neither webhook goes out).
pub static PRESENCE_JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local entry = 'p|' .. ARGV[5] .. '|' .. ARGV[1]
local new_user = 0
if redis.call('SISMEMBER', KEYS[4], entry) == 0 then
  if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then
    if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[4]) then return {0} end
    new_user = 1
    redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
  end
  redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('SADD', KEYS[4], entry)
end
local version
if new_user == 1 then version = redis.call('INCR', KEYS[5])
else version = tonumber(redis.call('GET', KEYS[5]) or '0') end
if new_user == 1 and KEYS[6] and redis.call('ZREM', KEYS[6], ARGV[6]) == 1 then new_user = 2 end
local out = {1, new_user, version}
local info = redis.call('HGETALL', KEYS[3])
for i = 1, #info do out[#out + 1] = info[i] end
return out
",
    )
});

/// KEYS: presence, presence-users, presence-info, node set, version [, scheduled].
/// ARGV: socket, channel [, check key prefix, due ms].
/// Returns {user id, version} when this was the user's last connection in the channel, else nil;
/// with the optional key and arguments it then also schedules `prefix .. user` (the debounced
/// `member_removed` check) in the same step.
/// The version key goes with the last member: no subscriber remains to compare against it.
pub static PRESENCE_LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SREM', KEYS[4], 'p|' .. ARGV[2] .. '|' .. ARGV[1]) == 0 then return false end
local user = redis.call('HGET', KEYS[1], ARGV[1])
if not user then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
local n = redis.call('HINCRBY', KEYS[2], user, -1)
if n <= 0 then
  redis.call('HDEL', KEYS[2], user)
  redis.call('HDEL', KEYS[3], user)
  local version = redis.call('INCR', KEYS[5])
  if redis.call('HLEN', KEYS[2]) == 0 then redis.call('DEL', KEYS[5]) end
  if KEYS[6] then redis.call('ZADD', KEYS[6], ARGV[4], ARGV[3] .. user) end
  return {user, version}
end
return false
",
    )
});

/// KEYS: user set, node set. ARGV: socket, user. Returns 1 when the user just came online.
pub static SIGNIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SADD', KEYS[2], 'u|' .. ARGV[2] .. '|' .. ARGV[1]) == 0 then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) == 1 then return 1 end
return 0
",
    )
});

/// KEYS: user set, node set. ARGV: socket, user. Returns 1 when the user just went offline.
pub static SIGNOUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SREM', KEYS[2], 'u|' .. ARGV[2] .. '|' .. ARGV[1]) == 0 then return 0 end
redis.call('SREM', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) == 0 then return 1 end
return 0
",
    )
});

/// KEYS: scheduled sorted set. ARGV: now (ms), max. Claims and returns the due members.
pub static TAKE_DUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, k in ipairs(due) do redis.call('ZREM', KEYS[1], k) end
return due
",
    )
});

/// KEYS: connections hash. ARGV: node, delta (or `set` and a value). Returns the app's total.
pub static CONNECTIONS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[2] == 'set' then
  if tonumber(ARGV[3]) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1])
  else redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
elseif ARGV[2] == 'del' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  local n = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
  if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
return total
",
    )
});

/// App store: adds an app. KEYS: apps, app keys. ARGV: id, key, record. Returns 0 done, 1 the
/// id is taken, 2 the key is.
pub static APP_CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 2 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 0
",
    )
});

/// App store: replaces an app's record if it is still the one read. KEYS: apps, app keys.
/// ARGV: id, expected record, its key, new key, new record. Returns 0 done, 2 the new key is
/// another app's, 3 no such app, 4 the record changed since it was read.
pub static APP_UPDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return 3 end
if current ~= ARGV[2] then return 4 end
local owner = redis.call('HGET', KEYS[2], ARGV[4])
if owner and owner ~= ARGV[1] then return 2 end
if ARGV[3] ~= ARGV[4] then redis.call('HDEL', KEYS[2], ARGV[3]) end
redis.call('HSET', KEYS[2], ARGV[4], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])
return 0
",
    )
});

/// App store: removes an app. KEYS: apps, app keys. ARGV: id. Returns 0 done, 3 no such app.
pub static APP_DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return 3 end
local key = cjson.decode(current)['key']
if key and redis.call('HGET', KEYS[2], key) == ARGV[1] then redis.call('HDEL', KEYS[2], key) end
redis.call('HDEL', KEYS[1], ARGV[1])
return 0
",
    )
});

/// Rebalancing: records a node's load and returns every listed node's latest one. KEYS: load,
/// nodes. ARGV: node, connections, accepting (0/1), staleness (ms). Redis's clock stamps each
/// report; a report older than the staleness, or of a node gone from the node list, is
/// dropped. Returns a flat list: node, connections, accepting, …
pub static LOAD_REPORT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3] .. ':' .. now)
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local node, v = all[i], all[i + 1]
  local count, accepting, at = string.match(v, '^(%d+):(%d):(%d+)$')
  if count and tonumber(at) + tonumber(ARGV[4]) >= now and redis.call('ZSCORE', KEYS[2], node) then
    table.insert(out, node)
    table.insert(out, count)
    table.insert(out, accepting)
  else
    redis.call('HDEL', KEYS[1], node)
  end
end
return out
",
    )
});
