"""The Lua scripts that keep limits and budgets atomic across gateway replicas: one round trip each, Redis's clock
for every replica, and all-or-nothing over every scope (a request refused by its tenant's limit consumes nothing of
its key's). The arithmetic is `serving.tenancy.windows`, which the tests check these scripts against.

Why scripts and not the `limits` library: a request must pass several limits at once (key and tenant, requests,
tokens, concurrency) or none; `limits` checks one at a time, so a refusal by the second has already consumed the
first. Its moving window also keeps one list element per unit, i.e. per token for tokens/min.
"""

from __future__ import annotations

_CLOCK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: per scope its requests window, tokens window and in-flight set (3 keys a scope).
# ARGV: request id, prompt tokens, lease ms, bucket width ms, buckets, then per scope: rpm, tpm, max concurrent
# (0: unbounded). Returns {1, now, per scope: requests used, requests reset ms, tokens used, tokens reset ms} or
# {0, scope index, reason, retry ms, now, then the refused scope's requests used, requests reset ms, tokens used,
# tokens reset ms}.
ADMIT = (
    _CLOCK
    + """
local rid = ARGV[1]
local prompt = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local width = tonumber(ARGV[4])
local buckets = tonumber(ARGV[5])
local window = width * buckets
local cur = math.floor(now / width)
local oldest = cur - buckets
local elapsed = (now - cur * width) / width

local function scan(key)
  local flat = redis.call('HGETALL', key)
  local used, first = 0, -1
  for i = 1, #flat, 2 do
    local idx = tonumber(flat[i])
    local count = tonumber(flat[i + 1])
    if idx < oldest then
      redis.call('HDEL', key, flat[i])
    else
      if idx == oldest then used = used + count * (1 - elapsed) else used = used + count end
      if count > 0 and (first < 0 or idx < first) then first = idx end
    end
  end
  return used, first
end

local function retry(first)
  if first < 0 then return 1000 end
  return math.max(1000, (first + 1) * width + window - now)
end

local scopes = #KEYS / 3
local used = {}
for s = 0, scopes - 1 do
  local rpm, tpm, maxc = tonumber(ARGV[6 + s * 3]), tonumber(ARGV[7 + s * 3]), tonumber(ARGV[8 + s * 3])
  local requests, tokens, rfirst, tfirst = 0, 0, -1, -1
  if rpm > 0 then requests, rfirst = scan(KEYS[1 + s * 3]) end
  if tpm > 0 then tokens, tfirst = scan(KEYS[2 + s * 3]) end
  -- A refusal carries the refused scope's usage too: its 429 has the x-ratelimit-* headers like any answer.
  local function refuse(reason, ms)
    return {0, s, reason, ms, now, tostring(requests), retry(rfirst), tostring(tokens), retry(tfirst)}
  end
  if rpm > 0 and requests + 1 > rpm then return refuse('requests', retry(rfirst)) end
  if tpm > 0 then
    if prompt > tpm then return refuse('request_too_large', window) end
    if tokens + prompt > tpm then return refuse('tokens', retry(tfirst)) end
  end
  if maxc > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[3 + s * 3], '-inf', now)
    if redis.call('ZCARD', KEYS[3 + s * 3]) >= maxc then return refuse('concurrency', 1000) end
  end
  used[s] = {requests, tokens}
end

local reply = {1, now}
local reset = (cur + 1) * width + window - now
for s = 0, scopes - 1 do
  local rpm, tpm, maxc = tonumber(ARGV[6 + s * 3]), tonumber(ARGV[7 + s * 3]), tonumber(ARGV[8 + s * 3])
  if rpm > 0 then
    redis.call('HINCRBY', KEYS[1 + s * 3], cur, 1)
    redis.call('PEXPIRE', KEYS[1 + s * 3], window + width)
  end
  if tpm > 0 and prompt > 0 then
    redis.call('HINCRBY', KEYS[2 + s * 3], cur, prompt)
    redis.call('PEXPIRE', KEYS[2 + s * 3], window + width)
  end
  if maxc > 0 then
    redis.call('ZADD', KEYS[3 + s * 3], now + lease, rid)
    redis.call('PEXPIRE', KEYS[3 + s * 3], lease)
  end
  table.insert(reply, tostring(used[s][1] + 1))
  table.insert(reply, reset)
  table.insert(reply, tostring(used[s][2] + prompt))
  table.insert(reply, reset)
end
return reply
"""
)

# KEYS: tokens windows. ARGV: tokens to add (negative: a correction), bucket width ms, buckets.
TOKENS = (
    _CLOCK
    + """
local width = tonumber(ARGV[2])
local cur = math.floor(now / width)
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], cur, tonumber(ARGV[1]))
  redis.call('PEXPIRE', KEYS[i], width * (tonumber(ARGV[3]) + 1))
end
return now
"""
)

# KEYS: budget hashes (field `spent`, and `r:<request id>` = "<micro-dollars>|<expiry ms>" per open reservation).
# ARGV: request id, lease ms, ttl ms, then per budget: limit, amount (micro-dollars).
# Returns {1, -1, per budget: spent + held after} or {0, budget index, spent, held}.
RESERVE = (
    _CLOCK
    + """
local totals = {}
for i = 1, #KEYS do
  local limit, amount = tonumber(ARGV[2 + i * 2]), tonumber(ARGV[3 + i * 2])
  local flat = redis.call('HGETALL', KEYS[i])
  local spent, held = 0, 0
  for j = 1, #flat, 2 do
    local field = flat[j]
    if field == 'spent' then
      spent = tonumber(flat[j + 1])
    elseif string.sub(field, 1, 2) == 'r:' then
      local value = flat[j + 1]
      local bar = string.find(value, '|', 1, true)
      if tonumber(string.sub(value, bar + 1)) < now then
        redis.call('HDEL', KEYS[i], field)  -- its replica died: the reservation lapses
      else
        held = held + tonumber(string.sub(value, 1, bar - 1))
      end
    end
  end
  if spent + held + amount > limit then return {0, i - 1, spent, held} end
  totals[i] = spent + held + amount
end
local reply = {1, -1}
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], 'r:' .. ARGV[1], ARGV[3 + i * 2] .. '|' .. (now + tonumber(ARGV[2])))
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[3]))
  table.insert(reply, totals[i])
end
return reply
"""
)

# KEYS: in-flight sets..., budget hashes..., tokens windows..., the ledger stream, the settled marker.
# ARGV: request id, bucket width ms, buckets, #in-flight, #budgets, #windows, ledger max length, marker ttl ms,
# then per budget its actual cost, per window its token correction, then the ledger entry's field/value pairs.
# Once per request id (the marker): a settlement retried after a lost reply is not counted twice.
FINISH = (
    _CLOCK
    + """
local rid = ARGV[1]
local width, buckets = tonumber(ARGV[2]), tonumber(ARGV[3])
local nconc, nbud, ntok = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local marker = KEYS[#KEYS]
if redis.call('SET', marker, '1', 'NX', 'PX', tonumber(ARGV[8])) == false then return 0 end
for i = 1, nconc do redis.call('ZREM', KEYS[i], rid) end
for i = 1, nbud do
  local key = KEYS[nconc + i]
  redis.call('HDEL', key, 'r:' .. rid)
  redis.call('HINCRBY', key, 'spent', tonumber(ARGV[8 + i]))
end
local cur = math.floor(now / width)
for i = 1, ntok do
  local delta = tonumber(ARGV[8 + nbud + i])
  if delta ~= 0 then
    local key = KEYS[nconc + nbud + i]
    redis.call('HINCRBY', key, cur, delta)
    redis.call('PEXPIRE', key, width * (buckets + 1))
  end
end
local entry = {}
for i = 9 + nbud + ntok, #ARGV do table.insert(entry, ARGV[i]) end
redis.call('XADD', KEYS[#KEYS - 1], 'MAXLEN', '~', ARGV[7], '*', unpack(entry))
return 1
"""
)
