// luatalloc benchmarks — the Swift host API (issue 13): the cost of one call from Swift into a reused
// LuaRuntime (by name, through a function handle, a chunk loaded once), the cost of a fresh runtime
// against a reset one, and the throughput of a pool of runtimes with 1 and 2 workers.
// SPDX-License-Identifier: MIT
import LuaTalloc
#if canImport(Glibc)
import Glibc
#endif

/// The Lua side of H1/H2: a small function (a little arithmetic, a table) as a policy check would be.
private let hostScript = """
    function check(x) return x + 1 end
    M = {check = check}
    function work(n)
      local t = {}
      for i = 1, n do t[i] = i * 2 end
      local s = 0
      for i = 1, n do s = s + t[i] end
      return s
    end
    """

func hostGroups(_ cfg: Config) -> [Group] {
    // H1 ---------------------------------------------------------------------------------------
    var rt: LuaRuntime?
    var handle: LuaFunction?
    var chunk: LuaFunction?
    // one runtime for the group's rows, made by whichever row is set up first (a row runs alone under
    // callgrind), closed by whichever is torn down first (after every row of the group ran)
    func h1(_ id: String, _ impl: String, _ variant: String, _ body: @escaping (LuaRuntime, Int) -> Void) -> Row {
        let r = Row(id, impl: impl, variant: variant, unit: "call", opsPerIter: 1, iters: 10_000, callgrindIters: 20_000) { n in
            body(rt!, n)
        }
        r.setup = {
            guard rt == nil else { return }
            rt = try! LuaRuntime(options: .init(memoryLimit: 64 << 20))
            try! rt!.run(hostScript)
            handle = try! rt!.function("check")
            chunk = try! rt!.load("local x = ... return x + 1", chunkName: "=chunk")
        }
        r.teardown = { handle = nil; chunk = nil; rt?.close(); rt = nil }
        return r
    }
    let byName = h1("H1.call.name", "call(\"check\", i)", "global name") { r, n in
        for i in 0..<n { _ = try! r.call("check", .integer(i)) }
    }
    let dotted = h1("H1.call.dotted", "call(\"M.check\", i)", "field path") { r, n in
        for i in 0..<n { _ = try! r.call("M.check", .integer(i)) }
    }
    let byHandle = h1("H1.call.handle", "LuaFunction: check(i)", "handle") { _, n in
        let f = handle!
        for i in 0..<n { _ = try! f(.integer(i)) }
    }
    let loaded = h1("H1.chunk.loaded", "load(...) once, then f(i)", "chunk, loaded once") { _, n in
        let f = chunk!
        for i in 0..<n { _ = try! f(.integer(i)) }
    }
    let parsed = h1("H1.chunk.run", "run(\"local x = ... return x + 1\", i)", "chunk, parsed each time") { r, n in
        for i in 0..<n { _ = try! r.run("local x = ... return x + 1", chunkName: "=chunk", arguments: [.integer(i)]) }
    }
    let h1 = Group("H1", "H1 — one call from Swift into a reused runtime (Lua `check(x) return x + 1`)",
                   reference: "H1.call.name", rows: [byName, dotted, byHandle, loaded, parsed])

    // H2 ---------------------------------------------------------------------------------------
    // The throughput of N runtimes on N threads, each calling work(50) over and over: the ratio of
    // the 2-worker row to the 1-worker row is the time per call with 2 workers over the time with 1,
    // so 1 / ratio is the speed-up (2.0 is perfect on 2 cores). The workers are long-lived threads, each
    // with a runtime made on it, as a server's would be. Each run also records the threads' CPU time:
    // the CPU time per call with 2 workers against 1 shows whether the workers slow each other down
    // (shared locks or cache lines), whatever else the machine is running.
    func poolRow(_ workers: Int) -> Row {
        var pool: _WorkerThreads?
        let r = Row("H2.pool.\(workers)w", impl: "\(workers) runtime\(workers == 1 ? "" : "s") × \(workers) thread\(workers == 1 ? "" : "s")",
                    variant: "work(50)", unit: "call", opsPerIter: 1, iters: 2_000, callgrindIters: 4_000) { n in
            let started = now()
            let cpu = pool!.run(n)
            _HostScaling.record(workers: workers, calls: n, wallNs: Double(now() - started), cpuNs: cpu)
        }
        r.setup = { pool = _WorkerThreads(workers) }
        r.teardown = {
            pool?.stop()
            pool = nil
            if workers == 2 { _HostScaling.report() }
        }
        return r
    }
    let h2 = Group("H2", "H2 — a pool of runtimes: throughput of 2 workers against 1 (one runtime per thread)",
                   reference: "H2.pool.1w", rows: [poolRow(1), poolRow(2)])

    // H3 ---------------------------------------------------------------------------------------
    // Reusing a runtime for the next script: a fresh one (made and closed) against reset().
    var reused: LuaRuntime?
    func fresh(_ id: String, _ variant: String, _ options: LuaRuntime.Options) -> Row {
        Row(id, impl: "LuaRuntime(options:) + close()", variant: variant, unit: "runtime", opsPerIter: 1,
            iters: 200, callgrindIters: 200) { n in
            for _ in 0..<n { try! LuaRuntime(options: options).close() }
        }
    }
    func reset(_ id: String, _ variant: String, _ options: LuaRuntime.Options) -> Row {
        let r = Row(id, impl: "reset()", variant: variant, unit: "runtime", opsPerIter: 1, iters: 200,
                    callgrindIters: 200) { n in
            for _ in 0..<n { try! reused!.reset() }
        }
        r.setup = { reused = try! LuaRuntime(options: options) }
        r.teardown = { reused?.close(); reused = nil }
        return r
    }
    let all = LuaRuntime.Options(memoryLimit: 64 << 20)
    let sandbox = LuaRuntime.Options.sandbox(memoryLimit: 64 << 20, instructionLimit: 10_000_000)
    let h3 = Group("H3", "H3 — a runtime for the next script: a new one against reset()",
                   reference: "H3.new.all",
                   rows: [fresh("H3.new.all", "every library", all), reset("H3.reset.all", "every library", all),
                          fresh("H3.new.sandbox", "sandbox", sandbox), reset("H3.reset.sandbox", "sandbox", sandbox)])
    return [h1, h2, h3]
}

/// Wall and CPU time of the H2 runs, per number of workers, and the summary printed after them.
private enum _HostScaling {
    nonisolated(unsafe) static var runs: [Int: [(calls: Int, wall: Double, cpu: Double)]] = [:]

    static func record(workers: Int, calls: Int, wallNs: Double, cpuNs: Double) {
        runs[workers, default: []].append((calls, wallNs, cpuNs))
    }

    static func report() {
        guard let one = runs[1], let two = runs[2], !one.isEmpty, !two.isEmpty else { return }
        let wall1 = median(one.map { $0.wall / Double($0.calls) }), wall2 = median(two.map { $0.wall / Double($0.calls) })
        let cpu1 = median(one.map { $0.cpu / Double($0.calls) }), cpu2 = median(two.map { $0.cpu / Double($0.calls) })
        log("  H2 scaling: throughput 2 workers / 1 worker = \(fmt(wall1 / wall2, 2))× (wall, median of \(min(one.count, two.count)) runs); "
            + "CPU per call \(fmt(cpu1, 0)) ns (1 worker), \(fmt(cpu2, 0)) ns (2 workers): "
            + "the workers cost each other \(fmt((cpu2 / cpu1 - 1) * 100, 1))%")
        runs = [:]
    }
}

/// Long-lived worker threads, each with a runtime made on it (hostScript loaded), running `work(50)`
/// on request.
private final class _WorkerThreads {
    final class Worker {
        var start = sem_t()
        var done = sem_t()
        var count = 0
        var cpu: Double = 0
        var stop = false
        var thread = pthread_t()
    }
    let workers: [Worker]

    init(_ n: Int) {
        workers = (0..<n).map { _ in Worker() }
        for w in workers {
            sem_init(&w.start, 0, 0)
            sem_init(&w.done, 0, 0)
            let rc = pthread_create(&w.thread, nil, { p in
                let w = Unmanaged<Worker>.fromOpaque(p!).takeUnretainedValue()
                let rt = try! LuaRuntime(options: .init(memoryLimit: 64 << 20))
                try! rt.run(hostScript)
                sem_post(&w.done)  // ready
                while true {
                    sem_wait(&w.start)
                    if w.stop { break }
                    let c0 = threadCPU()
                    for _ in 0..<w.count { _ = try! rt.call("work", .integer(50)) }
                    w.cpu = threadCPU() - c0
                    sem_post(&w.done)
                }
                rt.close()
                return nil
            }, Unmanaged.passUnretained(w).toOpaque())
            precondition(rc == 0, "pthread_create")
        }
        for w in workers { sem_wait(&w.done) }
    }

    /// `n` calls split between the workers, all at once; the CPU time they used (ns).
    func run(_ n: Int) -> Double {
        for (i, w) in workers.enumerated() {
            w.count = n / workers.count + (i < n % workers.count ? 1 : 0)
            sem_post(&w.start)
        }
        for w in workers { sem_wait(&w.done) }
        return workers.reduce(0) { $0 + $1.cpu }
    }

    func stop() {
        for w in workers {
            w.stop = true
            sem_post(&w.start)
        }
        for w in workers { pthread_join(w.thread, nil) }
    }
}

/// The calling thread's CPU time (ns).
private func threadCPU() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) * 1e9 + Double(ts.tv_nsec)
}
