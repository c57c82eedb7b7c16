// luatalloc — tree-policy: an example Swift host that embeds LuaTalloc
// SPDX-License-Identifier: MIT
//
// Reads a list of files (`path size` per line, from a file or standard input), runs a user's Lua policy
// in a sandbox (no io/os, a memory limit, an instruction budget), lets the policy build a talloc tree
// from the list, and prints the tree as talloc_report_full does (and, with --dot, as Graphviz).
//
//     tree-policy [--memlimit SIZE] [--instructions N] [--dot FILE] [--addresses] POLICY.lua [LIST]
//
// The policy defines a global function `build(entries)`; `entries` is a sequence of
// `{path = "a/b/c.txt", size = 123, parts = {"a", "b", "c.txt"}}`; `build` returns the root context of
// the tree it made. It may call `note(...)`, which the host prints on standard error.

import Foundation
import LuaTalloc
import TallocCore

struct Usage: Error, CustomStringConvertible {
    var description: String
}

struct Arguments {
    var memoryLimit = 16 << 20
    var instructionLimit = 50_000_000
    var dotPath: String?
    var addresses = false
    var policy = ""
    var input: String?

    static let usage = """
        usage: tree-policy [options] POLICY.lua [LIST]
          --memlimit SIZE      memory for the policy: Lua's heap and its contexts (default 16M)
          --instructions N     instruction budget of each call into the policy (default 50000000)
          --dot FILE           also write the tree as Graphviz DOT to FILE ('-' for standard output)
          --addresses          show addresses in the report
          LIST                 lines of 'path size' (default: standard input)
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
            case "--dot": dotPath = try value()
            case "--addresses": addresses = true
            case "-h", "--help": throw Usage(description: "")
            default:
                if a.hasPrefix("--") { throw Usage(description: "unknown option '\(a)'") }
                rest.append(a)
            }
            i += 1
        }
        guard rest.count == 1 || rest.count == 2 else { throw Usage(description: "expected POLICY.lua [LIST]") }
        policy = rest[0]
        input = rest.count == 2 ? rest[1] : nil
    }

    /// "1024", "64K", "16M", "1G".
    static func size(_ s: String) -> Int? {
        let units: [Character: Int] = ["K": 1 << 10, "k": 1 << 10, "M": 1 << 20, "m": 1 << 20, "G": 1 << 30, "g": 1 << 30]
        if let last = s.last, let unit = units[last] { return Int(s.dropLast()).map { $0 * unit } }
        return Int(s)
    }
}

/// One line of the list.
struct Entry {
    var path: String
    var size: Int

    var luaValue: LuaValue {
        let parts = path.split(separator: "/").map { LuaValue.string(String($0)) }
        return ["path": .string(path), "size": .integer(size), "parts": .array(parts)]
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

func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data(("tree-policy: " + message + "\n").utf8))
    exit(status)
}

func main() -> Int32 {
    let args: Arguments
    do { args = try Arguments(Array(CommandLine.arguments.dropFirst())) } catch {
        let message = "\(error)"
        FileHandle.standardError.write(Data(((message.isEmpty ? "" : "tree-policy: \(message)\n") + Arguments.usage + "\n").utf8))
        return message.isEmpty ? 0 : 2
    }

    let text: String
    if let input = args.input {
        guard let data = FileManager.default.contents(atPath: input) else { fail("cannot open \(input)", status: 1) }
        text = String(decoding: data, as: UTF8.self)
    } else {
        text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
    }
    let entries: [Entry]
    do { entries = try readEntries(text) } catch { fail("\(error)", status: 1) }
    guard let source = FileManager.default.contents(atPath: args.policy) else { fail("cannot open \(args.policy)", status: 1) }

    // The runtime: a sandbox. The policy cannot read files, exceed its memory or run forever.
    let lua: LuaRuntime
    do {
        lua = try LuaRuntime(options: .sandbox(memoryLimit: args.memoryLimit, instructionLimit: args.instructionLimit))
    } catch { fail("cannot make the Lua runtime: \(error)", status: 1) }
    defer { lua.close() }

    do {
        try lua.register("note") { values in
            let line = values.map { $0.stringValue ?? $0.description }.joined(separator: "\t")
            FileHandle.standardError.write(Data((line + "\n").utf8))
            return []
        }
        try lua.run(String(decoding: source, as: UTF8.self), chunkName: "@" + args.policy)
        guard case .function = try lua.global("build") else {
            fail("\(args.policy) does not define a function 'build(entries)'", status: 1)
        }
        let results = try lua.call("build", .array(entries.map(\.luaValue)))
        guard let tree = results.first?.contextValue else {
            fail("build(entries) must return a talloc context, got \(results.first?.typeName ?? "nothing")", status: 1)
        }
        // The tree is Lua's (it hangs under the runtime's "lua contexts"); it is valid until Lua runs
        // again or the runtime closes, so report it now.
        print(tree.reportFull(addresses: args.addresses), terminator: "")
        if let dotPath = args.dotPath {
            let dot = tree.dot()
            if dotPath == "-" {
                print(dot, terminator: "")
            } else if !FileManager.default.createFile(atPath: dotPath, contents: Data(dot.utf8)) {
                fail("cannot write \(dotPath)", status: 1)
            }
        }
    } catch {
        fail("\(error)", status: 1)
    }
    return 0
}

exit(main())
