-- class: 5
-- args: --memlimit 8M
-- rss: yes
-- A 1 MB name referenced 400 times: the report would be 540 MB under an 8 MB limit.
local big = talloc.new(nil, string.rep("n", 1 << 20))
local holders = talloc.new(nil, "holders")
for i = 1, 400 do talloc.reference(talloc.new(holders), big) end
local ok, e = pcall(talloc.report_full, holders)
assert(not ok and e:find("not enough memory"), tostring(e))
ok, e = pcall(talloc.report_full)
assert(not ok and e:find("not enough memory"), tostring(e))
ok, e = pcall(talloc.dot)  -- one node per context: the name once, the references as edges
assert(ok or e:find("not enough memory"), tostring(e))
talloc.free(holders)
print("ok")
