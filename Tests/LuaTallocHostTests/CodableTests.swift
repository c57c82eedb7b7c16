// luatalloc — host API tests (issue 13): values — Codable bridging, initialisers and literals.
// Swift 6 language mode.
// SPDX-License-Identifier: MIT

import LuaTalloc
import Testing

struct Limits: Codable, Equatable {
    var depth: Int
    var ratio: Double
    var names: [String]
    var owner: String?
    var flags: [String: Bool]
    var nested: Inner

    struct Inner: Codable, Equatable {
        var level: UInt8
        var tags: Set<String>
    }
}

enum Action: String, Codable { case allow, deny }

struct Verdict: Codable, Equatable {
    var action: Action
    var reasons: [String]
    var score: Int?
}

struct WithLuaValue: Codable {
    var name: String
    var extra: LuaValue
}

@Suite("Values")
struct ValueTests {
    let limits = Limits(depth: 3, ratio: 0.5, names: ["a", "b"], owner: nil, flags: ["x": true, "y": false],
                        nested: .init(level: 7, tags: ["t"]))

    @Test("any Encodable becomes a Lua value and comes back as itself")
    func roundTrip() throws {
        let v = try LuaValueEncoder().encode(limits)
        #expect(v["depth"] == 3 && v["ratio"] == 0.5 && v["names"] == ["a", "b"])
        #expect(v["owner"] == .nil)  // nil fields are left out
        #expect(v["nested"]["level"] == 7)
        #expect(try LuaValueDecoder().decode(Limits.self, from: v) == limits)
        #expect(try v.decode(Limits.self) == limits)

        // through Lua and back
        let lua = try LuaRuntime()
        defer { lua.close() }
        try lua.setGlobal("limits", encoding: limits)
        #expect(try lua.run("return limits.depth, limits.names[2], limits.flags.x, limits.nested.tags[1]") == [3, "b", true, "t"])
        #expect(try lua.global("limits", as: Limits.self) == limits)
        try lua.run("""
            function judge(l)
              if l.depth > 2 then return {action = 'deny', reasons = {'too deep', 'depth ' .. l.depth}} end
              return {action = 'allow', reasons = {}, score = 10}
            end
            """)
        let verdict = try lua.call("judge", LuaValue(encoding: limits), returning: Verdict.self)
        #expect(verdict == Verdict(action: .deny, reasons: ["too deep", "depth 3"], score: nil))
        var shallow = limits
        shallow.depth = 1
        #expect(try lua.call("judge", LuaValue(encoding: shallow), returning: Verdict.self)
                == Verdict(action: .allow, reasons: [], score: 10))
        let f = try lua.function("judge")
        #expect(try f.call(LuaValue(encoding: shallow), returning: Verdict.self).action == .allow)
    }

    @Test("decoding errors give the coding path of the failing field")
    func errorPaths() throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        func failure(_ code: String) throws -> DecodingError? {
            let v = try lua.run(code)[0]
            do { _ = try v.decode(Limits.self); return nil } catch let e as DecodingError { return e }
        }
        func path(_ e: DecodingError?) -> String {
            let context: DecodingError.Context
            switch e {
            case .typeMismatch(_, let c)?, .valueNotFound(_, let c)?, .dataCorrupted(let c)?: context = c
            case .keyNotFound(let k, let c)?: return (c.codingPath + [k]).map(\.stringValue).joined(separator: ".")
            default: return "no error"
            }
            return context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        let good = "depth = 3, ratio = 1, names = {'a'}, flags = {}, nested = {level = 1, tags = {}}"
        #expect(try failure("return {\(good)}") == nil)
        let wrongType = try failure("return {depth = 'three', ratio = 1, names = {}, flags = {}, nested = {level = 1, tags = {}}}")
        #expect(path(wrongType) == "depth")
        if case .typeMismatch(_, let c)? = wrongType { #expect(c.debugDescription.contains("found a Lua string")) }
        #expect(path(try failure("return {depth = 3, ratio = 1, names = {'a', 2}, flags = {}, nested = {level = 1, tags = {}}}")) == "names.[1]")
        #expect(path(try failure("return {depth = 3, ratio = 1, names = {}, flags = {}, nested = {level = 300, tags = {}}}")) == "nested.level")
        #expect(path(try failure("return {depth = 3, ratio = 1, names = {}, flags = {x = 1}, nested = {level = 1, tags = {}}}")) == "flags.x")
        #expect(path(try failure("return {depth = 3, ratio = 1, names = {}, flags = {}}")) == "nested")
        #expect(path(try failure("return {depth = 3.5, ratio = 1, names = {}, flags = {}, nested = {level = 1, tags = {}}}")) == "depth")
        // not a table at all
        #expect(throws: DecodingError.self) { try LuaValue.integer(1).decode(Limits.self) }
        // an enum's raw value
        #expect(throws: DecodingError.self) { try LuaValue(["action": "maybe", "reasons": []]).decode(Verdict.self) }
    }

    @Test("encoding: what Lua cannot hold is an error with its path; big integers are range-checked")
    func encodingErrors() throws {
        struct Big: Encodable { var n: UInt64 }
        #expect(throws: EncodingError.self) { try LuaValueEncoder().encode(Big(n: .max)) }
        #expect(try LuaValueEncoder().encode(Big(n: 5)) == ["n": 5])
        #expect(try LuaValueEncoder().encode([1, 2, 3]) == [1, 2, 3])
        #expect(try LuaValueEncoder().encode(["k": [1.5]]) == ["k": [1.5]])
        #expect(try LuaValueEncoder().encode(Optional<Int>.none) == .nil)
        #expect(try LuaValueEncoder().encode([Int?.none, 2]) == .table([.integer(2): 2]))
        #expect(try LuaValue(encoding: "text") == "text")
        // and back, with the hole
        #expect(try LuaValue.table([.integer(2): 2]).decode([Int?].self) == [nil, 2])
        // a sparse table is not a sequence
        #expect(throws: DecodingError.self) { try LuaValue.table([.integer(1_000_000): 1]).decode([Int].self) }
    }

    @Test("a LuaValue field carries any Lua value, contexts and functions included")
    func luaValueFields() throws {
        let lua = try LuaRuntime()
        defer { lua.close() }
        let v = try lua.run("return {name = 'n', extra = {f = print, c = talloc.new(nil, 'kept'), t = {1, 2}}}")[0]
        let decoded = try v.decode(WithLuaValue.self)
        #expect(decoded.name == "n")
        #expect(decoded.extra["t"] == [1, 2])
        #expect(decoded.extra["c"].contextValue?.name == "kept")
        #expect(decoded.extra["f"].functionValue != nil)
        let back = try LuaValue(encoding: decoded)
        try lua.setGlobal("back", back)
        #expect(try lua.run("return back.extra.f == print, talloc.get_name(back.extra.c)") == [true, "kept"])
    }

    @Test("initialisers and literals for the common cases")
    func initialisers() throws {
        let n: Int = 5, d = 2.5, s = "x", flag = true
        let names = ["a", "b"], counts = ["a": 1]
        let maybe: Int? = nil
        #expect(LuaValue(n) == .integer(5))
        #expect(LuaValue(UInt8(7)) == .integer(7))
        #expect(LuaValue(d) == .number(2.5))
        #expect(LuaValue(Float(1.5)) == .number(1.5))
        #expect(LuaValue(s) == .string("x"))
        #expect(LuaValue(s.dropFirst(0)) == .string("x"))
        #expect(LuaValue(flag) == .boolean(true))
        #expect(LuaValue(names) == ["a", "b"])
        #expect(LuaValue(counts) == ["a": 1])
        #expect(LuaValue(maybe) == .nil)
        #expect(LuaValue(Optional(3)) == 3)
        #expect(LuaValue(bytes: [0xff, 0]) == .bytes([0xff, 0]))
        #expect(LuaValue(bytes: Array("ok".utf8)) == "ok")
        let interpolated: LuaValue = "n = \(n)"
        #expect(interpolated == "n = 5")
        let table: LuaValue = ["name": "x", "sizes": [1, 2, 3], "nested": ["deep": true], 7: "seven"]
        #expect(table["sizes"].arrayValue == [1, 2, 3])
        #expect(table[7] == "seven")
        #expect(LuaValue(convertible: [[1, 2], [3]]) == [[1, 2], [3]])
    }
}
