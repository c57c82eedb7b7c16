// luatalloc benchmarks — rows that need the Lua module: W6 `talloc.new()` (the module opened into the
// stock lua5.4 state of W6 exactly as the `talloc` product's luaopen_talloc does for `require "talloc"`;
// that product is not linked here because it is also named libtalloc.so) and W7 (a LuaRuntime, whose
// Lua heap is accounted in TallocCore).
// SPDX-License-Identifier: MIT
import CBench
import LuaTalloc
import TallocCore

func luaModuleRows(_ cfg: Config) -> [Row] {
    let t = luaLoopRow("W6.talloc", impl: "talloc.new() (TallocCore module)", expr: "talloc.new",
                       counterpart: "W6.cbinding") { L in
        cb_lua_require(L, "talloc") { L in
            // As Sources/TallocLuaModule/luaopen_talloc.swift.
            guard let root = try? TallocContext.new(parent: nil, name: "lua contexts") else { return 0 }
            let status = LuaTallocModule.open(OpaquePointer(L!), root: root, ownsRoot: true, setGlobal: false)
            precondition(status == 0, "talloc module failed to open")
            return 1
        }
    }
    return [t]
}

func luaHeapRows(_ cfg: Config, _ depth: Int) -> [Row] {
    func runtimeRow(_ id: String, _ impl: String, _ options: LuaRuntime.Options) -> Row {
        var runtime: LuaRuntime?
        return binaryTreesRow(id, impl: impl, depth: depth, newState: {
            runtime = try! LuaRuntime(options: options)
            return UnsafeMutableRawPointer(runtime!.state!)
        }, close: { _ in
            runtime!.close()
            runtime = nil
        })
    }
    return [
        runtimeRow("W7.core", "LuaRuntime (heap in TallocCore)", LuaRuntime.Options()),
        runtimeRow("W7.core.limit", "LuaRuntime, 4 GiB memory limit", LuaRuntime.Options(memoryLimit: 4 << 30)),
    ]
}
