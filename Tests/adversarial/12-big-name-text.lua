-- class: 6
-- args: --memlimit 8M
-- rss: yes
-- Text made of a big name (finding F2): tostring, get_name, parent_name, get_type_abort and the error of a
-- freed context copied the name into Swift arrays no limit counts (2-3 copies of 3.5 MB over an 8 MB
-- limit) before Lua made its string. Now the name's bytes go straight from the chunk into Lua's string,
-- charged like any: the call succeeds if the text fits, and raises "not enough memory" otherwise.
local n = 3 * 1024 * 1024 + 512 * 1024
local s = talloc.strdup(nil, string.rep("x", n))   -- named by its own 3.5 MB contents
collectgarbage() collectgarbage()
local child = talloc.new(s, "child")
local function check(ok, v, expect)
  assert(ok or tostring(v):find("not enough memory"), tostring(v))
  if ok and expect then assert(v == expect, "wrong text") end
end
for round = 1, 3 do
  local ok, v = pcall(tostring, s)
  check(ok, v)
  if ok then assert(#v > n and v:sub(1, 17) == "talloc.context 'x" and v:find("' (" .. (n + 1) .. " bytes) 0x", 1, true)) end
  ok, v = pcall(talloc.get_name, s)
  check(ok, v)
  if ok then assert(#v == n) end
  ok, v = pcall(talloc.parent_name, child)
  check(ok, v)
  if ok then assert(#v == n) end
  ok, v = pcall(talloc.get_type_abort, s, "y")
  assert(not ok)
  assert(tostring(v):find("not enough memory") or (#v > n and v:find("Type mismatch: name[x", 1, true) and v:find("] expected[y]", 1, true)))
  v = nil
  collectgarbage() collectgarbage()
end
-- the same texts are exact for names of every kind (smaller: they fit)
local named = talloc.new(nil, "a\0b")
assert(talloc.get_name(named) == "a")
assert(tostring(named):match("^talloc.context 'a' %(0 bytes%) 0x%x+$"), tostring(named))
local loc = talloc.new(nil)
assert(talloc.get_name(loc):match("^talloc_new: .*12%-big%-name%-text%.lua:%d+$"), talloc.get_name(loc))
assert(tostring(loc):find("'talloc_new: ", 1, true))
local sized = talloc.size(loc, 3)
assert(talloc.get_name(sized):match("12%-big%-name%-text%.lua:%d+$") and talloc.parent_name(sized) == talloc.get_name(loc))
local ok, e = pcall(talloc.get_type_abort, loc, string.rep("e", 100000))
assert(not ok and e:find("Type mismatch: name[talloc_new: ", 1, true) and e:find("] expected[" .. string.rep("e", 100000) .. "]", 1, true))
ok, e = pcall(talloc.get_type_abort, nil, "zz\0q")
assert(not ok and e:find("Type mismatch: name[NULL] expected[zz\0q]", 1, true), e)
-- the error of a freed context names it with the name it had
local big = talloc.new(nil, string.rep("b", 1 << 20))
talloc.free(big)
ok, e = pcall(talloc.get_size, big)
assert(not ok and (e:find("attempt to use a freed talloc context ('" .. string.rep("b", 1 << 20) .. "')", 1, true)
                   or e:find("not enough memory")), e:sub(1, 100))
talloc.free(loc)
ok, e = pcall(talloc.get_size, loc)
assert(not ok and e:find("attempt to use a freed talloc context ('talloc_new: ", 1, true) and e:find(":%d+'%)$"), e)
print("ok")
