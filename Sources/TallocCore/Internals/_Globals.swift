// luatalloc — TallocCore
// SPDX-License-Identifier: MIT
//
// The little state that is not in a tree: what talloc keeps in process-wide globals.
//
// - Per thread (`_ThreadState`): the null context (talloc's `null_context`) and the frees in progress
//   (`_FreeRegistry`). Each thread that enables null tracking gets its own null context, so trees of
//   different threads never meet in one list.
// - Process-wide, under one lock (`_Globals`): the log and abort handlers, the autofree context and the
//   leak-report setting. None of these is on a fast path.
// - Process-wide and lock-free: `_NullTracking.everEnabled`, one atomic flag that top-level allocations
//   read first, so that a process that never enables null tracking never looks at thread-local storage.

import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pthread mutex in memory of its own (a mutex must not move; a Swift stored property may).
@usableFromInline
struct _Lock: @unchecked Sendable {
    let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    @inline(__always)
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}

/// Process-wide settings, as talloc's globals, each read and written under `lock`: concurrent use from
/// several threads is race-free. Handlers are called *outside* the lock (a handler may log, or set
/// another handler), so a handler replaced on one thread may still run once on another.
enum _Globals {
    private static let lock = _Lock()
    private nonisolated(unsafe) static var _logHandler: ((String) -> Void)? = nil  // guarded: lock
    private nonisolated(unsafe) static var _abortHandler: ((String) -> Void)? = nil  // guarded: lock
    private nonisolated(unsafe) static var _autofreeContext: _Chunk? = nil  // guarded: lock
    private nonisolated(unsafe) static var _leakReportFull = false  // guarded: lock
    private nonisolated(unsafe) static var _leakReportRegistered = false  // guarded: lock

    static var logHandler: ((String) -> Void)? {
        get { lock.withLock { _logHandler } }
        set { lock.withLock { _logHandler = newValue } }
    }

    static var abortHandler: ((String) -> Void)? {
        get { lock.withLock { _abortHandler } }
        set { lock.withLock { _abortHandler = newValue } }
    }

    static var leakReportFull: Bool {
        get { lock.withLock { _leakReportFull } }
        set { lock.withLock { _leakReportFull = newValue } }
    }

    /// True the first time only: the leak report's atexit handler is registered once per process.
    static func registerLeakReportOnce() -> Bool {
        lock.withLock {
            if _leakReportRegistered { return false }
            _leakReportRegistered = true
            return true
        }
    }

    /// Runs `body` with the autofree context's slot, under the lock. `body` must not free a context
    /// (the autofree context's destructor takes the lock) nor call back into `_Globals`.
    static func withAutofreeContext<R>(_ body: (inout _Chunk?) -> R) -> R {
        lock.withLock { body(&_autofreeContext) }
    }
}

/// Null tracking, per thread. talloc's null context is one process-wide global that talloc does not make
/// thread-safe (its testsuite turns null tracking off before it starts threads); the sensible reading for
/// "many trees on many threads" is one null context per thread, made and dropped by that thread.
@usableFromInline
enum _NullTracking {
    /// Set (for good) the first time any thread enables null tracking. Until then, a top-level allocation
    /// costs one load of this flag; afterwards, a thread-local lookup as well.
    @usableFromInline static let everEnabled = Atomic<Bool>(false)

    /// The calling thread's null context, or nil.
    @inlinable @inline(__always)
    static var current: _Chunk? {
        if _fastPath(!everEnabled.load(ordering: .relaxed)) { return nil }
        return lookUp()
    }

    @inline(never) @usableFromInline
    static func lookUp() -> _Chunk? { _ThreadState.existing?.pointee.nullContext }

    /// `parent`, or the calling thread's null context when `parent` is nil.
    @inlinable @inline(__always)
    static func parent(_ parent: _Chunk?) -> _Chunk? {
        if let parent { return parent }
        return current
    }
}

/// What a thread keeps for itself: its null context and the frees it has in progress. Allocated on first
/// need, released when the thread ends (the null context then goes as `disableNullTracking()` makes it go).
struct _ThreadState {
    var nullContext: _Chunk? = nil
    var freeRoots: [_Chunk] = []
    /// Steps of long walks since the last `Talloc.takeWork()` (see `_Work`).
    var work = 0
    #if TALLOC_INTERNAL_CHECKS
    /// How many public mutations are running on the thread (the invariant checker runs after the outermost).
    var mutationDepth = 0
    #endif

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { raw in
            guard let raw else { return }
            let state = raw.assumingMemoryBound(to: _ThreadState.self)
            // The thread is ending with null tracking on: its top-level contexts become true top-level
            // contexts (nothing is freed), and the null context goes back to malloc.
            pthread_setspecific(_ThreadState.key, raw)
            _NullTrackingControl.disable(state)
            pthread_setspecific(_ThreadState.key, nil)
            state.deinitialize(count: 1)
            free(raw)
        }
        return k
    }()

    /// The calling thread's state, if it has one.
    static var existing: UnsafeMutablePointer<_ThreadState>? {
        pthread_getspecific(key)?.assumingMemoryBound(to: _ThreadState.self)
    }

    /// The calling thread's state, made on first use; nil when malloc fails.
    static var current: UnsafeMutablePointer<_ThreadState>? {
        if let s = existing { return s }
        guard let raw = malloc(MemoryLayout<_ThreadState>.stride) else { return nil }
        let s = raw.bindMemory(to: _ThreadState.self, capacity: 1)
        s.initialize(to: _ThreadState())
        if pthread_setspecific(key, raw) != 0 {
            s.deinitialize(count: 1)
            free(raw)
            return nil
        }
        return s
    }
}

/// Enabling and disabling the calling thread's null context.
enum _NullTrackingControl {
    /// Makes the calling thread's null context (named "null_context") if it has none. False when memory
    /// runs out (talloc then silently leaves tracking off).
    @discardableResult
    static func enable() -> Bool {
        guard let state = _ThreadState.current else { return false }
        if state.pointee.nullContext != nil { return true }
        guard let tc = _Core.allocate(nil, size: 0) else { return false }
        tc.pointee.name = UnsafeRawPointer(_InternedNames.cString("null_context"))
        state.pointee.nullContext = tc
        _NullTracking.everEnabled.store(true, ordering: .relaxed)
        return true
    }

    /// Detaches the null context's children (they become true top-level contexts) and frees it.
    static func disable(_ state: UnsafeMutablePointer<_ThreadState>) {
        guard let n = state.pointee.nullContext else { return }
        // Under the globals' lock: one of the children may be the autofree context, which another thread
        // may be about to move under its own null context.
        _Globals.withAutofreeContext { _ in
            while let c = n.pointee.child {
                _Core.unlinkFromSiblings(c)
                c.pointee.parent = nil
            }
        }
        state.pointee.nullContext = nil
        _ = _Core.free(n)
    }
}

/// The work meter: steps of walks whose length a caller does not control directly (subtree walks,
/// walks up the parent chain to limits or ancestors, reference lists), counted per thread, so that a
/// binding can charge an untrusted script's budget for them (`Talloc.takeWork()`). Walks shorter than
/// 64 steps are not counted: the fast paths never touch thread-local storage.
@usableFromInline
enum _Work {
    @inlinable @inline(__always)
    static func note(_ steps: Int) {
        if _slowPath(steps >= 64) { add(steps) }
    }

    @inline(never) @usableFromInline
    static func add(_ steps: Int) {
        if let s = _ThreadState.current { s.pointee.work &+= steps }
    }

    static func take() -> Int {
        guard let s = _ThreadState.existing else { return 0 }
        defer { s.pointee.work = 0 }
        return s.pointee.work
    }
}
