-- class: 6
-- args: --memlimit 16M
-- rss: yes
-- Chunk names are counted per state: 300,000 differently named chunks each make a context named after
-- its position; the names go when their contexts go, so memory stays flat.
for i = 1, 300000 do
  local f = load("return talloc.new()", "=chunk number " .. i)
  f()
  if i % 10000 == 0 then collectgarbage() end
end
collectgarbage()
print("ok")
