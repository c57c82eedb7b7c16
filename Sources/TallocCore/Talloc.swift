// luatalloc — TallocCore
// SPDX-License-Identifier: MIT

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// talloc's global settings: null tracking, leak reports, the autofree context, the log and abort handlers.
///
/// Null tracking is **per thread**: `enableNullTracking()` gives the *calling* thread a null context of
/// its own, under which that thread's top-level allocations hang, and `nullContext`, `reportNull` and
/// `disableNullTracking()` act on the calling thread's. talloc has one process-wide null context and
/// does not make it thread-safe (its testsuite turns tracking off before starting threads); one null
/// context per thread is the sensible reading when each thread has its own trees. A thread that ends
/// with tracking on drops its null context as `disableNullTracking()` does: its top-level contexts
/// become true top-level contexts, nothing is freed. A top-level context of a tracking thread is linked
/// into that thread's null context: hand it to another thread only after stealing it into a context of
/// the other side (under whatever synchronisation the hand-over uses), or after the thread has ended.
///
/// The log and abort handlers, the autofree context and the leak-report setting are process-wide, as
/// in talloc, and guarded by a lock: setting and using them from several threads is race-free. Handlers
/// are called outside the lock, on the thread that logs, so they must be thread-safe themselves when
/// several threads use talloc.
public enum Talloc {
    /// Size of our chunk header in bytes (talloc's is 96).
    public static let chunkHeaderSize = _headerSize
    /// Size of the header in front of a pool's chunk header (talloc's is 32).
    public static let poolHeaderSize = _poolPrefixSize
    /// Allocations of this size or more fail (talloc's MAX_TALLOC_SIZE).
    public static let maximumSize = _maxSize

    /// The steps of long walks (subtrees, parent chains up to limits and ancestors, reference lists) made
    /// on the calling thread since the last call, and resets the count. Walks under 64 steps are not
    /// counted. A binding charges an untrusted script's time budget with it: a single call such as
    /// `totalSize` of a huge tree, or an allocation at the bottom of a deep chain under a memory limit,
    /// does work no instruction count of the script sees. (Not in talloc.)
    package static func takeWork() -> Int { _Work.take() }

    /// The calling thread's null context when it has null tracking on: the parent of every context it
    /// makes with no parent.
    public static var nullContext: TallocContext? { _NullTracking.current.map { TallocContext(chunk: $0) } }

    /// Gives the calling thread a null context (named "null_context"), so its top-level allocations hang
    /// under it, and moves the autofree context there when it is a true top-level context.
    /// The corresponding talloc function is `talloc_enable_null_tracking()` (process-wide in talloc).
    public static func enableNullTracking() {
        var mutation = _Mutation(nil)
        defer { mutation.end() }
        guard _NullTrackingControl.enable(), let n = _NullTracking.current else { return }
        _Globals.withAutofreeContext { a in
            // A top-level chunk has no siblings and no limit above it: linking it is the whole steal (and
            // calls nothing, as code under the lock must not).
            if let a, a.pointee.parent == nil { _Core.linkAsNewest(a, under: n) }
        }
        mutation.add(TallocContext(chunk: n))
    }

    /// The same without moving the autofree context. The corresponding talloc function is
    /// `talloc_enable_null_tracking_no_autofree()`.
    public static func enableNullTrackingNoAutofree() {
        var mutation = _Mutation(nil)
        defer { mutation.end() }
        _NullTrackingControl.enable()
        mutation.add(nullContext)
    }

    /// Detaches the calling thread's null context's children (they become true top-level contexts) and
    /// frees it. The corresponding talloc function is `talloc_disable_null_tracking()`.
    public static func disableNullTracking() {
        let mutation = _Mutation(nullContext, nullContext?.firstChild)
        defer { mutation.end() }
        guard let state = _ThreadState.existing else { return }
        _NullTrackingControl.disable(state)
    }

    /// talloc_total_size(NULL): the calling thread's null context's total, or 0 without null tracking.
    public static var nullContextTotalSize: Int { _NullTracking.current.map { _Walk.totals($0).bytes } ?? 0 }

    /// talloc_report_full(NULL): the calling thread's null context's report, or "" without null tracking.
    public static func reportNull(full: Bool = true, addresses: Bool = true) -> String {
        guard let n = _NullTracking.current else { return "" }
        return TallocContext(chunk: n).report(depth: 0, maxDepth: full ? -1 : 1, addresses: addresses)
    }

    /// Turns null tracking on for the calling thread and, at exit, frees the autofree context and writes a
    /// report of whatever is left under the null context of the thread that runs the exit handlers
    /// (normally the main thread, which should be the one that calls this) to stderr, when its total
    /// size is not 0. The report streams to stderr as it is written.
    /// The corresponding talloc functions are `talloc_enable_leak_report()` and `_full()`.
    public static func enableLeakReport(full: Bool = false) {
        enableNullTracking()
        _Globals.leakReportFull = full
        guard _Globals.registerLeakReportOnce() else { return }
        atexit {
            Talloc.freeAutofreeContext()
            guard let n = _NullTracking.current, _Walk.totals(n).bytes != 0 else { return }
            _ = _Walk.writeReport(n, .init(depth: 0, maxDepth: _Globals.leakReportFull ? -1 : 1, addresses: true),
                                  accountant: { _ in true }, to: _Core.writeStderr(bytes:))
        }
    }

    /// A top-level context freed at exit (deprecated in talloc): one per process, made on first use by
    /// the calling thread (under its null context when it tracks). Finding and making it is race-free;
    /// the context itself is one tree, to be used by one thread at a time.
    /// The corresponding talloc function is `talloc_autofree_context()`.
    public static func autofreeContext() -> TallocContext? {
        var mutation = _Mutation(nil)
        defer { mutation.end() }
        return _Globals.withAutofreeContext { slot -> TallocContext? in
            if let a = slot { return TallocContext(chunk: a) }
            guard let tc = _Core.allocate(nil, size: 0) else { return nil }
            tc.pointee.name = UnsafeRawPointer(_InternedNames.cString("autofree_context"))
            let c = TallocContext(chunk: tc)
            c.setDestructor { me in
                // Freed by its owner before exit: forget it (under the lock, outside this one's scope).
                _Globals.withAutofreeContext { slot in if slot == _Chunk.from(body: me.unsafePointer) { slot = nil } }
                return .allow
            }
            guard c.hasDestructor else { _ = _Core.free(tc); return nil }  // no memory for the side record
            slot = tc
            mutation.add(c)
            atexit { Talloc.freeAutofreeContext() }
            return c
        }
    }

    /// Frees the autofree context, if there is one (taken out of its slot under the lock, freed outside).
    static func freeAutofreeContext() {
        let a: _Chunk? = _Globals.withAutofreeContext { slot in
            let a = slot
            slot = nil
            return a
        }
        if let a { _ = _Core.free(a) }
    }

    /// Where talloc's log lines go ("ERROR: talloc_free with references at ...", "WARNING: talloc_steal
    /// with references at ...", abort reasons). Nil discards them, talloc's default.
    /// The corresponding talloc function is `talloc_set_log_fn()`.
    public static func setLogHandler(_ handler: ((String) -> Void)?) { _Globals.logHandler = handler }

    /// Logs to stderr. The corresponding talloc function is `talloc_set_log_stderr()`.
    public static func setLogStderr() { _Globals.logHandler = { _Core.writeStderr($0) } }

    /// Called with the reason before talloc aborts (misuse of a freed context, a type mismatch). Unlike
    /// talloc, the process still traps when the handler returns: talloc carrying on with a bad chunk is
    /// how it crashes later. The corresponding talloc function is `talloc_set_abort_fn()`.
    public static func setAbortHandler(_ handler: ((String) -> Void)?) { _Globals.abortHandler = handler }

    /// The major version of talloc this implementation follows (`talloc_version_major()`).
    public static let versionMajor = 2
    /// The minor version of talloc this implementation follows (`talloc_version_minor()`).
    public static let versionMinor = 4
}
