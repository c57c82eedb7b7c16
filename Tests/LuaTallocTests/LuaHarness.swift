// luatalloc — LuaTalloc tests
// SPDX-License-Identifier: MIT

import LuaTalloc
import Testing

/// Runs Lua code in a fresh runtime; Lua's `assert`s do the checking, a failure comes back as the
/// error message (with traceback).
func lua(_ code: String, memoryLimit: Int? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let rt = try LuaRuntime(options: .init(memoryLimit: memoryLimit))
        defer { rt.close() }
        try rt.run(code, chunkName: "=test")
    } catch {
        Issue.record("Lua failed: \(error)", sourceLocation: sourceLocation)
    }
}

/// Runs Lua code and returns the error message it ended with (nil when it ran to the end).
func luaError(_ code: String, memoryLimit: Int? = nil) -> String? {
    do {
        let rt = try LuaRuntime(options: .init(memoryLimit: memoryLimit))
        defer { rt.close() }
        try rt.run(code, chunkName: "=test")
        return nil
    } catch {
        return "\(error)"
    }
}
