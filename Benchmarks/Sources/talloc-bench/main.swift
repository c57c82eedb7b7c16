// luatalloc benchmarks — talloc-bench: TallocCore vs libtalloc vs glibc malloc, and Lua-level costs.
//
//   talloc-bench [--rounds N] [--round-ms MS] [--filter W1,W3.tree] [--callgrind [--jobs J]]
//   talloc-bench --quick          run every workload once with tiny counts (CI); no timing
//   talloc-bench --list           the row ids
//   talloc-bench --exec ID --iters N   run one row N iterations and exit (what callgrind runs)
//   talloc-bench --check | --update-thresholds   instruction counts against Thresholds/ (ThresholdCheck.swift)
//   talloc-bench replay FILE [--pool-capacity N|advice|none]   a luatalloc trace on both (Replay.swift)
//
// The report (markdown) goes to stdout, progress to stderr. See ../../README.md.
// SPDX-License-Identifier: MIT
import CBench
#if canImport(Glibc)
import Glibc
#endif

func usage() -> Never {
    log("""
        usage: talloc-bench [--rounds N] [--round-ms MS] [--filter PREFIX[,PREFIX...]] [--callgrind] [--jobs J]
               talloc-bench --quick | --list | --exec ID --iters N
        """)
    exit(2)
}

if CommandLine.arguments.dropFirst().first == "replay" {  // talloc-bench replay FILE ...: Replay.swift
    exit(replayMain(Array(CommandLine.arguments.dropFirst(2))))
}

var opt = Options()
var thresholdMode: Bool?  // --check: false, --update-thresholds: true
var args = CommandLine.arguments.dropFirst()
func value() -> String {
    guard let v = args.popFirst() else { usage() }
    return v
}
while let a = args.popFirst() {
    switch a {
    case "--rounds": opt.rounds = max(1, Int(value()) ?? 7)
    case "--round-ms": opt.roundSeconds = (Double(value()) ?? 40) / 1000
    case "--filter": opt.filter = value().split(separator: ",").map(String.init)
    case "--callgrind": opt.callgrind = true
    case "--jobs": opt.jobs = Int(value()) ?? 2
    case "--quick": opt.quick = true
    case "--list": opt.list = true
    case "--exec": opt.execID = value()
    case "--iters": opt.execIters = Int(value()) ?? 1
    case "--no-timing": opt.noTiming = true
    case "--peak": opt.peak = true
    case "--w7-depth": opt.w7Depth = Int(value())
    case "--check": thresholdMode = false
    case "--update-thresholds": thresholdMode = true
    case "-h", "--help": usage()
    default: log("talloc-bench: unknown option \(a)"); usage()
    }
}

let cfg = opt.quick ? Config.quick : Config()
let inputs = Inputs(cfg)
let groups = makeGroups(cfg, inputs, execMode: opt.execID != nil, w7Depth: opt.w7Depth) + hostGroups(cfg)
    + luaSuiteGroups(quick: opt.quick)

if opt.list {
    for g in groups { for r in g.rows { print(r.id) } }
    exit(0)
}

if let id = opt.execID {
    guard let r = groups.lazy.flatMap({ $0.rows }).first(where: { $0.id == id }) else {
        log("talloc-bench: no row \(id)")
        exit(2)
    }
    r.setup()
    if opt.peak {
        reportPeak { r.run(max(1, opt.execIters)) }
    } else {
        r.run(max(1, opt.execIters))
    }
    r.teardown()
    exit(0)
}

for g in groups { g.rows = g.rows.filter { opt.selects($0.id) } }
let selected = groups.filter { !$0.rows.isEmpty }

if let update = thresholdMode {
    exit(thresholdRun(selected.flatMap { $0.rows }, opt, update: update))
}

if opt.quick {
    for g in selected { quickGroup(g) }
    print("quick: \(selected.reduce(0) { $0 + $1.rows.count }) rows ran")
    exit(0)
}

if !opt.noTiming {
    for g in selected {
        log("\(g.name): \(g.title)")
        timeGroup(g, opt)
        measureBytes(g)
    }
}
if opt.callgrind {
    log("callgrind (n and 2n iterations per row, \(opt.jobs) at a time)")
    runCallgrind(selected.flatMap { $0.rows }, opt)
}
printReport(selected, opt)
printLuaTargets(selected)
