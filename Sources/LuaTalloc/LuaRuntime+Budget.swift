// luatalloc — the embeddable runtime: the instruction and time budget
// SPDX-License-Identifier: MIT
//
// The budget is a count hook in C (`lth_budgethook` in talloc_shim.h): it raises "instruction budget
// exhausted" or "time budget exhausted" inside the running Lua code, where only C frames can be
// unwound. Swift only arms it before an entry into Lua and disarms it after.

import CLua
import CLuaShims
import Glibc
import TallocCore

extension LuaRuntime {
    /// Installs the hook on the main thread before any script runs, so every coroutine inherits it.
    /// A reset's new state gets the runtime's budget record again.
    func installBudget(_ L: LuaState) {
        let b = budget ?? UnsafeMutablePointer<lth_Budget>.allocate(capacity: 1)
        let step: Int
        if let n = options.instructionLimit { step = Swift.max(1, Swift.min(1_000, n / 10)) } else { step = 1_000 }
        b.initialize(to: lth_Budget(remaining: 0, debt: 0, emergencies: 0, deadline: 0, limited: 0, armed: 0,
                                    exhausted: 0, step: Int32(step)))
        budget = b
        heapState.pointee.budget = b
        // the module reads the flag after each call (ltc_meter): the charge for walks only when armed
        heapState.pointee.collect.budgetArmed = UnsafePointer(
            (UnsafeMutableRawPointer(b) + MemoryLayout<lth_Budget>.offset(of: \lth_Budget.armed)!)
                .assumingMemoryBound(to: Int32.self))
        lth_installbudget(L, b)
    }

    /// Runs `body` (an entry into Lua) with the budget armed, unless an outer entry armed it already.
    func entered<R>(_ body: () -> R) -> R {
        beginEntry()
        defer { endEntry() }
        return body()
    }

    /// The start of an entry into Lua: the outermost arms the budget (every instruction of the entry,
    /// nested ones included, counts against it) and notes what the memory error test needs.
    func beginEntry() {
        entryDepth += 1
        guard entryDepth == 1 else { return }
        entryRefusals = heapState.pointee.refusals
        entryPending = heapState.pointee.collect.pending != 0
        hostFailures.removeAll(keepingCapacity: true)
        guard let b = budget else { return }
        b.pointee.exhausted = 0
        // work done outside any entry (the runtime's own calls, another runtime on this thread) is not
        // this entry's to pay
        b.pointee.debt = 0
        b.pointee.emergencies = 0
        _ = Talloc.takeWork()
        if let n = options.instructionLimit {
            b.pointee.limited = 1
            b.pointee.remaining = Int64(Swift.max(n, 1))
        } else {
            b.pointee.limited = 0
        }
        if let t = options.timeLimit {
            let c = t.components
            b.pointee.deadline = lth_now() + Double(c.seconds) + Double(c.attoseconds) * 1e-18
        } else {
            b.pointee.deadline = 0
        }
        b.pointee.armed = 1
    }

    /// The end of an entry: the outermost disarms the budget.
    func endEntry() {
        entryDepth -= 1
        if entryDepth == 0, let b = budget, let L = state {
            b.pointee.armed = 0
            lth_installbudget(L, b)  // the main thread's hook back to its normal count
        }
    }

    /// Moves the time budget's deadline `seconds` later (the time an async call spent awaiting Swift work
    /// is not Lua's).
    func extendDeadline(by seconds: Double) {
        if let b = budget, b.pointee.deadline > 0 { b.pointee.deadline += seconds }
    }

    /// Instructions left in the running entry's budget (nil without an instruction limit or outside an
    /// entry). For Swift functions called from Lua that want to know.
    public var remainingInstructions: Int? {
        guard let b = budget, b.pointee.armed != 0, b.pointee.limited != 0 else { return nil }
        return Int(b.pointee.remaining)
    }
}
