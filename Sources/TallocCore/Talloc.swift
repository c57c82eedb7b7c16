// luatalloc — TallocCore
// SPDX-License-Identifier: MIT

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Process-wide talloc settings: null tracking, leak reports, the log and abort handlers.
///
/// Like talloc's globals these are not thread-safe; set them up before using trees in threads, and keep
/// null tracking off when several threads allocate top-level contexts.
public enum Talloc {
    /// Size of our chunk header in bytes (talloc's is 96).
    public static let chunkHeaderSize = _headerSize
    /// Size of the header in front of a pool's chunk header (talloc's is 32).
    public static let poolHeaderSize = _poolPrefixSize
    /// Allocations of this size or more fail (talloc's MAX_TALLOC_SIZE).
    public static let maximumSize = _maxSize

    /// The null context when null tracking is on: the parent of every context made with no parent.
    public static var nullContext: TallocContext? { _Globals.nullContext.map { TallocContext(chunk: $0) } }

    /// Creates the null context (named "null_context"), so top-level allocations hang under it, and
    /// moves the autofree context there. The corresponding talloc function is `talloc_enable_null_tracking()`.
    public static func enableNullTracking() {
        enableNullTrackingNoAutofree()
        if let a = _Globals.autofreeContext, let n = _Globals.nullContext, a.pointee.parent == nil { _Core.steal(a, to: n) }
    }

    /// The same without moving the autofree context. The corresponding talloc function is
    /// `talloc_enable_null_tracking_no_autofree()`.
    public static func enableNullTrackingNoAutofree() {
        if _Globals.nullContext != nil { return }
        guard let tc = _Core.allocate(nil, size: 0) else { return }
        tc.pointee.name = UnsafeRawPointer(_InternedNames.cString("null_context"))
        _Globals.nullContext = tc
    }

    /// Detaches the null context's children (they become true top-level contexts) and frees it.
    /// The corresponding talloc function is `talloc_disable_null_tracking()`.
    public static func disableNullTracking() {
        guard let n = _Globals.nullContext else { return }
        while let c = n.pointee.child {
            _Core.unlinkFromSiblings(c)
            c.pointee.parent = nil
        }
        _Globals.nullContext = nil
        _ = _Core.free(n)
    }

    /// talloc_total_size(NULL): the null context's total, or 0 without null tracking.
    public static var nullContextTotalSize: Int { _Globals.nullContext.map { _Walk.totals($0).bytes } ?? 0 }

    /// talloc_report_full(NULL): the null context's report, or "" without null tracking.
    public static func reportNull(full: Bool = true, addresses: Bool = true) -> String {
        guard let n = _Globals.nullContext else { return "" }
        return _Walk.report(n, .init(depth: 0, maxDepth: full ? -1 : 1, addresses: addresses))
    }

    /// Turns null tracking on and, at exit, frees the autofree context and writes a report of whatever is
    /// left under the null context to stderr (when its total size is not 0).
    /// The corresponding talloc functions are `talloc_enable_leak_report()` and `_full()`.
    public static func enableLeakReport(full: Bool = false) {
        enableNullTracking()
        leakReportFull = full
        atexit {
            if let a = _Globals.autofreeContext { _ = _Core.free(a) }
            guard let n = _Globals.nullContext, _Walk.totals(n).bytes != 0 else { return }
            let text = _Walk.report(n, .init(depth: 0, maxDepth: Talloc.leakReportFull ? -1 : 1, addresses: true))
            _Core.writeStderr(text)
        }
    }
    nonisolated(unsafe) static var leakReportFull = false

    /// A top-level context freed at exit (deprecated in talloc). The corresponding talloc function is
    /// `talloc_autofree_context()`.
    public static func autofreeContext() -> TallocContext? {
        if let a = _Globals.autofreeContext { return TallocContext(chunk: a) }
        guard let tc = _Core.allocate(nil, size: 0) else { return nil }
        tc.pointee.name = UnsafeRawPointer(_InternedNames.cString("autofree_context"))
        _Globals.autofreeContext = tc
        let c = TallocContext(chunk: tc)
        c.setDestructor { _ in _Globals.autofreeContext = nil; return .allow }
        atexit { if let a = _Globals.autofreeContext { _ = _Core.free(a) } }
        return c
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

    /// talloc's version this implementation follows.
    public static let versionMajor = 2
    public static let versionMinor = 4
}
