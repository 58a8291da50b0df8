-- Token bucket: refill, then take ARGV[3] tokens if the bucket holds them.
-- KEYS[1]  the bucket, a hash {tokens, us}; absent means full
-- ARGV[1]  rate, tokens per second   ARGV[2]  burst (capacity)   ARGV[3]  cost
-- Returns  {allowed 0|1, remaining tokens, retry_after seconds}, numbers as strings
-- The server's clock is the only clock, so clients with skewed clocks agree.
-- Numbers handed to redis.call are formatted explicitly: Lua's default "%.14g"
-- would round a microsecond timestamp.
if redis.replicate_commands then redis.replicate_commands() end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'us')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens = burst
elseif now > stamp then
  tokens = math.min(burst, tokens + (now - stamp) / 1000000 * rate)
end
local allowed = 0
local retry_after = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry_after = (cost - tokens) / rate
end
-- The key lives exactly as long as the bucket is not full; capped at ten years.
local until_full_ms = math.min(math.ceil((burst - tokens) / rate * 1000), 315360000000)
if until_full_ms > 0 then
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
    'us', string.format('%.0f', now))
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', until_full_ms))
else
  redis.call('DEL', KEYS[1])
end
return {allowed, string.format('%.17g', tokens), string.format('%.17g', retry_after)}
