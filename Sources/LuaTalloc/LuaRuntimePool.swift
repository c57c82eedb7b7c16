// luatalloc — a pool of runtimes: one runtime per worker, on every core
// SPDX-License-Identifier: MIT

import Glibc

/// A fixed set of `LuaRuntime`s shared by many threads or tasks, each runtime used by one at a time:
/// the way a server runs untrusted scripts on every core.
///
///     let pool = try LuaRuntimePool(count: 4, options: .sandbox(memoryLimit: 16 << 20, instructionLimit: 10_000_000)) { lua in
///         try lua.run(policySource, chunkName: "@policy.lua")      // every runtime loads the policy once
///     }
///     // from any thread:
///     let verdict = try pool.withRuntime { lua in try lua.call("check", .string(path)) }
///     // from any task (suspends instead of blocking while all runtimes are busy):
///     let verdict = try await pool.withRuntime { lua in try await lua.callAsync("check", .string(path)) }
///
/// The pool is `Sendable`; its runtimes are not: `withRuntime` lends one to the closure, which must not
/// keep it after returning. What the closure returns must be `Sendable` — plain Swift data, not a
/// `LuaValue` (which may hold a context or a function of the runtime another thread uses next): decode
/// results (`LuaValueDecoder`) or read them (`intValue`, `stringValue`) inside the closure.
/// Runtimes are independent — no lock is taken while Lua runs — so N workers on N cores run N times as
/// many calls (Benchmarks H2). A runtime keeps its globals between uses unless `resetBetweenUses` is set:
/// then it is reset (fresh globals, same limits) and `prepare` runs again before the next use.
public final class LuaRuntimePool: @unchecked Sendable {
    // @unchecked: every field below is read and written under `mutex`, except `options`, `prepare` and
    // `resetBetweenUses` (constants); a runtime is only touched by the one caller it is lent to.

    /// How many runtimes the pool has.
    public let count: Int
    /// The options every runtime is made with.
    public let options: LuaRuntime.Options
    /// Whether a runtime is reset (and prepared again) each time it comes back.
    public let resetBetweenUses: Bool
    private let prepare: @Sendable (LuaRuntime) throws -> Void

    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let available: UnsafeMutablePointer<pthread_cond_t>
    /// Runtimes not lent now (nil: one to make again, its predecessor could not be reset).
    private var idle: [LuaRuntime?]
    /// Tasks waiting for a runtime.
    private var waiters: [CheckedContinuation<_Lent, Never>] = []
    private var closed = false

    /// Makes `count` runtimes with `options`, each prepared by `prepare` (load scripts, register
    /// functions). `prepare` runs on the thread that makes or resets a runtime.
    /// - Throws: what making or preparing a runtime throws.
    public init(count: Int, options: LuaRuntime.Options = LuaRuntime.Options(), resetBetweenUses: Bool = false,
                prepare: @escaping @Sendable (LuaRuntime) throws -> Void = { _ in }) throws {
        precondition(count > 0, "a pool needs at least one runtime")
        self.count = count
        self.options = options
        self.resetBetweenUses = resetBetweenUses
        self.prepare = prepare
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        available = .allocate(capacity: 1)
        available.initialize(to: pthread_cond_t())
        pthread_cond_init(available, nil)
        idle = []
        do {
            for _ in 0..<count { idle.append(try LuaPoolSupport.make(options, prepare)) }
        } catch {
            // every property is set: deinit runs (closing the runtimes made, freeing the lock)
            throw error
        }
    }

    deinit {
        close()
        pthread_cond_destroy(available)
        pthread_mutex_destroy(mutex)
        available.deallocate()
        mutex.deallocate()
    }

    /// Lends a runtime to `body` on the calling thread, waiting (blocking the thread) while all are lent.
    /// Do not call it from a task (use the async form) nor from inside `body`.
    /// - Throws: what `body` throws; an error making a runtime again after a failed reset; `.closed`
    ///   once the pool is closed.
    public func withRuntime<R: Sendable>(_ body: (LuaRuntime) throws -> R) throws -> R {
        let runtime = try take()
        defer { giveBack(runtime) }
        return try body(runtime)
    }

    /// Lends a runtime to `body`, suspending the task (not blocking its thread) while all are lent.
    /// Runs on the caller's executor.
    nonisolated(nonsending)
    public func withRuntime<R: Sendable>(_ body: nonisolated(nonsending) (LuaRuntime) async throws -> R) async throws -> R {
        let runtime = try await takeAsync()
        defer { giveBack(runtime) }
        return try await body(runtime)
    }

    /// Closes every runtime not lent now; those lent close when they come back. Later `withRuntime` calls
    /// throw `.closed`.
    public func close() {
        pthread_mutex_lock(mutex)
        closed = true
        let all = idle
        idle = []
        let waiting = waiters
        waiters = []
        pthread_cond_broadcast(available)
        pthread_mutex_unlock(mutex)
        for rt in all { rt?.close() }
        for w in waiting { w.resume(returning: _Lent(slot: nil, closed: true)) }
    }

    // MARK: - Lending

    private func take() throws -> LuaRuntime {
        pthread_mutex_lock(mutex)
        while idle.isEmpty && !closed { pthread_cond_wait(available, mutex) }
        if closed {
            pthread_mutex_unlock(mutex)
            throw LuaRuntime.RuntimeError(.closed, "the runtime pool is closed")
        }
        let slot = idle.removeLast()
        pthread_mutex_unlock(mutex)
        return try ready(slot)
    }

    nonisolated(nonsending)
    private func takeAsync() async throws -> LuaRuntime {
        pthread_mutex_lock(mutex)
        if closed {
            pthread_mutex_unlock(mutex)
            throw LuaRuntime.RuntimeError(.closed, "the runtime pool is closed")
        }
        if !idle.isEmpty {
            let slot = idle.removeLast()
            pthread_mutex_unlock(mutex)
            return try ready(slot)
        }
        let lent = await withCheckedContinuation { (c: CheckedContinuation<_Lent, Never>) in
            waiters.append(c)
            pthread_mutex_unlock(mutex)
        }
        if lent.closed { throw LuaRuntime.RuntimeError(.closed, "the runtime pool is closed") }
        return try ready(lent.slot)
    }

    /// The runtime of a slot, made again if its predecessor could not be reset.
    private func ready(_ slot: LuaRuntime?) throws -> LuaRuntime {
        if let slot { return slot }
        do { return try LuaPoolSupport.make(options, prepare) } catch {
            giveBackSlot(nil)
            throw error
        }
    }

    private func giveBack(_ runtime: LuaRuntime) {
        var slot: LuaRuntime? = runtime
        if resetBetweenUses {
            do {
                try runtime.reset()
                try prepare(runtime)
            } catch {
                runtime.close()
                slot = nil
            }
        }
        giveBackSlot(slot)
    }

    private func giveBackSlot(_ slot: LuaRuntime?) {
        pthread_mutex_lock(mutex)
        if closed {
            pthread_mutex_unlock(mutex)
            slot?.close()
            return
        }
        if !waiters.isEmpty {
            let w = waiters.removeFirst()
            pthread_mutex_unlock(mutex)
            w.resume(returning: _Lent(slot: slot, closed: false))
            return
        }
        idle.append(slot)
        pthread_cond_signal(available)
        pthread_mutex_unlock(mutex)
    }
}

/// A slot crossing to a waiting task (its runtime is lent to exactly that one), or the news that the pool
/// closed.
struct _Lent: @unchecked Sendable {
    let slot: LuaRuntime?
    let closed: Bool
}

enum LuaPoolSupport {
    static func make(_ options: LuaRuntime.Options, _ prepare: (LuaRuntime) throws -> Void) throws -> LuaRuntime {
        let rt = try LuaRuntime(options: options)
        do { try prepare(rt) } catch {
            rt.close()
            throw error
        }
        return rt
    }
}
