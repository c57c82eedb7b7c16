// luatalloc — LuaTalloc tests: values of hostile shapes in the host (adversarial F5, F6, F13): deep
// values at the depth limit on a small thread stack, keys that are different bytes, shared tables
// that unfold exponentially
// SPDX-License-Identifier: MIT

import Dispatch
import Foundation
import LuaTalloc
import Testing

/// Runs `body` on a new thread with a stack of `bytes` (a recursion per level overflows it and the
/// process dies: the test fails loudly), and joins it. What `body` captures is released by the caller,
/// after the join: a deep value's destruction (which recurses) never lands on the small stack.
func onThread(stack bytes: Int, _ body: @escaping () -> Void) {
    final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    defer { pthread_attr_destroy(&attr) }
    pthread_attr_setstacksize(&attr, bytes)
    var thread = pthread_t()
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    let rc = pthread_create(&thread, &attr, { p in
        Unmanaged<Box>.fromOpaque(p!).takeRetainedValue().body()
        return nil
    }, box)
    guard rc == 0 else {
        Unmanaged<Box>.fromOpaque(box).release()
        Issue.record("pthread_create: \(rc)")
        return
    }
    pthread_join(thread, nil)
    withExtendedLifetime(body) {}
}

/// Lua code that returns a table `n` levels deep: `{{{...{}...}}}`.
private func deepTable(_ n: Int) -> String {
    "local t = {} for i = 2, \(n) do t = {t} end return t"
}

/// Depth of a Lua value built in Swift or read: the levels of `[1]` nesting.
private func depth(_ v: LuaValue) -> Int {
    var n = 0
    var v = v
    while case .table(let t) = v {
        n += 1
        v = t[1] ?? .nil
    }
    return n
}

@Suite("Values of hostile shapes")
struct ValueShapeTests {
    // MARK: F5 — depth

    @Test("maxTableDepth is capped at Options.maximumTableDepth (and a negative one is 0)")
    func depthIsCapped() {
        var o = LuaRuntime.Options(libraries: .safe, maxTableDepth: 1_000_000)
        #expect(o.maxTableDepth == LuaRuntime.Options.maximumTableDepth)
        o.maxTableDepth = 5_000_000
        #expect(o.maxTableDepth == LuaRuntime.Options.maximumTableDepth)
        o.maxTableDepth = -3
        #expect(o.maxTableDepth == 0)
        o.maxTableDepth = 300
        #expect(o.maxTableDepth == 300)
        #expect(LuaRuntime.Options.sandbox(memoryLimit: 1 << 20, instructionLimit: 1000).maxTableDepth == 200)
    }

    @Test("at the largest depth a value is read, compared, hashed, described, passed back, encoded and destroyed on a 512 KiB stack; one level more is an error")
    func deepestValueOnASmallStack() {
        let max = LuaRuntime.Options.maximumTableDepth
        onThread(stack: 512 << 10) {
            do {
                let rt = try LuaRuntime(options: .init(libraries: .safe, maxTableDepth: 10_000_000))
                let a = try rt.run(deepTable(max))[0]
                let b = try rt.run(deepTable(max))[0]
                #expect(depth(a) == max)
                #expect(a == b)
                #expect(a.hashValue == b.hashValue)
                #expect(a.description.count == 2 * max)
                #expect(Set([a, b]).count == 1)
                try rt.setGlobal("deep", a)
                #expect(try rt.run("local n, t = 0, deep while t do n = n + 1 t = t[1] end return n") == [.integer(max)])
                #expect(try rt.call("select", "#", a) == [1])
                _ = try LuaValueEncoder().encode(a)
                let e = try? rt.run(deepTable(max + 1))
                #expect(e == nil)
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    @Test("a value built in Swift, deeper than Lua's stack allows, is refused with 'stack overflow', not a crash")
    func deeperThanLuaStackIsAnError() throws {
        // (built and destroyed on a big stack: Swift's own destruction of a nested value recurses)
        onThread(stack: 256 << 20) {
            do {
                let rt = try LuaRuntime()
                var v: LuaValue = [:]
                for _ in 0..<600_000 { v = .table([1: v]) }
                do {
                    try rt.setGlobal("deep", v)
                    Issue.record("a 600,000-deep value was pushed")
                } catch {
                    #expect("\(error)".contains("stack overflow"), "\(error)")
                }
                // the runtime goes on
                #expect(try rt.run("return 1 + 1") == [2])
                // a deep value Lua's stack holds is written without recursion in Swift
                var w: LuaValue = "leaf"
                for _ in 0..<100_000 { w = .table([1: w]) }
                try rt.setGlobal("deep", w)
                #expect(try rt.run("local n, t = 0, deep while type(t) == 'table' do n = n + 1 t = t[1] end return n, t")
                        == [100_000, "leaf"])
            } catch {
                Issue.record("\(error)")
            }
        }
    }

    @Test("writing a deep value back to Lua uses no Swift stack per level")
    func writerIsIterative() {
        // 20,000 levels: the recursive writer needed ~200 bytes a level (4 MB). Destroying the value
        // needs ~100 a level, so it is built and dropped on a thread with a big stack (a test's own thread
        // may have a small one), and written from a small one.
        onThread(stack: 64 << 20) {
            var v: LuaValue = "leaf"
            for _ in 0..<20_000 { v = .table([1: v]) }
            let value = v
            onThread(stack: 256 << 10) {
                do {
                    let rt = try LuaRuntime()
                    try rt.setGlobal("deep", value)
                    #expect(try rt.run("local n, t = 0, deep while type(t) == 'table' do n = n + 1 t = t[1] end return n")
                            == [20_000])
                    #expect(value.description.count == 2 * 20_000 + 6)
                    #expect(value == value)
                } catch {
                    Issue.record("\(error)")
                }
            }
        }
    }

    // MARK: F6 — keys are bytes

    @Test("keys that are different bytes stay apart, even when Swift's String calls them equal")
    func canonicallyEquivalentKeysStayApart() throws {
        let rt = try LuaRuntime()
        let t = try rt.run("return {['\\u{E9}'] = 'precomposed', ['e\\u{301}'] = 'decomposed'}")[0]
        #expect(t.tableValue?.count == 2)
        #expect(t[.string("\u{E9}")] == "precomposed")
        #expect(t[.string("e\u{301}")] == "decomposed")
        #expect(LuaValue.string("\u{E9}") != LuaValue.string("e\u{301}"))
        try rt.setGlobal("t", t)
        #expect(try rt.run("local n = 0 for _ in pairs(t) do n = n + 1 end return n, t['\\u{E9}'], t['e\\u{301}']")
                == [2, "precomposed", "decomposed"])
        // a Swift dictionary literal with both keys keeps both too
        let lit: LuaValue = ["\u{E9}": 1, "e\u{301}": 2]
        #expect(lit.tableValue?.count == 2)
    }

    @Test(".string and .bytes with the same bytes are one value and one key; bytes that are not UTF-8 round-trip")
    func bytesAreStrings() throws {
        #expect(LuaValue.string("abc") == LuaValue.bytes([97, 98, 99]))
        #expect(LuaValue.string("abc").hashValue == LuaValue.bytes([97, 98, 99]).hashValue)
        let table: LuaValue = .table([.bytes([97]): 1])
        #expect(table[.string("a")] == 1)

        let rt = try LuaRuntime()
        let r = try rt.run("return '\\xff\\xfe', {['\\xff'] = 1, ['\\xfe'] = 2, ['\\xff\\0'] = 3}")
        #expect(r[0] == .bytes([0xFF, 0xFE]))
        #expect(r[1].tableValue?.count == 3)
        #expect(r[1][.bytes([0xFF, 0])] == 3)
        try rt.setGlobal("s", r[0])
        try rt.setGlobal("t", r[1])
        #expect(try rt.run("return s == '\\xff\\xfe', t['\\xff'], t['\\xfe'], t['\\xff\\0']") == [true, 1, 2, 3])
    }

    // MARK: F13 — shared tables

    @Test("t = {t, t} forty times: description, ==, hash and encoding are linear; JSON refuses the unfolding",
          .timeLimit(.minutes(1)))
    func sharedTablesStayLinear() throws {
        let rt = try LuaRuntime()
        let code = "local t = {'leaf'} for i = 1, 40 do t = {t, t} end return t"
        let a = try rt.run(code)[0]
        let b = try rt.run(code)[0]  // converted apart: equal, not shared
        #expect(a == b)
        #expect(a.hashValue == b.hashValue)
        #expect(Set([a, b, a]).count == 1)
        let text = a.description
        #expect(text.utf8.count < 1_000, "\(text.prefix(200))")
        #expect(text.hasPrefix("{&1 {&2 {&3 {"))
        #expect(text.hasSuffix("{\"leaf\"}, *40}, *39}, *38}, *37}, *36}, *35}, *34}, *33}, *32}, *31}, *30}, *29}, *28}, *27}, *26}, *25}, *24}, *23}, *22}, *21}, *20}, *19}, *18}, *17}, *16}, *15}, *14}, *13}, *12}, *11}, *10}, *9}, *8}, *7}, *6}, *5}, *4}, *3}, *2}, *1}"))
        // a different leaf far down is a different value
        let c = try rt.run("local t = {'leaf'} for i = 1, 40 do t = {t, i == 1 and {'other'} or t} end return t")[0]
        #expect(a != c)
        // back to Lua: the same DAG, as shared tables
        try rt.setGlobal("t", a)
        #expect(try rt.run("local d, t = 0, t while t[2] do assert(rawequal(t[1], t[2])) d = d + 1 t = t[1] end return d, t[1]")
                == [40, "leaf"])
        // an encoder that knows no sharing would write 2^40 leaves: refused, in linear time
        #expect(throws: EncodingError.self) { try JSONEncoder().encode(a) }
        #expect(throws: EncodingError.self) { try JSONEncoder().encode(["inside": a]) }
        let small = try rt.run("local t = {'leaf'} for i = 1, 4 do t = {t, t} end return t")[0]
        let json = String(decoding: try JSONEncoder().encode(small), as: UTF8.self)
        #expect(json.components(separatedBy: "leaf").count - 1 == 16)
        // a decoding error quotes the value, bounded
        struct Wanted: Decodable { var name: String }
        do {
            _ = try a.decode(Wanted.self)
            Issue.record("decoded")
        } catch {
            #expect("\(error)".utf8.count < 2_000)
        }
    }

    @Test("description marks what is shared and nothing else")
    func descriptionOfSharing() throws {
        let rt = try LuaRuntime()
        #expect(try rt.run("local t = {1} return {t, t}")[0].description == "{&1 {1}, *1}")
        #expect(try rt.run("return {{1}, {1}, x = {}, y = {}}")[0].description == "{{1}, {1}, x = {}, y = {}}")
        #expect(try rt.run("local t = {} t.self = t return t")[0].description == "{self = <cycle 1 up>}")
        #expect(try rt.run("return {[{1}] = true, [2.5] = 'x', a = 1}")[0].description == "{[2.5] = \"x\", [{1}] = true, a = 1}")
    }
}
