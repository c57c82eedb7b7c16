// luatalloc — the embeddable runtime: host hooks (print and warning sinks, memory used by a call)
// SPDX-License-Identifier: MIT

import CLua
import CLuaShims
import Glibc
import TallocCore

/// Where the host wants a kind of text (print lines, warnings). One box per runtime and kind, alive until
/// the runtime closes: Lua closures may keep pointing at it (a script can keep the old `print`), so it
/// is never freed while the state lives; changing the handler changes its body.
final class _SinkBox {
    var body: ((String) -> Void)?
    /// The pieces of a warning not finished yet (lua_warning's "to be continued").
    var pending: [UInt8] = []
    /// Without a handler: whether warnings are on ("@on"), as Lua's own warning function keeps it.
    var on = false
}

struct _Sinks {
    var print: _SinkBox?
    var warning: _SinkBox?
}

extension LuaRuntime {
    // MARK: - print and warn

    /// Sends what scripts `print` to `handler`, one call per `print` (the arguments through `tostring`,
    /// tabs between, no newline), instead of standard output; nil puts Lua's `print` back.
    ///
    ///     try lua.setPrintHandler { line in logger.info("\(line)") }
    ///
    /// The handler runs while Lua runs: it must not use the runtime. It stays across `reset()`.
    /// The corresponding Lua function is `print` (lbaselib's `luaB_print`, whose formatting it keeps).
    /// - Throws: `.closed` before the libraries are open, or a memory error.
    public func setPrintHandler(_ handler: ((String) -> Void)?) throws(RuntimeError) {
        let box = sinks.print ?? _SinkBox()
        box.body = handler
        sinks.print = box
        try installPrintSink()
    }

    /// Sends Lua's warnings (`warn(...)` in scripts, errors in finalizers, destructor failures at close)
    /// to `handler`, one call per complete message, whatever `warn("@on")`/`warn("@off")` say (those
    /// control messages are not passed on); nil puts Lua's default back (warnings off until "@on", then
    /// on standard error).
    ///
    /// The handler runs while Lua runs (even inside the collector, even in `close()`): it must not use
    /// the runtime. It stays across `reset()`.
    /// The corresponding Lua function is `lua_setwarnf`.
    public func setWarningHandler(_ handler: ((String) -> Void)?) {
        let box = sinks.warning ?? _SinkBox()
        box.body = handler
        box.pending = []
        sinks.warning = box
        if let L = state { installWarningSink(L) }
    }

    /// Installs (or takes back) the print sink in the current state.
    private func installPrintSink() throws(RuntimeError) {
        guard let L = state, let box = sinks.print else { return }
        let base = lua_gettop(L)
        defer { lua_settop(L, base) }
        guard lua_checkstack(L, 6) != 0, pushHostTable(L) else {
            throw RuntimeError(.closed, "the talloc module is not open (call openLibraries())")
        }
        let sink: lth_PrintSink? = box.body == nil ? nil : LuaRuntime.printSink
        let st = entered { lth_setprint(L, -1, sink, Unmanaged.passUnretained(box).toOpaque()) }
        if st != LUA_OK { throw failure(L, st) }
    }

    /// After a reset: the print sink in the new state (the warning sink is installed as the state is made).
    func reinstallSinks() throws(RuntimeError) {
        if sinks.print?.body != nil { try installPrintSink() }
    }

    /// Installs the warning sink (when the host gave one) in a new state.
    func installWarningSink(_ L: LuaState) {
        guard let box = sinks.warning else { return }
        box.pending = []
        box.on = false  // a new state: warnings off until "@on", as luaL_newstate's warning function
        lua_setwarnf(L, LuaRuntime.warningSink, Unmanaged.passUnretained(box).toOpaque())
    }

    /// `print`'s sink: the line to the host's handler (or standard output once the handler was removed
    /// and a script kept the old `print`).
    static let printSink: lth_PrintSink = { ud, text, len in
        let box = Unmanaged<_SinkBox>.fromOpaque(ud).takeUnretainedValue()
        let line = String(decoding: UnsafeRawBufferPointer(start: text, count: len), as: UTF8.self)
        if let body = box.body {
            body(line)
        } else {
            LuaRuntime.write(1, line + "\n")
        }
    }

    /// Lua's warning function: pieces joined until the last one, control messages ("@on") dropped.
    static let warningSink: lua_WarnFunction = { ud, msg, tocont in
        let box = Unmanaged<_SinkBox>.fromOpaque(ud!).takeUnretainedValue()
        guard let msg else { return }
        let n = strlen(msg)
        let piece = UnsafeRawBufferPointer(start: msg, count: n)
        if tocont == 0 && box.pending.isEmpty && n > 0 && piece[0] == UInt8(ascii: "@") {
            // a control message: "@on" / "@off" (the host's handler gets every warning regardless)
            let control = String(decoding: piece, as: UTF8.self)
            if control == "@on" { box.on = true } else if control == "@off" { box.on = false }
            return
        }
        box.pending.append(contentsOf: piece)
        if tocont != 0 { return }
        let text = String(decoding: box.pending, as: UTF8.self)
        box.pending = []
        if let body = box.body {
            body(text)
        } else if box.on {
            LuaRuntime.write(2, "Lua warning: " + text + "\n")
        }
    }

    /// Writes `text` to a file descriptor (standard output or error), whole.
    static func write(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { b in
            var rest = UnsafeRawBufferPointer(b)
            while !rest.isEmpty {
                let n = Glibc.write(fd, rest.baseAddress, rest.count)
                if n <= 0 { return }
                rest = UnsafeRawBufferPointer(rebasing: rest[n...])
            }
        }
    }

    // MARK: - Memory used by a call

    /// What a call did with the runtime's memory (see `measuringMemory(_:)`).
    public struct MemoryUsage: Sendable, Hashable, CustomStringConvertible {
        /// Bytes charged to the runtime's tree when the call began: Lua's heap and every context, headers
        /// included — what the memory limit counts.
        public var bytesBefore: Int
        /// The same when the call ended.
        public var bytesAfter: Int
        /// The highest charge during the call, exact: the root's memory-limit record keeps its peak at
        /// every charge (`TallocContext.memoryLimitPeak`).
        public var peakBytes: Int
        /// Bytes Lua's heap allocated during the call, every growth summed (a table made and collected
        /// counts): the call's allocation work, exact.
        public var luaHeapAllocated: Int
        /// The highest size Lua's heap reached during the call, exact.
        public var luaHeapPeak: Int

        /// What the call left behind (negative: it freed more than it made).
        public var netBytes: Int { bytesAfter - bytesBefore }

        public var description: String {
            "\(bytesBefore) -> \(bytesAfter) bytes (peak \(peakBytes)); Lua heap allocated \(luaHeapAllocated), peak \(luaHeapPeak)"
        }
    }

    /// Runs `body` (calls into this runtime) and measures what it did with the runtime's memory, from the
    /// runtime's own tree: the charge of its root (the memory limit's count) before, after and at its
    /// peak, and the bytes Lua's heap allocated.
    ///
    ///     let (results, usage) = try lua.measuringMemory { try lua.call("handle", request) }
    ///     metrics.record(usage.luaHeapAllocated, usage.peakBytes)
    ///
    /// The root's charge is kept by a memory-limit record: a runtime made without `memoryLimit` gets one
    /// that never refuses (limit 0, as talloc's "no limit") the first time, and keeps it (TallocCore
    /// cannot drop a limit record): from then on its reports show the root as a memlimit context with
    /// `max_size = 0`, and `dot()` draws the limit. A runtime with a `memoryLimit` is measured with its own
    /// record, and nothing about it changes. Measuring costs a little on each of Lua's allocations while it
    /// runs.
    /// Measurements nest: an inner one sees its own part.
    public func measuringMemory<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> (result: R, usage: MemoryUsage) {
        if root.memoryLimit == nil { try? root.setMemoryLimit(0) }
        let hs = heapState
        let saved = (hs.pointee.tracking, hs.pointee.allocated, hs.pointee.peak)
        let outerPeak = root.memoryLimitPeak ?? 0  // the root's limit keeps its peak exactly
        let before = rootCharge
        hs.pointee.tracking = 1
        hs.pointee.allocated = 0
        hs.pointee.peak = heap.size
        root.resetMemoryLimitPeak()
        var innerPeak = before
        defer {
            let (t, a, p) = saved
            if t != 0 {
                // the outer measurement goes on, and includes what this one saw
                hs.pointee.allocated = a + hs.pointee.allocated
                hs.pointee.peak = Swift.max(p, hs.pointee.peak)
            }
            root.resetMemoryLimitPeak(to: Swift.max(outerPeak, innerPeak))
            hs.pointee.tracking = t
        }
        let result = try body()
        let after = rootCharge
        innerPeak = root.memoryLimitPeak ?? after
        let usage = MemoryUsage(bytesBefore: before, bytesAfter: after,
                                peakBytes: Swift.max(innerPeak, after, before),
                                luaHeapAllocated: Int(hs.pointee.allocated), luaHeapPeak: Int(hs.pointee.peak))
        return (result, usage)
    }

    /// The charge of the runtime's root (its limit record's count); 0 without one.
    var rootCharge: Int { root.memoryLimit?.current ?? 0 }

    /// The allocator's bookkeeping while measuring: `delta` bytes more (or fewer) in Lua's heap.
    static func track(_ hs: UnsafeMutablePointer<lth_Heap>, _ heap: TallocContext, _ delta: Int) {
        if delta > 0 { hs.pointee.allocated += delta }
        let size = heap.size
        if size > hs.pointee.peak { hs.pointee.peak = size }
    }
}
