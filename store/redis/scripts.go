package redis

import goredis "github.com/redis/go-redis/v9"

// The Lua scripts. Each touches only KEYS[1], so it runs on one node of a Cluster and is
// atomic. Times are unix milliseconds from Options.Now, passed as ARGV; a record is live when
// e == 0 or e > now. A TTL argument is -1 for none, 0 for "expired beyond the margin: do not
// keep it", or milliseconds.

// createScript creates the record KEYS[1] unless a live one exists.
// ARGV: now, v, o, e, ttl, c, i. Returns 0 if a live record exists, else {1, old o, old i}
// (the owner and index stamp of the expired record it replaced, or false).
var createScript = goredis.NewScript(`
local old = redis.call('HMGET', KEYS[1], 'e', 'o', 'i')
if old[1] then
  local e = tonumber(old[1])
  if e == 0 or e > tonumber(ARGV[1]) then return 0 end
  redis.call('DEL', KEYS[1])
end
local ttl = tonumber(ARGV[5])
if ttl ~= 0 then
  redis.call('HSET', KEYS[1], 'v', ARGV[2], 'o', ARGV[3], 'e', ARGV[4], 'n', 1, 'c', ARGV[6], 'i', ARGV[7])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
end
return {1, old[2], old[3]}
`)

// updateScript writes the record KEYS[1] if it is still live and its incarnation and version
// are the ones read. ARGV: now, c, n, v, o, e, ttl, i. Returns the new version, or -1 on a
// conflict.
var updateScript = goredis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'c', 'n', 'e')
if cur[1] ~= ARGV[2] or cur[2] ~= ARGV[3] then return -1 end
local e = tonumber(cur[3])
if e ~= 0 and e <= tonumber(ARGV[1]) then return -1 end
local n = tonumber(cur[2]) + 1
local ttl = tonumber(ARGV[7])
if ttl == 0 then
  redis.call('DEL', KEYS[1])
  return n
end
redis.call('HSET', KEYS[1], 'v', ARGV[4], 'o', ARGV[5], 'e', ARGV[6], 'n', n, 'i', ARGV[8])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('PERSIST', KEYS[1])
end
return n
`)

// takeScript deletes the record KEYS[1] and returns it if it was live. ARGV: now.
// Returns false if there was none, {0, o, i} if it had expired, {1, v, o, e, n, i} if live.
var takeScript = goredis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'v', 'o', 'e', 'n', 'i')
if not r[4] then return false end
redis.call('DEL', KEYS[1])
local e = tonumber(r[3])
if e ~= 0 and e <= tonumber(ARGV[1]) then return {0, r[2], r[5]} end
return {1, r[1], r[2], r[3], r[4], r[5]}
`)

// deleteScript deletes the record KEYS[1] and returns {o, i} (false, false if there was none).
var deleteScript = goredis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'o', 'i')
redis.call('DEL', KEYS[1])
return r
`)

// deleteOwnedScript deletes the record KEYS[1] if its owner is ARGV[1]. ARGV: owner, now.
// Returns false if it has another owner or none, else {1 if it was live or 0, i}.
var deleteOwnedScript = goredis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'o', 'e', 'i')
if r[1] ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
local e = tonumber(r[2])
if e ~= 0 and e <= tonumber(ARGV[2]) then return {0, r[3]} end
return {1, r[3]}
`)

// deleteIfSameScript deletes the record KEYS[1] if its incarnation and version are ARGV[1] and
// ARGV[2] (an expired record a reader found). Returns 1 if it deleted it.
var deleteIfSameScript = goredis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'c', 'n')
if r[1] == ARGV[1] and r[2] == ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

// indexAddScript adds ARGV[1] to the owner index KEYS[1] with a fresh stamp: the server time in
// microseconds, raised if needed to exceed every stamp in the index. ARGV[2] is the record's
// TTL (-1 for none); the index keeps the longest TTL it was given, and none once it lists a
// record without one. Returns the stamp.
var indexAddScript = goredis.NewScript(`
local t = redis.call('TIME')
local s = tonumber(t[1]) * 1000000 + tonumber(t[2])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local existed = top[1] ~= nil
if existed and tonumber(top[2]) >= s then s = tonumber(top[2]) + 1 end
redis.call('ZADD', KEYS[1], string.format('%.0f', s), ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl < 0 then
  redis.call('PERSIST', KEYS[1])
elseif not existed then
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  local cur = redis.call('PTTL', KEYS[1])
  if cur >= 0 and cur < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
end
return s
`)

// indexRemoveScript removes entries from the owner index KEYS[1]. ARGV[1] is the grace in
// microseconds, then triples of id, stamp and mode: an entry goes if its stamp is still the
// given one and, in mode "g" (a stale entry a reader found), is older than the grace; mode "x"
// (the entry of a record the caller removed) needs only the stamp. Returns how many went.
var indexRemoveScript = goredis.NewScript(`
local t = redis.call('TIME')
local limit = tonumber(t[1]) * 1000000 + tonumber(t[2]) - tonumber(ARGV[1])
local n = 0
for k = 2, #ARGV, 3 do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[k])
  if s then
    s = tonumber(s)
    if s == tonumber(ARGV[k + 1]) and (ARGV[k + 2] == 'x' or s < limit) then
      n = n + redis.call('ZREM', KEYS[1], ARGV[k])
    end
  end
end
return n
`)
