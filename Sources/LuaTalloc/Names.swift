// luatalloc — the `talloc` Lua module
// SPDX-License-Identifier: MIT
//
// Names are bytes in Lua: a name that is not valid UTF-8 comes back exactly and is found by
// check_name and find_parent_byname. These read TallocCore's raw name parts, never a decoded String.

import CLua
import CLuaShims
import Glibc
import TallocCore

enum Names {
    /// The bytes talloc_get_name would return: the string, a formatted location ("FILE:LINE",
    /// "talloc_new: FILE:LINE"), ".reference" for reference handles, or "UNNAMED".
    static func bytes(_ c: TallocContext) -> [UInt8] {
        let parts = c.unsafeNameParts
        guard let s = parts.string else { return Array("UNNAMED".utf8) }
        var out: [UInt8] = parts.isLocation && parts.talloc_new ? Array("talloc_new: ".utf8) : []
        out += UnsafeRawBufferPointer(start: s, count: strlen(s))
        if parts.isLocation { out += Array(":\(parts.line)".utf8) }
        return out
    }

    /// Whether the name is exactly `name` (compared piecewise for locations; no allocation).
    static func equals(_ c: TallocContext, _ name: UnsafeRawBufferPointer) -> Bool {
        let parts = c.unsafeNameParts
        guard let s = parts.string else { return name.elementsEqual("UNNAMED".utf8) }
        let n = strlen(s)
        let text = UnsafeRawBufferPointer(start: s, count: n)
        if !parts.isLocation { return name.elementsEqual(text) }
        var rest = name[...]
        if parts.talloc_new {
            let prefix = "talloc_new: ".utf8
            guard rest.count >= prefix.count, rest.prefix(prefix.count).elementsEqual(prefix) else { return false }
            rest = rest.dropFirst(prefix.count)
        }
        guard rest.count > n, rest.prefix(n).elementsEqual(text) else { return false }
        rest = rest.dropFirst(n)
        return rest.elementsEqual(":\(parts.line)".utf8)
    }

    /// The context holding `parent`'s name when set_name put it in a ".name" child: O(1), by address.
    @inline(__always)
    static func isNameChild(_ child: TallocContext, of parent: TallocContext) -> Bool {
        let parts = parent.unsafeNameParts
        guard !parts.isLocation, let s = parts.string else { return false }
        return UnsafeRawPointer(s) == UnsafeRawPointer(child.unsafePointer) && child != parent
    }
}

extension TallocContext {
    /// Interim until TallocCore says: the bytes of a side record (see TallocCore's `_Extra`).
    static var sideRecordByteCount: Int { 88 }
    /// Interim: whether the chunk has a side record (a close approximation from public state).
    var hasSideRecord: Bool { observerTag != nil || hasDestructor || referenceCount > 0 || memoryLimit != nil }
}
