-- class: 6
-- args: --memlimit 8M
-- rss: yes
-- A refusing child of a free whose parent a destructor frees meanwhile (finding F10): talloc sends it to
-- the top level. It went to the *true* top level, out of the state's tree and its memory limit (200 MB
-- under 8M, never freed: not by the collector, not at close). Lua's top level is the state's root: the
-- child goes there, under the limit, and is freed at close.
local function detached()
  local P = talloc.new(nil, "P")
  local C = talloc.new(P, "C")
  local K = talloc.new(C, "K")                                   -- refuses: moves to C's parent
  local T = talloc.new(C, "T")                                   -- newest: its destructor runs first
  talloc.set_destructor(K, function() return false end)
  talloc.set_destructor(T, function() talloc.free(P) end)        -- frees C's parent mid-walk
  assert(talloc.free(C))
  return K
end
for round = 1, 3 do
  local K = detached()
  assert(talloc.parent(K) == nil and not talloc.is_freed(K) and talloc.get_name(K) == "K")
  -- under the limit: 200 MB do not fit in 8M
  local big = {}
  local ok, e = pcall(function() for i = 1, 100 do big[i] = talloc.size(K, 2 * 1024 * 1024) big[i]:fill(1) end end)
  assert(not ok and tostring(e):find("not enough memory"), tostring(e))
  assert(talloc.total_size(K) < 8 * 1024 * 1024)
  -- in Lua's tree: a report of everything shows it, a free gives its memory back
  assert(talloc.report(nil, {addresses = false}):find("\n    K ", 1, true) or
         talloc.report_full(nil, {addresses = false}):find(" K ", 1, true))
  talloc.set_destructor(K, nil)
  assert(talloc.free(K))
end
-- one left for the close to free (LeakSanitizer and valgrind see none left)
keep = detached()
print("ok")
