// luatalloc — LuaTalloc tests: copying Lua values into Swift (_LuaReader): each table read once,
// sharing, cycles, the depth limit, hostile shapes
// SPDX-License-Identifier: MIT

import Foundation
import LuaTalloc
import Testing

/// Whether two `.table` values share their storage (one Swift dictionary buffer, not two equal ones).
private func sameStorage(_ a: LuaValue, _ b: LuaValue) -> Bool {
    guard case .table(let x) = a, case .table(let y) = b, !x.isEmpty else { return false }
    return withUnsafeBytes(of: x) { px in withUnsafeBytes(of: y) { py in px.elementsEqual(py) } }
}

private func conversionError(_ rt: LuaRuntime, _ code: String) -> String? {
    do {
        _ = try rt.run(code)
        return nil
    } catch {
        guard error.kind == .conversion else { return "not a conversion error: \(error)" }
        return error.message
    }
}

@Suite("Lua values into Swift")
struct ValueConversionTests {
    // MARK: Sharing

    @Test("a DAG of 2^30 paths converts at once, each table once, into shared Swift values", .timeLimit(.minutes(1)))
    func dagConvertsOnceAndShares() throws {
        let rt = try LuaRuntime()
        let v = try rt.run("local t = {} for i = 1, 30 do t = {t, t} end return t")[0]
        var level = v
        for i in 0..<29 {
            #expect(sameStorage(level[1], level[2]), "level \(i)")
            #expect(level.tableValue?.count == 2)
            level = level[1]
        }
        #expect(level[1] == .table([:]) && level[2] == .table([:]))
        // two results, and a table inside another result, share too (one reader per copy)
        let r = try rt.run("local t = {1, 2} return {t, {t}}, t")
        #expect(sameStorage(r[0][1], r[1]) && sameStorage(r[0][2][1], r[1]))
    }

    @Test("a DAG whose tables all point back at the root converts once too (it was exponential)",
          .timeLimit(.minutes(1)))
    func dagUnderACycleConvertsOnce() throws {
        let rt = try LuaRuntime()
        let root = try rt.run("""
        local root = {} local t = {name = 'bottom'}
        for i = 1, 30 do t = {t, t, root} end
        root[1] = t
        return root
        """)[0]
        var level = root[1]
        for k in 0..<30 {
            #expect(level[3] == .cycle(levelsUp: k + 2), "level \(k)")
            #expect(sameStorage(level[1], level[2]), "level \(k)")
            level = level[1]
        }
        #expect(level["name"] == "bottom")
    }

    @Test("a table reached at different distances from the ancestor it points to gets the right marker at each")
    func markersAreRelativeToEachPlace() throws {
        let rt = try LuaRuntime()
        let v = try rt.run("""
        local root = {} local x = {tag = 'x'} x.up = root
        root.a = x root.b = {c = x}
        return root
        """)[0]
        #expect(v["a"]["up"] == .cycle(levelsUp: 2))
        #expect(v["b"]["c"]["up"] == .cycle(levelsUp: 3))
        #expect(v["b"]["c"]["tag"] == "x")
        try rt.setGlobal("r", v)
        #expect(try rt.run("return r.a.up == r and r.b.c.up == r and r.a ~= r.b.c and r.b.c.tag == 'x'") == [true])
    }

    // MARK: Cycles

    @Test("cycles keep their markers, and come back to Lua as cycles")
    func cyclesKeepTheirTreatment() throws {
        let rt = try LuaRuntime()
        let v = try rt.run("""
        local t = {name = 't'} t.self = t
        t.child = {up = t} t.child.me = t.child
        local a, b = {}, {} a.b = b b.a = a
        t.pair = {a, b}
        return t
        """)[0]
        #expect(v["self"] == .cycle(levelsUp: 1))
        #expect(v["child"]["up"] == .cycle(levelsUp: 2))
        #expect(v["child"]["me"] == .cycle(levelsUp: 1))
        // a <-> b: inside a, b points back at a; b reached from the pair holds a known copy of a
        let pair = v["pair"]
        #expect(pair[1]["b"]["a"] == .cycle(levelsUp: 2))
        #expect(pair[2]["a"]["b"]["a"] == .cycle(levelsUp: 2))
        #expect(sameStorage(pair[1], pair[2]["a"]))
        try rt.setGlobal("t2", v)
        #expect(try rt.run("""
        return t2.self == t2 and t2.child.up == t2 and t2.child.me == t2.child and t2.name == 't'
           and t2.pair[1].b.a == t2.pair[1] and t2.pair[2].a.b.a == t2.pair[2].a
        """) == [true])
    }

    // MARK: The depth limit

    @Test("the depth limit stays: deeper is an error, also when a known table would be reused too deep")
    func depthLimit() throws {
        let rt = try LuaRuntime()
        #expect(conversionError(rt, "local t = {} for i = 1, 250 do t = {t} end return t") == "table nested more than 200 levels deep")
        #expect(conversionError(rt, "local t = {} for i = 1, 199 do t = {t} end return t") == nil)
        // c fits where it is first read; reused 100 levels down it would be 250 deep
        #expect(conversionError(rt, """
        local c = {} for i = 1, 150 do c = {c} end
        local d = c for i = 1, 100 do d = {d} end
        return {c, d}
        """) == "table nested more than 200 levels deep")
        // the error leaves the runtime as it was
        #expect(try rt.run("return 1") == [1])
        let deep = try LuaRuntime(options: .init(libraries: .all, maxTableDepth: 300))
        #expect(conversionError(deep, "local t = {} for i = 1, 250 do t = {t} end return t") == nil)
        #expect(conversionError(deep, "local t = {} for i = 1, 350 do t = {t} end return t") == "table nested more than 300 levels deep")
    }

    @Test("a chain at the largest depth converts without recursion", .timeLimit(.minutes(1)))
    func deepChainWithoutRecursion() throws {
        let rt = try LuaRuntime(options: .init(libraries: .all, maxTableDepth: 5_000))
        #expect(rt.options.maxTableDepth == LuaRuntime.Options.maximumTableDepth)
        let levels = LuaRuntime.Options.maximumTableDepth - 1
        var v = try rt.run("local t = {n = 0} for i = 1, \(levels) do t = {t, n = i} end return t")[0]
        var n = levels
        while case .table = v[1] { v = v[1]; n -= 1 }
        #expect(n == 0 && v["n"] == 0)
    }

    @Test("a chain of 600,000 levels with a limit asked above the maximum is an error, not a crash", .timeLimit(.minutes(2)))
    func chainDeeperThanTheStack() throws {
        let rt = try LuaRuntime(options: .init(libraries: .all, maxTableDepth: 10_000_000))
        let m = conversionError(rt, "local t = {} for i = 1, 600000 do t = {t} end return t")
        #expect(m == "table nested more than \(LuaRuntime.Options.maximumTableDepth) levels deep", "\(m ?? "nil")")
        #expect(try rt.run("return 'fine'") == ["fine"])
    }

    // MARK: Hostile shapes

    @Test("tables that all point to each other end with an error, never hang", .timeLimit(.minutes(1)))
    func completeGraphIsBounded() throws {
        let rt = try LuaRuntime()
        let m = conversionError(rt, """
        local a = {} for i = 1, 20 do a[i] = {} end
        for i = 1, 20 do for j = 1, 20 do a[i][j] = a[j] end end
        return a
        """)
        #expect(m?.hasPrefix("table graph too large to copy") == true, "\(m ?? "nil")")
        // a few do convert (every path is short)
        #expect(conversionError(rt, """
        local a = {} for i = 1, 4 do a[i] = {} end
        for i = 1, 4 do for j = 1, 4 do a[i][j] = a[j] end end
        return a
        """) == nil)
    }

    @Test("a huge shared table used as a key is an error (hashing it would visit every path)", .timeLimit(.minutes(1)))
    func hugeTableKeys() throws {
        let rt = try LuaRuntime()
        let m = conversionError(rt, "local k = {} for i = 1, 40 do k = {k, k} end return {[k] = true}")
        #expect(m?.hasPrefix("a table used as a key is too large to copy") == true, "\(m ?? "nil")")
        // many keys that each hold a large shared part: hashing them all is counted as work
        let many = conversionError(rt, """
        local k = {} for i = 1, 16 do k = {k, k} end
        local t = {} for i = 1, 2000 do t[{k, i}] = i end
        return t
        """)
        #expect(many?.hasPrefix("table graph too large to copy") == true, "\(many ?? "nil")")
        let small = try rt.run("return {[{1, 2}] = 'pair', [{}] = 'empty'}")[0]
        #expect(small[[1, 2]] == "pair" && small[.table([:])] == "empty")
    }

    @Test("extreme keys and values convert, and go back, without trapping")
    func extremeKeys() throws {
        let rt = try LuaRuntime()
        let v = try rt.run("""
        return {[math.maxinteger] = 'max', [math.mininteger] = 'min', [-0.0] = 'zero', [-1] = 'm1',
                [2^63] = 'float', [1/0] = 'inf', [-1/0] = '-inf', [0.5] = 'half', nan = 0/0,
                [math.maxinteger - 1] = 'max-1', [1] = 'one', [3] = 'three'}
        """)[0]
        #expect(v[.integer(.max)] == "max" && v[.integer(.min)] == "min" && v[.integer(0)] == "zero")
        #expect(v[.number(9.223372036854775808e18)] == "float" && v[.number(.infinity)] == "inf")
        #expect(v[.number(-.infinity)] == "-inf" && v[.number(0.5)] == "half" && v[.integer(-1)] == "m1")
        #expect(v["nan"].doubleValue?.isNaN == true)
        #expect(v.arrayValue == ["one"])
        _ = v.description
        try rt.setGlobal("e", v)
        #expect(try rt.run("""
        return e[math.maxinteger] == 'max' and e[math.mininteger] == 'min' and e[0] == 'zero'
           and e[2^63] == 'float' and e[1/0] == 'inf' and e[-1/0] == '-inf' and e[0.5] == 'half'
           and e.nan ~= e.nan and e[3] == 'three'
        """) == [true])
        // NaN keys cannot exist in Lua
        #expect(throws: LuaRuntime.RuntimeError.self) { try rt.run("return {[0/0] = 1}") }
    }

    @Test("a wide table converts entry by entry", .timeLimit(.minutes(1)))
    func wideTable() throws {
        let rt = try LuaRuntime()
        let v = try rt.run("local t = {} for i = 1, 200000 do t[i] = i end t.x = {t} return t")[0]
        #expect(v.tableValue?.count == 200_001)
        #expect(v.arrayValue?.count == 200_000 && v[200_000] == 200_000)
        #expect(v["x"][1] == .cycle(levelsUp: 2))
    }

    @Test("a Swift function gets its arguments converted the same way")
    func argumentsOfSwiftFunctions() throws {
        let rt = try LuaRuntime()
        nonisolated(unsafe) var seen: [LuaValue] = []
        try rt.register("take") { args in seen = args; return [.integer(args.count)] }
        #expect(try rt.run("local t = {} for i = 1, 30 do t = {t, t} end return take(t, t)") == [2])
        #expect(seen.count == 2 && sameStorage(seen[0], seen[1]) && sameStorage(seen[0][1], seen[0][2]))
        let e = try? rt.run("local k = {} for i = 1, 40 do k = {k, k} end return take({[k] = 1})")
        #expect(e == nil)
    }
}
