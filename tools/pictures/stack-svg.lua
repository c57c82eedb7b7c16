-- stack-svg.lua — puts Graphviz SVG drawings one under the other in one SVG, each with an optional
-- caption:  luatalloc tools/pictures/stack-svg.lua a.svg "" b.svg "legend" > both.svg
-- (Graphviz sizes are in points; the stacked picture keeps them.)

local GAP, CAPTION = 18, 16
local parts, width, height = {}, 0, 0
for i = 1, #arg, 2 do
  local f = assert(io.open(arg[i], "rb"))
  local text = f:read("a")
  f:close()
  local svg = assert(text:match("<svg.-</svg>"), arg[i] .. ": no <svg> element")
  local w, h = svg:match('^<svg width="([%d.]+)pt" height="([%d.]+)pt"')
  local box = svg:match('viewBox="([^"]*)"')
  assert(w and h and box, arg[i] .. ": not a Graphviz SVG")
  local caption = arg[i + 1] or ""
  local top = height + (height > 0 and GAP or 0) + (caption ~= "" and CAPTION or 0)
  local body = svg:gsub("^<svg[^>]*>", "", 1):gsub("</svg>%s*$", "")
  parts[#parts + 1] = { caption = caption, top = top, w = tonumber(w), h = tonumber(h), box = box, body = body }
  width = math.max(width, tonumber(w))
  height = top + tonumber(h)
end

local out = {}
width, height = math.ceil(width), math.ceil(height)
out[#out + 1] = string.format('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n' ..
  '<svg width="%dpt" height="%dpt" viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg" ' ..
  'xmlns:xlink="http://www.w3.org/1999/xlink">', width, height, width, height)
out[#out + 1] = string.format('<rect width="%d" height="%d" fill="white"/>', width, height)
for _, p in ipairs(parts) do
  if p.caption ~= "" then
    out[#out + 1] = string.format('<text x="4" y="%d" font-family="monospace" font-size="11" fill="#555555">%s</text>',
                                  p.top - 4, p.caption)
    out[#out + 1] = string.format('<line x1="4" y1="%d" x2="%d" y2="%d" stroke="#bbbbbb"/>',
                                  p.top - CAPTION - 2, width - 4, p.top - CAPTION - 2)
  end
  out[#out + 1] = string.format('<svg x="0" y="%d" width="%g" height="%g" viewBox="%s">', p.top, p.w, p.h, p.box)
  out[#out + 1] = p.body
  out[#out + 1] = "</svg>"
end
out[#out + 1] = "</svg>"
io.write(table.concat(out, "\n"), "\n")
