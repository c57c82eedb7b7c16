// luatalloc — TallocCore
// SPDX-License-Identifier: MIT

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension TallocContext {
    /// The name: a type, a location ("FILE:LINE", "talloc_new: FILE:LINE"), a string's own contents,
    /// ".reference" for a reference handle, or "UNNAMED".
    ///
    /// The corresponding talloc function is `talloc_get_name()`. A name that is not valid UTF-8 reads
    /// with its invalid sequences replaced (U+FFFD); `nameBytes` has it exactly.
    public var name: String { _Walk.name(chunk) }

    /// The name's bytes, exactly what `talloc_get_name()` would return (without its NUL): a string's own
    /// bytes (valid UTF-8 or not), a formatted location ("FILE:LINE", "talloc_new: FILE:LINE"),
    /// ".reference" for a reference handle, or "UNNAMED".
    public var nameBytes: [UInt8] { _Walk.nameBytes(chunk) }

    /// Names the context with a copy of `name`, kept in a new child chunk named ".name" (which counts in
    /// `totalBlocks`, as in talloc). The previous ".name" child is not freed.
    ///
    /// The corresponding talloc function is `talloc_set_name()`.
    @discardableResult
    public func setName(_ name: String) throws(TallocError) -> TallocContext {
        var s = name
        return try s.withUTF8 { b in
            Result { () throws(TallocError) in try setName(bytes: UnsafeRawBufferPointer(b)) }
        }.get()
    }

    /// Names the context with a copy of `bytes` up to their first NUL (any bytes, UTF-8 or not), kept in
    /// a new child chunk named ".name", as `talloc_set_name("%s", bytes)` does.
    ///
    /// On failure the name reads "UNNAMED", as talloc leaves it.
    /// The corresponding talloc function is `talloc_set_name()`.
    /// - Throws: `TallocError.sizeTooLarge` (a name of 256 MiB or more), `TallocError.outOfMemory`.
    @discardableResult
    public func setName(bytes: UnsafeRawBufferPointer) throws(TallocError) -> TallocContext {
        let tc = chunk
        let mutation = _Mutation(self)
        defer { mutation.end() }
        let name = _Walk.cStringPrefix(bytes)
        let n = name.count
        if n >= _maxSize - 1 { throw .sizeTooLarge }
        guard let child = _Core.allocate(tc, size: n + 1) else {
            _Core.rename(tc, to: nil)
            throw .outOfMemory
        }
        if n > 0 { memcpy(child.body, name.baseAddress!, n) }
        child.body.storeBytes(of: 0, toByteOffset: n, as: UInt8.self)
        child.pointee.name = UnsafeRawPointer(_InternedNames.cString(".name"))
        _Core.rename(tc, to: UnsafeRawPointer(child.body))
        return TallocContext(chunk: child)
    }

    /// Names the context with a constant string (stored, not copied).
    ///
    /// The corresponding talloc function is `talloc_set_name_const()`.
    public func setNameConst(_ name: StaticString) {
        let mutation = _Mutation(self)
        defer { mutation.end() }
        _Core.rename(chunk, to: UnsafeRawPointer(name.utf8Start))
    }

    /// Names the context with a NUL-terminated string that you keep alive as long as the context (or
    /// `nil`: "UNNAMED"). For bindings that intern their names.
    ///
    /// The corresponding talloc function is `talloc_set_name_const()`.
    package func unsafeSetNameConst(_ name: UnsafePointer<CChar>?) {
        let mutation = _Mutation(self)
        defer { mutation.end() }
        _Core.rename(chunk, to: name.map { UnsafeRawPointer($0) })
    }

    /// Names the context with a copy of `bytes` (up to a NUL; any bytes, UTF-8 or not) that the chunk owns
    /// and frees with itself — talloc_set_name_const semantics (no ".name" child, nothing counted), without
    /// keeping the caller's string alive. The copy is malloc'd (`ownedNameByteCount` bytes, and the side
    /// record if the chunk had none) and freed when the chunk is freed or given any other name. Returns
    /// false when memory runs out (the name is then unchanged).
    @discardableResult
    public func setNameCopy(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let tc = chunk
        let mutation = _Mutation(self)
        defer { mutation.end() }
        let name = _Walk.cStringPrefix(bytes)
        let n = name.count
        guard n < Int.max, let e = tc.makeExtra(), let copy = malloc(n + 1)?.assumingMemoryBound(to: CChar.self)
        else { return false }
        if n > 0 { memcpy(copy, name.baseAddress!, n) }
        copy[n] = 0
        let previous = e.pointee.ownedName
        e.pointee.ownedName = copy
        tc.pointee.name = UnsafeRawPointer(copy)
        tc.pointee.flags &= ~(_Flag.nameIsLocation | _Flag.nameHasNewPrefix)
        if let previous { Glibc.free(previous) }
        return true
    }

    /// The bytes malloc'd for the name copy the chunk owns (`setNameCopy`): its length plus the NUL; 0 when
    /// the name is not such a copy. For bindings that account for the memory they make TallocCore take.
    package var ownedNameByteCount: Int {
        let tc = chunk
        guard let copy = tc.pointee.extra?.pointee.ownedName else { return 0 }
        return strlen(copy) + 1
    }

    /// Names the context "FILE:LINE" (or "talloc_new: FILE:LINE"), formatted only when read. `file` must
    /// outlive the context. For bindings whose callers' positions name contexts, as talloc's `__location__`.
    package func unsafeSetNameLocation(file: UnsafePointer<CChar>, line: Int, talloc_new: Bool) {
        let tc = chunk
        let mutation = _Mutation(self)
        defer { mutation.end() }
        tc.pointee.name = UnsafeRawPointer(file)
        tc.pointee.line = UInt32(truncatingIfNeeded: line)
        tc.pointee.flags = (tc.pointee.flags & ~_Flag.nameHasNewPrefix) | _Flag.nameIsLocation
            | (talloc_new ? _Flag.nameHasNewPrefix : 0)
        _Core.dropOwnedName(tc)
    }

    /// The raw parts of the name, without formatting: a C string (or the file of a location), the
    /// location's line, and whether it reads "talloc_new: FILE:LINE". For bindings that copy names cheaply.
    ///
    /// - warning: The string is valid only until the context is renamed or freed (a `setNameCopy` copy
    ///   is freed as soon as the chunk gets another name). Copy it; do not keep it.
    package var unsafeNameParts: (string: UnsafePointer<CChar>?, line: Int, isLocation: Bool, talloc_new: Bool) {
        let tc = chunk
        let f = tc.pointee.flags
        if f & _Flag.reference != 0 { return (_InternedNames.cString(".reference"), 0, false, false) }
        return (tc.pointee.name?.assumingMemoryBound(to: CChar.self), Int(tc.pointee.line),
                f & _Flag.nameIsLocation != 0, f & _Flag.nameHasNewPrefix != 0)
    }

    /// Whether the context's name is the chunk's own bytes (strings are named by their contents).
    package var isNamedByContents: Bool {
        let tc = chunk
        return tc.pointee.flags & _Flag.nameIsLocation == 0 && tc.pointee.name == UnsafeRawPointer(tc.body)
    }

    /// Whether the name equals `name` (its UTF-8 bytes, up to a NUL). The corresponding talloc function
    /// is `talloc_check_name()`.
    public func checkName(_ name: String) -> Bool { _Walk.nameEquals(chunk, name) }

    /// Whether the name's bytes equal `bytes` up to their first NUL (talloc compares C strings), without
    /// allocating: a location name is compared piece by piece ("talloc_new: ", file, ":", line).
    /// The corresponding talloc function is `talloc_check_name()`.
    public func checkName(bytes: UnsafeRawBufferPointer) -> Bool { _Walk.nameEquals(chunk, bytes: bytes) }

    /// Names the context after `T`. The corresponding talloc macro is `talloc_set_type()`.
    public func setType<T>(_ type: T.Type) {
        let mutation = _Mutation(self)
        defer { mutation.end() }
        _Core.rename(chunk, to: UnsafeRawPointer(_InternedNames.cString(String(describing: type))))
    }

    /// Whether the context is named after `T`. The corresponding talloc macro is `talloc_get_type()`.
    public func isType<T>(_ type: T.Type) -> Bool { checkName(String(describing: type)) }

    /// The context itself when it is named `expected`; otherwise talloc's abort,
    /// "FILE:LINE: Type mismatch: name[NAME] expected[TYPE]".
    ///
    /// The corresponding talloc macro is `talloc_get_type_abort()`; `expectName` is its throwing twin.
    @discardableResult
    public func getTypeAbort(_ expected: String, file: StaticString = #fileID, line: UInt = #line) -> TallocContext {
        if checkName(expected) { return self }
        _Core.abort("\(file):\(line): Type mismatch: name[\(name)] expected[\(expected)]")
    }

    /// The throwing twin of `getTypeAbort`.
    public func expectName(_ expected: String) throws(TallocError) {
        if !checkName(expected) { throw .typeMismatch(name: name, expected: expected) }
    }
}

// MARK: - Names made at run time

extension TallocContext {
    /// A new empty context named with a copy of `name`: a name made at run time, `"worker \(i)"`.
    ///
    /// As `talloc_named_const()` the name is the chunk's own: no ".name" child is made (talloc makes one
    /// only for `talloc_named()`/`talloc_set_name()`, here `named(parent:byteCount:name:)` and
    /// `setName(_:)`, which count the copy in the tree). The copy is malloc'd beside the chunk and freed
    /// with it (`setNameCopy`); like a constant name, it is not counted in sizes, totals or memory limits.
    /// A string literal picks the `StaticString` overload, which stores the name without copying; a
    /// `String`, a `Substring` or an interpolation (`"worker \(i)"`) picks this one.
    ///
    /// - Throws: `TallocError.outOfMemory`.
    @_disfavoredOverload
    public static func new(parent: TallocContext? = nil, name: some StringProtocol) throws(TallocError) -> TallocContext {
        try allocate(parent: parent, byteCount: 0, name: name)
    }

    /// `byteCount` uninitialised bytes named with a copy of `name` (see `new(parent:name:)` for the copy).
    ///
    /// The corresponding talloc function is `talloc_named_const()`.
    @_disfavoredOverload
    public static func allocate(
        parent: TallocContext?, byteCount: Int, name: some StringProtocol
    ) throws(TallocError) -> TallocContext {
        let c = TallocContext(chunk: try make(parent, byteCount))
        var name = String(name)
        let named = name.withUTF8 { c.setNameCopy(UnsafeRawBufferPointer($0)) }
        if !named {
            _ = _Core.free(c.chunk)
            throw .outOfMemory
        }
        return c
    }

    /// A pool of `capacity` bytes with a constant name (a pool is "UNNAMED" otherwise, as talloc's).
    ///
    /// The corresponding talloc calls are `talloc_pool()` then `talloc_set_name_const()`.
    public static func pool(parent: TallocContext?, capacity: Int, name: StaticString) throws(TallocError) -> TallocContext {
        let p = try pool(parent: parent, capacity: capacity)
        p.setNameConst(name)
        return p
    }

    /// A pool of `capacity` bytes named with a copy of `name` (no ".name" child: the copy is the chunk's,
    /// as for `new(parent:name:)`, so the pool's bump space stays whole for its members).
    ///
    /// The corresponding talloc calls are `talloc_pool()` then `talloc_set_name_const()`.
    @_disfavoredOverload
    public static func pool(
        parent: TallocContext?, capacity: Int, name: some StringProtocol
    ) throws(TallocError) -> TallocContext {
        let p = try pool(parent: parent, capacity: capacity)
        var name = String(name)
        let named = name.withUTF8 { p.setNameCopy(UnsafeRawBufferPointer($0)) }
        if !named {
            _ = _Core.free(p.chunk)
            throw .outOfMemory
        }
        return p
    }
}
