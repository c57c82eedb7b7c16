// luatalloc — LuaTalloc tests
// SPDX-License-Identifier: MIT
//
// Issue 10, adversarial F12: a pool freed while a member stolen out of it lives keeps its block, and that
// block stays charged to the limit (each round of this script kept 4 MiB outside an 8 MiB limit).

import LuaTalloc
import Testing

@Suite("Pinned pools stay inside the memory limit")
struct PinnedPoolLuaTests {
    @Test("rounds of pool, steal a member out, free the pool end in 'not enough memory', in the sandbox too",
          arguments: [false, true])
    func pinnedPoolsCountAgainstTheLimit(sandbox: Bool) throws {
        let options: LuaRuntime.Options = sandbox
            ? .sandbox(memoryLimit: 8 << 20, instructionLimit: 100_000_000)
            : .init(memoryLimit: 8 << 20)
        let rt = try LuaRuntime(options: options)
        defer { rt.close() }
        let result = try rt.run("""
            local kept, err = {}, nil
            for i = 1, 100 do
              local ok, e = pcall(function()
                local p = talloc.pool(nil, 4 << 20)
                local m = talloc.size(p, 16)
                talloc.zero(p, (4 << 20) - 256)
                talloc.steal(nil, m)
                kept[#kept + 1] = m
                talloc.free(p)
              end)
              if not ok then err = e break end
            end
            local n = #kept
            kept = nil
            collectgarbage(); collectgarbage()
            local after = talloc.pool(nil, 4 << 20)  -- the pinned blocks went with their members
            return n, err, after ~= nil
            """)
        #expect(result.count == 3)
        #expect(result[0].intValue.map { $0 >= 1 && $0 <= 2 } == true, "\(result)")
        #expect(result[1].stringValue?.hasSuffix("not enough memory") == true, "\(result)")
        #expect(result[2].boolValue == true)
    }
}
