#!/usr/bin/env python3
"""Random Lua programs over the whole `talloc` API, weighted toward misuse.

    gen.py SEED [STATEMENTS]   prints one program on stdout
    gen.py --batch FIRST COUNT [STATEMENTS]
                               prints the programs of seeds FIRST..FIRST+COUNT-1, each after a header line
                               "-- @@ seed=S memlimit=L bytes=N" (L: memlimit(S) or "-"; N: the program's
                               length in UTF-8 bytes)

Every statement runs under pcall, so a program goes on after a Lua error; the last few statements run
unprotected (the program may end with a Lua error: exit status 1). Handles live in the table V (slots
1..N) and may be nil, freed, stolen, referenced, hold destructors, be captured by coroutines and closures.
The same SEED always gives the same program, and `memlimit(SEED)` the same --memlimit. The one generator
of misuse programs: Fuzz/lua/run runs them in the release `luatalloc`, and
Tests/LuaTallocTests/ReliabilityTests.swift (generatedMisuse) runs the --batch output in-process in a
LuaRuntime, so a failing seed there is `Fuzz/lua/run 1 --first SEED` here.
"""
import random
import sys

N = 12  # handle slots

SIZES = ["0", "1", "7", "16", "100", "1000", "4096", "65536", "-1", "-100", "0.5", "1e300", "-1e300",
         "math.maxinteger", "math.mininteger", "2^31", "2^53", "2^62", "1<<40", "0/0", "math.huge", "-math.huge",
         "'12'", "'x'", "nil", "true", "{}", "V[%d]"]
NAMES = ["'a'", "'node'", "'.name'", "''", "'UNNAMED'", "'struct foo'", "string.rep('n', 200)", "'%s%d%n'",
         "'\\0nul'", "nil", "42", "{}", "V[%d]", "true"]
TEXTS = ["'hello'", "''", "'%s %d %%'", "string.rep('x', 1000)", "'\\0\\1\\2'", "'ü-utf8'", "nil", "12", "{}",
         "V[%d]", "string.rep('y', 100000)"]
FMTS = ["'%s'", "'%d'", "'%5.2f'", "'%q'", "'%s %s %s'", "'%'", "'%z'", "'%c'", "'%x'", "'%99999999d'", "nil", "3"]
LIMITS = ["64K", "256K", "1M", "4M", "64M"]


def memlimit(seed):
    """The --memlimit a program runs under (35 % of seeds), or None."""
    rnd = random.Random(seed * 7919)
    return rnd.choice(LIMITS) if rnd.random() < 0.35 else None


JUNK = ["nil", "true", "false", "0", "-1", "'str'", "{}", "function() end", "coroutine.create(function() end)",
        "io.stdout", "talloc", "V", "print", "2^63", "0/0", "setmetatable({}, {__index = function() error('x') end})"]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.depth = 0

    def pick(self, xs):
        return self.r.choice(xs)

    def slot(self):
        return self.r.randint(1, N)

    def h(self):
        """A handle-ish expression: usually a slot (maybe nil or freed), sometimes junk."""
        x = self.r.random()
        if x < 0.80:
            return "V[%d]" % self.slot()
        if x < 0.88:
            return "(V[%d] and V[%d]:parent())" % (self.slot(), self.slot())
        # parenthesised: a literal cannot take a method call (`(0/0):free()`, not `0/0:free()`)
        return "(%s)" % self.pick(JUNK)

    def parent(self):
        return "nil" if self.r.random() < 0.2 else self.h()

    def fill(self, s):
        return s.replace("%d", str(self.slot()), 1) if "%d" in s else s

    def size(self):
        return self.fill(self.pick(SIZES)) if self.r.random() < 0.6 else str(self.r.choice([0, 1, 8, 24, 64, 100, 300]))

    def name(self):
        return self.fill(self.pick(NAMES))

    def text(self):
        return self.fill(self.pick(TEXTS))

    def destructor(self):
        s = self.slot()
        bodies = [
            "return nil", "return false", "return true", "error('no')", "error({})", "error()",
            "talloc.free(c)", "c:free()", "talloc.free(c:parent())", "local p = c:parent(); if p then p:free() end",
            "talloc.free(V[%d])" % s, "talloc.free_children(c)", "talloc.new(c)", "talloc.size(c, 100)",
            "V[%d] = talloc.new(c)" % s, "V[%d] = c" % s, "talloc.steal(V[%d], c)" % s, "talloc.steal(nil, c)",
            "collectgarbage()", "collectgarbage('step')", "coroutine.yield()", "talloc.reference(V[%d], c)" % s,
            "c:realloc(1000)", "c:realloc(0)", "local ch = c:children()(); if ch then ch:realloc(1000) end", "c:parent():realloc(1000)", "talloc.set_destructor(c, nil)", "talloc.set_destructor(c, function() return false end)",
            "string.rep('z', 1 << 20)", "for i = 1, 100 do talloc.new(nil) end", "talloc.report()", "c:report()",
            # coroutines inside a destructor: the module must not keep using a dead coroutine's stack
            "coroutine.wrap(function() talloc.is_freed(nil); talloc.new(c) end)()",
            "for ch in coroutine.wrap(function() for x in talloc.children(c) do coroutine.yield(x) end end) do ch:free() end",
            "local co = coroutine.create(function() talloc.free(V[%d]); coroutine.yield() end); coroutine.resume(co)" % s,
            "coroutine.wrap(function() c:free() end)()", "coroutine.wrap(function() collectgarbage() end)()",
            "talloc.set_memlimit(c, 1)", "V[%d] = nil" % s, "return V[%d] ~= nil" % s,
        ]
        n = self.r.randint(1, 3)
        # `return` must end a block: inside `do ... end` it may come first (else the program does not compile)
        return "function(c) " + "; ".join(self.block_safe(self.pick(bodies)) for _ in range(n)) + " end"

    @staticmethod
    def block_safe(stmt):
        return "do %s end" % stmt if stmt.startswith("return") else stmt

    def create(self):
        s = self.slot()
        k = self.r.randint(0, 11)
        p = self.parent()
        rhs = [
            lambda: "talloc.new(%s, %s)" % (p, self.name()),
            lambda: "talloc.new(%s)" % p,
            lambda: "talloc.size(%s, %s, %s)" % (p, self.size(), self.name()),
            lambda: "talloc.zero(%s, %s)" % (p, self.size()),
            lambda: "talloc.pool(%s, %s)" % (p, self.size()),
            lambda: "talloc.pooled_object(%s, %s, %s, %s, %s)" % (p, self.size(), self.size(), self.size(), self.name()),
            lambda: "talloc.strdup(%s, %s)" % (p, self.text()),
            lambda: "talloc.strndup(%s, %s, %s)" % (p, self.text(), self.size()),
            lambda: "talloc.asprintf(%s, %s, %s, %s)" % (p, self.pick(FMTS), self.text(), self.size()),
            lambda: "talloc.memdup(%s, %s)" % (p, self.r.choice([self.h(), self.text()])),
            lambda: "talloc.new()",
            lambda: "talloc.new(%s, %s)" % (p, self.name()),
        ][k]()
        return "V[%d] = %s" % (s, rhs)

    def op(self):
        a, b, c = self.h(), self.h(), self.h()
        r = self.r.random()
        ops = [
            "talloc.free(%s)" % a, "%s:free()" % a, "talloc.free(%s); talloc.free(%s)" % (a, a),
            "talloc.free_children(%s)" % a,
            "talloc.steal(%s, %s)" % (b, a), "talloc.steal(nil, %s)" % a,
            "talloc.steal(%s, %s:parent())" % (a, a), "for ch in talloc.children(%s) do talloc.steal(ch, %s) end" % (a, a),
            "talloc.reparent(%s, %s, %s)" % (b, c, a),
            "talloc.reference(%s, %s)" % (b, a), "talloc.reference(%s, %s); talloc.reference(%s, %s)" % (b, a, a, b),
            "talloc.reference(nil, %s)" % a, "talloc.unlink(%s, %s)" % (b, a), "talloc.unlink(nil, %s)" % a,
            "talloc.reference_count(%s)" % a,
            "talloc.set_destructor(%s, %s)" % (a, self.destructor()),
            "talloc.set_destructor(%s, %s)" % (a, self.destructor()),
            "talloc.set_destructor(%s, %s)" % (a, self.pick(JUNK)),
            "talloc.set_name(%s, %s)" % (a, self.name()), "talloc.get_name(%s)" % a,
            "talloc.check_name(%s, %s)" % (a, self.name()), "talloc.set_type(%s, %s)" % (a, self.name()),
            "talloc.get_type(%s, %s)" % (a, self.name()), "talloc.get_type_abort(%s, %s)" % (a, self.name()),
            "talloc.parent(%s)" % a, "talloc.parent_name(%s)" % a,
            "for ch in talloc.children(%s) do V[%d] = ch end" % (a, self.slot()),
            "for ch in talloc.children(%s) do ch:free() end" % a,
            "local it = talloc.children(%s); %s:free(); it()" % (a, a),
            "talloc.is_parent(%s, %s)" % (a, b), "talloc.find_parent_byname(%s, %s)" % (a, self.name()),
            "talloc.get_size(%s)" % a, "talloc.total_size(%s)" % a, "talloc.total_blocks(%s)" % a,
            "talloc.report(%s)" % a, "talloc.report_full(%s)" % a, "talloc.report()",
            "talloc.report(%s, {addresses = false})" % a, "talloc.report(%s, %s)" % (a, self.pick(JUNK)),
            "talloc.set_memlimit(%s, %s)" % (a, self.size()), "talloc.pool_info(%s)" % a, "talloc.dot(%s)" % a,
            "talloc.pool_map(%s)" % a, "talloc.is_freed(%s)" % a, "tostring(%s)" % a,
            "talloc.realloc(%s, %s)" % (a, self.size()), "talloc.realloc(%s, 0)" % a,
            "talloc.strdup_append(%s, %s)" % (a, self.text()),
            "talloc.asprintf_append(%s, %s, %s)" % (a, self.pick(FMTS), self.text()),
            "%s:read(%s, %s)" % (a, self.size(), self.size()), "%s:read()" % a,
            "%s:write(%s, %s)" % (a, self.size(), self.text()),
            "%s:fill(%s, %s, %s)" % (a, self.size(), self.size(), self.size()),
            "%s:pack(%s, %s, %s)" % (a, self.size(), self.r.choice(["'i4'", "'s'", "'z'", "'d'", "'j'", "'i16'", "'!'", "'Xz'", "nil"]), self.size()),
            "%s:unpack(%s, %s)" % (a, self.size(), self.r.choice(["'i4'", "'s'", "'z'", "'d'", "'j'", "'i16'", "'!'"])),
            "%s:string()" % a,
            "getmetatable(%s).__gc(%s)" % (a, a), "getmetatable(%s).__close(%s)" % (a, a),
            "getmetatable(%s).__index = nil" % a, "setmetatable(%s, nil)" % a,
            "debug.setmetatable(%s, nil)" % a,
            "getmetatable(%s).__gc(%s)" % (a, self.pick(JUNK)),
            "local nxt = talloc.children(%s); nxt(); nxt(%s)" % (a, b),
            "talloc[%s](%s, %s)" % (self.r.choice(["'free'", "'steal'", "'new'", "'size'", "'reference'", "'dot'"]), self.pick(JUNK), self.pick(JUNK)),
        ]
        return self.pick(ops)

    def attack(self):
        """Lua code running inside a module call (metamethods, replaced standard functions, finalizers) that
        frees, steals or reallocates what the call is using; forged chunk headers written into a chunk."""
        a, b = self.h(), self.h()
        victim = self.pick(["talloc.free(%s)" % a, "talloc.free(%s)" % b, "talloc.steal(nil, %s)" % a,
                            "talloc.realloc(%s, 5000)" % a, "talloc.free_children(%s)" % a,
                            "talloc.free(talloc.parent(%s) or %s)" % (a, b), "collectgarbage()",
                            "talloc.set_name(%s, string.rep('q', 300))" % a])
        meta = "setmetatable({}, {__tostring = function() %s; return 'x' end})" % victim
        idx = "setmetatable({}, {__index = function() %s end})" % victim
        ops = [
            "talloc.asprintf(%s, '%%s %%s', %s, %s)" % (a, meta, meta),
            "talloc.asprintf_append(%s, '%%s', %s)" % (a, meta),
            "talloc.report(%s, %s)" % (a, idx), "talloc.report_full(%s, %s)" % (a, idx),
            "talloc.report(nil, %s)" % idx,
            "local f = string.pack; string.pack = function(...) %s; return f(...) end; "
            "pcall(function() %s:pack(0, 'i4', 7) end); string.pack = f" % (victim, a),
            "local f = string.unpack; string.unpack = function(...) %s; return f(...) end; "
            "pcall(function() %s:unpack(0, 'i4') end); string.unpack = f" % (victim, a),
            "local f = string.format; string.format = function(...) %s; return f(...) end; "
            "pcall(talloc.asprintf, %s, '%%d', 1); string.format = f" % (victim, a),
            "local f = tostring; tostring = function(...) %s; return f(...) end; "
            "pcall(talloc.asprintf, %s, '%%s', {}); tostring = f" % (victim, a),
            "setmetatable({}, {__gc = function() %s end})" % victim,
            "do local x <close> = setmetatable({}, {__close = function() %s end}); talloc.new(%s) end" % (victim, a),
            "talloc.set_destructor(%s, function(c) %s end); talloc.free(%s)" % (a, victim, b),
            # forged headers: the magic, flag bits and sizes of a live chunk written into a chunk's bytes,
            # then shrunk in place so the forged bytes look like the next chunk of the pool
            "%s:write(0, string.rep(string.pack('<I4I4I8', 0xA1108000 | %d, %d, %d), 8))"
            % (a, self.r.randint(0, 0x3fff), self.r.choice([0, 64, 1 << 20, 0xffffffff]), self.r.randint(0, 1 << 40)),
            "%s:fill(0xA1); %s:realloc(%s); talloc.pool_map(%s); talloc.pool_info(%s)" % (a, a, self.size(), b, a),
            "%s:write(0, string.pack('<I8I8I8I8', 0xF111E4F01D5EC0D7, %d, %d, %d)); %s:realloc(1); talloc.pool_map(%s)"
            % (a, self.r.randint(0, 1 << 20), self.r.randint(0, 1 << 32), self.r.randint(0, 64), a, b),
            "talloc.strdup(%s, %s)" % (a, meta), "talloc.new(%s, %s)" % (a, meta),
            "talloc.children(%s)(%s)" % (a, idx),
        ]
        return self.pick(ops)

    def gc(self):
        return self.pick(["collectgarbage()", "collectgarbage('step', %d)" % self.r.randint(0, 100),
                          "collectgarbage('incremental')", "collectgarbage('generational')",
                          "V[%d] = nil" % self.slot(), "V[%d] = nil; collectgarbage()" % self.slot(),
                          "for i = 1, %d do V[i] = nil end collectgarbage()" % N ])

    def block(self):
        k = self.r.randint(0, 9)
        inner = "; ".join(self.stmt(nested=True) for _ in range(self.r.randint(1, 3)))
        s = self.slot()
        if k == 0:
            return "do local x <close> = talloc.new(%s); V[%d] = x; %s end" % (self.parent(), s, inner)
        if k == 1:
            return "do local x <close> = %s; %s end" % (self.h(), inner)
        if k == 2:  # a coroutine that yields while holding contexts, maybe never resumed again
            return ("local co = coroutine.wrap(function() local x <close> = talloc.new(%s); V[%d] = x; "
                    "coroutine.yield(); %s; coroutine.yield(x) end); co(); if math.random() < 0.5 then co() end; "
                    "CO[#CO + 1] = co" % (self.parent(), s, inner))
        if k == 3:
            return ("local co = coroutine.create(function(p) local t = {}; for i = 1, %d do t[i] = talloc.new(p) "
                    "coroutine.yield(t[i]) end end); for i = 1, %d do local ok, v = coroutine.resume(co, %s); V[%d] = v end; "
                    "CO[#CO + 1] = co" % (self.r.randint(1, 20), self.r.randint(1, 5), self.parent(), s))
        if k == 4:  # deep chain
            return ("local p = %s; for i = 1, %d do p = talloc.new(p) end; V[%d] = p"
                    % (self.parent(), self.r.choice([10, 100, 1000, 5000]), s))
        if k == 5:  # wide node
            return ("local p = talloc.new(%s); for i = 1, %d do talloc.size(p, i %% 64) end; V[%d] = p"
                    % (self.parent(), self.r.choice([10, 100, 1000, 5000]), s))
        if k == 6:  # reference cycle
            return ("local a, b = talloc.new(%s), talloc.new(%s); talloc.reference(a, b); talloc.reference(b, a); "
                    "V[%d], V[%d] = a, b" % (self.parent(), self.parent(), s, self.slot()))
        if k == 7:  # pool members stolen out, pool freed
            return ("local pl = talloc.pool(%s, %d); local m = {}; for i = 1, %d do m[i] = talloc.size(pl, %d) end; "
                    "talloc.steal(%s, m[1]); V[%d] = m[1]; if math.random() < 0.7 then pl:free() end; V[%d] = pl"
                    % (self.parent(), self.r.choice([0, 64, 1024, 4096]), self.r.randint(1, 8),
                       self.r.choice([0, 8, 100, 3000]), self.parent(), s, self.slot()))
        if k == 8:  # steal into own descendant
            return "local a = talloc.new(%s); local b = talloc.new(a); local c = talloc.new(b); talloc.steal(c, a); V[%d] = a" % (self.parent(), s)
        return "local a = %s; talloc.set_destructor(a, %s); V[%d] = a; %s" % (self.h(), self.destructor(), s, inner)

    def stmt(self, nested=False):
        r = self.r.random()
        if r < 0.30:
            return self.create()
        if r < 0.74:
            return self.op()
        if r < 0.80:
            return self.attack()
        if r < 0.90:
            return self.gc()
        if nested:
            return self.op()
        return self.block()

    def program(self, n):
        out = ["-- luatalloc misuse fuzz program (Fuzz/lua/gen.py)",
               "local V, CO = {}, {}", "math.randomseed(%d)" % self.r.randint(0, 2**31),
               "local function P(f) local ok, e = pcall(f); if not ok and type(e) ~= 'string' and type(e) ~= 'table' and e ~= nil then error('non-string error: ' .. tostring(e)) end end"]
        for _ in range(n):
            out.append("P(function() %s end)" % self.stmt())
        if self.r.random() < 0.3:
            out.append("V = nil; CO = nil; collectgarbage(); collectgarbage()")
        for _ in range(self.r.randint(0, 2)):
            out.append(self.stmt(nested=True))
        return "\n".join(out) + "\n"


if __name__ == "__main__":
    if sys.argv[1] == "--batch":
        first, count = int(sys.argv[2]), int(sys.argv[3])
        n = int(sys.argv[4]) if len(sys.argv) > 4 else 120
        out = sys.stdout.buffer
        for seed in range(first, first + count):
            prog = Gen(seed).program(n).encode()
            out.write(b"-- @@ seed=%d memlimit=%s bytes=%d\n" % (seed, (memlimit(seed) or "-").encode(), len(prog)))
            out.write(prog)
    else:
        seed = int(sys.argv[1])
        n = int(sys.argv[2]) if len(sys.argv) > 2 else 120
        sys.stdout.write(Gen(seed).program(n))
