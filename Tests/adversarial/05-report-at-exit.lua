-- class: 5
-- args: --memlimit 8M --report
-- rss: yes
-- --report at exit streams the report to stderr: the text of a deep chain never sits in memory.
local top = talloc.new(nil, "top")
local x = top
for i = 1, 3000 do x = talloc.new(x, "n") end
keep = top
print("ok")
