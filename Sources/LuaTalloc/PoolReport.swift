// luatalloc — the pool report (`luatalloc --pool-report`, `luatalloc --replay`)
// SPDX-License-Identifier: MIT
//
// Each site that made pools (the Lua position of the `talloc.pool` call), with its pools' capacity,
// peak, allocations, spills and holes, the advice, and the pools that were pinned with the members that
// pinned them.

import TallocCore

public enum PoolReport {
    /// The report of `sites` (as a `TallocPoolRecorder` sums them), each line ending in a newline.
    public static func text(_ sites: [TallocPoolRecorder.Site], title: String = "pool report") -> String {
        let pools = sites.reduce(0) { $0 + $1.pools }
        if pools == 0 { return "\(title): no pools\n" }
        var out = "\(title): \(plural(pools, "pool")) made at \(plural(sites.count, "site"))\n"
        for s in sites where s.pools > 0 { out += site(s) }
        return out
    }

    /// "1 spill", "2 spills".
    public static func plural(_ n: Int, _ one: String, _ many: String? = nil) -> String {
        "\(n) " + (n == 1 ? one : (many ?? one + "s"))
    }

    static func quoted(_ name: String) -> String { "'" + name + "'" }

    static func site(_ s: TallocPoolRecorder.Site) -> String {
        let capacity = s.minCapacity == s.maxCapacity ? "capacity \(s.maxCapacity)" : "capacities \(s.minCapacity) to \(s.maxCapacity)"
        var out = "\(s.name): \(plural(s.pools, "pool")), \(capacity)\n"
        let percent = s.minCapacity == s.maxCapacity && s.maxCapacity > 0 ? " (\(s.peakUsed * 100 / s.maxCapacity)%)" : ""
        var line = "    peak \(s.peakUsed) bytes\(percent), \(plural(s.allocations, "allocation")) from the pool"
        if s.spills == 0 {
            line += ", no spills"
        } else {
            line += ", \(plural(s.spills, "spill")) to the heap (\(s.spilledBytes) bytes, the largest \(s.largestSpill)"
            line += s.pools > 1 ? ", in \(s.poolsThatSpilled) of the \(s.pools) pools)" : ")"
        }
        out += line + "\n"
        if s.holes > 0 || s.reclaims > 0 || s.resets > 0 || s.stolen > 0 {
            var parts: [String] = []
            if s.holes > 0 { parts.append("\(plural(s.holes, "hole")) left by frees (\(s.holeBytes) bytes)") }
            if s.reclaims > 0 { parts.append(plural(s.reclaims, "reclaim")) }
            if s.resets > 0 { parts.append(plural(s.resets, "reset")) }
            if s.stolen > 0 { parts.append("\(plural(s.stolen, "member")) stolen out") }
            out += "    " + parts.joined(separator: ", ") + "\n"
        }
        out += "    advice: " + advice(s) + "\n"
        for pin in s.pins { out += pinned(pin) }
        if s.pinned > s.pins.filter({ !$0.atExit }).count {
            out += "    (\(s.pinned - s.pins.filter { !$0.atExit }.count) more pinned pools not listed)\n"
        }
        return out
    }

    static func advice(_ s: TallocPoolRecorder.Site) -> String {
        let needed = s.neededCapacity
        if s.minCapacity != s.maxCapacity {
            if s.allocations == 0 && s.spills == 0 { return "nothing was allocated from them" }
            return "capacity \(needed) would have served every allocation of every pool made here"
                + (s.spills > 0 ? " (\(plural(s.spills, "malloc")) fewer)" : "")
        }
        let each = s.pools > 1 ? " of every pool made here" : ""
        if s.spills > 0 {
            return "capacity \(needed) would have served every allocation\(each) "
                + "(\(needed - s.maxCapacity) bytes more in the pool's block, \(plural(s.spills, "malloc")) fewer)"
        }
        if s.allocations == 0 { return "nothing was allocated from it" }
        if needed >= s.maxCapacity { return "the right size: full at the peak, and nothing spilled" }
        return "capacity \(needed) would have served every allocation\(each) too (\(s.maxCapacity - needed) bytes less)"
    }

    static func pinned(_ p: TallocPoolRecorder.Pin) -> String {
        let who = plural(p.memberCount, "member")
        var out = p.atExit
            ? "    at exit, pool #\(p.serial) was freed while \(who) stolen out of it still lived:\n"
            : "    pinned: pool #\(p.serial) was freed while \(who) stolen out of it lived; its \(p.pinnedBytes)-byte block "
              + "stayed allocated until \(p.memberCount == 1 ? "it" : "they") went:\n"
        for m in p.members {
            out += "        \(quoted(m.name)) (\(plural(m.size, "byte"))), under \(m.parentName.map(quoted) ?? "the top level")\n"
        }
        if p.memberCount > p.members.count { out += "        (and \(p.memberCount - p.members.count) more)\n" }
        return out
    }

    /// The warning `-W` gives when a pool is pinned.
    public static func warning(_ p: TallocPoolRecorder.Pin) -> String {
        var names = p.members.prefix(3).map { quoted($0.name) + ($0.parentName.map { " (under " + quoted($0) + ")" } ?? "") }
        if p.memberCount > names.count { names.append("\(p.memberCount - names.count) more") }
        return "talloc: pool #\(p.serial) made at \(p.site) (capacity \(p.capacity)) was freed, but \(p.memberCount == 1 ? "a member" : "\(p.memberCount) members") "
            + "stolen out of it still live\(p.memberCount == 1 ? "s" : ""): its \(p.pinnedBytes)-byte block stays allocated until "
            + "\(p.memberCount == 1 ? "it goes" : "they go"): " + names.joined(separator: ", ")
    }
}
