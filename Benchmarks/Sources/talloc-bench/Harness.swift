// luatalloc benchmarks — the harness: rows, groups, paired rounds, statistics, callgrind driver.
// SPDX-License-Identifier: MIT
#if canImport(Glibc)
import Glibc
#endif

/// One measured thing: a workload in one implementation.
final class Row {
    let id: String
    let impl: String
    let variant: String
    let unit: String
    let opsPerIter: Int
    /// Iterations of a timing round before calibration, of a callgrind run (n; 2n is the second run).
    var iters: Int
    var callgrindIters: Int
    /// Ops per iteration when run under callgrind, if different (W7 runs a smaller depth there).
    var callgrindOpsPerIter: Int?
    /// The libtalloc row this row is compared with, and whether this row is the group's reference.
    var counterpart: String?
    var setup: () -> Void = {}
    var run: (Int) -> Void
    var teardown: () -> Void = {}
    /// Bytes per op from a separate, untimed measurement (W3: heap per node, W7: peak heap per run).
    var bytes: (() -> Double?)?
    var bytesLabel = "B/op"

    // Results.
    var nsPerOp: [Double] = []
    var instrPerOp: Double?
    var bytesPerOp: Double?

    init(_ id: String, impl: String, variant: String, unit: String, opsPerIter: Int, iters: Int,
         callgrindIters: Int? = nil, counterpart: String? = nil, run: @escaping (Int) -> Void) {
        self.id = id
        self.impl = impl
        self.variant = variant
        self.unit = unit
        self.opsPerIter = opsPerIter
        self.iters = iters
        self.callgrindIters = callgrindIters ?? max(1, iters / 4)
        self.counterpart = counterpart
        self.run = run
    }
}

/// Rows timed together, round by round, so that every ratio inside a group is paired.
final class Group {
    let name: String
    let title: String
    var rows: [Row]
    /// The id of the reference row (malloc, plain userdata, stock allocator), if any.
    let reference: String?
    /// A longer round for noisy groups (W6: the garbage collector's pace varies from round to round).
    var roundSeconds: Double?
    /// Per-round ratios: rowID -> [ratio vs counterpart], [ratio vs reference].
    var ratioVsC: [String: [Double]] = [:]
    var ratioVsRef: [String: [Double]] = [:]

    init(_ name: String, _ title: String, reference: String? = nil, rows: [Row]) {
        self.name = name
        self.title = title
        self.reference = reference
        self.rows = rows
    }

    func row(_ id: String) -> Row? { rows.first { $0.id == id } }
}

struct Options {
    var rounds = 7
    var roundSeconds = 0.04
    var quick = false
    var callgrind = false
    var jobs = 2
    var filter: [String] = []
    var execID: String?
    var execIters = 0
    var list = false
    var noTiming = false
    var peak = false
    var w7Depth: Int?

    func selects(_ id: String) -> Bool {
        filter.isEmpty || filter.contains { id.hasPrefix($0) }
    }
}

@inline(never)
func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func timed(_ row: Row, _ n: Int) -> Double {
    let t0 = now()
    row.run(n)
    let t1 = now()
    return Double(t1 - t0)
}

func median(_ xs: [Double]) -> Double {
    precondition(!xs.isEmpty)
    let s = xs.sorted()
    let m = s.count / 2
    return s.count % 2 == 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

func log(_ s: String) {
    fputs(s + "\n", stderr)
}

/// Time a group: calibrate each row to ~roundSeconds, one warm-up, then `rounds` rounds in which every
/// row runs once, in the group's order on even rounds and reversed on odd ones; each ratio is taken within
/// a round (same process, adjacent in time) and the median over rounds is reported.
func timeGroup(_ g: Group, _ opt: Options) {
    let rows = g.rows
    for r in rows { r.setup() }
    defer { for r in rows { r.teardown() } }
    let roundNs = (g.roundSeconds ?? opt.roundSeconds) * 1e9
    for r in rows {
        // Calibrate: grow the iteration count until one round takes at least the round's length.
        var n = max(1, r.iters)
        var t = timed(r, n)
        while t < roundNs / 4 && n < (1 << 40) {
            n *= 4
            t = timed(r, n)
        }
        if t < roundNs {
            n = max(n, Int(Double(n) * roundNs / max(t, 1)))
            _ = timed(r, n)  // warm-up at the final count
        }
        r.iters = n
    }
    for round in 0..<opt.rounds {
        var t: [String: Double] = [:]
        let order = round % 2 == 0 ? rows : rows.reversed()
        for r in order {
            let ns = timed(r, r.iters) / Double(r.iters * r.opsPerIter)
            t[r.id] = ns
            r.nsPerOp.append(ns)
        }
        for r in rows {
            if let c = r.counterpart, let tc = t[c] { g.ratioVsC[r.id, default: []].append(t[r.id]! / tc) }
            if let ref = g.reference, ref != r.id, let tr = t[ref] {
                g.ratioVsRef[r.id, default: []].append(t[r.id]! / tr)
            }
        }
    }
    for r in rows {
        log("  " + pad(r.id, 30) + lpad(fmt(median(r.nsPerOp), 1), 10) + " ns/\(r.unit)  (n=\(r.iters))")
    }
}

func quickGroup(_ g: Group) {
    for r in g.rows {
        r.setup()
        r.run(max(1, r.iters))
        r.teardown()
        if let b = r.bytes { r.bytesPerOp = b() }
        print("ok \(r.id)" + (r.bytesPerOp.map { " (\(fmt($0, 1)) \(r.bytesLabel))" } ?? ""))
    }
}

func measureBytes(_ g: Group) {
    for r in g.rows { if let b = r.bytes { r.bytesPerOp = b() } }
}

// MARK: - callgrind

func selfExecutable() -> String {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    precondition(n > 0, "readlink /proc/self/exe")
    return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Start `argv` with stdout on `stdout` (a file path); returns the pid.
func spawn(_ argv: [String], stdout: String = "/dev/null", env: [String] = []) -> pid_t {
    var pid: pid_t = 0
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let cargs = argv.map { strdup($0) } + [nil]
    defer { for p in cargs { free(p) } }
    var envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) }
    var e = environ
    while let s = e.pointee { envp.append(strdup(s)); e += 1 }
    envp.append(nil)
    defer { for p in envp { free(p) } }
    let rc = posix_spawnp(&pid, argv[0], &actions, nil, cargs, envp)
    posix_spawn_file_actions_destroy(&actions)
    if rc != 0 {
        log("talloc-bench: cannot start \(argv[0]): error \(rc)")
        return -1
    }
    return pid
}

/// Peak heap bytes of one iteration of row `id`, measured in a child process with libpeakmem.so
/// preloaded (built beside this executable). nil if the library is missing.
func childPeak(_ id: String, w7Depth: Int) -> Int? {
    let exe = selfExecutable()
    let lib = String(exe[..<(exe.lastIndex(of: "/") ?? exe.startIndex)]) + "/libpeakmem.so"
    guard access(lib, R_OK) == 0 else {
        log("talloc-bench: \(lib) not built; no peak memory (swift build --product peakmem)")
        return nil
    }
    var template = Array("/tmp/talloc-bench-peak.XXXXXX".utf8CString)
    let fd = mkstemp(&template)
    guard fd >= 0 else { return nil }
    close(fd)
    let out = String(cString: template)
    defer { unlink(out) }
    let pid = spawn([exe, "--exec", id, "--iters", "1", "--peak", "--w7-depth", String(w7Depth)],
                    stdout: out, env: ["LD_PRELOAD=\(lib)"])
    if pid < 0 { return nil }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    guard status == 0, let f = fopen(out, "r") else { return nil }
    defer { fclose(f) }
    var line: UnsafeMutablePointer<CChar>?
    var cap = 0
    var result: Int?
    while getline(&line, &cap, f) > 0 {
        let s = String(cString: line!).trimmingCharacters()
        if s.hasPrefix("peak ") { result = Int(s.dropFirst(5)) }
    }
    free(line)
    return result
}

/// In a child started by childPeak: run `body` between peakmem_reset and peakmem_peak_since_reset.
func reportPeak(_ body: () -> Void) {
    typealias Reset = @convention(c) () -> Void
    typealias Peak = @convention(c) () -> Int
    guard let r = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "peakmem_reset"),
          let p = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "peakmem_peak_since_reset") else {
        log("talloc-bench: --peak needs LD_PRELOAD=libpeakmem.so")
        exit(1)
    }
    unsafeBitCast(r, to: Reset.self)()
    body()
    print("peak \(unsafeBitCast(p, to: Peak.self)())")
}

/// The total instruction count (Ir) of a callgrind output file.
func callgrindTotal(_ path: String) -> Double? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var line: UnsafeMutablePointer<CChar>?
    var cap = 0
    var total: Double?
    while getline(&line, &cap, f) > 0 {
        let s = String(cString: line!)
        for key in ["totals:", "summary:"] where s.hasPrefix(key) {
            let v = s.dropFirst(key.count).split(separator: " ").first.map(String.init) ?? ""
            if let d = Double(v.trimmingCharacters()) { total = d }
        }
    }
    free(line)
    return total
}

extension String {
    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\n" || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\n" || c == "\t" { s.removeLast() }
        return String(s)
    }
}

/// Run every selected row under callgrind at n and 2n iterations, `jobs` processes at a time, and set
/// instrPerOp = (Ir(2n) - Ir(n)) / (n * opsPerIter): start-up and setup cancel.
func runCallgrind(_ rows: [Row], _ opt: Options) {
    let exe = selfExecutable()
    var dirTemplate = Array("/tmp/talloc-bench-cg.XXXXXX".utf8CString)
    guard let d = mkdtemp(&dirTemplate) else { fatalError("mkdtemp") }
    let dir = String(cString: d)
    struct Job { let row: Row; let mult: Int; let out: String }
    var jobs: [Job] = []
    for r in rows {
        for m in [1, 2] { jobs.append(Job(row: r, mult: m, out: "\(dir)/\(r.id).\(m).out")) }
    }
    var running: [pid_t: Job] = [:]
    var next = 0
    var totals: [String: Double] = [:]
    while next < jobs.count || !running.isEmpty {
        while next < jobs.count && running.count < max(1, opt.jobs) {
            let j = jobs[next]
            next += 1
            let argv = ["valgrind", "--tool=callgrind", "-q", "--callgrind-out-file=\(j.out)", exe,
                        "--exec", j.row.id, "--iters", String(j.row.callgrindIters * j.mult)]
            let pid = spawn(argv)
            if pid > 0 { running[pid] = j }
        }
        var status: Int32 = 0
        let pid = waitpid(-1, &status, 0)
        guard pid > 0, let j = running.removeValue(forKey: pid) else { continue }
        if status != 0 { log("callgrind: \(j.row.id) x\(j.mult) exited with status \(status)") }
        if let t = callgrindTotal(j.out) {
            totals["\(j.row.id).\(j.mult)"] = t
            unlink(j.out)
        }
        if let a = totals["\(j.row.id).1"], let b = totals["\(j.row.id).2"] {
            j.row.instrPerOp = (b - a) / Double(j.row.callgrindIters * (j.row.callgrindOpsPerIter ?? j.row.opsPerIter))
            log("  callgrind " + pad(j.row.id, 30) + lpad(fmt(j.row.instrPerOp!, 1), 10) + " instr/\(j.row.unit)")
        }
    }
    rmdir(dir)
}

// MARK: - formatting without Foundation

func fmt(_ x: Double, _ decimals: Int) -> String {
    var buf = [CChar](repeating: 0, count: 64)
    let n = withVaList([x]) { vsnprintf(&buf, buf.count, "%.\(decimals)f", $0) }
    return String(decoding: buf[0..<Int(n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Thousands separators for large counts: 12345.6 -> "12,346".
func grouped(_ x: Double) -> String {
    let s = fmt(x.rounded(), 0)
    let neg = s.hasPrefix("-")
    var digits = Array(neg ? s.dropFirst() : Substring(s))
    var out: [Character] = []
    while digits.count > 3 {
        out = [","] + digits.suffix(3) + out
        digits.removeLast(3)
    }
    return (neg ? "-" : "") + String(digits + out)
}

/// A number with about three significant digits.
func sig(_ x: Double) -> String {
    let a = abs(x)
    if a >= 1000 { return grouped(x) }
    if a >= 100 { return fmt(x, 0) }
    if a >= 10 { return fmt(x, 1) }
    return fmt(x, 2)
}

func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
