import Testing

@Suite struct SmokeTests {
    @Test func basics() {
        lua("""
        local c = talloc.new()
        assert(tostring(c):match("talloc.context 'talloc_new: test:1'"), tostring(c))
        local s = talloc.strdup(c, "hello")
        assert(s:get_name() == "hello" and s:get_size() == 6)
        assert(c:total_size() == 6 and c:total_blocks() == 2)
        assert(rawequal(s:parent(), c))
        assert(talloc.free(c) == true)
        assert(talloc.is_freed(s) and talloc.is_freed(c))
        local ok, err = pcall(talloc.get_size, s)
        assert(not ok and err:match("attempt to use a freed talloc context"), err)
        """)
    }
}
