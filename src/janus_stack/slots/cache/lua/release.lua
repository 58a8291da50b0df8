-- Semaphore: give back ARGV[1]'s place.
-- KEYS[1]  the semaphore's sorted set (see acquire.lua)
-- Returns  1 if a live lease was released, 0 if it had lapsed or was not there
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
return redis.call('ZREM', KEYS[1], ARGV[1])
