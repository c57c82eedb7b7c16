// luatalloc — LuaTalloc tests: the bounded standard functions of the sandbox (lth_openbounded) and the
// private copies of string.format / pack / unpack (ltc_strlib.c)
// SPDX-License-Identifier: MIT

import CLua
import CLuaShims
import Foundation
import LuaTalloc
import Testing

/// A sandbox (safe libraries, hardened globals, 64 MiB) with the given budget, with the bounded
/// functions installed (or not: the reference).
private func sandbox(instructions: Int?, time: Duration? = nil, bounded: Bool = true) throws -> LuaRuntime {
    let options = LuaRuntime.Options(memoryLimit: 64 << 20, libraries: .safe, instructionLimit: instructions,
                                     timeLimit: time, sandboxed: true)
    let rt = try LuaRuntime(options: options)
    if bounded { #expect(lth_openbounded(rt.state!) == LUA_OK) }
    return rt
}

/// What running a chunk gave: its results, or its error message (addresses blanked).
private enum Outcome: Equatable, CustomStringConvertible {
    case values([LuaValue])
    case error(String)

    var description: String {
        switch self {
        case .values(let v): return "\(v)"
        case .error(let m): return "error: \(m)"
        }
    }
}

private func outcome(_ rt: LuaRuntime, _ code: String) -> Outcome {
    do {
        return .values(try rt.run(code))
    } catch {
        let m = "\(error)".replacingOccurrences(of: #"0x[0-9a-f]+"#, with: "ADDR", options: .regularExpression)
        return .error(m)
    }
}

/// Single calls that run for minutes with the standard functions (hooks fire only between VM
/// instructions). Each ends with the budget error once the functions are bounded.
private let attacks: [(name: String, code: String)] = [
    ("table.move backwards", "return table.move({}, 1, 1 << 60, 2)"),
    ("table.move forwards", "return table.move({}, 1, 1 << 60, 1, {})"),
    ("string.find backtracking", "return string.find(string.rep('a', 5000), string.rep('a*', 50) .. 'b')"),
    ("string.match backtracking", "return string.match(string.rep('a', 5000), string.rep('a*', 50) .. 'b')"),
    ("string.gmatch backtracking", "for x in string.gmatch(string.rep('a', 5000), string.rep('a*', 50) .. 'b') do end"),
    ("string.gsub backtracking", "return string.gsub(string.rep('a', 5000), string.rep('a*', 50) .. 'b', '')"),
    ("a method (s:find)", "return (string.rep('a', 5000)):find(string.rep('a*', 50) .. 'b')"),
    ("string.find plain, quadratic", "local s = string.rep('a', 1000000) return s:find(string.rep('a', 500000) .. 'b', 1, true)"),
    ("%b over unbalanced input", "return (string.rep('(', 300000)):gsub('%b()', '')"),
    ("back-references", "return (string.rep('a', 200000)):find('(' .. string.rep('a', 100000) .. ')%1%1')"),
    ("a long replacement at every empty match", "return (string.rep('a', 300000)):gsub('', string.rep('%0', 50000))"),
    ("table.insert under a huge __len", "table.insert(setmetatable({}, {__len = function() return math.maxinteger - 1 end}), 1, 1)"),
    ("table.remove under a huge __len", "return table.remove(setmetatable({}, {__len = function() return math.maxinteger end}), 1)"),
    ("table.concat over C metamethods", "local t = setmetatable({}, {__index = table.concat, __len = rawlen}) return table.concat(t, '', 1, 1 << 60)"),
    ("table.sort with a C comparator", "table.sort(setmetatable({}, {__len = function() return (1 << 31) - 2 end}), rawequal)"),
    // (not a tail call: load catches the reader's error and returns it; the next instruction raises)
    ("load reading from collectgarbage", "local f, e = load(collectgarbage) return f, e"),
]

@Suite("The sandbox's bounded standard functions")
struct BoundedStdlibTests {
    @Test("each single-call attack ends with 'instruction budget exhausted', and the runtime goes on",
          .timeLimit(.minutes(5)))
    func attacksEndWithTheInstructionBudget() throws {
        let rt = try sandbox(instructions: 1_000_000)
        for attack in attacks {
            do {
                let r = try rt.run(attack.code)
                Issue.record("\(attack.name): ran to the end: \(r)")
            } catch {
                guard error.isBudgetExhausted else { Issue.record("\(attack.name): \(error)"); continue }
                let m = error.message
                #expect(m.contains("instruction budget exhausted"), "\(attack.name): \(m)")
            }
            #expect(try rt.run("return 1 + 1") == [2], "\(attack.name): the runtime goes on")
        }
    }

    @Test("the same attacks end with 'time budget exhausted' under a time limit alone", .timeLimit(.minutes(5)))
    func attacksEndWithTheTimeBudget() throws {
        let rt = try sandbox(instructions: nil, time: .seconds(1))
        for attack in attacks where !attack.name.hasPrefix("a method") && !attack.name.hasPrefix("back-ref") {
            do {
                let r = try rt.run(attack.code)
                Issue.record("\(attack.name): ran to the end: \(r)")
            } catch {
                guard error.isBudgetExhausted else { Issue.record("\(attack.name): \(error)"); continue }
                let m = error.message
                #expect(m.contains("time budget exhausted"), "\(attack.name): \(m)")
            }
        }
        #expect(try rt.run("return 'still here'") == ["still here"])
    }

    @Test("string.rep of an empty result is O(1); a huge one is charged before it is made")
    func repIsBounded() throws {
        let rt = try sandbox(instructions: 1_000_000)
        #expect(try rt.run("return string.rep('', math.maxinteger), string.rep('', math.maxinteger, ''), ('').rep('', 1 << 62)")
                == ["", "", ""])
        #expect(try rt.run("return #string.rep('ab', 1000, ',')") == [2999])
        do {
            try rt.run("return string.rep('x', 1 << 30)")
            Issue.record("a 1 GiB string within 1,000,000 instructions")
        } catch {
            #expect("\(error)".contains("instruction budget exhausted"), "\(error)")
        }
    }

    @Test("a script that catches the budget error with pcall is stopped at its next instruction")
    func pcallDoesNotEscape() throws {
        let rt = try sandbox(instructions: 1_000_000)
        do {
            let r = try rt.run("""
            local ok, e = pcall(string.find, string.rep('a', 5000), string.rep('a*', 50) .. 'b')
            return 'escaped', ok, e
            """)
            Issue.record("escaped: \(r)")
        } catch {
            guard error.isBudgetExhausted else { Issue.record("\(error)"); return }
            let m = error.message
            #expect(m.contains("instruction budget exhausted"))
        }
    }

    @Test("ordinary work fits a modest budget")
    func ordinaryWorkIsCheap() throws {
        let rt = try sandbox(instructions: 1_000_000)
        let r = try rt.run("""
        local s = string.rep('The quick brown fox jumps over the lazy dog. ', 200)
        local n = 0
        for w in s:gmatch('%a+') do n = n + 1 end
        local g, k = s:gsub('(%w+)', '<%1>')
        local t = {}
        for i = 1, 2000 do t[i] = (i * 7919) % 2003 end
        table.sort(t)
        table.insert(t, 1, 0); table.remove(t, 1); table.move(t, 1, #t, 2)
        return n, k, #g, s:find('lazy dog', 1, true), #table.concat(t, ',')
        """)
        #expect(r == [1800, 1800, 12600, 36, 8897], "\(r)")
    }

    // MARK: Same results as the originals

    /// Cases run in a runtime with the bounded functions and in one with the originals.
    static let cases: [String] = {
        let S = "'hello world from Lua, (nested (parens) here) and THE END 12345 x=1, y=22'"
        var c: [String] = []
        for args in [
            "o", "o', 6", "o', -3", "(o)(r)", "l+", "%((%b())", "%f[%w]%w+", "^hello", "^world", "END$", "(%d+)$",
            ".', 1, true", "(', 1, true", "(", "%", "[a", "(()", "%b", "%f", "%1", "(a)%2", "()", "x=(%d)",
            "[%a_][%w_]*", "[^%s]+', 20", "%u%u%u", "[A-Z]+", "[]]", "%g+", "%p", "%c", "(h)(e)(l)(l)(o)", "o', 1000",
            "o', -1000", "o', 0", "o', 'x'", "o', 1.5", "o', 2.0, nil",
        ] {
            c.append("return pcall(string.find, \(S), '\(args))")
            c.append("return pcall(string.match, \(S), '\(args))")
        }
        c += [
            "return pcall(string.find, '', '')", "return pcall(string.find, 'abc', '', 10)", "return pcall(string.find, 'abc', '', 4)",
            "return pcall(string.find, 'a+b', '+', 1, true)", "return pcall(string.find, 'a\\0b', '\\0')",
            "return pcall(string.find, 'a\\0b', '%z')", "return pcall(string.find, 'aaab', 'a-b')", "return pcall(string.find, 'a]b', '[]]')",
            "return pcall(string.find, 'a-b', '[a-]')", "return pcall(string.find, 'x', '[%')", "return pcall(string.find, 12345, 3)",
            "return pcall(string.find)", "return pcall(string.find, nil, 'x')", "return pcall(string.find, 's', {})",
            "return pcall(string.match, 'key = value', '(%w+)%s*=%s*(%w+)')", "return pcall(string.match, '  trim  ', '^%s*(.-)%s*$')",
            "return pcall(string.match, 'THE (quick) fox', '%f[%a]%a+', 5)", "return pcall(string.match, 'abcabc', '(abc)%1')",
            "return pcall(string.match, 'x', string.rep('(a)', 33))", "return pcall(string.match, 'aaa', string.rep('a?', 10) .. 'aaa')",
            "return pcall(string.match, string.rep('a', 300), string.rep('a?', 300))",
            "return ('hello'):find('l'), ('hello'):match('(h)(.)'), ('x'):rep(3)",
        ]
        for args in [
            "'o', '0'", "'o', '0', 2", "'(%w+)', '<%1>'", "'%w+', '%0%0'", "'(%w+) (%w+)', '%2 %1'", "'', '-'", "'%s', '%%'",
            "'%s', '%x'", "'(o)', '%2'", "'o', {o = 'OO'}", "'%w+', {hello = 'HI', world = false}",
            "'%w+', function(w) return #w > 3 and w:upper() end", "'(%w)(%w*)', function(a, b) return b .. a end",
            "'%w+', function() return {} end", "'()', '%1'", "'^h', 'H'", "'x', 5", "'o', nil", "'o', true", "'o', '0', 0",
            "'o', '0', -1", "'o', '0', 1.5", "'o', '0', 2.0", "'%f[%w]%w+', 'W'", "'%b()', ''", "'(o)', {o = 1}",
            "'(%w+)', function(w) return nil end", "'%w', '%0', 2", "'o', '%'", "'(o)(r)', '%3'", "'e', setmetatable({}, {__index = function(t, k) return k:upper() end})",
        ] {
            c.append("return pcall(string.gsub, \(S), \(args))")
        }
        c += ["return pcall(string.gsub, 'abc', '', '-')", "return pcall(string.gsub, 'abc', '.-', '-')",
              "return pcall(string.gsub, 'abc', 'b*', 'X')", "return pcall(string.gsub, 'abc', '(b)', '%0%1')"]
        for args in ["%w+", "(%w)(%w)", "%w+', 10", "%w+', -5", "()", "(%w+)=(%w+)", "%b()", "%f[%a]%a+", "(", "^h", "a*", "e-"] {
            c.append("""
            local r = {} local ok, e = pcall(function() for a, b in string.gmatch(\(S), '\(args)) do r[#r + 1] = tostring(a) .. '|' .. tostring(b) end end)
            return ok, e, r
            """)
        }
        c += ["local r = {} for a in ('abc'):gmatch('') do r[#r + 1] = a end return r",
              "local r = {} for a in ('abc'):gmatch('', 10) do r[#r + 1] = a end return r",
              "local r = {} for a in ('aaa'):gmatch('a-') do r[#r + 1] = a end return r"]
        for args in ["'ab', 3", "'ab', 3, ','", "'ab', 0", "'ab', -1", "'', 5", "'', 5, ''", "'', 3, 'x'", "'x', 1, 'sep'",
                     "'x', 2^40", "'x', math.maxinteger", "'ab'", "", "{}, 1", "'a', 2.5", "12, 2", "'ab', 2, 3"] {
            c.append("return pcall(string.rep, \(args))")
        }
        let arr = "{1, 2, 3, 4, 5}"
        for (f, args) in [
            ("insert", "9"), ("insert", "1, 9"), ("insert", "6, 9"), ("insert", "7, 9"), ("insert", "0, 9"), ("insert", "1, 2, 3"),
            ("insert", ""), ("insert", "'x', 1"), ("insert", "2.0, 1"), ("insert", "2.5, 1"),
            ("remove", ""), ("remove", "1"), ("remove", "5"), ("remove", "6"), ("remove", "7"), ("remove", "0"),
            ("move", "1, 3, 2"), ("move", "2, 4, 1"), ("move", "1, 5, 3"), ("move", "3, 1, 2"), ("move", "1, 2"),
            ("move", "1, 3, 1, {}"), ("move", "math.mininteger, 1, 1"), ("move", "1, math.maxinteger, 2"), ("move", "1, 3, math.maxinteger"),
            ("concat", ""), ("concat", "', '"), ("concat", "',', 2, 4"), ("concat", "',', 4, 2"), ("concat", "',', 1, 6"),
            ("concat", "{}"), ("concat", "',', 3, 3"),
            ("sort", ""), ("sort", "function(a, b) return a > b end"), ("sort", "5"),
        ] {
            c.append("local t = \(arr) return pcall(table.\(f), t\(args.isEmpty ? "" : ", " + args)), t")
        }
        c += [
            "local t = {} return pcall(table.remove, t), pcall(table.remove, t, 0), pcall(table.remove, t, 1), pcall(table.remove, t, 2)",
            "return pcall(table.concat, {1, {}, 3})", "return pcall(table.concat, {'a', 2.5, 3})",
            "local t = {'b', 'a', 'c'} table.sort(t) return t", "return pcall(table.sort, {1, 'a'})",
            "local t = {} for i = 1, 300 do t[i] = (i * 7919) % 301 end table.sort(t) return t",
            "local t = {} for i = 1, 300 do t[i] = 1 end return pcall(table.sort, t, function(a, b) return true end)",
            "local t = {} for i = 1, 300 do t[i] = (i * 37) % 11 end table.sort(t, function(a, b) return a > b end) return t",
            "local t = {} for i = 1, 300 do t[i] = tostring(i) end table.sort(t) return t",
            "return pcall(table.sort, setmetatable({}, {__len = function() return math.maxinteger end}))",
            "return pcall(table.insert, setmetatable({}, {__len = function() return 'x' end}), 1)",
            "local log = {} local p = setmetatable({}, {__index = function(t, k) return k * 10 end, __newindex = function(t, k, v) log[#log + 1] = k .. '=' .. tostring(v) end, __len = function() return 4 end}) table.insert(p, 2, 'v') table.remove(p, 1) table.move(p, 1, 3, 2) return log, table.concat(p, ',')",
        ]
        for v in ["1", "'x'", "nil", "setmetatable({}, {__index = function(t, k) return k end, __len = function() return 3 end})"] {
            for f in ["concat", "insert", "remove", "move", "sort"] {
                c.append("return pcall(table.\(f), \(v), 1, 2, 3)")
            }
        }
        for args in ["", "'collect'", "'isrunning'", "'bogus'", "1", "'incremental'", "'generational'", "'incremental'", "'setpause', 200", "'setstepmul', 100"] {
            c.append("return pcall(collectgarbage, \(args))")
        }
        c.append("return type(collectgarbage('count')), type(collectgarbage('step')), type(collectgarbage('step', 100))")
        return c
    }()

    @Test("the bounded functions give the originals' results and errors (sandbox with a budget)")
    func sameResultsWithABudget() throws {
        let bounded = try sandbox(instructions: 50_000_000)
        let original = try sandbox(instructions: 50_000_000, bounded: false)
        for code in BoundedStdlibTests.cases {
            let a = outcome(bounded, code), b = outcome(original, code)
            #expect(a == b, "\(code)")
        }
    }

    @Test("... and without any budget (no hook: nothing is read from the extra space)")
    func sameResultsWithoutABudget() throws {
        let bounded = try LuaRuntime()
        let original = try LuaRuntime()
        #expect(lth_openbounded(bounded.state!) == LUA_OK)
        #expect(lth_openbounded(bounded.state!) == LUA_OK)  // twice is harmless
        for code in BoundedStdlibTests.cases {
            let a = outcome(bounded, code), b = outcome(original, code)
            #expect(a == b, "\(code)")
        }
        // the methods of strings follow (their __index is the string table)
        #expect(try bounded.run("return ('x'):rep(0) == '' and getmetatable('').__index.gsub == string.gsub") == [true])
    }

    @Test("with a budget that is not armed (between entries) nothing is charged")
    func unarmedBudgetIsNotCharged() throws {
        let rt = try sandbox(instructions: 1_000_000)
        // a registered Swift function runs inside an entry; the budget is armed there. Outside any entry
        // the bounded functions run only from C, so check the count after a heavy but legal entry instead.
        let r = try rt.run("local s = string.rep('a', 20000) local n = 0 for i = 1, 10 do n = n + #s:gsub('a', 'b') end return n")
        #expect(r == [200000])
        #expect(rt.remainingInstructions == nil)  // outside an entry
    }

    // MARK: string.format, pack and unpack (ltc_strlib.c)

    /// A runtime with `fmt` (= string.format), and `fmt2`, `pack2`, `unpack2` (the format at index 2).
    private func formatRuntime() throws -> LuaRuntime {
        let rt = try LuaRuntime()
        let L = rt.state!
        for (name, f) in [("fmt", ltc_format_function), ("fmt2", ltc_format_at2), ("pack2", ltc_pack_at2),
                          ("unpack2", ltc_unpack_at2)] as [(String, lua_CFunction)] {
            clua_pushcfunction(L, f)
            #expect(clua_setglobal(L, name) == LUA_OK)
        }
        return rt
    }

    @Test("ltc_format_function is string.format: results and errors on many cases")
    func formatMatchesStringFormat() throws {
        let rt = try formatRuntime()
        let diffs = try rt.run(#"""
        local mt = setmetatable({}, {__tostring = function() return "OBJ" end})
        local named = setmetatable({}, {__name = "MyType"})
        local badts = setmetatable({}, {__tostring = function() return 42 end})
        local cases = {
          {"%d", 42}, {"%5d|%-5d|%05d", 1, 2, 3}, {"%+d % d", 5, 5}, {"%x %X %o", 255, 255, 8}, {"%#x %#o", 255, 8},
          {"%i", -7}, {"%u", 3}, {"%c%c%c", 76, 117, 97}, {"%5c", 65}, {"%-5c|", 65}, {"%d", 3.0}, {"%d", "10"}, {"%d", 3.5},
          {"%d", "x"}, {"%d", {}}, {"%d"}, {"%d %d", 1}, {"%f", 1/3}, {"%.3f", math.pi}, {"%10.2f|", -1.5}, {"%e", 12345.678},
          {"%.0e", 5}, {"%g", 1e20}, {"%g", 0.1}, {"%G", 1e-20}, {"%a", 1.0}, {"%A", 0.5}, {"%.3a", math.pi}, {"%f", 1e308},
          {"%.99f", -1e308}, {"%99.99f", 1}, {"%100d", 1}, {"%.100f", 1}, {"%0-5d", 1}, {"%-05d", 1}, {"%#d", 1}, {"%+x", 1},
          {"%s", "str"}, {"%s", 12}, {"%s", 1.5}, {"%s", nil}, {"%s", true}, {"%s", mt}, {"%s", named}, {"%s", badts},
          {"%10s|", "ab"}, {"%-10s|", "ab"}, {"%.2s", "abcdef"}, {"%5.1s|", "xyz"}, {"%s", "a\0b"}, {"%5s", "a\0b"},
          {"%5s", string.rep("x", 200)}, {"%.5s", string.rep("x", 200)}, {"%s"}, {"%q", "he said \"hi\"\n\0\1\0019\r"},
          {"%q", 1/0}, {"%q", -1/0}, {"%q", 0/0}, {"%q", math.mininteger}, {"%q", 42}, {"%q", 0.1}, {"%q", nil}, {"%q", true},
          {"%q", {}}, {"%5q", "x"}, {"%p", 1}, {"%p", nil}, {"%10p", 1}, {"%-20p|", 1}, {"%y", 1},
          {"%", 1}, {"%%"}, {"100%%", 1}, {"%ld", 1}, {"%lld", 1}, {"%hd", 1}, {"%5.2q", "x"}, {"%n", 1}, {"abc"}, {""},
          {12}, {nil}, {{}}, {"%1$d", 1}, {"%-+ #0d", 1}, {"%--5d", 1}, {"%123456789d", 1}, {"%.d", 1}, {"%5.d|", 0}, {"%.0d|", 0},
          {"a\0b%d", 1}, {"%s %s %s", 1, 2, 3}, {"%d %s %q", 1, "two", "three"}, {"%s", 2^63}, {"%d", 2^63}, {"%x", -1},
          {"%d", math.mininteger}, {"%.14g", 2^53}, {"%5.3s|", "abcdef"}, {"%.3x", 5}, {"%0.3x", 5}, {"%c", 256}, {"%c", -1},
        }
        local function show(...) local t = table.pack(...) for i = 1, t.n do t[i] = tostring(t[i]) end return table.concat(t, ",", 1, t.n) end
        local diffs = {}
        for i, c in ipairs(cases) do
          local a = show(pcall(fmt, table.unpack(c, 1, 6))):gsub("'fmt'", "'F'")
          local b = show(pcall(string.format, table.unpack(c, 1, 6))):gsub("'string.format'", "'F'")
          if a ~= b then diffs[#diffs + 1] = i .. ": " .. a .. " ~= " .. b end
          -- one argument before the format: every argument number is one more
          local a2 = show(pcall(fmt2, "x", table.unpack(c, 1, 6)))
          local b2 = b:gsub("bad argument #(%d+) to 'F'", function(n) return "bad argument #" .. (n + 1) .. " to 'fmt2'" end)
          if a2 ~= b2 then diffs[#diffs + 1] = i .. " (at 2): " .. a2 .. " ~= " .. b2 end
        end
        return diffs
        """#)
        #expect(diffs.first?.arrayValue == [], "\(diffs)")
    }

    @Test("argument errors name the real stack indices, as inside talloc.asprintf(parent, fmt, ...)")
    func formatErrorsNameRealIndices() throws {
        let rt = try formatRuntime()
        let r = try rt.run("""
        local o = {asprintf = fmt2}
        return select(2, pcall(fmt2, 'parent', '%d', {})),
               select(2, pcall(function() return o:asprintf('%d', {}) end)),
               select(2, pcall(fmt2, 'parent', '%d %s')),
               select(2, pcall(fmt2, 'parent', {})),
               select(2, pcall(function() return o:asprintf('%q', print) end)),
               select(2, pcall(fmt2, 'p', '%s', setmetatable({}, {__tostring = function() error('inside') end})))
        """)
        #expect(r[0] == "bad argument #3 to 'fmt2' (number expected, got table)")
        #expect(r[1].stringValue?.hasSuffix("bad argument #2 to 'asprintf' (number expected, got table)") == true, "\(r[1])")
        #expect(r[2] == "bad argument #3 to 'fmt2' (no value)")
        #expect(r[3] == "bad argument #2 to 'fmt2' (string expected, got table)")
        #expect(r[4].stringValue?.hasSuffix("bad argument #2 to 'asprintf' (value has no literal form)") == true, "\(r[4])")
        #expect(r[5].stringValue?.hasSuffix("inside") == true, "\(r[5])")  // __tostring ran (and raised)
    }

    @Test("ltc_strpack / ltc_strunpack are string.pack / string.unpack with the format at its index")
    func packAndUnpackMatchTheOriginals() throws {
        let rt = try formatRuntime()
        let diffs = try rt.run(#"""
        local function show(...) local t = table.pack(...) for i = 1, t.n do t[i] = tostring(t[i]) end return table.concat(t, ",", 1, t.n) end
        -- the name of 'name' becomes 'X', its argument numbers 'delta' more
        local function ren(s, name, delta)
          return (s:gsub("bad argument #(%d+) to '" .. name .. "'", function(n) return "bad argument #" .. (n + delta) .. " to 'X'" end))
        end
        local diffs = {}
        local pcases = {
          {"i4", 100}, {"<i4", -2}, {">I2", 65535}, {"I2", 65536}, {"b", 127}, {"b", 128}, {"B", -1}, {"i16", -1}, {"I16", 1},
          {"i17", 1}, {"i0", 1}, {"j", math.mininteger}, {"J", -1}, {"T", 5}, {"f", 1.5}, {"d", 1/3}, {"n", 2^53}, {"s1", "abc"},
          {"s1", string.rep("x", 300)}, {"s", "hello"}, {"z", "zero"}, {"z", "a\0b"}, {"c5", "ab"}, {"c2", "abc"}, {"c", "a"},
          {"!4 i1 i4", 1, 2}, {"!3 i4", 1}, {"!16 d", 1}, {"Xi4"}, {"i1 Xi4 i4", 1, 2}, {"X", 1}, {"Xc1", 1}, {"x", 1},
          {"i1 x i1", 1, 2}, {"q", 1}, {"i", "12"}, {"i", "x"}, {"i"}, {"i i", 1}, {"=i4", 7}, {"< > = !"}, {"c0", ""},
          {"i4", 2^31}, {"i4", 1.5}, {"s2", string.rep("y", 70000)}, {12, 1}, {nil},
        }
        for i, c in ipairs(pcases) do
          local a = ren(show(pcall(pack2, "x", table.unpack(c, 1, 4))), "pack2", 0)
          local b = ren(show(pcall(string.pack, table.unpack(c, 1, 4))), "string.pack", 1)
          if a ~= b then diffs[#diffs + 1] = "pack " .. i .. ": " .. a .. " ~= " .. b end
        end
        local ucases = {
          {"i4", string.pack("i4", 100)}, {"i4 i4", string.pack("i4 i4", 1, 2)}, {"i4", "abc"}, {"i4", "abcd", 2}, {"i4", "abcdabcd", 5},
          {"i4", "abcd", 6}, {"i4", "abcd", -4}, {"i4", "abcd", -10}, {"i4", "abcd", 0}, {"z", "abc\0def"}, {"z", "abc"},
          {"s1", "\3abc"}, {"s1", "\9abc"}, {"c3", "abcdef"}, {"c10", "abc"}, {"i16", string.rep("\255", 16)}, {"i16", string.rep("\1", 16)},
          {"I9", string.rep("\255", 9)}, {"i9", "\1" .. string.rep("\0", 8)}, {"!4 b i4", "\1\0\0\0\2\0\0\0"}, {"Xi4", "abcd"},
          {"f d n", string.pack("f d n", 1.5, 2.5, 3.5)}, {"<h >h", "\1\2\1\2"}, {"j", string.pack("j", math.maxinteger)},
          {"i", 1234}, {"i", {}}, {{}, "x"}, {"x x", "ab"}, {"x", ""}, {"c0 c0 c0", ""}, {"w", "x"}, {"!3 i4", "abcd"},
        }
        for i, c in ipairs(ucases) do
          local a = ren(show(pcall(unpack2, "x", c[1], c[2], c[3])), "unpack2", 0)
          local b = ren(show(pcall(string.unpack, c[1], c[2], c[3])), "string.unpack", 1)
          if a ~= b then diffs[#diffs + 1] = "unpack " .. i .. ": " .. a .. " ~= " .. b end
        end
        return diffs
        """#)
        #expect(diffs.first?.arrayValue == [], "\(diffs)")
    }

    @Test("a script cannot redirect them: replacing string.format or string.pack changes nothing")
    func privateCopiesIgnoreTheGlobals() throws {
        let rt = try formatRuntime()
        let r = try rt.run("""
        string.format = function() return 'hijacked' end
        string.pack = function() return 'hijacked' end
        string = nil
        return fmt('%d-%s', 1, 'a'), fmt2(nil, '%5.1f', 2.25), #pack2(nil, 'i4 i8', 1, 2), unpack2(nil, '<i2', '\\1\\0')
        """)
        #expect(r == ["1-a", "  2.2", 12, 1, 3])
    }
}
