-- tree-policy example: one context per directory, one block per file (its size in bytes).
-- Run: swift run tree-policy examples/tree-policy/policy.lua examples/tree-policy/files.txt
function build(entries)
  local root = talloc.new(nil, "files")
  local dirs = {[""] = root}
  for _, e in ipairs(entries) do
    local parent, prefix = root, ""
    for i = 1, #e.parts - 1 do
      prefix = prefix .. "/" .. e.parts[i]
      local dir = dirs[prefix]
      if not dir then
        dir = talloc.new(parent, e.parts[i])
        dirs[prefix] = dir
      end
      parent = dir
    end
    talloc.size(parent, e.size, e.parts[#e.parts])
  end
  note(("%d files, %d bytes"):format(#entries, root:total_size()))
  return root
end
