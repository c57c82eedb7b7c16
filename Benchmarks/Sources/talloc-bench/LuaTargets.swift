// luatalloc benchmarks — the targets of issue 11 (instructions from callgrind; bytes from RSS).
// SPDX-License-Identifier: MIT

/// One target: the row's instructions per operation (or bytes), or its ratio to a reference row's
/// instructions, against a limit.
struct LuaTarget {
    enum Metric {
        case instr
        case instrRatio(to: String)
        case bytes
    }
    let name: String
    let row: String
    let metric: Metric
    let limit: Double
    /// Before this work: this suite on the module as it was (commit f658bcd), and the figure.
    let before: String
}

let luaTargets: [LuaTarget] = [
    LuaTarget(name: "new + collection, default name (× plain userdata + empty __gc)", row: "L1.default.talloc",
              metric: .instrRatio(to: "L1.floor.plain"), limit: 1.3, before: "5,152 (4.3×); issue ~4,650"),
    LuaTarget(name: "new + collection, named (× the same floor)", row: "L1.named.talloc",
              metric: .instrRatio(to: "L1.floor.plain"), limit: 1.3, before: "6,031 (5.0×)"),
    LuaTarget(name: "each context of a tree by size/strdup with a parent (× the floor)", row: "L2.tree.talloc",
              metric: .instrRatio(to: "L1.floor.plain"), limit: 1.5, before: "5,538 (4.6×); issue ~4,700"),
    LuaTarget(name: "each context of a chain by new with a parent (× the floor)", row: "L8.chain.talloc",
              metric: .instrRatio(to: "L1.floor.plain"), limit: 1.5, before: "5,935 (5.0×); issue ~4,700"),
    LuaTarget(name: "pool allocation from Lua (× the floor)", row: "L3.pool.talloc",
              metric: .instrRatio(to: "L1.floor.plain"), limit: 1.3, before: "5,526 (4.6×); issue ~5,100"),
    LuaTarget(name: "steal, instr/steal", row: "L4.steal.talloc", metric: .instr, limit: 600, before: "1,771; issue ~1,190"),
    LuaTarget(name: "write + read of 8 bytes, instr/pair", row: "L5.rw8.talloc", metric: .instr, limit: 1000,
              before: "2,785; issue ~2,500"),
    LuaTarget(name: "children, instr/step", row: "L6.children.talloc", metric: .instr, limit: 400, before: "1,255 (O(1) already)"),
    LuaTarget(name: "parent, instr/step", row: "L6.parent.talloc", metric: .instr, limit: 400, before: "816"),
    LuaTarget(name: "bytes per Lua-visible context (RSS)", row: "L8.chain.talloc", metric: .bytes, limit: 200,
              before: "418; issue ~424 (a chain)"),
]

func printLuaTargets(_ groups: [Group]) {
    func row(_ id: String) -> Row? {
        for g in groups { if let r = g.row(id) { return r } }
        return nil
    }
    guard luaTargets.contains(where: { row($0.row) != nil }) else { return }
    print("")
    print("| target (issue 11) | before | now | limit | status |")
    print("|---|---|---|---|---|")
    for t in luaTargets {
        guard let r = row(t.row) else { continue }
        var value: Double?
        var text = "—"
        var limit = "≤ " + sig(t.limit)
        switch t.metric {
        case .instr:
            value = r.instrPerOp
            text = value.map { sig($0) } ?? "—"
        case .bytes:
            value = r.bytesPerOp
            text = value.map { fmt($0, 0) + " B" } ?? "—"
            limit += " B"
        case .instrRatio(let ref):
            if let a = r.instrPerOp, let b = row(ref)?.instrPerOp, b > 0 {
                value = a / b
                text = "\(sig(a)) (\(fmt(a / b, 2))×)"
            }
            limit = "≤ " + fmt(t.limit, 2) + "×"
        }
        let status = value.map { $0 <= t.limit ? "met" : "**not met**" } ?? "not measured"
        print("| \(t.name) | \(t.before) | \(text) | \(limit) | \(status) |")
    }
    print("")
    print("What stands in the way of the targets still unmet, measured: Benchmarks/README.md, \"What stands in the way\".")
}
