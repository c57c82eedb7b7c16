// luatalloc — the embeddable runtime: what walks a LuaValue (==, hashing, description, unfolding)
// SPDX-License-Identifier: MIT
//
// A value read from Lua shares the Swift storage of a table reached twice (`_LuaReader`), so a graph of
// n tables can stand for a tree of 2^n. Everything here is linear in the stored graph — a shared table
// is visited once — and iterative: no walk recurses per level of nesting.

extension LuaValue {
    /// The identity of a table's storage: a Swift dictionary is one reference to its storage, shared by
    /// copies until one is changed. nil where the layout is not that (then nothing is taken as shared).
    @inline(__always)
    static func storageIdentity(_ t: [LuaValue: LuaValue]) -> UInt? {
        guard MemoryLayout<[LuaValue: LuaValue]>.size == MemoryLayout<UInt>.size else { return nil }
        return withUnsafeBytes(of: t) { $0.load(as: UInt.self) }
    }

    /// Whether two values with the same table storage are the same table (for tests of sharing).
    static func sharesStorage(_ a: LuaValue, _ b: LuaValue) -> Bool {
        guard case .table(let x) = a, case .table(let y) = b, let i = storageIdentity(x) else { return false }
        return i == storageIdentity(y)
    }
}

// MARK: - Equality and hashing: Lua's keys

extension LuaValue {
    /// Lua's equality of keys for scalars (strings as bytes); tables by contents, without recursion and
    /// visiting each pair of stored tables once.
    public static func == (lhs: LuaValue, rhs: LuaValue) -> Bool {
        switch (lhs, rhs) {
        case (.table(let s), .table(let t)): return tablesEqual(s, t)
        default: return scalarsEqual(lhs, rhs)
        }
    }

    /// `==` for anything but two tables (false for a table and a non-table).
    private static func scalarsEqual(_ lhs: LuaValue, _ rhs: LuaValue) -> Bool {
        switch (lhs, rhs) {
        case (.nil, .nil): return true
        case (.boolean(let a), .boolean(let b)): return a == b
        case (.integer(let a), .integer(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a.utf8.elementsEqual(b.utf8)
        case (.string(let a), .bytes(let b)), (.bytes(let b), .string(let a)): return a.utf8.elementsEqual(b)
        case (.bytes(let a), .bytes(let b)): return a == b
        case (.cycle(let a), .cycle(let b)): return a == b
        case (.context(let a), .context(let b)): return a == b
        case (.function(let a), .function(let b)): return a == b
        case (.opaque(let a), .opaque(let b)): return a == b
        default: return false
        }
    }

    private struct _Pair: Hashable {
        let a: UInt
        let b: UInt
    }

    /// Tables by contents: a worklist instead of recursion; a pair of storages compared (or being
    /// compared) once is taken as equal where it comes again, so shared parts cost once.
    private static func tablesEqual(_ s: [LuaValue: LuaValue], _ t: [LuaValue: LuaValue]) -> Bool {
        var work: [(LuaValue, LuaValue)] = []
        var compared: Set<_Pair> = []
        var x = s, y = t
        while true {
            if x.count != y.count { return false }
            let ix = storageIdentity(x), iy = storageIdentity(y)
            let same = ix != nil && ix == iy
            let seen = !same && ix != nil && iy != nil && !compared.insert(_Pair(a: ix!, b: iy!)).inserted
            if !same && !seen {
                for (k, v) in x {
                    guard let w = y[k] else { return false }  // (a table key is looked up by its own ==)
                    if case .table = v, case .table = w { work.append((v, w)); continue }
                    if !scalarsEqual(v, w) { return false }
                }
            }
            guard let next = work.popLast() else { return true }
            guard case .table(let a) = next.0, case .table(let b) = next.1 else { return false }
            x = a
            y = b
        }
    }

    /// Consistent with `==`: strings by their bytes (`.string` and `.bytes` alike); a table by its
    /// count and its entries one level deep (a table inside counts by its size), so hashing costs the
    /// entries of one table, never the whole graph.
    public func hash(into hasher: inout Hasher) {
        hashShallow(into: &hasher)
        if case .table(let t) = self {
            var sum = 0
            for (k, v) in t {
                var h = Hasher()
                k.hashShallow(into: &h)
                v.hashShallow(into: &h)
                sum = sum &+ h.finalize()
            }
            hasher.combine(sum)  // a sum: the order of a dictionary's entries does not matter
        }
    }

    /// The hash of a value with a table counted by its size only.
    private func hashShallow(into hasher: inout Hasher) {
        switch self {
        case .nil: hasher.combine(0 as UInt8)
        case .boolean(let b): hasher.combine(1 as UInt8); hasher.combine(b)
        case .integer(let i): hasher.combine(2 as UInt8); hasher.combine(i)
        case .number(let d): hasher.combine(3 as UInt8); hasher.combine(d)
        case .string(let s):
            hasher.combine(4 as UInt8)
            var s = s
            s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        case .bytes(let b):
            hasher.combine(4 as UInt8)
            b.withUnsafeBytes { hasher.combine(bytes: $0) }
        case .table(let t): hasher.combine(6 as UInt8); hasher.combine(t.count)
        case .cycle(let n): hasher.combine(7 as UInt8); hasher.combine(n)
        case .context(let c): hasher.combine(8 as UInt8); hasher.combine(c)
        case .function(let f): hasher.combine(9 as UInt8); hasher.combine(f)
        case .opaque(let o): hasher.combine(10 as UInt8); hasher.combine(o)
        }
    }
}

// MARK: - Size of the unfolded tree

extension LuaValue {
    /// The number of values in the value as a tree — a shared table counted at each place it is reached,
    /// keys included — computed in time linear in the stored graph; `limit + 1` once it is over `limit`.
    /// (What a writer that knows no sharing, such as `JSONEncoder`, would produce.)
    func unfoldedCount(limit: Int) -> Int {
        guard case .table(let root) = self, !root.isEmpty, LuaValue.storageIdentity(root) != nil else { return 1 }
        var memo: [UInt: Int] = [:]
        func known(_ v: LuaValue) -> Int? {
            guard case .table(let t) = v else { return 1 }
            return t.isEmpty ? 1 : memo[LuaValue.storageIdentity(t)!]
        }
        // post-order: a table is entered (its children not known yet pushed), then left (its size summed)
        var stack: [(table: [LuaValue: LuaValue], entered: Bool)] = [(root, false)]
        while let (t, entered) = stack.popLast() {
            let id = LuaValue.storageIdentity(t)!
            if memo[id] != nil { continue }
            if !entered {
                stack.append((t, true))
                for (k, v) in t {
                    if case .table(let c) = k, known(k) == nil { stack.append((c, false)) }
                    if case .table(let c) = v, known(v) == nil { stack.append((c, false)) }
                }
                continue
            }
            var n = 1
            for (k, v) in t { n = Swift.min(limit + 1, n + known(k)! + known(v)!) }
            if n > limit { return limit + 1 }
            memo[id] = n
        }
        return memo[LuaValue.storageIdentity(root)!]!
    }
}

// MARK: - Description

extension LuaValue: CustomStringConvertible {
    /// A Lua-like rendering, keys sorted for stable output (`{1, 2, x = "y"}`), linear in the stored
    /// value: a table that is reached more than once is written in full the first time, marked `&N`, and
    /// as `*N` after that (`local t = {1} return {t, t}` reads `{&1 {1}, *1}`). Written without recursion,
    /// so a value of any depth renders.
    public var description: String { render(limit: nil) }

    /// The rendering cut after about `limit` characters (then ending in "..."), in time proportional to
    /// what it writes: for messages.
    func render(limit: Int?) -> String {
        guard case .table(let root) = self else { return LuaValue.scalarText(self) }
        if root.isEmpty { return "{}" }
        // 1. how often each stored table is reached (a table is entered once)
        var reached: [UInt: Int] = [:]
        var pending: [[LuaValue: LuaValue]] = [root]
        if let id = LuaValue.storageIdentity(root) { reached[id] = 1 }
        func visit(_ child: LuaValue) {
            guard case .table(let c) = child, !c.isEmpty else { return }
            guard let id = LuaValue.storageIdentity(c) else { pending.append(c); return }
            let n = reached[id, default: 0] + 1
            reached[id] = n
            if n == 1 { pending.append(c) }
        }
        while let t = pending.popLast() {
            for (k, v) in t {
                visit(k)
                visit(v)
            }
            if let limit, reached.count > limit { break }  // enough to write `limit` characters
        }
        // 2. written in order, from a stack of what is left to write
        enum Piece { case text(String), value(LuaValue) }
        var out = ""
        var labels: [UInt: Int] = [:]
        var tasks: [Piece] = [.value(self)]
        while let task = tasks.popLast() {
            if let limit, out.utf8.count > limit {
                out += "..."
                break
            }
            let value: LuaValue
            switch task {
            case .text(let s): out += s; continue
            case .value(let v): value = v
            }
            guard case .table(let t) = value else { out += LuaValue.scalarText(value); continue }
            if t.isEmpty { out += "{}"; continue }
            let id = LuaValue.storageIdentity(t)
            if let id, let n = labels[id] { out += "*\(n)"; continue }
            if let id, reached[id, default: 0] > 1 {
                let n = labels.count + 1
                labels[id] = n
                out += "&\(n) "
            }
            out += "{"
            tasks.append(.text("}"))
            let items = LuaValue.ordered(t)
            for (i, item) in items.enumerated().reversed() {
                tasks.append(.value(item.value))
                switch item.key {
                case .none: break
                case .some(.string(let s)): tasks.append(.text(s + " = "))
                case .some(let k):
                    tasks.append(.text("] = "))
                    tasks.append(.value(k))
                    tasks.append(.text("["))
                }
                if i > 0 { tasks.append(.text(", ")) }
            }
        }
        return out
    }

    /// The entries of a table in writing order: the sequence 1...n (no key written), then the other keys
    /// sorted by their text.
    private static func ordered(_ t: [LuaValue: LuaValue]) -> [(key: LuaValue?, value: LuaValue)] {
        var items: [(key: LuaValue?, value: LuaValue)] = []
        var n = 0
        while let v = t[.integer(n + 1)], !v.isNil {
            items.append((nil, v))
            n += 1
        }
        var rest: [(sortKey: String, key: LuaValue, value: LuaValue)] = []
        for (k, v) in t {
            if case .integer(let i) = k, i >= 1, i <= n { continue }
            let sortKey: String
            switch k {
            case .string(let s): sortKey = s
            case .table(let kt): sortKey = "[{" + String(kt.count)  // tables as keys: by size
            default: sortKey = "[" + scalarText(k) + "]"
            }
            rest.append((sortKey, k, v))
        }
        rest.sort { $0.sortKey < $1.sortKey }
        for r in rest { items.append((r.key, r.value)) }
        return items
    }

    /// The text of anything but a non-empty table.
    private static func scalarText(_ v: LuaValue) -> String {
        switch v {
        case .nil: return "nil"
        case .boolean(let b): return b ? "true" : "false"
        case .integer(let i): return String(i)
        case .number(let d): return Lua.formatNumber(d)
        case .string(let s): return "\"" + s + "\""
        case .bytes(let b): return "<\(b.count) bytes>"
        case .cycle(let n): return "<cycle \(n) up>"
        case .context(let c): return c.isValid ? "talloc.context '\(c.name)'" : "talloc.context (freed)"
        case .function(let f): return "<\(f)>"
        case .opaque(let o): return "<\(o)>"
        case .table(let t): return t.isEmpty ? "{}" : "{...}"
        }
    }
}
