-- Semaphore: extend ARGV[2]'s live lease to ARGV[1] ms from now.
-- KEYS[1]  the semaphore's sorted set (see acquire.lua)
-- Returns  the new expiry in ms, or nil when the lease had lapsed or was released
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  return nil
end
local expires = string.format('%.0f', now + tonumber(ARGV[1]))
redis.call('ZADD', KEYS[1], 'XX', expires, ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return expires
