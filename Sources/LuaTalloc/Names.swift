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
    @inline(__always)
    static func bytes(_ c: TallocContext) -> [UInt8] { c.nameBytes }

    /// Whether the name is exactly `name` (compared piecewise for locations; no allocation).
    @inline(__always)
    static func equals(_ c: TallocContext, _ name: UnsafeRawBufferPointer) -> Bool { c.checkName(bytes: name) }

    /// The context holding `parent`'s name when set_name put it in a ".name" child: O(1), by address.
    @inline(__always)
    static func isNameChild(_ child: TallocContext, of parent: TallocContext) -> Bool {
        let parts = parent.unsafeNameParts
        guard !parts.isLocation, let s = parts.string else { return false }
        return UnsafeRawPointer(s) == UnsafeRawPointer(child.unsafePointer) && child != parent
    }
}
