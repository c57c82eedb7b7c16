-- pool-map.lua — draws the pool chapter's example (scripts/01-pool-example.lua) as an SVG: one bar per
-- step, the pool's bytes as talloc.pool_map sees them (headers, live bytes, holes, free space), each
-- chunk labelled, with talloc.pool_info's numbers beside it.
--
-- Run by tools/render-pictures.sh:  luatalloc tools/pictures/pool-map.lua > docs/images/pool-map.svg
-- Every number and every region comes from talloc (pool_map, pool_info, the contexts' addresses); the
-- SVG also records each step's map in a comment, which the render script compares with the maps the
-- chapter script itself prints.

local out = {}
local function emit(fmt, ...) out[#out + 1] = string.format(fmt, ...) end
local function esc(s) return (s:gsub("&", "&amp;"):gsub("<", "&lt;"):gsub(">", "&gt;")) end

-- Geometry: the 1024-byte pool is 640 px wide (16 bytes, one pool_map character, are 10 px).
local LEFT, BAR_W, BAR_H, ROW_H, TOP = 24, 640, 30, 78, 58
local NUMBERS_X = LEFT + BAR_W + 12          -- pool_info's numbers
local OUTSIDE_X = NUMBERS_X + 104             -- what did not fit: a box outside the pool
local WIDTH = OUTSIDE_X + 184
local CHAR_W = 7.3                            -- a 12 px monospace character, near enough
local COLOURS = {
  H = { fill = "#2f5597", text = "#ffffff" },  -- chunk header
  ["#"] = { fill = "#cfe0ff", text = "#1b2f57" },  -- live bytes
  ["."] = { fill = "url(#hole)", text = "#444444" },  -- a hole (bytes given back in the middle)
  _ = { fill = "#ffffff", text = "#777777" },  -- free space at the end
}

-- The address tostring shows for a context (its body), as an integer.
local function address(c) return tonumber(tostring(c):match("0x(%x+)$"), 16) end

local steps = {}
local function step(title, pool, named, extra)
  local map = talloc.pool_map(pool)
  local info = talloc.pool_info(pool)
  local cells, unit = map:match("^%[([H#._]*)%].-1 char = (%d+) bytes$")
  assert(cells and #cells * tonumber(unit) == info.capacity, "unexpected pool_map: " .. map)
  -- Where each named live chunk starts: its header is 64 bytes before the body tostring shows.
  local labels = {}
  for _, entry in ipairs(named) do
    local name, c = entry[1], entry[2]
    local offset = address(c) - 64 - address(pool)
    local cell = offset // tonumber(unit) + 1
    assert(cells:sub(cell, cell) == "H", name .. " is not where the map has a header")
    labels[cell] = string.format("%s: %d bytes", name, talloc.get_size(c))
  end
  steps[#steps + 1] = { title = title, map = map, cells = cells, unit = tonumber(unit), info = info,
                        labels = labels, extra = extra }
end

-- The chapter's example, as scripts/01-pool-example.lua runs it.
local pool_ctx = talloc.pool(nil, 1024)
step("talloc_pool(NULL, 1024)", pool_ctx, {})
local ptr = talloc.size(pool_ctx, 512)
step("ptr = talloc_size(pool_ctx, 512)", pool_ctx, { { "ptr", ptr } })
local ptr2 = talloc.size(ptr, 1024)
assert(talloc.pool_info(ptr2) == nil)
step("ptr2 = talloc_size(ptr, 1024): does not fit", pool_ctx, { { "ptr", ptr } },
     { string.format("ptr2: %d bytes", talloc.get_size(ptr2)), "malloc'd, not in the pool" })
local ptr3 = talloc.size(ptr, 200)
step("ptr3 = talloc_size(ptr, 200)", pool_ctx, { { "ptr", ptr }, { "ptr3", ptr3 } })
talloc.free(ptr3)
step("talloc_free(ptr3): the last chunk is reclaimed", pool_ctx, { { "ptr", ptr } })
local ptr4 = talloc.size(ptr, 200)
step("ptr4 = talloc_size(ptr, 200): lands where ptr3 was", pool_ctx, { { "ptr", ptr }, { "ptr4", ptr4 } })
talloc.free(pool_ctx)

local HEIGHT = TOP + #steps * ROW_H + 70
emit('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" ' ..
     'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12">', WIDTH, HEIGHT, WIDTH, HEIGHT)
emit('<defs><pattern id="hole" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">' ..
     '<rect width="6" height="6" fill="#eeeeee"/><line x1="0" y1="0" x2="0" y2="6" stroke="#999999" stroke-width="2"/>' ..
     '</pattern></defs>')
emit('<rect width="%d" height="%d" fill="#ffffff"/>', WIDTH, HEIGHT)
emit('<text x="%d" y="24" font-size="15" font-weight="bold">A 1 KiB talloc pool, step by step (talloc.pool_map)</text>', LEFT)
emit('<text x="%d" y="42" fill="#555555">one bar = the pool\'s 1024 bytes; 1 cell = %d bytes; ' ..
     'each chunk = a 64-byte header + its bytes, rounded to 16</text>', LEFT, steps[1].unit)

for i, s in ipairs(steps) do
  local y = TOP + (i - 1) * ROW_H
  local px = BAR_W / #s.cells
  emit('<!-- map: %s -->', esc(s.map))
  emit('<text x="%d" y="%d" font-weight="bold">%d. %s</text>', LEFT, y + 14, i, esc(s.title))
  local barY = y + 22
  -- Runs of one kind of cell.
  local j = 1
  while j <= #s.cells do
    local kind = s.cells:sub(j, j)
    local k = j
    while k < #s.cells and s.cells:sub(k + 1, k + 1) == kind do k = k + 1 end
    local x = LEFT + (j - 1) * px
    local w = (k - j + 1) * px
    emit('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" stroke="#2f5597" stroke-width="0.6"/>',
         x, barY, w, BAR_H, COLOURS[kind].fill)
    if kind == "H" and s.labels[j] then
      emit('<text x="%.1f" y="%d" fill="%s" font-size="10" text-anchor="middle">hdr</text>',
           x + w / 2, barY + BAR_H / 2 + 4, COLOURS.H.text)
    elseif kind == "#" then
      local label = s.labels[j - 64 // s.unit]
      if label then
        emit('<text x="%.1f" y="%d" fill="%s" text-anchor="middle">%s</text>',
             x + w / 2, barY + BAR_H / 2 + 4, COLOURS["#"].text, esc(label))
      end
    elseif kind == "_" then
      local text = string.format("free: %d bytes", s.info.available)
      if #text * CHAR_W > w - 6 then text = string.format("%d free", s.info.available) end
      if #text * CHAR_W <= w - 6 then
        emit('<text x="%.1f" y="%d" fill="%s" text-anchor="middle">%s</text>',
             x + w / 2, barY + BAR_H / 2 + 4, COLOURS._.text, text)
      end
    end
    j = k + 1
  end
  emit('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#1b2f57" stroke-width="1.2"/>',
       LEFT, barY, BAR_W, BAR_H)
  emit('<text x="%d" y="%d">%d/%d used</text>', NUMBERS_X, barY + 12, s.info.used, s.info.capacity)
  emit('<text x="%d" y="%d" fill="#555555">%d object%s</text>', NUMBERS_X, barY + 26, s.info.objects,
       s.info.objects == 1 and "" or "s")
  if s.extra then
    emit('<rect x="%d" y="%d" width="172" height="%d" fill="#ffe6cc" stroke="#c45f00" stroke-dasharray="4 3" rx="6"/>',
         OUTSIDE_X, barY, BAR_H)
    emit('<text x="%d" y="%d" fill="#7a3a00" text-anchor="middle">%s</text>', OUTSIDE_X + 86, barY + 12, esc(s.extra[1]))
    emit('<text x="%d" y="%d" fill="#7a3a00" text-anchor="middle" font-size="10">%s</text>',
         OUTSIDE_X + 86, barY + 25, esc(s.extra[2]))
  end
end

-- Legend.
local ly = TOP + #steps * ROW_H + 12
local lx = LEFT
for _, item in ipairs({ { "H", "chunk header (64 bytes)" }, { "#", "live bytes" },
                        { ".", "hole (given back)" }, { "_", "free" } }) do
  emit('<rect x="%d" y="%d" width="18" height="14" fill="%s" stroke="#2f5597" stroke-width="0.6"/>',
       lx, ly, COLOURS[item[1]].fill)
  emit('<text x="%d" y="%d">%s</text>', lx + 24, ly + 11, item[2])
  lx = lx + 42 + #item[2] * 7
end
emit('<text x="%d" y="%d" fill="#555555">Freeing gives bytes back only for the chunk carved last; ' ..
     'the pool\'s block goes with its last object.</text>', LEFT, ly + 40)
emit('</svg>')
io.write(table.concat(out, "\n"), "\n")
