-- 08-pool-sizing.lua — sizing a pool from measurements.
--
-- The pools chapter ends with a warning: "a memory pool requires a very good estimate of the required
-- memory space". Guess too small and what does not fit goes to malloc, one chunk at a time (a "spill":
-- the pool's speed is lost); guess too big and the pool's block wastes memory. talloc gives no help.
-- luatalloc measures: every pool keeps statistics (talloc.pool_stats), and talloc.pool_advice says what
-- capacity would have served every allocation the pool saw, and what that costs.
--
-- Run it:  luatalloc scripts/08-pool-sizing.lua
-- The same measurements per line of code, at exit:  luatalloc --pool-report scripts/08-pool-sizing.lua

-- The workload: one request, parsed into talloc chunks that all hang off the pool.
local function handle_request(pool)
  local request = talloc.new(pool, "request")
  talloc.strdup(request, "GET /index.html HTTP/1.1")
  local headers = talloc.zero(request, 8 * 16, "headers")
  for i = 1, 8 do talloc.asprintf(headers, "X-Header-%d: value %d", i, i) end
  talloc.zero(request, 300, "body")
  return request
end

local function show(pool)
  local s = talloc.pool_stats(pool)
  print(string.format("   capacity %d: %d allocations served, %d spilled to the heap (%d bytes of pool space)",
    s.capacity, s.allocations, s.spills, s.spilled_bytes))
  print(string.format("   peak %d bytes used; the capacity that serves everything: %d", s.peak, s.needed))
  print("   map:  " .. talloc.pool_map(pool))
end

-- 1. A guess: 1 KiB. The eighth header and the body do not fit: two spills.
print("== a pool of 1024 bytes (a guess)")
local pool = talloc.pool(nil, 1024)
handle_request(pool)
show(pool)
local advice = talloc.pool_advice(pool)
print("   advice: " .. advice.text)
talloc.free(pool)

-- 2. The advice, applied: the same request, no spill, the pool exactly full at its peak.
print(string.format("== a pool of %d bytes (the advice)", advice.advised))
pool = talloc.pool(nil, advice.advised)
handle_request(pool)
show(pool)
print("   advice: " .. talloc.pool_advice(pool).text)
talloc.free(pool)

-- 3. Too big a guess wastes memory; the advice says by how much.
print("== a pool of 8192 bytes (too big)")
pool = talloc.pool(nil, 8192)
handle_request(pool)
print("   advice: " .. talloc.pool_advice(pool).text)
talloc.free(pool)

-- 4. One pool for many requests: free_children empties it, the pool resets, and the peak is one
-- request's. (Freed in any other order, holes would pile up until the next reset: see "holes".)
print(string.format("== one pool of %d bytes for 100 requests", advice.advised))
pool = talloc.pool(nil, advice.advised)
for _ = 1, 100 do
  handle_request(pool)
  talloc.free_children(pool)
end
local s = talloc.pool_stats(pool)
print(string.format("   %d allocations, %d spills, %d resets, %d holes, peak %d of %d bytes",
  s.allocations, s.spills, s.resets, s.holes, s.peak, s.capacity))
talloc.free(pool)

print()
print("A chunk takes ALIGN16(64 + size) bytes of its pool: the request's 12 chunks take 1488 bytes. The")
print("advice is the highest the pool would have been filled had it never spilled; applied to the same")
print("run, nothing spills (the tests check it on random runs).")
