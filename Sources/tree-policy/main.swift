// luatalloc — tree-policy: an example Swift host that embeds LuaTalloc
// SPDX-License-Identifier: MIT
//
// Reads lists of files (`path size` per line, from files or standard input), runs a user's Lua policy
// in a sandbox (no io/os, a memory limit, an instruction budget), lets the policy build a talloc tree
// from each list, and prints each tree as talloc_report_full does (and, with --dot, as Graphviz).
//
//     tree-policy [--memlimit SIZE] [--instructions N] [--jobs N] [--stats] [--dot FILE] [--addresses]
//                 POLICY.lua [LIST...]
//
// The policy defines a global function `build(entries)`; `entries` is a sequence of
// `{path = "a/b/c.txt", size = 123, parts = {"a", "b", "c.txt"}}`; `build` returns the root context of
// the tree it made. It may call `note(...)` or `print(...)`, which the host prints on standard error.
// The report (and the DOT text) of the tree is bounded by the memory limit: a policy whose tree would
// write more (a deep chain's report grows with the square of its depth) fails with an error.
//
// What it shows of the host API (docs/EMBEDDING.md): a pool of sandboxed runtimes, one per worker
// (--jobs), each reset between lists so that no list sees what the policy left from another; the
// entries passed as a Codable value; `build` called through a function handle; the memory each build
// used (--stats); structured errors (message and traceback).

import Dispatch
import Foundation
import LuaTalloc
import TallocCore

struct Usage: Error, CustomStringConvertible {
    var description: String
}

struct Arguments {
    var memoryLimit = 16 << 20
    var instructionLimit = 50_000_000
    var jobs = 1
    var stats = false
    var dotPath: String?
    var addresses = false
    var policy = ""
    var inputs: [String] = []

    static let usage = """
        usage: tree-policy [options] POLICY.lua [LIST...]
          --memlimit SIZE      memory for the policy: Lua's heap and its contexts (default 16M)
          --instructions N     instruction budget of each call into the policy (default 50000000)
          --jobs N             lists built at once, each in a runtime of its own (default 1)
          --stats              the memory each build used, on standard error
          --dot FILE           also write the tree as Graphviz DOT to FILE ('-' for standard output; one LIST)
          --addresses          show addresses in the report
          LIST                 lines of 'path size' (default: standard input); with several, each
                               report is headed '== LIST =='
        """

    init(_ argv: [String]) throws {
        var rest: [String] = []
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < argv.count else { throw Usage(description: "'\(argv[i - 1])' needs an argument") }
            return argv[i]
        }
        while i < argv.count {
            let a = argv[i]
            switch a {
            case "--memlimit":
                let v = try value()
                guard let n = Arguments.size(v) else { throw Usage(description: "bad size '\(v)'") }
                memoryLimit = n
            case "--instructions":
                let v = try value()
                guard let n = Int(v), n > 0 else { throw Usage(description: "bad count '\(v)'") }
                instructionLimit = n
            case "--jobs":
                let v = try value()
                guard let n = Int(v), n > 0 else { throw Usage(description: "bad count '\(v)'") }
                jobs = n
            case "--stats": stats = true
            case "--dot": dotPath = try value()
            case "--addresses": addresses = true
            case "-h", "--help": throw Usage(description: "")
            default:
                if a.hasPrefix("--") { throw Usage(description: "unknown option '\(a)'") }
                rest.append(a)
            }
            i += 1
        }
        guard !rest.isEmpty else { throw Usage(description: "expected POLICY.lua [LIST...]") }
        policy = rest[0]
        inputs = Array(rest.dropFirst())
        if dotPath != nil && inputs.count > 1 { throw Usage(description: "--dot takes one LIST") }
    }

    /// "1024", "64K", "16M", "1G".
    static func size(_ s: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "k": 1 << 10, "M": 1 << 20, "m": 1 << 20, "G": 1 << 30, "g": 1 << 30]
        if let last = s.last, let unit = units[last] { return Int(s.dropLast()).map { $0 * unit } }
        return Int(s)
    }
}

/// One line of a list, as the policy sees it (encoded with LuaValueEncoder).
struct Entry: Codable, Sendable {
    var path: String
    var size: Int
    var parts: [String]

    init(path: String, size: Int) {
        self.path = path
        self.size = size
        parts = path.split(separator: "/").map(String.init)
    }
}

func readEntries(_ text: String) throws -> [Entry] {
    var entries: [Entry] = []
    for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
        let fields = trimmed.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard fields.count == 2, let size = Int(fields[1]), size >= 0 else {
            throw Usage(description: "line \(n + 1): expected 'path size', got '\(trimmed)'")
        }
        entries.append(Entry(path: String(fields[0]), size: size))
    }
    return entries
}

func warn(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

func fail(_ message: String, status: Int32) -> Never {
    warn("tree-policy: " + message)
    exit(status)
}

/// What building one list gave (plain data: it leaves the runtime that made it).
struct Outcome: Sendable {
    var report = ""
    var dot: String?
    var usage: LuaRuntime.MemoryUsage?
    var error: String?
}

/// The outcomes, filled by the workers.
final class Outcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Outcome]
    init(_ n: Int) { items = Array(repeating: Outcome(), count: n) }
    subscript(i: Int) -> Outcome {
        get { lock.lock(); defer { lock.unlock() }; return items[i] }
        set { lock.lock(); items[i] = newValue; lock.unlock() }
    }
}

/// Builds the tree of `entries` in `lua` and reports it (while it is valid: the tree is Lua's).
func build(_ entries: [Entry], in lua: LuaRuntime, _ args: Arguments) -> Outcome {
    var outcome = Outcome()
    do {
        let build = try lua.function("build")  // the policy's function, looked up once per list
        let input = try LuaValue(encoding: entries)
        let (results, usage) = try lua.measuringMemory { () throws(LuaRuntime.RuntimeError) in try build(input) }
        guard let tree = results.first?.contextValue else {
            outcome.error = "build(entries) must return a talloc context, got \(results.first?.typeName ?? "nothing")"
            return outcome
        }
        // The tree is the script's: its text is bounded (a full report grows with the square of the
        // depth, far beyond the memory the tree takes), by the runtime's memory limit.
        outcome.report = try lua.report(of: tree, addresses: args.addresses)
        if args.dotPath != nil { outcome.dot = try lua.dot(of: tree) }
        outcome.usage = usage
    } catch let error as LuaRuntime.RuntimeError {
        outcome.error = error.description  // the message, then Lua's traceback
    } catch {
        outcome.error = "\(error)"
    }
    return outcome
}

func main() -> Int32 {
    let args: Arguments
    do { args = try Arguments(Array(CommandLine.arguments.dropFirst())) } catch {
        let message = "\(error)"
        FileHandle.standardError.write(Data(((message.isEmpty ? "" : "tree-policy: \(message)\n") + Arguments.usage + "\n").utf8))
        return message.isEmpty ? 0 : 2
    }

    // the lists (standard input when none is named)
    var lists: [(name: String, entries: [Entry])] = []
    for input in args.inputs.isEmpty ? ["-"] : args.inputs {
        let text: String
        if input == "-" {
            text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        } else {
            guard let data = FileManager.default.contents(atPath: input) else { fail("cannot open \(input)", status: 1) }
            text = String(decoding: data, as: UTF8.self)
        }
        do { lists.append((input, try readEntries(text))) } catch { fail(args.inputs.count > 1 ? "\(input): \(error)" : "\(error)", status: 1) }
    }
    guard let data = FileManager.default.contents(atPath: args.policy) else { fail("cannot open \(args.policy)", status: 1) }
    let source = String(decoding: data, as: UTF8.self)
    let policy = args.policy

    // The runtimes: sandboxes, one per worker. The policy cannot read files, exceed its memory or run
    // forever; each runtime is reset between lists (fresh globals) and prepared again.
    let pool: LuaRuntimePool
    do {
        pool = try LuaRuntimePool(count: min(args.jobs, lists.count),
                                  options: .sandbox(memoryLimit: args.memoryLimit, instructionLimit: args.instructionLimit),
                                  resetBetweenUses: true) { lua in
            try lua.register("note") { values in
                // (a value's description is linear in what Lua holds: shared tables are written once)
                warn(values.map { $0.stringValue ?? $0.description }.joined(separator: "\t"))
                return []
            }
            try lua.setPrintHandler { warn($0) }
            try lua.run(source, chunkName: "@" + policy)
            guard case .function = try lua.global("build") else {
                throw Usage(description: "\(policy) does not define a function 'build(entries)'")
            }
        }
    } catch let error as LuaRuntime.RuntimeError {
        fail(error.description, status: 1)
    } catch {
        fail("\(error)", status: 1)
    }
    defer { pool.close() }

    // Every list, as many at once as there are runtimes.
    let outcomes = Outcomes(lists.count)
    let entries = lists.map(\.entries)
    DispatchQueue.concurrentPerform(iterations: lists.count) { i in
        do {
            outcomes[i] = try pool.withRuntime { lua in build(entries[i], in: lua, args) }
        } catch {
            outcomes[i] = Outcome(error: "\(error)")
        }
    }

    var status: Int32 = 0
    for (i, list) in lists.enumerated() {
        let o = outcomes[i]
        if lists.count > 1 { print("== \(list.name) ==") }
        if let error = o.error {
            warn("tree-policy: " + (lists.count > 1 ? "\(list.name): " : "") + error)
            status = 1
            continue
        }
        print(o.report, terminator: "")
        if args.stats, let u = o.usage {
            warn("\(list.name): \(u.luaHeapAllocated) bytes allocated by Lua, peak \(u.peakBytes) bytes in the runtime, \(u.netBytes) bytes kept")
        }
        if let dotPath = args.dotPath, let dot = o.dot {
            if dotPath == "-" {
                print(dot, terminator: "")
            } else if !FileManager.default.createFile(atPath: dotPath, contents: Data(dot.utf8)) {
                fail("cannot write \(dotPath)", status: 1)
            }
        }
    }
    return status
}

exit(main())
