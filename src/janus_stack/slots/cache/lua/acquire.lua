-- Semaphore: grant ARGV[3] a place (or refresh its own) if fewer than ARGV[1] live leases.
-- KEYS[1]  a sorted set: member = holder, score = lease expiry in ms of server time
-- ARGV[1]  limit   ARGV[2]  lease length in ms   ARGV[3]  holder
-- Returns  the new expiry in ms, or nil when every place is held
-- Lapsed leases are purged first, so a dead holder's place is free again;
-- the key expires with its last lease.
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
if not redis.call('ZSCORE', KEYS[1], ARGV[3])
    and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return nil
end
local expires = string.format('%.0f', now + tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], expires, ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return expires
