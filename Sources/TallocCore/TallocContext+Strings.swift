// luatalloc — TallocCore
// SPDX-License-Identifier: MIT

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Realloc

extension TallocContext {
    /// How `reallocate` renames a chunk on the paths that move it (talloc renames only there).
    public enum ReallocName {
        /// A constant name (talloc_realloc's "type").
        case constant(StaticString)
        /// "FILE:LINE" (talloc_realloc_size's location).
        case location(file: StaticString, line: UInt)
        /// No name: it reads "UNNAMED" (talloc_realloc_fn).
        case none
        /// Keep the name (not a talloc path; the string appenders rename to the contents afterwards).
        case keep

        func apply(_ tc: _Chunk) {
            switch self {
            case .constant(let s):
                _Core.rename(tc, to: UnsafeRawPointer(s.utf8Start))
            case .location(let file, let line):
                tc.pointee.flags &= ~_Flag.nameHasNewPrefix
                TallocContext.setLocationName(tc, file, line, newPrefix: false)
                _Core.dropOwnedName(tc)
            case .none:
                _Core.rename(tc, to: nil)
            case .keep:
                break
            }
        }
    }

    /// talloc_realloc: resizes `context` (which may move), or allocates under `parent` when `context` is
    /// nil, or — with `byteCount == 0` — removes `parent` from the context's parents (`unlink`) and
    /// returns nil.
    ///
    /// Inside a pool the paths are talloc's (§2.6): shrink in place; move to the pool's start when it is
    /// the only chunk; grow in place when the aligned size is unchanged or it is the last chunk and there
    /// is room; else a new chunk from the same pool; else the heap. A heap chunk shrinks in place when it
    /// gains under 1 KiB (and no memory limit governs it), else `realloc()`. Only the moving paths rename.
    /// The corresponding talloc functions are `talloc_realloc()`, `talloc_realloc_size()`,
    /// `talloc_realloc_fn()`.
    /// - Throws: `referenced`, `isPool`, `sizeTooLarge`, `outOfMemory`, `beingFreed`.
    @discardableResult
    public static func reallocate(
        _ context: TallocContext?, parent: TallocContext?, byteCount: Int, name: ReallocName
    ) throws(TallocError) -> TallocContext? {
        var mutation = _Mutation(context, parent)
        defer { mutation.end() }
        if byteCount == 0 {
            if let context { _ = _Core.unlink(context.chunk, from: TallocContext.chunk(parent)) }
            return nil
        }
        if byteCount < 0 || byteCount >= _maxSize { throw .sizeTooLarge }
        guard let context else {
            let tc = try make(parent, byteCount)
            name.apply(tc)
            return TallocContext(chunk: tc)
        }
        let r = _Core.reallocate(context.chunk, size: byteCount, grownInPlace: false)
        guard let tc = r.chunk else { throw r.failure.error }
        if r.moved { name.apply(tc) }
        mutation.add(TallocContext(chunk: tc))
        return TallocContext(chunk: tc)
    }

    /// Resizes the context in place or moves it (then `self` is updated), naming it "FILE:LINE" when it
    /// moves, as talloc_realloc_size. `byteCount` must be positive; use `free()` to free.
    @inlinable @inline(__always)
    public mutating func reallocate(
        byteCount: Int, file: StaticString = #fileID, line: UInt = #line
    ) throws(TallocError) {
        let tc = chunk
        var mutation = _Mutation(self)
        defer { mutation.end() }
        // Inlined: a pool member with no side record growing where it is makes no call (W5's pool rows).
        var tried = false
        if tc.pointee.flags & (_Flag.poolMem | _Flag.pool | _Flag.external | _Flag.loop | _Flag.inDestructor | _Flag.poolStats)
            == _Flag.poolMem,
           tc.pointee.extra == nil, byteCount > Int(tc.pointee.size), byteCount < _maxSize {
            if let renamed = _Core.growInPlace(tc, size: byteCount) {
                if renamed {
                    tc.pointee.flags &= ~_Flag.nameHasNewPrefix
                    TallocContext.setLocationName(tc, file, line, newPrefix: false)
                }
                return
            }
            tried = true
        }
        self = TallocContext(chunk: try _reallocate(tc, byteCount: byteCount, grownInPlace: tried, file: file, line: line))
        mutation.add(self)
    }

    /// Resizes with talloc_realloc's rules, keeping the name on every path. Newly added bytes are zeroed
    /// when `zeroFill` is set (talloc_realloc_zero).
    public mutating func resize(byteCount: Int, zeroFill: Bool = false) throws(TallocError) {
        if byteCount <= 0 { throw .sizeTooLarge }
        let old = size
        self = try TallocContext.reallocate(self, parent: nil, byteCount: byteCount, name: .keep)!
        if zeroFill && byteCount > old { memset(unsafePointer + old, 0, byteCount - old) }
    }
}

// MARK: - Strings

extension TallocContext {
    @inline(__always)
    static func strlendup(_ parent: TallocContext?, _ bytes: UnsafeRawBufferPointer) throws(TallocError) -> TallocContext {
        var mutation = _Mutation(parent)
        defer { mutation.end() }
        let n = bytes.count
        if n >= _maxSize - 1 { throw .sizeTooLarge }
        guard let tc = _Core.allocate(chunk(parent), size: n + 1) else { throw .outOfMemory }
        let body = tc.body
        if let src = bytes.baseAddress { memcpy(body, src, n) }
        body.storeBytes(of: 0, toByteOffset: n, as: UInt8.self)
        tc.pointee.name = UnsafeRawPointer(body)
        mutation.add(TallocContext(chunk: tc))
        return TallocContext(chunk: tc)
    }

    /// strlen over a buffer: the bytes before the first NUL.
    @inline(__always)
    static func cLength(_ b: UnsafeRawBufferPointer) -> Int {
        guard let base = b.baseAddress, b.count > 0 else { return 0 }
        if let nul = memchr(base, 0, b.count) { return UnsafeRawPointer(nul) - base }
        return b.count
    }

    /// A NUL-terminated copy of `string`, named by its contents.
    ///
    /// The corresponding talloc function is `talloc_strdup()`.
    public static func strdup(parent: TallocContext?, _ string: String) throws(TallocError) -> TallocContext {
        var s = string
        var result: TallocContext? = nil
        var failure: TallocError = .outOfMemory
        s.withUTF8 { b in
            let raw = UnsafeRawBufferPointer(b)
            do throws(TallocError) { result = try strlendup(parent, UnsafeRawBufferPointer(rebasing: raw[0..<cLength(raw)])) }
            catch { failure = error }
        }
        guard let result else { throw failure }
        return result
    }

    /// A copy of `bytes` up to the first NUL (strlen), plus a NUL, named by its contents.
    public static func strdup(parent: TallocContext?, bytes: UnsafeRawBufferPointer) throws(TallocError) -> TallocContext {
        try strlendup(parent, UnsafeRawBufferPointer(rebasing: bytes[0..<cLength(bytes)]))
    }

    /// A copy of at most `n` bytes of `string` (strnlen), plus a NUL, named by its contents.
    ///
    /// The corresponding talloc function is `talloc_strndup()`.
    public static func strndup(parent: TallocContext?, _ string: String, _ n: Int) throws(TallocError) -> TallocContext {
        var s = string
        return try s.withUTF8 { b -> Result<TallocContext, TallocError> in
            let limit = Swift.min(Swift.max(n, 0), b.count)
            let len = b[0..<limit].firstIndex(of: 0) ?? limit
            return Result { () throws(TallocError) in
                try strlendup(parent, UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(b)[0..<len]))
            }
        }.get()
    }

    /// printf-style formatting into a new string named by its contents.
    ///
    /// The corresponding talloc function is `talloc_asprintf()`.
    public static func asprintf(parent: TallocContext?, _ format: String, _ arguments: CVarArg...) throws(TallocError) -> TallocContext {
        let text = vformat(format, arguments)
        return try strdup(parent, bytes: text)
    }

    static func strdup(_ parent: TallocContext?, bytes: [UInt8]) throws(TallocError) -> TallocContext {
        try bytes.withUnsafeBytes { b in Result { () throws(TallocError) in try strlendup(parent, b) } }.get()
    }

    /// vsnprintf into bytes. A Swift `String` that arrives as a `CVarArg` (Foundation makes `String`
    /// `CVarArg`) is passed as a C string (for `%s`).
    static func vformat(_ format: String, _ arguments: [CVarArg]) -> [UInt8] {
        var owned: [UnsafeMutablePointer<CChar>] = []
        defer { owned.forEach { Glibc.free($0) } }
        let args: [CVarArg] = arguments.map { arg in
            // (through Any: without Foundation the compiler knows no String is a CVarArg)
            let value = arg as Any
            if let s = (value as? String) ?? (value as? Substring).map(String.init), let p = Glibc.strdup(s) {
                owned.append(p)
                return UnsafePointer(p)
            }
            return arg
        }
        var buf = [CChar](repeating: 0, count: 1024)
        let n = withVaList(args) { va in vsnprintf(&buf, buf.count, format, va) }
        if n < 0 { return [] }
        if Int(n) >= buf.count {
            buf = [CChar](repeating: 0, count: Int(n) + 1)
            _ = withVaList(args) { va in vsnprintf(&buf, buf.count, format, va) }
        }
        return buf[0..<Int(n)].map { UInt8(bitPattern: $0) }
    }

    /// Appends at `offset` and renames the string to its new contents (__talloc_strlendup_append).
    mutating func append(at offset: Int, _ bytes: UnsafeRawBufferPointer) throws(TallocError) {
        var mutation = _Mutation(self)
        defer { mutation.end() }
        let (sum, overflow) = offset.addingReportingOverflow(bytes.count)
        if overflow || sum >= _maxSize - 1 { throw .sizeTooLarge }
        let total = sum + 1
        self = try TallocContext.reallocate(self, parent: nil, byteCount: total, name: .keep)!
        let tc = chunk
        if bytes.count > 0 { memcpy(tc.body + offset, bytes.baseAddress!, bytes.count) }
        tc.body.storeBytes(of: 0, toByteOffset: offset + bytes.count, as: UInt8.self)
        _Core.rename(tc, to: UnsafeRawPointer(tc.body))
        mutation.add(self)
    }

    var stringLength: Int { strnlen(unsafePointer.assumingMemoryBound(to: CChar.self), size) }

    var bufferEnd: Int { Swift.max(size - 1, 0) }

    /// Appends `string` after the string's end (strlen). The context may move; `self` is updated.
    ///
    /// The corresponding talloc function is `talloc_strdup_append()`.
    public mutating func strdupAppend(_ string: String) throws(TallocError) {
        try appendString(string, at: stringLength, limit: Int.max)
    }

    /// Appends `string` after the buffer's end (size - 1), not the string's.
    ///
    /// The corresponding talloc function is `talloc_strdup_append_buffer()`.
    public mutating func strdupAppendBuffer(_ string: String) throws(TallocError) {
        try appendString(string, at: bufferEnd, limit: Int.max)
    }

    /// Appends at most `n` bytes of `string`. The corresponding talloc function is `talloc_strndup_append()`.
    public mutating func strndupAppend(_ string: String, _ n: Int) throws(TallocError) {
        try appendString(string, at: stringLength, limit: n)
    }

    /// The buffer variant of `strndupAppend`. The corresponding talloc function is
    /// `talloc_strndup_append_buffer()`.
    public mutating func strndupAppendBuffer(_ string: String, _ n: Int) throws(TallocError) {
        try appendString(string, at: bufferEnd, limit: n)
    }

    mutating func appendString(_ string: String, at offset: Int, limit: Int) throws(TallocError) {
        var s = string
        let bytes: [UInt8] = s.withUTF8 { b in
            let lim = Swift.min(Swift.max(limit, 0), b.count)
            let n = b[0..<lim].firstIndex(of: 0) ?? lim
            return Array(b[0..<n])
        }
        var me = self
        try bytes.withUnsafeBytes { b in Result { () throws(TallocError) in try me.append(at: offset, b) } }.get()
        self = me
    }

    /// Appends printf-style output after the string's end; empty output leaves the string unchanged.
    ///
    /// The corresponding talloc function is `talloc_asprintf_append()`.
    public mutating func asprintfAppend(_ format: String, _ arguments: CVarArg...) throws(TallocError) {
        let text = TallocContext.vformat(format, arguments)
        try appendFormatted(text, atBufferEnd: false)
    }

    /// Appends printf-style output after the buffer's end (size - 1).
    ///
    /// The corresponding talloc function is `talloc_asprintf_append_buffer()`.
    public mutating func asprintfAppendBuffer(_ format: String, _ arguments: CVarArg...) throws(TallocError) {
        let text = TallocContext.vformat(format, arguments)
        try appendFormatted(text, atBufferEnd: true)
    }

    /// Appends formatted text after the string's end (strlen) or the buffer's end (size - 1); empty text
    /// leaves the string unchanged.
    mutating func appendFormatted(_ text: [UInt8], atBufferEnd: Bool) throws(TallocError) {
        if text.isEmpty { return }
        let at = atBufferEnd ? bufferEnd : stringLength
        var me = self
        try text.withUnsafeBytes { b in Result { () throws(TallocError) in try me.append(at: at, b) } }.get()
        self = me
    }

    /// Appends raw bytes after the string's end (strlen) and renames to the contents. For bindings whose
    /// strings are already formatted (a NUL in `bytes` ends the appended text, as with C strings).
    public mutating func appendString(bytes: UnsafeRawBufferPointer, atBufferEnd: Bool) throws(TallocError) {
        let n = bytes.firstIndex(of: 0) ?? bytes.count
        try append(at: atBufferEnd ? bufferEnd : stringLength, UnsafeRawBufferPointer(rebasing: bytes[0..<n]))
    }
}

// MARK: - Formatting Swift values

/// A value `asprintf` and its appending variants format: the C scalar types (`Int`, `Int32`, `Double`,
/// pointers, ...) as C varargs, and Swift strings as C strings for `%s` (without Foundation, `String` is
/// not `CVarArg` on Linux; with it, its `CVarArg` form is an object, not a C string).
///
///     let s = try TallocContext.asprintf(parent: ctx, "%s has %d children", name, count)
public protocol TallocFormatArgument {
    /// Calls `body` with the value as C's varargs take it (valid during the call only).
    func withCVarArg<R>(_ body: (any CVarArg) -> R) -> R
}

extension TallocFormatArgument where Self: CVarArg {
    public func withCVarArg<R>(_ body: (any CVarArg) -> R) -> R { body(self) }
}

extension String: TallocFormatArgument {
    /// A C string of the text (up to its first NUL, as C reads it).
    public func withCVarArg<R>(_ body: (any CVarArg) -> R) -> R { withCString { body($0) } }
}

extension Substring: TallocFormatArgument {
    public func withCVarArg<R>(_ body: (any CVarArg) -> R) -> R { String(self).withCVarArg(body) }
}

extension Int: TallocFormatArgument {}
extension Int8: TallocFormatArgument {}
extension Int16: TallocFormatArgument {}
extension Int32: TallocFormatArgument {}
extension Int64: TallocFormatArgument {}
extension UInt: TallocFormatArgument {}
extension UInt8: TallocFormatArgument {}
extension UInt16: TallocFormatArgument {}
extension UInt32: TallocFormatArgument {}
extension UInt64: TallocFormatArgument {}
extension Double: TallocFormatArgument {}
extension Float: TallocFormatArgument {}
extension OpaquePointer: TallocFormatArgument {}
extension UnsafePointer: TallocFormatArgument {}
extension UnsafeMutablePointer: TallocFormatArgument {}

extension TallocContext {
    /// vsnprintf of Swift values: strings as C strings.
    static func vformat(_ format: String, _ arguments: [any TallocFormatArgument]) -> [UInt8] {
        func collect(_ i: Int, _ done: [CVarArg]) -> [UInt8] {
            if i == arguments.count { return vformat(format, done) }
            return arguments[i].withCVarArg { collect(i + 1, done + [$0]) }
        }
        return collect(0, [])
    }

    /// printf-style formatting of Swift values (`String`s for `%s`) into a new string named by its
    /// contents.
    ///
    /// The corresponding talloc function is `talloc_asprintf()`.
    @_disfavoredOverload
    public static func asprintf(
        parent: TallocContext?, _ format: String, _ arguments: any TallocFormatArgument...
    ) throws(TallocError) -> TallocContext {
        try strdup(parent, bytes: vformat(format, arguments))
    }

    /// Appends printf-style output of Swift values after the string's end.
    ///
    /// The corresponding talloc function is `talloc_asprintf_append()`.
    @_disfavoredOverload
    public mutating func asprintfAppend(_ format: String, _ arguments: any TallocFormatArgument...) throws(TallocError) {
        let text = TallocContext.vformat(format, arguments)
        try appendFormatted(text, atBufferEnd: false)
    }

    /// Appends printf-style output of Swift values after the buffer's end (size - 1).
    ///
    /// The corresponding talloc function is `talloc_asprintf_append_buffer()`.
    @_disfavoredOverload
    public mutating func asprintfAppendBuffer(_ format: String, _ arguments: any TallocFormatArgument...) throws(TallocError) {
        let text = TallocContext.vformat(format, arguments)
        try appendFormatted(text, atBufferEnd: true)
    }
}

/// `TallocContext.reallocate(byteCount:file:line:)` off its fast path: every path of talloc_realloc_size,
/// renaming on those that move. A free function, not a static one: a static's unused metatype argument
/// costs a thunk per call.
@inline(never) @usableFromInline
func _reallocate(
    _ tc: _Chunk, byteCount: Int, grownInPlace: Bool, file: StaticString, line: UInt
) throws(TallocError) -> _Chunk {
    if byteCount <= 0 || byteCount >= _maxSize { throw .sizeTooLarge }
    let r = _Core.reallocate(tc, size: byteCount, grownInPlace: grownInPlace)
    guard let moved = r.chunk else { throw r.failure.error }
    if r.moved {
        moved.pointee.flags &= ~_Flag.nameHasNewPrefix
        TallocContext.setLocationName(moved, file, line, newPrefix: false)
        _Core.dropOwnedName(moved)
    }
    return moved
}
