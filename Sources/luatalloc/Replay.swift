// luatalloc — `--replay FILE`: a trace's operations on TallocCore, without the script.
// SPDX-License-Identifier: MIT

import Glibc
import LuaTalloc
import TallocCore

/// The whole of a file, or nil with errno set.
func readFile(_ path: CArgument) -> [UInt8]? {
    guard let file = path.withCString({ fopen($0, "r") }) else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
        if n > 0 { bytes += chunk[0..<n] }
        if n < chunk.count {
            if ferror(file) != 0 { return nil }
            return bytes
        }
    }
}

/// The limit of a replay without `--memlimit`: a trace is input, and a few lines of it can ask for
/// gigabytes (finding A2 of adv2).
let defaultReplayLimit = 1 << 30

/// Replays the trace in `path` and prints what it measured on stdout; returns the exit status.
/// `memoryLimit`: `--memlimit`, the bytes of talloc memory the replay may hold (nil: `defaultReplayLimit`).
func runReplay(_ path: CArgument, capacity: PoolCapacity?, memoryLimit: Int?, progname: CArgument) -> Int32 {
    let limit = memoryLimit ?? defaultReplayLimit
    guard let bytes = readFile(path) else {
        writeError("\(progname.text): cannot read \(path.text): \(String(cString: strerror(errno)))\n")
        return EXIT_FAILURE
    }
    let ops: [TallocTrace.Operation]
    do {
        ops = try TallocTrace.parse(String(decoding: bytes, as: UTF8.self))
    } catch {
        writeError("\(progname.text): \(path.text): \(error)\n")
        return EXIT_FAILURE
    }
    var out = ""
    let result: TallocTrace.ReplayResult
    switch capacity {
    case nil:
        result = TallocTrace.replay(ops, memoryLimit: limit)
        out += "replay of \(path.text), pools at their recorded capacities\n"
    case .bytes(let n)?:
        result = TallocTrace.replay(ops, capacity: .fixed(n), memoryLimit: limit)
        out += "replay of \(path.text), every pool \(n) bytes\n"
    case PoolCapacity.none?:
        result = TallocTrace.replay(ops, capacity: .none, memoryLimit: limit)
        out += "replay of \(path.text), without pools (each a plain context)\n"
    case .advice?:
        let (advised, first) = TallocTrace.advisedCapacities(ops, memoryLimit: limit)
        result = TallocTrace.replay(ops, capacity: .perPool(advised), memoryLimit: limit)
        out += "replay of \(path.text), each pool at the capacity its advice gave (a first replay at the recorded "
            + "capacities: peak \(first.peakBytes) bytes, \(PoolReport.plural(first.mallocs, "malloc")), "
            + "\(PoolReport.plural(first.pools.reduce(0) { $0 + $1.spills }, "spill")))\n"
    }
    out += summary(result, limit: limit)
    out += PoolReport.text(result.sites, title: "pools")
    fputs(out, stdout)
    fflush(stdout)
    return EXIT_SUCCESS
}

/// What a replay measured, in a few lines.
func summary(_ r: TallocTrace.ReplayResult, limit: Int) -> String {
    var s = "  \(r.operations) operations"
    if r.failed > 0 {
        s += " (\(r.failed) failed: a memory limit refused, the replay's \(limit) bytes (--memlimit) included, "
            + "or the trace does not hold together)"
    }
    s += "\n  peak \(r.peakBytes) bytes of talloc memory (headers, bodies, whole pool blocks), \(r.finalBytes) at the end\n"
    s += "  \(r.chunks) chunks (pools and name chunks included): \(r.carved) carved from pools, \(r.mallocs) from malloc\n"
    return s
}
