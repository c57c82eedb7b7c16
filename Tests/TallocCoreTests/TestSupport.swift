// luatalloc — TallocCore tests
// SPDX-License-Identifier: MIT
//
// Shared helpers: real threads (pthreads, so that per-thread state is made and dropped as a thread
// starts and ends), and capturing the process-wide log handler without racing other suites.

import Testing
@testable import TallocCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A mutex for test code, in memory of its own.
final class TestLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }
    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

private final class ThreadBody: @unchecked Sendable {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Runs `body(0) ... body(count - 1)` on `count` new threads at once and waits for all of them.
func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    var threads: [pthread_t] = []
    for i in 0..<count {
        let box = Unmanaged.passRetained(ThreadBody { body(i) }).toOpaque()
        var t = pthread_t()
        let rc = pthread_create(&t, nil, { raw in
            let b = Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue()
            b.run()
            return nil
        }, box)
        if rc != 0 {
            Unmanaged<ThreadBody>.fromOpaque(box).release()
            Issue.record("pthread_create failed: \(rc)")
            continue
        }
        threads.append(t)
    }
    for t in threads { pthread_join(t, nil) }
}

/// One slot per thread: each thread writes only its own (raw storage: no shared array header).
final class PerThread<T>: @unchecked Sendable {
    private let slots: UnsafeMutableBufferPointer<T>
    init(_ count: Int, _ initial: T) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: initial)
    }
    deinit {
        _ = slots.deinitialize()
        slots.deallocate()
    }
    /// Reserved for the thread that owns slot `i` (no other thread touches it until the join).
    subscript(i: Int) -> T {
        get { slots[i] }
        set { slots[i] = newValue }
    }
    var all: [T] { Array(slots) }
}

/// Serialises the tests that install a process-wide handler (log or abort), so that they do not replace
/// each other's.
let handlerLock = TestLock()

/// The log lines logged on the calling thread while `body` runs. Lines other threads log meanwhile
/// (other suites run in parallel) are not captured.
func capturingLog<R>(_ body: (_ lines: () -> [String]) throws -> R) rethrows -> R {
    try handlerLock.withLock {
        let me = pthread_self()
        let lock = TestLock()
        nonisolated(unsafe) var lines: [String] = []
        Talloc.setLogHandler { line in
            if pthread_equal(pthread_self(), me) != 0 { lock.withLock { lines.append(line) } }
        }
        defer { Talloc.setLogHandler(nil) }
        return try body { lock.withLock { lines } }
    }
}
