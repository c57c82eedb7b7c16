// luatalloc benchmarks — the markdown report and the issue-6 target table.
// SPDX-License-Identifier: MIT

func bytesText(_ r: Row) -> String {
    guard let b = r.bytesPerOp else { return "" }
    if r.bytesLabel == "peak" { return fmt(b / 1_048_576, 1) + " MiB peak" }
    return fmt(b, 1) + " B/\(r.unit)"
}

func ratioText(_ xs: [Double]?) -> String {
    guard let xs, !xs.isEmpty else { return "" }
    return fmt(median(xs), 2) + "×"
}

func printReport(_ groups: [Group], _ opt: Options) {
    print("| workload | variant | implementation | ns/op median (min–max) | × libtalloc | × reference | instr/op | memory |")
    print("|---|---|---|---|---|---|---|---|")
    for g in groups {
        for r in g.rows {
            var ns = ""
            if !r.nsPerOp.isEmpty {
                ns = "\(sig(median(r.nsPerOp))) (\(sig(r.nsPerOp.min()!))–\(sig(r.nsPerOp.max()!))) ns/\(r.unit)"
            }
            let refName = g.reference.flatMap { g.row($0) }.map { $0.impl } ?? ""
            let vsRef = g.ratioVsRef[r.id].map { ratioText($0) + " " + refName } ?? ""
            let instr = r.instrPerOp.map { sig($0) } ?? ""
            print("| \(g.name) | \(r.variant) | \(r.impl) | \(ns) | \(ratioText(g.ratioVsC[r.id])) | \(vsRef) | \(instr) | \(bytesText(r)) |")
        }
    }
    print("")
    print("ns/op: median of \(opt.rounds) rounds (min–max). Ratios: per round, rows of a workload timed one after the")
    print("other in one process (order reversed every other round), median over rounds. instr/op: callgrind,")
    print("(Ir(2n) − Ir(n)) / n. memory: heap bytes in use (mallinfo2) with the tree built, per node (W3); peak heap")
    print("bytes of one run in a child process with libpeakmem.so preloaded (W7). W7 runs binary-trees at depth")
    print("\(Config().w7Depth) for time and memory, at depth \(Config().w7CallgrindDepth) under callgrind (instr/node).")
    print("")
    printTargets(groups)
}

struct Target {
    enum Metric { case instr, ratioRef, bytes }
    let name: String
    let row: String
    let cRow: String?
    let metric: Metric
    let limit: Double
}

let targets: [Target] = [
    Target(name: "W1 plain, instr/iter", row: "W1.plain.core", cRow: "W1.plain.c", metric: .instr, limit: 1000),
    Target(name: "W1 plain, time vs malloc", row: "W1.plain.core", cRow: "W1.plain.c", metric: .ratioRef, limit: 1.4),
    Target(name: "W2 pool that fits, instr/alloc", row: "W2.poolfit.core", cRow: "W2.poolfit.c", metric: .instr, limit: 100),
    Target(name: "W3 build+free, instr/node", row: "W3.tree.core", cRow: "W3.tree.c", metric: .instr, limit: 400),
    Target(name: "W3 build+free, B/node", row: "W3.tree.core", cRow: "W3.tree.c", metric: .bytes, limit: 112),
    Target(name: "W4 steal (creation order), instr/steal", row: "W4.inorder.core", cRow: "W4.inorder.c", metric: .instr, limit: 80),
    Target(name: "W4 steal (random order), instr/steal", row: "W4.random.core", cRow: "W4.random.c", metric: .instr, limit: 80),
    Target(name: "W5 last chunk in pool, instr/sequence", row: "W5.poollast.core", cRow: "W5.poollast.c", metric: .instr, limit: 700),
    Target(name: "W6 talloc.new() + GC, time vs plain userdata", row: "W6.talloc", cRow: "W6.cbinding", metric: .ratioRef, limit: 1.3),
    Target(name: "W7 Lua heap on TallocCore, time vs stock", row: "W7.core", cRow: nil, metric: .ratioRef, limit: 1.05),
]

func printTargets(_ groups: [Group]) {
    func find(_ id: String?) -> (Group, Row)? {
        guard let id else { return nil }
        for g in groups { if let r = g.row(id) { return (g, r) } }
        return nil
    }
    func value(_ t: Target, _ id: String?) -> Double? {
        guard let (g, r) = find(id) else { return nil }
        switch t.metric {
        case .instr: return r.instrPerOp
        case .bytes: return r.bytesPerOp
        case .ratioRef: return g.ratioVsRef[r.id].flatMap { $0.isEmpty ? nil : median($0) }
        }
    }
    func text(_ t: Target, _ v: Double?) -> String {
        guard let v else { return "—" }
        return t.metric == .ratioRef ? fmt(v, 2) + "×" : sig(v)
    }
    print("| target (issue 6) | libtalloc / C binding | TallocCore | limit | status |")
    print("|---|---|---|---|---|")
    for t in targets {
        let v = value(t, t.row)
        let c = value(t, t.cRow)
        let status: String
        if let v { status = v <= t.limit ? "met" : "**not met**" } else { status = "not measured" }
        let limit = t.metric == .ratioRef ? "≤ " + fmt(t.limit, 2) + "×" : "≤ " + sig(t.limit)
        print("| \(t.name) | \(text(t, c)) | \(text(t, v)) | \(limit) | \(status) |")
    }
}
