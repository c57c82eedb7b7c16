// luatalloc — lua.c's `pmain`: the steps that run Lua code, each through a protected helper.
// SPDX-License-Identifier: MIT
//
// Nothing here may raise a Lua error: Swift calls only API functions marked '-' in the manual and the
// protected `clua_` helpers of shim.h, which return a status (STYLE.md §2.3).

import CLua
import CLuaShims
import CLuaStandalone
import Glibc

/// Runs one command line in one Lua state, in lua.c's order.
final class Interpreter {
    let L: OpaquePointer
    let arguments: [CArgument]
    let options: Options
    /// argv[0] (or "luatalloc"), for `progname: message`; nil while in the REPL, as in lua.c.
    var progname: CArgument?
    /// The stack top when `run` started (what lua.c's `lua_settop(L, 0)` in the REPL goes back to).
    private(set) var baseOfStack: Int32 = 0

    init(state: OpaquePointer, arguments: [CArgument], options: Options, progname: CArgument) {
        self.L = state
        self.arguments = arguments
        self.options = options
        self.progname = progname
    }

    // MARK: - lua.c's helpers

    /// lua.c's `report`: prints the error on the top (prefixed by `progname:` unless in the REPL).
    @discardableResult
    func report(_ status: Int32) -> Int32 {
        if let progname {
            return progname.withCString { lsa_report(L, $0, status) }
        }
        return lsa_report(L, nil, status)
    }

    /// lua.c's `dochunk`: calls a loaded chunk with the message handler and reports.
    func doChunk(_ loadStatus: Int32) -> Int32 {
        var status = loadStatus
        if status == LUA_OK { status = lsa_docall(L, 0, 0) }
        return report(status)
    }

    /// lua.c's `dofile`; nil reads the standard input.
    func doFile(_ name: CArgument?) -> Int32 {
        guard let name else { return doChunk(lsa_loadfile(L, nil)) }
        return doChunk(name.withCString { lsa_loadfile(L, $0) })
    }

    /// lua.c's `dostring` (lua.c stops at a NUL, as `strlen` does).
    func doString(_ chunk: CArgument, chunkname: String) -> Int32 {
        let length = strlen(chunk.bytesWithNUL)
        let status = chunk.withCString { luaL_loadbufferx(L, $0, length, chunkname, nil) }
        return doChunk(status)
    }

    /// lua.c's `dolibrary`.
    func doLibrary(global: CArgument, module: CArgument) -> Int32 {
        let status = global.withCString { g in module.withCString { m in lsa_dolibrary(L, g, m) } }
        return report(status)
    }

    /// lua.c's `print_version`.
    func printVersion() {
        let copyright = lsa_copyright()
        lsa_writestring(copyright, strlen(copyright))
        lsa_writeline()
    }

    /// lua.c's `handle_luainit`: `LUA_INIT_5_4`, else `LUA_INIT`; `@file` runs a file.
    func handleLuaInit() -> Int32 {
        let versioned = "LUA_INIT_" + LUA_VERSION_MAJOR + "_" + LUA_VERSION_MINOR
        var name = versioned
        var value = getenv(name)
        if value == nil {
            name = "LUA_INIT"
            value = getenv(name)
        }
        guard let value else { return LUA_OK }
        let initialization = CArgument(value)
        if initialization[0] == CChar(UInt8(ascii: "@")) {
            return doFile(CArgument(bytes: initialization.bytes.dropFirst()))
        }
        return doString(initialization, chunkname: "=" + name)
    }

    /// lua.c's `runargs`: `-e`, `-l` and `-W` in command-line order; false when one failed.
    func runOrderedActions() -> Bool {
        for action in options.actions {
            switch action {
            case .execute(let chunk):
                if doString(chunk, chunkname: "=(command line)") != LUA_OK { return false }
            case .library(let global, let module):
                if doLibrary(global: global, module: module) != LUA_OK { return false }
            case .warningsOn:
                lua_warning(L, "@on", 0)
            }
        }
        return true
    }

    /// lua.c's `handle_script`: a file (or stdin for `-`, unless it came after `--`), called with the
    /// current `arg[1..#arg]` as varargs.
    func handleScript() -> Int32 {
        let script = options.script
        let isStdin =
            arguments[script].text == "-" && arguments[script - 1].text != "--"
        var status = isStdin ? lsa_loadfile(L, nil) : arguments[script].withCString { lsa_loadfile(L, $0) }
        if status == LUA_OK {
            var count: Int32 = 0
            status = lsa_pushargs(L, &count)
            if status == LUA_OK {
                status = lsa_docall(L, count, LUA_MULTRET)
            }
        }
        return report(status)
    }

    // MARK: - pmain

    /// lua.c's `pmain` after `collectargs`: true when every step ran without error.
    func run() -> Bool {
        let top = lua_gettop(L)
        defer { clua_pop(L, lua_gettop(L) - top) }
        baseOfStack = top
        // lua.c runs everything inside 'pmain', whose frame holds its two arguments (argc, argv) below
        // every chunk. Two placeholders keep the same number of stack slots below our chunks, so that
        // depth-dependent output matches lua.c's exactly (e.g. "...\t(skipping N levels)" of a stack
        // overflow). The REPL drops them, as lua.c's 'loadline' clears pmain's frame (lua_settop(L, 0)).
        lua_pushnil(L)
        lua_pushnil(L)
        if options.showVersion { printVersion() }
        if options.ignoreEnvironment {
            // signal for libraries to ignore env. vars.; before the libraries are opened
            lua_pushboolean(L, 1)
            if report(clua_setfield(L, CLUA_REGISTRYINDEX, "LUA_NOENV")) != LUA_OK { return false }
        }
        if report(hostOpenLibraries(L)) != LUA_OK { return false }
        var argv = arguments.map { strdup($0.bytesWithNUL) }
        let status = lsa_createargtable(L, &argv, Int32(arguments.count), Int32(options.script))
        argv.forEach { free($0) }
        if report(status) != LUA_OK { return false }
        _ = clua_gc2(L, LUA_GCGEN, 0, 0)  // GC in generational mode
        if !options.ignoreEnvironment && handleLuaInit() != LUA_OK { return false }
        if !runOrderedActions() { return false }
        let hasScript = options.script < arguments.count
        if hasScript && handleScript() != LUA_OK { return false }
        if options.interactive {
            REPL(interpreter: self).run()
        } else if !hasScript && !options.hasExecute && !options.showVersion {
            if isatty(0) != 0 {  // running in interactive mode?
                printVersion()
                REPL(interpreter: self).run()
            } else {
                _ = doFile(nil)  // executes stdin as a file
            }
        }
        return true
    }
}
