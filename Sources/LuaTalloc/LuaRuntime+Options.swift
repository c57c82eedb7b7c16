// luatalloc — the embeddable runtime: options, libraries, sandbox, errors
// SPDX-License-Identifier: MIT

import CLua
import CLuaShims

extension LuaRuntime {
    /// The standard libraries a runtime opens, one bit each.
    ///
    /// Each is opened with `luaL_requiref` (as `luaL_openlibs` does, but only those asked for), so it is
    /// both a global and in `package.loaded` when `package` is open. The `talloc` module is always opened.
    public struct Libraries: OptionSet, Sendable, Hashable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// The base library (`print`, `pcall`, `load`, `setmetatable`, ...): `luaopen_base`.
        public static let base = Libraries(rawValue: Int32(LTH_LIB_BASE))
        /// `package` and `require` (which can load C modules): `luaopen_package`.
        public static let package = Libraries(rawValue: Int32(LTH_LIB_PACKAGE))
        /// `coroutine`: `luaopen_coroutine`.
        public static let coroutine = Libraries(rawValue: Int32(LTH_LIB_COROUTINE))
        /// `table`: `luaopen_table`.
        public static let table = Libraries(rawValue: Int32(LTH_LIB_TABLE))
        /// `io` (files, processes through `io.popen`): `luaopen_io`.
        public static let io = Libraries(rawValue: Int32(LTH_LIB_IO))
        /// `os` (files, `os.execute`, `os.exit`, the environment): `luaopen_os`.
        public static let os = Libraries(rawValue: Int32(LTH_LIB_OS))
        /// `string`: `luaopen_string`.
        public static let string = Libraries(rawValue: Int32(LTH_LIB_STRING))
        /// `math`: `luaopen_math`.
        public static let math = Libraries(rawValue: Int32(LTH_LIB_MATH))
        /// `utf8`: `luaopen_utf8`.
        public static let utf8 = Libraries(rawValue: Int32(LTH_LIB_UTF8))
        /// `debug` (which can remove the budget's hook and read any local): `luaopen_debug`.
        public static let debug = Libraries(rawValue: Int32(LTH_LIB_DEBUG))

        /// Every standard library, as `luaL_openlibs`.
        public static let all: Libraries = [.base, .package, .coroutine, .table, .io, .os, .string, .math, .utf8, .debug]
        /// The libraries that touch nothing outside the state: base, coroutine, table, string, math, utf8.
        public static let safe: Libraries = [.base, .coroutine, .table, .string, .math, .utf8]
    }

    /// How a runtime is made.
    ///
    /// The budget (`instructionLimit`, `timeLimit`) is **per entry**: every call from Swift into Lua
    /// (`run`, `call`, `global`, `setGlobal`, ...) starts with the whole budget; nested entries (a Swift
    /// function called from Lua that runs Lua again) share the budget of the outermost one.
    public struct Options: Sendable {
        /// Bytes for Lua's heap plus every context the scripts make (headers included); nil: no limit.
        /// Set with `talloc_set_memlimit` on the runtime's root.
        public var memoryLimit: Int?
        /// The standard libraries to open.
        public var libraries: Libraries
        /// Make the module the global `talloc` (it is always `require "talloc"`-able when `package` is open).
        public var tallocGlobal: Bool
        /// Open the libraries and the module now (false: call `openLibraries()` later).
        public var openLibrariesNow: Bool
        /// Lua VM instructions one entry may run (counted by a count hook, to within 1,000); nil: no limit.
        /// The script gets the error "instruction budget exhausted", which it cannot catch for good.
        public var instructionLimit: Int?
        /// Wall-clock time one entry may run (checked in the same hook); nil: no limit.
        /// The script gets the error "time budget exhausted".
        public var timeLimit: Duration?
        /// Harden the globals for untrusted code: no `dofile`/`loadfile`, `load` of text only (never
        /// bytecode), `setmetatable` refuses `__gc`, no `talloc.set_destructor`, the contexts' metatable
        /// locked. (Lua code run by the collector runs with hooks off, beyond any budget.)
        public var sandboxed: Bool
        /// How deeply nested a table may be to be copied into Swift (deeper: an error, not a crash).
        /// At most `Options.maximumTableDepth`: a larger setting is taken as that (and a negative one as 0).
        ///
        /// Everything `LuaTalloc` does with a value — reading it, `==`, hashing, `description`, passing it
        /// back to Lua, encoding it — is iterative, whatever its depth. What is not: Swift destroying a
        /// nested value (one stack frame a level, about 100 bytes), and your own recursive code, such as
        /// a recursive `Decodable` type (a few hundred bytes a level). At the maximum that is well under
        /// the 512 KiB of the smallest thread stacks; the default, 200, is far from it.
        public var maxTableDepth: Int {
            didSet { maxTableDepth = Options.clampedDepth(maxTableDepth) }
        }

        /// The largest `maxTableDepth` (see there).
        public static let maximumTableDepth = 1_000

        static func clampedDepth(_ d: Int) -> Int { Swift.min(Swift.max(d, 0), maximumTableDepth) }

        /// Open the standard libraries: all of them (true) or none (false).
        public var openStandardLibraries: Bool {
            get { !libraries.isEmpty }
            set { libraries = newValue ? .all : [] }
        }

        /// The options of the `luatalloc` program: every library, no budget.
        public init(memoryLimit: Int? = nil, openStandardLibraries: Bool = true, tallocGlobal: Bool = true,
                    openLibrariesNow: Bool = true) {
            self.init(memoryLimit: memoryLimit, libraries: openStandardLibraries ? .all : [], tallocGlobal: tallocGlobal,
                      openLibrariesNow: openLibrariesNow)
        }

        /// Options with the libraries and budgets chosen one by one.
        public init(memoryLimit: Int? = nil, libraries: Libraries, tallocGlobal: Bool = true,
                    instructionLimit: Int? = nil, timeLimit: Duration? = nil, sandboxed: Bool = false,
                    maxTableDepth: Int = 200, openLibrariesNow: Bool = true) {
            self.memoryLimit = memoryLimit
            self.libraries = libraries
            self.tallocGlobal = tallocGlobal
            self.openLibrariesNow = openLibrariesNow
            self.instructionLimit = instructionLimit
            self.timeLimit = timeLimit
            self.sandboxed = sandboxed
            self.maxTableDepth = Options.clampedDepth(maxTableDepth)
        }

        /// A runtime for untrusted scripts: the `safe` libraries (no `io`, `os`, `package`, `debug`),
        /// hardened globals (`sandboxed`), a memory limit and an instruction budget per entry.
        ///
        /// Such a script cannot touch files or processes, load bytecode or C modules, exceed its memory
        /// (it gets "not enough memory"), or run forever (it gets "instruction budget exhausted"); the
        /// runtime stays usable after each of these. The standard functions whose single calls could run
        /// long without a VM instruction (pattern matching, `string.rep`, `table.move`, `table.sort`,
        /// `collectgarbage`, ...) are replaced by copies that charge the budget for their work, so no
        /// single call outruns it. What it can still do: print to standard output.
        public static func sandbox(memoryLimit: Int, instructionLimit: Int, timeLimit: Duration? = nil) -> Options {
            Options(memoryLimit: memoryLimit, libraries: .safe, instructionLimit: instructionLimit, timeLimit: timeLimit,
                    sandboxed: true)
        }
    }
}
