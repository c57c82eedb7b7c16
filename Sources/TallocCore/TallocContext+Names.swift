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
    /// The corresponding talloc function is `talloc_get_name()`.
    public var name: String { _Walk.name(chunk) }

    /// Names the context with a copy of `name`, kept in a new child chunk named ".name" (which counts in
    /// `totalBlocks`, as in talloc). The previous ".name" child is not freed.
    ///
    /// The corresponding talloc function is `talloc_set_name()`.
    @discardableResult
    public func setName(_ name: String) throws(TallocError) -> TallocContext {
        let tc = chunk
        let bytes = Array(name.utf8)
        if bytes.count + 1 >= _maxSize { throw .sizeTooLarge }
        guard let child = _Core.allocate(tc, size: bytes.count + 1) else {
            tc.pointee.name = nil
            tc.pointee.flags &= ~(_Flag.nameIsLocation | _Flag.nameHasNewPrefix)
            throw .outOfMemory
        }
        bytes.withUnsafeBytes { if $0.count > 0 { memcpy(child.body, $0.baseAddress!, $0.count) } }
        child.body.storeBytes(of: 0, toByteOffset: bytes.count, as: UInt8.self)
        child.pointee.name = UnsafeRawPointer(_InternedNames.cString(".name"))
        tc.pointee.name = UnsafeRawPointer(child.body)
        tc.pointee.flags &= ~(_Flag.nameIsLocation | _Flag.nameHasNewPrefix)
        return TallocContext(chunk: child)
    }

    /// Names the context with a constant string (stored, not copied).
    ///
    /// The corresponding talloc function is `talloc_set_name_const()`.
    public func setNameConst(_ name: StaticString) {
        let tc = chunk
        tc.pointee.name = UnsafeRawPointer(name.utf8Start)
        tc.pointee.flags &= ~(_Flag.nameIsLocation | _Flag.nameHasNewPrefix)
    }

    /// Names the context with a NUL-terminated string that you keep alive as long as the context (or
    /// `nil`: "UNNAMED"). For bindings that intern their names.
    ///
    /// The corresponding talloc function is `talloc_set_name_const()`.
    public func unsafeSetNameConst(_ name: UnsafePointer<CChar>?) {
        let tc = chunk
        tc.pointee.name = name.map { UnsafeRawPointer($0) }
        tc.pointee.flags &= ~(_Flag.nameIsLocation | _Flag.nameHasNewPrefix)
    }

    /// Names the context with a copy of `bytes` (up to a NUL) that the chunk owns and frees with itself —
    /// talloc_set_name_const semantics (no ".name" child, nothing counted), without keeping the caller's
    /// string alive. Returns false when memory runs out (the name is then unchanged).
    @discardableResult
    public func setNameCopy(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let tc = chunk
        let n = bytes.firstIndex(of: 0) ?? bytes.count
        guard let e = tc.makeExtra(), let copy = malloc(n + 1)?.assumingMemoryBound(to: CChar.self) else { return false }
        if n > 0 { memcpy(copy, bytes.baseAddress!, n) }
        copy[n] = 0
        let previous = e.pointee.ownedName
        e.pointee.ownedName = copy
        tc.pointee.name = UnsafeRawPointer(copy)
        tc.pointee.flags &= ~(_Flag.nameIsLocation | _Flag.nameHasNewPrefix)
        if let previous { Glibc.free(previous) }
        return true
    }

    /// Names the context "FILE:LINE" (or "talloc_new: FILE:LINE"), formatted only when read. `file` must
    /// outlive the context. For bindings whose callers' positions name contexts, as talloc's `__location__`.
    public func unsafeSetNameLocation(file: UnsafePointer<CChar>, line: Int, talloc_new: Bool) {
        let tc = chunk
        tc.pointee.name = UnsafeRawPointer(file)
        tc.pointee.line = UInt32(truncatingIfNeeded: line)
        tc.pointee.flags = (tc.pointee.flags & ~_Flag.nameHasNewPrefix) | _Flag.nameIsLocation
            | (talloc_new ? _Flag.nameHasNewPrefix : 0)
    }

    /// The raw parts of the name, without formatting: a C string (or the file of a location), the
    /// location's line, and whether it reads "talloc_new: FILE:LINE". For bindings that copy names cheaply.
    public var unsafeNameParts: (string: UnsafePointer<CChar>?, line: Int, isLocation: Bool, talloc_new: Bool) {
        let tc = chunk
        let f = tc.pointee.flags
        if f & _Flag.reference != 0 { return (_InternedNames.cString(".reference"), 0, false, false) }
        return (tc.pointee.name?.assumingMemoryBound(to: CChar.self), Int(tc.pointee.line),
                f & _Flag.nameIsLocation != 0, f & _Flag.nameHasNewPrefix != 0)
    }

    /// Whether the context's name is the chunk's own bytes (strings are named by their contents).
    public var isNamedByContents: Bool {
        let tc = chunk
        return tc.pointee.flags & _Flag.nameIsLocation == 0 && tc.pointee.name == UnsafeRawPointer(tc.body)
    }

    /// Whether the name equals `name`. The corresponding talloc function is `talloc_check_name()`.
    public func checkName(_ name: String) -> Bool { _Walk.nameEquals(chunk, name) }

    /// Names the context after `T`. The corresponding talloc macro is `talloc_set_type()`.
    public func setType<T>(_ type: T.Type) {
        chunk.pointee.name = UnsafeRawPointer(_InternedNames.cString(String(describing: type)))
        chunk.pointee.flags &= ~(_Flag.nameIsLocation | _Flag.nameHasNewPrefix)
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
