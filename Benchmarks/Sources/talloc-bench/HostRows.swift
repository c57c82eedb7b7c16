// luatalloc benchmarks — the Swift host API (issue 13): the cost of one `call` from Swift into a reused
// LuaRuntime, and the throughput of a pool of runtimes with 1 and 2 workers.
// SPDX-License-Identifier: MIT
import LuaTalloc
#if canImport(Glibc)
import Glibc
#endif

/// The Lua side of H1/H2: a small function (a little arithmetic, a table) as a policy check would be.
private let hostScript = """
    function check(x) return x + 1 end
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
    let byName = Row("H1.call.name", impl: "LuaRuntime.call(\"check\", 1)", variant: "by global name",
                     unit: "call", opsPerIter: 1, iters: 10_000, callgrindIters: 20_000) { n in
        let r = rt!
        for i in 0..<n { _ = try! r.call("check", .integer(i)) }
    }
    byName.setup = {
        rt = try! LuaRuntime(options: .init(memoryLimit: 64 << 20))
        try! rt!.run(hostScript)
    }
    byName.teardown = { rt?.close(); rt = nil }
    let h1 = Group("H1", "H1 — one call from Swift into a reused runtime (Lua `check(x) return x + 1`)",
                   reference: "H1.call.name", rows: [byName])

    // H2 ---------------------------------------------------------------------------------------
    // The throughput of N runtimes on N threads, each calling work(50) over and over: the ratio of
    // the 2-worker row to the 1-worker row is the time per call with 2 workers over the time with 1,
    // so 1 / ratio is the speed-up (2.0 is perfect on 2 cores).
    func poolRow(_ workers: Int) -> Row {
        var runtimes: [LuaRuntime] = []
        let r = Row("H2.pool.\(workers)w", impl: "\(workers) runtime\(workers == 1 ? "" : "s") × \(workers) thread\(workers == 1 ? "" : "s")",
                    variant: "work(50)", unit: "call", opsPerIter: 1, iters: 2_000, callgrindIters: 4_000) { n in
            runOnThreads(workers, n) { w, count in
                let rt = runtimes[w]
                for _ in 0..<count { _ = try! rt.call("work", .integer(50)) }
            }
        }
        r.setup = {
            runtimes = (0..<workers).map { _ in
                let rt = try! LuaRuntime(options: .init(memoryLimit: 64 << 20))
                try! rt.run(hostScript)
                return rt
            }
        }
        r.teardown = {
            for rt in runtimes { rt.close() }
            runtimes = []
        }
        return r
    }
    let h2 = Group("H2", "H2 — a pool of runtimes: throughput of 2 workers against 1 (one runtime per thread)",
                   reference: "H2.pool.1w", rows: [poolRow(1), poolRow(2)])
    return [h1, h2]
}

/// Runs `body(worker, count)` on `workers` threads at once, `n` calls split between them; returns when
/// all are done.
private func runOnThreads(_ workers: Int, _ n: Int, _ body: @escaping (Int, Int) -> Void) {
    if workers == 1 { body(0, n); return }
    var threads: [pthread_t] = []
    for w in 0..<workers {
        let count = n / workers + (w < n % workers ? 1 : 0)
        let job = Unmanaged.passRetained(_HostJob(body, w, count)).toOpaque()
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { p in
            let job = Unmanaged<_HostJob>.fromOpaque(p!).takeRetainedValue()
            job.body(job.worker, job.count)
            return nil
        }, job)
        precondition(rc == 0, "pthread_create")
        threads.append(t)
    }
    for t in threads { pthread_join(t, nil) }
}

/// One worker's share of a row, handed to its thread.
private final class _HostJob {
    let body: (Int, Int) -> Void
    let worker: Int
    let count: Int
    init(_ body: @escaping (Int, Int) -> Void, _ worker: Int, _ count: Int) {
        self.body = body
        self.worker = worker
        self.count = count
    }
}
