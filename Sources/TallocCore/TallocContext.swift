// luatalloc — TallocCore
// SPDX-License-Identifier: MIT

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A talloc context: a handle on one chunk of a hierarchical allocation tree.
///
/// Every chunk has a parent (or none: it is a top-level context), and freeing a chunk frees its whole
/// subtree, children newest first, after running destructors. Chunks can be carved from memory pools,
/// moved between parents (`steal`), given extra parents (`reference`), and measured (`totalSize`).
///
/// `TallocContext` is a plain value holding the chunk's address, like a file descriptor: you are
/// responsible for freeing it (or an ancestor), and for not using it after that. Using a freed context
/// traps with talloc's abort message ("Bad talloc magic value - access after free"), as talloc aborts;
/// callers that must not trap use the throwing twin `validate()` first, or keep their own record of
/// what they freed (the Lua binding does).
///
/// **Moves.** `reallocate`, `resize` and the string appenders (`strdupAppend`, ...) may move the chunk, as
/// `talloc_realloc` does: they update the handle they are called on (`mutating`), and return nothing
/// else to keep. Any *other* copy of the handle then names the old address: it is stale. TallocCore
/// stamps the header it leaves behind as freed, so such a copy reads as freed (`validate()` throws
/// `accessAfterFree`; using it traps as talloc aborts) — never as the moved chunk with its old contents —
/// until malloc or the pool reuses that memory for another chunk, which the copy would then name. So
/// after a move keep only the updated handle (compare it with the old one to know whether it moved), or
/// keep a stable handle of your own (the Lua binding keeps one cell per context, updated on moves).
///
/// Like talloc, a tree is not thread-safe: one tree belongs to one thread at a time (hand it over with
/// your own synchronisation). Different threads may use different trees at once: null tracking is per
/// thread (see `Talloc`), and the little process-wide state (the log and abort handlers, the autofree
/// context, interned type names) is guarded.
public struct TallocContext: Hashable {
    /// The address of the chunk's body, as talloc returns it.
    public let unsafePointer: UnsafeMutableRawPointer

    @inlinable @inline(__always)
    init(_ body: UnsafeMutableRawPointer) { self.unsafePointer = body }

    @inlinable @inline(__always)
    init(chunk: _Chunk) { self.unsafePointer = chunk.body }

    /// Wraps a body pointer returned earlier by `unsafePointer`. Nothing is checked until it is used.
    public init(unsafePointer: UnsafeMutableRawPointer) { self.unsafePointer = unsafePointer }

    /// The chunk, validated (talloc_chunk_from_ptr): aborts on a freed or foreign pointer.
    @inlinable @inline(__always)
    var chunk: _Chunk { _Core.chunk(unsafePointer) }

    /// Checks that the context is a live talloc chunk, without trapping.
    ///
    /// - Throws: `TallocError.accessAfterFree` when it was freed and its header still reads so (pool
    ///   memory, or memory not yet reused), `TallocError.unknownValue` otherwise.
    /// - warning: Like talloc's check, this reads the header in front of the pointer: it is reliable for
    ///   live chunks and best-effort for freed ones. Bindings should track frees themselves.
    public func validate() throws(TallocError) {
        switch _Core.checkedChunk(unsafePointer) {
        case .success: return
        case .failure(let e): throw e
        }
    }

    /// Whether `validate()` would succeed.
    public var isValid: Bool {
        if case .success = _Core.checkedChunk(unsafePointer) { return true }
        return false
    }

    @inlinable @inline(__always)
    static func chunk(_ c: TallocContext?) -> _Chunk? { c.map { $0.chunk } }
}

/// A tree belongs to one thread: a context is not `Sendable` (hand a whole tree over with `sending`).
@available(*, unavailable, message: "a talloc tree belongs to one thread: hand it over with 'sending'")
extension TallocContext: Sendable {}
/// `TallocContext.make` off its fast paths: the size check, top level, memory limits, a full pool, malloc
/// failing (tried again here, then reported). A free function, as `_mallocChild`.
@inline(never) @usableFromInline
func _makeElsewhere(_ parent: _Chunk?, _ size: Int) throws(TallocError) -> _Chunk {
    if size < 0 || size >= _maxSize { throw .sizeTooLarge }
    guard let tc = _Core.allocate(parent, size: size) else { throw .outOfMemory }
    return tc
}

extension TallocContext: CustomStringConvertible {
    public var description: String {
        guard isValid else { return "TallocContext(freed \(_Walk.pointerText(unsafePointer)))" }
        return "TallocContext('\(name)', \(size) bytes, \(_Walk.pointerText(unsafePointer)))"
    }
}

// MARK: - Allocation

extension TallocContext {
    /// A new chunk of `size` bytes under `parent`. Inlinable for its two common cases: a parent in a pool
    /// with room gets a carved chunk with no call at all (W2, W3's pool rows); a parent that no pool or
    /// memory limit concerns gets a malloc'd one through one small call (W1). The rest (top level and
    /// null tracking, memory limits, a full pool, a pool that keeps statistics, a bad size, malloc failing)
    /// goes to `_makeElsewhere`.
    @inlinable @inline(__always)
    static func make(_ parent: TallocContext?, _ size: Int) throws(TallocError) -> _Chunk {
        var mutation = _Mutation(parent)
        defer { mutation.end() }
        let p = chunk(parent)
        var tc: _Chunk? = nil
        if let p, UInt(bitPattern: size) < UInt(_maxSize) {
            let kind = p.pointee.flags & (_Flag.pool | _Flag.poolMem | _Flag.hasLimit | _Flag.underLimit | _Flag.poolStats)
            if kind == 0 {
                tc = _mallocChild(of: p, size: size)
            } else if kind & (_Flag.hasLimit | _Flag.underLimit | _Flag.poolStats) == 0 {
                tc = _Core.carveChild(of: p, size: size, isPool: kind & _Flag.pool != 0)
            }
        }
        if tc == nil { tc = try _makeElsewhere(p, size) }
        mutation.add(TallocContext(chunk: tc!))
        return tc!
    }

    @inlinable @inline(__always)
    static func setLocationName(_ tc: _Chunk, _ file: StaticString, _ line: UInt, newPrefix: Bool) {
        tc.pointee.name = UnsafeRawPointer(file.utf8Start)
        tc.pointee.line = UInt32(truncatingIfNeeded: line)
        tc.pointee.flags |= newPrefix ? (_Flag.nameIsLocation | _Flag.nameHasNewPrefix) : _Flag.nameIsLocation
    }

    /// A new empty context, named `"talloc_new: FILE:LINE"` after the caller.
    ///
    /// The corresponding talloc function is `talloc_new()`.
    /// - Parameters:
    ///   - parent: The new context's parent; `nil` makes a top-level context (a child of the calling
    ///     thread's null context when it has null tracking on).
    ///   - file: The caller's file (talloc's `__location__`), by default.
    ///   - line: The caller's line, by default.
    @inlinable
    public static func new(
        parent: TallocContext? = nil, file: StaticString = #fileID, line: UInt = #line
    ) throws(TallocError) -> TallocContext {
        let tc = try make(parent, 0)
        setLocationName(tc, file, line, newPrefix: true)
        return TallocContext(chunk: tc)
    }

    /// A new empty context with a constant name. The corresponding talloc call is
    /// `talloc_named_const(parent, 0, name)`.
    @inlinable
    public static func new(parent: TallocContext? = nil, name: StaticString) throws(TallocError) -> TallocContext {
        try allocate(parent: parent, byteCount: 0, name: name)
    }

    /// `byteCount` uninitialised bytes named by a constant string (stored, not copied).
    ///
    /// The corresponding talloc function is `talloc_named_const()`.
    @inlinable
    public static func allocate(
        parent: TallocContext?, byteCount: Int, name: StaticString
    ) throws(TallocError) -> TallocContext {
        let tc = try make(parent, byteCount)
        tc.pointee.name = UnsafeRawPointer(name.utf8Start)
        return TallocContext(chunk: tc)
    }

    /// `byteCount` uninitialised bytes named `"FILE:LINE"` after the caller.
    ///
    /// The corresponding talloc macro is `talloc_size()`.
    @inlinable
    public static func allocate(
        parent: TallocContext?, byteCount: Int, file: StaticString = #fileID, line: UInt = #line
    ) throws(TallocError) -> TallocContext {
        let tc = try make(parent, byteCount)
        setLocationName(tc, file, line, newPrefix: false)
        return TallocContext(chunk: tc)
    }

    /// Unnamed bytes (the name reads "UNNAMED"). The corresponding talloc function is `_talloc()`.
    public static func allocateUnnamed(parent: TallocContext?, byteCount: Int) throws(TallocError) -> TallocContext {
        TallocContext(chunk: try make(parent, byteCount))
    }

    /// `byteCount` zeroed bytes named `"FILE:LINE"`. The corresponding talloc macro is `talloc_zero_size()`.
    public static func allocateZeroed(
        parent: TallocContext?, byteCount: Int, file: StaticString = #fileID, line: UInt = #line
    ) throws(TallocError) -> TallocContext {
        let c = try allocate(parent: parent, byteCount: byteCount, file: file, line: line)
        memset(c.unsafePointer, 0, byteCount)
        return c
    }

    /// `byteCount` zeroed bytes with a constant name. The corresponding talloc function is `_talloc_zero()`.
    public static func allocateZeroed(
        parent: TallocContext?, byteCount: Int, name: StaticString
    ) throws(TallocError) -> TallocContext {
        let c = try allocate(parent: parent, byteCount: byteCount, name: name)
        memset(c.unsafePointer, 0, byteCount)
        return c
    }

    /// Room for `count` values of `T`, named after the type (talloc names them by the stringified type).
    ///
    /// The corresponding talloc macros are `talloc()` (count 1), `talloc_array()` and `talloc_zero_array()`.
    /// - Throws: `TallocError.sizeTooLarge` when `count >= MAX_TALLOC_SIZE / MemoryLayout<T>.stride`.
    public static func allocate<T>(
        parent: TallocContext?, of type: T.Type, count: Int = 1, zeroed: Bool = false
    ) throws(TallocError) -> TallocContext {
        let stride = Swift.max(MemoryLayout<T>.stride, 1)
        if count < 0 || count >= _maxSize / stride { throw .sizeTooLarge }
        let tc = try make(parent, stride * count)
        tc.pointee.name = UnsafeRawPointer(_InternedNames.cString(String(describing: type)))
        if zeroed { memset(tc.body, 0, stride * count) }
        return TallocContext(chunk: tc)
    }

    /// A new empty top-level context with a constant name that has no parent even when the calling
    /// thread has null tracking on (where `new(parent: nil, ...)`, as `talloc_new(NULL)`, hangs the new
    /// context under the thread's null context).
    ///
    /// For a tree that must not belong to the calling thread's null context: one handed to another
    /// thread, or kept out of `Talloc.reportNull()` and the leak report (a `LuaRuntime`'s root is one).
    /// talloc has no such function (its null context is process-wide); the closest is
    /// `talloc_named_const(NULL, 0, name)` with null tracking off.
    public static func newDetached(name: StaticString) throws(TallocError) -> TallocContext {
        guard let tc = _Core.allocate(nil, size: 0) else { throw .outOfMemory }
        if let null = tc.pointee.parent {
            // made under the null context: taken out again (and out of a limit the null context may have)
            _Core.detachFromSiblings(tc)
            if tc.pointee.flags & _Flag.underLimit != 0 {
                tc.pointee.flags &= ~_Flag.underLimit
                _Core.limitShrink(null, _Core.chargeOf(tc))
            }
            _Core.linkAsNewest(tc, under: nil)
        }
        tc.pointee.name = UnsafeRawPointer(name.utf8Start)
        return TallocContext(chunk: tc)
    }

    /// `count` values of `T`, each initialised to `value`, named after the type as `allocate(parent:of:)`.
    ///
    /// For a type that is not trivial (a class, or a struct or enum that holds a reference: what
    /// `_isPOD` calls non-POD), a destructor is installed that deinitialises the values when the context
    /// is freed (by itself or with its parent): their `deinit`s run, their references are released. A
    /// trivial type (`Int`, a struct of numbers, ...) gets no destructor and costs what `allocate` costs.
    ///
    ///     let nodes = try TallocContext.allocate(parent: root, repeating: Node(), count: 16)
    ///     nodes.withMemory(as: Node.self) { $0[3].name = "x" }
    ///     try root.free()                        // the 16 nodes are deinitialised
    ///
    /// - warning: The destructor deinitialises `min(count, size / stride)` values: resizing the context
    ///   (`reallocate`, `resize`) leaves added memory uninitialised and shrinking drops values without
    ///   deinitialising them; replacing the destructor (`setDestructor`) leaves them all alive (a leak).
    ///   A trivial type has neither concern.
    /// The corresponding talloc macros are `talloc()`, `talloc_array()` (which leave the memory
    /// uninitialised: C has nothing to deinitialise).
    /// - Throws: `TallocError.sizeTooLarge`, `TallocError.outOfMemory` (also when the destructor's side
    ///   record cannot be allocated: then nothing is left allocated).
    public static func allocate<T>(parent: TallocContext?, repeating value: T, count: Int = 1) throws(TallocError) -> TallocContext {
        let c = try allocate(parent: parent, of: T.self, count: count)
        let values = c.unsafePointer.bindMemory(to: T.self, capacity: count)
        values.initialize(repeating: value, count: count)
        if _isPOD(T.self) { return c }
        c.setDestructor { c in
            let n = Swift.min(count, c.size / Swift.max(MemoryLayout<T>.stride, 1))
            c.unsafePointer.assumingMemoryBound(to: T.self).deinitialize(count: n)
            return .allow
        }
        if !c.hasDestructor {
            values.deinitialize(count: count)
            _ = _Core.free(c.chunk)
            throw .outOfMemory
        }
        return c
    }

    /// Calls `body` with the chunk's memory as values of `T` (`size / stride` of them, as
    /// `arrayLength(of:)`): initialised values for a context from `allocate(parent:repeating:count:)`.
    ///
    /// - warning: Do not escape the buffer from the closure; a context that moves (`reallocate`) has new
    ///   memory.
    /// The corresponding talloc macros are `talloc_get_type()` / `talloc_array_length()` (unchecked).
    public func withMemory<T, R, E: Error>(
        as type: T.Type, _ body: (UnsafeMutableBufferPointer<T>) throws(E) -> R
    ) throws(E) -> R {
        let tc = chunk
        let n = Int(tc.pointee.size) / Swift.max(MemoryLayout<T>.stride, 1)
        return try body(UnsafeMutableBufferPointer(start: tc.body.assumingMemoryBound(to: T.self), count: n))
    }

    /// Bytes named with a copy of `name`, kept in a ".name" child as `talloc_set_name` does.
    ///
    /// The corresponding talloc function is `talloc_named()`.
    public static func named(parent: TallocContext?, byteCount: Int, name: String) throws(TallocError) -> TallocContext {
        let c = TallocContext(chunk: try make(parent, byteCount))
        do { try c.setName(name) } catch {
            _ = _Core.free(c.chunk)
            throw error
        }
        return c
    }

    /// A top-level empty context named with a copy of `name`. The corresponding talloc function is
    /// `talloc_init()`.
    public static func initContext(name: String) throws(TallocError) -> TallocContext {
        var mutation = _Mutation(nil)
        defer { mutation.end() }
        let tc = _Core.allocate(nil, size: 0)
        guard let tc else { throw .outOfMemory }
        let c = TallocContext(chunk: tc)
        mutation.add(c)
        do { try c.setName(name) } catch {
            _ = _Core.free(tc)
            throw error
        }
        return c
    }

    /// A copy of `bytes`, named `"FILE:LINE"`. The corresponding talloc macro is `talloc_memdup()`.
    public static func memdup(
        parent: TallocContext?, _ bytes: UnsafeRawBufferPointer, file: StaticString = #fileID, line: UInt = #line
    ) throws(TallocError) -> TallocContext {
        let c = try allocate(parent: parent, byteCount: bytes.count, file: file, line: line)
        if let base = bytes.baseAddress, bytes.count > 0 { memcpy(c.unsafePointer, base, bytes.count) }
        return c
    }

    /// A copy of `bytes` with a constant name. The corresponding talloc function is `_talloc_memdup()`.
    public static func memdup(
        parent: TallocContext?, _ bytes: UnsafeRawBufferPointer, name: StaticString
    ) throws(TallocError) -> TallocContext {
        let c = try allocate(parent: parent, byteCount: bytes.count, name: name)
        if let base = bytes.baseAddress, bytes.count > 0 { memcpy(c.unsafePointer, base, bytes.count) }
        return c
    }
}

// MARK: - External memory

extension TallocContext {
    /// A context that accounts for memory held outside talloc (for example a Lua heap): its `size` is
    /// what you report with `unsafeAdjustExternalSize`, its body is empty, and memory limits above it
    /// count those bytes (plus its header) as if talloc held them.
    ///
    /// It is never carved from a pool, even under one: it is malloc'd, so that memory limits count its
    /// header and its external bytes.
    package static func newExternal(parent: TallocContext?, name: StaticString) throws(TallocError) -> TallocContext {
        var mutation = _Mutation(parent)
        defer { mutation.end() }
        guard let tc = _Core.allocateOutsidePools(chunk(parent), size: 0) else { throw .outOfMemory }
        tc.pointee.flags |= _Flag.external
        tc.pointee.name = UnsafeRawPointer(name.utf8Start)
        mutation.add(TallocContext(chunk: tc))
        return TallocContext(chunk: tc)
    }

    /// Adds `delta` bytes (negative: removes them) to an external context, checking growth against every
    /// memory limit above it. Returns false, changing nothing, when a limit refuses.
    /// The size is a 32-bit field, as every chunk's: an external context holds at most 4 GiB - 1; growth
    /// past that, or a removal of more than it holds, is refused like a limit's refusal.
    @inlinable @inline(__always)
    package func unsafeAdjustExternalSize(by delta: Int) -> Bool {
        let tc = _Chunk.from(body: unsafePointer)
        // One unsigned compare refuses a negative result and one past 32 bits alike. The size is at least 0,
        // so the sum wraps only for a delta near Int.max, to a negative value: refused as well.
        let newSize = Int(tc.pointee.size) &+ delta
        if _slowPath(UInt(bitPattern: newSize) > UInt(UInt32.max)) { return false }
        if _slowPath(tc.pointee.flags & (_Flag.hasLimit | _Flag.underLimit) != 0) {
            return TallocContext._adjustLimitedExternalSize(tc, by: delta)
        }
        tc.pointee.size = UInt32(truncatingIfNeeded: newSize)
        return true
    }

    @usableFromInline
    static func _adjustLimitedExternalSize(_ tc: _Chunk, by delta: Int) -> Bool {
        let mutation = _Mutation(TallocContext(chunk: tc))
        defer { mutation.end() }
        if delta > 0 && !_Core.limitAllows(tc, delta) { return false }
        _Core.limitAdjust(tc, delta)
        tc.pointee.size = UInt32(truncatingIfNeeded: Int(tc.pointee.size) &+ delta)
        return true
    }
}

// MARK: - Memory

extension TallocContext {
    /// The chunk's bytes (`size` of them).
    ///
    /// - warning: The buffer is valid only while the context is alive and not reallocated. Do not keep it.
    public var unsafeMutableBytes: UnsafeMutableRawBufferPointer {
        let tc = chunk
        let count = tc.pointee.flags & _Flag.external != 0 ? 0 : Int(tc.pointee.size)
        return UnsafeMutableRawBufferPointer(start: tc.body, count: count)
    }

    /// Calls `body` with the chunk's bytes.
    ///
    /// - warning: Do not escape the buffer from the closure.
    public func withUnsafeMutableBytes<R, E: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R
    ) throws(E) -> R {
        try body(unsafeMutableBytes)
    }

    /// Calls `body` with the chunk's bytes, read-only.
    ///
    /// - warning: Do not escape the buffer from the closure.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(unsafeMutableBytes))
    }

    /// The bytes up to the first NUL (or all of them), decoded as UTF-8 (invalid sequences repaired).
    public var stringValue: String {
        let bytes = UnsafeRawBufferPointer(unsafeMutableBytes)
        let n = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: bytes[0..<n], as: UTF8.self)
    }
}

/// Permanent C strings for type names (talloc names typed allocations by the type's spelling), and for
/// the few names TallocCore gives itself. Process-wide, under a lock: race-free from any thread.
enum _InternedNames {
    private static let lock = _Lock()
    nonisolated(unsafe) private static var table: [String: UnsafeMutablePointer<CChar>] = [:]  // guarded: lock

    /// The interned copy of `s`; for a string that cannot be copied (no memory), a constant "UNNAMED"
    /// stand-in rather than a trap.
    static func cString(_ s: String) -> UnsafePointer<CChar> {
        lock.withLock {
            if let p = table[s] { return UnsafePointer(p) }
            guard let p = strdup(s) else { return _unnamed }
            table[s] = p
            return UnsafePointer(p)
        }
    }

    private static var _unnamed: UnsafePointer<CChar> {
        UnsafeRawPointer(("UNNAMED" as StaticString).utf8Start).assumingMemoryBound(to: CChar.self)
    }
}
